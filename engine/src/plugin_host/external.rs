//! One plugin of a loaded library, as the engine holds it: what the library's
//! `PipePluginDescV1` says (name, kind, version, config JSON Schema), its validated entry points,
//! and the library's `free_string` for the messages of failed calls.
//!
//! The adapters ([`super::source`], [`super::transform`], [`super::sink`]) open it; the
//! descriptor ([`super::descriptor`]) makes it look like a built-in to the rest of the engine.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};

use pipe_plugin_abi::{
    FreeStringFn, PIPE_ERROR_ABI, PIPE_ERROR_CANCELLED, PIPE_ERROR_CONFIG, PIPE_ERROR_PANIC, PIPE_KIND_SINK,
    PIPE_KIND_SOURCE, PIPE_KIND_TRANSFORM, PIPE_OK, PipeError, PipePluginDescV1, PipeStr,
};
use pipe_plugin_sdk::{PluginError, PluginKind, Result};
use serde_json::Value;

use super::call::{blocking, take_error};
use super::vtables::{SinkFns, SourceFns, TransformFns, Vtable};

/// One plugin of a loaded library.
pub struct ExternalPlugin {
    /// Name used in pipelines.
    pub name: &'static str,
    /// The plugin's version.
    pub version: &'static str,
    /// One line for `pipe plugins`.
    pub description: &'static str,
    /// Source, transform or sink.
    pub kind: PluginKind,
    /// The plugin's config JSON Schema.
    pub config_schema: Value,
    /// The library it lives in.
    pub library_path: PathBuf,
    /// Passed back to `open` and `check_config`.
    pub(super) desc: &'static PipePluginDescV1,
    /// The library's `free_string`.
    pub(super) free_string: FreeStringFn,
    /// Validated entry points.
    pub(super) vtable: Vtable,
}

impl ExternalPlugin {
    /// Reads and validates one plugin descriptor of the library at `path` (sizes, strings,
    /// kind, every entry point of its vtable), so later calls need no checks.
    ///
    /// Errors: the one-line reason the descriptor is unusable.
    pub(super) fn from_desc(
        p: &'static PipePluginDescV1,
        path: &Path,
        free_string: FreeStringFn,
    ) -> Result<ExternalPlugin, String> {
        if (p.struct_size as usize) < std::mem::size_of::<PipePluginDescV1>() {
            return Err(format!("PipePluginDescV1 of {} bytes, smaller than v1", p.struct_size));
        }
        // Names and versions live as long as the library, i.e. forever; 'static copies keep the
        // descriptor type the same as a built-in's.
        let leak = |what: &str, ptr: *const c_char| -> Result<&'static str, String> {
            if ptr.is_null() {
                return Err(format!("{what} is null"));
            }
            // SAFETY: non-null, NUL-terminated, static in the library.
            let s = unsafe { CStr::from_ptr(ptr) }.to_str().map_err(|_| format!("{what} is not UTF-8"))?;
            Ok(Box::leak(s.to_owned().into_boxed_str()))
        };
        let name = leak("name", p.name)?;
        if name.is_empty() {
            return Err("empty plugin name".into());
        }
        let schema_text = leak("config_schema_json", p.config_schema_json)?;
        let config_schema =
            serde_json::from_str(schema_text).map_err(|e| format!("`{name}`: config schema is not JSON: {e}"))?;
        if p.check_config.is_none() {
            return Err(format!("`{name}`: check_config is null"));
        }
        let (kind, vtable) = match p.kind {
            PIPE_KIND_SOURCE => {
                // SAFETY: a non-null vtable is static in the library.
                (PluginKind::Source, Vtable::Source(SourceFns::from_raw(unsafe { p.source.as_ref() })?))
            }
            PIPE_KIND_TRANSFORM => {
                // SAFETY: as above.
                (PluginKind::Transform, Vtable::Transform(TransformFns::from_raw(unsafe { p.transform.as_ref() })?))
            }
            // SAFETY: as above.
            PIPE_KIND_SINK => (PluginKind::Sink, Vtable::Sink(SinkFns::from_raw(unsafe { p.sink.as_ref() })?)),
            other => return Err(format!("`{name}`: unknown plugin kind {other}")),
        };
        Ok(ExternalPlugin {
            name,
            version: leak("version", p.version)?,
            description: leak("description", p.description)?,
            kind,
            config_schema,
            library_path: path.to_path_buf(),
            desc: p,
            free_string,
            vtable,
        })
    }

    pub(super) fn source_fns(&self) -> SourceFns {
        match self.vtable {
            Vtable::Source(f) => f,
            _ => unreachable!("the registry resolves `{}` as a source only if it is one", self.name),
        }
    }

    pub(super) fn transform_fns(&self) -> TransformFns {
        match self.vtable {
            Vtable::Transform(f) => f,
            _ => unreachable!("the registry resolves `{}` as a transform only if it is one", self.name),
        }
    }

    pub(super) fn sink_fns(&self) -> SinkFns {
        match self.vtable {
            Vtable::Sink(f) => f,
            _ => unreachable!("the registry resolves `{}` as a sink only if it is one", self.name),
        }
    }

    /// `check_config` through the library.
    ///
    /// Errors: [`PluginError::Config`] with the key path the library reported, or the call's
    /// failure (a panic, an ABI error) naming the plugin.
    pub(super) fn check_config(&self, config: &Value) -> Result<()> {
        let json = config.to_string();
        let check = self.desc.check_config.expect("validated at load");
        // SAFETY: static descriptor; the string is borrowed for the call.
        blocking(|| self.status("check_config", |err| unsafe { check(self.desc, PipeStr::new(&json), err) }))
    }

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
