//! An open plugin instance behind an opaque handle: its state, its cancel token, and the
//! poison flag set by a panic.

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use pipe_plugin_abi::PipeError;
use tokio_util::sync::CancellationToken;

use super::guard::{CallError, CallResult, guard, guard_void};
use super::runtime::runtime;

/// One open instance of kind-specific state `S`.
pub(crate) struct Instance<S> {
    /// Fired by `cancel` (from any thread); every blocking call races against it.
    cancel: CancellationToken,
    /// Set when a call panicked: the state may be half-updated, so only `close` may follow.
    poisoned: AtomicBool,
    /// The host serialises calls on one instance; the lock turns a host bug into waiting
    /// instead of a data race.
    state: Mutex<S>,
}

impl<S> Instance<S> {
    /// Boxes a new instance and returns its handle.
    pub(crate) fn into_handle(state: S) -> *mut c_void {
        let instance =
            Instance { cancel: CancellationToken::new(), poisoned: AtomicBool::new(false), state: Mutex::new(state) };
        Box::into_raw(Box::new(instance)).cast()
    }

    /// The instance behind `h`.
    ///
    /// # Safety
    /// `h` must be null or a handle from [`Instance::into_handle`] with this `S`, not closed.
    unsafe fn from_handle<'a>(h: *mut c_void) -> CallResult<&'a Self> {
        // SAFETY: per the contract above.
        unsafe { h.cast::<Self>().as_ref() }.ok_or_else(|| CallError::Abi("instance handle is null".into()))
    }

    /// Runs an entry point on the instance `h` under the guard.
    ///
    /// # Safety
    /// As [`Instance::from_handle`].
    pub(crate) unsafe fn call(
        h: *mut c_void,
        err: *mut PipeError,
        f: impl FnOnce(&mut S, &CancellationToken) -> CallResult,
    ) -> i32 {
        // SAFETY: per the caller's contract.
        let this = match unsafe { Self::from_handle(h) } {
            Ok(this) => this,
            Err(e) => return guard(err, || {}, || Err(e)),
        };
        guard(
            err,
            || this.poisoned.store(true, Ordering::SeqCst),
            || {
                if this.poisoned.load(Ordering::SeqCst) {
                    return Err(CallError::Poisoned);
                }
                let mut state = this.state.lock().unwrap_or_else(PoisonError::into_inner);
                f(&mut state, &this.cancel)
            },
        )
    }
}

/// `cancel`: thread-safe, non-blocking; never touches the state.
///
/// # Safety
/// `h` must be an open handle of an `Instance<S>`.
pub(crate) unsafe extern "C" fn cancel<S>(h: *mut c_void) {
    guard_void(|| {
        // SAFETY: per the contract.
        if let Ok(this) = unsafe { Instance::<S>::from_handle(h) } {
            this.cancel.cancel();
        }
    });
}

/// `close`: frees the instance (inside the library's runtime, since dropping plugin state may
/// abort tasks or close sockets). A panic while dropping leaks what was left.
///
/// # Safety
/// `h` must be an open handle of an `Instance<S>` with no call in flight; it is invalid after.
pub(crate) unsafe extern "C" fn close<S>(h: *mut c_void) {
    if h.is_null() {
        return;
    }
    guard_void(|| {
        let _rt = runtime().enter();
        // SAFETY: the handle came from Box::into_raw in into_handle and is closed once.
        drop(unsafe { Box::from_raw(h.cast::<Instance<S>>()) });
    });
}
