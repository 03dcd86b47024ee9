//! # pipe-plugin-giosg
//!
//! Source plugin for the giosg REST API v5 (`plugin = "giosg"`). Lists every chat of an
//! organization (`GET /api/v5/orgs/{organization_id}/owned_chats`, following the absolute
//! `next` URL until it is null), and for each chat fetches every page of its `messages`, its
//! `memberships`, `tags` and the visitor's `variables`, bounded by `concurrency`. Emits the
//! canonical `messages` and `conversations` streams (docs/design.md §3, mapping §3.1; the full
//! table is in this crate's README). A conversation's messages are emitted no later than the
//! conversation row itself.
//!
//! Encrypted chats pass through undecrypted: `is_encrypted = true`, `text` null, `ciphertext`
//! = `encrypted_message` as received, and the chat's `encrypted_symmetric_key` in
//! `attributes["giosg.encrypted_symmetric_key"]`, for the `decrypt` transform.
//!
//! Layout: [`config`] (the `[source]` keys), `client` (the HTTP API), [`mapping`] (giosg JSON →
//! canonical rows) and [`crawl`] (the incremental crawl, on the SDK's source kit).

mod client;
pub mod config;
pub mod contract;
pub mod crawl;
pub mod mapping;

use std::sync::Arc;

use pipe_plugin_sdk::config as sdk_config;
use pipe_plugin_sdk::{PluginDescriptor, PluginFactory};

pub use config::{GiosgConfig, GiosgHttp};

/// The vendor name written to the `vendor` column.
pub const VENDOR: &str = "giosg";

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "giosg",
        version: env!("CARGO_PKG_VERSION"),
        description: "giosg REST API v5: every chat and message of an organization",
        config_schema: Arc::new(sdk_config::schema_of::<GiosgConfig>),
        check_config: Arc::new(sdk_config::check::<GiosgConfig>),
        factory: PluginFactory::source(|cfg, ctx| {
            let cfg: GiosgConfig = sdk_config::parse(cfg)?;
            Ok(Box::new(crawl::open(cfg, ctx)?))
        }),
    }
}
