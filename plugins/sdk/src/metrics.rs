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
}

impl Metrics {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
