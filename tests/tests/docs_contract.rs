//! The documentation in the repo cannot drift from the code it describes:
//!
//! * **Canonical schemas.** The column tables of `docs/design.md` §3 (between
//!   `<!-- schema:<stream>:begin -->` and `<!-- schema:<stream>:end -->`) list exactly the columns
//!   of `pipe_plugin_sdk::schema::canonical_schema`, in order, with the same Arrow type and
//!   nullability.
//! * **Plugin keys.** Every plugin README has a keys table between `<!-- keys:begin -->` and
//!   `<!-- keys:end -->` that is exactly the one generated from the plugin's config JSON Schema
//!   (`PluginDescriptor::config_schema`): key, type, default, description. After changing a
//!   config struct, regenerate every table with
//!
//!   ```sh
//!   PIPE_UPDATE_DOCS=1 cargo test --release -p pipe-tests --test docs_contract
//!   ```
//!
//!   The `delta` sink is a project of its own (not a workspace member); its table is checked
//!   against `target/release/libpipe_plugin_delta.so` (or `$PIPE_DELTA_LIBRARY`) when that
//!   library has been built (CI builds it), and skipped with a note otherwise.
//! * **Pinned keys.** A plugin with `tests/fixtures/config_schema.json` keeps exactly those keys,
//!   types and defaults.
//! * **Metrics.** The README's "Monitoring" table (between `<!-- metrics:begin -->` and
//!   `<!-- metrics:end -->`) is exactly the one generated from `pipe_engine::telemetry::catalog`
//!   (name, type, labels, meaning); `PIPE_UPDATE_DOCS=1` regenerates it too.
//! * **Citations.** Every `docs/<file>.md §N` cited in the tree names a file and a section that
//!   exist, and nothing cites a document outside the repository.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_schema::DataType;
use pipe_plugin_sdk::schema::{canonical_schema, list_utf8_type, map_utf8_type, timestamp_type};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The text between `<!-- {name}:begin -->` and `<!-- {name}:end -->`, with the byte range of
/// that text in `doc`.
fn between_markers<'a>(doc: &'a str, name: &str) -> Option<(&'a str, std::ops::Range<usize>)> {
    let begin = format!("<!-- {name}:begin -->\n");
    let end = format!("<!-- {name}:end -->");
    let start = doc.find(&begin)? + begin.len();
    let stop = start + doc[start..].find(&end)?;
    Some((&doc[start..stop], start..stop))
}

/// The cells of each body row of the markdown table in `block` (header and rule rows skipped).
fn table_rows(block: &str) -> Vec<Vec<String>> {
    block
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// docs/design.md §3: the canonical column tables

/// The Arrow type and nullability of a type cell of docs/design.md §3 (`utf8`, `uint32`, `bool`,
/// `timestamp[us, UTC]`, `list<utf8>`, `map<utf8, utf8>`; a trailing `?` = nullable).
fn parse_type_cell(cell: &str) -> (DataType, bool) {
    let cell = cell.trim_matches('`');
    let (name, nullable) = match cell.strip_suffix('?') {
        Some(n) => (n, true),
        None => (cell, false),
    };
    let ty = match name {
        "utf8" => DataType::Utf8,
        "uint32" => DataType::UInt32,
        "bool" => DataType::Boolean,
        "timestamp[us, UTC]" => timestamp_type(),
        "list<utf8>" => list_utf8_type(),
        "map<utf8, utf8>" => map_utf8_type(),
        other => panic!("docs/design.md §3: unknown type `{other}`"),
    };
    (ty, nullable)
}

#[test]
fn design_md_column_tables_match_the_canonical_schemas() {
    let path = workspace().join("docs/design.md");
    let doc = read(&path);
    for stream in ["messages", "conversations"] {
        let (block, _) = between_markers(&doc, &format!("schema:{stream}"))
            .unwrap_or_else(|| panic!("docs/design.md: no `<!-- schema:{stream}:begin/end -->` table"));
        let documented: Vec<(String, DataType, bool)> = table_rows(block)
            .into_iter()
            .map(|cells| {
                let (ty, nullable) = parse_type_cell(&cells[1]);
                (cells[0].trim_matches('`').to_string(), ty, nullable)
            })
            .collect();
        let schema = canonical_schema(stream).expect("a canonical stream");
        let actual: Vec<(String, DataType, bool)> =
            schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone(), f.is_nullable())).collect();
        assert_eq!(
            documented, actual,
            "docs/design.md §3 `{stream}` table differs from pipe_plugin_sdk::schema (`pipe schema {stream}`)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin READMEs: keys tables generated from the config JSON Schemas

/// Which README documents each plugin.
const READMES: [(&str, &str); 10] = [
    ("giosg", "plugins/sources/giosg/README.md"),
    ("rest", "plugins/sources/rest/README.md"),
    ("alli", "plugins/sources/alli/README.md"),
    ("aimylogic", "plugins/sources/aimylogic/README.md"),
    ("decrypt", "plugins/transforms/decrypt/README.md"),
    ("tags", "plugins/transforms/tags/README.md"),
    ("parquet", "plugins/sinks/parquet/README.md"),
    ("json", "plugins/sinks/json/README.md"),
    ("stdout", "plugins/sinks/stdout/README.md"),
    ("delta", "plugins/sinks/delta/README.md"),
];

/// Follows a local `$ref` (`#/$defs/Name`), returning the definition and its name.
fn deref<'a>(root: &'a Value, s: &'a Value) -> (&'a Value, Option<&'a str>) {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().expect("a $ref has a last segment");
            let def = r
                .strip_prefix("#/")
                .map(|p| p.split('/').fold(root, |v, seg| &v[seg]))
                .filter(|v| !v.is_null())
                .unwrap_or_else(|| panic!("unresolvable $ref {r}"));
            (def, Some(name))
        }
        None => (s, None),
    }
}

/// `s` without its "or null" (an `Option` field): `anyOf: [X, null]` is X, `type: [t, "null"]`
/// is t.
fn non_null(s: &Value) -> Value {
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = alts.iter().filter(|a| a.get("type") != Some(&Value::from("null"))).collect();
        if rest.len() == 1 {
            return rest[0].clone();
        }
    }
    let mut s = s.clone();
    if let Some(types) = s.get("type").and_then(Value::as_array) {
        let rest: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
        if rest.len() == 1 {
            s["type"] = rest[0].clone();
        }
    }
    s
}

/// The values of an enum schema (`oneOf` of `const`s, or `enum`), each with its description.
fn enum_values(s: &Value) -> Option<Vec<(String, Option<String>)>> {
    if let Some(values) = s.get("enum").and_then(Value::as_array) {
        return Some(values.iter().map(|v| (v.as_str().unwrap_or_default().to_string(), None)).collect());
    }
    let alts = s.get("oneOf").and_then(Value::as_array)?;
    alts.iter()
        .map(|a| {
            let value = a.get("const")?.as_str()?.to_string();
            Some((value, a.get("description").and_then(Value::as_str).map(one_line)))
        })
        .collect()
}

/// The properties of an object schema (including `allOf` parts and flattened `$ref`s), and
/// which of them are required.
fn properties(root: &Value, s: &Value) -> (BTreeMap<String, Value>, Vec<String>) {
    let (s, _) = deref(root, s);
    let mut props = BTreeMap::new();
    let mut required = Vec::new();
    if let Some(p) = s.get("properties").and_then(Value::as_object) {
        props.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    if let Some(r) = s.get("required").and_then(Value::as_array) {
        required.extend(r.iter().filter_map(Value::as_str).map(String::from));
    }
    for part in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        let (p, r) = properties(root, part);
        props.extend(p);
        required.extend(r);
    }
    (props, required)
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace('|', "\\|")
}

/// The type cell of one key.
fn type_cell(root: &Value, s: &Value) -> String {
    let s = non_null(s);
    let (def, name) = deref(root, &s);
    if name == Some("Secret") {
        return "string (secret)".to_string();
    }
    if let Some(values) = enum_values(def) {
        let quoted: Vec<String> = values.iter().map(|(v, _)| format!("`\"{v}\"`")).collect();
        return format!("one of {}", quoted.join(", "));
    }
    let def = non_null(def);
    match def.get("type").and_then(Value::as_str) {
        Some("string") => "string".to_string(),
        Some("boolean") => "bool".to_string(),
        Some("number") => "number".to_string(),
        Some("integer") => match def.get("minimum").and_then(Value::as_u64) {
            Some(min) if min > 0 => format!("integer ≥ {min}"),
            _ => "integer".to_string(),
        },
        Some("array") => {
            let items = def.get("items").cloned().unwrap_or(Value::Null);
            let (item_def, _) = deref(root, &items);
            if item_def.get("properties").is_some() {
                "list of tables".to_string()
            } else {
                match type_cell(root, &items).as_str() {
                    "string" => "list of strings".to_string(),
                    other => format!("list of {}", other.strip_prefix("one of ").unwrap_or(other)),
                }
            }
        }
        Some("object") => match def.get("additionalProperties") {
            Some(ap) if ap.is_object() => format!("table of string → {}", type_cell(root, ap)),
            _ => "table".to_string(),
        },
        _ => "any".to_string(),
    }
}

/// The default cell of one key.
fn default_cell(s: &Value, required: bool) -> String {
    if required {
        return "required".to_string();
    }
    match s.get("default") {
        None => "optional".to_string(),
        Some(Value::Null) => "none".to_string(),
        Some(v) => format!("`{v}`"),
    }
}

/// The description cell: the key's doc comment on one line, plus what each value of an enum
/// means.
fn description_cell(root: &Value, s: &Value) -> String {
    let value = non_null(s);
    let (def, name) = deref(root, &value);
    let mut text = s
        .get("description")
        .or_else(|| if name == Some("Secret") { None } else { def.get("description") })
        .and_then(Value::as_str)
        .map(one_line)
        .unwrap_or_default();
    if let Some(values) = enum_values(def) {
        let described: Vec<String> =
            values.iter().filter_map(|(v, d)| d.as_ref().map(|d| format!("`{v}`: {d}"))).collect();
        if !described.is_empty() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&described.join(" "));
        }
    }
    text
}

/// Appends the rows of an object's keys (required ones first, in the schema's order, then the
/// others alphabetically); keys whose value is a table, or a list of tables, get their own keys
/// as `key.sub` / `key[].sub` rows below them.
fn key_rows(root: &Value, object: &Value, prefix: &str, rows: &mut Vec<[String; 4]>) {
    let (props, required) = properties(root, object);
    let mut order: Vec<&String> = required.iter().filter(|k| props.contains_key(*k)).collect();
    order.extend(props.keys().filter(|k| !required.contains(k)));
    for key in order {
        let s = &props[key];
        let full = format!("{prefix}{key}");
        rows.push([
            format!("`{full}`"),
            type_cell(root, s),
            default_cell(s, required.contains(key)),
            description_cell(root, s),
        ]);
        let value = non_null(s);
        let (def, _) = deref(root, &value);
        if def.get("properties").is_some() {
            key_rows(root, def, &format!("{full}."), rows);
        } else if let Some(items) = non_null(def).get("items") {
            let (item_def, _) = deref(root, items);
            if item_def.get("properties").is_some() {
                key_rows(root, item_def, &format!("{full}[]."), rows);
            }
        }
    }
}

/// The markdown keys table of a plugin config JSON Schema: `| key | type | default | description |`.
fn keys_table(schema: &Value) -> String {
    let mut rows = Vec::new();
    key_rows(schema, schema, "", &mut rows);
    let mut out = String::from("| key | type | default | description |\n|---|---|---|---|\n");
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// The config schema of every plugin a README documents: the built-ins, plus `delta` when its
/// library is built.
fn config_schemas() -> (BTreeMap<&'static str, Value>, Option<String>) {
    let mut schemas = BTreeMap::new();
    for entry in pipe_engine::registry::Registry::builtin().all() {
        schemas.insert(entry.descriptor.name, (entry.descriptor.config_schema)());
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let delta = std::env::var_os("PIPE_DELTA_LIBRARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| target.join("release/libpipe_plugin_delta.so"));
    let mut skipped = None;
    if delta.exists() {
        let lib = pipe_engine::plugin_host::loader::load(&delta)
            .unwrap_or_else(|e| panic!("{}: {e}", delta.display()))
            .unwrap_or_else(|| panic!("{} is not a plugin library", delta.display()));
        let plugin = lib.plugins.iter().find(|p| p.name == "delta").expect("the delta library ships `delta`");
        schemas.insert("delta", plugin.config_schema.clone());
    } else {
        skipped = Some(format!(
            "delta: keys table NOT checked: {} is not built (cargo build --release --features merge \
             --manifest-path plugins/sinks/delta/Cargo.toml --target-dir target)",
            delta.display()
        ));
    }
    (schemas, skipped)
}

#[test]
fn plugin_readme_keys_tables_match_the_config_schemas() {
    let update = std::env::var("PIPE_UPDATE_DOCS").is_ok_and(|v| v == "1");
    let (schemas, skipped) = config_schemas();
    for name in schemas.keys() {
        assert!(READMES.iter().any(|(n, _)| n == name), "plugin `{name}` has no README in READMES");
    }
    let mut drifted = Vec::new();
    for (name, readme) in READMES {
        let Some(schema) = schemas.get(name) else { continue };
        let path = workspace().join(readme);
        let doc = read(&path);
        let expected = keys_table(schema);
        let (current, range) = between_markers(&doc, "keys")
            .unwrap_or_else(|| panic!("{readme}: no `<!-- keys:begin -->` / `<!-- keys:end -->` markers"));
        if current == expected {
            continue;
        }
        if update {
            let mut new = doc.clone();
            new.replace_range(range, &expected);
            std::fs::write(&path, new).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            eprintln!("{readme}: keys table regenerated");
        } else {
            drifted.push(format!("{readme} (plugin `{name}`), expected:\n{expected}"));
        }
    }
    if let Some(note) = skipped {
        eprintln!("{note}");
    }
    assert!(
        drifted.is_empty(),
        "keys tables differ from the config schemas; regenerate with \
         `PIPE_UPDATE_DOCS=1 cargo test --release -p pipe-tests --test docs_contract`:\n\n{}",
        drifted.join("\n")
    );
}

/// The reference of the `rest` source's vendor spec keys (between `<!-- spec-keys:begin -->`
/// and `<!-- spec-keys:end -->` of its README) is generated from the spec's JSON Schema, like
/// the keys tables.
#[test]
fn rest_spec_key_reference_matches_the_spec_schema() {
    let readme = "plugins/sources/rest/README.md";
    let path = workspace().join(readme);
    let doc = read(&path);
    let expected = keys_table(&pipe_plugin_rest::spec_schema());
    let (current, range) = between_markers(&doc, "spec-keys")
        .unwrap_or_else(|| panic!("{readme}: no `<!-- spec-keys:begin -->` / `<!-- spec-keys:end -->` markers"));
    if current == expected {
        return;
    }
    if std::env::var("PIPE_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let mut new = doc.clone();
        new.replace_range(range, &expected);
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{readme}: spec key reference regenerated");
        return;
    }
    panic!(
        "{readme}: the spec key reference differs from the spec schema; regenerate with \
         `PIPE_UPDATE_DOCS=1 cargo test --release -p pipe-tests --test docs_contract`, expected:\n{expected}"
    );
}

#[test]
fn keys_table_renders_types_defaults_and_nested_keys() {
    let schema = serde_json::json!({
        "$defs": {
            "Secret": {"type": "string", "description": "generic"},
            "Mode": {"oneOf": [
                {"const": "a", "type": "string", "description": "First."},
                {"const": "b", "type": "string", "description": "Second."}
            ]},
            "Rule": {"type": "object", "properties": {"tag": {"type": "string", "description": "The tag."}}, "required": ["tag"]}
        },
        "type": "object",
        "properties": {
            "token": {"$ref": "#/$defs/Secret", "description": "API token."},
            "mode": {"$ref": "#/$defs/Mode", "description": "Which."},
            "page_size": {"type": "integer", "minimum": 1, "default": 100, "description": "Items\nper | page."},
            "start": {"type": ["string", "null"], "default": null},
            "rules": {"type": "array", "items": {"$ref": "#/$defs/Rule"}},
            "rename": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}}
        },
        "required": ["token"]
    });
    assert_eq!(
        keys_table(&schema),
        "| key | type | default | description |\n|---|---|---|---|\n\
         | `token` | string (secret) | required | API token. |\n\
         | `mode` | one of `\"a\"`, `\"b\"` | optional | Which. `a`: First. `b`: Second. |\n\
         | `page_size` | integer ≥ 1 | `100` | Items per \\| page. |\n\
         | `rename` | table of string → string | `{}` |  |\n\
         | `rules` | list of tables | optional |  |\n\
         | `rules[].tag` | string | required | The tag. |\n\
         | `start` | string | none |  |\n"
    );
}

// ---------------------------------------------------------------------------------------------
// Pinned keys: what users write in their pipeline files does not change by accident

/// `v` without `description`s, with `{"$ref": "#/$defs/X"}` replaced by the definition.
fn without_descriptions(v: &Value, defs: &serde_json::Map<String, Value>) -> Value {
    match v {
        Value::Object(o) => {
            if let Some(name) = o.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
                let mut merged = defs[name].as_object().cloned().unwrap_or_default();
                merged.extend(o.iter().filter(|(k, _)| *k != "$ref").map(|(k, v)| (k.clone(), v.clone())));
                return without_descriptions(&Value::Object(merged), defs);
            }
            Value::Object(
                o.iter()
                    .filter(|(k, _)| *k != "description")
                    .map(|(k, v)| (k.clone(), without_descriptions(v, defs)))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(|v| without_descriptions(v, defs)).collect()),
        other => other.clone(),
    }
}

/// The keys, types, defaults and required keys of a config schema: what a pipeline file sees.
fn pinned_keys(schema: &Value) -> Value {
    let defs = schema.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut required: Vec<&str> =
        schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    required.sort();
    serde_json::json!({
        "properties": without_descriptions(&schema["properties"], &defs),
        "required": required,
        "additionalProperties": schema["additionalProperties"],
    })
}

/// A plugin with `tests/fixtures/config_schema.json` next to its README keeps exactly those
/// keys, types and defaults (descriptions may change): a refactor of where keys are declared
/// (the source kit's shared HTTP block, say) cannot change what users write. A deliberate
/// change updates the fixture in the same commit.
#[test]
fn pinned_config_keys_types_and_defaults_are_unchanged() {
    let (schemas, _) = config_schemas();
    let mut pinned = 0;
    for (name, readme) in READMES {
        let dir = workspace().join(readme).parent().expect("a plugin directory").to_path_buf();
        let fixture = dir.join("tests/fixtures/config_schema.json");
        if !fixture.exists() {
            continue;
        }
        let expected: Value = serde_json::from_str(&read(&fixture)).expect("the fixture is JSON");
        let schema = schemas.get(name).unwrap_or_else(|| panic!("{name}: no config schema"));
        assert_eq!(
            pinned_keys(schema),
            pinned_keys(&expected),
            "{name}: the config schema changed; compare with {}",
            fixture.display()
        );
        pinned += 1;
    }
    assert!(pinned >= 3, "only {pinned} pinned config schemas found (every source pins its keys)");
}

// ---------------------------------------------------------------------------------------------
// Citations: `docs/<file>.md §N` must exist; nothing outside the repository is cited

/// Files of the tree that may cite documents (sources, manifests, docs), skipping build output
/// and virtual environments.
fn tree_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            if !matches!(name, "target" | ".venv" | ".venv-bench" | ".git" | "node_modules") {
                tree_files(&path, out);
            }
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("rs" | "toml" | "md" | "sh" | "py")) {
            out.push(path);
        }
    }
}

/// Whether the markdown `doc` has a heading numbered `section` (`## 3. …`, `### 3.1 …`).
fn has_section(doc: &str, section: &str) -> bool {
    doc.lines().filter(|l| l.starts_with('#')).any(|l| {
        let title = l.trim_start_matches('#').trim_start();
        title
            .strip_prefix(section)
            .is_some_and(|after| after.is_empty() || after == "." || after.starts_with(". ") || after.starts_with(' '))
    })
}

#[test]
fn cited_docs_sections_exist_and_nothing_outside_the_repo_is_cited() {
    let root = workspace();
    let mut files = Vec::new();
    tree_files(&root, &mut files);
    let mut problems = Vec::new();
    let mut citations = 0;
    for file in &files {
        let text = read(file);
        let rel = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        // Spelled in two pieces so that this file does not match what it looks for.
        for needle in [concat!("../", "shared/"), concat!("/wo", "rk/")] {
            if text.contains(needle) {
                problems.push(format!("{rel}: refers outside the repository (`{needle}`)"));
            }
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find("docs/") {
            let tail = &rest[at + "docs/".len()..];
            rest = tail;
            let Some(md) = tail.find(".md") else { continue };
            let doc_name = &tail[..md];
            let plausible = |c: char| c.is_ascii_lowercase() || c == '/' || c == '-' || c == '_';
            if doc_name.is_empty() || doc_name.len() > 40 || !doc_name.chars().all(plausible) {
                continue;
            }
            let doc_path = root.join("docs").join(format!("{doc_name}.md"));
            citations += 1;
            if !doc_path.exists() {
                problems.push(format!("{rel}: cites docs/{doc_name}.md, which does not exist"));
                continue;
            }
            let after = &tail[md + 3..];
            let Some(section) = after.strip_prefix(" §") else { continue };
            let number: String = section.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
            let number = number.trim_end_matches('.');
            if number.is_empty() {
                continue;
            }
            if !has_section(&read(&doc_path), number) {
                problems.push(format!("{rel}: cites docs/{doc_name}.md §{number}, which has no such section"));
            }
        }
    }
    assert!(citations > 0, "no `docs/…` citations found: is the tree walk broken?");
    assert!(problems.is_empty(), "broken citations:\n{}", problems.join("\n"));
}

/// Repository paths a comment or document names (`tests/tests/e2e/scale.rs`,
/// `plugins/sinks/delta/README.md`, ...): the tree moves, and a stale path sends the reader
/// nowhere.
fn cited_repo_paths(text: &str) -> Vec<&str> {
    const ROOTS: [&str; 8] = ["engine/", "plugins/", "sim/", "tests/", "benches/", "deploy/", "pipelines/", "docs/"];
    const EXTENSIONS: [&str; 7] = [".rs", ".md", ".toml", ".sh", ".py", ".yaml", ".c"];
    let path_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/');
    let mut paths = Vec::new();
    for (at, _) in text.char_indices() {
        let boundary = text[..at].chars().next_back().is_none_or(|c| matches!(c, '`' | ' ' | '(' | '\n' | '"'));
        if !boundary || !ROOTS.iter().any(|root| text[at..].starts_with(root)) {
            continue;
        }
        let len = text[at..].find(|c: char| !path_char(c)).unwrap_or(text.len() - at);
        let path = text[at..at + len].trim_end_matches('.');
        if EXTENSIONS.iter().any(|ext| path.ends_with(ext)) && !path.contains("..") {
            paths.push(path);
        }
    }
    paths
}

#[test]
fn repository_paths_named_in_comments_and_docs_exist() {
    let root = workspace();
    let mut files = Vec::new();
    tree_files(&root, &mut files);
    let mut named = 0;
    let mut problems = Vec::new();
    for file in &files {
        let text = read(file);
        let rel = file.strip_prefix(&root).unwrap_or(file).display().to_string();
        for path in cited_repo_paths(&text) {
            named += 1;
            // A path may be relative to the repository or to the crate that names it.
            let crate_dir = file.ancestors().find(|d| d.join("Cargo.toml").exists()).unwrap_or(&root);
            if !root.join(path).exists() && !crate_dir.join(path).exists() {
                problems.push(format!("{rel}: names {path}, which does not exist"));
            }
        }
    }
    assert!(named > 20, "only {named} repository paths found: is the scan broken?");
    assert!(problems.is_empty(), "stale paths:\n{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// The README's metrics table.

/// The markdown table of every metric `pipe run` exports: `| name | type | labels | meaning |`.
fn metrics_table() -> String {
    let mut out = String::from("| name | type | labels | meaning |\n|---|---|---|---|\n");
    for m in pipe_engine::telemetry::catalog::CATALOG {
        let labels = m.labels.iter().map(|l| format!("`{l}`")).collect::<Vec<_>>().join(", ");
        let labels = if labels.is_empty() { "—".to_string() } else { labels };
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", m.name, m.kind.as_str(), labels, m.help));
    }
    out
}

#[test]
fn readme_metrics_table_matches_the_catalog() {
    let path = workspace().join("README.md");
    let doc = read(&path);
    let expected = metrics_table();
    let (current, range) = between_markers(&doc, "metrics")
        .expect("README.md: no `<!-- metrics:begin -->` / `<!-- metrics:end -->` markers");
    if current == expected {
        return;
    }
    if std::env::var("PIPE_UPDATE_DOCS").is_ok_and(|v| v == "1") {
        let mut new = doc.clone();
        new.replace_range(range, &expected);
        std::fs::write(&path, new).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("README.md: metrics table regenerated");
        return;
    }
    panic!(
        "README.md's metrics table differs from pipe_engine::telemetry::catalog; regenerate with \
         `PIPE_UPDATE_DOCS=1 cargo test --release -p pipe-tests --test docs_contract`. Expected:\n{expected}"
    );
}
