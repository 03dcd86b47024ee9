//! The config schema this plugin publishes (`pipe validate` checks pipelines against its keys;
//! the README key table follows it) keeps its keys, types and defaults: compared with
//! `tests/fixtures/config_schema.json`, the schema with descriptions left out and `$ref`s
//! resolved, so a refactor of where the keys are declared cannot change what users write.

use serde_json::{Map, Value};

/// `v` without `description`s, with `{"$ref": "#/$defs/X"}` replaced by the definition.
fn normalize(v: &Value, defs: &Map<String, Value>) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(name) = o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
                let mut merged = defs[name].as_object().cloned().unwrap_or_default();
                merged.extend(o.iter().filter(|(k, _)| *k != "$ref").map(|(k, v)| (k.clone(), v.clone())));
                return normalize(&Value::Object(merged), defs);
            }
            Value::Object(
                o.iter().filter(|(k, _)| *k != "description").map(|(k, v)| (k.clone(), normalize(v, defs))).collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| normalize(v, defs)).collect()),
        other => other.clone(),
    }
}

fn keys_of(schema: &Value) -> Value {
    let defs = schema.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut required: Vec<&str> =
        schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    required.sort();
    serde_json::json!({
        "properties": normalize(&schema["properties"], &defs),
        "required": required,
        "additionalProperties": schema["additionalProperties"],
    })
}

#[test]
fn config_keys_types_and_defaults_are_unchanged() {
    let schema = (pipe_plugin_alli::descriptor().config_schema)();
    let path = format!("{}/tests/fixtures/config_schema.json", env!("CARGO_MANIFEST_DIR"));
    let expected: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(keys_of(&schema), keys_of(&expected), "the config schema changed; compare with {path}");
}
