//! Test-only library (`libpipe_test_not_a_plugin.so`): an ordinary shared library with no
//! `pipe_plugin_abi_version`, as a plugin directory might contain next to real plugins. The
//! engine must skip it with a warning.

/// Some unrelated export.
#[unsafe(no_mangle)]
pub extern "C" fn not_a_pipe_plugin() -> u32 {
    42
}
