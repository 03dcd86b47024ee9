//! Exactly-once bookkeeping: Delta transaction identifiers per independent writer.
//!
//! Every Delta commit the sink makes carries, for each writer whose source state advanced, a
//! `txn` action (`appId` = `<pipeline>` for a single-account source, `<pipeline>/<account>` per
//! account of a `[[source.accounts]]` pipeline; `version` = how many commits that app id has
//! made to this table, 1, 2, 3, ...) and, in the commit's `commitInfo`, under `pipe`, the
//! SHA-256 of that writer's checkpoint state:
//!
//! ```json
//! {"pipe": {"txns": {"orders/acme": {"version": 7, "state_sha256": "5f0c..."}}, "run_id": "..."}}
//! ```
//!
//! A table's [`Ledger`] is the newest of those per app id (read back from the log at open and
//! checked against the table's own `txn` version). A commit whose every writer's state hash
//! equals the one the table already holds for it is a **replay** — the engine crashed after the
//! sink committed but before it saved that state, and the re-run re-delivered the same rows up
//! to the same checkpoint — and is skipped: the rows are not written a second time.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The newest commit of one app id in a table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its `txn` version.
    pub version: i64,
    /// SHA-256 (hex) of the checkpoint state it committed; `None` when the log no longer shows
    /// it (history cleaned up): the next commit is then never taken for a replay.
    pub state_sha256: Option<String>,
}

/// One `txn` action to write: app id, version, and the state hash it commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// `<pipeline>` or `<pipeline>/<account>`.
    pub app_id: String,
    /// One more than the app id's last version in the table (1 for its first commit).
    pub version: i64,
    /// SHA-256 (hex) of the app id's checkpoint state.
    pub state_sha256: String,
}

/// What to do with a commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Write, with these `txn` actions (none for a checkpoint without state).
    Write(Vec<Txn>),
    /// Every writer's state is the one already committed: skip (names the versions found).
    Replay(Vec<(String, i64)>),
}

/// Per table: the newest commit of every app id seen.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    apps: BTreeMap<String, Entry>,
}

/// The key of this sink's metadata in `commitInfo`.
pub const COMMIT_INFO_KEY: &str = "pipe";

impl Ledger {
    /// Builds the ledger from commit infos (`commitInfo` extra fields), **newest first**.
    pub fn from_history<'a>(infos: impl IntoIterator<Item = &'a Map<String, Value>>) -> Self {
        let mut apps = BTreeMap::new();
        for info in infos {
            let Some(txns) = info.get(COMMIT_INFO_KEY).and_then(|p| p.get("txns")).and_then(Value::as_object) else {
                continue;
            };
            for (app, t) in txns {
                let (Some(version), Some(sha)) =
                    (t.get("version").and_then(Value::as_i64), t.get("state_sha256").and_then(Value::as_str))
                else {
                    continue;
                };
                apps.entry(app.clone()).or_insert(Entry { version, state_sha256: Some(sha.to_string()) });
            }
        }
        Ledger { apps }
    }

    /// The entry of `app_id`, if the table has one.
    pub fn get(&self, app_id: &str) -> Option<&Entry> {
        self.apps.get(app_id)
    }

    /// Aligns `app_id` with the table's own `txn` version for it (the authority): a history entry
    /// of another version loses its hash; no version at all drops the entry.
    pub fn reconcile(&mut self, app_id: &str, table_version: Option<i64>) {
        match table_version {
            None => {
                self.apps.remove(app_id);
            }
            Some(v) => {
                let e = self.apps.entry(app_id.to_string()).or_insert(Entry { version: v, state_sha256: None });
                if e.version != v {
                    *e = Entry { version: v, state_sha256: None };
                }
            }
        }
    }

    /// Decides a commit of the checkpoint whose writers and state hashes are `apps`
    /// (see [`checkpoint_apps`]).
    pub fn plan(&self, apps: &BTreeMap<String, String>) -> Plan {
        if apps.is_empty() {
            return Plan::Write(Vec::new());
        }
        let mut txns = Vec::new();
        let mut replayed = Vec::new();
        for (app, sha) in apps {
            match self.apps.get(app) {
                Some(Entry { version, state_sha256: Some(h) }) if h == sha => replayed.push((app.clone(), *version)),
                e => txns.push(Txn {
                    app_id: app.clone(),
                    version: e.map_or(0, |e| e.version) + 1,
                    state_sha256: sha.clone(),
                }),
            }
        }
        if txns.is_empty() { Plan::Replay(replayed) } else { Plan::Write(txns) }
    }

    /// Records `txns` as committed.
    pub fn record(&mut self, txns: &[Txn]) {
        for t in txns {
            self.apps
                .insert(t.app_id.clone(), Entry { version: t.version, state_sha256: Some(t.state_sha256.clone()) });
        }
    }
}

/// The `commitInfo` metadata of a commit with `txns`.
pub fn commit_metadata(txns: &[Txn], run_id: &str) -> Value {
    let txns: Map<String, Value> = txns
        .iter()
        .map(|t| (t.app_id.clone(), json!({"version": t.version, "state_sha256": t.state_sha256})))
        .collect();
    json!({"txns": txns, "run_id": run_id})
}

/// The independent writers of a checkpoint and the hash of each one's state:
///
/// * `null` (a source that ended without a checkpoint): none — the commit is not exactly-once;
/// * `{"accounts": {"<id>": state, ...}}` (a `[[source.accounts]]` pipeline): one per account,
///   app id `<pipeline>/<id>`;
/// * anything else: one, app id `<pipeline>`.
pub fn checkpoint_apps(pipeline: &str, state: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match state {
        Value::Null => {}
        Value::Object(o) if o.len() == 1 && o.get("accounts").is_some_and(Value::is_object) => {
            for (account, s) in o["accounts"].as_object().expect("checked") {
                out.insert(format!("{pipeline}/{account}"), sha256_hex(s));
            }
        }
        s => {
            out.insert(pipeline.to_string(), sha256_hex(s));
        }
    }
    out
}

/// SHA-256 of a JSON value in canonical form (object keys sorted, no whitespace), hex.
pub fn sha256_hex(v: &Value) -> String {
    let mut canonical = String::new();
    write_canonical(v, &mut canonical);
    let digest = Sha256::digest(canonical.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&o[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, h)| (a.to_string(), h.to_string())).collect()
    }

    #[test]
    fn first_commit_then_replay_then_next() {
        let mut l = Ledger::default();
        let a = apps(&[("p", "h1")]);
        let Plan::Write(t) = l.plan(&a) else { panic!() };
        assert_eq!(t, vec![Txn { app_id: "p".into(), version: 1, state_sha256: "h1".into() }]);
        l.record(&t);
        assert_eq!(l.plan(&a), Plan::Replay(vec![("p".into(), 1)]));
        let Plan::Write(t) = l.plan(&apps(&[("p", "h2")])) else { panic!() };
        assert_eq!(t[0].version, 2);
    }

    #[test]
    fn accounts_are_separate_writers() {
        let state = json!({"accounts": {"a": {"since": 1}, "b": {"since": 2}}});
        let got = checkpoint_apps("pl", &state);
        assert_eq!(got.keys().collect::<Vec<_>>(), vec!["pl/a", "pl/b"]);
        let mut l = Ledger::default();
        let Plan::Write(t) = l.plan(&got) else { panic!() };
        l.record(&t);
        // Only b advanced: one txn, for b, at its own version 2; a is not re-versioned.
        let next = checkpoint_apps("pl", &json!({"accounts": {"a": {"since": 1}, "b": {"since": 3}}}));
        let Plan::Write(t) = l.plan(&next) else { panic!() };
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].app_id.as_str(), t[0].version), ("pl/b", 2));
        // A shard of the same pipeline with other accounts never sees a's or b's commits as its own.
        let shard = checkpoint_apps("pl", &json!({"accounts": {"c": {"since": 1}}}));
        assert!(matches!(l.plan(&shard), Plan::Write(t) if t[0].version == 1));
    }

    #[test]
    fn null_state_is_never_a_replay() {
        assert!(checkpoint_apps("p", &Value::Null).is_empty());
        assert_eq!(Ledger::default().plan(&BTreeMap::new()), Plan::Write(vec![]));
    }

    #[test]
    fn hash_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"x": 1, "y": {"b": [1, 2], "a": "s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"y": {"a": "s", "b": [1, 2]}, "x": 1}"#).unwrap();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
        assert_ne!(sha256_hex(&a), sha256_hex(&json!({"x": 2})));
    }

    #[test]
    fn history_newest_first_and_reconcile() {
        let m = |app: &str, v: i64, h: &str| -> Map<String, Value> {
            json!({"pipe": {"txns": {app: {"version": v, "state_sha256": h}}}}).as_object().unwrap().clone()
        };
        let infos = [m("p", 3, "h3"), m("q", 1, "hq"), m("p", 2, "h2")];
        let mut l = Ledger::from_history(infos.iter());
        assert_eq!(l.get("p"), Some(&Entry { version: 3, state_sha256: Some("h3".into()) }));
        l.reconcile("p", Some(4)); // the log's txn is newer than the history we could read
        assert_eq!(l.get("p"), Some(&Entry { version: 4, state_sha256: None }));
        assert!(matches!(l.plan(&apps(&[("p", "h3")])), Plan::Write(t) if t[0].version == 5));
        l.reconcile("q", None);
        assert_eq!(l.get("q"), None);
    }
}
