//! # pipe-plugin-alli
//!
//! Source plugin for Alli by Allganize (`plugin = "alli"`), on either of its two surfaces
//! (docs/vendors/alli.md):
//!
//! * `api = "rest"` (default): the webapi v2 with a project API key. Pages
//!   `GET /webapi/v2/conversations` by `cursor` until it ends, newest last chat first, and for each
//!   conversation every page of `GET /webapi/v2/conversations/{id}/chats` (`pageNo`, 100 per page,
//!   `totalCount`): the list embeds only the latest chats, so it is never trusted for completeness.
//! * `api = "graphql"`: the older agent API at `/d/graphql/` with a login token (the `login`
//!   mutation, or a ready `token`). Pages `conversations(filter, first, after)` by Relay cursors;
//!   a conversation with more chats than one nested page is completed through `node(id:)`.
//!
//! Both emit the canonical `messages` and `conversations` streams with the same ids, roles and
//! texts (docs/design.md §3.1; the full mapping is in the README). Incremental runs follow docs/vendors/alli.md
//! §2.4: a watermark on the last chat time with a lookback ([`crawl`]).
//!
//! Layout: [`config`] (the `[source]` keys and their cross-checks), [`client`] (the two API
//! surfaces), [`mapping`] (Alli JSON → canonical rows) and [`crawl`] (the incremental crawl, on
//! the SDK's source kit).

pub mod client;
pub mod config;
pub mod contract;
pub mod crawl;
pub mod mapping;

use std::sync::Arc;

use pipe_plugin_sdk::config as sdk_config;
use pipe_plugin_sdk::{PluginDescriptor, PluginFactory};

pub use client::graphql;
pub use config::{AlliConfig, AlliHttp, Api, STATES, parse_config, sha256_prefix};

/// The vendor name written to the `vendor` column.
pub const VENDOR: &str = "alli";

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "alli",
        version: env!("CARGO_PKG_VERSION"),
        description: "Alli (Allganize): every conversation and chat, REST webapi v2 or GraphQL agent API",
        config_schema: Arc::new(sdk_config::schema_of::<AlliConfig>),
        check_config: PluginDescriptor::check_with(|v| parse_config(v.clone()).map(|_| ())),
        factory: PluginFactory::source(|cfg, ctx| {
            let cfg = parse_config(cfg)?;
            Ok(Box::new(crawl::open(cfg, ctx)?))
        }),
    }
}
