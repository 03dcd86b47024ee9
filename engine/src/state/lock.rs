//! The run lock of local state: at most one run per pipeline and account at a time.
//!
//! Next to each state document `<dir>/<key>.json` lives `<dir>/<key>.lock`. A run holds an OS
//! advisory lock on it (`flock(2)` through [`std::fs::File::try_lock`]) from before it reads
//! the state until it exits; the kernel releases it when the process dies, however it dies, so
//! a lock is never stale. A second run of the same pipeline (or of an account another run
//! covers) finds it held and stops at once, naming the holder: the lock file's content is the
//! holder's `{"pid", "started_at", "run_id", "finished", "leftovers"}`, written right after it
//! took the lock. The file itself is never deleted (deleting a lock file lets two runs lock two
//! different files of the same name).
//!
//! The lock also tells which earlier runs are certainly dead: whoever held this lock before us.
//! A holder that ended normally marks the file `finished`; one that crashed did not, and its
//! `run_id` becomes one of the new holder's `leftovers`, whose temporary files are swept
//! (`crate::runtime::sweep`) and then forgotten.
//!
//! Object-storage state has no lock: its conditional writes refuse the second writer instead
//! (see the parent module).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What a lock file says about the run that holds (or last held) it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// When the run started, RFC 3339 UTC.
    pub started_at: String,
    /// The run id: the one in its temporary file names (`.part-<run_id>-<seq>...`).
    pub run_id: String,
    /// True once the run ended without crashing (its temporary files are gone).
    #[serde(default)]
    pub finished: bool,
    /// Run ids of dead runs whose temporary files may still exist (to sweep).
    #[serde(default)]
    pub leftovers: Vec<String>,
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another live run holds it.
    #[error("another run of this pipeline is in progress ({holder}; lock {}); wait for it to end", path.display())]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder, as its lock file describes it.
        holder: String,
    },
    /// The lock file cannot be created, read or written.
    #[error("cannot use the run lock {}: {source}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
}

/// The run's locks: one per state document it covers, held until dropped. See the
/// [module docs](self).
#[derive(Debug)]
pub struct RunLock {
    files: Vec<(PathBuf, File)>,
    me: Holder,
}

impl RunLock {
    /// Takes the lock of every document of `keys` in `dir`, in order, for the run `run_id`.
    /// The run ids of crashed earlier holders are in [`Self::leftovers`].
    ///
    /// Errors: [`LockError::Held`] when another live run holds any of them (the ones taken so
    /// far are released); [`LockError::Io`] when a lock file cannot be used.
    pub fn acquire(dir: &Path, keys: &[String], run_id: &str) -> Result<RunLock, LockError> {
        let mut me = Holder {
            pid: std::process::id(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            run_id: run_id.to_string(),
            finished: false,
            leftovers: Vec::new(),
        };
        let mut files = Vec::with_capacity(keys.len());
        for key in keys {
            let path = lock_path(dir, key);
            let io = |source| LockError::Io { path: path.clone(), source };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            let mut file =
                File::options().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let holder = match read_holder(&mut file) {
                        Some(h) if !h.finished => {
                            format!("pid {} started at {}, run {}", h.pid, h.started_at, h.run_id)
                        }
                        // It took the lock but has not written its name yet.
                        _ => "a run that just started".to_string(),
                    };
                    return Err(LockError::Held { path, holder });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
            if let Some(before) = read_holder(&mut file) {
                let dead = before.leftovers.into_iter().chain((!before.finished).then_some(before.run_id));
                for id in dead {
                    if !id.is_empty() && !me.leftovers.contains(&id) {
                        me.leftovers.push(id);
                    }
                }
            }
            files.push((path, file));
        }
        let mut lock = RunLock { files, me };
        lock.write_all_holders().map_err(|(path, source)| LockError::Io { path, source })?;
        Ok(lock)
    }

    /// Run ids of earlier holders that crashed: their temporary files may still exist.
    pub fn leftovers(&self) -> &[String] {
        &self.me.leftovers
    }

    /// Records that the leftovers of `swept` are gone, so later runs do not look for them.
    ///
    /// Errors: a lock file cannot be written.
    pub fn forget_leftovers(&mut self, swept: &[String]) -> anyhow::Result<()> {
        self.me.leftovers.retain(|id| !swept.contains(id));
        self.write_all_holders().map_err(|(path, e)| anyhow::anyhow!("cannot write {}: {e}", path.display()))
    }

    fn write_all_holders(&mut self) -> Result<(), (PathBuf, std::io::Error)> {
        let text = serde_json::to_string(&self.me).expect("JSON serializes");
        for (path, file) in &mut self.files {
            let mut write = || -> std::io::Result<()> {
                file.set_len(0)?;
                file.rewind()?;
                file.write_all(text.as_bytes())?;
                file.sync_data()
            };
            write().map_err(|e| (path.clone(), e))?;
        }
        Ok(())
    }
}

impl Drop for RunLock {
    /// Marks the run finished (its temporary files are gone: committed or aborted), then the
    /// locks are released as the files close. A crash skips this, which is what tells the next
    /// run to sweep.
    fn drop(&mut self) {
        self.me.finished = true;
        if let Err((path, e)) = self.write_all_holders() {
            tracing::warn!("cannot mark the run lock {} finished: {e}", path.display());
        }
    }
}

/// `<dir>/<key>.lock`, next to the state document `<dir>/<key>.json`.
pub fn lock_path(dir: &Path, key: &str) -> PathBuf {
    dir.join(format!("{key}.lock"))
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(k: &[&str]) -> Vec<String> {
        k.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_second_run_is_refused_naming_the_holder_until_the_first_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), &keys(&["p"]), "run-1").unwrap();
        let err = RunLock::acquire(dir.path(), &keys(&["p"]), "run-2").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{msg}");
        assert!(msg.contains(&format!("pid {}", std::process::id())) && msg.contains("run-1"), "{msg}");
        drop(first);
        let second = RunLock::acquire(dir.path(), &keys(&["p"]), "run-2").unwrap();
        assert!(second.leftovers().is_empty(), "the first run finished: nothing to sweep");
    }

    #[test]
    fn accounts_are_locked_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let _shard_1 = RunLock::acquire(dir.path(), &keys(&["p/a", "p/b"]), "s1").unwrap();
        let _shard_2 = RunLock::acquire(dir.path(), &keys(&["p/c"]), "s2").unwrap();
        assert!(dir.path().join("p/a.lock").exists());
        let overlapping = RunLock::acquire(dir.path(), &keys(&["p/c", "p/b"]), "s3").unwrap_err();
        assert!(overlapping.to_string().contains("s2"), "{overlapping}");
        // The refused run released what it had taken.
        drop(_shard_2);
        RunLock::acquire(dir.path(), &keys(&["p/c"]), "s4").unwrap();
    }

    #[test]
    fn a_crashed_holder_becomes_a_leftover_until_swept() {
        let dir = tempfile::tempdir().unwrap();
        let crashed = RunLock::acquire(dir.path(), &keys(&["p"]), "crashed").unwrap();
        // A crash: the lock is released with the process, but nobody marked it finished.
        let files: Vec<File> = {
            let mut c = std::mem::ManuallyDrop::new(crashed);
            std::mem::take(&mut c.files).into_iter().map(|(_, f)| f).collect()
        };
        drop(files);
        let mut next = RunLock::acquire(dir.path(), &keys(&["p"]), "next").unwrap();
        assert_eq!(next.leftovers(), ["crashed".to_string()]);
        next.forget_leftovers(&["crashed".to_string()]).unwrap();
        drop(next);
        let after = RunLock::acquire(dir.path(), &keys(&["p"]), "after").unwrap();
        assert!(after.leftovers().is_empty());
    }
}
