//! The checkpoint coordinator: drives the sinks with the events that leave the last stage, and
//! turns the source's checkpoints into commits (docs/design.md §2, §5).
//!
//! The commit lifecycle of one checkpoint:
//!
//! ```text
//!   source emits Checkpoint{state}        (everything it emitted before is covered by `state`)
//!          │  travels through every transform, each flushing first (a barrier)
//!          ▼
//!   pending = state ──── commit_interval not up yet ──► keep writing; a newer checkpoint
//!          │                                            replaces `pending`
//!          │ interval up (or End, or a quiet source whose interval ran out)
//!          ▼
//!   ┌─ commit ─────────────────────────────────────────────────────────────┐
//!   │ 1. sink.commit(checkpoint) for every sink, in order   durable files  │
//!   │ 2. dead-letter files fsynced                           durable       │
//!   │ 3. state.save(state)   only after 1 and 2 succeeded    durable state │
//!   │ 4. control.committed ◄ state   a service source may now acknowledge  │
//!   │                                upstream what `state` covers          │
//!   └──────────────────────────────────────────────────────────────────────┘
//!          │ any step fails
//!          ▼
//!   run fails: every sink aborts (temporary files removed); the saved state keeps the
//!   previous checkpoint, so the next run re-fetches what was not committed (at-least-once)
//! ```
//!
//! Every step is also counted in the run's Prometheus metrics (`crate::telemetry`): rows per
//! stream and dead letters per reason as they are written, each commit and its duration, what
//! each sink has published, and the committed state's watermark.
//!
//! A source that ends without a last checkpoint still has its output committed (steps 1–2),
//! but there is no state to save. Dead letters are written as they reach the sinks and
//! classified by kind for the outcome ([`RunReport::note_dead_letter`]).
//!
//! Held back: batches and dead letters that arrive after the newest checkpoint are kept here
//! until the next checkpoint (or `End`) covers them, and only then written to the sinks. So
//! whatever the sinks hold is covered by a checkpoint, and an interrupted run can commit
//! exactly what its last checkpoint covers. A source that checkpoints rarely would make this
//! tail grow without bound: past [`HOLD_LIMIT_BYTES`] it is written through, and until the
//! next checkpoint an interrupt may then commit rows the saved state does not cover (the next
//! run fetches them again: at-least-once, never a loss).
//!
//! Cadence: a source whose [`Source::commit_cadence`] is [`CommitCadence::Prompt`] (a webhook
//! listener: each POST waits for its commit) in a pipeline that leaves `commit_interval_seconds`
//! at its default is committed as soon as a checkpoint is pending and no further event is
//! waiting in the channel; checkpoints that arrive while a commit runs are committed together
//! by the next one. Every other source is committed at most every `commit_interval_seconds`.
//!
//! Signals (SIGINT, SIGTERM):
//!
//! * a service source (`Source::stops_gracefully`) is asked to stop through
//!   `Control::shutdown`: it checkpoints and ends, and that checkpoint is committed; the run
//!   ends as usual;
//! * a batch run stops fetching (the source and transform tasks are stopped), takes the events
//!   already on their way, commits every sink up to the newest checkpoint the source emitted,
//!   saves that state and ends interrupted (exit 130, [`RunReport::interrupted`]); what came
//!   after that checkpoint was held back and is dropped, to be fetched again by the next run;
//! * a second signal, of either kind, fails the run at once (exit 1): nothing after the last
//!   completed commit is committed.

use std::time::{Duration, Instant};

use pipe_plugin_sdk::{Checkpoint, CommitCadence, Event, Source, SourceControl};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{DEFAULT_COMMIT_INTERVAL, Pipeline};
use crate::runtime::dead_letter::DeadLetterWriter;
use crate::runtime::report::RunReport;
use crate::runtime::signals::Signals;
use crate::runtime::topology::{Item, Running, SinkStage};
use crate::state;
use crate::telemetry;

/// The engine's side of [`SourceControl`].
pub struct Control {
    /// The source honours `shutdown` (see `Source::stops_gracefully`).
    graceful: bool,
    /// Cancelled on the first signal when the source stops gracefully.
    shutdown: CancellationToken,
    /// Sent the saved state after every commit.
    committed: watch::Sender<Option<serde_json::Value>>,
    /// What the source asked for (see `Source::commit_cadence`).
    cadence: CommitCadence,
}

impl Control {
    /// Hands a freshly opened `source` its [`SourceControl`] (before its first event) and keeps
    /// the engine's side.
    pub fn attach(source: &mut dyn Source) -> Control {
        let control = Control {
            graceful: source.stops_gracefully(),
            shutdown: CancellationToken::new(),
            committed: watch::channel(None).0,
            cadence: source.commit_cadence(),
        };
        source.attach_control(SourceControl {
            shutdown: control.shutdown.clone(),
            committed: control.committed.subscribe(),
        });
        control
    }
}

/// How many bytes (Arrow memory) of events after the newest checkpoint are held back from the
/// sinks before they are written through (see the [module docs](self)).
pub const HOLD_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// How long an interrupted run waits for the events already on their way (the stopped tasks
/// drop their channels at once; this only bounds a stage stuck outside an await point).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Drives the sinks and commits checkpoints. See the [module docs](self).
pub struct Coordinator {
    sinks: Vec<SinkStage>,
    dead_letters: DeadLetterWriter,
    state: state::Session,
    control: Control,
    /// Minimum time between two commits (`commit_interval_seconds`).
    commit_interval: Duration,
    /// Commit as soon as a checkpoint is pending and no event is waiting (see the module docs).
    prompt: bool,
    /// The `stage` of a source's dead letter that names none.
    source_name: &'static str,
    report: RunReport,
    /// Events after the newest checkpoint, not written to the sinks yet.
    held: Vec<Event>,
    /// Their Arrow memory size.
    held_bytes: usize,
    /// The held events outgrew [`HOLD_LIMIT_BYTES`]: events go straight to the sinks until the
    /// next checkpoint.
    write_through: bool,
    /// The sinks were written to since their last commit.
    uncommitted: bool,
}

/// What woke the coordinator up.
enum Wake {
    Item(Option<Item>),
    Commit,
    Signal(&'static str),
}

impl Coordinator {
    /// A coordinator for `p`'s sinks (open, in pipeline order), saving to `state`, writing dead
    /// letters to `p.dead_letter_dir`, filling `report`.
    pub fn new(
        p: &Pipeline,
        sinks: Vec<SinkStage>,
        state: state::Session,
        control: Control,
        report: RunReport,
    ) -> Self {
        // A service source commits promptly unless the pipeline sets an interval itself.
        let prompt = control.cadence == CommitCadence::Prompt && p.commit_interval.is_none();
        Coordinator {
            prompt,
            sinks,
            dead_letters: DeadLetterWriter::new(p.dead_letter_dir.clone()),
            state,
            control,
            commit_interval: p.commit_interval.unwrap_or(DEFAULT_COMMIT_INTERVAL),
            source_name: p.source.descriptor.name,
            report,
            held: Vec::new(),
            held_bytes: 0,
            write_through: false,
            uncommitted: false,
        }
    }

    /// Writes every event of `running` until `End`, committing as the [module docs](self)
    /// say. An interrupted batch run returns `Ok` with [`RunReport::interrupted`] set, after
    /// committing up to the newest checkpoint.
    ///
    /// Errors: a stage failed (its error, with the transform's name), a sink's write or commit
    /// failed (with the sink's name), the state or a dead letter could not be saved, a second
    /// signal (or a first one a service source cannot take) interrupted the run, or the channel
    /// closed without `End` (a stage panicked). The caller then calls [`Self::abort`].
    pub async fn drive(&mut self, running: &mut Running) -> anyhow::Result<()> {
        // The newest checkpoint not yet committed; commits are batched by `commit_interval`.
        let mut pending: Option<Checkpoint> = None;
        let mut last_commit = Instant::now();
        let mut signals = Signals::new();
        loop {
            // A checkpoint waiting for its interval is committed when the interval is up even if
            // the source goes quiet (a webhook listener waits for its acknowledgement).
            let commit_due = tokio::time::Instant::from_std(last_commit + self.commit_interval);
            let wake = tokio::select! {
                // Signals first, so a busy pipeline cannot starve them; then events: a prompt
                // commit waits until nothing more is ready, so the checkpoints of concurrent
                // work share one commit.
                biased;
                signal = signals.recv() => Wake::Signal(signal),
                item = running.events.recv() => Wake::Item(item),
                _ = std::future::ready(()), if self.prompt && pending.is_some() => Wake::Commit,
                _ = tokio::time::sleep_until(commit_due), if pending.is_some() => Wake::Commit,
            };
            let item = match wake {
                Wake::Item(item) => item,
                Wake::Commit => {
                    self.commit_checkpoint(pending.take()).await?;
                    last_commit = Instant::now();
                    continue;
                }
                Wake::Signal(signal) if self.control.graceful => {
                    if self.control.shutdown.is_cancelled() {
                        anyhow::bail!("interrupted ({signal}); nothing after the last checkpoint was committed")
                    }
                    // The source stops taking work, checkpoints and ends; a second signal aborts.
                    tracing::info!("{signal}: stopping (the source flushes and the last checkpoint is committed)");
                    self.control.shutdown.cancel();
                    continue;
                }
                Wake::Signal(signal) => return self.interrupt(signal, running, &mut signals, pending).await,
            };
            let event = match item {
                Some(Ok(ev)) => ev,
                Some(Err(e)) => return Err(anyhow::anyhow!("{e}")),
                None => anyhow::bail!("the pipeline stopped without an end event (a stage panicked?)"),
            };
            match event {
                Event::Checkpoint(cp) => {
                    self.release_held().await?;
                    pending = Some(cp);
                    if !self.prompt && last_commit.elapsed() >= self.commit_interval {
                        self.commit_checkpoint(pending.take()).await?;
                        last_commit = Instant::now();
                    }
                }
                Event::End => {
                    self.release_held().await?;
                    if pending.is_some() {
                        self.commit_checkpoint(pending.take()).await?;
                    } else if self.uncommitted {
                        // The source ended without a final checkpoint: make the output durable, but
                        // there is no state to advance.
                        self.commit_sinks(&Checkpoint { state: serde_json::Value::Null }).await?;
                    }
                    return self.dead_letters.sync();
                }
                other => self.hold(other).await?,
            }
        }
    }

    /// The first signal of a batch run: stop the source and transforms, take the events already
    /// on their way (up to their newest checkpoint), commit that checkpoint and end. A second
    /// signal meanwhile aborts.
    async fn interrupt(
        &mut self,
        signal: &'static str,
        running: &mut Running,
        signals: &mut Signals,
        mut pending: Option<Checkpoint>,
    ) -> anyhow::Result<()> {
        tracing::warn!(
            "{signal}: stopping; committing what the last checkpoint covers (a second signal aborts at once)"
        );
        self.report.interrupted = Some(signal);
        running.stop();
        let finish = async {
            let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
                // The stopped tasks drop their senders: this ends when the channel is empty.
                while let Some(item) = running.events.recv().await {
                    match item {
                        Ok(Event::Checkpoint(cp)) => {
                            self.release_held().await?;
                            pending = Some(cp);
                        }
                        Ok(Event::End) => self.release_held().await?,
                        Ok(other) => self.hold(other).await?,
                        // A stage that failed after the checkpoint: what it covers still stands.
                        Err(e) => tracing::warn!("after the interrupt: {e}"),
                    }
                }
                anyhow::Ok(())
            })
            .await;
            if drained.is_err() {
                tracing::warn!("a stage did not stop within {} s; committing what arrived", DRAIN_TIMEOUT.as_secs());
            }
            drained.unwrap_or(Ok(()))?;
            // What came after the newest checkpoint is dropped: the next run fetches it again.
            let dropped = self.held.len();
            self.held.clear();
            self.held_bytes = 0;
            if dropped > 0 {
                tracing::info!("{dropped} batch(es) after the last checkpoint left for the next run");
            }
            if pending.is_some() {
                self.commit_checkpoint(pending.take()).await?;
            }
            if self.uncommitted {
                // Written through, and no checkpoint covers it: not committed (fetched again).
                self.abort().await;
            }
            self.dead_letters.sync()
        };
        tokio::select! {
            result = finish => result,
            again = signals.recv() => {
                anyhow::bail!("interrupted again ({again}); nothing after the last completed commit was committed")
            }
        }
    }

    /// Holds a batch or dead letter back until a checkpoint covers it (or writes it through,
    /// see the module docs).
    async fn hold(&mut self, event: Event) -> anyhow::Result<()> {
        if self.write_through {
            return self.apply(event).await;
        }
        if let Event::Batch { batch, .. } = &event {
            self.held_bytes += batch.get_array_memory_size();
        }
        self.held.push(event);
        if self.held_bytes > HOLD_LIMIT_BYTES {
            tracing::debug!("over {HOLD_LIMIT_BYTES} bytes since the last checkpoint: writing through");
            self.release_held().await?;
            self.write_through = true;
        }
        Ok(())
    }

    /// A checkpoint (or `End`) covers the held events: writes them to the sinks.
    async fn release_held(&mut self) -> anyhow::Result<()> {
        self.held_bytes = 0;
        self.write_through = false;
        for event in std::mem::take(&mut self.held) {
            self.apply(event).await?;
        }
        Ok(())
    }

    /// Writes a batch to every sink, or a dead letter to its file.
    async fn apply(&mut self, event: Event) -> anyhow::Result<()> {
        match event {
            Event::Batch { stream, batch } => {
                *self.report.rows.entry(stream.clone()).or_default() += batch.num_rows() as u64;
                telemetry::record_rows(&stream, batch.num_rows() as u64);
                for SinkStage { name, sink } in self.sinks.iter_mut() {
                    sink.write(&stream, &batch).await.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
                }
                self.uncommitted = true;
            }
            Event::DeadLetter(mut dl) => {
                if dl.stage.is_empty() {
                    dl.stage = self.source_name.to_string();
                }
                tracing::warn!(stream = %dl.stream, stage = %dl.stage, reason = %dl.reason, "dead letter: {}", dl.message);
                self.report.note_dead_letter(&dl);
                self.dead_letters.write(&dl)?;
                telemetry::record_dead_letter(&dl.stream, &dl.reason);
            }
            Event::Checkpoint(_) | Event::End => unreachable!("barriers are not held"),
        }
        Ok(())
    }

    /// Commits every sink, then (only then) saves the checkpoint's state and tells the source.
    async fn commit_checkpoint(&mut self, cp: Option<Checkpoint>) -> anyhow::Result<()> {
        let Some(cp) = cp else { return Ok(()) };
        let started = Instant::now();
        self.commit_sinks(&cp).await?;
        self.state.save(&cp.state).await?;
        telemetry::record_commit(started.elapsed());
        telemetry::record_committed_state(&cp.state);
        // Now durable: a service source may acknowledge what this state covers.
        self.control.committed.send_replace(Some(cp.state.clone()));
        self.report.state_after = Some(cp.state);
        self.report.checkpoints += 1;
        Ok(())
    }

    /// Steps 1–2 of a commit: every sink, in order, then the dead-letter files.
    async fn commit_sinks(&mut self, cp: &Checkpoint) -> anyhow::Result<()> {
        for SinkStage { name, sink } in self.sinks.iter_mut() {
            sink.commit(cp).await.map_err(|e| anyhow::anyhow!("{name}: commit failed: {e}"))?;
            let stats = sink.stats();
            telemetry::record_sink_totals(name, stats.files, stats.bytes);
        }
        self.uncommitted = false;
        self.dead_letters.sync()
    }

    /// After a failed [`Self::drive`]: aborts every sink (temporary files removed) and syncs
    /// the dead letters written so far. An abort that fails is logged; the run's own error is
    /// the one reported.
    pub async fn abort(&mut self) {
        if let Err(e) = self.dead_letters.sync() {
            tracing::warn!("{e}");
        }
        for SinkStage { name, sink } in self.sinks.iter_mut() {
            if let Err(abort_err) = sink.abort().await {
                tracing::warn!(sink = %name, "abort failed: {abort_err}");
            }
        }
    }

    /// After a successful [`Self::drive`]: the report, with what each sink committed and the
    /// number of dead letters.
    pub fn finish(self) -> RunReport {
        let mut report = self.report;
        report.sinks = self.sinks.iter().map(|s| (s.name.clone(), s.sink.stats())).collect();
        report.dead_letters = self.dead_letters.count;
        report
    }
}
