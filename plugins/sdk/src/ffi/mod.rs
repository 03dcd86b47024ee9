//! Plugins as dynamic libraries: the SDK side of the C ABI (`pipe-plugin-abi`, docs/design.md §5).
//!
//! A plugin crate written against the [`Source`](crate::Source) / [`Transform`](crate::Transform)
//! / [`Sink`](crate::Sink) traits becomes a loadable library with one macro, in a crate of type
//! `cdylib`:
//!
//! ```ignore
//! pipe_plugin_sdk::declare_plugin! {
//!     plugins: [my_vendor::descriptor],
//! }
//! ```
//!
//! What the library then does, so plugin authors don't have to:
//!
//! * exports exactly `pipe_plugin_abi_version` and `pipe_plugin_init_v1`; init returns a static
//!   library descriptor with build info and each plugin's name, kind, version, config JSON
//!   Schema and vtable ([`export`]);
//! * runs every entry point under `catch_unwind`: a panic becomes an error status and poisons
//!   the instance, never an abort of the host; error messages are owned by the library and
//!   freed through its `free_string`;
//! * owns one tokio runtime per library ([`runtime()`]); every call blocks on it, racing a
//!   cancel token that `cancel` fires from any thread;
//! * forwards the plugin's `tracing` events to the host's logger, and keeps panics off stderr;
//! * moves batches through the Arrow C Data Interface without copying ([`arrow`]).
//!
//! Built-in plugins are linked into `pipe` and never expand this macro, so their symbols cannot
//! collide; each shipped plugin has a tiny wrapper crate (`plugins/<name>/dylib`) that does.

pub mod arrow;
pub mod export;
mod guard;
mod instance;
mod library;
mod runtime;
mod sink;
mod source;
#[cfg(test)]
mod tests;
mod transform;
pub mod wire;

pub use export::{LibraryInfo, build_info, init};
pub use pipe_plugin_abi as abi;
pub use runtime::runtime;

/// Exports the listed plugins (functions returning a [`crate::PluginDescriptor`]) through the
/// C ABI v1. Expand it once, in a `cdylib` crate; the library then answers
/// `pipe_plugin_abi_version` and `pipe_plugin_init_v1`.
///
/// ```ignore
/// pipe_plugin_sdk::declare_plugin! {
///     plugins: [pipe_plugin_giosg::descriptor],
/// }
/// ```
#[macro_export]
macro_rules! declare_plugin {
    (plugins: [$($descriptor:path),+ $(,)?] $(,)?) => {
        // A panic must be catchable at the boundary; with `panic = "abort"` any plugin panic
        // would take the whole engine down.
        #[cfg(not(panic = "unwind"))]
        compile_error!("pipe plugin libraries must be built with panic = \"unwind\"");

        /// Answers the handshake: the C ABI version this library implements.
        #[unsafe(no_mangle)]
        pub extern "C" fn pipe_plugin_abi_version() -> u32 {
            $crate::ffi::abi::ABI_VERSION
        }

        /// Returns the library descriptor (see `pipe_plugin.h`).
        ///
        /// # Safety
        /// The pointers must be valid as the ABI says.
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn pipe_plugin_init_v1(
            host: *const $crate::ffi::abi::PipeHostApiV1,
            out: *mut *const $crate::ffi::abi::PipeLibraryV1,
            err: *mut $crate::ffi::abi::PipeError,
        ) -> i32 {
            static PLUGINS: &[fn() -> $crate::PluginDescriptor] = &[$($descriptor),+];
            // SAFETY: forwarded from the host under the same contract.
            unsafe {
                $crate::ffi::init(
                    host,
                    out,
                    err,
                    $crate::ffi::LibraryInfo {
                        name: env!("CARGO_PKG_NAME"),
                        version: env!("CARGO_PKG_VERSION"),
                        plugins: PLUGINS,
                    },
                )
            }
        }
    };
}
