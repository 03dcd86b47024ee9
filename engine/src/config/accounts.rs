//! Many vendor accounts behind one `[source]` (docs/design.md §8): `[[source.accounts]]` tables, or
//! `source.accounts_file` (a TOML file of `[[accounts]]` tables), each with the keys the
//! source takes for one account plus a stable `id`. The `[source]` table holds what the
//! accounts share; an account's keys override them. `${VAR}` references work in both.
//!
//! ```toml
//! [source]
//! plugin = "giosg"
//! max_concurrent_accounts = 4          # default 4
//!
//! [[source.accounts]]
//! id = "brand-a"                       # names the account's state; decides its shard
//! organization_id = "${BRAND_A_ORG}"
//! token = "${BRAND_A_TOKEN}"
//! ```

use std::path::Path;

use pipe_plugin_sdk::PluginKind;
use serde_json::{Map, Value};

use super::{ConfigError, Locator, PluginSpec, plugin_spec, toml_json, valid_name};
use crate::registry::Registry;

/// Keys of `[source]` that the engine reads itself (they never reach the plugin).
pub const ENGINE_KEYS: &[&str] = &["accounts", "accounts_file", "max_concurrent_accounts"];

/// Default of `max_concurrent_accounts`.
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

/// One account of a multi-account source.
#[derive(Clone)]
pub struct Account {
    /// Its stable name: the state document `<pipeline>/<id>.json` and the shard
    /// (`pipe run --shard K/N`) derive from it.
    pub id: String,
    /// The source's config for this account (`[source]` merged with the account's keys),
    /// validated by the plugin. `path` is `source.accounts[i]` (or `accounts[i]` of the file).
    pub spec: PluginSpec,
}

/// The accounts of a pipeline and how many run at once.
#[derive(Clone)]
pub struct Accounts {
    pub list: Vec<Account>,
    pub max_concurrent: usize,
}

/// Splits the engine's keys off a `[source]` table. Returns the table the plugin sees and, when
/// the table names accounts, the parsed and validated accounts.
///
/// Errors: a malformed `accounts`/`accounts_file`/`max_concurrent_accounts`, an account without
/// a valid unique `id`, an account key the plugin refuses (with its file, line and key path).
pub fn split(
    loc: &Locator<'_>,
    table: &Map<String, Value>,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<(Map<String, Value>, Option<Accounts>), ConfigError> {
    let mut base = table.clone();
    for k in ENGINE_KEYS {
        base.remove(*k);
    }
    let max_concurrent = match table.get("max_concurrent_accounts") {
        None => DEFAULT_MAX_CONCURRENT,
        Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => n.as_u64().unwrap_or(1) as usize,
        Some(_) => return Err(loc.error("source.max_concurrent_accounts", "must be a whole number, at least 1")),
    };
    let inline = table.get("accounts");
    let file = table.get("accounts_file");
    let list = match (inline, file) {
        (None, None) => {
            if table.contains_key("max_concurrent_accounts") {
                return Err(loc.error(
                    "source.max_concurrent_accounts",
                    "only applies with [[source.accounts]] or accounts_file",
                ));
            }
            return Ok((base, None));
        }
        (Some(_), Some(_)) => {
            return Err(loc.error("source.accounts_file", "give either [[source.accounts]] or accounts_file, not both"));
        }
        (Some(Value::Array(items)), None) => accounts_of(loc, "source.accounts", items, &base, registry, vars)?,
        (Some(_), None) => return Err(loc.error("source.accounts", "must be an array of tables: [[source.accounts]]")),
        (None, Some(Value::String(path))) => {
            let path = super::interpolate::resolve(path, vars).map_err(|m| loc.error("source.accounts_file", m))?;
            from_file(loc, Path::new(&path), &base, registry, vars)?
        }
        (None, Some(_)) => {
            return Err(loc.error("source.accounts_file", "must be a string (a TOML file of [[accounts]] tables)"));
        }
    };
    if list.is_empty() {
        return Err(loc.error("source.accounts", "no accounts listed"));
    }
    Ok((base, Some(Accounts { list, max_concurrent })))
}

fn from_file(
    pipeline_loc: &Locator<'_>,
    path: &Path,
    base: &Map<String, Value>,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Account>, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| pipeline_loc.error("source.accounts_file", format!("cannot read {file}: {e}")))?;
    let doc = toml_json::parse(&text).map_err(|(message, at)| ConfigError {
        file: file.clone(),
        line: Some(super::line_of(&text, at)),
        path: String::new(),
        message: format!("invalid TOML: {message}"),
    })?;
    let loc = Locator { file: &file, text: &text, spans: &doc.spans, check_plugins: pipeline_loc.check_plugins };
    let Value::Object(top) = &doc.json else { unreachable!("a TOML document is a table") };
    if let Some(k) = top.keys().find(|k| *k != "accounts") {
        return Err(loc.error(k, "unknown key (an accounts file has only [[accounts]] tables)"));
    }
    match top.get("accounts") {
        Some(Value::Array(items)) => accounts_of(&loc, "accounts", items, base, registry, vars),
        _ => Err(loc.error("accounts", "missing [[accounts]] tables")),
    }
}

fn accounts_of(
    loc: &Locator<'_>,
    key: &str,
    items: &[Value],
    base: &Map<String, Value>,
    registry: &Registry,
    vars: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Account>, ConfigError> {
    let mut out: Vec<Account> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("{key}[{i}]");
        let Value::Object(t) = item else { return Err(loc.error(&path, format!("must be a table: [[{key}]]"))) };
        let id = match t.get("id") {
            Some(Value::String(s)) if valid_name(s) => s.clone(),
            Some(_) => {
                return Err(loc.error(&format!("{path}.id"), "must be a string of letters, digits, `-`, `_` or `.`"));
            }
            None => {
                return Err(loc.error(
                    &path,
                    "missing key `id` (a stable name for this account: it keys its state and its shard)",
                ));
            }
        };
        if out.iter().any(|a| a.id == id) {
            return Err(loc.error(&format!("{path}.id"), format!("`{id}` is used by an earlier account")));
        }
        if t.contains_key("plugin") {
            return Err(loc.error(&format!("{path}.plugin"), "an account cannot change the plugin; it is [source]'s"));
        }
        let mut merged = base.clone();
        for (k, v) in t {
            if k != "id" {
                merged.insert(k.clone(), v.clone());
            }
        }
        let spec = plugin_spec(loc, &path, &merged, PluginKind::Source, registry, vars)?;
        out.push(Account { id, spec });
    }
    Ok(out)
}

/// The shard (0-based, of `n`) an account belongs to: FNV-1a (64-bit) of its `id`, modulo
/// `n`. Stable across runs, machines and versions, so `--shard K/N` always selects the same
/// accounts.
pub fn shard_of(id: &str, n: u32) -> u32 {
    // FNV-1a, as specified by its authors: a fixed, documented function rather than std's
    // randomly seeded hasher.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h % u64::from(n)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_cover_every_account_once() {
        // FNV-1a test vector ("a" → 0xaf63dc4c8601ec8c).
        assert_eq!(shard_of("a", u32::MAX), (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32);
        let ids: Vec<String> = (0..30).map(|i| format!("brand-{i}")).collect();
        let mut counts = [0; 3];
        for id in &ids {
            let s = shard_of(id, 3);
            assert_eq!(s, shard_of(id, 3));
            counts[s as usize] += 1;
        }
        assert_eq!(counts.iter().sum::<i32>(), 30);
        assert!(counts.iter().all(|c| *c > 0), "{counts:?}");
    }
}
