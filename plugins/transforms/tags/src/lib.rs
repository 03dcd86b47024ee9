//! # pipe-plugin-tags
//!
//! Transform plugin `tags`: labels conversations and messages.
//!
//! * **Rules** (`[[transforms.rules]] tag, pattern, roles`) tag each `messages` row whose
//!   `text` matches the regular expression (and whose `sender_role` is listed, if `roles` is
//!   given).
//! * **Renames** (`[transforms.rename]`) normalize vendor tag names on both streams.
//! * **Aggregation**: a `conversations` row gets its vendor tags plus the rule tags of its
//!   messages plus the texts of its `tag_created` messages (giosg announces tagging with one;
//!   put `decrypt` before `tags` so encrypted ones are readable).
//!
//! A row whose tags the transform changes gets them sorted and unique; a row it has nothing
//! to add to or rename keeps the vendor's list exactly as it came (so with no rules and no
//! renames, conversation tags are exactly the vendor's). Both streams keep their schema.

#![warn(missing_docs)]

pub mod columns;
pub mod config;
pub mod rules;
mod transform;

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, config as sdk_config};

pub use config::TagsConfig;
pub use rules::Rules;
pub use transform::{TAG_CREATED, TagsTransform};

/// The plugin's name in pipeline files.
pub const NAME: &str = "tags";

/// Builds the transform from a parsed, validated config.
///
/// Errors: [`PluginError::Config`] if a pattern does not compile (already caught by
/// [`config::parse`]).
pub fn open(cfg: &TagsConfig) -> pipe_plugin_sdk::Result<TagsTransform> {
    let rules =
        Rules::compile(cfg).map_err(|e| PluginError::Config { path: "rules".into(), message: e.to_string() })?;
    Ok(TagsTransform::new(rules, cfg.tag_created_messages))
}

/// The `tags` plugin, for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: NAME,
        version: env!("CARGO_PKG_VERSION"),
        description: "Adds tags from regex rules on message text, renames vendor tags, carries tags onto conversations",
        config_schema: Arc::new(sdk_config::schema_of::<TagsConfig>),
        check_config: Arc::new(config::check),
        factory: PluginFactory::transform(|config, _ctx| Ok(Box::new(open(&config::parse(config)?)?))),
    }
}
