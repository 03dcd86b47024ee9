//! Test-only library (`libpipe_test_wrong_abi.so`): answers the handshake with ABI version 2,
//! as a plugin built for a future `pipe` would. The engine must refuse it naming both versions
//! before calling anything else.

/// The handshake, answering a version this `pipe` does not implement.
#[unsafe(no_mangle)]
pub extern "C" fn pipe_plugin_abi_version() -> u32 {
    2
}
