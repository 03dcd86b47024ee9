//! A sink of a loaded library as the SDK's [`Sink`]: the consumer side of the sink vtable that
//! `pipe_plugin_sdk::ffi`'s `sink.rs` produces. `write`, `commit` and `abort` run on tokio's
//! blocking pool; open and `stats` use `block_in_place`. Stream schemas cross at open, batches
//! through the Arrow C Data Interface, checkpoints as JSON.

use std::sync::Arc;

use arrow_array::RecordBatch;
use pipe_plugin_abi::{PIPE_OK, PipeSinkOpenArgsV1, PipeSinkStatsV1, PipeStr, PipeStreamV1, struct_size};
use pipe_plugin_sdk::ffi::{arrow, wire};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{Checkpoint, PluginError, Result, Sink, SinkContext, SinkStats};
use serde_json::Value;

use super::call::{OwnedArray, OwnedSchema, blocking};
use super::external::ExternalPlugin;
use super::instance::Instance;
use super::vtables::SinkFns;

/// Opens a sink of a loaded library.
pub(super) fn open(plugin: Arc<ExternalPlugin>, config: Value, ctx: SinkContext) -> Result<Box<dyn Sink>> {
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
        self.call(move |inst, h| {
            // SAFETY: open handle; the string is borrowed for the call.
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
