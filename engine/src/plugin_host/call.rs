//! Calling into a library, whatever the plugin kind: errors back into [`PluginError`]s
//! (strings freed by the library's own `free_string`), Arrow structs that release whatever a
//! callee did not take, events read out before the next call invalidates them, and blocking
//! calls from synchronous engine code. Depends on nothing else of the plugin host.

use std::ffi::CStr;

use arrow_array::RecordBatch;
use pipe_plugin_abi::{
    ArrowArray, ArrowSchema, FreeStringFn, PIPE_ERROR_CONFIG, PIPE_EVENT_BATCH, PIPE_EVENT_NONE, PipeError,
    PipeEventV1, PipeStr, struct_size,
};
use pipe_plugin_sdk::ffi::arrow;
use pipe_plugin_sdk::{PluginError, Result, StreamDecl};

/// Turns a failed call's `PipeError` into a [`PluginError`], freeing its strings with the
/// library's allocator.
///
/// # Safety
/// `err` must have been filled by the library whose `free_string` is given.
pub(super) unsafe fn take_error(free_string: FreeStringFn, code: i32, err: &mut PipeError) -> PluginError {
    let take = |p: &mut *mut std::ffi::c_char| -> Option<String> {
        if p.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string from the library, freed exactly once, by it.
        let s = unsafe { CStr::from_ptr(*p) }.to_string_lossy().into_owned();
        // SAFETY: the string came from this library and is freed once; `*p` is nulled below.
        unsafe { free_string(*p) };
        *p = std::ptr::null_mut();
        Some(s)
    };
    let message = take(&mut err.message).unwrap_or_else(|| format!("failed with status {code} and no message"));
    let path = take(&mut err.config_path);
    match code {
        PIPE_ERROR_CONFIG => PluginError::Config { path: path.unwrap_or_default(), message },
        _ => PluginError::Other(message),
    }
}

/// An `ArrowSchema` we own: released on drop unless it was moved away (release set to null).
pub(super) struct OwnedSchema(pub ArrowSchema);

impl OwnedSchema {
    pub(super) fn empty() -> Self {
        OwnedSchema(ArrowSchema::empty())
    }
}

impl Drop for OwnedSchema {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: an unreleased schema we own, released once (release nulls the field).
            unsafe { release(&mut self.0) };
        }
    }
}

/// An `ArrowArray` we own: released on drop unless a callee took it.
pub(super) struct OwnedArray(pub ArrowArray);

impl OwnedArray {
    pub(super) fn empty() -> Self {
        OwnedArray(ArrowArray::empty())
    }
}

impl Drop for OwnedArray {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: an unreleased array we own, released once.
            unsafe { release(&mut self.0) };
        }
    }
}

/// Runs a blocking plugin call from synchronous engine code (a factory, `output_stream`):
/// on a runtime worker it tells tokio to move other tasks away first, elsewhere it just runs.
pub(super) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// `name: type` of each field, for error messages.
fn field_names(schema: &arrow_schema::Schema) -> Vec<String> {
    schema.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect()
}

/// A new event struct for a callee to fill.
pub(super) fn empty_event() -> PipeEventV1 {
    PipeEventV1 {
        struct_size: struct_size::<PipeEventV1>(),
        kind: PIPE_EVENT_NONE,
        stream: PipeStr::EMPTY,
        json: PipeStr::EMPTY,
        array: ArrowArray::empty(),
        schema: ArrowSchema::empty(),
    }
}

/// What an event carries, copied out before the next call invalidates its borrowed strings.
/// Whatever Arrow data the event holds is imported (or released) here.
pub(super) fn read_event(
    ev: PipeEventV1,
    streams: &[StreamDecl],
    plugin: &str,
) -> Result<(u32, String, Option<RecordBatch>, String)> {
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
        // A batch is used only on a stream the plugin declared, with exactly that stream's
        // schema, and after Arrow's full validation of its buffers (in the import): a buggy
        // library gets an error naming it, never undefined behaviour in the engine.
        let Some(declared) = streams.iter().find(|d| d.name == stream) else {
            let names: Vec<&str> = streams.iter().map(|d| d.name.as_str()).collect();
            return Err(PluginError::other(format!(
                "plugin `{plugin}` sent a batch on stream `{stream}`, which it did not declare (declared: {})",
                names.join(", ")
            )));
        };
        // SAFETY: both were moved to us by the callee; import leaves them released.
        let batch =
            unsafe { arrow::import_owned_batch(&mut array.0, &mut schema.0, Some(&declared.schema)) }.map_err(|e| {
                PluginError::other(format!("plugin `{plugin}` sent an invalid batch on stream `{stream}`: {e}"))
            })?;
        if batch.schema().fields() != declared.schema.fields() {
            return Err(PluginError::other(format!(
                "plugin `{plugin}` sent a batch on stream `{stream}` whose schema differs from the one it declared: declared {:?}, sent {:?}",
                field_names(&declared.schema),
                field_names(&batch.schema())
            )));
        }
        Some(batch)
    } else {
        None
    };
    Ok((ev.kind, stream, batch, json))
}
