//! Staged output files: the `stage` step of the file-sink core (`file_sink`), which the
//! `json` and `parquet` sinks are built on.
//!
//! The rules (docs/design.md §6): a file is written under a temporary name and only appears under
//! its final name when a commit covers it, so a reader globbing `**/*.parquet` or `*.jsonl`
//! never sees a partial or uncommitted file; runs only add files, never replace one.
//!
//! * [`Staging::create`] opens `<dir>/.part-<run_id>-<seq>.<ext>.inprogress`. The leading dot
//!   hides it from Spark, DuckDB, pyarrow and shell globs, and the suffix keeps it out of
//!   `*.<ext>` patterns. The final name is `<dir>/part-<run_id>-<seq>.<ext>`.
//! * The sink writes and closes the file, fsyncs it, and hands it to [`Staging::ready`].
//! * [`Staging::publish`] (at commit) renames every ready file to its final name without ever
//!   replacing an existing file, then fsyncs the directories involved so the renames survive
//!   a crash.
//! * [`Staging::discard`] (at abort) deletes every temporary file not yet published.
//!
//! Everything here is blocking file I/O; async callers wrap it in [`run_blocking`].

use std::collections::{BTreeSet, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::{PluginError, Result, SinkStats};

/// A file being staged: where it is written and where it will be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedFile {
    /// Hidden temporary path, `<dir>/.part-<run_id>-<seq>.<ext>.inprogress`.
    pub temp: PathBuf,
    /// Final path, `<dir>/part-<run_id>-<seq>.<ext>`.
    pub final_path: PathBuf,
}

/// The staged files of one sink for one run. See the [module docs](self).
#[derive(Debug)]
pub struct Staging {
    root: PathBuf,
    run_id: String,
    next_seq: u64,
    /// Temporary files created and neither published nor deleted yet (open or closed).
    outstanding: HashSet<PathBuf>,
    /// Closed and fsynced files waiting for the next [`Staging::publish`], with their rows.
    ready: Vec<(StagedFile, u64)>,
    /// What [`Staging::publish`] has published so far.
    committed: SinkStats,
}

impl Staging {
    /// Staging for the sink whose output root is `root`; files are named after `run_id`
    /// (characters other than ASCII letters, digits, `-`, `_` and `.` become `_`).
    pub fn new(root: impl Into<PathBuf>, run_id: &str) -> Self {
        let run_id =
            run_id.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
        Staging {
            root: root.into(),
            run_id,
            next_seq: 0,
            outstanding: HashSet::new(),
            ready: Vec::new(),
            committed: SinkStats::default(),
        }
    }

    /// The output root given to [`Staging::new`].
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `dir` if needed and a new temporary file in it, for a file to be published as
    /// `part-<run_id>-<seq:05>.<ext>` (`seq` counts up across every file of this staging).
    ///
    /// Errors: [`PluginError::Io`] when the directory or file cannot be created, or when the
    /// final name already exists (runs only add files; a reused run id is refused).
    pub fn create(&mut self, dir: &Path, ext: &str) -> Result<(File, StagedFile)> {
        fs::create_dir_all(dir).map_err(|e| PluginError::io(format!("creating {}", dir.display()), e))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let name = format!("part-{}-{seq:05}.{ext}", self.run_id);
        let final_path = dir.join(&name);
        if fs::symlink_metadata(&final_path).is_ok() {
            return Err(already_exists(&final_path));
        }
        let temp = dir.join(format!(".{name}.inprogress"));
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| PluginError::io(format!("creating {}", temp.display()), e))?;
        self.outstanding.insert(temp.clone());
        Ok((file, StagedFile { temp, final_path }))
    }

    /// Marks a file of `rows` rows as complete: closed, fsynced, to be published at the next
    /// [`Staging::publish`].
    pub fn ready(&mut self, file: StagedFile, rows: u64) {
        self.ready.push((file, rows));
    }

    /// Files, bytes and rows published so far, for the run summary.
    pub fn stats(&self) -> SinkStats {
        self.committed
    }

    /// Number of files waiting for [`Staging::publish`].
    pub fn ready_count(&self) -> usize {
        self.ready.len()
    }

    /// Renames every ready file to its final name and fsyncs the directories involved (each
    /// file's directory up to the root, and the root's parent, since a commit may have created
    /// any of them). Returns the published paths.
    ///
    /// Errors: [`PluginError::Io`] when a rename or fsync fails, or a final name exists
    /// already. Files published before the failure stay published; the rest stay staged for
    /// [`Staging::discard`].
    pub fn publish(&mut self) -> Result<Vec<PathBuf>> {
        let mut published = Vec::with_capacity(self.ready.len());
        let mut dirs = BTreeSet::new();
        let mut files = std::mem::take(&mut self.ready).into_iter();
        while let Some((file, rows)) = files.next() {
            if let Err(e) = rename_no_clobber(&file.temp, &file.final_path) {
                let err = if e.kind() == io::ErrorKind::AlreadyExists {
                    already_exists(&file.final_path)
                } else {
                    PluginError::io(format!("publishing {}", file.final_path.display()), e)
                };
                self.ready.push((file, rows));
                self.ready.extend(files);
                return Err(err);
            }
            self.outstanding.remove(&file.temp);
            self.committed.files += 1;
            self.committed.rows += rows;
            self.committed.bytes += fs::metadata(&file.final_path).map(|m| m.len()).unwrap_or(0);
            let mut dir = file.final_path.parent();
            while let Some(d) = dir.filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert(d.to_path_buf());
                if d == self.root {
                    break;
                }
                dir = d.parent();
            }
            published.push(file.final_path);
        }
        if !published.is_empty()
            && let Some(parent) = self.root.parent()
        {
            dirs.insert(if parent.as_os_str().is_empty() { PathBuf::from(".") } else { parent.into() });
        }
        for dir in &dirs {
            sync_dir(dir).map_err(|e| PluginError::io(format!("syncing {}", dir.display()), e))?;
        }
        Ok(published)
    }

    /// Deletes every temporary file not yet published (open ones too: the caller drops its
    /// handles first) and forgets the ready list. Returns how many were deleted.
    ///
    /// Errors: the first deletion that failed for another reason than the file being gone;
    /// deletion goes on past it.
    pub fn discard(&mut self) -> Result<usize> {
        self.ready.clear();
        let mut first_error = None;
        let mut deleted = 0;
        for temp in self.outstanding.drain() {
            match fs::remove_file(&temp) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    first_error.get_or_insert(PluginError::io(format!("deleting {}", temp.display()), e));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(deleted),
        }
    }

    /// True when some temporary file is neither published nor discarded.
    pub fn has_outstanding(&self) -> bool {
        !self.outstanding.is_empty()
    }
}

fn already_exists(path: &Path) -> PluginError {
    PluginError::io(
        format!("{} exists already; runs only add files (is the run id reused?)", path.display()),
        io::Error::from(io::ErrorKind::AlreadyExists),
    )
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing `to`.
///
/// A hard link is the portable atomic "create unless it exists"; the temporary name is removed
/// after it (a crash in between leaves only a hidden `.inprogress` file). Filesystems without
/// hard links get a check-then-rename, which is only racy against another writer choosing the
/// same run id.
fn rename_no_clobber(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => fs::remove_file(from),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(io::ErrorKind::AlreadyExists.into());
            }
            fs::rename(from, to)
        }
    }
}

/// Fsyncs a directory, making the entries created or renamed in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    // Windows cannot open a directory as a file; NTFS journals renames itself.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Checks that a stream name can be used as one directory name: not empty, no path separator
/// or NUL, not `.`/`..`, and not starting with `.` or `_` (readers skip such directories).
///
/// Errors: [`PluginError::Other`] naming the stream.
pub fn check_stream_name(stream: &str) -> Result<()> {
    let bad =
        stream.is_empty() || stream.starts_with('.') || stream.starts_with('_') || stream.contains(['/', '\\', '\0']);
    if bad {
        return Err(PluginError::other(format!(
            "stream name {stream:?} cannot be a directory name (empty, a path separator, or a leading `.` or `_`)"
        )));
    }
    Ok(())
}

/// Runs blocking file work from async code without stalling the runtime: on a multi-threaded
/// tokio runtime through `block_in_place` (the worker's other tasks move to another thread);
/// elsewhere (a current-thread runtime, as in `#[tokio::test]`, or no runtime) in place,
/// because `block_in_place` would panic there.
pub fn run_blocking<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn publish_renames_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Staging::new(dir.path(), "run:1");
        let (mut f, staged) = s.create(&dir.path().join("a"), "jsonl").unwrap();
        f.write_all(b"x\n").unwrap();
        assert!(staged.temp.file_name().unwrap().to_str().unwrap().starts_with(".part-run_1-00000"));
        s.ready(staged.clone(), 1);
        assert_eq!(s.publish().unwrap(), vec![staged.final_path.clone()]);
        assert_eq!(s.stats(), SinkStats { files: 1, bytes: 2, rows: 1 });
        assert!(!staged.temp.exists());
        assert_eq!(fs::read(&staged.final_path).unwrap(), b"x\n");

        // The same run id again: the final name is taken, creation is refused.
        let mut again = Staging::new(dir.path(), "run:1");
        assert!(again.create(&dir.path().join("a"), "jsonl").is_err());
    }

    #[test]
    fn discard_removes_open_and_ready_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Staging::new(dir.path(), "r");
        let (_f1, a) = s.create(dir.path(), "jsonl").unwrap();
        let (_f2, b) = s.create(dir.path(), "jsonl").unwrap();
        s.ready(a.clone(), 0);
        assert_eq!(s.discard().unwrap(), 2);
        assert!(!a.temp.exists() && !b.temp.exists());
        assert_eq!(s.publish().unwrap(), Vec::<PathBuf>::new());
    }

    #[test]
    fn stream_names() {
        assert!(check_stream_name("messages").is_ok());
        for bad in ["", ".", "..", "a/b", "_dead_letter", ".x"] {
            assert!(check_stream_name(bad).is_err(), "{bad}");
        }
    }
}
