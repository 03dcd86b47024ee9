//! The plugin host: plugins shipped as dynamic libraries, run like built-ins (docs/design.md §5).
//!
//! Layered one way, each module using only those listed before it:
//!
//! * `vtables`: a library's entry points by kind, validated once at load (every v1 entry
//!   point present).
//! * `call`: calling into any library: errors back into `PluginError`s (freed by the library's
//!   `free_string`), owned Arrow structs, events read out, blocking calls from sync code.
//! * `host_api`: what the engine hands every library at init (log callback, log level).
//! * `external`: [`ExternalPlugin`], one plugin of a loaded library (descriptor read and
//!   validated, `check_config`, status codes turned into errors naming the plugin).
//! * `instance`: an open instance (handle, call lock, closed once when the last user lets go).
//! * `source`, `transform`, `sink`: the consumer side of each vtable, a loaded plugin as the
//!   SDK's `Source` / `Transform` / `Sink`, calling the library's blocking entry points from
//!   tokio's blocking pool. Their producer side is the SDK's `ffi` module of the same names.
//! * `descriptor`: [`ExternalPlugin::descriptor`], a loaded plugin as a `PluginDescriptor`
//!   whose factories are closures capturing it, so the registry, config validation and the
//!   runtime treat it exactly like a built-in, and any number of plugins can be loaded.
//! * [`loader`]: discovery (`plugin_dirs`, `$PIPE_PLUGIN_PATH`, `lib*.so`), the handshake
//!   (`pipe_plugin_abi_version` first; a foreign version is refused naming both), init and
//!   validation of the library descriptor. Libraries are never unloaded.
//! * [`cancel_probe`]: `cancel` timed across the ABI, for `pipe plugin check`.
//!
//! This module only depends on the SDK and the ABI crate (not on the rest of the engine), so the
//! FFI tests compile it into their own process to measure it directly.

mod call;
pub mod cancel_probe;
mod descriptor;
mod external;
mod host_api;
mod instance;
pub mod loader;
mod sink;
mod source;
#[cfg(test)]
mod tests;
mod transform;
mod vtables;

pub use external::ExternalPlugin;
pub use loader::{LoadedLibrary, discover, env_plugin_path};
