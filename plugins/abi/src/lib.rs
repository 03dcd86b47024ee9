//! # pipe-plugin-abi
//!
//! The C ABI between `pipe` and plugins shipped as dynamic libraries (docs/design.md §5,
//! docs/plugin-abi.md §5). This crate *is* the ABI: `#[repr(C)]` structs, status codes, symbol
//! names, function-pointer types, and its own declarations of the Arrow C Data Interface
//! structs, so no arrow-rs type or version is part of it. `pipe_plugin.h` beside this crate
//! is the same ABI for C; a test checks that the two agree.
//!
//! ## Rules
//!
//! * A library exports exactly two symbols: [`SYMBOL_ABI_VERSION`] (checked first, stable
//!   forever) and [`SYMBOL_INIT_V1`]. ABI v2 would be a new init symbol, so one host can load
//!   v1 and v2 libraries side by side.
//! * Every struct starts with its size (`struct_size`) and only grows by appending fields.
//!   A reader refuses a struct smaller than the version it knows; appended function pointers
//!   may be null (not supported).
//! * All calls block. Calls on one instance are serialised by the host, except `cancel`, which
//!   may be called from any thread at any time before `close`.
//! * Nothing crosses as a Rust type. Strings going in are borrowed [`PipeStr`]s, valid for the
//!   call. Strings coming out in events are borrowed until the next call on the same instance.
//!   Error messages are owned by the library and freed with its
//!   [`PipeLibraryV1::free_string`], never by the host's allocator.
//! * Arrow data crosses as [`ArrowArray`] + [`ArrowSchema`]: an out-parameter is *moved* to
//!   the receiver (who calls its `release`); an `ArrowArray` passed in by pointer is moved to
//!   the callee, who takes it by leaving it released (`release == NULL`) — if the call fails
//!   before taking it, the caller still owns it and releases it; an `ArrowSchema` passed by
//!   `*const` is borrowed.
//! * No unwinding crosses the boundary: every entry point catches panics and reports
//!   [`PIPE_ERROR_PANIC`].
//!
//! ## Compatibility
//!
//! Within ABI 1 changes are additive only (fields appended to size-prefixed structs, optional
//! entry points that may be null, new status codes hosts read as [`PIPE_ERROR`]); anything an
//! existing library or host could observe needs ABI 2, a new init symbol. The full promise is
//! in this crate's `README.md`.

#![no_std]
#![deny(missing_docs)]

use core::ffi::{c_char, c_void};

/// The ABI version this crate describes. A host refuses a library that reports another one.
pub const ABI_VERSION: u32 = 1;

/// `uint32_t pipe_plugin_abi_version(void)`: answers the handshake; stable in every version.
pub const SYMBOL_ABI_VERSION: &str = "pipe_plugin_abi_version";
/// `int32_t pipe_plugin_init_v1(const PipeHostApiV1*, const PipeLibraryV1**, PipeError*)`.
pub const SYMBOL_INIT_V1: &str = "pipe_plugin_init_v1";

// ---------------------------------------------------------------------------------------------
// Status codes: the `int32_t` every fallible entry point returns.

/// Success.
pub const PIPE_OK: i32 = 0;
/// Failure; the message says why.
pub const PIPE_ERROR: i32 = 1;
/// The configuration is invalid; [`PipeError::config_path`] names the key (may be empty).
pub const PIPE_ERROR_CONFIG: i32 = 2;
/// The call was interrupted by `cancel`.
pub const PIPE_ERROR_CANCELLED: i32 = 3;
/// The plugin panicked; the instance is poisoned and only `close` may follow.
pub const PIPE_ERROR_PANIC: i32 = 4;
/// A transient failure (rate limit, timeout); trying again later may succeed.
pub const PIPE_ERROR_RETRYABLE: i32 = 5;
/// The caller broke the ABI contract (struct too small, null pointer, unknown plugin).
pub const PIPE_ERROR_ABI: i32 = 6;

// ---------------------------------------------------------------------------------------------
// Enumerations.

/// [`PipePluginDescV1::kind`]: a source (see [`PipeSourceVTableV1`]).
pub const PIPE_KIND_SOURCE: u32 = 1;
/// [`PipePluginDescV1::kind`]: a transform (see [`PipeTransformVTableV1`]).
pub const PIPE_KIND_TRANSFORM: u32 = 2;
/// [`PipePluginDescV1::kind`]: a sink (see [`PipeSinkVTableV1`]).
pub const PIPE_KIND_SINK: u32 = 3;

/// [`PipeEventV1::kind`]: nothing (a transform has no more outputs buffered).
pub const PIPE_EVENT_NONE: u32 = 0;
/// [`PipeEventV1::kind`]: rows of `stream` in `array` + `schema` (moved to the caller).
pub const PIPE_EVENT_BATCH: u32 = 1;
/// [`PipeEventV1::kind`]: a dead letter, as JSON in `json`
/// (`{"stream","key","stage","reason","message","raw"}`).
pub const PIPE_EVENT_DEAD_LETTER: u32 = 2;
/// [`PipeEventV1::kind`]: a checkpoint; `json` is the source state covering everything before.
pub const PIPE_EVENT_CHECKPOINT: u32 = 3;
/// [`PipeEventV1::kind`]: the source is done.
pub const PIPE_EVENT_END: u32 = 4;

/// Log level passed to [`PipeHostApiV1::log`]: error.
pub const PIPE_LOG_ERROR: u32 = 1;
/// Log level: warning.
pub const PIPE_LOG_WARN: u32 = 2;
/// Log level: information.
pub const PIPE_LOG_INFO: u32 = 3;
/// Log level: debug.
pub const PIPE_LOG_DEBUG: u32 = 4;
/// Log level: trace.
pub const PIPE_LOG_TRACE: u32 = 5;

// ---------------------------------------------------------------------------------------------
// Arrow C Data Interface (https://arrow.apache.org/docs/format/CDataInterface.html), declared
// here from the spec so the ABI does not depend on any Arrow implementation.

/// Arrow C Data Interface: a type description. Layout fixed by the Arrow spec.
#[repr(C)]
#[derive(Debug)]
pub struct ArrowSchema {
    /// Format string (`"+s"` for a struct, `"u"` for UTF-8, ...).
    pub format: *const c_char,
    /// Field name, or null.
    pub name: *const c_char,
    /// Binary-encoded key/value metadata, or null.
    pub metadata: *const c_char,
    /// `ARROW_FLAG_*` bits.
    pub flags: i64,
    /// Number of children.
    pub n_children: i64,
    /// Children, `n_children` pointers.
    pub children: *mut *mut ArrowSchema,
    /// Dictionary value type, or null.
    pub dictionary: *mut ArrowSchema,
    /// Frees the struct's contents; null once released.
    pub release: Option<unsafe extern "C" fn(schema: *mut ArrowSchema)>,
    /// Producer-owned data.
    pub private_data: *mut c_void,
}

/// Arrow C Data Interface: array data. Layout fixed by the Arrow spec.
#[repr(C)]
#[derive(Debug)]
pub struct ArrowArray {
    /// Logical length.
    pub length: i64,
    /// Number of nulls, or -1 if unknown.
    pub null_count: i64,
    /// Logical offset into the buffers.
    pub offset: i64,
    /// Number of buffers.
    pub n_buffers: i64,
    /// Number of children.
    pub n_children: i64,
    /// Buffers, `n_buffers` pointers.
    pub buffers: *mut *const c_void,
    /// Children, `n_children` pointers.
    pub children: *mut *mut ArrowArray,
    /// Dictionary values, or null.
    pub dictionary: *mut ArrowArray,
    /// Frees the struct's contents; null once released.
    pub release: Option<unsafe extern "C" fn(array: *mut ArrowArray)>,
    /// Producer-owned data.
    pub private_data: *mut c_void,
}

/// Arrow C Stream Interface: a pull stream of arrays. Layout fixed by the Arrow spec. Not used
/// by the v1 vtables (events carry one array each); declared so later versions can append
/// stream-based entry points.
#[repr(C)]
#[derive(Debug)]
pub struct ArrowArrayStream {
    /// Gets the stream's schema.
    pub get_schema: Option<unsafe extern "C" fn(stream: *mut ArrowArrayStream, out: *mut ArrowSchema) -> i32>,
    /// Gets the next array (released `out` at the end of the stream).
    pub get_next: Option<unsafe extern "C" fn(stream: *mut ArrowArrayStream, out: *mut ArrowArray) -> i32>,
    /// The last error's message, valid until the next call.
    pub get_last_error: Option<unsafe extern "C" fn(stream: *mut ArrowArrayStream) -> *const c_char>,
    /// Frees the stream; null once released.
    pub release: Option<unsafe extern "C" fn(stream: *mut ArrowArrayStream)>,
    /// Producer-owned data.
    pub private_data: *mut c_void,
}

impl ArrowSchema {
    /// A released (empty) schema, to be filled by a callee.
    pub const fn empty() -> Self {
        ArrowSchema {
            format: core::ptr::null(),
            name: core::ptr::null(),
            metadata: core::ptr::null(),
            flags: 0,
            n_children: 0,
            children: core::ptr::null_mut(),
            dictionary: core::ptr::null_mut(),
            release: None,
            private_data: core::ptr::null_mut(),
        }
    }
}

impl ArrowArray {
    /// A released (empty) array, to be filled by a callee.
    pub const fn empty() -> Self {
        ArrowArray {
            length: 0,
            null_count: 0,
            offset: 0,
            n_buffers: 0,
            n_children: 0,
            buffers: core::ptr::null_mut(),
            children: core::ptr::null_mut(),
            dictionary: core::ptr::null_mut(),
            release: None,
            private_data: core::ptr::null_mut(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plain data.

/// A borrowed UTF-8 string (not NUL-terminated), valid as long as the call or the contract
/// says. `ptr` may be null when `len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PipeStr {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl PipeStr {
    /// The empty string.
    pub const EMPTY: PipeStr = PipeStr { ptr: core::ptr::null(), len: 0 };

    /// Borrows `s` (the caller keeps it alive for as long as the `PipeStr` is used).
    pub const fn new(s: &str) -> Self {
        PipeStr { ptr: s.as_ptr(), len: s.len() }
    }

    /// The bytes, or an empty slice for a null pointer.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that outlive `'a`.
    pub unsafe fn as_bytes<'a>(self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: the caller guarantees `ptr..ptr+len` is readable for 'a.
            unsafe { core::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// An error reported by an entry point. The caller allocates it with `struct_size` set and
/// the pointers null; on failure the library fills `code`, `message` and maybe `config_path`.
/// Both strings are NUL-terminated UTF-8 owned by the library: the caller frees them with
/// [`PipeLibraryV1::free_string`].
#[repr(C)]
#[derive(Debug)]
pub struct PipeError {
    /// `sizeof(PipeError)` as the caller knows it.
    pub struct_size: u32,
    /// One of the `PIPE_ERROR_*` codes.
    pub code: i32,
    /// What went wrong, for people. Never contains a secret.
    pub message: *mut c_char,
    /// With [`PIPE_ERROR_CONFIG`]: the key path inside the plugin's table (`page_size`,
    /// `rules[2].tag`), empty for the table itself; otherwise null.
    pub config_path: *mut c_char,
}

impl PipeError {
    /// A cleared error, as a caller passes it in.
    pub const fn new() -> Self {
        PipeError {
            struct_size: core::mem::size_of::<PipeError>() as u32,
            code: PIPE_OK,
            message: core::ptr::null_mut(),
            config_path: core::ptr::null_mut(),
        }
    }
}

impl Default for PipeError {
    fn default() -> Self {
        Self::new()
    }
}

/// What the host offers a library at init. Thread-safe callbacks; valid for the life of the
/// process.
#[repr(C)]
#[derive(Debug)]
pub struct PipeHostApiV1 {
    /// `sizeof(PipeHostApiV1)` as the host knows it.
    pub struct_size: u32,
    /// The ABI version of the host ([`ABI_VERSION`]).
    pub abi_version: u32,
    /// The host's version (`pipe 0.1.0`), NUL-terminated.
    pub host_version: *const c_char,
    /// Forwards one log record to the host's logger; `level` is a `PIPE_LOG_*` value. May be
    /// null (the library then discards its logs).
    pub log: Option<unsafe extern "C" fn(level: u32, target: PipeStr, message: PipeStr)>,
    /// The most verbose `PIPE_LOG_*` level the host records; 0 = none.
    pub max_log_level: u32,
    /// Worker threads the library's runtime should use (0 = its own choice).
    pub worker_threads: u32,
}

/// What `pipe_plugin_init_v1` returns: static, owned by the library, never freed (libraries
/// are never unloaded). The first three fields never change in any ABI version.
#[repr(C)]
#[derive(Debug)]
pub struct PipeLibraryV1 {
    /// The library's ABI version ([`ABI_VERSION`]).
    pub abi_version: u32,
    /// `sizeof(PipeLibraryV1)` as the library knows it.
    pub struct_size: u32,
    /// How the library was built, NUL-terminated (`sdk=0.1.0 rustc=1.95.0 arrow=60.1.0
    /// target=x86_64-unknown-linux-gnu profile=release panic=unwind`). Informational: a
    /// rustc or arrow difference from the host is fine across a C ABI.
    pub build_info: *const c_char,
    /// The library's name (its crate), NUL-terminated.
    pub library_name: *const c_char,
    /// The library's version, NUL-terminated.
    pub library_version: *const c_char,
    /// Number of plugins in `plugins`.
    pub n_plugins: usize,
    /// The plugins this library ships (a library may ship a source and a sink of one vendor).
    pub plugins: *const PipePluginDescV1,
    /// Frees a string this library handed out (error messages).
    pub free_string: Option<unsafe extern "C" fn(s: *mut c_char)>,
}

/// One plugin of a library. Static; the pointer itself is passed back to `open` and
/// `check_config`, so one vtable can serve several plugins.
#[repr(C)]
#[derive(Debug)]
pub struct PipePluginDescV1 {
    /// `sizeof(PipePluginDescV1)` as the library knows it.
    pub struct_size: u32,
    /// `PIPE_KIND_SOURCE`, `PIPE_KIND_TRANSFORM` or `PIPE_KIND_SINK`.
    pub kind: u32,
    /// The name pipelines use (`plugin = "giosg"`), NUL-terminated.
    pub name: *const c_char,
    /// The plugin's version, NUL-terminated.
    pub version: *const c_char,
    /// One line for `pipe plugins`, NUL-terminated.
    pub description: *const c_char,
    /// JSON Schema of the plugin's config table, NUL-terminated JSON.
    pub config_schema_json: *const c_char,
    /// Checks a config without opening anything (no network, no files).
    pub check_config: Option<CheckConfigFn>,
    /// The source vtable when `kind == PIPE_KIND_SOURCE`, else null.
    pub source: *const PipeSourceVTableV1,
    /// The transform vtable when `kind == PIPE_KIND_TRANSFORM`, else null.
    pub transform: *const PipeTransformVTableV1,
    /// The sink vtable when `kind == PIPE_KIND_SINK`, else null.
    pub sink: *const PipeSinkVTableV1,
}

/// Arguments of [`PipeSourceVTableV1::open`].
#[repr(C)]
#[derive(Debug)]
pub struct PipeSourceOpenArgsV1 {
    /// `sizeof(PipeSourceOpenArgsV1)` as the host knows it.
    pub struct_size: u32,
    /// The pipeline's name (for logs).
    pub pipeline: PipeStr,
    /// The plugin's table as JSON, `${VAR}`s and secrets resolved.
    pub config_json: PipeStr,
    /// The last committed checkpoint's state as JSON; empty on a first run.
    pub state_json: PipeStr,
    /// Stop after this many conversations; negative = no limit.
    pub limit: i64,
}

/// One stream given to a sink at open: its name and the schema of its batches (borrowed).
#[repr(C)]
#[derive(Debug)]
pub struct PipeStreamV1 {
    /// Stream name (`messages`).
    pub name: PipeStr,
    /// Schema of every batch of the stream (a struct type); borrowed for the call.
    pub schema: *const ArrowSchema,
}

/// Arguments of [`PipeSinkVTableV1::open`].
#[repr(C)]
#[derive(Debug)]
pub struct PipeSinkOpenArgsV1 {
    /// `sizeof(PipeSinkOpenArgsV1)` as the host knows it.
    pub struct_size: u32,
    /// The pipeline's name.
    pub pipeline: PipeStr,
    /// The plugin's table as JSON.
    pub config_json: PipeStr,
    /// This run's identifier (unique; used in file names).
    pub run_id: PipeStr,
    /// Every stream the sink will receive.
    pub streams: *const PipeStreamV1,
    /// Number of entries in `streams`.
    pub n_streams: usize,
}

/// Arguments of [`PipeTransformVTableV1::open`].
#[repr(C)]
#[derive(Debug)]
pub struct PipeTransformOpenArgsV1 {
    /// `sizeof(PipeTransformOpenArgsV1)` as the host knows it.
    pub struct_size: u32,
    /// The pipeline's name.
    pub pipeline: PipeStr,
    /// The plugin's table as JSON.
    pub config_json: PipeStr,
}

/// An event of a source (`next_event`) or an output of a transform (`next_output`). The
/// caller allocates it with `struct_size` set and the arrays released; the callee fills it.
#[repr(C)]
#[derive(Debug)]
pub struct PipeEventV1 {
    /// `sizeof(PipeEventV1)` as the caller knows it.
    pub struct_size: u32,
    /// One of the `PIPE_EVENT_*` values.
    pub kind: u32,
    /// The stream of a batch; borrowed until the next call on the instance.
    pub stream: PipeStr,
    /// Dead letter or checkpoint JSON; borrowed until the next call on the instance.
    pub json: PipeStr,
    /// A batch's rows as a struct array; moved to the caller.
    pub array: ArrowArray,
    /// A batch's schema (a struct type, with the schema's metadata); moved to the caller.
    pub schema: ArrowSchema,
}

/// A source's run counters (monotonic), for the host's progress display and summary.
#[repr(C)]
#[derive(Debug, Default)]
pub struct PipeSourceCountersV1 {
    /// `sizeof(PipeSourceCountersV1)` as the caller knows it.
    pub struct_size: u32,
    /// HTTP requests sent (retries included).
    pub requests: u64,
    /// Requests that were retried.
    pub retries: u64,
    /// Conversations emitted.
    pub conversations: u64,
    /// Messages emitted.
    pub messages: u64,
    /// While the vendor throttles the source: when requests resume, in milliseconds since the
    /// Unix epoch; 0 when not throttled (a gauge, not a counter).
    pub throttled_until_ms: u64,
}

/// What a sink has committed so far.
#[repr(C)]
#[derive(Debug, Default)]
pub struct PipeSinkStatsV1 {
    /// `sizeof(PipeSinkStatsV1)` as the caller knows it.
    pub struct_size: u32,
    /// Files committed under their final names.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Rows committed.
    pub rows: u64,
}

// ---------------------------------------------------------------------------------------------
// Function-pointer types. `h` is an opaque instance handle from `open`.

/// `pipe_plugin_abi_version`.
pub type AbiVersionFn = unsafe extern "C" fn() -> u32;
/// `pipe_plugin_init_v1`: fills `*out` with the library descriptor. Idempotent.
pub type InitV1Fn =
    unsafe extern "C" fn(host: *const PipeHostApiV1, out: *mut *const PipeLibraryV1, err: *mut PipeError) -> i32;
/// Frees a string the library handed out.
pub type FreeStringFn = unsafe extern "C" fn(s: *mut c_char);
/// Checks a plugin's config JSON.
pub type CheckConfigFn =
    unsafe extern "C" fn(plugin: *const PipePluginDescV1, config_json: PipeStr, err: *mut PipeError) -> i32;
/// Thread-safe, non-blocking: makes the in-flight and every later call return
/// [`PIPE_ERROR_CANCELLED`] promptly.
pub type CancelFn = unsafe extern "C" fn(h: *mut c_void);
/// Frees the instance. No call on `h` may be in flight or follow.
pub type CloseFn = unsafe extern "C" fn(h: *mut c_void);

/// Opens a source instance.
pub type SourceOpenFn = unsafe extern "C" fn(
    plugin: *const PipePluginDescV1,
    args: *const PipeSourceOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32;
/// Number of streams the source declared.
pub type SourceStreamCountFn = unsafe extern "C" fn(h: *mut c_void, out: *mut usize, err: *mut PipeError) -> i32;
/// Stream `index`: its name (borrowed until the next call) and schema (moved to the caller).
pub type SourceStreamFn = unsafe extern "C" fn(
    h: *mut c_void,
    index: usize,
    name: *mut PipeStr,
    schema: *mut ArrowSchema,
    err: *mut PipeError,
) -> i32;
/// The next event (batch, dead letter, checkpoint, end). Blocks.
pub type SourceNextEventFn = unsafe extern "C" fn(h: *mut c_void, out: *mut PipeEventV1, err: *mut PipeError) -> i32;
/// The source's counters so far.
pub type SourceCountersFn = unsafe extern "C" fn(h: *mut c_void, out: *mut PipeSourceCountersV1) -> i32;

/// Opens a transform instance.
pub type TransformOpenFn = unsafe extern "C" fn(
    plugin: *const PipePluginDescV1,
    args: *const PipeTransformOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32;
/// Whether the transform touches stream `name` of schema `input`; if so (`*touched = 1`) the
/// schema of its output is moved to `out`.
pub type TransformOutputStreamFn = unsafe extern "C" fn(
    h: *mut c_void,
    name: PipeStr,
    input: *const ArrowSchema,
    out: *mut ArrowSchema,
    touched: *mut u32,
    err: *mut PipeError,
) -> i32;
/// Transforms one batch (`array` moved in, `schema` borrowed); the outputs are then read with
/// `next_output` until it yields [`PIPE_EVENT_NONE`].
pub type TransformBatchFn = unsafe extern "C" fn(
    h: *mut c_void,
    stream: PipeStr,
    array: *mut ArrowArray,
    schema: *const ArrowSchema,
    err: *mut PipeError,
) -> i32;
/// Releases what the transform buffered (before a checkpoint and at the end); outputs are read
/// with `next_output`.
pub type TransformFlushFn = unsafe extern "C" fn(h: *mut c_void, err: *mut PipeError) -> i32;
/// The next buffered output of `transform` or `flush` (batch or dead letter), or
/// [`PIPE_EVENT_NONE`].
pub type TransformNextOutputFn =
    unsafe extern "C" fn(h: *mut c_void, out: *mut PipeEventV1, err: *mut PipeError) -> i32;

/// Opens a sink instance.
pub type SinkOpenFn = unsafe extern "C" fn(
    plugin: *const PipePluginDescV1,
    args: *const PipeSinkOpenArgsV1,
    out: *mut *mut c_void,
    err: *mut PipeError,
) -> i32;
/// Writes one batch of `stream` (`array` moved in, `schema` borrowed).
pub type SinkWriteFn = unsafe extern "C" fn(
    h: *mut c_void,
    stream: PipeStr,
    array: *mut ArrowArray,
    schema: *const ArrowSchema,
    err: *mut PipeError,
) -> i32;
/// Makes everything written durable; `checkpoint_json` is the state being committed.
pub type SinkCommitFn = unsafe extern "C" fn(h: *mut c_void, checkpoint_json: PipeStr, err: *mut PipeError) -> i32;
/// Discards everything written since the last commit.
pub type SinkAbortFn = unsafe extern "C" fn(h: *mut c_void, err: *mut PipeError) -> i32;
/// What the sink has committed so far.
pub type SinkStatsFn = unsafe extern "C" fn(h: *mut c_void, out: *mut PipeSinkStatsV1) -> i32;

// ---------------------------------------------------------------------------------------------
// Vtables. Every v1 entry is required (the host refuses a null one); entries appended later
// are optional.

/// The entry points of a source.
#[repr(C)]
#[derive(Debug)]
pub struct PipeSourceVTableV1 {
    /// `sizeof(PipeSourceVTableV1)` as the library knows it.
    pub struct_size: u32,
    /// See [`SourceOpenFn`].
    pub open: Option<SourceOpenFn>,
    /// See [`SourceStreamCountFn`].
    pub stream_count: Option<SourceStreamCountFn>,
    /// See [`SourceStreamFn`].
    pub stream: Option<SourceStreamFn>,
    /// See [`SourceNextEventFn`].
    pub next_event: Option<SourceNextEventFn>,
    /// See [`SourceCountersFn`].
    pub counters: Option<SourceCountersFn>,
    /// See [`CancelFn`].
    pub cancel: Option<CancelFn>,
    /// See [`CloseFn`].
    pub close: Option<CloseFn>,
}

/// The entry points of a transform.
#[repr(C)]
#[derive(Debug)]
pub struct PipeTransformVTableV1 {
    /// `sizeof(PipeTransformVTableV1)` as the library knows it.
    pub struct_size: u32,
    /// See [`TransformOpenFn`].
    pub open: Option<TransformOpenFn>,
    /// See [`TransformOutputStreamFn`].
    pub output_stream: Option<TransformOutputStreamFn>,
    /// See [`TransformBatchFn`].
    pub transform: Option<TransformBatchFn>,
    /// See [`TransformFlushFn`].
    pub flush: Option<TransformFlushFn>,
    /// See [`TransformNextOutputFn`].
    pub next_output: Option<TransformNextOutputFn>,
    /// See [`CancelFn`].
    pub cancel: Option<CancelFn>,
    /// See [`CloseFn`].
    pub close: Option<CloseFn>,
}

/// The entry points of a sink.
#[repr(C)]
#[derive(Debug)]
pub struct PipeSinkVTableV1 {
    /// `sizeof(PipeSinkVTableV1)` as the library knows it.
    pub struct_size: u32,
    /// See [`SinkOpenFn`].
    pub open: Option<SinkOpenFn>,
    /// See [`SinkWriteFn`].
    pub write: Option<SinkWriteFn>,
    /// See [`SinkCommitFn`].
    pub commit: Option<SinkCommitFn>,
    /// See [`SinkAbortFn`].
    pub abort: Option<SinkAbortFn>,
    /// See [`SinkStatsFn`].
    pub stats: Option<SinkStatsFn>,
    /// See [`CancelFn`].
    pub cancel: Option<CancelFn>,
    /// See [`CloseFn`].
    pub close: Option<CloseFn>,
}

/// `sizeof` of a struct as a `struct_size` value.
pub const fn struct_size<T>() -> u32 {
    core::mem::size_of::<T>() as u32
}

// SAFETY: (all four) statics holding these descriptors live in libraries for the life of the
// process (libraries are never unloaded) and are only read after init; the raw pointers inside
// point to other such immutable statics, so sharing or sending them across threads is sound.
unsafe impl Sync for PipeLibraryV1 {}
// SAFETY: see above.
unsafe impl Send for PipeLibraryV1 {}
// SAFETY: see above.
unsafe impl Sync for PipePluginDescV1 {}
// SAFETY: see above.
unsafe impl Send for PipePluginDescV1 {}
