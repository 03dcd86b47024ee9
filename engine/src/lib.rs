//! The `pipe` engine: pipeline files (`config`), the plugin host (`registry`, `plugin_host`:
//! built-ins and C-ABI libraries), the streaming runtime (`runtime`: source → transforms →
//! sinks, checkpoints and commits), saved state (`state`), Prometheus metrics (`telemetry`) and
//! the command line (`cli`).
//!
//! Exit codes are in `exit`; the binary in `main.rs` only parses arguments and calls
//! `cli::dispatch`.

pub mod allocator;
pub mod cli;
pub mod config;
pub mod exit;
pub mod plugin_host;
pub mod registry;
pub mod runtime;
pub mod state;
pub mod telemetry;
