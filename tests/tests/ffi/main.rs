//! Plugins as dynamic libraries across the C ABI: the shipped plugins built as libraries give
//! the built-ins' output; discovery, version refusal and overrides; panics contained at the
//! boundary; cancel of a blocked call; no memory growth over many open/close cycles; the
//! symbols a library exports; and the overhead benchmark (ignored; `benches/ffi_overhead.sh`).
//!
//! Several tests drive the engine's plugin host in this process. `memory` measures the heap and
//! resident memory of its process: it runs alone in one (see `pipe_tests::alone_in_process`).
//!
//! One test binary; a new file `ffi/<name>.rs` joins it with `mod <name>;` below.

mod bench;
mod builtin_parity;
mod cancel;
mod discovery;
mod memory;
mod panics;
mod symbols;
