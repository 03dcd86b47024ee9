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
//!   client's conversation row when there are any (see [`crawl`] for why the whole history
//!   is still fetched). A client with no message at all emits no row.
//! * `mode = "webhook"`: a long-running listener for the webhook POSTs Aimylogic sends
//!   (§2.3: a JSON array of event objects). Each POST is answered 2xx only after its rows are
//!   committed by every sink and the checkpoint is saved (see [`webhook`] for the protocol).
//!
//! The channel token is part of every URL path. It is registered with the SDK's
//! [`HttpClient::redact`](pipe_plugin_sdk::http::HttpClient::redact), never printed, and
//! removed from every `raw` payload (`token` keys dropped, any other occurrence replaced by
//! `***`).
//!
//! Layout: [`config`] (the `[source]` keys), [`client`] (the Chat API), [`mapping`] (history
//! items and webhook events → canonical rows), [`crawl`] (history mode, on the SDK's source
//! kit) with its per-client [`watermark`] state, and [`webhook`] (webhook mode).

pub mod client;
pub mod config;
pub mod contract;
pub mod crawl;
pub mod mapping;
pub mod watermark;
pub mod webhook;

use std::sync::Arc;

use pipe_plugin_sdk::config as sdk_config;
use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory};

pub use config::{AimylogicConfig, AimylogicHttp, Mode, account_id_of, read_client_ids_file};

/// The vendor name written to the `vendor` column.
pub const VENDOR: &str = "aimylogic";

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "aimylogic",
        version: env!("CARGO_PKG_VERSION"),
        description: "Aimylogic / JAICP Chat API: client histories, or a webhook listener for live events",
        config_schema: Arc::new(sdk_config::schema_of::<AimylogicConfig>),
        check_config: Arc::new(|cfg| sdk_config::parse::<AimylogicConfig>(cfg.clone())?.check_webhook()),
        factory: PluginFactory::source(|cfg, ctx| {
            let cfg: AimylogicConfig = sdk_config::parse(cfg)?;
            if cfg.token.expose().trim().is_empty() {
                return Err(PluginError::Config { path: "token".into(), message: "must not be empty".into() });
            }
            cfg.check_webhook()?;
            Ok(match cfg.mode {
                Mode::History => Box::new(crawl::open(cfg, ctx)?),
                Mode::Webhook => Box::new(webhook::WebhookSource::open(cfg, ctx)?),
            })
        }),
    }
}
