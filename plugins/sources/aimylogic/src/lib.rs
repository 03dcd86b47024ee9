//! # pipe-plugin-aimylogic
//!
//! Source plugin for the Aimylogic (and JAICP) Chat API (`plugin = "aimylogic"`), in two modes:
//!
//! * `mode = "history"` (default): for every configured client id, reads
//!   `GET {base_url}/chatapi/{token}/client/{clientId}/history` (docs/vendors/aimylogic.md §2.5;
//!   `from`/`to`/`limit`/`offset` query parameters) and emits the canonical `messages` and
//!   `conversations` streams (docs/design.md §3.1): one conversation per client, the client request
//!   → a `visitor` message `<questionId>:q`, each reply item → a `bot` (or, for agent replies,
//!   `agent`) message `<questionId>:r<i>`. The Chat API cannot list clients: the ids come from
//!   `client_ids` and/or `client_ids_file`. Runs are incremental: the state holds a watermark
//!   per client ([`watermark`]), and a run emits only the messages newer than it, plus the
//!   client's conversation row when there are any (see [`history`] for why the whole history
//!   is still fetched). A client with no message at all emits no row.
//! * `mode = "webhook"`: a long-running listener for the webhook POSTs Aimylogic sends
//!   (§2.3: a JSON array of event objects). Each POST is answered 2xx only after its rows are
//!   committed by every sink and the checkpoint is saved (see [`webhook`] for the protocol).
//!
//! The channel token is part of every URL path. It is registered with the SDK's
//! [`HttpClient::redact`](pipe_plugin_sdk::http::HttpClient::redact), never printed, and
//! removed from every `raw` payload (`token` keys dropped, any other occurrence replaced by
//! `***`).

pub mod client;
pub mod history;
pub mod mapping;
pub mod watermark;
pub mod webhook;

use std::sync::Arc;

use pipe_plugin_sdk::config::{self, Secret};
use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, Result};
use schemars::JsonSchema;
use serde::Deserialize;

/// The vendor name written to the `vendor` column.
pub const VENDOR: &str = "aimylogic";

/// Which job the source does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Batch export of the history of known clients.
    #[default]
    History,
    /// A service receiving Aimylogic's webhook POSTs until stopped.
    Webhook,
}

/// Configuration of the Aimylogic source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AimylogicConfig {
    /// `history` (default) or `webhook`.
    #[serde(default)]
    pub mode: Mode,
    /// The Chat API channel token (`<8 alphanumerics>:<40 hex>`), from the bot's Channels →
    /// Chat API settings. It is part of every request path; never printed. Give it as
    /// `"${AIMYLOGIC_TOKEN}"`. Its prefix before `:` is the non-secret `account_id`.
    pub token: Secret,
    /// API root. Default `https://bot.aimylogic.com` (JAICP: `https://bot.jaicp.com`).
    #[serde(default = "default_base_url")]
    pub base_url: String,
    /// Client ids whose history is exported (history mode).
    #[serde(default)]
    pub client_ids: Vec<String>,
    /// A file of client ids, one per line (blank lines and lines starting with `#` skipped).
    /// History mode reads it; webhook mode appends the ids it sees for the first time when
    /// `record_client_ids` is true, so a nightly history run covers them.
    #[serde(default)]
    pub client_ids_file: Option<String>,
    /// History mode: start of the span (inclusive), RFC 3339 or a naive ISO time (UTC); sent as
    /// the `from` query parameter. Default: the beginning.
    #[serde(default)]
    pub from: Option<String>,
    /// History mode: end of the span (exclusive), as `from`. Default: now.
    #[serde(default)]
    pub to: Option<String>,
    /// History mode: items asked per request (`limit`/`offset` paging; a server that ignores
    /// them and returns everything is fine). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// History mode: clients fetched at the same time (also the cap on requests in flight).
    /// Default 4.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Cap on the steady request rate (requests per second, fractions allowed). Default none.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// Retries allowed for the whole run (429, 5xx, timeouts). Default 200.
    #[serde(default = "default_retry_budget")]
    pub retry_budget: u64,
    /// Extra CA certificates to trust, as a PEM bundle.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// History mode: a checkpoint (and so, at most every `commit_interval_seconds`, a commit)
    /// after this many clients; it carries the per-client watermarks and the clients this run
    /// has done, so an interrupted run resumes after them. Default 100.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// Webhook mode: address to listen on. Default `127.0.0.1:8088`; port 0 picks a free port
    /// (the bound address is logged).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Webhook mode: the path the webhook POSTs arrive on. Default `/`.
    #[serde(default = "default_path")]
    pub path: String,
    /// Webhook mode: when set, a POST must carry this value in the `secret_header` header or
    /// the `secret_query` query parameter, else it gets 401.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Webhook mode: header checked for `secret`. Default `X-Webhook-Secret`.
    #[serde(default = "default_secret_header")]
    pub secret_header: String,
    /// Webhook mode: query parameter checked for `secret`. Default `secret`.
    #[serde(default = "default_secret_query")]
    pub secret_query: String,
    /// Webhook mode: largest accepted body in bytes; larger ones get 413 and a dead letter.
    /// Default 1048576 (1 MiB).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Webhook mode: how long a POST waits for its rows to be committed before it is answered
    /// 503 (the sender retries). Default 30 s.
    #[serde(default = "default_ack_timeout_seconds")]
    pub ack_timeout_seconds: f64,
    /// Webhook mode: append client ids seen for the first time to `client_ids_file`.
    /// Default true when `client_ids_file` is set.
    #[serde(default = "default_true")]
    pub record_client_ids: bool,
    /// Webhook mode: how many recent event keys the saved state remembers, so an event the
    /// sender retries after a crash (committed, but its 2xx lost) is not emitted twice.
    /// Default 5000.
    #[serde(default = "default_dedupe_window")]
    pub dedupe_window: usize,
}

fn default_base_url() -> String {
    "https://bot.aimylogic.com".into()
}
fn default_page_size() -> u32 {
    100
}
fn default_concurrency() -> u32 {
    4
}
fn default_retry_budget() -> u64 {
    200
}
fn default_checkpoint_every() -> u32 {
    100
}
fn default_listen() -> String {
    "127.0.0.1:8088".into()
}
fn default_path() -> String {
    "/".into()
}
fn default_secret_header() -> String {
    "X-Webhook-Secret".into()
}
fn default_secret_query() -> String {
    "secret".into()
}
fn default_max_body_bytes() -> usize {
    1 << 20
}
fn default_ack_timeout_seconds() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}
fn default_dedupe_window() -> usize {
    5000
}

impl AimylogicConfig {
    /// The non-secret `account_id`: the token's prefix before `:` (docs/vendors/aimylogic.md §1).
    /// A token without `:` gives `h` + a 64-bit FNV-1a hash of it in hex, so no part of the
    /// secret is written out.
    pub fn account_id(&self) -> String {
        account_id_of(self.token.expose())
    }

    /// `client_ids` plus the ids of `client_ids_file`, first occurrence kept, in order.
    ///
    /// Errors: [`PluginError::Config`] (path `client_ids_file`) when the file cannot be read.
    pub fn all_client_ids(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut add = |id: &str| {
            if seen.insert(id.to_string()) {
                out.push(id.to_string());
            }
        };
        for id in &self.client_ids {
            add(id);
        }
        if let Some(path) = &self.client_ids_file {
            for id in read_client_ids_file(path)? {
                add(&id);
            }
        }
        Ok(out)
    }
}

/// The ids of a client ids file: one per line, trimmed; blank lines and `#` comments skipped.
/// A missing file is empty (webhook mode creates it).
///
/// Errors: [`PluginError::Config`] when the file exists but cannot be read.
pub fn read_client_ids_file(path: &str) -> Result<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            Err(PluginError::Config { path: "client_ids_file".into(), message: format!("cannot read {path}: {e}") })
        }
    }
}

/// See [`AimylogicConfig::account_id`].
pub fn account_id_of(token: &str) -> String {
    match token.split_once(':') {
        Some((prefix, _)) if !prefix.is_empty() => prefix.to_string(),
        _ => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in token.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            format!("h{h:016x}")
        }
    }
}

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "aimylogic",
        version: env!("CARGO_PKG_VERSION"),
        description: "Aimylogic / JAICP Chat API: client histories, or a webhook listener for live events",
        config_schema: Arc::new(config::schema_of::<AimylogicConfig>),
        check_config: Arc::new(config::check::<AimylogicConfig>),
        factory: PluginFactory::source(|cfg, ctx| {
            let cfg: AimylogicConfig = config::parse(cfg)?;
            if cfg.token.expose().trim().is_empty() {
                return Err(PluginError::Config { path: "token".into(), message: "must not be empty".into() });
            }
            Ok(match cfg.mode {
                Mode::History => Box::new(history::HistorySource::open(cfg, ctx)?),
                Mode::Webhook => Box::new(webhook::WebhookSource::open(cfg, ctx)?),
            })
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_id_is_the_prefix_or_a_hash() {
        assert_eq!(account_id_of("FZWSBqfV:68932bef32cca3534102fc03717456d948216edd"), "FZWSBqfV");
        let h = account_id_of("secretwithoutcolon");
        assert!(h.starts_with('h') && h.len() == 17 && !h.contains("secret"), "{h}");
    }
}
