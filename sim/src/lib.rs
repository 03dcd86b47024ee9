//! `pipe-sim`: API-faithful vendor simulators on a loopback port.
//!
//! Each simulator serves a seeded, generated account (`generate`) and keeps its ground truth
//! (`Dataset`), so the end-to-end tests in `tests/` can run the real `pipe` binary against it
//! and compare the output with what the vendor "has". `pipe demo` starts them in-process (the
//! engine's default `demo` feature); the `giosg-sim`, `alli-sim` and `aimylogic-sim` binaries
//! serve them on their own for manual runs and benchmarks. `intercom` is a vendor `pipe` has no
//! native source for: the declarative `rest` source's shipped spec `pipelines/specs/intercom.toml`
//! is tested against it.

#![warn(missing_docs)]

pub mod aimylogic;
pub mod alli;
pub mod demo;
pub mod giosg;
pub mod intercom;
mod serve;

/// Waits until standard input reaches its end (Ctrl-D, or the parent closing the pipe): how
/// the simulator binaries know to stop without a signal handler.
pub async fn serve_until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
            line.clear();
        }
    })
    .await;
}
