//! Writing a plugin: one written in C against `pipe_plugin.h` alone, the standalone example
//! project (`plugins/example`), the conformance kit of `pipe plugin check` on the shipped and
//! the broken plugins, and the kit's ABI-level cancel probe.
//!
//! One test binary; a new file `plugins/<name>.rs` joins it with `mod <name>;` below.

mod c;
mod cancel_abi;
mod conformance;
mod example;
mod properties;
