//! `libpipe_example.so`: one plugin library shipping three plugins for `pipe`.
//!
//! * [`acme`]: a **source** for the (imaginary) Acme Chat REST API — cursor pagination and
//!   retries through the SDK's HTTP client, canonical `conversations` and `messages` rows, a
//!   checkpoint after every page, incremental runs from the last checkpoint.
//! * [`redact`]: a **transform** that masks long digit runs (card or phone numbers) in
//!   `messages.text`.
//! * [`counts`]: a **sink** that keeps committed row counts per stream in a JSON file, written
//!   atomically at every commit.
//!
//! The one macro below turns them into the C ABI `pipe` loads. Nothing else is needed: build
//! with `cargo build --release`, copy `target/release/libpipe_example.so` into a directory named
//! in a pipeline's `plugin_dirs` (or in `$PIPE_PLUGIN_PATH`), and use `plugin = "acme"`.

pub mod acme;
pub mod counts;
pub mod redact;

pipe_plugin_sdk::declare_plugin! {
    plugins: [acme::descriptor, redact::descriptor, counts::descriptor],
}
