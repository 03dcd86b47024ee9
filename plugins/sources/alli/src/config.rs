//! The `[source]` keys of the Alli source, and the checks across them.

use pipe_plugin_sdk::config::{self, Secret};
use pipe_plugin_sdk::source_kit::{HttpConfig, HttpDefaults};
use pipe_plugin_sdk::{PluginError, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

/// Alli's HTTP defaults: the global backend (Japan: `https://backend-ja.alli.ai`), 4 requests
/// in flight, a retry budget of 200.
#[derive(Debug, Clone, Copy)]
pub struct AlliHttp;

impl HttpDefaults for AlliHttp {
    const VENDOR: &'static str = crate::VENDOR;
    const BASE_URL: &'static str = "https://backend.alli.ai";
}

/// Which Alli API a pipeline reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// REST webapi v2, `API-KEY` header.
    #[default]
    Rest,
    /// GraphQL agent API, `AUTHORIZATION` login token.
    Graphql,
}

/// Configuration of the Alli source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlliConfig {
    /// `rest` (webapi v2 with an API key; default) or `graphql` (agent API with a login).
    #[serde(default)]
    pub api: Api,
    // `base_url` (the API host; Japan: `https://backend-ja.alli.ai`), `concurrency` (also:
    // conversations fetched at the same time), `requests_per_second`, `retry_budget`,
    // `ca_file`; flat in `[source]`.
    #[serde(flatten)]
    pub http: HttpConfig<AlliHttp>,
    /// REST: the project API key (Dashboard → Settings → General), sent as `API-KEY`.
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// GraphQL: the agent's email for the `login` mutation.
    #[serde(default)]
    pub email: Option<String>,
    /// GraphQL: the agent's password for the `login` mutation.
    #[serde(default)]
    pub password: Option<Secret>,
    /// GraphQL: a ready login token instead of email + password, sent raw as `AUTHORIZATION`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// The `account_id` written to every row. Default: derived from the credentials (REST:
    /// `key-` + 16 hex digits of the SHA-256 of the API key; GraphQL: `login-` + the same of the
    /// lower-cased email). Required for GraphQL with `token` only.
    #[serde(default)]
    pub account_id: Option<String>,
    /// REST: only conversations of this LLM app (`llmAppId`).
    #[serde(default)]
    pub llm_app_id: Option<String>,
    /// REST: only conversations of this category (`categoryId`).
    #[serde(default)]
    pub category_id: Option<String>,
    /// REST: names of conversation variables to fetch into `variables` (Alli returns only the
    /// ones asked for).
    #[serde(default)]
    pub variables: Vec<String>,
    /// GraphQL: only conversations of these campaigns (`filter.campaignIds`).
    #[serde(default)]
    pub campaign_ids: Vec<String>,
    /// GraphQL: only conversations in this state (`filter.state`, e.g. `END_BY_USER`).
    #[serde(default)]
    pub state: Option<String>,
    /// Conversations per listing page. Default and maximum: 50 for REST, 100 for GraphQL.
    #[serde(default)]
    pub page_size: Option<u32>,
    /// Emit a checkpoint after this many conversations, or sooner once 1 MiB of message text
    /// and raw payloads came since the last one. Default 200.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// First run only: skip conversations whose last chat is before this time (RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    /// How far below the last run's newest last-chat time a run looks again (hours). Default 48.
    #[serde(default = "default_lookback_hours")]
    pub lookback_hours: u32,
}

fn default_checkpoint_every() -> u32 {
    200
}
fn default_lookback_hours() -> u32 {
    48
}

/// GraphQL `ConversationState` values (alli.md §3.2).
pub const STATES: [&str; 8] = [
    "INIT",
    "END_OF_CHATBOT",
    "END_BY_AGENT",
    "END_BY_USER",
    "WAIT_AGENT",
    "WAIT_USER_ANSWER",
    "WAIT_USER_ANSWER_2",
    "INTERRUPTED",
];

fn config_err(path: &str, message: impl Into<String>) -> PluginError {
    PluginError::Config { path: path.into(), message: message.into() }
}

impl AlliConfig {
    /// Cross-key checks the types alone cannot express: the credentials and filters of the
    /// chosen `api`, page size limits, and `state` values.
    pub fn validate(&self) -> Result<()> {
        self.http.base_url()?;
        let (max_page, api) = match self.api {
            Api::Rest => (50, "rest"),
            Api::Graphql => (100, "graphql"),
        };
        if let Some(n) = self.page_size
            && (n == 0 || n > max_page)
        {
            return Err(config_err("page_size", format!("must be 1 to {max_page} for api = \"{api}\"")));
        }
        let other_api = |key: &str, set: bool| -> Result<()> {
            if set {
                return Err(config_err(key, format!("is not used with api = \"{api}\"")));
            }
            Ok(())
        };
        match self.api {
            Api::Rest => {
                if self.api_key.as_ref().is_none_or(|k| k.expose().trim().is_empty()) {
                    return Err(config_err(
                        "api_key",
                        "required for api = \"rest\" (Alli dashboard → Settings → General → API key)",
                    ));
                }
                other_api("email", self.email.is_some())?;
                other_api("password", self.password.is_some())?;
                other_api("token", self.token.is_some())?;
                other_api("campaign_ids", !self.campaign_ids.is_empty())?;
                other_api("state", self.state.is_some())?;
            }
            Api::Graphql => {
                other_api("api_key", self.api_key.is_some())?;
                other_api("llm_app_id", self.llm_app_id.is_some())?;
                other_api("category_id", self.category_id.is_some())?;
                other_api("variables", !self.variables.is_empty())?;
                match (&self.email, &self.password, &self.token) {
                    (Some(_), Some(_), None) => {}
                    (None, None, Some(_)) => {
                        if self.account_id.is_none() {
                            return Err(config_err(
                                "account_id",
                                "required with `token` (a login token changes with every login, so no stable account id can be derived from it)",
                            ));
                        }
                    }
                    (_, _, Some(_)) => {
                        return Err(config_err("token", "give either `token` or `email` + `password`, not both"));
                    }
                    (Some(_), None, None) => return Err(config_err("password", "required with `email`")),
                    (None, Some(_), None) => return Err(config_err("email", "required with `password`")),
                    (None, None, None) => {
                        return Err(config_err(
                            "email",
                            "api = \"graphql\" needs `email` + `password` (the login mutation) or a `token`",
                        ));
                    }
                }
                if let Some(s) = &self.state
                    && !STATES.contains(&s.as_str())
                {
                    return Err(config_err(
                        "state",
                        format!("`{s}` is not an Alli conversation state ({})", STATES.join(", ")),
                    ));
                }
            }
        }
        if let Some(a) = &self.account_id
            && a.trim().is_empty()
        {
            return Err(config_err("account_id", "must not be empty"));
        }
        if let Some(s) = &self.start
            && pipe_plugin_sdk::time::parse_timestamp_micros(s).is_none()
        {
            return Err(config_err("start", format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z)")));
        }
        Ok(())
    }

    /// The `account_id` of the rows: the configured one, else derived from the credentials
    /// (never revealing them: a SHA-256 prefix).
    pub fn account_id(&self) -> String {
        if let Some(a) = &self.account_id {
            return a.trim().to_string();
        }
        match (self.api, &self.api_key, &self.email) {
            (Api::Rest, Some(key), _) => format!("key-{}", sha256_prefix(key.expose().trim())),
            (Api::Graphql, _, Some(email)) => format!("login-{}", sha256_prefix(&email.trim().to_lowercase())),
            _ => "unknown".into(),
        }
    }

    /// The page size to ask for.
    pub fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(match self.api {
            Api::Rest => 50,
            Api::Graphql => 100,
        })
    }
}

/// The first 16 hex digits of the SHA-256 of `s`.
pub fn sha256_prefix(s: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, s.as_bytes());
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses and checks the `[source]` table ([`AlliConfig::validate`]).
///
/// Errors: [`PluginError::Config`] with the key path.
pub fn parse_config(cfg: Value) -> Result<AlliConfig> {
    let cfg: AlliConfig = config::parse(cfg)?;
    cfg.validate()?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err_path(v: Value) -> String {
        match parse_config(v) {
            Err(PluginError::Config { path, .. }) => path,
            other => panic!("expected a config error, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn credentials_per_api() {
        assert!(parse_config(json!({"api_key": "k"})).is_ok());
        assert_eq!(err_path(json!({})), "api_key");
        assert_eq!(err_path(json!({"api_key": "k", "email": "a@b"})), "email");
        assert!(parse_config(json!({"api": "graphql", "email": "a@b", "password": "p"})).is_ok());
        assert_eq!(err_path(json!({"api": "graphql", "token": "t"})), "account_id");
        assert!(parse_config(json!({"api": "graphql", "token": "t", "account_id": "proj"})).is_ok());
        assert_eq!(err_path(json!({"api": "graphql", "email": "a@b"})), "password");
        assert_eq!(err_path(json!({"api": "graphql", "email": "a@b", "password": "p", "state": "DONE"})), "state");
        assert_eq!(err_path(json!({"api": "graphql", "email": "a@b", "password": "p", "page_size": 101})), "page_size");
        assert_eq!(err_path(json!({"api_key": "k", "page_size": 51})), "page_size");
        assert_eq!(err_path(json!({"api": "soap"})), "api");
    }

    #[test]
    fn derived_account_ids_are_stable_and_hide_the_secret() {
        let a = parse_config(json!({"api_key": "secret-key"})).unwrap().account_id();
        assert_eq!(a, parse_config(json!({"api_key": "secret-key"})).unwrap().account_id());
        assert!(a.starts_with("key-") && a.len() == 20 && !a.contains("secret"));
        let g = parse_config(json!({"api": "graphql", "email": "Agent@X.io", "password": "p"})).unwrap().account_id();
        assert_eq!(
            g,
            parse_config(json!({"api": "graphql", "email": "agent@x.io", "password": "q"})).unwrap().account_id()
        );
        let fixed = parse_config(json!({"api_key": "k", "account_id": "my-project"})).unwrap().account_id();
        assert_eq!(fixed, "my-project");
    }
}
