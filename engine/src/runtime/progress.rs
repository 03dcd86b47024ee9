//! Progress for humans: a live line on a terminal (indicatif), periodic structured log lines
//! otherwise.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pipe_plugin_sdk::Metrics;

/// The run's counters and how they are shown.
pub struct Progress {
    pub metrics: Arc<Metrics>,
    bar: Option<ProgressBar>,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts showing progress: a spinner when stderr is a terminal (and `quiet` is off), else a
    /// log line every 10 seconds.
    pub fn start(quiet: bool) -> Self {
        let metrics = Arc::new(Metrics::default());
        let started = Instant::now();
        if !quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}").expect("valid template"));
            let (m, b) = (metrics.clone(), bar.clone());
            let ticker = tokio::spawn(async move {
                loop {
                    b.set_message(line(&m, started));
                    b.tick();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            Progress { metrics, bar: Some(bar), ticker: Some(ticker) }
        } else {
            let m = metrics.clone();
            let ticker = tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(10));
                every.tick().await;
                loop {
                    every.tick().await;
                    if let Some(wait) = throttled_for(&m) {
                        tracing::info!(resume_in_s = wait.as_secs(), "rate limited by the vendor");
                    }
                    tracing::info!(
                        conversations = Metrics::get(&m.conversations),
                        messages = Metrics::get(&m.messages),
                        requests = Metrics::get(&m.requests),
                        retries = Metrics::get(&m.retries),
                        concurrency = Metrics::get(&m.concurrency),
                        elapsed_s = started.elapsed().as_secs(),
                        "progress"
                    );
                }
            });
            Progress { metrics, bar: None, ticker: Some(ticker) }
        }
    }

    /// Stops the display.
    pub fn finish(&mut self) {
        if let Some(t) = self.ticker.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

fn line(m: &Metrics, started: Instant) -> String {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    let requests = Metrics::get(&m.requests);
    let mut line = format!(
        "{} conversations · {} messages · {} requests ({:.1}/s) · {} retries",
        Metrics::get(&m.conversations),
        Metrics::get(&m.messages),
        requests,
        requests as f64 / secs,
        Metrics::get(&m.retries)
    );
    let concurrency = Metrics::get(&m.concurrency);
    if concurrency > 0 {
        let how = if Metrics::get(&m.concurrency_adaptive) == 1 { "adaptive" } else { "fixed" };
        line.push_str(&format!(" · {concurrency} in flight ({how})"));
    }
    if let Some(wait) = throttled_for(m) {
        line.push_str(&format!(" · rate limited, resuming in {}s", wait.as_secs().max(1)));
    }
    line
}

/// How long the vendor still throttles us, if it does.
fn throttled_for(m: &Metrics) -> Option<Duration> {
    let until = Metrics::get(&m.throttled_until_ms);
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    (until > now).then(|| Duration::from_millis(until - now))
}
