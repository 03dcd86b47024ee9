//! Prometheus metrics of a run: `pipe run --metrics-addr HOST:PORT` serves them at `/metrics`
//! while the run lasts ([`serve`]), `--metrics-file PATH` writes their final values at the end
//! ([`mod@file`], for node_exporter's textfile collector).
//!
//! Recording goes through the `metrics` facade. [`Telemetry::install`] sets a Prometheus
//! recorder (metrics-exporter-prometheus, text format 0.0.4) as the process's global recorder,
//! with `pipeline` (and `shard`) on every series; without it (no flag, `pipe demo`, tests) every
//! call is a no-op. The engine records what holds for any plugin, built in or loaded as a
//! library: rows, dead letters, commits, files and bytes, the run's times and outcome, the
//! committed watermark ([`record_rows`] and the others here, called by the coordinator). The
//! SDK records the vendor side (requests by status class, retries, rate-limit pauses, decrypt
//! counts, webhook answers; `pipe_plugin_sdk::metrics`): for built-in plugins directly, for a
//! library source only its request and retry totals, which the C ABI carries back
//! ([`record_library_counters`], `status_class="unknown"`).
//!
//! Every name is in [`catalog::CATALOG`]. Label values are bounded: streams, sinks, vendors
//! and accounts come from the pipeline and its plugins, codes and classes from HTTP, and a
//! dead-letter `reason` that is not a short snake_case word, or beyond the first
//! [`MAX_REASONS`] distinct ones, is counted as `other`. Nothing secret is recorded: no URL,
//! header, key or id.

pub mod catalog;
pub mod file;
pub mod serve;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::Value;

use catalog::{CATALOG, Kind};

/// Distinct dead-letter reasons kept as label values; later ones count as `other`.
pub const MAX_REASONS: usize = 64;

/// The installed recorder of this process and the run's clock.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    handle: PrometheusHandle,
    started: Instant,
    /// Set by [`Telemetry::finish`]: the values are final.
    finished: AtomicBool,
    /// Scrapes that began after the values were final (see [`serve::Server::linger`]).
    final_scrapes: AtomicU64,
}

/// Watermarks committed in this run, by account (`""` without accounts), as Unix seconds:
/// their age is computed when the metrics are read.
static WATERMARKS: Mutex<BTreeMap<String, f64>> = Mutex::new(BTreeMap::new());

/// Dead-letter reasons seen so far (bounded by [`MAX_REASONS`]).
static REASONS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

impl Telemetry {
    /// Installs the Prometheus recorder as the process's global recorder, labelling every
    /// series with `pipeline` (and `shard = "K/N"`), describes every metric of the catalog and
    /// sets `pipe_run_start_time_seconds`.
    ///
    /// Errors: a recorder is already installed in this process.
    pub fn install(pipeline: &str, shard: Option<(u32, u32)>) -> anyhow::Result<Telemetry> {
        let mut builder = PrometheusBuilder::new().add_global_label("pipeline", pipeline);
        if let Some((k, n)) = shard {
            builder = builder.add_global_label("shard", format!("{k}/{n}"));
        }
        for m in CATALOG.iter().filter(|m| m.kind == Kind::Histogram) {
            builder = builder
                .set_buckets_for_metric(Matcher::Full(m.name.to_string()), catalog::buckets(m.name))
                .expect("the catalog's buckets are not empty");
        }
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::set_global_recorder(recorder)
            .map_err(|_| anyhow::anyhow!("a metrics recorder is already installed in this process"))?;
        for m in CATALOG {
            match m.kind {
                Kind::Counter => metrics::describe_counter!(m.name, m.help),
                Kind::Gauge => metrics::describe_gauge!(m.name, m.help),
                Kind::Histogram => metrics::describe_histogram!(m.name, m.help),
            }
        }
        metrics::gauge!(catalog::RUN_START_TIME_SECONDS).set(unix_seconds(SystemTime::now()));
        metrics::counter!(catalog::COMMITS_TOTAL).absolute(0);
        Ok(Telemetry {
            inner: Arc::new(Inner {
                handle,
                started: Instant::now(),
                finished: AtomicBool::new(false),
                final_scrapes: AtomicU64::new(0),
            }),
        })
    }

    /// Records how the run ended: `pipe_run_outcome` (1 for `outcome`, one of
    /// [`catalog::OUTCOMES`], 0 for the others), its end time and duration, and its success
    /// time when it succeeded. The values are final from here on.
    pub fn finish(&self, outcome: &str) {
        let now = unix_seconds(SystemTime::now());
        for o in catalog::OUTCOMES {
            metrics::gauge!(catalog::RUN_OUTCOME, "outcome" => o).set(if o == outcome { 1.0 } else { 0.0 });
        }
        metrics::gauge!(catalog::RUN_END_TIME_SECONDS).set(now);
        metrics::gauge!(catalog::RUN_DURATION_SECONDS).set(self.inner.started.elapsed().as_secs_f64());
        if outcome == "success" {
            metrics::gauge!(catalog::RUN_SUCCESS_TIME_SECONDS).set(now);
        }
        self.inner.finished.store(true, Ordering::SeqCst);
    }

    /// The metrics in the Prometheus text format (0.0.4), with the run's duration (while it
    /// runs) and the watermarks' ages brought up to now.
    pub fn render(&self) -> String {
        let finished = self.inner.finished.load(Ordering::SeqCst);
        if !finished {
            metrics::gauge!(catalog::RUN_DURATION_SECONDS).set(self.inner.started.elapsed().as_secs_f64());
        }
        let now = unix_seconds(SystemTime::now());
        for (account, at) in WATERMARKS.lock().expect("watermarks").iter() {
            let age = (now - at).max(0.0);
            if account.is_empty() {
                metrics::gauge!(catalog::WATERMARK_AGE_SECONDS).set(age);
            } else {
                metrics::gauge!(catalog::WATERMARK_AGE_SECONDS, "account" => account.clone()).set(age);
            }
        }
        self.inner.handle.render()
    }

    /// [`Self::render`] for a scraper: counts the scrapes that read the final values.
    fn scrape(&self) -> String {
        let final_values = self.inner.finished.load(Ordering::SeqCst);
        let text = self.render();
        if final_values {
            self.inner.final_scrapes.fetch_add(1, Ordering::SeqCst);
        }
        text
    }

    /// Scrapes that read the final values (began after [`Self::finish`]).
    fn final_scrapes(&self) -> u64 {
        self.inner.final_scrapes.load(Ordering::SeqCst)
    }

    /// Keeps the recorder's histogram storage drained between renders (a long webhook run).
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

/// `n` rows of `stream` written to the sinks.
pub fn record_rows(stream: &str, n: u64) {
    metrics::counter!(catalog::ROWS_WRITTEN_TOTAL, "stream" => stream.to_string()).increment(n);
}

/// One dead letter of `stream` written, for `reason` (bounded, see the module docs).
pub fn record_dead_letter(stream: &str, reason: &str) {
    let reason = bounded_reason(reason);
    metrics::counter!(catalog::DEAD_LETTERS_TOTAL, "stream" => stream.to_string(), "reason" => reason).increment(1);
}

/// `reason` as a label value: itself when it is a snake_case word of at most 64 characters
/// among the first [`MAX_REASONS`] distinct ones, else `other`.
pub fn bounded_reason(reason: &str) -> String {
    let word = !reason.is_empty()
        && reason.len() <= 64
        && reason.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !word {
        return "other".into();
    }
    let mut seen = REASONS.lock().expect("reasons");
    if seen.contains(reason) || (seen.len() < MAX_REASONS && seen.insert(reason.to_string())) {
        reason.to_string()
    } else {
        "other".into()
    }
}

/// One checkpoint committed in `took`.
pub fn record_commit(took: Duration) {
    metrics::counter!(catalog::COMMITS_TOTAL).increment(1);
    metrics::histogram!(catalog::COMMIT_DURATION_SECONDS).record(took.as_secs_f64());
}

/// What `sink` has published so far (its own running totals).
pub fn record_sink_totals(sink: &str, files: u64, bytes: u64) {
    metrics::counter!(catalog::FILES_PUBLISHED_TOTAL, "sink" => sink.to_string()).absolute(files);
    metrics::counter!(catalog::BYTES_PUBLISHED_TOTAL, "sink" => sink.to_string()).absolute(bytes);
}

/// The newest watermark of a committed `state`: its top-level `watermark` (RFC 3339, or
/// microseconds since the epoch), or with accounts (`{"accounts": {id: state}}`) each
/// account's. Sources without one (a webhook listener) record nothing.
pub fn record_committed_state(state: &Value) {
    let mut found = Vec::new();
    match state.get("accounts").and_then(Value::as_object) {
        Some(accounts) => {
            for (id, s) in accounts {
                if let Some(at) = watermark_seconds(s) {
                    found.push((id.clone(), at));
                }
            }
        }
        None => found.extend(watermark_seconds(state).map(|at| (String::new(), at))),
    }
    let mut marks = WATERMARKS.lock().expect("watermarks");
    for (account, at) in found {
        if account.is_empty() {
            metrics::gauge!(catalog::WATERMARK_TIMESTAMP_SECONDS).set(at);
        } else {
            metrics::gauge!(catalog::WATERMARK_TIMESTAMP_SECONDS, "account" => account.clone()).set(at);
        }
        marks.insert(account, at);
    }
}

/// A state's top-level `watermark` as Unix seconds.
fn watermark_seconds(state: &Value) -> Option<f64> {
    let micros = match state.get("watermark")? {
        Value::String(s) => pipe_plugin_sdk::time::parse_timestamp_micros(s)?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    Some(micros as f64 / 1e6)
}

/// What a library source counted since the last call (the C ABI's totals carry no status).
pub fn record_library_counters(plugin: &str, requests: u64, retries: u64) {
    use pipe_plugin_sdk::metrics as sdk;
    if requests > 0 {
        metrics::counter!(sdk::HTTP_REQUESTS_TOTAL, "vendor" => plugin.to_string(), "status_class" => "unknown")
            .increment(requests);
    }
    if retries > 0 {
        metrics::counter!(sdk::HTTP_RETRIES_TOTAL, "vendor" => plugin.to_string()).increment(retries);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reasons_are_bounded_words() {
        assert_eq!(bounded_reason("hmac_mismatch"), "hmac_mismatch");
        assert_eq!(bounded_reason("Conversation 123 failed"), "other");
        assert_eq!(bounded_reason(&"x".repeat(65)), "other");
        assert_eq!(bounded_reason(""), "other");
        for i in 0..(2 * MAX_REASONS) {
            bounded_reason(&format!("r{i}"));
        }
        assert!(REASONS.lock().unwrap().len() <= MAX_REASONS);
        assert_eq!(bounded_reason("never_seen_before_reason"), "other");
    }

    #[test]
    fn watermarks_are_read_as_rfc3339_or_micros() {
        assert_eq!(watermark_seconds(&json!({"watermark": "2026-01-01T00:00:00Z"})), Some(1_767_225_600.0));
        assert_eq!(watermark_seconds(&json!({"watermark": 1_767_225_600_000_000i64})), Some(1_767_225_600.0));
        assert_eq!(watermark_seconds(&json!({"watermark": null})), None);
        assert_eq!(watermark_seconds(&json!({"seq": 3})), None);
    }

    #[test]
    fn every_catalog_name_follows_the_conventions() {
        let mut names = BTreeSet::new();
        for m in CATALOG {
            assert!(names.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("pipe_"), "{}", m.name);
            assert_eq!(m.kind == Kind::Counter, m.name.ends_with("_total"), "{}", m.name);
            if m.kind == Kind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(!m.labels.contains(&"pipeline"), "{}: pipeline is global", m.name);
        }
    }
}
