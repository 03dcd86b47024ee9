//! Plugin config tables outside a pipeline, for `pipe plugin check --config FILE`: the file is
//! either a pipeline (its `[source]`, `[[transforms]]` and `[[sinks]]` tables, matched by
//! `plugin = "<name>"`), or a file of tables named after the plugins (`[giosg]`), or, for a
//! library with a single plugin, that plugin's keys at the top level.

use std::path::Path;

use serde_json::{Map, Value};

use super::{ConfigError, interpolate, line_of, toml_json};

/// A config file read and `${VAR}`-resolved, ready to hand out per plugin.
pub struct ConfigTables {
    json: Map<String, Value>,
}

impl ConfigTables {
    /// Reads `path` (TOML) and resolves `${VAR}`s with `vars`.
    ///
    /// Errors: unreadable file, invalid TOML (with its line), an unset variable (with its key
    /// path).
    pub fn load(path: &Path, vars: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err =
            |line, key: &str, message: String| ConfigError { file: file.clone(), line, path: key.into(), message };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(None, "", format!("cannot read the config file: {e}")))?;
        let doc = toml_json::parse(&text)
            .map_err(|(m, at)| err(Some(line_of(&text, at)), "", format!("invalid TOML: {m}")))?;
        let resolved = interpolate::resolve_value(&doc.json, "", vars).map_err(|(p, m)| {
            let p = p.trim_start_matches('.').to_string();
            let line = doc.spans.get(&p).map(|s| line_of(&text, s.key.start));
            err(line, &p, m)
        })?;
        let Value::Object(json) = resolved else { unreachable!("a TOML document is a table") };
        Ok(ConfigTables { json })
    }

    /// The config of plugin `name` (without the `plugin` key), or `None` when the file has
    /// none for it. `only_plugin`: the library ships just this plugin, so a file of bare keys
    /// is its config.
    pub fn for_plugin(&self, name: &str, only_plugin: bool) -> Option<Value> {
        let is_pipeline = self.json.contains_key("source") || self.json.contains_key("sinks");
        if is_pipeline {
            let mut tables: Vec<&Value> = self.json.get("source").into_iter().collect();
            for list in ["transforms", "sinks"] {
                if let Some(Value::Array(items)) = self.json.get(list) {
                    tables.extend(items);
                }
            }
            return tables.into_iter().find(|t| t.get("plugin").and_then(Value::as_str) == Some(name)).map(|t| {
                let mut t = t.clone();
                t.as_object_mut().map(|m| m.remove("plugin"));
                t
            });
        }
        match self.json.get(name) {
            Some(t @ Value::Object(_)) => Some(t.clone()),
            _ if only_plugin => Some(Value::Object(self.json.clone())),
            _ => None,
        }
    }
}
