//! The `json` sink built as a dynamic library: `libpipe_json.so`, loaded by `pipe` from a
//! plugin directory and run through the C ABI instead of being linked in. It is the same code
//! as the built-in (`pipe_plugin_json::descriptor`), which is what the engine's FFI tests rely on.

pipe_plugin_sdk::declare_plugin! {
    plugins: [pipe_plugin_json::descriptor],
}
