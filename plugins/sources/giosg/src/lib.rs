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

mod client;
pub mod cursor;
pub mod mapping;
mod source;

use std::sync::Arc;

use pipe_plugin_sdk::config::{self, Secret};
use pipe_plugin_sdk::{PluginDescriptor, PluginFactory};
use schemars::JsonSchema;
use serde::Deserialize;

pub use source::GiosgSource;

/// The vendor name written to the `vendor` column.
pub const VENDOR: &str = "giosg";

/// Configuration of the giosg source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GiosgConfig {
    /// API root, without `/api/v5`. Default `https://service.giosg.com`.
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// The organization whose chats are exported (a UUID; giosg console → Settings → Company).
    pub organization_id: String,
    /// API token (console → Settings → Company → Access tokens), sent as `Authorization: Token
    /// <token>`. Give it as `"${GIOSG_API_TOKEN}"`; it is never printed.
    pub token: Secret,
    /// Items asked per page (giosg may return fewer; max 100). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Requests in flight at once (also: chats fetched at the same time). Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Cap on the steady request rate (requests per second, fractions allowed), shared by all
    /// requests of this source. Default: no cap (429s are still honoured).
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Retries allowed for the whole run (429, 5xx, timeouts). When spent, the run commits what
    /// it has and ends `partial` (exit 3). Default 200.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: u64,
    /// Extra CA certificates to trust, as a PEM bundle (corporate TLS inspection).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// Emit a checkpoint after this many conversations. The engine commits at checkpoints
    /// (Parquet files get their final names, the state is saved), at most once per
    /// `commit_interval_seconds` of the pipeline. Default 200.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// First run only: skip chats created before this time (RFC 3339, e.g.
    /// `2026-01-01T00:00:00Z`). Later runs resume from the saved state.
    #[serde(default)]
    pub start: Option<String>,
    /// Skip chats created at or after this time (RFC 3339). With `start`, a bounded backfill
    /// window: `pipe run --window FROM..TO` sets both and keeps the window's state apart.
    #[serde(default)]
    pub end: Option<String>,
    /// How far below the newest chat of the last run a scan looks again for chats that
    /// changed (hours). Default 48.
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
}

fn default_base_url() -> String {
    "https://service.giosg.com".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_concurrency() -> u32 {
    4
}
fn default_checkpoint_every() -> u32 {
    200
}
fn default_retry_budget() -> u64 {
    200
}
fn default_lookback_hours() -> u32 {
    48
}

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "giosg",
        version: env!("CARGO_PKG_VERSION"),
        description: "giosg REST API v5: every chat and message of an organization",
        config_schema: Arc::new(config::schema_of::<GiosgConfig>),
        check_config: Arc::new(config::check::<GiosgConfig>),
        factory: PluginFactory::source(|cfg, ctx| {
            let cfg: GiosgConfig = config::parse(cfg)?;
            Ok(Box::new(GiosgSource::open(cfg, ctx)?))
        }),
    }
}
