//! End to end: the real `pipe` binary exports from the vendor simulators (giosg, Alli,
//! Aimylogic, in this process on loopback), through the transforms, into Parquet, JSON Lines,
//! S3 (moto) and Delta; the output is read back with independent readers and compared with the
//! simulators' ground truth.
//!
//! One test binary; a new file `e2e/<name>.rs` joins it with `mod <name>;` below.

mod aimylogic;
mod aimylogic_paging;
mod aimylogic_webhook;
mod alli;
mod alli_contract;
mod bounded_paging;
mod credentials;
mod decrypt_tags;
mod delta;
mod encrypted_variables;
mod giosg;
mod hostile_times;
mod http;
mod incremental;
mod json_sink;
mod metrics;
mod rate_limits;
mod rest_aimylogic;
mod rest_intercom;
mod rest_spec;
mod runsafe;
mod scale;
mod shape_drift;
mod unwritable_values;
mod validate_check;
mod vanished_chats;
mod webhook_hostile;
