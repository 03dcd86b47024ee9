//! `pipe-tests`: the end-to-end tests of the real `pipe` binary. They run it against the vendor
//! simulators of `pipe-sim` and read the output back with independent readers (pyarrow,
//! DuckDB, the `deltalake` package), never with pipe's own code.
//!
//! This library is what the tests share: finding and running the binary ([`pipe_bin`],
//! [`run_pipe`]), the Python reader ([`python`], [`python_json`]), the one read-back of a
//! Parquet dataset ([`Parquet`] → [`Table`]), the plugin libraries the workspace builds
//! ([`libraries`]), a real Prometheus server and `promtool` ([`prometheus`]), and
//! [`alone_in_process`] for measurements that need a process of their own.
//!
//! The tests compile into a few binaries by theme, one directory each under `tests/tests/`
//! with a `main.rs` that lists its modules (cargo finds `tests/*/main.rs` by itself):
//!
//! | binary    | what                                                                          |
//! |-----------|-------------------------------------------------------------------------------|
//! | `e2e`     | vendor exports against the simulators, transforms, HTTP faults, incremental runs, scale (shards, S3), Delta |
//! | `cli`     | configuration errors, accounts, `pipe demo`, the deploy examples               |
//! | `ffi`     | plugins as dynamic libraries: parity with the built-ins, discovery, panics, cancel, memory, exported symbols, the overhead benchmark |
//! | `plugins` | writing a plugin: in C, the standalone example, the conformance kit and its cancel probe |
//! | `sim`     | the simulators themselves                                                      |
//!
//! A new test file `tests/tests/<binary>/<name>.rs` joins its binary with `mod <name>;` in
//! that binary's `main.rs`, and starts with `use pipe_tests::*;` for the helpers. Run one
//! binary with `cargo nextest run --release -p pipe-tests --test e2e`, one module with
//! `-E 'test(/^giosg::/)'`.

mod isolation;
pub mod libraries;
mod pipe;
pub mod prometheus;
mod python;
pub mod read_back;
mod service;

pub use isolation::alone_in_process;
pub use pipe::{files_under, jsonl_rows, pipe_bin, profile, run_pipe, stderr, target_dir, workspace};
pub use python::{python, python_json};
pub use read_back::{Parquet, Streams, Table};
pub use service::{service_log, sigterm_and_wait, wait_until_healthy};
