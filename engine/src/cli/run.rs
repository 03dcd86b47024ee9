//! `pipe run FILE`: run a pipeline, print its summary, map its outcome to an exit code, write
//! the `--report` JSON and, when asked, the Prometheus metrics (`--metrics-addr`,
//! `--metrics-file`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::errors::config_errors;
use crate::config::{self, Pipeline, env_var};
use crate::exit::Exit;
use crate::registry::Registry;
use crate::runtime::progress::Progress;
use crate::runtime::{self, Outcome, RunError, RunOptions, RunReport};
use crate::telemetry::{self, Telemetry, serve::Server};

/// `--metrics-addr`, `--metrics-linger` and `--metrics-file` of `pipe run`.
#[derive(Debug, Default)]
pub struct MetricsOptions {
    /// Serve `/metrics` on this `HOST:PORT` while the run lasts.
    pub addr: Option<String>,
    /// Write the final values here at the end (atomically).
    pub file: Option<PathBuf>,
    /// After the run, serve until one scrape has read the final values, at most this long.
    pub linger: Duration,
}

/// Loads the pipeline `file` (every configuration problem printed, exit 2) and runs it with
/// [`run_pipeline`], with Prometheus metrics when `metrics` asks for them: served while the
/// run lasts and written to a file at its end (`crate::telemetry`).
///
/// Exit 2 also when `--metrics-addr` cannot be bound; exit 1 when the metrics file cannot be
/// written (the run's own outcome is still in the file's `pipe_run_outcome` when it can).
pub async fn command(
    file: &Path,
    opts: &RunOptions,
    report_file: Option<&Path>,
    metrics: &MetricsOptions,
    quiet: bool,
    registry: &Registry,
) -> Exit {
    let p = match config::load_file_all(file, registry, &env_var) {
        Ok(p) => p,
        Err(errors) => return config_errors(errors),
    };
    if metrics.addr.is_none() && metrics.file.is_none() {
        return run_pipeline(&p, opts, quiet, false, report_file).await;
    }
    let telemetry = match Telemetry::install(&p.name, opts.shard) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Failed;
        }
    };
    let server = match &metrics.addr {
        Some(addr) => match Server::start(addr, telemetry.clone()).await {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("error: {e}");
                return Exit::Config;
            }
        },
        None => None,
    };
    let mut exit = run_pipeline(&p, opts, quiet, false, report_file).await;
    telemetry.finish(outcome_label(exit));
    if let Some(path) = &metrics.file
        && let Err(e) = telemetry::file::write_atomically(path, &telemetry.render())
    {
        eprintln!("error: {e}");
        exit = Exit::Failed;
    }
    if let Some(server) = server {
        server.linger(metrics.linger).await;
    }
    exit
}

/// The `outcome` label of `pipe_run_outcome` for how the run exits.
fn outcome_label(exit: Exit) -> &'static str {
    match exit {
        Exit::Ok => "success",
        Exit::Partial => "partial",
        Exit::DeadLetters => "dead_letters",
        Exit::Interrupted => "interrupted",
        Exit::Failed | Exit::Config => "failed",
    }
}

/// Runs `p` with a progress display, prints the summary (to stdout when `summary_to_stdout`,
/// else stderr unless `quiet`) and every reason the run is partial, writes the report JSON to
/// `report_file`, and returns the exit code.
pub async fn run_pipeline(
    p: &Pipeline,
    opts: &RunOptions,
    quiet: bool,
    summary_to_stdout: bool,
    report_file: Option<&Path>,
) -> Exit {
    let mut progress = Progress::start(quiet);
    tracing::info!(pipeline = %p.name, source = p.source.descriptor.name, "run started");
    let result = runtime::run(p, opts, &progress).await;
    progress.finish();
    match result {
        Ok(report) => {
            let text = summary(p, &report);
            if summary_to_stdout {
                println!("{text}")
            } else if !quiet {
                eprintln!("{text}")
            }
            if report.dead_letters > 0 && !p.fail_on_dead_letters && !quiet {
                eprintln!("{}", dead_letter_warning(p, report.dead_letters));
            }
            let outcome = report.outcome(p.fail_on_dead_letters);
            explain(p, &report, outcome);
            if let Some(path) = report_file {
                let json = serde_json::to_string_pretty(&report.to_json(&p.name, outcome)).expect("report serializes");
                if let Err(e) = std::fs::write(path, json) {
                    eprintln!("error: cannot write the run report to {}: {e}", path.display());
                    return Exit::Failed;
                }
            }
            Exit::from(outcome)
        }
        Err(RunError::Config(msg)) => {
            eprintln!("error: {msg}");
            Exit::Config
        }
        Err(RunError::Busy(msg)) => {
            eprintln!("error: {msg}");
            Exit::Failed
        }
        Err(RunError::Failed(e)) => {
            eprintln!("error: run of `{}` failed: {e:#}", p.name);
            eprintln!("       nothing after the last checkpoint was committed; the next run resumes from it");
            Exit::Failed
        }
    }
}

/// Says on stderr why a finished run did not succeed: what stopped early, which conversations
/// arrived incomplete, or the dead letters that fail it.
fn explain(p: &Pipeline, report: &RunReport, outcome: Outcome) {
    if !report.unexpected_shape.is_empty() {
        // Not missing data (the rows are exported with documented fallbacks), but the vendor
        // sent something the mapping does not know: say so whatever the outcome.
        eprintln!(
            "warning: {} record(s) of a shape the mapping does not know (a missing field or an unknown value), exported with the documented fallbacks; raw payloads in {}: {}",
            report.unexpected_shape.len(),
            p.dead_letter_dir.display(),
            first_few(&report.unexpected_shape)
        );
    }
    match outcome {
        Outcome::Success => {}
        Outcome::Partial => {
            for why in &report.stopped_early {
                eprintln!("error: partial: {why}");
            }
            if !report.stopped_early.is_empty() {
                eprintln!("       what arrived is committed; the next run continues from the checkpoint");
            }
            if !report.incomplete.is_empty() {
                eprintln!(
                    "error: partial: {} conversation(s) arrived incomplete (fewer messages than the vendor reports): {}",
                    report.incomplete.len(),
                    first_few(&report.incomplete)
                );
            }
            if !report.rejected.is_empty() {
                eprintln!(
                    "error: partial: {} record(s) not exported as the vendor sent them (no id, or a time that is unreadable, out of range or far in the future; raw payloads in {}): {}",
                    report.rejected.len(),
                    p.dead_letter_dir.display(),
                    first_few(&report.rejected)
                );
            }
        }
        Outcome::Interrupted => eprintln!(
            "error: interrupted ({}): committed up to the last checkpoint ({} commit(s) in this run); the next run resumes from it",
            report.interrupted.unwrap_or("signal"),
            report.checkpoints
        ),
        Outcome::DeadLetters => eprintln!(
            "error: {} dead letter(s) in {} and fail_on_dead_letters = true",
            report.dead_letters,
            p.dead_letter_dir.display()
        ),
    }
}

/// The first 20 of `names`, comma-separated, with `...` when there are more.
fn first_few(names: &[String]) -> String {
    let shown: Vec<&str> = names.iter().take(20).map(String::as_str).collect();
    format!("{}{}", shown.join(", "), if names.len() > shown.len() { ", ..." } else { "" })
}

/// The warning for a run that produced dead letters but does not fail on them. Names the
/// count and the directory; without a `[dead_letter]` table the records went to the default
/// directory, which the user never chose, so say how to choose one.
fn dead_letter_warning(p: &Pipeline, count: u64) -> String {
    let dir = p.dead_letter_dir.display();
    let mut text = format!(
        "warning: {count} dead letter(s): records that could not be processed (each line says why; partial runs name those missing from the output); records in {dir}"
    );
    // The config fills this exact default when the pipeline has no [dead_letter] table.
    if p.dead_letter_dir == Path::new(".pipe/dead_letter").join(&p.name) {
        text.push_str("\n         (no [dead_letter] table in the pipeline: add `[dead_letter] path = \"...\"` to choose where they go)");
    }
    text
}

/// The end-of-run summary: rows per stream, files, bytes, requests, retries, dead letters,
/// elapsed.
fn summary(p: &Pipeline, r: &RunReport) -> String {
    let mut out = format!("pipeline `{}` finished in {:.1} s\n", p.name, r.elapsed.as_secs_f64());
    for (stream, rows) in &r.rows {
        out.push_str(&format!("  {stream:<14} {rows:>10} rows\n"));
    }
    for (sink, s) in &r.sinks {
        if s.files > 0 {
            out.push_str(&format!("  {sink:<24} {} files, {:.1} MiB\n", s.files, s.bytes as f64 / (1024.0 * 1024.0)));
        }
    }
    out.push_str(&format!(
        "  requests {} · retries {} · checkpoints {} · dead letters {}",
        r.requests, r.retries, r.checkpoints, r.dead_letters
    ));
    if !r.unexpected_shape.is_empty() {
        out.push_str(&format!(" ({} unexpected shape)", r.unexpected_shape.len()));
    }
    if r.dead_letters > 0 {
        out.push_str(&format!(" (in {})", p.dead_letter_dir.display()));
    }
    if r.concurrency.last > 0 {
        let how = if r.concurrency.adaptive { "adaptive" } else { "fixed" };
        out.push_str(&format!("\n  concurrency {how}, mean {:.1}", r.concurrency.mean));
    }
    out
}
