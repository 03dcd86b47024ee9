//! Run counters shared by the engine and every plugin of a run (for the progress display and
//! the end-of-run summary).

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters of one run. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Metrics {
    /// HTTP requests sent to the vendor (retries included).
    pub requests: AtomicU64,
    /// Requests that were retried (429, 5xx, connection errors).
    pub retries: AtomicU64,
    /// Conversations the source has emitted.
    pub conversations: AtomicU64,
    /// Messages the source has emitted.
    pub messages: AtomicU64,
    /// While the vendor throttles us (HTTP 429): when requests resume, in milliseconds since
    /// the Unix epoch; 0 when not throttled. Shown by the progress display.
    pub throttled_until_ms: AtomicU64,
    /// Requests the source allows in flight now (its concurrency limit, fixed or adaptive);
    /// 0 before its first request. A gauge.
    pub concurrency: AtomicU64,
    /// The time-weighted mean of `concurrency` since the first request, in thousandths: what
    /// the adaptive controller settled on. A gauge.
    pub concurrency_mean_milli: AtomicU64,
    /// 1 when the concurrency limit adapts (no `concurrency` key), 0 when it is fixed.
    pub concurrency_adaptive: AtomicU64,
    /// Answers HTTP 429 (Too Many Requests) received.
    pub throttled_responses: AtomicU64,
    /// The rate cap learned from HTTP 429 answers, in thousandths of requests per second; 0
    /// when none was needed. A gauge.
    pub learned_rate_milli: AtomicU64,
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Sets a gauge.
    pub fn set(gauge: &AtomicU64, value: u64) {
        gauge.store(value, Ordering::Relaxed);
    }
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus metrics recorded by the SDK and the built-in plugins.
//
// They go through the `metrics` facade: `pipe run --metrics-addr/--metrics-file` installs a
// Prometheus recorder in the engine's process, which adds the `pipeline` label to every series.
// A plugin loaded as a C-ABI library has its own copy of the facade and no recorder, so these
// calls are no-ops there; the engine records what the ABI carries back for it (requests and
// retries, `status_class="unknown"`). The full list, with the engine's own metrics, is the
// engine's catalog (`pipe_engine::telemetry::catalog::CATALOG`) and the README's "Monitoring" table.
//
// Labels are bounded by construction: `vendor` is the plugin's name, `status_class` one of
// [`STATUS_CLASSES`], `code` an HTTP status code; never a conversation id, URL or secret.

/// Counter `pipe_http_requests_total{vendor, status_class}`: HTTP requests sent to the vendor,
/// retries included, by the class of their answer ([`status_class`]).
pub const HTTP_REQUESTS_TOTAL: &str = "pipe_http_requests_total";
/// Counter `pipe_http_retries_total{vendor}`: requests retried (429, 5xx, connection errors,
/// truncated or unparsable bodies).
pub const HTTP_RETRIES_TOTAL: &str = "pipe_http_retries_total";
/// Histogram `pipe_rate_limit_pause_seconds{vendor}`: the pauses of every request of the
/// source that the vendor asked for (HTTP 429, or a 5xx with `Retry-After`), in seconds: its
/// `_count` is the number of pauses, its `_sum` the time spent paused.
pub const RATE_LIMIT_PAUSE_SECONDS: &str = "pipe_rate_limit_pause_seconds";
/// Counter `pipe_decrypt_messages_decrypted_total`: encrypted messages the `decrypt` transform
/// decrypted.
pub const DECRYPT_DECRYPTED_TOTAL: &str = "pipe_decrypt_messages_decrypted_total";
/// Counter `pipe_decrypt_messages_failed_total`: encrypted messages it could not decrypt (each
/// also a dead letter; the row stays encrypted).
pub const DECRYPT_FAILED_TOTAL: &str = "pipe_decrypt_messages_failed_total";
/// Counter `pipe_webhook_requests_total{vendor, code}`: requests a webhook listener answered,
/// by HTTP response code.
pub const WEBHOOK_REQUESTS_TOTAL: &str = "pipe_webhook_requests_total";
/// Histogram `pipe_webhook_ack_duration_seconds{vendor}`: from a webhook POST's arrival to its
/// acknowledgement (the 200 sent once a commit covers it), in seconds.
pub const WEBHOOK_ACK_DURATION_SECONDS: &str = "pipe_webhook_ack_duration_seconds";

/// The values of the `status_class` label: `1xx` … `5xx` by the answer's status, `error` when
/// no answer came (connection refused or cut, timeout, TLS), `unknown` for a plugin library
/// (the C ABI carries totals only).
pub const STATUS_CLASSES: [&str; 7] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error", "unknown"];

/// The `status_class` of an answer: `Some(status)` → `1xx`…`5xx` (anything outside 100–599
/// counts as `error`), `None` (no answer) → `error`.
pub fn status_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "error",
    }
}

/// Records one request sent to `vendor` and how it was answered (`None`: no answer).
pub fn record_http_request(vendor: &str, status: Option<u16>) {
    ::metrics::counter!(HTTP_REQUESTS_TOTAL, "vendor" => vendor.to_string(), "status_class" => status_class(status))
        .increment(1);
}

/// Records one retry of a request to `vendor`; `pause` is the wait the vendor asked for
/// (`Retry-After`, or a 429's floor), which holds every request of the source.
pub fn record_http_retry(vendor: &str, pause: Option<std::time::Duration>) {
    ::metrics::counter!(HTTP_RETRIES_TOTAL, "vendor" => vendor.to_string()).increment(1);
    if let Some(pause) = pause {
        ::metrics::histogram!(RATE_LIMIT_PAUSE_SECONDS, "vendor" => vendor.to_string()).record(pause.as_secs_f64());
    }
}

/// Records what the `decrypt` transform did with one batch.
pub fn record_decrypt(decrypted: u64, failed: u64) {
    ::metrics::counter!(DECRYPT_DECRYPTED_TOTAL).increment(decrypted);
    ::metrics::counter!(DECRYPT_FAILED_TOTAL).increment(failed);
}

/// Records one request a webhook listener of `vendor` answered with `code`; `ack` is the time
/// from its arrival to the acknowledgement, for the POSTs acknowledged as durable.
pub fn record_webhook_answer(vendor: &str, code: u16, ack: Option<std::time::Duration>) {
    ::metrics::counter!(WEBHOOK_REQUESTS_TOTAL, "vendor" => vendor.to_string(), "code" => code.to_string())
        .increment(1);
    if let Some(ack) = ack {
        ::metrics::histogram!(WEBHOOK_ACK_DURATION_SECONDS, "vendor" => vendor.to_string()).record(ack.as_secs_f64());
    }
}
