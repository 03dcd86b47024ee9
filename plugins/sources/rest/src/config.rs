//! The `[source]` keys of the `rest` source, and the loading of the vendor spec they name.

use std::collections::BTreeMap;
use std::path::Path;

use pipe_plugin_sdk::config::{self, resolve_vars};
use pipe_plugin_sdk::source_kit::{HttpConfig, HttpDefaults};
use pipe_plugin_sdk::{PluginError, Result};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::spec::{Spec, SpecError, line_col};

/// The HTTP defaults of the `rest` source: the API root comes from the spec (an empty default
/// here means "the spec's `base_url`"), 4 requests in flight, a retry budget of 200.
#[derive(Debug, Clone, Copy)]
pub struct RestHttp;

impl HttpDefaults for RestHttp {
    const VENDOR: &'static str = "rest";
    const BASE_URL: &'static str = "";
}

/// Where the vendor spec is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SpecRef {
    /// A spec file, relative to the pipeline file (`specs/acme.toml`).
    File(String),
    /// The spec inline, as a table (`[source.spec]`).
    Inline(serde_json::Map<String, Value>),
}

/// A value of `vars`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum VarValue {
    /// A string.
    Text(String),
    /// A list of strings.
    List(Vec<String>),
}

/// Configuration of the `rest` source (the `[source]` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RestConfig {
    /// The vendor spec: a TOML file (a path relative to the pipeline file) or an inline table.
    /// Its keys are in plugins/sources/rest/README.md.
    pub spec: SpecRef,
    // `base_url` (default: the spec's), `concurrency` (also: conversations fetched at the same
    // time), `requests_per_second`, `retry_budget`, `ca_file`, `max_response_bytes`; flat.
    #[serde(flatten)]
    pub http: HttpConfig<RestHttp>,
    /// The `account_id` written to every row. Default: the spec's `account_id`, else its
    /// `vendor`.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Values the spec's jq programs read as `$vars` (`$vars.app_id`): strings, or lists of
    /// strings (`clients = ["client-42", "user@example.com"]`, conversations a spec without a
    /// listing reads); may be `${VAR}`.
    #[serde(default)]
    pub vars: BTreeMap<String, VarValue>,
    /// Lists read from files into `$vars`: `clients = "clients.txt"` makes `$vars.clients`
    /// the file's lines, trimmed, blank lines and lines starting with `#` skipped (a path
    /// relative to the pipeline file). A missing file is an error.
    #[serde(default)]
    pub var_files: BTreeMap<String, String>,
    /// Replaces the spec's `timezone`: the IANA zone of the vendor's zone-less times, where it
    /// is a setting of the account (an Aimylogic bot's) rather than of the API.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Emit a checkpoint after this many conversations, or sooner once 1 MiB of message text
    /// and raw payloads came since the last one. Default 200.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: u32,
    /// First run only, with `[incremental]`: skip conversations whose listing time is before
    /// this time (RFC 3339).
    #[serde(default)]
    pub start: Option<String>,
    /// Replaces the spec's `incremental.lookback_hours`.
    #[serde(default)]
    pub lookback_hours: Option<u32>,
}

fn default_checkpoint_every() -> u32 {
    200
}

fn config_err(path: &str, message: impl Into<String>) -> PluginError {
    PluginError::Config { path: path.into(), message: message.into() }
}

/// A pipeline's `[source]` of plugin `rest`, with its spec loaded and checked.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The keys.
    pub config: RestConfig,
    /// The spec.
    pub spec: Spec,
}

impl Loaded {
    /// The `account_id` of the rows.
    pub fn account_id(&self) -> Result<String> {
        let raw = self.config.account_id.clone().or_else(|| self.spec.file.account_id.clone());
        match raw {
            Some(a) => {
                let a = resolve_env(&a).map_err(|m| config_err("account_id", m))?;
                if a.trim().is_empty() {
                    return Err(config_err("account_id", "must not be empty"));
                }
                Ok(a.trim().to_string())
            }
            None => Ok(self.spec.file.vendor.clone()),
        }
    }

    /// The API root: the pipeline's `base_url`, else the spec's, without a trailing `/`.
    ///
    /// Errors: not an http(s) URL, or an unset `${VAR}`.
    pub fn base_url(&self) -> Result<String> {
        let raw =
            if self.config.http.base_url.is_empty() { &self.spec.file.base_url } else { &self.config.http.base_url };
        let base = resolve_env(raw).map_err(|m| config_err("base_url", m))?;
        let base = base.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(config_err("base_url", "is not an http(s) URL (it must start with http:// or https://)"));
        }
        Ok(base)
    }

    /// The lookback, in microseconds (saturating).
    pub fn lookback_us(&self) -> i64 {
        let hours = self
            .config
            .lookback_hours
            .or_else(|| self.spec.file.incremental.as_ref().map(|i| i.lookback_hours))
            .unwrap_or(48);
        i64::from(hours).saturating_mul(3_600_000_000)
    }

    /// `vars` as a JSON object, `${VAR}` resolved, with the lists of `var_files`.
    ///
    /// Errors: an unset `${VAR}`; a var file that cannot be read.
    pub fn vars(&self) -> Result<Value> {
        let mut out = serde_json::Map::new();
        for (k, v) in &self.config.vars {
            let resolve = |s: &str| resolve_env(s).map_err(|m| config_err(&format!("vars.{k}"), m));
            let value = match v {
                VarValue::Text(s) => Value::String(resolve(s)?),
                VarValue::List(items) => {
                    Value::Array(items.iter().map(|s| resolve(s).map(Value::String)).collect::<Result<_>>()?)
                }
            };
            out.insert(k.clone(), value);
        }
        for (k, path) in &self.config.var_files {
            let text = std::fs::read_to_string(path)
                .map_err(|e| config_err(&format!("var_files.{k}"), format!("cannot read {path}: {e}")))?;
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(|l| Value::String(l.to_string()))
                .collect();
            out.insert(k.clone(), Value::Array(lines));
        }
        Ok(Value::Object(out))
    }
}

/// `${VAR}` from the environment.
pub fn resolve_env(s: &str) -> std::result::Result<String, String> {
    resolve_vars(s, &|name| std::env::var(name).ok())
}

/// Parses the `[source]` table and loads its spec. A relative spec path is taken from the
/// working directory (the engine makes it relative to the pipeline file before this).
///
/// Errors: [`PluginError::Config`] with the key path; a spec problem is at `spec`, its
/// message starting with the spec file, line and column and the spec key (an inline spec's
/// problem is at `spec.<key>`).
pub fn parse_config(cfg: Value) -> Result<Loaded> {
    let config: RestConfig = config::parse(cfg)?;
    let spec = match &config.spec {
        SpecRef::File(path) => load_file(Path::new(path))?,
        SpecRef::Inline(table) => load_inline(table)?,
    };
    let mut loaded = Loaded { config, spec };
    if let Some(z) = &loaded.config.timezone {
        pipe_plugin_sdk::time::Zone::named(z).map_err(|m| config_err("timezone", m))?;
        loaded.spec.file.timezone = Some(z.clone());
    }
    for k in loaded.config.var_files.keys() {
        if loaded.config.vars.contains_key(k) {
            return Err(config_err(&format!("var_files.{k}"), format!("`{k}` is also in `vars`")));
        }
    }
    if let Some(s) = &loaded.config.start
        && pipe_plugin_sdk::time::parse_timestamp_micros(s).is_none()
    {
        return Err(config_err("start", format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z)")));
    }
    Ok(loaded)
}

/// Loads a spec file.
///
/// Errors: at `spec`: the file cannot be read, or its first problem as `file:line:col: key: what`
/// (the others follow on the next lines).
pub fn load_file(path: &Path) -> Result<Spec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| config_err("spec", format!("cannot read the vendor spec {}: {e}", path.display())))?;
    Spec::parse(&text).map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(|e| located(&path.display().to_string(), &text, e)).collect();
        config_err("spec", lines.join("\n"))
    })
}

fn located(file: &str, text: &str, e: &SpecError) -> String {
    let at = match &e.span {
        Some(span) => {
            let (line, col) = line_col(text, span.start);
            format!("{file}:{line}:{col}")
        }
        None => file.to_string(),
    };
    if e.key.is_empty() { format!("{at}: {}", e.message) } else { format!("{at}: {}: {}", e.key, e.message) }
}

/// Loads an inline spec (the `spec` table of the pipeline).
///
/// Errors: at `spec.<key>` for a problem of a key, else at `spec`.
pub fn load_inline(table: &serde_json::Map<String, Value>) -> Result<Spec> {
    let text = toml::to_string(table).map_err(|e| config_err("spec", format!("is not a vendor spec: {e}")))?;
    Spec::parse(&text).map_err(|errors| {
        let first = &errors[0];
        if first.key.is_empty() {
            config_err("spec", first.message.clone())
        } else {
            config_err(&format!("spec.{}", first.key), first.message.clone())
        }
    })
}
