//! The source vtable: a [`Source`] behind the C ABI.

use std::ffi::c_void;
use std::sync::Arc;

use pipe_plugin_abi::{
    ArrowSchema, PIPE_EVENT_BATCH, PIPE_EVENT_CHECKPOINT, PIPE_EVENT_DEAD_LETTER, PIPE_EVENT_END, PipeError,
    PipeEventV1, PipePluginDescV1, PipeSourceCountersV1, PipeSourceOpenArgsV1, PipeSourceVTableV1, PipeStr,
    struct_size,
};

use super::guard::{CallError, check_size, guard, json_arg, non_null, open_args, str_arg};
use super::instance::{Instance, cancel, close};
use super::library::descriptor_of;
use super::runtime::{block_on_cancellable, runtime};
use super::{arrow, wire};
use crate::{Event, Metrics, PluginFactory, Source, SourceContext, StreamDecl};

/// The vtable every source of this library shares.
pub(crate) static VTABLE: PipeSourceVTableV1 = PipeSourceVTableV1 {
    struct_size: struct_size::<PipeSourceVTableV1>(),
    open: Some(open),
    stream_count: Some(stream_count),
    stream: Some(stream),
    next_event: Some(next_event),
    counters: Some(counters),
    cancel: Some(cancel::<SourceState>),
    close: Some(close::<SourceState>),
};

pub(crate) struct SourceState {
    source: Box<dyn Source>,
    streams: Vec<StreamDecl>,
    metrics: Arc<Metrics>,
    /// Backing store of the borrowed strings of the last event.
    last_stream: String,
    last_json: String,
}

unsafe extern "C" fn open(
    plugin: *const PipePluginDescV1,
    args: *const PipeSourceOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32 {
    guard(
        err,
        || {},
        || {
            // SAFETY: the host passes open args of this kind, borrowed for the call.
            let args = unsafe { open_args(args, out) }?;
            let PluginFactory::Source(factory) = &descriptor_of(plugin)?.factory else {
                return Err(CallError::Abi("not a source plugin".into()));
            };
            // SAFETY: the strings are borrowed for the call.
            let (pipeline, config, state) = unsafe {
                (
                    str_arg(args.pipeline, "pipeline")?,
                    str_arg(args.config_json, "config_json")?,
                    str_arg(args.state_json, "state_json")?,
                )
            };
            let config = json_arg(config, "config_json")?;
            let state = if state.is_empty() { None } else { Some(json_arg(state, "state_json")?) };
            let metrics = Arc::new(Metrics::default());
            let ctx = SourceContext {
                pipeline: pipeline.to_string(),
                state,
                limit: u64::try_from(args.limit).ok(),
                metrics: metrics.clone(),
            };
            // Sources may spawn their work on the runtime while opening.
            let source = {
                let _rt = runtime().enter();
                factory(config, ctx)?
            };
            let streams = source.streams();
            let state = SourceState { source, streams, metrics, last_stream: String::new(), last_json: String::new() };
            // SAFETY: `out` is non-null and writable.
            unsafe { *out = Instance::into_handle(state) };
            Ok(())
        },
    )
}

unsafe extern "C" fn stream_count(h: *mut c_void, out: *mut usize, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open source handle per the ABI.
    unsafe {
        Instance::<SourceState>::call(h, err, |s, _| {
            non_null(out, "out")?;
            *out = s.streams.len();
            Ok(())
        })
    }
}

unsafe extern "C" fn stream(
    h: *mut c_void,
    index: usize,
    name: *mut PipeStr,
    schema: *mut ArrowSchema,
    err: *mut PipeError,
) -> i32 {
    // SAFETY: `h` is an open source handle per the ABI.
    unsafe {
        Instance::<SourceState>::call(h, err, |s, _| {
            non_null(name, "name")?;
            non_null(schema, "schema")?;
            let decl = s.streams.get(index).ok_or_else(|| CallError::Abi(format!("no stream #{index}")))?;
            arrow::export_schema(&decl.schema, schema)?;
            // Borrowed until the instance is closed: the declarations never change.
            *name = PipeStr::new(&decl.name);
            Ok(())
        })
    }
}

unsafe extern "C" fn next_event(h: *mut c_void, out: *mut PipeEventV1, err: *mut PipeError) -> i32 {
    // SAFETY: `h` is an open source handle per the ABI.
    unsafe {
        Instance::<SourceState>::call(h, err, |s, cancel| {
            non_null(out, "out")?;
            let out = &mut *out;
            check_size::<PipeEventV1>(out.struct_size, "PipeEventV1")?;
            let event = block_on_cancellable(cancel, s.source.next())??;
            out.stream = PipeStr::EMPTY;
            out.json = PipeStr::EMPTY;
            match event {
                Event::Batch { stream, batch } => {
                    arrow::export_batch(&batch, &mut out.array, &mut out.schema)?;
                    s.last_stream = stream;
                    out.stream = PipeStr::new(&s.last_stream);
                    out.kind = PIPE_EVENT_BATCH;
                }
                Event::DeadLetter(dl) => {
                    s.last_json = wire::dead_letter_to_json(&dl);
                    out.json = PipeStr::new(&s.last_json);
                    out.kind = PIPE_EVENT_DEAD_LETTER;
                }
                Event::Checkpoint(cp) => {
                    s.last_json = wire::checkpoint_to_json(&cp);
                    out.json = PipeStr::new(&s.last_json);
                    out.kind = PIPE_EVENT_CHECKPOINT;
                }
                Event::End => out.kind = PIPE_EVENT_END,
            }
            Ok(())
        })
    }
}

unsafe extern "C" fn counters(h: *mut c_void, out: *mut PipeSourceCountersV1) -> i32 {
    // SAFETY: `h` is an open source handle per the ABI.
    unsafe {
        Instance::<SourceState>::call(h, std::ptr::null_mut(), |s, _| {
            non_null(out, "out")?;
            let out = &mut *out;
            check_size::<PipeSourceCountersV1>(out.struct_size, "PipeSourceCountersV1")?;
            out.requests = Metrics::get(&s.metrics.requests);
            out.retries = Metrics::get(&s.metrics.retries);
            out.conversations = Metrics::get(&s.metrics.conversations);
            out.messages = Metrics::get(&s.metrics.messages);
            out.throttled_until_ms = Metrics::get(&s.metrics.throttled_until_ms);
            Ok(())
        })
    }
}
