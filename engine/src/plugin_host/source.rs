//! A source of a loaded library as the SDK's [`Source`]: the consumer side of the source vtable
//! that `pipe_plugin_sdk::ffi`'s `source.rs` produces. `next_event` runs on tokio's blocking pool
//! (`spawn_blocking`), never on a runtime worker; open uses `block_in_place`. The library's own
//! counters (`counters`) are added to the engine's [`Metrics`] after every event (requests and
//! retries also to the Prometheus metrics, `crate::telemetry`). The instance is closed by
//! whichever thread lets go of it last, so a call still running when the engine drops the
//! source finishes (interrupted by `cancel`) before `close`.

use std::sync::Arc;

use pipe_plugin_abi::{
    PIPE_EVENT_BATCH, PIPE_EVENT_CHECKPOINT, PIPE_EVENT_DEAD_LETTER, PIPE_EVENT_END, PIPE_OK, PipeSourceCountersV1,
    PipeSourceOpenArgsV1, PipeStr, struct_size,
};
use pipe_plugin_sdk::ffi::{arrow, wire};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{Event, Metrics, PluginError, Result, Source, SourceContext, StreamDecl};
use serde_json::Value;

use super::call::{OwnedSchema, blocking, empty_event, read_event};
use super::external::ExternalPlugin;
use super::instance::Instance;
use super::vtables::SourceFns;

/// Opens a source of a loaded library (the registry's factory for it).
pub(super) fn open(plugin: Arc<ExternalPlugin>, config: Value, ctx: SourceContext) -> Result<Box<dyn Source>> {
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
            // SAFETY: the library moved a valid C Data Interface schema into `schema` above.
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
        let (requests, retries) =
            (c.requests.saturating_sub(self.seen.requests), c.retries.saturating_sub(self.seen.retries));
        Metrics::add(&m.requests, requests);
        Metrics::add(&m.retries, retries);
        crate::telemetry::record_library_counters(self.inst.plugin.name, requests, retries);
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
        let read = read_event(ev, streams, inst.plugin.name);
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
