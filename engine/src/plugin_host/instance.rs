//! An open instance of a library plugin: its opaque handle, closed exactly once when the last
//! reference goes, and the lock that serialises calls on it (the ABI's threading contract).

use std::ffi::c_void;
use std::sync::{Arc, Mutex, PoisonError};

use pipe_plugin_abi::{CancelFn, CloseFn};

use super::external::ExternalPlugin;

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
