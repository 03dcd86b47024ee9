//! The streaming runtime: source → transforms → sinks over bounded channels, checkpoints as
//! barriers, state persisted only after every sink committed (docs/design.md §2, §5).

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use pipe_plugin_sdk::{
    Checkpoint, Event, Metrics, PluginError, PluginFactory, REASON_INCOMPLETE, REASON_RETRY_BUDGET, Sink, SinkContext,
    SinkStats, Source, SourceContext, SourceControl, Transform, TransformContext, TransformOutput,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Pipeline;
use crate::config::accounts::shard_of;
use crate::runtime::dead_letter::DeadLetterWriter;
use crate::runtime::multi_source::{MultiSource, REASON_ACCOUNT_FAILED};
use crate::runtime::progress::Progress;
use crate::state;

pub mod dead_letter;
pub mod multi_source;
pub mod progress;
pub mod window;

/// Batches in flight between two stages. Small: memory stays flat, a slow sink slows the source.
const CHANNEL_CAPACITY: usize = 4;

/// Options of one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Stop after this many conversations.
    pub limit: Option<u64>,
    /// Ignore the saved state: start as on a first run (the state is replaced at the first
    /// commit).
    pub full_refresh: bool,
    /// `--shard K/N`: run only the accounts whose stable hash falls in shard K of N.
    pub shard: Option<(u32, u32)>,
    /// `--window FROM..TO`: only conversations created in the window, with its own state.
    pub window: Option<crate::runtime::window::Window>,
}

/// What a run did: the end-of-run summary and `--report FILE`.
#[derive(Debug, Default)]
pub struct RunReport {
    pub rows: BTreeMap<String, u64>,
    /// Per sink (`sinks[0] parquet`): files, bytes and rows committed.
    pub sinks: Vec<(String, SinkStats)>,
    pub requests: u64,
    pub retries: u64,
    pub dead_letters: u64,
    pub checkpoints: u64,
    pub elapsed: Duration,
    /// Conversations the source found incomplete (completeness check failed): the run is partial.
    pub incomplete: Vec<String>,
    /// Why the source stopped early (retry budget spent): the run is partial.
    pub stopped_early: Vec<String>,
    /// Source state at the start (`None`: first run or `--full-refresh`) and after the last commit.
    pub state_before: Option<serde_json::Value>,
    pub state_after: Option<serde_json::Value>,
}

impl RunReport {
    /// The report as JSON (`pipe run --report FILE`).
    pub fn to_json(&self, pipeline: &str, outcome: &str) -> serde_json::Value {
        serde_json::json!({
            "pipeline": pipeline,
            "outcome": outcome,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rows": self.rows,
            "sinks": self.sinks.iter().map(|(name, s)| serde_json::json!({"sink": name, "files": s.files, "bytes": s.bytes, "rows": s.rows})).collect::<Vec<_>>(),
            "requests": self.requests,
            "retries": self.retries,
            "checkpoints": self.checkpoints,
            "dead_letters": self.dead_letters,
            "completeness": {"ok": self.incomplete.is_empty() && self.stopped_early.is_empty(), "incomplete_conversations": self.incomplete, "stopped_early": self.stopped_early},
            "state_before": self.state_before,
            "state_after": self.state_after,
        })
    }
}

/// Why a run did not succeed.
#[derive(Debug)]
pub enum RunError {
    /// A plugin refused its configuration when opened (exit 2).
    Config(String),
    /// The run stopped on an error; nothing after the last checkpoint is committed (exit 1).
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Failed(e)
    }
}

type Item = Result<Event, PluginError>;

/// Runs a pipeline to the end. On error every sink is aborted (temporary files removed) and the
/// state keeps the last committed checkpoint.
pub async fn run(p: &Pipeline, opts: &RunOptions, progress: &Progress) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let metrics = progress.metrics.clone();
    let run_id = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &uuid_fragment());
    let windowed;
    let p = match opts.window {
        None => p,
        Some(w) => {
            windowed = crate::runtime::window::apply(p, w).map_err(RunError::Config)?;
            tracing::info!(pipeline = %windowed.name, "backfill window: its state is kept apart from the regular runs'");
            &windowed
        }
    };
    // The accounts this run covers (all, or those of its shard), each with its own state.
    let accounts = match (&p.accounts, opts.shard) {
        (None, None) => None,
        (None, Some(_)) => return Err(RunError::Config(
            "--shard splits the accounts of a pipeline, and this one has a single account (add [[source.accounts]])"
                .into(),
        )),
        (Some(a), None) => Some(a.list.clone()),
        (Some(a), Some((k, n))) => {
            let mine: Vec<_> = a.list.iter().filter(|acc| shard_of(&acc.id, n) == k).cloned().collect();
            tracing::info!(pipeline = %p.name, "shard {k}/{n}: {} of {} accounts ({})", mine.len(), a.list.len(),
                mine.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", "));
            Some(mine)
        }
    };
    let store = state::StateStore::open(&p.state_dir)?;
    let account_ids = accounts.as_ref().map(|list| list.iter().map(|a| a.id.clone()).collect());
    let (mut state_session, prior_state) =
        state::Session::open(store, &p.name, p.source.descriptor.name, account_ids, opts.full_refresh).await?;
    if prior_state.is_some() {
        tracing::info!(pipeline = %p.name, "resuming from the committed state in {}", state_session.describe());
    }

    // Open the source; its streams decide what flows.
    let mut report = RunReport { state_before: prior_state.clone(), ..Default::default() };
    let ctx =
        SourceContext { pipeline: p.name.clone(), state: prior_state, limit: opts.limit, metrics: metrics.clone() };
    let mut source: Box<dyn Source> = match &accounts {
        None => {
            let PluginFactory::Source(open_source) = &p.source.descriptor.factory else {
                unreachable!("checked at load")
            };
            open_source(p.source.config.clone(), ctx).map_err(|e| open_error("source", p.source.descriptor.name, e))?
        }
        Some(list) => {
            let max = p.accounts.as_ref().map_or(1, |a| a.max_concurrent);
            let prior = ctx.state.clone();
            Box::new(
                MultiSource::open(list, max, prior.as_ref(), &ctx)
                    .map_err(|(path, e)| open_error(&path, p.source.descriptor.name, e))?,
            )
        }
    };
    // Service sources (webhook listeners) stop on request and learn what is committed.
    let control = Control {
        graceful: source.stops_gracefully(),
        shutdown: CancellationToken::new(),
        committed: watch::channel(None).0,
    };
    source
        .attach_control(SourceControl { shutdown: control.shutdown.clone(), committed: control.committed.subscribe() });
    let mut streams = source.streams();

    // Transforms in order, each declaring what it does to each stream.
    let mut transforms = Vec::new();
    for spec in &p.transforms {
        let PluginFactory::Transform(open) = &spec.descriptor.factory else { unreachable!("checked at load") };
        let ctx = TransformContext { pipeline: p.name.clone(), metrics: metrics.clone() };
        let t = open(spec.config.clone(), ctx).map_err(|e| open_error(&spec.path, spec.descriptor.name, e))?;
        let mut touched = HashSet::new();
        streams = streams
            .into_iter()
            .map(|s| match t.output_stream(&s) {
                Some(out) => {
                    touched.insert(s.name.clone());
                    out
                }
                None => s,
            })
            .collect();
        transforms.push((spec.descriptor.name, t, touched));
    }

    let mut sinks: Vec<(String, Box<dyn Sink>)> = Vec::new();
    for spec in &p.sinks {
        let PluginFactory::Sink(open) = &spec.descriptor.factory else { unreachable!("checked at load") };
        let ctx = SinkContext { pipeline: p.name.clone(), streams: streams.clone(), run_id: run_id.clone() };
        let sink = open(spec.config.clone(), ctx).map_err(|e| open_error(&spec.path, spec.descriptor.name, e))?;
        sinks.push((format!("{} {}", spec.path, spec.descriptor.name), sink));
    }

    // Wire the stages.
    let (tx, mut rx) = mpsc::channel::<Item>(CHANNEL_CAPACITY);
    let source_task = tokio::spawn(pump_source(source, tx));
    let mut stage_tasks = vec![source_task];
    for (name, t, touched) in transforms {
        let (tx, next_rx) = mpsc::channel::<Item>(CHANNEL_CAPACITY);
        stage_tasks.push(tokio::spawn(pump_transform(name, t, touched, rx, tx)));
        rx = next_rx;
    }

    let mut dead_letters = DeadLetterWriter::new(p.dead_letter_dir.clone());
    let result =
        drive_sinks(p, &mut rx, &mut sinks, &mut dead_letters, &mut report, &mut state_session, &control).await;
    for t in &stage_tasks {
        t.abort();
    }
    if let Err(e) = result {
        for (name, sink) in sinks.iter_mut() {
            if let Err(abort_err) = sink.abort().await {
                tracing::warn!(sink = %name, "abort failed: {abort_err}");
            }
        }
        return Err(RunError::Failed(e));
    }
    report.sinks = sinks.iter().map(|(n, s)| (n.clone(), s.stats())).collect();
    report.requests = Metrics::get(&metrics.requests);
    report.retries = Metrics::get(&metrics.retries);
    report.dead_letters = dead_letters.count;
    report.elapsed = started.elapsed();
    Ok(report)
}

fn open_error(path: &str, plugin: &str, e: PluginError) -> RunError {
    match e {
        PluginError::Config { path: key, message } => {
            let full = if key.is_empty() { path.to_string() } else { format!("{path}.{key}") };
            RunError::Config(format!("{full}: {message}"))
        }
        other => RunError::Failed(anyhow::anyhow!("cannot open {path} (`{plugin}`): {other}")),
    }
}

fn uuid_fragment() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

async fn pump_source(mut source: Box<dyn Source>, tx: mpsc::Sender<Item>) {
    loop {
        let item = source.next().await;
        let done = matches!(item, Ok(Event::End) | Err(_));
        if tx.send(item).await.is_err() || done {
            return;
        }
    }
}

async fn pump_transform(
    name: &'static str,
    mut t: Box<dyn Transform>,
    touched: HashSet<String>,
    mut rx: mpsc::Receiver<Item>,
    tx: mpsc::Sender<Item>,
) {
    let stage = |e: PluginError| PluginError::Other(format!("transform `{name}`: {e}"));
    let emit = |stream: String, out: TransformOutput| match out {
        TransformOutput::Batch(batch) => Event::Batch { stream, batch },
        TransformOutput::DeadLetter(mut dl) => {
            if dl.stage.is_empty() {
                dl.stage = name.to_string();
            }
            Event::DeadLetter(dl)
        }
    };
    while let Some(item) = rx.recv().await {
        let produced: Result<Vec<Event>, PluginError> = match item {
            Ok(Event::Batch { stream, batch }) if touched.contains(&stream) => t
                .transform(&stream, batch)
                .await
                .map(|outs| outs.into_iter().map(|o| emit(stream.clone(), o)).collect())
                .map_err(stage),
            Ok(barrier @ (Event::Checkpoint(_) | Event::End)) => t
                .flush()
                .await
                .map(|outs| outs.into_iter().map(|(s, o)| emit(s, o)).chain(std::iter::once(barrier)).collect())
                .map_err(stage),
            Ok(other) => Ok(vec![other]),
            Err(e) => Err(e),
        };
        match produced {
            Ok(events) => {
                for ev in events {
                    let end = matches!(ev, Event::End);
                    if tx.send(Ok(ev)).await.is_err() || end {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        }
    }
}

/// The engine's side of [`SourceControl`].
struct Control {
    /// The source honours `shutdown` (see `Source::stops_gracefully`).
    graceful: bool,
    shutdown: CancellationToken,
    /// Sent the saved state after every commit.
    committed: watch::Sender<Option<serde_json::Value>>,
}

/// Resolves on the next SIGINT (Ctrl-C) or SIGTERM. The handlers are installed once, so a
/// signal that arrives while a commit runs is not lost.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let (Some(int), Some(term)) = (self.int.as_mut(), self.term.as_mut()) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

async fn drive_sinks(
    p: &Pipeline,
    rx: &mut mpsc::Receiver<Item>,
    sinks: &mut [(String, Box<dyn Sink>)],
    dead_letters: &mut DeadLetterWriter,
    report: &mut RunReport,
    state: &mut state::Session,
    control: &Control,
) -> anyhow::Result<()> {
    let mut uncommitted = false;
    // The newest checkpoint not yet committed; commits are batched by `commit_interval`.
    let mut pending: Option<Checkpoint> = None;
    let mut last_commit = Instant::now();
    let mut signals = Signals::new();
    loop {
        // A checkpoint waiting for its interval is committed when the interval is up even if
        // the source goes quiet (a webhook listener waits for its acknowledgement).
        let commit_due = tokio::time::Instant::from_std(last_commit + p.commit_interval);
        let item = tokio::select! {
            item = rx.recv() => item,
            _ = tokio::time::sleep_until(commit_due), if pending.is_some() => {
                commit_checkpoint(sinks, dead_letters, report, state, pending.take(), control).await?;
                last_commit = Instant::now();
                uncommitted = false;
                continue;
            }
            signal = signals.recv() => {
                if control.graceful && !control.shutdown.is_cancelled() {
                    // The source stops taking work, checkpoints and ends; a second signal aborts.
                    tracing::info!("{signal}: stopping (the source flushes and the last checkpoint is committed)");
                    control.shutdown.cancel();
                    continue;
                }
                anyhow::bail!("interrupted ({signal}); nothing after the last checkpoint was committed")
            }
        };
        let event = match item {
            Some(Ok(ev)) => ev,
            Some(Err(e)) => return Err(anyhow::anyhow!("{e}")),
            None => anyhow::bail!("the pipeline stopped without an end event (a stage panicked?)"),
        };
        match event {
            Event::Batch { stream, batch } => {
                *report.rows.entry(stream.clone()).or_default() += batch.num_rows() as u64;
                for (name, sink) in sinks.iter_mut() {
                    sink.write(&stream, &batch).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                }
                uncommitted = true;
            }
            Event::DeadLetter(mut dl) => {
                if dl.stage.is_empty() {
                    dl.stage = p.source.descriptor.name.to_string();
                }
                tracing::warn!(stream = %dl.stream, stage = %dl.stage, reason = %dl.reason, "dead letter: {}", dl.message);
                if dl.reason == REASON_INCOMPLETE {
                    let id = dl.key.get("conversation_id").and_then(|v| v.as_str()).unwrap_or("?");
                    report.incomplete.push(id.to_string());
                } else if dl.reason == REASON_RETRY_BUDGET || dl.reason == REASON_ACCOUNT_FAILED {
                    report.stopped_early.push(dl.message.clone());
                }
                dead_letters.write(&dl)?;
            }
            Event::Checkpoint(cp) => {
                pending = Some(cp);
                if last_commit.elapsed() >= p.commit_interval {
                    commit_checkpoint(sinks, dead_letters, report, state, pending.take(), control).await?;
                    last_commit = Instant::now();
                    uncommitted = false;
                }
            }
            Event::End => {
                if pending.is_some() {
                    commit_checkpoint(sinks, dead_letters, report, state, pending.take(), control).await?;
                } else if uncommitted {
                    // The source ended without a final checkpoint: make the output durable, but
                    // there is no state to advance.
                    commit(sinks, dead_letters, &Checkpoint { state: serde_json::Value::Null }).await?;
                }
                return Ok(());
            }
        }
    }
}

/// Commits every sink, then (only then) saves the checkpoint's state.
async fn commit_checkpoint(
    sinks: &mut [(String, Box<dyn Sink>)],
    dead_letters: &mut DeadLetterWriter,
    report: &mut RunReport,
    state: &mut state::Session,
    cp: Option<Checkpoint>,
    control: &Control,
) -> anyhow::Result<()> {
    let Some(cp) = cp else { return Ok(()) };
    commit(sinks, dead_letters, &cp).await?;
    state.save(&cp.state).await?;
    // Now durable: a service source may acknowledge what this state covers.
    control.committed.send_replace(Some(cp.state.clone()));
    report.state_after = Some(cp.state);
    report.checkpoints += 1;
    Ok(())
}

async fn commit(
    sinks: &mut [(String, Box<dyn Sink>)],
    dead_letters: &mut DeadLetterWriter,
    cp: &Checkpoint,
) -> anyhow::Result<()> {
    for (name, sink) in sinks.iter_mut() {
        sink.commit(cp).await.map_err(|e| anyhow::anyhow!("{name}: commit failed: {e}"))?;
    }
    dead_letters.sync()
}
