//! Typed plugin configuration from the JSON table the engine hands over.
//!
//! A plugin defines a `#[derive(Deserialize, JsonSchema)]` struct with
//! `#[serde(deny_unknown_fields)]`, publishes [`schema_of`] it as its config schema, and parses
//! it with [`parse`]. The engine checks unknown keys against the schema and maps every
//! [`PluginError::Config`] path back to a file and line.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{PluginError, Result};

/// Deserializes a plugin config, reporting the failing key path (`page_size`, `rules[2].tag`).
///
/// Errors: [`PluginError::Config`] with the path and serde's explanation (wrong type, missing
/// field, unknown field).
pub fn parse<T: DeserializeOwned>(config: Value) -> Result<T> {
    serde_path_to_error::deserialize::<_, T>(&config).map_err(|e| {
        let path = e.path().to_string();
        let mut path = if path == "." { String::new() } else { path };
        if path.is_empty() {
            path = culprit::<T>(&config).unwrap_or_default();
        }
        PluginError::Config { path, message: e.into_inner().to_string() }
    })
}

/// The key whose removal alone makes `config` parse. serde reports an error inside a
/// `#[serde(flatten)]` block (such as [`crate::source_kit::HttpConfig`]) without its key, so
/// this finds the key for the message; `None` when no single key is to blame (a missing key).
fn culprit<T: DeserializeOwned>(config: &Value) -> Option<String> {
    let table = config.as_object()?;
    table
        .keys()
        .find(|key| {
            let mut rest = table.clone();
            rest.remove(key.as_str());
            T::deserialize(&Value::Object(rest)).is_ok()
        })
        .cloned()
}

/// [`parse`] for validation only, as published in
/// [`crate::PluginDescriptor::check_config`]: `check_config: Arc::new(config::check::<MyConfig>)`.
pub fn check<T: DeserializeOwned>(config: &Value) -> Result<()> {
    parse::<T>(config.clone()).map(|_: T| ())
}

/// The JSON Schema of a config type, as published in [`crate::PluginDescriptor::config_schema`].
pub fn schema_of<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).expect("a JSON schema serializes")
}

/// Resolves every `${VAR}` in `s` through `vars` (the environment, for a pipeline file and the
/// `rest` source's vendor spec); `$$` is a literal `$`, a `$` before anything else stays.
///
/// Errors: `environment variable NAME is not set`, or a malformed reference; never the value.
pub fn resolve_vars(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> std::result::Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| "unclosed `${` (write `$$` for a literal `$`)".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value = vars(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A secret string (API token, password): deserializes from a plain string, but its `Debug` and
/// `Display` print `***`, so it cannot leak into logs or errors by accident.
#[derive(Clone, serde::Deserialize, JsonSchema)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, JsonSchema, Debug)]
    #[serde(deny_unknown_fields)]
    struct Demo {
        #[allow(dead_code)]
        token: Secret,
        #[allow(dead_code)]
        page_size: Option<u32>,
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse::<Demo>(serde_json::json!({"token": "t", "page_size": "ten"})).unwrap_err();
        let PluginError::Config { path, .. } = err else { panic!("not a config error") };
        assert_eq!(path, "page_size");
    }

    #[test]
    fn secrets_do_not_print() {
        let d: Demo = parse(serde_json::json!({"token": "s3cr3t"})).unwrap();
        assert!(!format!("{d:?}").contains("s3cr3t"));
        assert_eq!(d.token.expose(), "s3cr3t");
    }

    #[test]
    fn schema_lists_properties() {
        let s = schema_of::<Demo>();
        assert!(s["properties"]["token"].is_object());
        assert_eq!(s["additionalProperties"], serde_json::json!(false));
    }
}
