//! Discovery and loading of plugin libraries (docs/design.md §5): every `lib*.so` of the pipeline's
//! `plugin_dirs`, then of `$PIPE_PLUGIN_PATH`; the handshake first; libraries never unloaded.
//!
//! * A file without `pipe_plugin_abi_version` (or that `dlopen` refuses) is not a plugin: it is
//!   skipped with a warning.
//! * A library answering another ABI version is refused with one line naming both versions.
//! * A library answering v1 is initialised and its descriptor validated (sizes, kinds, every
//!   required entry point), so the adapters can call it without further checks.

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
use pipe_plugin_abi::{
    ABI_VERSION, AbiVersionFn, InitV1Fn, PipeError, PipeLibraryV1, PipePluginDescV1, SYMBOL_ABI_VERSION, SYMBOL_INIT_V1,
};

use super::call::take_error;
use super::external::ExternalPlugin;
use super::host_api::host_api;

/// Why a library could not be used. Each displays as one line.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadError {
    /// The library answered the handshake with another ABI version.
    ForeignAbi { path: PathBuf, found: u32 },
    /// The library claims ABI v1 but its descriptor is unusable.
    Broken { path: PathBuf, reason: String },
    /// A configured plugin directory cannot be read.
    Dir { dir: PathBuf, reason: String },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::ForeignAbi { path, found } => write!(
                f,
                "{}: plugin ABI version {found}, but this pipe supports plugin ABI version {ABI_VERSION}; rebuild the plugin for ABI {ABI_VERSION}",
                path.display()
            ),
            LoadError::Broken { path, reason } => {
                write!(f, "{}: not a usable pipe plugin library: {reason}", path.display())
            }
            LoadError::Dir { dir, reason } => write!(f, "plugin directory {}: {reason}", dir.display()),
        }
    }
}

/// A loaded plugin library. Never unloaded: its code runs on its runtime's threads and its
/// release callbacks are referenced by Arrow data, until the process ends.
pub struct LoadedLibrary {
    /// Where it was loaded from (canonical).
    pub path: PathBuf,
    /// Crate name the library reports.
    pub name: String,
    /// Version the library reports.
    pub version: String,
    /// How it was built (SDK, rustc, arrow, target, profile).
    pub build_info: String,
    /// The ABI version it answered.
    pub abi_version: u32,
    /// The plugins it ships.
    pub plugins: Vec<Arc<ExternalPlugin>>,
}

/// Libraries loaded so far, by canonical path; `None` for files that are not plugins.
static LOADED: Mutex<Vec<(PathBuf, Option<Arc<LoadedLibrary>>)>> = Mutex::new(Vec::new());

/// The directories of `$PIPE_PLUGIN_PATH` (colon-separated; empty entries ignored).
pub fn env_plugin_path(value: Option<&str>) -> Vec<PathBuf> {
    value.unwrap_or_default().split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect()
}

/// Loads every `lib*.so` of `dirs`, in order (files sorted by name within a directory).
/// `required` directories must exist (a pipeline's `plugin_dirs`); others are skipped with a
/// warning when missing (`$PIPE_PLUGIN_PATH`, like `$PATH`).
///
/// Errors: the first library with a foreign ABI or a broken descriptor, or an unreadable
/// required directory.
pub fn discover(dirs: &[PathBuf], required: bool) -> Result<Vec<Arc<LoadedLibrary>>, LoadError> {
    let mut out: Vec<Arc<LoadedLibrary>> = Vec::new();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if required => return Err(LoadError::Dir { dir: dir.clone(), reason: e.to_string() }),
            Err(e) => {
                tracing::warn!("plugin directory {} skipped: {e}", dir.display());
                continue;
            }
        };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.starts_with("lib") && name.ends_with(".so") && p.is_file()
            })
            .collect();
        files.sort();
        for file in files {
            if let Some(lib) = load(&file)?
                && !out.iter().any(|l| Arc::ptr_eq(l, &lib))
            {
                out.push(lib);
            }
        }
    }
    Ok(out)
}

/// The loaded library that ships plugin `name`, if any (the first loaded, as discovery uses
/// it). For reports such as `pipe validate`'s list of where each plugin comes from.
pub fn library_of(name: &str) -> Option<Arc<LoadedLibrary>> {
    let loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    loaded.iter().filter_map(|(_, lib)| lib.as_ref()).find(|lib| lib.plugins.iter().any(|p| p.name == name)).cloned()
}

/// Loads one library: `Ok(None)` when it is not a plugin (skipped with a warning).
///
/// Errors: a foreign ABI version or an unusable v1 descriptor.
pub fn load(path: &Path) -> Result<Option<Arc<LoadedLibrary>>, LoadError> {
    let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut loaded = LOADED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, lib)) = loaded.iter().find(|(p, _)| *p == canonical) {
        return Ok(lib.clone());
    }
    let result = load_uncached(&canonical)?;
    loaded.push((canonical, result.clone()));
    Ok(result)
}

fn load_uncached(path: &Path) -> Result<Option<Arc<LoadedLibrary>>, LoadError> {
    // RTLD_NOW: fail here, not at the first call, on a missing symbol. RTLD_LOCAL: the
    // library's symbols (its own std, tokio, arrow) never interpose another library's.
    // SAFETY: loading runs the library's initialisers; plugin directories are trusted by
    // configuration (docs/design.md §5).
    let lib = match unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) } {
        Ok(lib) => lib,
        Err(e) => {
            tracing::warn!("{}: skipped, cannot be loaded as a plugin: {e}", path.display());
            return Ok(None);
        }
    };
    // SAFETY: the symbol's type is fixed forever by the ABI.
    let abi_version = match unsafe { lib.get::<AbiVersionFn>(SYMBOL_ABI_VERSION) } {
        // SAFETY: calling the handshake, which takes nothing and cannot fail.
        Ok(f) => unsafe { f() },
        Err(_) => {
            tracing::warn!("{}: skipped, not a pipe plugin (no `{SYMBOL_ABI_VERSION}` symbol)", path.display());
            // Never unload anything we opened: its initialisers may have started threads.
            std::mem::forget(lib);
            return Ok(None);
        }
    };
    if abi_version != ABI_VERSION {
        std::mem::forget(lib);
        return Err(LoadError::ForeignAbi { path: path.to_path_buf(), found: abi_version });
    }
    let broken = |reason: String| LoadError::Broken { path: path.to_path_buf(), reason };
    // SAFETY: the v1 init symbol's type is fixed by ABI v1.
    let init = *unsafe { lib.get::<InitV1Fn>(SYMBOL_INIT_V1) }
        .map_err(|_| broken(format!("answers ABI {ABI_VERSION} but has no `{SYMBOL_INIT_V1}`")))?;
    // The library stays loaded for the life of the process (see LoadedLibrary).
    std::mem::forget(lib);

    let mut desc: *const PipeLibraryV1 = std::ptr::null();
    let mut err = PipeError::new();
    // SAFETY: valid host API (static), out-pointer and error struct.
    let status = unsafe { init(host_api(), &mut desc, &mut err) };
    // SAFETY: a non-null descriptor is static in the library, which is never unloaded.
    let desc: Option<&'static PipeLibraryV1> = unsafe { desc.as_ref() };
    if status != pipe_plugin_abi::PIPE_OK {
        // Without a descriptor we have no free_string: the message leaks rather than being
        // freed by the wrong allocator.
        let message = desc
            .and_then(|d| d.free_string)
            // SAFETY: the error came from this library's init.
            .map(|free| unsafe { take_error(free, status, &mut err) }.to_string())
            .unwrap_or_else(|| format!("status {status}"));
        return Err(broken(format!("init failed: {message}")));
    }
    let desc = desc.ok_or_else(|| broken("init returned no descriptor".into()))?;
    from_descriptor(desc, path, abi_version).map(Some)
}

/// The library behind an initialised library descriptor (validated here), found at `path`.
/// Split from [`load`] so a test can hand it the descriptor of a library initialised in its own
/// process (`pipe_plugin_sdk::ffi::init`), forcing the full C ABI round trip without `dlopen`.
///
/// Errors: the descriptor or one of its plugins is unusable.
pub(super) fn from_descriptor(
    desc: &'static PipeLibraryV1,
    path: &Path,
    abi_version: u32,
) -> Result<Arc<LoadedLibrary>, LoadError> {
    let broken = |reason: String| LoadError::Broken { path: path.to_path_buf(), reason };
    validate_library(desc).map_err(broken)?;
    let free_string = desc.free_string.expect("validated");
    // SAFETY: validated non-null, NUL-terminated, static strings.
    let text = |p: *const c_char| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
    let build_info = text(desc.build_info);

    let plugin_descs: &'static [PipePluginDescV1] =
        // SAFETY: validated: `n_plugins` descriptors at `plugins`, static in the library.
        if desc.n_plugins == 0 { &[] } else { unsafe { std::slice::from_raw_parts(desc.plugins, desc.n_plugins) } };
    let mut plugins = Vec::new();
    for (i, p) in plugin_descs.iter().enumerate() {
        let plugin =
            ExternalPlugin::from_desc(p, path, free_string).map_err(|r| broken(format!("plugin #{i}: {r}")))?;
        plugins.push(Arc::new(plugin));
    }
    Ok(Arc::new(LoadedLibrary {
        path: path.to_path_buf(),
        name: text(desc.library_name),
        version: text(desc.library_version),
        build_info,
        abi_version,
        plugins,
    }))
}

fn validate_library(d: &PipeLibraryV1) -> Result<(), String> {
    if d.abi_version != ABI_VERSION {
        return Err(format!("descriptor says ABI {} but the handshake said {ABI_VERSION}", d.abi_version));
    }
    if (d.struct_size as usize) < std::mem::size_of::<PipeLibraryV1>() {
        return Err(format!("PipeLibraryV1 of {} bytes, smaller than v1", d.struct_size));
    }
    for (what, p) in
        [("build_info", d.build_info), ("library_name", d.library_name), ("library_version", d.library_version)]
    {
        if p.is_null() {
            return Err(format!("{what} is null"));
        }
    }
    if d.free_string.is_none() {
        return Err("free_string is null".into());
    }
    if d.n_plugins > 0 && d.plugins.is_null() {
        return Err("plugins is null".into());
    }
    Ok(())
}
