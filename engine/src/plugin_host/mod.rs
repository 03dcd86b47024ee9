//! The plugin host: plugins shipped as dynamic libraries, run like built-ins (docs/design.md §5).
//!
//! * [`loader`]: discovery (`plugin_dirs`, `$PIPE_PLUGIN_PATH`, `lib*.so`), the handshake
//!   (`pipe_plugin_abi_version` first; a foreign version is refused naming both), init and
//!   validation of the library descriptor. Libraries are never unloaded.
//! * `adapter`: a loaded plugin as the SDK's `Source` / `Transform` / `Sink`, calling the
//!   library's blocking entry points from tokio's blocking pool.
//! * `slots`: the engine-side `PluginDescriptor` of a loaded plugin, so the registry, config
//!   validation and the runtime treat it exactly like a built-in.
//!
//! This module only depends on the SDK and the ABI crate (not on the rest of the engine), so the
//! FFI tests compile it into their own process to measure it directly.

mod adapter;
mod call;
pub mod cancel_probe;
mod host_api;
pub mod loader;
mod slots;
mod vtables;

pub use loader::{ExternalPlugin, LoadedLibrary, discover, env_plugin_path};
