//! The `tags` transform's configuration (a `[[transforms]]` table with `plugin = "tags"`).

use std::collections::BTreeMap;

use pipe_plugin_sdk::{PluginError, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Keys of the tags transform.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TagsConfig {
    /// Rules that tag messages whose text matches (`[[transforms.rules]]` tables, each with
    /// the keys below), in order. Default: none.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Vendor tag name → normalized name (`[transforms.rename]`), applied to the vendor tags
    /// of both streams and to `tag_created` message texts. Exact, case-sensitive names; names
    /// not listed are kept.
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Whether the text of a `tag_created` message (giosg announces tagging with one) counts
    /// as a tag of its conversation. Default true.
    #[serde(default = "default_true")]
    pub tag_created_messages: bool,
}

fn default_true() -> bool {
    true
}

/// One rule: messages whose `text` matches `pattern` get `tag` (and so does their
/// conversation).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The tag a matching message (and its conversation) gets. Required, not empty.
    pub tag: String,
    /// A regular expression in Rust `regex` syntax (<https://docs.rs/regex/latest/regex/#syntax>),
    /// searched for anywhere in the message text (anchor with `^`/`$` to match the whole
    /// text); `(?i)` makes it case-insensitive. Messages without text (still encrypted,
    /// purged, join/leave) never match. TOML literal strings (`'...'`) save escaping
    /// backslashes. An invalid pattern is a configuration error naming the rule. Required.
    pub pattern: String,
    /// Only messages whose `sender_role` is one of these match; default: every role.
    #[serde(default)]
    pub roles: Option<Vec<Role>>,
}

/// A canonical `messages.sender_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The customer.
    Visitor,
    /// A human operator.
    Agent,
    /// A bot.
    Bot,
    /// Events and automation (join, leave, tag_created, rules).
    System,
}

impl Role {
    /// The value in the `sender_role` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Visitor => "visitor",
            Role::Agent => "agent",
            Role::Bot => "bot",
            Role::System => "system",
        }
    }
}

impl TagsConfig {
    /// Checks what the types cannot: tags are not empty, patterns compile, role lists are
    /// not empty.
    ///
    /// Errors: [`PluginError::Config`] at `rules[i].tag`, `rules[i].pattern` or
    /// `rules[i].roles`.
    pub fn validate(&self) -> Result<()> {
        let err = |path: String, message: String| PluginError::Config { path, message };
        for (i, r) in self.rules.iter().enumerate() {
            if r.tag.trim().is_empty() {
                return Err(err(format!("rules[{i}].tag"), "must not be empty".into()));
            }
            if let Err(e) = regex::Regex::new(&r.pattern) {
                // The regex error is multi-line with a caret under the problem; keep it whole.
                return Err(err(format!("rules[{i}].pattern"), format!("invalid regular expression: {e}")));
            }
            if r.roles.as_ref().is_some_and(Vec::is_empty) {
                return Err(err(
                    format!("rules[{i}].roles"),
                    "must not be empty (leave it out to match every role)".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Parses and validates a config, for the plugin descriptor's `check_config` and the factory.
///
/// Errors: [`PluginError::Config`] with the key path.
pub fn parse(config: Value) -> Result<TagsConfig> {
    let cfg: TagsConfig = pipe_plugin_sdk::config::parse(config)?;
    cfg.validate()?;
    Ok(cfg)
}

/// [`parse`] for validation only.
pub fn check(config: &Value) -> Result<()> {
    parse(config.clone()).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path_of(v: Value) -> String {
        match check(&v).unwrap_err() {
            PluginError::Config { path, .. } => path,
            other => panic!("not a config error: {other}"),
        }
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(
            path_of(json!({"rules": [{"tag": "a", "pattern": "x"}, {"tag": "b", "pattern": "(unclosed"}]})),
            "rules[1].pattern"
        );
        assert_eq!(path_of(json!({"rules": [{"tag": " ", "pattern": "x"}]})), "rules[0].tag");
        assert_eq!(path_of(json!({"rules": [{"tag": "a", "pattern": "x", "roles": []}]})), "rules[0].roles");
        assert_eq!(
            path_of(json!({"rules": [{"tag": "a", "pattern": "x", "roles": ["customer"]}]})),
            "rules[0].roles[0]"
        );
        assert_eq!(path_of(json!({"rules": [{"tag": "a"}]})), "rules[0]");
        assert_eq!(path_of(json!({"renames": {}})), "renames");
    }

    #[test]
    fn defaults() {
        let cfg = parse(json!({})).unwrap();
        assert!(cfg.rules.is_empty() && cfg.rename.is_empty() && cfg.tag_created_messages);
    }
}
