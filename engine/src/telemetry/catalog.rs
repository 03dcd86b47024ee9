//! Every metric `pipe run` exports: name, type, labels and meaning. The recorder describes each
//! from here (`# HELP` lines), and the README's "Monitoring" table is checked against it
//! (`tests/tests/docs_contract.rs`), so the two cannot drift.

use pipe_plugin_sdk::metrics as sdk;

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up during a run (restarts at 0 with the next process).
    Counter,
    /// A value that is set.
    Gauge,
    /// Observations in buckets (`_bucket`, `_sum`, `_count`).
    Histogram,
}

impl Kind {
    /// `counter`, `gauge` or `histogram`, as in a `# TYPE` line.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One exported metric. Every series also carries `pipeline` (and `shard` under `--shard`).
#[derive(Debug, Clone, Copy)]
pub struct MetricInfo {
    /// Its name (`pipe_` prefix, base units, `_total` for counters).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
    /// Its own labels, besides `pipeline` and `shard`.
    pub labels: &'static [&'static str],
    /// What it means (the `# HELP` text and the README's "meaning" column).
    pub help: &'static str,
}

/// `pipe_rows_written_total{stream}`.
pub const ROWS_WRITTEN_TOTAL: &str = "pipe_rows_written_total";
/// `pipe_dead_letters_total{stream, reason}`.
pub const DEAD_LETTERS_TOTAL: &str = "pipe_dead_letters_total";
/// `pipe_commits_total`.
pub const COMMITS_TOTAL: &str = "pipe_commits_total";
/// `pipe_commit_duration_seconds`.
pub const COMMIT_DURATION_SECONDS: &str = "pipe_commit_duration_seconds";
/// `pipe_files_published_total{sink}`.
pub const FILES_PUBLISHED_TOTAL: &str = "pipe_files_published_total";
/// `pipe_bytes_published_total{sink}`.
pub const BYTES_PUBLISHED_TOTAL: &str = "pipe_bytes_published_total";
/// `pipe_run_start_time_seconds`.
pub const RUN_START_TIME_SECONDS: &str = "pipe_run_start_time_seconds";
/// `pipe_run_end_time_seconds`.
pub const RUN_END_TIME_SECONDS: &str = "pipe_run_end_time_seconds";
/// `pipe_run_duration_seconds`.
pub const RUN_DURATION_SECONDS: &str = "pipe_run_duration_seconds";
/// `pipe_run_outcome{outcome}`.
pub const RUN_OUTCOME: &str = "pipe_run_outcome";
/// `pipe_run_success_time_seconds`.
pub const RUN_SUCCESS_TIME_SECONDS: &str = "pipe_run_success_time_seconds";
/// `pipe_watermark_timestamp_seconds{account}`.
pub const WATERMARK_TIMESTAMP_SECONDS: &str = "pipe_watermark_timestamp_seconds";
/// `pipe_watermark_age_seconds{account}`.
pub const WATERMARK_AGE_SECONDS: &str = "pipe_watermark_age_seconds";

/// The values of `pipe_run_outcome`'s `outcome` label: the report's outcomes, and `failed` for
/// a run that stopped on an error (exit 1 or 2).
pub const OUTCOMES: [&str; 5] = ["success", "partial", "dead_letters", "interrupted", "failed"];

/// Every metric, in the README's order.
pub const CATALOG: &[MetricInfo] = &[
    MetricInfo {
        name: RUN_START_TIME_SECONDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Unix time the run started, in seconds.",
    },
    MetricInfo {
        name: RUN_END_TIME_SECONDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Unix time the run ended, in seconds (absent while it runs).",
    },
    MetricInfo {
        name: RUN_DURATION_SECONDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Wall time of the run so far, then of the whole run, in seconds.",
    },
    MetricInfo {
        name: RUN_OUTCOME,
        kind: Kind::Gauge,
        labels: &["outcome"],
        help: "1 for how the run ended (success, partial, dead_letters, interrupted, failed), 0 for the others; absent while it runs.",
    },
    MetricInfo {
        name: RUN_SUCCESS_TIME_SECONDS,
        kind: Kind::Gauge,
        labels: &[],
        help: "Unix time the run ended successfully, in seconds; absent unless it did.",
    },
    MetricInfo {
        name: ROWS_WRITTEN_TOTAL,
        kind: Kind::Counter,
        labels: &["stream"],
        help: "Rows written to the sinks, per stream (the report's rows).",
    },
    MetricInfo {
        name: sdk::HTTP_REQUESTS_TOTAL,
        kind: Kind::Counter,
        labels: &["vendor", "status_class"],
        help: "HTTP requests sent to the vendor, retries included, by answer class (1xx-5xx, error: no answer, unknown: a plugin library).",
    },
    MetricInfo {
        name: sdk::HTTP_RETRIES_TOTAL,
        kind: Kind::Counter,
        labels: &["vendor"],
        help: "Requests retried (429, 5xx, connection errors, truncated or unparsable bodies).",
    },
    MetricInfo {
        name: sdk::RATE_LIMIT_PAUSE_SECONDS,
        kind: Kind::Histogram,
        labels: &["vendor"],
        help: "Pauses of all the source's requests that the vendor asked for (429, Retry-After), in seconds: _count pauses, _sum time paused.",
    },
    MetricInfo {
        name: DEAD_LETTERS_TOTAL,
        kind: Kind::Counter,
        labels: &["stream", "reason"],
        help: "Dead letters written, per stream and reason.",
    },
    MetricInfo {
        name: COMMITS_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Checkpoints committed (every sink committed, then the state saved).",
    },
    MetricInfo {
        name: COMMIT_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &[],
        help: "Time one checkpoint's commit took (sinks, dead letters, state), in seconds.",
    },
    MetricInfo {
        name: FILES_PUBLISHED_TOTAL,
        kind: Kind::Counter,
        labels: &["sink"],
        help: "Files a sink published under their final names.",
    },
    MetricInfo { name: BYTES_PUBLISHED_TOTAL, kind: Kind::Counter, labels: &["sink"], help: "Bytes of those files." },
    MetricInfo {
        name: WATERMARK_TIMESTAMP_SECONDS,
        kind: Kind::Gauge,
        labels: &["account"],
        help: "The newest committed watermark of the source, Unix time in seconds (account: with [[source.accounts]]).",
    },
    MetricInfo {
        name: WATERMARK_AGE_SECONDS,
        kind: Kind::Gauge,
        labels: &["account"],
        help: "Age of that watermark when read, in seconds.",
    },
    MetricInfo {
        name: sdk::DECRYPT_DECRYPTED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Encrypted messages the decrypt transform decrypted.",
    },
    MetricInfo {
        name: sdk::DECRYPT_FAILED_TOTAL,
        kind: Kind::Counter,
        labels: &[],
        help: "Encrypted messages it could not decrypt (each a dead letter; the row stays encrypted).",
    },
    MetricInfo {
        name: sdk::WEBHOOK_REQUESTS_TOTAL,
        kind: Kind::Counter,
        labels: &["vendor", "code"],
        help: "Requests the webhook listener answered, by HTTP response code.",
    },
    MetricInfo {
        name: sdk::WEBHOOK_ACK_DURATION_SECONDS,
        kind: Kind::Histogram,
        labels: &["vendor"],
        help: "From a webhook POST's arrival to its acknowledgement (200 once a commit covers it), in seconds.",
    },
];

/// Bucket bounds of each histogram, in seconds.
pub fn buckets(name: &str) -> &'static [f64] {
    match name {
        // A commit is a few file renames or object PUTs and one state write.
        COMMIT_DURATION_SECONDS => &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0],
        // Retry-After: from the 1 s floor up to the 60 s cap.
        sdk::RATE_LIMIT_PAUSE_SECONDS => &[0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0],
        // A webhook sender waits for the commit: milliseconds to the ack timeout.
        _ => &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
    }
}
