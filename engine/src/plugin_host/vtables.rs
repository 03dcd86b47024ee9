//! A library's vtables, validated once at load: every v1 entry point present, so calls need no
//! further checks. Copies of the function pointers (the vtables are static in the library).

use pipe_plugin_abi as abi;

/// The entry points of one plugin, by kind.
#[derive(Clone, Copy)]
pub(super) enum Vtable {
    Source(SourceFns),
    Transform(TransformFns),
    Sink(SinkFns),
}

/// Copies `$field` out of a vtable, failing when the library left it null.
macro_rules! required {
    ($vt:expr, $what:literal, $($field:ident),+) => {
        Self { $($field: $vt.$field.ok_or_else(|| format!("{} entry point `{}` is null", $what, stringify!($field)))?),+ }
    };
}

fn check_size(struct_size: u32, size: usize, what: &str) -> Result<(), String> {
    if (struct_size as usize) < size {
        return Err(format!("{what} of {struct_size} bytes, smaller than v1 ({size})"));
    }
    Ok(())
}

/// A source's entry points.
#[derive(Clone, Copy)]
pub(super) struct SourceFns {
    pub open: abi::SourceOpenFn,
    pub stream_count: abi::SourceStreamCountFn,
    pub stream: abi::SourceStreamFn,
    pub next_event: abi::SourceNextEventFn,
    pub counters: abi::SourceCountersFn,
    pub cancel: abi::CancelFn,
    pub close: abi::CloseFn,
}

impl SourceFns {
    pub(super) fn from_raw(vt: Option<&abi::PipeSourceVTableV1>) -> Result<Self, String> {
        let vt = vt.ok_or("source vtable is null")?;
        check_size(vt.struct_size, size_of::<abi::PipeSourceVTableV1>(), "PipeSourceVTableV1")?;
        Ok(required!(vt, "source", open, stream_count, stream, next_event, counters, cancel, close))
    }
}

/// A transform's entry points.
#[derive(Clone, Copy)]
pub(super) struct TransformFns {
    pub open: abi::TransformOpenFn,
    pub output_stream: abi::TransformOutputStreamFn,
    pub transform: abi::TransformBatchFn,
    pub flush: abi::TransformFlushFn,
    pub next_output: abi::TransformNextOutputFn,
    pub cancel: abi::CancelFn,
    pub close: abi::CloseFn,
}

impl TransformFns {
    pub(super) fn from_raw(vt: Option<&abi::PipeTransformVTableV1>) -> Result<Self, String> {
        let vt = vt.ok_or("transform vtable is null")?;
        check_size(vt.struct_size, size_of::<abi::PipeTransformVTableV1>(), "PipeTransformVTableV1")?;
        Ok(required!(vt, "transform", open, output_stream, transform, flush, next_output, cancel, close))
    }
}

/// A sink's entry points.
#[derive(Clone, Copy)]
pub(super) struct SinkFns {
    pub open: abi::SinkOpenFn,
    pub write: abi::SinkWriteFn,
    pub commit: abi::SinkCommitFn,
    pub abort: abi::SinkAbortFn,
    pub stats: abi::SinkStatsFn,
    pub cancel: abi::CancelFn,
    pub close: abi::CloseFn,
}

impl SinkFns {
    pub(super) fn from_raw(vt: Option<&abi::PipeSinkVTableV1>) -> Result<Self, String> {
        let vt = vt.ok_or("sink vtable is null")?;
        check_size(vt.struct_size, size_of::<abi::PipeSinkVTableV1>(), "PipeSinkVTableV1")?;
        Ok(required!(vt, "sink", open, write, commit, abort, stats, cancel, close))
    }
}
