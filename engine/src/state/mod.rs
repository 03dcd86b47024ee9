//! The state store: the committed source state of a pipeline, one JSON document per pipeline
//! and account.
//!
//! * Keys: `<name>` for a single-account source, `<name>/<account id>` for each account of a
//!   `[[source.accounts]]` pipeline, so shards of one pipeline never write the same document.
//! * Local directory (`[state] path = ".pipe/state"`, the default): `<dir>/<key>.json`, replaced
//!   atomically (write a temporary file, fsync, rename, fsync the directory), so a crash leaves
//!   either the old or the new state, never a torn one.
//! * Object storage (`[state] path = "s3://bucket/prefix"`, also `gs://`, `az://`;
//!   `file://` is a local directory): `<prefix>/<key>.json`, written with a conditional PUT on the version read at
//!   the start of the run (`If-Match` its ETag, or create-only when there was none). If
//!   another run advanced the same document meanwhile, the write is refused and this run
//!   fails: two runs for one account cannot both advance its state.
//!
//! A document is `{"pipeline", "source", "account"?, "committed_at", "source_state"}`.
//!
//! A run on local state holds the [`lock`] of every document it covers, so two runs never
//! advance one document.

pub mod lock;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion};
use pipe_plugin_sdk::storage::{self, Location};
use serde_json::{Value, json};

/// Where state documents live.
#[derive(Clone, Debug)]
pub enum StateStore {
    /// A local directory.
    Local(PathBuf),
    /// An object storage location (conditional writes).
    Remote(Location),
}

impl StateStore {
    /// The store at `path`: an object storage URL or a local directory.
    ///
    /// Errors: a URL whose store cannot be built (unsupported scheme, missing credentials
    /// settings such as the S3 region).
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let s = path.to_string_lossy();
        // `file://` is a local directory: the atomic rename is the conditional write there.
        if let Some(local) = s.strip_prefix("file://") {
            return Ok(StateStore::Local(PathBuf::from(local)));
        }
        if storage::is_url(&s) {
            let loc = Location::parse(&s, "state.path").map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(StateStore::Remote(loc))
        } else {
            Ok(StateStore::Local(path.to_path_buf()))
        }
    }

    /// Where the document of `key` is, for messages.
    pub fn describe(&self, key: &str) -> String {
        match self {
            StateStore::Local(dir) => local_path(dir, key).display().to_string(),
            StateStore::Remote(loc) => loc.url_of(&loc.child(&format!("{key}.json"))),
        }
    }

    /// The document of `key` and its version (for the conditional write), or `None`.
    ///
    /// Errors: the document exists but cannot be read or is not JSON.
    pub async fn load(&self, key: &str) -> anyhow::Result<Option<(Value, Option<UpdateVersion>)>> {
        let bytes = match self {
            StateStore::Local(dir) => {
                let p = local_path(dir, key);
                match std::fs::read(&p) {
                    Ok(b) => (b, None),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => anyhow::bail!("cannot read state file {}: {e}", p.display()),
                }
            }
            StateStore::Remote(loc) => {
                let object = loc.child(&format!("{key}.json"));
                match loc.store.get(&object).await {
                    Ok(got) => {
                        let version =
                            UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                        let b = got
                            .bytes()
                            .await
                            .map_err(|e| anyhow::anyhow!("cannot read state {}: {e}", loc.url_of(&object)))?;
                        (b.to_vec(), Some(version))
                    }
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(e) => anyhow::bail!("cannot read state {}: {e}", loc.url_of(&object)),
                }
            }
        };
        let doc: Value = serde_json::from_slice(&bytes.0).map_err(|e| {
            anyhow::anyhow!("state {} is not valid JSON ({e}); inspect it or `pipe state reset`", self.describe(key))
        })?;
        Ok(Some((doc, bytes.1)))
    }

    /// Durably replaces the document of `key`. `expected` is the version this run read
    /// (`None`: there was no document): on object storage the write only succeeds if the
    /// document is still at that version. Returns the new version.
    ///
    /// Errors: I/O or store failures; on object storage, a document changed by another run.
    pub async fn save(
        &self,
        key: &str,
        doc: &Value,
        expected: Option<UpdateVersion>,
    ) -> anyhow::Result<Option<UpdateVersion>> {
        let text = serde_json::to_string_pretty(doc).expect("JSON serializes");
        match self {
            StateStore::Local(dir) => {
                save_local(dir, key, &text)?;
                Ok(None)
            }
            StateStore::Remote(loc) => {
                let object = loc.child(&format!("{key}.json"));
                let mode = match expected {
                    Some(v) => PutMode::Update(v),
                    None => PutMode::Create,
                };
                let opts = PutOptions { mode, ..Default::default() };
                match loc.store.put_opts(&object, PutPayload::from(text.into_bytes()), opts).await {
                    Ok(r) => Ok(Some(UpdateVersion { e_tag: r.e_tag, version: r.version })),
                    Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => {
                        anyhow::bail!(
                            "state {} was advanced by another run since this run read it (two runs for the same account?); \
                         this run's output is committed, its state is not",
                            loc.url_of(&object)
                        )
                    }
                    Err(e) => anyhow::bail!("cannot write state {}: {e}", loc.url_of(&object)),
                }
            }
        }
    }

    /// Deletes the document of `key`; true if there was one.
    pub async fn remove(&self, key: &str) -> anyhow::Result<bool> {
        match self {
            StateStore::Local(dir) => match std::fs::remove_file(local_path(dir, key)) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => anyhow::bail!("cannot remove {}: {e}", self.describe(key)),
            },
            StateStore::Remote(loc) => {
                let object = loc.child(&format!("{key}.json"));
                match loc.store.head(&object).await {
                    Err(object_store::Error::NotFound { .. }) => Ok(false),
                    _ => {
                        loc.store
                            .delete(&object)
                            .await
                            .map_err(|e| anyhow::anyhow!("cannot remove {}: {e}", self.describe(key)))?;
                        Ok(true)
                    }
                }
            }
        }
    }
}

/// The state key of a pipeline (`account = None`) or of one of its accounts.
pub fn key(pipeline: &str, account: Option<&str>) -> String {
    match account {
        None => pipeline.to_string(),
        Some(a) => format!("{pipeline}/{a}"),
    }
}

fn local_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.json"))
}

fn save_local(dir: &Path, key: &str, text: &str) -> anyhow::Result<()> {
    let final_path = local_path(dir, key);
    let parent = final_path.parent().unwrap_or(dir).to_path_buf();
    std::fs::create_dir_all(&parent)
        .map_err(|e| anyhow::anyhow!("cannot create state directory {}: {e}", parent.display()))?;
    let file_name = final_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = parent.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &final_path)?;
        std::fs::File::open(&parent)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write state file {}: {e}", final_path.display())
    })
}

/// The state of one run: what it read at the start and the versions it must find when it
/// saves. Single-account pipelines have one document; `[[source.accounts]]` pipelines one per
/// account, and their source state is the composite `{"accounts": {"<id>": <state>, ...}}`.
pub struct Session {
    store: StateStore,
    pipeline: String,
    source_plugin: String,
    /// `None`: single account. Else the ids of the accounts this run covers.
    accounts: Option<Vec<String>>,
    versions: HashMap<String, Option<UpdateVersion>>,
    /// What was last saved (or read) per key, to write only documents that changed.
    saved: HashMap<String, Value>,
}

impl Session {
    /// Reads the committed state of `pipeline` (or of each of `accounts`). Returns the session
    /// and the source state to resume from: `None` on a first run or with `full_refresh` (the
    /// versions are read anyway, so the first commit replaces the old state).
    ///
    /// Errors: a document that cannot be read or parsed.
    pub async fn open(
        store: StateStore,
        pipeline: &str,
        source_plugin: &str,
        accounts: Option<Vec<String>>,
        full_refresh: bool,
    ) -> anyhow::Result<(Session, Option<Value>)> {
        let mut s = Session {
            store,
            pipeline: pipeline.to_string(),
            source_plugin: source_plugin.to_string(),
            accounts,
            versions: HashMap::new(),
            saved: HashMap::new(),
        };
        let keys: Vec<(Option<String>, String)> = match &s.accounts {
            None => vec![(None, key(pipeline, None))],
            Some(ids) => ids.iter().map(|id| (Some(id.clone()), key(pipeline, Some(id)))).collect(),
        };
        let mut per_account = serde_json::Map::new();
        let mut single = None;
        for (account, k) in keys {
            let loaded = s.store.load(&k).await?;
            let (state, version) = match loaded {
                Some((doc, v)) => (doc.get("source_state").cloned(), v),
                None => (None, None),
            };
            s.versions.insert(k.clone(), version);
            if full_refresh {
                continue;
            }
            if let Some(state) = state {
                s.saved.insert(k.clone(), state.clone());
                match account {
                    None => single = Some(state),
                    Some(id) => {
                        per_account.insert(id, state);
                    }
                }
            }
        }
        let prior = match &s.accounts {
            None => single,
            Some(_) if per_account.is_empty() => None,
            Some(_) => Some(json!({ "accounts": per_account })),
        };
        Ok((s, prior))
    }

    /// Where the state of this run lives, for messages.
    pub fn describe(&self) -> String {
        match &self.accounts {
            None => self.store.describe(&key(&self.pipeline, None)),
            Some(ids) => format!("{} ({} accounts)", self.store.describe(&key(&self.pipeline, Some("*"))), ids.len()),
        }
    }

    /// Durably saves `source_state` (for accounts: every account document whose state
    /// changed since the last save).
    ///
    /// Errors: as [`StateStore::save`]; a composite state that is not `{"accounts": {...}}`.
    pub async fn save(&mut self, source_state: &Value) -> anyhow::Result<()> {
        let docs: Vec<(String, Option<String>, Value)> = match &self.accounts {
            None => vec![(key(&self.pipeline, None), None, source_state.clone())],
            Some(_) => {
                let Some(map) = source_state.get("accounts").and_then(Value::as_object) else {
                    anyhow::bail!("the multi-account source emitted a checkpoint without `accounts`")
                };
                map.iter().map(|(id, st)| (key(&self.pipeline, Some(id)), Some(id.clone()), st.clone())).collect()
            }
        };
        for (k, account, state) in docs {
            if self.saved.get(&k) == Some(&state) {
                continue;
            }
            let mut doc = json!({
                "pipeline": self.pipeline,
                "source": self.source_plugin,
                "committed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "source_state": state,
            });
            if let Some(a) = account {
                doc["account"] = json!(a);
            }
            let expected = self.versions.get(&k).cloned().flatten();
            let version = self.store.save(&k, &doc, expected).await?;
            self.versions.insert(k.clone(), version);
            self.saved.insert(k, state);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn single_account_save_then_load_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Local(dir.path().to_path_buf());
        let (mut s, prior) = Session::open(store.clone(), "p", "giosg", None, false).await.unwrap();
        assert_eq!(prior, None);
        s.save(&json!({"cursor": 3})).await.unwrap();
        let (_, prior) = Session::open(store, "p", "giosg", None, false).await.unwrap();
        assert_eq!(prior, Some(json!({"cursor": 3})));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.json")], "no temporary file left behind");
    }

    #[tokio::test]
    async fn accounts_have_one_document_each_and_only_changed_ones_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::Local(dir.path().to_path_buf());
        let ids = vec!["a".to_string(), "b".to_string()];
        let (mut s, prior) = Session::open(store.clone(), "p", "giosg", Some(ids.clone()), false).await.unwrap();
        assert_eq!(prior, None);
        s.save(&json!({"accounts": {"a": {"n": 1}}})).await.unwrap();
        assert!(dir.path().join("p/a.json").exists() && !dir.path().join("p/b.json").exists());
        let before = std::fs::metadata(dir.path().join("p/a.json")).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.save(&json!({"accounts": {"a": {"n": 1}, "b": {"n": 2}}})).await.unwrap();
        let after = std::fs::metadata(dir.path().join("p/a.json")).unwrap().modified().unwrap();
        assert_eq!(before, after, "an unchanged account document is not rewritten");
        // A run over only account b sees only b's state.
        let (_, prior) = Session::open(store, "p", "giosg", Some(vec!["b".into()]), false).await.unwrap();
        assert_eq!(prior, Some(json!({"accounts": {"b": {"n": 2}}})));
    }

    #[tokio::test]
    async fn object_store_state_refuses_a_second_writer() {
        let store = StateStore::Remote(Location {
            store: std::sync::Arc::new(object_store::memory::InMemory::new()),
            prefix: "state".into(),
            url: "memory://bucket/state".into(),
        });
        let (mut first, _) = Session::open(store.clone(), "p", "giosg", None, false).await.unwrap();
        let (mut second, _) = Session::open(store.clone(), "p", "giosg", None, false).await.unwrap();
        first.save(&json!({"cursor": 1})).await.unwrap();
        first.save(&json!({"cursor": 1.5})).await.unwrap();
        let err = second.save(&json!({"cursor": 2})).await.unwrap_err().to_string();
        assert!(err.contains("advanced by another run"), "{err}");
        let (_, prior) = Session::open(store, "p", "giosg", None, false).await.unwrap();
        assert_eq!(prior, Some(json!({"cursor": 1.5})));
    }
}
