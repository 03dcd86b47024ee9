//! The conformance kit: checks that a plugin behaves like the ones `pipe` ships.
//!
//! It works on a [`PluginDescriptor`], so the same checks run
//!
//! * from a plugin's own `cargo test`, on the descriptor function it exports
//!   (`conformance::check(&my_plugin::descriptor(), &Options::with_config(cfg)).await`), and
//! * through `pipe plugin check LIB [--config FILE]`, on the descriptors the engine builds for
//!   the plugins of a loaded library (every call then crosses the C ABI).
//!
//! | check | kinds | what must hold |
//! |---|---|---|
//! | `descriptor` | all | a name, a version, a config JSON Schema that is an object schema |
//! | `config_errors` | all | a wrong config is refused with a structured [`PluginError::Config`] (key path + message), an unknown key too when the schema forbids unknown keys; the given config is accepted |
//! | `schema` | source, transform | every emitted batch has exactly the schema declared for its stream |
//! | `commit` | sink | opened with the canonical streams, it takes an empty batch of each, commits and aborts without error |
//! | `checkpoint` | source | a source that emitted rows emitted a checkpoint; reopened with the last one, it does not start over (fewer rows than the first run) |
//! | `cancel` | source | a `next` in flight is abandoned within [`Options::cancel_within`], and the plugin can be reopened afterwards |
//! | `no_panics` | all | no entry point panicked (in-process: caught here; across the ABI: the error says `panicked`) |
//! | `memory` | all | heap growth per open/close cycle over the second half of the measured cycles (a source: open, streams, close; a transform: open, an empty batch of each touched canonical stream, close; a sink: open, write, commit, abort, close), after a warm-up, stays under [`Options::max_growth_per_cycle`] bytes (glibc Linux only) |
//!
//! `pipe plugin check` adds `handshake` for a library, and `cancel_abi` for a library's
//! sources: `cancel` from another thread must make the library's own blocked `next_event`
//! return, which the in-process view above cannot time.
//!
//! Checks that need a working config (all but `descriptor` and `config_errors`) are reported
//! [`Status::Skip`] when [`Options::config`] is `None`. A sink check writes into whatever its
//! config points at: give it a scratch directory.
//!
//! The memory check counts growth, not leaks: a library's runtime and statics are created once
//! and never freed (by design), which the warm-up absorbs; what remains is growth proportional
//! to the number of cycles. glibc's per-thread caches of freed blocks count as in use, and a
//! library's calls hop between threads, so in a process with those caches on the check reads
//! their filling as growth (hundreds of bytes per cycle); `pipe plugin check` turns them off
//! (`GLIBC_TUNABLES=glibc.malloc.tcache_count=0`) before it starts. Do the same when calling
//! [`check`] from your own program.
//!
//! Thread-safety: [`check`] must run inside a multi-thread tokio runtime (plugins loaded from
//! libraries block the calling worker with `block_in_place`). It runs one check at a time.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use futures::FutureExt;
use serde_json::{Value, json};

use crate::metrics::Metrics;
use crate::plugin::{
    Event, PluginDescriptor, PluginFactory, PluginKind, SinkContext, SourceContext, StreamDecl, TransformContext,
    TransformOutput,
};
use crate::schema::{conversations_schema, messages_schema};
use crate::{Checkpoint, PluginError};

/// How [`check`] exercises a plugin.
#[derive(Debug, Clone)]
pub struct Options {
    /// A working config (the plugin's table as JSON, `${VAR}`s resolved). `None`: only the
    /// checks that need no config run.
    pub config: Option<Value>,
    /// Open/close cycles run before memory is measured (runtimes, pools, caches warm up).
    pub warm_up_cycles: usize,
    /// Open/close cycles measured (in two halves; the verdict is on the second).
    pub cycles: usize,
    /// Largest heap growth allowed per measured cycle, in bytes.
    pub max_growth_per_cycle: u64,
    /// A source read stops after this many events (a huge account need not be read whole).
    pub max_events: usize,
    /// Longest a whole read of the source may take.
    pub read_timeout: Duration,
    /// How soon a dropped `next` must be abandoned.
    pub cancel_within: Duration,
}

impl Default for Options {
    /// No config; 100 warm-up and 200 measured cycles; 1 KiB per cycle; 100 000 events; 120 s
    /// read; cancel within 2 s.
    fn default() -> Self {
        Options {
            config: None,
            warm_up_cycles: 100,
            cycles: 200,
            max_growth_per_cycle: 1024,
            max_events: 100_000,
            read_timeout: Duration::from_secs(120),
            cancel_within: Duration::from_secs(2),
        }
    }
}

impl Options {
    /// The defaults with a working `config`.
    pub fn with_config(config: Value) -> Self {
        Options { config: Some(config), ..Options::default() }
    }
}

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The property holds.
    Pass,
    /// The property does not hold; the detail says why.
    Fail,
    /// Not run (no config, or not applicable to this kind); the detail says why.
    Skip,
}

impl Status {
    /// `PASS`, `FAIL` or `SKIP`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct CheckResult {
    /// The check's name (`schema`, `checkpoint`, ... see the [module docs](self)).
    pub name: &'static str,
    /// Pass, fail or skip.
    pub status: Status,
    /// One line: what was measured, or why it failed or was skipped.
    pub detail: String,
}

/// Every check of one plugin.
#[derive(Debug, Clone)]
pub struct Report {
    /// The plugin's name.
    pub plugin: String,
    /// Its kind.
    pub kind: PluginKind,
    /// In the order they ran.
    pub checks: Vec<CheckResult>,
}

impl Report {
    /// True when no check failed (skipped checks do not fail a report).
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.status != Status::Fail)
    }

    /// The failed checks.
    pub fn failures(&self) -> impl Iterator<Item = &CheckResult> {
        self.checks.iter().filter(|c| c.status == Status::Fail)
    }
}

impl std::fmt::Display for Report {
    /// One line per check: `<plugin> <check> PASS|FAIL|SKIP <detail>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in &self.checks {
            writeln!(f, "{:<20} {:<14} {}  {}", self.plugin, c.name, c.status.as_str(), c.detail)?;
        }
        Ok(())
    }
}

/// Runs every check on `plugin`. Never panics because the plugin does: panics are caught and
/// reported by the `no_panics` check.
pub async fn check(plugin: &PluginDescriptor, opts: &Options) -> Report {
    let mut kit = Kit { plugin, opts, panics: Vec::new() };
    let mut checks = vec![kit.descriptor(), kit.config_errors().await];
    match (&opts.config, plugin.kind()) {
        (None, kind) => {
            let needing_config: &[&'static str] = match kind {
                PluginKind::Source => &["schema", "checkpoint", "cancel", "memory"],
                PluginKind::Transform => &["schema", "memory"],
                PluginKind::Sink => &["commit", "memory"],
            };
            for name in needing_config {
                checks.push(skip(name, "needs a working config (pass one with --config)"));
            }
        }
        (Some(cfg), PluginKind::Source) => {
            let (schema, checkpoint) = kit.source_read(cfg).await;
            // A source that cannot read with this config would only fail the same way again
            // (after its retries, which can take minutes): say so instead.
            let readable = !schema.detail.starts_with(READ_FAILED);
            checks.push(schema);
            checks.push(checkpoint);
            checks.push(if readable {
                kit.source_cancel(cfg).await
            } else {
                skip("cancel", "not run: the source cannot read with this config (see schema)")
            });
            checks.push(kit.memory(cfg).await);
        }
        (Some(cfg), PluginKind::Transform) => {
            checks.push(kit.transform_schema(cfg).await);
            checks.push(kit.memory(cfg).await);
        }
        (Some(cfg), PluginKind::Sink) => {
            checks.push(kit.sink_cycle(cfg).await);
            checks.push(kit.memory(cfg).await);
        }
    }
    // The same panic can be seen by several checks (each reads the source again).
    let mut seen = std::collections::HashSet::new();
    kit.panics.retain(|p| seen.insert(p.clone()));
    checks.push(if kit.panics.is_empty() {
        pass("no_panics", "no entry point panicked")
    } else {
        fail("no_panics", format!("panicked: {}", kit.panics.join("; ")))
    });
    Report { plugin: plugin.name.to_string(), kind: plugin.kind(), checks }
}

/// How a failed first read of a source starts its `schema` and `checkpoint` details.
const READ_FAILED: &str = "reading the source failed: ";

fn pass(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult { name, status: Status::Pass, detail: detail.into() }
}
fn fail(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult { name, status: Status::Fail, detail: detail.into() }
}
fn skip(name: &'static str, detail: impl Into<String>) -> CheckResult {
    CheckResult { name, status: Status::Skip, detail: detail.into() }
}

/// A plugin call that failed: with an error, or by panicking.
enum CallError {
    Error(PluginError),
    Panic(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Error(e) => write!(f, "{e}"),
            CallError::Panic(m) => write!(f, "panicked: {m}"),
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic)".into())
}

struct Kit<'a> {
    plugin: &'a PluginDescriptor,
    opts: &'a Options,
    /// `entry: message` of every panic seen, in-process or reported across the ABI.
    panics: Vec<String>,
}

impl Kit<'_> {
    /// Runs one plugin call, turning a panic (in-process) into a `CallError::Panic` and noting
    /// panics reported by a library (its error says `panicked`).
    async fn call<T>(&mut self, entry: &str, f: impl Future<Output = crate::Result<T>>) -> Result<T, CallError> {
        match AssertUnwindSafe(f).catch_unwind().await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => {
                if e.to_string().contains("panicked") {
                    self.panics.push(format!("{entry}: {e}"));
                }
                Err(CallError::Error(e))
            }
            Err(p) => {
                let msg = panic_text(p.as_ref());
                self.panics.push(format!("{entry}: {msg}"));
                Err(CallError::Panic(msg))
            }
        }
    }

    /// A synchronous plugin call, same rules as [`Kit::call`].
    fn call_sync<T>(&mut self, entry: &str, f: impl FnOnce() -> T) -> Result<T, CallError> {
        std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            let msg = panic_text(p.as_ref());
            self.panics.push(format!("{entry}: {msg}"));
            CallError::Panic(msg)
        })
    }

    fn descriptor(&mut self) -> CheckResult {
        let d = self.plugin;
        if d.name.is_empty()
            || !d.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            return fail(
                "descriptor",
                format!("name `{}` must be non-empty lower-case ASCII letters, digits, `_` or `-`", d.name),
            );
        }
        if d.version.is_empty() {
            return fail("descriptor", "empty version");
        }
        let schema = match self.call_sync("config_schema", || (d.config_schema)()) {
            Ok(s) => s,
            Err(e) => return fail("descriptor", format!("config_schema {e}")),
        };
        let is_object =
            schema.get("type").and_then(Value::as_str) == Some("object") || schema.get("properties").is_some();
        if !is_object {
            return fail(
                "descriptor",
                format!("the config JSON Schema does not describe a table (no \"type\": \"object\"): {schema}"),
            );
        }
        pass(
            "descriptor",
            format!(
                "{} {} {}, config schema with {} key(s)",
                d.kind().as_str(),
                d.name,
                d.version,
                schema.get("properties").and_then(Value::as_object).map_or(0, |p| p.len())
            ),
        )
    }

    fn check_config(&mut self, config: &Value) -> Result<(), CallError> {
        let check = self.plugin.check_config.clone();
        match self.call_sync("check_config", || check(config)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                if e.to_string().contains("panicked") {
                    self.panics.push(format!("check_config: {e}"));
                }
                Err(CallError::Error(e))
            }
            Err(p) => Err(p),
        }
    }

    async fn config_errors(&mut self) -> CheckResult {
        const NAME: &str = "config_errors";
        // Not a table at all: every plugin must refuse it with a config error.
        match self.check_config(&json!("not a table")) {
            Ok(()) => return fail(NAME, "check_config accepted a string as the plugin's table"),
            Err(CallError::Error(PluginError::Config { message, .. })) if !message.trim().is_empty() => {}
            Err(CallError::Error(PluginError::Config { .. })) => {
                return fail(NAME, "a config error with an empty message");
            }
            Err(e) => {
                return fail(NAME, format!("a wrong config must be a config error (key path + message), got: {e}"));
            }
        }
        let schema = (self.plugin.config_schema)();
        let mut detail = String::from("a non-table is a config error");
        if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
            let mut cfg = self.opts.config.clone().filter(Value::is_object).unwrap_or_else(|| json!({}));
            cfg["pipe_conformance_unknown_key"] = json!(true);
            match self.check_config(&cfg) {
                Ok(()) => {
                    return fail(
                        NAME,
                        "the config schema forbids unknown keys, but check_config accepted `pipe_conformance_unknown_key`",
                    );
                }
                Err(CallError::Error(PluginError::Config { path, message }))
                    if path.contains("pipe_conformance_unknown_key")
                        || message.contains("pipe_conformance_unknown_key") => {}
                Err(CallError::Error(PluginError::Config { .. })) if self.opts.config.is_none() => {
                    // Without a working config, a missing required key may be reported first.
                }
                Err(e) => return fail(NAME, format!("an unknown key must be a config error naming it, got: {e}")),
            }
            detail.push_str("; an unknown key is refused by name");
        }
        if let Some(cfg) = &self.opts.config {
            if let Err(e) = self.check_config(cfg) {
                return fail(NAME, format!("the given config is refused: {e}"));
            }
            detail.push_str("; the given config is accepted");
        }
        pass(NAME, detail)
    }

    fn source_ctx(state: Option<Value>) -> SourceContext {
        SourceContext { pipeline: "conformance".into(), state, limit: None, metrics: Arc::new(Metrics::default()) }
    }

    fn transform_ctx() -> TransformContext {
        TransformContext { pipeline: "conformance".into(), metrics: Arc::new(Metrics::default()) }
    }

    /// Opens the source (the config is the caller's), returning its declared streams too.
    async fn open_source(
        &mut self,
        cfg: &Value,
        state: Option<Value>,
    ) -> Result<(Box<dyn crate::Source>, Vec<StreamDecl>), CallError> {
        let PluginFactory::Source(open) = self.plugin.factory.clone() else { unreachable!("a source") };
        let cfg = cfg.clone();
        let source = self.call("source.open", async move { open(cfg, Kit::source_ctx(state)) }).await?;
        let streams = self.call_sync("source.streams", || source.streams())?;
        Ok((source, streams))
    }

    /// Reads the source to its end: rows, checkpoints, and the first schema mismatch.
    async fn read_all(&mut self, cfg: &Value, state: Option<Value>) -> Result<Read, CallError> {
        let (mut source, streams) = self.open_source(cfg, state).await?;
        let mut read = Read { streams: streams.len(), ..Read::default() };
        let deadline = Instant::now() + self.opts.read_timeout;
        for _ in 0..self.opts.max_events {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, self.call("source.next", source.next())).await {
                Ok(e) => e?,
                Err(_) => {
                    read.truncated = true;
                    break;
                }
            };
            match event {
                Event::Batch { stream, batch } => {
                    read.batches += 1;
                    read.rows += batch.num_rows() as u64;
                    if read.mismatch.is_none() {
                        read.mismatch = mismatch(&streams, &stream, &batch);
                    }
                }
                Event::Checkpoint(Checkpoint { state }) => {
                    read.rows_at_checkpoint = read.rows;
                    read.checkpoints += 1;
                    read.last_checkpoint = Some(state);
                }
                Event::DeadLetter(_) => read.dead_letters += 1,
                Event::End => {
                    read.ended = true;
                    break;
                }
            }
        }
        read.truncated |= !read.ended;
        Ok(read)
    }

    async fn source_read(&mut self, cfg: &Value) -> (CheckResult, CheckResult) {
        let first = match self.read_all(cfg, None).await {
            Ok(r) => r,
            Err(e) => {
                let why = format!("{READ_FAILED}{e}");
                return (fail("schema", why.clone()), fail("checkpoint", why));
            }
        };
        let schema = match &first.mismatch {
            Some(m) => fail("schema", m.clone()),
            None if first.batches == 0 => skip("schema", "the source emitted no batch with this config"),
            None => pass(
                "schema",
                format!(
                    "{} batch(es) on {} declared stream(s), each with its declared schema",
                    first.batches, first.streams
                ),
            ),
        };
        let read_note = if first.truncated { " (read stopped early: max events or timeout)" } else { "" };
        let checkpoint = match &first.last_checkpoint {
            None if first.rows == 0 => {
                skip("checkpoint", "the source emitted no rows with this config; nothing to resume")
            }
            None => fail("checkpoint", format!("{} rows but no checkpoint: a rerun can only start over", first.rows)),
            Some(state) => {
                // The state must survive the trip through the engine's state file.
                let stored: Value = serde_json::from_str(&state.to_string()).expect("JSON re-parses");
                match self.read_all(cfg, Some(stored)).await {
                    Err(e) => fail("checkpoint", format!("reopening with the last checkpoint failed: {e}")),
                    Ok(second) if second.rows >= first.rows && first.rows_at_checkpoint > 0 => fail(
                        "checkpoint",
                        format!(
                            "resumed from the last checkpoint (after {} of {} rows), the source emitted {} rows again: it starts over",
                            first.rows_at_checkpoint, first.rows, second.rows
                        ),
                    ),
                    Ok(second) => pass(
                        "checkpoint",
                        format!(
                            "{} rows, {} checkpoint(s){read_note}; resumed from the last one: {} rows",
                            first.rows, first.checkpoints, second.rows
                        ),
                    ),
                }
            }
        };
        (schema, checkpoint)
    }

    async fn source_cancel(&mut self, cfg: &Value) -> CheckResult {
        const NAME: &str = "cancel";
        let (mut source, _) = match self.open_source(cfg, None).await {
            Ok(s) => s,
            Err(e) => return fail(NAME, format!("open failed: {e}")),
        };
        // The engine cancels by dropping a `next` in flight (a library's adapter then calls
        // the ABI's `cancel`); do the same after letting the call start.
        let task = tokio::spawn(async move {
            let r = AssertUnwindSafe(source.next()).catch_unwind().await;
            drop(source);
            r.map(|_| ()).map_err(|p| panic_text(p.as_ref()))
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let start = Instant::now();
        task.abort();
        let joined = tokio::time::timeout(self.opts.cancel_within, task).await;
        let took = start.elapsed();
        match joined {
            Err(_) => return fail(NAME, format!("a cancelled `next` still runs after {:?}", self.opts.cancel_within)),
            Ok(Ok(Err(panic))) => {
                self.panics.push(format!("source.next: {panic}"));
                return fail(NAME, format!("`next` panicked: {panic}"));
            }
            Ok(_) => {}
        }
        // The plugin (and its library's runtime) must still work after a cancel.
        match self.open_source(cfg, None).await {
            Ok((mut again, _)) => {
                match tokio::time::timeout(self.opts.read_timeout, self.call("source.next", again.next())).await {
                    Ok(Ok(_)) => pass(
                        NAME,
                        format!("abandoned in {} ms; reopened and read an event afterwards", took.as_millis()),
                    ),
                    Ok(Err(e)) => fail(NAME, format!("after a cancel, a new instance fails: {e}")),
                    Err(_) => fail(NAME, "after a cancel, a new instance hangs"),
                }
            }
            Err(e) => fail(NAME, format!("after a cancel, reopening fails: {e}")),
        }
    }

    /// The canonical streams a transform or sink is offered in the kit.
    fn canonical_streams() -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: "conversations".into(), schema: conversations_schema() },
            StreamDecl { name: "messages".into(), schema: messages_schema() },
        ]
    }

    async fn transform_schema(&mut self, cfg: &Value) -> CheckResult {
        const NAME: &str = "schema";
        let PluginFactory::Transform(open) = self.plugin.factory.clone() else { unreachable!("a transform") };
        let c = cfg.clone();
        let mut t = match self.call("transform.open", async move { open(c, Kit::transform_ctx()) }).await {
            Ok(t) => t,
            Err(e) => return fail(NAME, format!("open failed: {e}")),
        };
        let mut touched = 0;
        for input in Self::canonical_streams() {
            let Ok(out) = self.call_sync("transform.output_stream", || t.output_stream(&input)) else {
                return fail(NAME, "output_stream panicked");
            };
            let Some(out) = out else { continue };
            touched += 1;
            if out.name != input.name {
                return fail(NAME, format!("output_stream renamed `{}` to `{}`", input.name, out.name));
            }
            let empty = RecordBatch::new_empty(input.schema.clone());
            let outputs = match self.call("transform.transform", t.transform(&input.name, empty)).await {
                Ok(o) => o,
                Err(e) => return fail(NAME, format!("transforming an empty `{}` batch failed: {e}", input.name)),
            };
            for o in outputs {
                if let TransformOutput::Batch(b) = o
                    && let Some(m) = mismatch(std::slice::from_ref(&out), &out.name, &b)
                {
                    return fail(NAME, m);
                }
            }
        }
        match self.call("transform.flush", t.flush()).await {
            Ok(_) => pass(NAME, format!("touches {touched} canonical stream(s); outputs have the declared schema")),
            Err(e) => fail(NAME, format!("flush failed: {e}")),
        }
    }

    async fn sink_cycle(&mut self, cfg: &Value) -> CheckResult {
        const NAME: &str = "commit";
        match self.sink_once(cfg, "conformance-0").await {
            Ok(()) => pass(NAME, "opened with the canonical streams, wrote an empty batch of each, committed, aborted"),
            Err(e) => fail(NAME, e.to_string()),
        }
    }

    async fn sink_once(&mut self, cfg: &Value, run_id: &str) -> Result<(), CallError> {
        let PluginFactory::Sink(open) = self.plugin.factory.clone() else { unreachable!("a sink") };
        let streams = Self::canonical_streams();
        let ctx = SinkContext { pipeline: "conformance".into(), streams: streams.clone(), run_id: run_id.into() };
        let c = cfg.clone();
        let mut sink = self.call("sink.open", async move { open(c, ctx) }).await?;
        for s in &streams {
            let empty = RecordBatch::new_empty(s.schema.clone());
            self.call("sink.write", sink.write(&s.name, &empty)).await?;
        }
        self.call("sink.commit", sink.commit(&Checkpoint { state: json!({"conformance": run_id}) })).await?;
        self.call("sink.abort", sink.abort()).await?;
        Ok(())
    }

    /// One open/close cycle of the plugin's kind.
    async fn cycle(&mut self, cfg: &Value, i: usize) -> Result<(), CallError> {
        match self.plugin.factory.clone() {
            PluginFactory::Source(_) => self.open_source(cfg, None).await.map(drop),
            PluginFactory::Transform(open) => {
                let c = cfg.clone();
                let mut t = self.call("transform.open", async move { open(c, Kit::transform_ctx()) }).await?;
                // An empty batch through every touched stream: schemas and arrays cross both ways.
                for input in Self::canonical_streams() {
                    if self.call_sync("transform.output_stream", || t.output_stream(&input))?.is_some() {
                        let empty = RecordBatch::new_empty(input.schema.clone());
                        self.call("transform.transform", t.transform(&input.name, empty)).await?;
                    }
                }
                drop(t);
                Ok(())
            }
            PluginFactory::Sink(_) => self.sink_once(cfg, &format!("conformance-{i}")).await,
        }
    }

    async fn memory(&mut self, cfg: &Value) -> CheckResult {
        const NAME: &str = "memory";
        let Some(_) = heap_bytes() else { return skip(NAME, "heap statistics need glibc (Linux)") };
        for i in 0..self.opts.warm_up_cycles {
            if let Err(e) = self.cycle(cfg, i).await {
                return fail(NAME, format!("open/close cycle {i} failed: {e}"));
            }
        }
        // Growth that comes from the allocator settling (thread caches, arenas of threads the
        // blocking pool starts) flattens out; a leak grows with every cycle. So the verdict is
        // on the second half of the measured cycles, after the first half settled further.
        let half = (self.opts.cycles / 2).max(1);
        let before = settled_heap_bytes().await;
        let mut middle = before;
        for i in 0..half * 2 {
            if i == half {
                middle = settled_heap_bytes().await;
            }
            let n = self.opts.warm_up_cycles + i;
            if let Err(e) = self.cycle(cfg, n).await {
                return fail(NAME, format!("open/close cycle {n} failed: {e}"));
            }
        }
        let after = settled_heap_bytes().await;
        let per_cycle = after.saturating_sub(middle) / half as u64;
        let detail = format!(
            "heap {} → {} → {} KiB over 2 × {half} open/close cycles (after {} warm-up): {per_cycle} B/cycle in the second half (limit {})",
            before / 1024,
            middle / 1024,
            after / 1024,
            self.opts.warm_up_cycles,
            self.opts.max_growth_per_cycle
        );
        if per_cycle > self.opts.max_growth_per_cycle {
            fail(NAME, format!("grows: {detail}"))
        } else {
            pass(NAME, detail)
        }
    }
}

/// What one read of a source saw.
#[derive(Default)]
struct Read {
    streams: usize,
    batches: u64,
    rows: u64,
    dead_letters: u64,
    checkpoints: u64,
    rows_at_checkpoint: u64,
    last_checkpoint: Option<Value>,
    mismatch: Option<String>,
    ended: bool,
    truncated: bool,
}

/// Why `batch` on `stream` does not match what was declared, or `None`.
fn mismatch(declared: &[StreamDecl], stream: &str, batch: &RecordBatch) -> Option<String> {
    let Some(decl) = declared.iter().find(|d| d.name == stream) else {
        let names: Vec<&str> = declared.iter().map(|d| d.name.as_str()).collect();
        return Some(format!("a batch on stream `{stream}`, which was not declared (declared: {})", names.join(", ")));
    };
    if decl.schema.fields() == batch.schema().fields() {
        return None;
    }
    Some(format!("stream `{stream}`: declared [{}], emitted [{}]", fields(&decl.schema), fields(&batch.schema())))
}

fn fields(schema: &arrow_schema::Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}{}", f.name(), f.data_type(), if f.is_nullable() { "?" } else { "" }))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes in use in the C heap (glibc's `mallinfo2`: allocated chunks plus mmapped blocks),
/// which every Rust library of the process allocates from; `None` elsewhere.
/// The heap in use once work the last cycles left running has finished: the smallest of five
/// samples 50 ms apart. A closed source's aborted tasks and its HTTP connections are freed a
/// moment after the close, on other threads; sampling at once would count them as growth (or
/// hide growth when an earlier sample caught more of them). A real leak raises the minimum too.
async fn settled_heap_bytes() -> u64 {
    let mut least = u64::MAX;
    for _ in 0..5 {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        least = least.min(heap_bytes().unwrap_or(0));
    }
    least
}

fn heap_bytes() -> Option<u64> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        /// glibc's `struct mallinfo2`.
        #[repr(C)]
        struct MallInfo2 {
            arena: usize,
            ordblks: usize,
            smblks: usize,
            hblks: usize,
            hblkhd: usize,
            usmblks: usize,
            fsmblks: usize,
            uordblks: usize,
            fordblks: usize,
            keepcost: usize,
        }
        unsafe extern "C" {
            fn mallinfo2() -> MallInfo2;
        }
        // SAFETY: a plain query of glibc's allocator statistics.
        let m = unsafe { mallinfo2() };
        let _ = (m.arena, m.ordblks, m.smblks, m.hblks, m.usmblks, m.fsmblks, m.fordblks, m.keepcost);
        Some((m.uordblks + m.hblkhd) as u64)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reexports::async_trait;
    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    /// An in-process source: `lie` emits Utf8 where Int64 is declared, `panic_in_next` panics,
    /// `restart` ignores its state (starts over when resumed).
    #[derive(serde::Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        lie: bool,
        #[serde(default)]
        panic_in_next: bool,
        #[serde(default)]
        restart: bool,
    }

    struct Numbers {
        cfg: Cfg,
        step: u32,
    }

    #[async_trait]
    impl crate::Source for Numbers {
        fn streams(&self) -> Vec<StreamDecl> {
            vec![StreamDecl {
                name: "n".into(),
                schema: Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
            }]
        }
        async fn next(&mut self) -> crate::Result<Event> {
            assert!(!self.cfg.panic_in_next, "boom");
            self.step += 1;
            Ok(match self.step {
                1 if self.cfg.lie => {
                    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Utf8, false)]));
                    Event::Batch {
                        stream: "n".into(),
                        batch: RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["1"]))])?,
                    }
                }
                1 => Event::Batch {
                    stream: "n".into(),
                    batch: RecordBatch::try_new(
                        self.streams()[0].schema.clone(),
                        vec![Arc::new(Int64Array::from(vec![1, 2]))],
                    )?,
                },
                2 => Event::Checkpoint(Checkpoint { state: json!({"done": true}) }),
                _ => Event::End,
            })
        }
    }

    fn descriptor() -> PluginDescriptor {
        PluginDescriptor {
            name: "numbers",
            version: "1.0.0",
            description: "test source",
            config_schema: Arc::new(crate::config::schema_of::<Cfg>),
            check_config: Arc::new(crate::config::check::<Cfg>),
            factory: PluginFactory::source(|v, ctx| {
                let cfg: Cfg = crate::config::parse(v)?;
                // Resumed from `{"done": true}` it has nothing left, unless told to restart.
                let step = if ctx.state.is_some() && !cfg.restart { 2 } else { 0 };
                Ok(Box::new(Numbers { cfg, step }))
            }),
        }
    }

    fn opts(config: Value) -> Options {
        Options { config: Some(config), warm_up_cycles: 5, cycles: 20, ..Options::default() }
    }

    fn status(r: &Report, name: &str) -> (Status, String) {
        let c = r.checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no {name} in {r}"));
        (c.status, c.detail.clone())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_correct_source_passes_every_check() {
        let r = check(&descriptor(), &opts(json!({}))).await;
        assert!(r.passed(), "{r}");
        assert_eq!(status(&r, "checkpoint").1, "2 rows, 1 checkpoint(s); resumed from the last one: 0 rows");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lies_restarts_and_panics_fail_with_their_reason() {
        let r = check(&descriptor(), &opts(json!({"lie": true}))).await;
        assert_eq!(status(&r, "schema"), (Status::Fail, "stream `n`: declared [n: Int64], emitted [n: Utf8]".into()));

        let r = check(&descriptor(), &opts(json!({"restart": true}))).await;
        let (s, why) = status(&r, "checkpoint");
        assert_eq!(s, Status::Fail);
        assert!(why.contains("it starts over"), "{why}");

        let r = check(&descriptor(), &opts(json!({"panic_in_next": true}))).await;
        assert!(!r.passed());
        let (s, why) = status(&r, "no_panics");
        assert_eq!(s, Status::Fail);
        assert!(why.contains("source.next: boom"), "{why}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn config_errors_must_be_structured() {
        let r = check(&descriptor(), &Options::default()).await;
        assert_eq!(status(&r, "config_errors").0, Status::Pass, "{r}");
        assert_eq!(status(&r, "schema").0, Status::Skip);

        let mut d = descriptor();
        d.check_config = PluginDescriptor::check_with(|_| Err(PluginError::Other("nope".into())));
        let r = check(&d, &Options::default()).await;
        let (s, why) = status(&r, "config_errors");
        assert_eq!(s, Status::Fail);
        assert_eq!(why, "a wrong config must be a config error (key path + message), got: nope");
    }
}
