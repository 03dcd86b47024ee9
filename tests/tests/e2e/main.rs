//! End to end: the real `pipe` binary exports from the vendor simulators (giosg, Alli,
//! Aimylogic, in this process on loopback), through the transforms, into Parquet, JSON Lines,
//! S3 (moto) and Delta; the output is read back with independent readers and compared with the
//! simulators' ground truth.
//!
//! One test binary; a new file `e2e/<name>.rs` joins it with `mod <name>;` below.

mod aimylogic;
mod aimylogic_webhook;
mod alli;
mod bounded_paging;
mod credentials;
mod decrypt_tags;
mod delta;
mod giosg;
mod hostile_times;
mod http;
mod incremental;
mod json_sink;
mod rest_spec;
mod runsafe;
mod scale;
mod unwritable_values;
mod vanished_chats;
mod webhook_hostile;
