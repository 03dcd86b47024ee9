//! `pipe_plugin_init_v1` and the library descriptor: what `declare_plugin!` expands to calls
//! [`init`], which builds the [`PipeLibraryV1`] once (kept in `super::library`) and hands out
//! a pointer to it. Each plugin's `PipePluginDescV1` points to the shared vtable of its kind.

use std::ffi::{CString, c_char};

use pipe_plugin_abi::{
    ABI_VERSION, PIPE_KIND_SINK, PIPE_KIND_SOURCE, PIPE_KIND_TRANSFORM, PipeError, PipeHostApiV1, PipeLibraryV1,
    PipePluginDescV1, PipeStr, struct_size,
};

use super::guard::{check_size, free_string, guard, json_arg, non_null, str_arg};
use super::library::{Exported, LIBRARY, descriptor_of};
use super::{runtime, sink, source, transform};
use crate::{PluginDescriptor, PluginKind};

/// What `declare_plugin!` knows about the library it is expanded in.
pub struct LibraryInfo {
    /// Crate name of the library.
    pub name: &'static str,
    /// Crate version of the library.
    pub version: &'static str,
    /// The descriptor of every plugin it ships.
    pub plugins: &'static [fn() -> PluginDescriptor],
}

/// How this SDK was built: `sdk=… abi=… rustc=… arrow=… target=… profile=… panic=unwind`.
pub fn build_info() -> String {
    format!(
        "sdk={} abi={ABI_VERSION} rustc={} arrow={} target={} profile={} panic={}",
        env!("CARGO_PKG_VERSION"),
        env!("PIPE_SDK_RUSTC_VERSION"),
        arrow_array::ARROW_VERSION,
        env!("PIPE_SDK_TARGET"),
        env!("PIPE_SDK_PROFILE"),
        if cfg!(panic = "unwind") { "unwind" } else { "abort" },
    )
}

/// The body of `pipe_plugin_init_v1`: installs the host API (first call) and returns the
/// library descriptor (the same one on every call).
///
/// # Safety
/// The pointers must be valid as `pipe_plugin_init_v1`'s contract says.
pub unsafe fn init(
    host: *const PipeHostApiV1,
    out: *mut *const PipeLibraryV1,
    err: *mut PipeError,
    info: LibraryInfo,
) -> i32 {
    guard(
        err,
        || {},
        || {
            non_null(out, "out")?;
            if !host.is_null() {
                // SAFETY: non-null host API from the caller; struct_size is read first.
                check_size::<PipeHostApiV1>(unsafe { (*host).struct_size }, "PipeHostApiV1")?;
            }
            // SAFETY: validated above.
            unsafe { runtime::install(host) };
            let lib = LIBRARY.get_or_init(|| build(&info));
            // SAFETY: `out` is non-null and writable per the contract.
            unsafe { *out = &lib.c };
            Ok(())
        },
    )
}

fn build(info: &LibraryInfo) -> Exported {
    let mut strings = Vec::new();
    let mut keep = |s: &str| -> *const c_char {
        let c = CString::new(s.replace('\0', "\u{FFFD}")).expect("NULs were replaced");
        let p = c.as_ptr();
        strings.push(c);
        p
    };
    let plugins: Vec<PluginDescriptor> = info.plugins.iter().map(|f| f()).collect();
    let descs: Box<[PipePluginDescV1]> = plugins
        .iter()
        .map(|d| {
            let schema = serde_json::to_string(&(d.config_schema)()).expect("a JSON value serializes");
            let kind = d.kind();
            PipePluginDescV1 {
                struct_size: struct_size::<PipePluginDescV1>(),
                kind: match kind {
                    PluginKind::Source => PIPE_KIND_SOURCE,
                    PluginKind::Transform => PIPE_KIND_TRANSFORM,
                    PluginKind::Sink => PIPE_KIND_SINK,
                },
                name: keep(d.name),
                version: keep(d.version),
                description: keep(d.description),
                config_schema_json: keep(&schema),
                check_config: Some(check_config),
                source: if kind == PluginKind::Source { &source::VTABLE } else { std::ptr::null() },
                transform: if kind == PluginKind::Transform { &transform::VTABLE } else { std::ptr::null() },
                sink: if kind == PluginKind::Sink { &sink::VTABLE } else { std::ptr::null() },
            }
        })
        .collect();
    let c = PipeLibraryV1 {
        abi_version: ABI_VERSION,
        struct_size: struct_size::<PipeLibraryV1>(),
        build_info: keep(&build_info()),
        library_name: keep(info.name),
        library_version: keep(info.version),
        n_plugins: descs.len(),
        plugins: descs.as_ptr(),
        free_string: Some(free_string),
    };
    Exported { c, descs, plugins, _strings: strings }
}

/// `PipePluginDescV1::check_config`.
unsafe extern "C" fn check_config(plugin: *const PipePluginDescV1, config_json: PipeStr, err: *mut PipeError) -> i32 {
    guard(
        err,
        || {},
        || {
            let d = descriptor_of(plugin)?;
            // SAFETY: borrowed for the call.
            let config = json_arg(unsafe { str_arg(config_json, "config_json") }?, "config_json")?;
            (d.check_config)(&config)?;
            Ok(())
        },
    )
}
