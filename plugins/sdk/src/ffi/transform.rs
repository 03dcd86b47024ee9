//! The transform vtable: a [`Transform`] behind the C ABI. Outputs of `transform` and `flush`
//! are buffered here and read one by one with `next_output`, so each crosses as one event.

use std::collections::VecDeque;
use std::ffi::c_void;
use std::sync::Arc;

use pipe_plugin_abi::{
    ArrowArray, ArrowSchema, PIPE_EVENT_BATCH, PIPE_EVENT_DEAD_LETTER, PIPE_EVENT_NONE, PipeError, PipeEventV1,
    PipePluginDescV1, PipeStr, PipeTransformOpenArgsV1, PipeTransformVTableV1, struct_size,
};

use super::guard::{CallError, check_size, guard, json_arg, non_null, open_args, str_arg};
use super::instance::{Instance, cancel, close};
use super::library::descriptor_of;
use super::runtime::{block_on_cancellable, runtime};
use super::{arrow, wire};
use crate::{Metrics, PluginFactory, StreamDecl, Transform, TransformContext, TransformOutput};

/// The vtable every transform of this library shares.
pub(crate) static VTABLE: PipeTransformVTableV1 = PipeTransformVTableV1 {
    struct_size: struct_size::<PipeTransformVTableV1>(),
    open: Some(open),
    output_stream: Some(output_stream),
    transform: Some(transform),
    flush: Some(flush),
    next_output: Some(next_output),
    cancel: Some(cancel::<TransformState>),
    close: Some(close::<TransformState>),
};

pub(crate) struct TransformState {
    transform: Box<dyn Transform>,
    /// Input schemas by stream, as declared through `output_stream`.
    inputs: Vec<StreamDecl>,
    pending: VecDeque<(String, TransformOutput)>,
    last_stream: String,
    last_json: String,
}

unsafe extern "C" fn open(
    plugin: *const PipePluginDescV1,
    args: *const PipeTransformOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32 {
    guard(
        err,
        || {},
        || {
            // SAFETY: the host passes open args of this kind, borrowed for the call.
            let args = unsafe { open_args(args, out) }?;
            let PluginFactory::Transform(factory) = &descriptor_of(plugin)?.factory else {
                return Err(CallError::Abi("not a transform plugin".into()));
            };
            // SAFETY: borrowed for the call.
            let (pipeline, config) =
                unsafe { (str_arg(args.pipeline, "pipeline")?, str_arg(args.config_json, "config_json")?) };
            let config = json_arg(config, "config_json")?;
            // The library's own counters: ABI v1 has no transform counters to report them with.
            let ctx = TransformContext { pipeline: pipeline.to_string(), metrics: Arc::new(Metrics::default()) };
            let transform = {
                let _rt = runtime().enter();
                factory(config, ctx)?
            };
            let state = TransformState {
                transform,
                inputs: Vec::new(),
                pending: VecDeque::new(),
                last_stream: String::new(),
                last_json: String::new(),
            };
            // SAFETY: `out` is non-null and writable.
            unsafe { *out = Instance::into_handle(state) };
            Ok(())
        },
    )
}

unsafe extern "C" fn output_stream(
    h: *mut c_void,
    name: PipeStr,
    input: *const ArrowSchema,
    out: *mut ArrowSchema,
    touched: *mut u32,
    err: *mut PipeError,
) -> i32 {
    // SAFETY: `h` is an open transform handle; the other pointers per the ABI.
    unsafe {
        Instance::<TransformState>::call(h, err, |s, _| {
            non_null(input, "input")?;
            non_null(out, "out")?;
            non_null(touched, "touched")?;
            let decl = StreamDecl {
                name: str_arg(name, "name")?.to_string(),
                schema: Arc::new(arrow::schema_from_borrowed(input)?),
            };
            let output = s.transform.output_stream(&decl);
            s.inputs.retain(|d| d.name != decl.name);
            s.inputs.push(decl);
            match output {
                Some(o) => {
                    arrow::export_schema(&o.schema, out)?;
                    *touched = 1;
                }
                None => *touched = 0,
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn transform(
    h: *mut c_void,
    stream: PipeStr,
    array: *mut ArrowArray,
    schema: *const ArrowSchema,
    err: *mut PipeError,
) -> i32 {
    // SAFETY: `h` is an open transform handle; the array is moved to us, the schema borrowed.
    unsafe {
        Instance::<TransformState>::call(h, err, |s, cancel| {
            non_null(array, "array")?;
            non_null(schema, "schema")?;
            let stream = str_arg(stream, "stream")?.to_string();
            let declared = s.inputs.iter().find(|d| d.name == stream).map(|d| &d.schema);
            let batch = arrow::import_batch(array, schema, declared)?;
            let outputs = block_on_cancellable(cancel, s.transform.transform(&stream, batch))??;
            s.pending.extend(outputs.into_iter().map(|o| (stream.clone(), o)));
            Ok(())
        })
    }
}

unsafe extern "C" fn flush(h: *mut c_void, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open transform handle.
    unsafe {
        Instance::<TransformState>::call(h, err, |s, cancel| {
            let outputs = block_on_cancellable(cancel, s.transform.flush())??;
            s.pending.extend(outputs);
            Ok(())
        })
    }
}

unsafe extern "C" fn next_output(h: *mut c_void, out: *mut PipeEventV1, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open transform handle; `out` per the ABI.
    unsafe {
        Instance::<TransformState>::call(h, err, |s, _| {
            non_null(out, "out")?;
            let out = &mut *out;
            check_size::<PipeEventV1>(out.struct_size, "PipeEventV1")?;
            out.stream = PipeStr::EMPTY;
            out.json = PipeStr::EMPTY;
            match s.pending.pop_front() {
                None => out.kind = PIPE_EVENT_NONE,
                Some((stream, TransformOutput::Batch(batch))) => {
                    arrow::export_batch(&batch, &mut out.array, &mut out.schema)?;
                    s.last_stream = stream;
                    out.stream = PipeStr::new(&s.last_stream);
                    out.kind = PIPE_EVENT_BATCH;
                }
                Some((stream, TransformOutput::DeadLetter(dl))) => {
                    s.last_stream = stream;
                    s.last_json = wire::dead_letter_to_json(&dl);
                    out.stream = PipeStr::new(&s.last_stream);
                    out.json = PipeStr::new(&s.last_json);
                    out.kind = PIPE_EVENT_DEAD_LETTER;
                }
            }
            Ok(())
        })
    }
}
