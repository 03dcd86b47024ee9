//! The embedded state store: one JSON file per pipeline, `<state_dir>/<name>.json`, replaced
//! atomically (write to a temporary file, fsync, rename, fsync the directory), so a crash
//! leaves either the old or the new state, never a torn one.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// The state file of a pipeline.
pub fn path(state_dir: &Path, pipeline: &str) -> PathBuf {
    state_dir.join(format!("{pipeline}.json"))
}

/// The source state of the last committed checkpoint, if any.
///
/// Errors: the file exists but cannot be read or is not the JSON we write.
pub fn load(state_dir: &Path, pipeline: &str) -> anyhow::Result<Option<Value>> {
    let p = path(state_dir, pipeline);
    match std::fs::read(&p) {
        Ok(bytes) => {
            let doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| anyhow::anyhow!("state file {} is not valid JSON ({e}); inspect it or `pipe state reset`", p.display()))?;
            Ok(doc.get("source_state").cloned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read state file {}: {e}", p.display())),
    }
}

/// Durably replaces the pipeline's state with `source_state`.
pub fn save(state_dir: &Path, pipeline: &str, source_plugin: &str, source_state: &Value) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir).map_err(|e| anyhow::anyhow!("cannot create state directory {}: {e}", state_dir.display()))?;
    let doc = json!({
        "pipeline": pipeline,
        "source": source_plugin,
        "committed_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "source_state": source_state,
    });
    let final_path = path(state_dir, pipeline);
    let tmp = state_dir.join(format!(".{pipeline}.json.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(serde_json::to_string_pretty(&doc).expect("JSON serializes").as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &final_path)?;
        std::fs::File::open(state_dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("cannot write state file {}: {e}", final_path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_then_load() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "p").unwrap(), None);
        save(dir.path(), "p", "giosg", &json!({"cursor": 3})).unwrap();
        assert_eq!(load(dir.path(), "p").unwrap(), Some(json!({"cursor": 3})));
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("p.json")], "no temporary file left behind");
    }
}
