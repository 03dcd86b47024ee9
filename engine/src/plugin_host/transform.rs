//! A transform of a loaded library as the SDK's [`Transform`]: the consumer side of the
//! transform vtable that `pipe_plugin_sdk::ffi`'s `transform.rs` produces. `transform` and
//! `flush` run on tokio's blocking pool and then drain the library's outputs one event at a
//! time (`next_output`); `output_stream` and open use `block_in_place`.

use std::sync::{Arc, Mutex};

use arrow_array::RecordBatch;
use pipe_plugin_abi::{
    PIPE_EVENT_BATCH, PIPE_EVENT_DEAD_LETTER, PIPE_EVENT_NONE, PipeStr, PipeTransformOpenArgsV1, struct_size,
};
use pipe_plugin_sdk::ffi::{arrow, wire};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{PluginError, Result, StreamDecl, Transform, TransformContext, TransformOutput};
use serde_json::Value;

use super::call::{OwnedArray, OwnedSchema, blocking, empty_event, read_event};
use super::external::ExternalPlugin;
use super::instance::Instance;
use super::vtables::TransformFns;

/// Opens a transform of a loaded library.
///
/// `ctx.metrics` stays unused: the C ABI v1 carries no transform counters back.
pub(super) fn open(plugin: Arc<ExternalPlugin>, config: Value, ctx: TransformContext) -> Result<Box<dyn Transform>> {
    let fns = plugin.transform_fns();
    let config = config.to_string();
    let args = PipeTransformOpenArgsV1 {
        struct_size: struct_size::<PipeTransformOpenArgsV1>(),
        pipeline: PipeStr::new(&ctx.pipeline),
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
                    let read = read_event(ev, &outputs, inst.plugin.name);
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
