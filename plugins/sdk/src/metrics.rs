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
