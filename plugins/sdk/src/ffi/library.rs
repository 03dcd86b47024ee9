//! The library descriptor this library exports, kept for the life of the process, and the way
//! back from a `PipePluginDescV1` pointer the host passes to an entry point to the SDK
//! [`PluginDescriptor`] it describes.
//!
//! [`super::export`] builds it (once, at `pipe_plugin_init_v1`); the vtables of
//! [`super::source`], [`super::transform`] and [`super::sink`] look their plugin up here. Neither
//! side imports the other, so the layering stays one way: export → vtables → library.

use std::ffi::CString;
use std::sync::OnceLock;

use pipe_plugin_abi::{PipeLibraryV1, PipePluginDescV1};

use super::guard::{CallError, CallResult};
use crate::PluginDescriptor;

/// The library descriptor and everything its pointers point into.
pub(crate) struct Exported {
    /// What `pipe_plugin_init_v1` hands out.
    pub(crate) c: PipeLibraryV1,
    /// The plugin descriptors `c.plugins` points to, in the order of `plugins`.
    pub(crate) descs: Box<[PipePluginDescV1]>,
    /// The SDK descriptor of each, by index.
    pub(crate) plugins: Vec<PluginDescriptor>,
    /// Owners of the C strings the descriptors point to.
    pub(crate) _strings: Vec<CString>,
}

/// Set once by [`super::export::init`]; libraries are never unloaded, so it lives forever.
pub(crate) static LIBRARY: OnceLock<Exported> = OnceLock::new();

/// The SDK descriptor behind a `PipePluginDescV1` pointer the host passed back.
///
/// Errors: [`CallError::Abi`] before init, or for a pointer this library did not hand out.
pub(crate) fn descriptor_of(plugin: *const PipePluginDescV1) -> CallResult<&'static PluginDescriptor> {
    let lib = LIBRARY.get().ok_or_else(|| CallError::Abi("the library was not initialised".into()))?;
    lib.descs
        .iter()
        .position(|d| std::ptr::eq(d, plugin))
        .map(|i| &lib.plugins[i])
        .ok_or_else(|| CallError::Abi("unknown plugin descriptor pointer".into()))
}
