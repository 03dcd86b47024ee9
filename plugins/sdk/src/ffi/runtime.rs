//! What one plugin library owns for the life of the process: its tokio runtime, the host's
//! log callback (behind a `tracing` subscriber), and a panic hook that keeps panics quiet and
//! routes them to the host.
//!
//! Each dynamic library has its own copy of std, tokio and tracing, so none of the host's
//! globals (runtime, subscriber, panic hook) reach code in here; these are the library's own.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::OnceLock;

use pipe_plugin_abi::{
    PIPE_LOG_DEBUG, PIPE_LOG_ERROR, PIPE_LOG_INFO, PIPE_LOG_TRACE, PIPE_LOG_WARN, PipeHostApiV1, PipeStr,
};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use super::guard::{CallError, CallResult, in_guard, record_panic};

/// The host's log callback.
type LogFn = unsafe extern "C" fn(level: u32, target: PipeStr, message: PipeStr);

/// What the host told us at init.
struct Host {
    log: Option<LogFn>,
    max_log_level: u32,
    worker_threads: usize,
}

static HOST: OnceLock<Host> = OnceLock::new();
static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Records the host API (first init wins) and installs the log bridge and panic hook.
///
/// # Safety
/// `host` must be null or point to a valid `PipeHostApiV1` of at least its v1 size.
pub(crate) unsafe fn install(host: *const PipeHostApiV1) {
    let mut installed = false;
    HOST.get_or_init(|| {
        installed = true;
        // SAFETY: checked by the caller (init validated struct_size).
        let api = unsafe { host.as_ref() };
        Host {
            log: api.and_then(|h| h.log),
            max_log_level: api.map_or(0, |h| h.max_log_level),
            worker_threads: api.map_or(0, |h| h.worker_threads as usize),
        }
    });
    if installed {
        // Only the first init installs them; a library may be initialised more than once.
        let _ = tracing::subscriber::set_global_default(HostLogger);
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(non-string payload)");
            let message = match info.location() {
                Some(l) => format!("{text} at {}:{}", l.file(), l.line()),
                None => text.to_string(),
            };
            if in_guard() {
                // The entry guard reports it as the call's error; keep a debug trace only.
                log(PIPE_LOG_DEBUG, "pipe_plugin_sdk::panic", &format!("panicked: {message}"));
                record_panic(message);
            } else if HOST.get().is_some_and(|h| h.log.is_some()) {
                // A task on the library's runtime: nobody else will say it.
                log(PIPE_LOG_WARN, "pipe_plugin_sdk::panic", &format!("a plugin task panicked: {message}"));
            } else {
                // No host logger to route it to: stderr, as Rust would.
                previous(info);
            }
        }));
    }
}

/// The library's tokio runtime, created on first use and never dropped (libraries are never
/// unloaded, and its worker threads run code of this library).
pub fn runtime() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let workers = HOST.get().map_or(0, |h| h.worker_threads);
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 0 {
            b.worker_threads(workers);
        }
        b.thread_name("pipe-plugin").enable_all().build().expect("the plugin library's tokio runtime starts")
    })
}

/// Runs `fut` to completion on the library's runtime, unless `cancel` fires first.
pub(crate) fn block_on_cancellable<T>(cancel: &CancellationToken, fut: impl Future<Output = T>) -> CallResult<T> {
    if cancel.is_cancelled() {
        return Err(CallError::Cancelled);
    }
    runtime().block_on(async {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Err(CallError::Cancelled),
            out = fut => Ok(out),
        }
    })
}

/// Sends one record to the host's logger, if it wants that level.
pub(crate) fn log(level: u32, target: &str, message: &str) {
    let Some(host) = HOST.get() else { return };
    let Some(f) = host.log else { return };
    if level > host.max_log_level {
        return;
    }
    // SAFETY: the host's callback is thread-safe and valid for the life of the process; the
    // strings are borrowed for the call.
    unsafe { f(level, PipeStr::new(target), PipeStr::new(message)) };
}

/// A minimal `tracing` subscriber that formats each event and hands it to the host. Spans are
/// not tracked: plugins log events, the host adds its own context.
struct HostLogger;

fn level_code(level: &tracing::Level) -> u32 {
    match *level {
        tracing::Level::ERROR => PIPE_LOG_ERROR,
        tracing::Level::WARN => PIPE_LOG_WARN,
        tracing::Level::INFO => PIPE_LOG_INFO,
        tracing::Level::DEBUG => PIPE_LOG_DEBUG,
        tracing::Level::TRACE => PIPE_LOG_TRACE,
    }
}

impl tracing::Subscriber for HostLogger {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        HOST.get().is_some_and(|h| h.log.is_some() && level_code(metadata.level()) <= h.max_log_level)
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        use tracing::level_filters::LevelFilter;
        Some(match HOST.get().map_or(0, |h| h.max_log_level) {
            0 => LevelFilter::OFF,
            PIPE_LOG_ERROR => LevelFilter::ERROR,
            PIPE_LOG_WARN => LevelFilter::WARN,
            PIPE_LOG_INFO => LevelFilter::INFO,
            PIPE_LOG_DEBUG => LevelFilter::DEBUG,
            _ => LevelFilter::TRACE,
        })
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut text = FieldText::default();
        event.record(&mut text);
        let meta = event.metadata();
        log(level_code(meta.level()), meta.target(), &text.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// `message key=value key=value`.
#[derive(Default)]
struct FieldText(String);

impl tracing::field::Visit for FieldText {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let rest = std::mem::take(&mut self.0);
            let _ = write!(self.0, "{value:?}{rest}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.insert_str(0, value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}
