//! What the engine hands every plugin library at init ([`PipeHostApiV1`]): its version, its
//! log level and a thread-safe log callback that turns the library's records into the
//! engine's own `tracing` events.

use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::OnceLock;

use pipe_plugin_abi::{
    ABI_VERSION, PIPE_LOG_DEBUG, PIPE_LOG_ERROR, PIPE_LOG_INFO, PIPE_LOG_TRACE, PIPE_LOG_WARN, PipeHostApiV1, PipeStr,
    struct_size,
};
use tracing::level_filters::LevelFilter;

const HOST_VERSION: &str = concat!("pipe ", env!("CARGO_PKG_VERSION"), "\0");

/// The host API lives in a static for the life of the process; the pointer inside points to a
/// static string.
struct HostApi(PipeHostApiV1);
// SAFETY: read-only after creation; its pointer is to a 'static string.
unsafe impl Sync for HostApi {}
// SAFETY: as above.
unsafe impl Send for HostApi {}

static HOST_API: OnceLock<HostApi> = OnceLock::new();

/// The host API passed to `pipe_plugin_init_v1`. Created on first use, after logging is set
/// up, so libraries learn the engine's log level.
pub fn host_api() -> &'static PipeHostApiV1 {
    &HOST_API
        .get_or_init(|| {
            let max_log_level = match LevelFilter::current() {
                LevelFilter::OFF => 0,
                LevelFilter::ERROR => PIPE_LOG_ERROR,
                LevelFilter::WARN => PIPE_LOG_WARN,
                LevelFilter::INFO => PIPE_LOG_INFO,
                LevelFilter::DEBUG => PIPE_LOG_DEBUG,
                LevelFilter::TRACE => PIPE_LOG_TRACE,
            };
            HostApi(PipeHostApiV1 {
                struct_size: struct_size::<PipeHostApiV1>(),
                abi_version: ABI_VERSION,
                host_version: HOST_VERSION.as_ptr().cast::<c_char>(),
                log: Some(log),
                max_log_level,
                // Plugins mostly wait on HTTP; two workers per library is plenty on this engine.
                worker_threads: 2,
            })
        })
        .0
}

/// The log callback: called from any plugin thread.
unsafe extern "C" fn log(level: u32, target: PipeStr, message: PipeStr) {
    // A panic must not unwind into the plugin's frames.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the library lends both strings for the duration of the call.
        let (target, message) =
            unsafe { (String::from_utf8_lossy(target.as_bytes()), String::from_utf8_lossy(message.as_bytes())) };
        match level {
            PIPE_LOG_ERROR => tracing::error!(plugin = %target, "{message}"),
            PIPE_LOG_WARN => tracing::warn!(plugin = %target, "{message}"),
            PIPE_LOG_INFO => tracing::info!(plugin = %target, "{message}"),
            PIPE_LOG_DEBUG => tracing::debug!(plugin = %target, "{message}"),
            _ => tracing::trace!(plugin = %target, "{message}"),
        }
    }));
}
