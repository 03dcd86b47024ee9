//! The entry guard every `extern "C"` function of the SDK runs under: panics become
//! [`PIPE_ERROR_PANIC`], errors become a status code plus a message owned by this library.

use std::cell::{Cell, RefCell};
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use pipe_plugin_abi::{
    PIPE_ERROR, PIPE_ERROR_ABI, PIPE_ERROR_CANCELLED, PIPE_ERROR_CONFIG, PIPE_ERROR_PANIC, PIPE_OK, PipeError, PipeStr,
};

use crate::PluginError;

/// Why an entry point failed.
pub(crate) enum CallError {
    /// The plugin returned an error.
    Plugin(PluginError),
    /// `cancel` interrupted the call.
    Cancelled,
    /// The caller broke the contract (too-small struct, null pointer).
    Abi(String),
    /// An earlier call on the instance panicked; only `close` may follow.
    Poisoned,
}

impl From<PluginError> for CallError {
    fn from(e: PluginError) -> Self {
        CallError::Plugin(e)
    }
}

impl From<arrow_schema::ArrowError> for CallError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        CallError::Plugin(e.into())
    }
}

pub(crate) type CallResult<T = ()> = Result<T, CallError>;

thread_local! {
    /// Depth of entry guards on this thread: a panic inside one is reported as its error, a
    /// panic elsewhere (a task on the library's runtime) is logged.
    static IN_GUARD: Cell<u32> = const { Cell::new(0) };
    /// The last panic's message and location on this thread, set by the panic hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Whether the current thread is inside an entry guard.
pub(crate) fn in_guard() -> bool {
    IN_GUARD.with(Cell::get) > 0
}

/// Called by the library's panic hook with `message at file:line`.
pub(crate) fn record_panic(message: String) {
    LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
}

/// Runs `f`, catching panics, and reports its outcome as a status code (filling `err` on
/// failure). `on_panic` runs after a caught panic (to poison the instance).
pub(crate) fn guard(err: *mut PipeError, on_panic: impl FnOnce(), f: impl FnOnce() -> CallResult) -> i32 {
    IN_GUARD.with(|d| d.set(d.get() + 1));
    let outcome = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|d| d.set(d.get() - 1));
    match outcome {
        Ok(Ok(())) => PIPE_OK,
        Ok(Err(CallError::Plugin(PluginError::Config { path, message }))) => {
            fill_error(err, PIPE_ERROR_CONFIG, &message, Some(&path))
        }
        Ok(Err(CallError::Plugin(e))) => fill_error(err, PIPE_ERROR, &e.to_string(), None),
        Ok(Err(CallError::Cancelled)) => fill_error(err, PIPE_ERROR_CANCELLED, "cancelled", None),
        Ok(Err(CallError::Abi(m))) => fill_error(err, PIPE_ERROR_ABI, &m, None),
        Ok(Err(CallError::Poisoned)) => {
            fill_error(err, PIPE_ERROR_PANIC, "the plugin instance is unusable after an earlier panic", None)
        }
        Err(payload) => {
            let message = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| payload_text(payload.as_ref()));
            // Dropping the payload may itself panic (a payload with a panicking Drop); never let
            // that unwind out of an extern "C" fn.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            let _ = catch_unwind(AssertUnwindSafe(on_panic));
            fill_error(err, PIPE_ERROR_PANIC, &format!("panicked: {message}"), None)
        }
    }
}

/// Runs `f` for an entry point that cannot report errors (`cancel`, `close`): a panic is
/// swallowed, because there is nobody to tell.
pub(crate) fn guard_void(f: impl FnOnce()) {
    IN_GUARD.with(|d| d.set(d.get() + 1));
    let _ = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|d| d.set(d.get() - 1));
    LAST_PANIC.with(|p| p.borrow_mut().take());
}

fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

/// Fills `err` (if the caller passed one big enough) and returns `code`.
fn fill_error(err: *mut PipeError, code: i32, message: &str, path: Option<&str>) -> i32 {
    if err.is_null() {
        return code;
    }
    // SAFETY: the caller passes a valid, writable PipeError (or null, handled above); we only
    // touch the fields its struct_size says it has.
    unsafe {
        if ((*err).struct_size as usize) < std::mem::size_of::<PipeError>() {
            return code;
        }
        (*err).code = code;
        (*err).message = owned_c_string(message);
        (*err).config_path = path.map_or(std::ptr::null_mut(), owned_c_string);
    }
    code
}

/// A NUL-terminated copy of `s` owned by this library (freed by [`free_string`]). Interior NULs
/// become U+FFFD: a message must never fail to cross.
pub(crate) fn owned_c_string(s: &str) -> *mut c_char {
    let c = CString::new(s.replace('\0', "\u{FFFD}")).expect("NULs were replaced");
    c.into_raw()
}

/// `PipeLibraryV1::free_string`: frees a string from [`owned_c_string`].
pub(crate) unsafe extern "C" fn free_string(s: *mut c_char) {
    if s.is_null() {
        return;
    }
    guard_void(|| {
        // SAFETY: `s` came from CString::into_raw in this library and is freed once.
        drop(unsafe { CString::from_raw(s) });
    });
}

/// The string behind a borrowed [`PipeStr`].
///
/// # Safety
/// `s` must point to `len` readable bytes for the duration of the call.
pub(crate) unsafe fn str_arg<'a>(s: PipeStr, what: &str) -> CallResult<&'a str> {
    // SAFETY: guaranteed by the caller (the ABI's borrowed-string rule).
    let bytes = unsafe { s.as_bytes() };
    std::str::from_utf8(bytes).map_err(|_| CallError::Abi(format!("{what} is not UTF-8")))
}

/// Refuses a caller struct smaller than the v1 layout this library writes or reads.
pub(crate) fn check_size<T>(struct_size: u32, what: &str) -> CallResult {
    if (struct_size as usize) < std::mem::size_of::<T>() {
        return Err(CallError::Abi(format!(
            "{what}: struct_size {struct_size} is smaller than {} (ABI v1)",
            std::mem::size_of::<T>()
        )));
    }
    Ok(())
}

/// Parses JSON the host sent (a config, a state).
///
/// Errors: [`CallError::Abi`] naming `what`, when it is not JSON.
pub(crate) fn json_arg(text: &str, what: &str) -> CallResult<serde_json::Value> {
    serde_json::from_str(text).map_err(|e| CallError::Abi(format!("{what} is not JSON: {e}")))
}

/// The open arguments of one instance kind: a v1 struct whose first field is `struct_size`.
pub(crate) trait OpenArgs {
    /// The struct's C name, for errors.
    const NAME: &'static str;
    /// The caller's `sizeof` of the struct.
    fn struct_size(&self) -> u32;
}

macro_rules! open_args {
    ($($t:ident),*) => {$(
        impl OpenArgs for pipe_plugin_abi::$t {
            const NAME: &'static str = stringify!($t);
            fn struct_size(&self) -> u32 {
                self.struct_size
            }
        }
    )*};
}
open_args!(PipeSourceOpenArgsV1, PipeTransformOpenArgsV1, PipeSinkOpenArgsV1);

/// What every `open` entry point checks first: `args` and `out` are not null and `args` is at
/// least as large as the v1 layout.
///
/// # Safety
/// `args`, when not null, points to a struct of the ABI's open-args kind `A` (its first field is
/// `struct_size`) that stays valid for `'a`.
pub(crate) unsafe fn open_args<'a, A: OpenArgs>(args: *const A, out: *mut *mut std::ffi::c_void) -> CallResult<&'a A> {
    non_null(args, "args")?;
    non_null(out, "out")?;
    // SAFETY: non-null (above) and valid for 'a (the caller); struct_size is checked before any
    // other field is read.
    let args = unsafe { &*args };
    check_size::<A>(args.struct_size(), A::NAME)?;
    Ok(args)
}

/// Fails on a null pointer argument.
pub(crate) fn non_null<T>(p: *const T, what: &str) -> CallResult {
    if p.is_null() {
        return Err(CallError::Abi(format!("{what} is null")));
    }
    Ok(())
}
