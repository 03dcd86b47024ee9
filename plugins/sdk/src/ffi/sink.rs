//! The sink vtable: a [`Sink`] behind the C ABI.

use std::ffi::c_void;
use std::sync::Arc;

use pipe_plugin_abi::{
    ArrowArray, ArrowSchema, PipeError, PipePluginDescV1, PipeSinkOpenArgsV1, PipeSinkStatsV1, PipeSinkVTableV1,
    PipeStr, PipeStreamV1, struct_size,
};

use super::guard::{CallError, check_size, guard, json_arg, non_null, open_args, str_arg};
use super::instance::{Instance, cancel, close};
use super::library::descriptor_of;
use super::runtime::{block_on_cancellable, runtime};
use super::{arrow, wire};
use crate::{PluginFactory, Sink, SinkContext, StreamDecl};

/// The vtable every sink of this library shares.
pub(crate) static VTABLE: PipeSinkVTableV1 = PipeSinkVTableV1 {
    struct_size: struct_size::<PipeSinkVTableV1>(),
    open: Some(open),
    write: Some(write),
    commit: Some(commit),
    abort: Some(abort),
    stats: Some(stats),
    cancel: Some(cancel::<SinkState>),
    close: Some(close::<SinkState>),
};

pub(crate) struct SinkState {
    sink: Box<dyn Sink>,
    streams: Vec<StreamDecl>,
}

unsafe extern "C" fn open(
    plugin: *const PipePluginDescV1,
    args: *const PipeSinkOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32 {
    guard(
        err,
        || {},
        || {
            // SAFETY: the host passes open args of this kind, borrowed for the call.
            let args = unsafe { open_args(args, out) }?;
            let PluginFactory::Sink(factory) = &descriptor_of(plugin)?.factory else {
                return Err(CallError::Abi("not a sink plugin".into()));
            };
            // SAFETY: the strings and the stream array are borrowed for the call.
            let (pipeline, config, run_id) = unsafe {
                (
                    str_arg(args.pipeline, "pipeline")?,
                    str_arg(args.config_json, "config_json")?,
                    str_arg(args.run_id, "run_id")?,
                )
            };
            let raw_streams: &[PipeStreamV1] = if args.n_streams == 0 {
                &[]
            } else {
                non_null(args.streams, "streams")?;
                // SAFETY: `n_streams` entries, borrowed for the call.
                unsafe { std::slice::from_raw_parts(args.streams, args.n_streams) }
            };
            let mut streams = Vec::with_capacity(raw_streams.len());
            for s in raw_streams {
                non_null(s.schema, "stream schema")?;
                // SAFETY: borrowed for the call.
                let (name, schema) =
                    unsafe { (str_arg(s.name, "stream name")?, arrow::schema_from_borrowed(s.schema)?) };
                streams.push(StreamDecl { name: name.to_string(), schema: Arc::new(schema) });
            }
            let ctx =
                SinkContext { pipeline: pipeline.to_string(), streams: streams.clone(), run_id: run_id.to_string() };
            let sink = {
                let _rt = runtime().enter();
                factory(json_arg(config, "config_json")?, ctx)?
            };
            // SAFETY: `out` is non-null and writable.
            unsafe { *out = Instance::into_handle(SinkState { sink, streams }) };
            Ok(())
        },
    )
}

unsafe extern "C" fn write(
    h: *mut c_void,
    stream: PipeStr,
    array: *mut ArrowArray,
    schema: *const ArrowSchema,
    err: *mut PipeError,
) -> i32 {
    // SAFETY: `h` is an open sink handle; the array is moved to us, the schema borrowed.
    unsafe {
        Instance::<SinkState>::call(h, err, |s, cancel| {
            non_null(array, "array")?;
            non_null(schema, "schema")?;
            let stream = str_arg(stream, "stream")?;
            let declared = s.streams.iter().find(|d| d.name == stream).map(|d| &d.schema);
            let batch = arrow::import_batch(array, schema, declared)?;
            block_on_cancellable(cancel, s.sink.write(stream, &batch))??;
            Ok(())
        })
    }
}

unsafe extern "C" fn commit(h: *mut c_void, checkpoint_json: PipeStr, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open sink handle; the string is borrowed for the call.
    unsafe {
        Instance::<SinkState>::call(h, err, |s, cancel| {
            let cp = wire::checkpoint_from_json(str_arg(checkpoint_json, "checkpoint_json")?)?;
            block_on_cancellable(cancel, s.sink.commit(&cp))??;
            Ok(())
        })
    }
}

unsafe extern "C" fn abort(h: *mut c_void, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open sink handle.
    unsafe {
        Instance::<SinkState>::call(h, err, |s, _| {
            // Not cancellable: abort is what cleans up after a cancelled run.
            runtime().block_on(s.sink.abort())?;
            Ok(())
        })
    }
}

unsafe extern "C" fn stats(h: *mut c_void, out: *mut PipeSinkStatsV1) -> i32 {
    // SAFETY: `h` is an open sink handle; `out` per the ABI.
    unsafe {
        Instance::<SinkState>::call(h, std::ptr::null_mut(), |s, _| {
            non_null(out, "out")?;
            let out = &mut *out;
            check_size::<PipeSinkStatsV1>(out.struct_size, "PipeSinkStatsV1")?;
            let st = s.sink.stats();
            out.files = st.files;
            out.bytes = st.bytes;
            out.rows = st.rows;
            Ok(())
        })
    }
}
