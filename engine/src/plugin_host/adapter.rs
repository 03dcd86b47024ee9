//! The adapters: a loaded library's plugin as the SDK's [`Source`], [`Transform`] and [`Sink`]
//! traits, so the engine runs it exactly like a built-in. Every blocking entry point runs on
//! tokio's blocking pool (`spawn_blocking`), never on a runtime worker; synchronous trait
//! methods (the factories, `output_stream`, `stats`) use `block_in_place`. An instance is
//! closed by whichever thread lets go of it last, so a call still running on the blocking pool
//! when the engine drops the adapter finishes (interrupted by `cancel`) before `close`.

use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use pipe_plugin_abi::{
    PIPE_EVENT_BATCH, PIPE_EVENT_CHECKPOINT, PIPE_EVENT_DEAD_LETTER, PIPE_EVENT_END, PIPE_EVENT_NONE, PIPE_OK,
    PipeEventV1, PipeSinkOpenArgsV1, PipeSinkStatsV1, PipeSourceCountersV1, PipeSourceOpenArgsV1, PipeStr,
    PipeStreamV1, PipeTransformOpenArgsV1, struct_size,
};
use pipe_plugin_sdk::ffi::{arrow, wire};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{
    Checkpoint, Event, Metrics, PluginError, Result, Sink, SinkContext, SinkStats, Source, SourceContext, StreamDecl,
    Transform, TransformOutput,
};
use serde_json::Value;

use super::call::{Instance, OwnedArray, OwnedSchema, blocking};
use super::loader::ExternalPlugin;
use super::vtables::{SinkFns, SourceFns, TransformFns, Vtable};

impl ExternalPlugin {
    fn source_fns(&self) -> SourceFns {
        match self.vtable {
            Vtable::Source(f) => f,
            _ => unreachable!("the registry resolves `{}` as a source only if it is one", self.name),
        }
    }
    fn transform_fns(&self) -> TransformFns {
        match self.vtable {
            Vtable::Transform(f) => f,
            _ => unreachable!("the registry resolves `{}` as a transform only if it is one", self.name),
        }
    }
    fn sink_fns(&self) -> SinkFns {
        match self.vtable {
            Vtable::Sink(f) => f,
            _ => unreachable!("the registry resolves `{}` as a sink only if it is one", self.name),
        }
    }

    /// `check_config` through the library.
    pub(super) fn check_config(&self, config: &Value) -> Result<()> {
        let json = config.to_string();
        let check = self.desc.check_config.expect("validated at load");
        // SAFETY: static descriptor; the string is borrowed for the call.
        blocking(|| self.status("check_config", |err| unsafe { check(self.desc, PipeStr::new(&json), err) }))
    }
}

/// A new event struct for a callee to fill.
fn empty_event() -> PipeEventV1 {
    PipeEventV1 {
        struct_size: struct_size::<PipeEventV1>(),
        kind: PIPE_EVENT_NONE,
        stream: PipeStr::EMPTY,
        json: PipeStr::EMPTY,
        array: pipe_plugin_abi::ArrowArray::empty(),
        schema: pipe_plugin_abi::ArrowSchema::empty(),
    }
}

/// What an event carries, copied out before the next call invalidates its borrowed strings.
/// Whatever Arrow data the event holds is imported (or released) here.
fn read_event(ev: PipeEventV1, streams: &[StreamDecl]) -> Result<(u32, String, Option<RecordBatch>, String)> {
    let mut array = OwnedArray(ev.array);
    let mut schema = OwnedSchema(ev.schema);
    // SAFETY: borrowed strings, valid until the next call on the instance (not made yet).
    let (stream, json) = unsafe {
        (
            String::from_utf8_lossy(ev.stream.as_bytes()).into_owned(),
            String::from_utf8_lossy(ev.json.as_bytes()).into_owned(),
        )
    };
    let batch = if ev.kind == PIPE_EVENT_BATCH {
        let declared = streams.iter().find(|d| d.name == stream).map(|d| &d.schema);
        // SAFETY: both were moved to us by the callee; import leaves them released.
        Some(unsafe { arrow::import_owned_batch(&mut array.0, &mut schema.0, declared) }?)
    } else {
        None
    };
    Ok((ev.kind, stream, batch, json))
}

// ---------------------------------------------------------------------------------------------

/// Opens a source of a loaded library (the registry's factory for it).
pub(super) fn open_source(plugin: Arc<ExternalPlugin>, config: Value, ctx: SourceContext) -> Result<Box<dyn Source>> {
    let fns = plugin.source_fns();
    let config = config.to_string();
    let state = ctx.state.as_ref().map(Value::to_string).unwrap_or_default();
    let args = PipeSourceOpenArgsV1 {
        struct_size: struct_size::<PipeSourceOpenArgsV1>(),
        pipeline: PipeStr::new(&ctx.pipeline),
        config_json: PipeStr::new(&config),
        state_json: PipeStr::new(&state),
        limit: ctx.limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX)),
    };
    let mut h = std::ptr::null_mut();
    // SAFETY: static descriptor; args borrowed for the call.
    blocking(|| plugin.status("open", |err| unsafe { (fns.open)(plugin.desc, &args, &mut h, err) }))?;
    let inst = Arc::new(Instance::new(h, fns.cancel, fns.close, plugin.clone()));
    let streams = blocking(|| source_streams(&inst, &fns))?;
    Ok(Box::new(ExternalSource { inst, fns, streams: streams.into(), metrics: ctx.metrics, seen: Counters::default() }))
}

fn source_streams(inst: &Instance, fns: &SourceFns) -> Result<Vec<StreamDecl>> {
    inst.with(|h| {
        let mut n = 0usize;
        // SAFETY: open handle; out-pointers valid for the call.
        inst.plugin.status("stream_count", |err| unsafe { (fns.stream_count)(h, &mut n, err) })?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let mut name = PipeStr::EMPTY;
            let mut schema = OwnedSchema::empty();
            // SAFETY: as above; the schema is moved to us.
            inst.plugin.status("stream", |err| unsafe { (fns.stream)(h, i, &mut name, &mut schema.0, err) })?;
            // SAFETY: the name is borrowed from the open instance; the schema is ours.
            let name = unsafe { String::from_utf8_lossy(name.as_bytes()).into_owned() };
            let schema = unsafe { arrow::schema_from_owned(&mut schema.0) }?;
            out.push(StreamDecl { name, schema: Arc::new(schema) });
        }
        Ok(out)
    })
}

#[derive(Default, Clone, Copy)]
struct Counters {
    requests: u64,
    retries: u64,
    conversations: u64,
    messages: u64,
    throttled_until_ms: u64,
}

/// A source of a loaded library.
struct ExternalSource {
    inst: Arc<Instance>,
    fns: SourceFns,
    streams: Arc<[StreamDecl]>,
    /// The engine's counters, fed with the library's (which has its own `Metrics`).
    metrics: Arc<Metrics>,
    seen: Counters,
}

#[async_trait]
impl Source for ExternalSource {
    fn streams(&self) -> Vec<StreamDecl> {
        self.streams.to_vec()
    }

    async fn next(&mut self) -> Result<Event> {
        let (inst, fns, streams) = (self.inst.clone(), self.fns, self.streams.clone());
        let (event, counters) = tokio::task::spawn_blocking(move || {
            let event = next_event(&inst, &fns, &streams);
            (event, source_counters(&inst, &fns))
        })
        .await
        .map_err(|e| PluginError::other(format!("plugin `{}`: {e}", self.inst.plugin.name)))?;
        if let Some(c) = counters {
            self.add_counters(c);
        }
        event
    }
}

impl ExternalSource {
    /// Adds what the library counted since the last call to the engine's metrics.
    fn add_counters(&mut self, c: Counters) {
        let m = &self.metrics;
        Metrics::add(&m.requests, c.requests.saturating_sub(self.seen.requests));
        Metrics::add(&m.retries, c.retries.saturating_sub(self.seen.retries));
        Metrics::add(&m.conversations, c.conversations.saturating_sub(self.seen.conversations));
        Metrics::add(&m.messages, c.messages.saturating_sub(self.seen.messages));
        m.throttled_until_ms.store(c.throttled_until_ms, std::sync::atomic::Ordering::Relaxed);
        self.seen = c;
    }
}

impl Drop for ExternalSource {
    fn drop(&mut self) {
        // A `next` may still be running on a blocking thread (the engine dropped us mid-call):
        // interrupt it; the instance closes when that call lets go of it.
        self.inst.cancel();
    }
}

fn next_event(inst: &Instance, fns: &SourceFns, streams: &[StreamDecl]) -> Result<Event> {
    inst.with(|h| {
        let mut ev = empty_event();
        // SAFETY: open handle; the event is ours to fill.
        let status = inst.plugin.status("next_event", |err| unsafe { (fns.next_event)(h, &mut ev, err) });
        // Read (and so release) whatever the event holds first; the call's own error wins.
        let read = read_event(ev, streams);
        status?;
        let (kind, stream, batch, json) = read?;
        Ok(match kind {
            PIPE_EVENT_BATCH => Event::Batch { stream, batch: batch.expect("read for batch events") },
            PIPE_EVENT_DEAD_LETTER => Event::DeadLetter(wire::dead_letter_from_json(&json)?),
            PIPE_EVENT_CHECKPOINT => Event::Checkpoint(wire::checkpoint_from_json(&json)?),
            PIPE_EVENT_END => Event::End,
            other => {
                return Err(PluginError::other(format!(
                    "plugin `{}` sent an unknown event kind {other}",
                    inst.plugin.name
                )));
            }
        })
    })
}

fn source_counters(inst: &Instance, fns: &SourceFns) -> Option<Counters> {
    let mut c = PipeSourceCountersV1 { struct_size: struct_size::<PipeSourceCountersV1>(), ..Default::default() };
    // SAFETY: open handle; the struct is ours to fill.
    let status = inst.with(|h| unsafe { (fns.counters)(h, &mut c) });
    (status == PIPE_OK).then_some(Counters {
        requests: c.requests,
        retries: c.retries,
        conversations: c.conversations,
        messages: c.messages,
        throttled_until_ms: c.throttled_until_ms,
    })
}

// ---------------------------------------------------------------------------------------------

/// Opens a transform of a loaded library.
pub(super) fn open_transform(plugin: Arc<ExternalPlugin>, config: Value, pipeline: &str) -> Result<Box<dyn Transform>> {
    let fns = plugin.transform_fns();
    let config = config.to_string();
    let args = PipeTransformOpenArgsV1 {
        struct_size: struct_size::<PipeTransformOpenArgsV1>(),
        pipeline: PipeStr::new(pipeline),
        config_json: PipeStr::new(&config),
    };
    let mut h = std::ptr::null_mut();
    // SAFETY: static descriptor; args borrowed for the call.
    blocking(|| plugin.status("open", |err| unsafe { (fns.open)(plugin.desc, &args, &mut h, err) }))?;
    let inst = Arc::new(Instance::new(h, fns.cancel, fns.close, plugin.clone()));
    Ok(Box::new(ExternalTransform { inst, fns, outputs: Mutex::new(Vec::new()), deferred: Mutex::new(None) }))
}

/// A transform of a loaded library.
struct ExternalTransform {
    inst: Arc<Instance>,
    fns: TransformFns,
    /// Output schemas by stream, as `output_stream` declared them (batches are imported with
    /// them, so they keep their exact schema).
    outputs: Mutex<Vec<StreamDecl>>,
    /// An `output_stream` failure: that trait method cannot return errors, so the next
    /// `transform`/`flush` (the latest at the end of the run) reports it.
    deferred: Mutex<Option<PluginError>>,
}

impl ExternalTransform {
    fn take_deferred(&self) -> Result<()> {
        match self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Runs `call` (transform or flush) and then drains the outputs, on a blocking thread.
    async fn run(
        &mut self,
        call: impl FnOnce(&Instance, *mut std::ffi::c_void) -> Result<()> + Send + 'static,
    ) -> Result<Vec<(String, TransformOutput)>> {
        self.take_deferred()?;
        let outputs = self.outputs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        let (inst, fns) = (self.inst.clone(), self.fns);
        tokio::task::spawn_blocking(move || {
            inst.with(|h| {
                call(&inst, h)?;
                let mut out = Vec::new();
                loop {
                    let mut ev = empty_event();
                    // SAFETY: open handle; the event is ours to fill.
                    let status = inst.plugin.status("next_output", |err| unsafe { (fns.next_output)(h, &mut ev, err) });
                    let read = read_event(ev, &outputs);
                    status?;
                    let (kind, stream, batch, json) = read?;
                    match kind {
                        PIPE_EVENT_NONE => return Ok(out),
                        PIPE_EVENT_BATCH => {
                            out.push((stream, TransformOutput::Batch(batch.expect("read for batch events"))))
                        }
                        PIPE_EVENT_DEAD_LETTER => {
                            out.push((stream, TransformOutput::DeadLetter(wire::dead_letter_from_json(&json)?)))
                        }
                        other => {
                            return Err(PluginError::other(format!(
                                "plugin `{}` sent an unknown output kind {other}",
                                inst.plugin.name
                            )));
                        }
                    }
                }
            })
        })
        .await
        .map_err(|e| PluginError::other(format!("plugin `{}`: {e}", self.inst.plugin.name)))?
    }
}

#[async_trait]
impl Transform for ExternalTransform {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        let result = blocking(|| -> Result<Option<StreamDecl>> {
            let mut schema = OwnedSchema::empty();
            // SAFETY: `schema` is ours to fill.
            unsafe { arrow::export_schema(&input.schema, &mut schema.0) }?;
            let mut out = OwnedSchema::empty();
            let mut touched = 0u32;
            self.inst.with(|h| {
                // SAFETY: open handle; `schema` borrowed, `out` moved to us.
                self.inst.plugin.status("output_stream", |err| unsafe {
                    (self.fns.output_stream)(h, PipeStr::new(&input.name), &schema.0, &mut out.0, &mut touched, err)
                })
            })?;
            if touched == 0 {
                return Ok(None);
            }
            // SAFETY: moved to us.
            let schema = unsafe { arrow::schema_from_owned(&mut out.0) }?;
            let decl = StreamDecl { name: input.name.clone(), schema: Arc::new(schema) };
            let mut outputs = self.outputs.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            outputs.retain(|d| d.name != decl.name);
            outputs.push(decl.clone());
            Ok(Some(decl))
        });
        match result {
            Ok(out) => out,
            Err(e) => {
                *self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                None
            }
        }
    }

    async fn transform(&mut self, stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        let fns = self.fns;
        let name = stream.to_string();
        let outs = self
            .run(move |inst, h| {
                let mut array = OwnedArray::empty();
                let mut schema = OwnedSchema::empty();
                // SAFETY: both are ours to fill.
                unsafe { arrow::export_batch(&batch, &mut array.0, &mut schema.0) }?;
                // SAFETY: open handle; the array is moved to the callee, the schema borrowed.
                inst.plugin.status("transform", |err| unsafe {
                    (fns.transform)(h, PipeStr::new(&name), &mut array.0, &schema.0, err)
                })
            })
            .await?;
        Ok(outs.into_iter().map(|(_, o)| o).collect())
    }

    async fn flush(&mut self) -> Result<Vec<(String, TransformOutput)>> {
        let fns = self.fns;
        // SAFETY: open handle.
        self.run(move |inst, h| inst.plugin.status("flush", |err| unsafe { (fns.flush)(h, err) })).await
    }
}

impl Drop for ExternalTransform {
    fn drop(&mut self) {
        self.inst.cancel();
    }
}

// ---------------------------------------------------------------------------------------------

/// Opens a sink of a loaded library.
pub(super) fn open_sink(plugin: Arc<ExternalPlugin>, config: Value, ctx: SinkContext) -> Result<Box<dyn Sink>> {
    let fns = plugin.sink_fns();
    let config = config.to_string();
    let mut schemas = Vec::with_capacity(ctx.streams.len());
    for s in &ctx.streams {
        let mut schema = OwnedSchema::empty();
        // SAFETY: ours to fill.
        unsafe { arrow::export_schema(&s.schema, &mut schema.0) }?;
        schemas.push(schema);
    }
    let streams: Vec<PipeStreamV1> = ctx
        .streams
        .iter()
        .zip(&schemas)
        .map(|(s, schema)| PipeStreamV1 { name: PipeStr::new(&s.name), schema: &schema.0 })
        .collect();
    let args = PipeSinkOpenArgsV1 {
        struct_size: struct_size::<PipeSinkOpenArgsV1>(),
        pipeline: PipeStr::new(&ctx.pipeline),
        config_json: PipeStr::new(&config),
        run_id: PipeStr::new(&ctx.run_id),
        streams: streams.as_ptr(),
        n_streams: streams.len(),
    };
    let mut h = std::ptr::null_mut();
    // SAFETY: static descriptor; args and schemas borrowed for the call.
    blocking(|| plugin.status("open", |err| unsafe { (fns.open)(plugin.desc, &args, &mut h, err) }))?;
    let inst = Arc::new(Instance::new(h, fns.cancel, fns.close, plugin.clone()));
    Ok(Box::new(ExternalSink { inst, fns }))
}

/// A sink of a loaded library.
struct ExternalSink {
    inst: Arc<Instance>,
    fns: SinkFns,
}

impl ExternalSink {
    async fn call(
        &self,
        f: impl FnOnce(&Instance, *mut std::ffi::c_void) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        let inst = self.inst.clone();
        tokio::task::spawn_blocking(move || inst.with(|h| f(&inst, h)))
            .await
            .map_err(|e| PluginError::other(format!("plugin `{}`: {e}", self.inst.plugin.name)))?
    }
}

#[async_trait]
impl Sink for ExternalSink {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        let (fns, stream, batch) = (self.fns, stream.to_string(), batch.clone());
        self.call(move |inst, h| {
            let mut array = OwnedArray::empty();
            let mut schema = OwnedSchema::empty();
            // SAFETY: both are ours to fill.
            unsafe { arrow::export_batch(&batch, &mut array.0, &mut schema.0) }?;
            // SAFETY: open handle; the array is moved to the callee, the schema borrowed.
            inst.plugin
                .status("write", |err| unsafe { (fns.write)(h, PipeStr::new(&stream), &mut array.0, &schema.0, err) })
        })
        .await
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let (fns, json) = (self.fns, wire::checkpoint_to_json(checkpoint));
        // SAFETY: open handle; the string is borrowed for the call.
        self.call(move |inst, h| {
            inst.plugin.status("commit", |err| unsafe { (fns.commit)(h, PipeStr::new(&json), err) })
        })
        .await
    }

    async fn abort(&mut self) -> Result<()> {
        let fns = self.fns;
        // SAFETY: open handle.
        self.call(move |inst, h| inst.plugin.status("abort", |err| unsafe { (fns.abort)(h, err) })).await
    }

    fn stats(&self) -> SinkStats {
        let mut s = PipeSinkStatsV1 { struct_size: struct_size::<PipeSinkStatsV1>(), ..Default::default() };
        // SAFETY: open handle; the struct is ours to fill.
        let status = blocking(|| self.inst.with(|h| unsafe { (self.fns.stats)(h, &mut s) }));
        if status != PIPE_OK {
            tracing::warn!(
                "plugin `{}`: stats failed (status {status}); the summary omits them",
                self.inst.plugin.name
            );
            return SinkStats::default();
        }
        SinkStats { files: s.files, bytes: s.bytes, rows: s.rows }
    }
}

impl Drop for ExternalSink {
    fn drop(&mut self) {
        self.inst.cancel();
    }
}
