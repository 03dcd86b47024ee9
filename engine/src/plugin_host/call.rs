//! Calling into a library: errors back into [`PluginError`]s (strings freed by the library's
//! own `free_string`), open instances that close themselves, and Arrow structs that release
//! whatever a callee did not take.

use std::ffi::{CStr, c_void};
use std::sync::{Arc, Mutex, PoisonError};

use pipe_plugin_abi::{
    ArrowArray, ArrowSchema, CancelFn, CloseFn, FreeStringFn, PIPE_ERROR_ABI, PIPE_ERROR_CANCELLED, PIPE_ERROR_CONFIG,
    PIPE_ERROR_PANIC, PIPE_OK, PipeError,
};
use pipe_plugin_sdk::PluginError;

use super::loader::ExternalPlugin;

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

impl ExternalPlugin {
    /// Runs one call that reports a status, turning a failure into an error that says which
    /// plugin and entry point failed when that is not obvious from the plugin's own message.
    pub(super) fn status(&self, entry: &str, call: impl FnOnce(*mut PipeError) -> i32) -> Result<(), PluginError> {
        let mut err = PipeError::new();
        let code = call(&mut err);
        if code == PIPE_OK {
            return Ok(());
        }
        // SAFETY: `err` was filled by this plugin's library.
        let e = unsafe { take_error(self.free_string, code, &mut err) };
        Err(match (code, e) {
            (PIPE_ERROR_CONFIG, e) => e,
            (PIPE_ERROR_PANIC, e) => PluginError::Other(format!("plugin `{}` {e} (in `{entry}`)", self.name)),
            (PIPE_ERROR_CANCELLED, _) => PluginError::Other(format!("plugin `{}`: `{entry}` was cancelled", self.name)),
            (PIPE_ERROR_ABI, e) => PluginError::Other(format!("plugin `{}`: ABI error in `{entry}`: {e}", self.name)),
            // The plugin's own message, exactly as the built-in would have raised it.
            (_, e) => e,
        })
    }
}

/// An open plugin instance. Calls are serialised by the lock (the ABI's threading contract);
/// `cancel` is not, by design. Dropping the last reference closes it, so a call still running
/// on a blocking thread keeps the instance alive until it returns.
pub(super) struct Instance {
    handle: Handle,
    cancel: CancelFn,
    close: CloseFn,
    pub(super) plugin: Arc<ExternalPlugin>,
    lock: Mutex<()>,
}

/// The opaque handle; only ever used under the ABI's rules.
struct Handle(*mut c_void);
// SAFETY: the ABI lets any thread call an instance (one at a time, which `Instance::lock`
// ensures) and `cancel` from any thread at any time.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

impl Instance {
    pub(super) fn new(handle: *mut c_void, cancel: CancelFn, close: CloseFn, plugin: Arc<ExternalPlugin>) -> Self {
        Instance { handle: Handle(handle), cancel, close, plugin, lock: Mutex::new(()) }
    }

    /// Runs `f` with the handle, no other call on this instance running.
    pub(super) fn with<T>(&self, f: impl FnOnce(*mut c_void) -> T) -> T {
        let _serialised = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        f(self.handle.0)
    }

    /// Interrupts a call in flight (and makes later ones fail): thread-safe, non-blocking.
    pub(super) fn cancel(&self) {
        // SAFETY: the handle is open until drop; cancel may race any call.
        unsafe { (self.cancel)(self.handle.0) }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: no other reference exists, so no call is in flight; the handle is closed once.
        unsafe { (self.close)(self.handle.0) }
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
