//! # pipe-plugin-rest
//!
//! The declarative source (`plugin = "rest"`): a plain-REST chat vendor described in a TOML
//! spec instead of code. The spec ([`spec`]) says how to authenticate, where the conversations
//! and each conversation's messages (and extras) are, how they page, which records and fields
//! to take (jq programs, [`expr`]) and how they map onto the canonical `conversations` and
//! `messages` streams (docs/design.md §3), with an optional incremental watermark and a
//! per-conversation completeness count.
//!
//! Everything else is the SDK's, as for a native source: the HTTP client (credentials bound to
//! the spec's origin, retries, body cap), the HTTP keys (`base_url`, `concurrency`, ...), the
//! paging guard, the checked time conversion, the crawl driver and the watermark cursor.
//!
//! Layout: [`config`] (the `[source]` keys, spec loading), [`spec`] (the spec's keys and
//! checks), [`expr`] (jq), [`client`] (auth, requests), [`pager`] (paging shapes),
//! [`mapping`] (jq output → canonical rows) and [`crawl`]; [`configured`] (conversations given
//! by the pipeline, not listed) and [`conversation_watermark`] (a watermark per conversation).

pub mod client;
pub mod config;
pub mod configured;
pub mod contract;
pub mod conversation_watermark;
pub mod crawl;
pub mod expr;
pub mod mapping;
pub mod pager;
pub mod spec;

use std::sync::Arc;

use pipe_plugin_sdk::config as sdk_config;
use pipe_plugin_sdk::{PluginDescriptor, PluginFactory};

pub use config::{Loaded, RestConfig, parse_config};
pub use spec::{Spec, SpecFile};

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "rest",
        version: env!("CARGO_PKG_VERSION"),
        description: "A plain-REST chat vendor described in a TOML spec: auth, paging, jq mapping onto the canonical streams",
        config_schema: Arc::new(sdk_config::schema_of::<RestConfig>),
        check_config: PluginDescriptor::check_with(|v| parse_config(v.clone()).map(|_| ())),
        factory: PluginFactory::source(|cfg, ctx| {
            let loaded = parse_config(cfg)?;
            Ok(Box::new(crawl::open(loaded, ctx)?))
        }),
    }
}

/// The JSON Schema of a vendor spec's keys (the reference table of the README).
pub fn spec_schema() -> serde_json::Value {
    sdk_config::schema_of::<SpecFile>()
}
