//! Sweeping what crashed runs left behind, at the start of the next run under its run lock
//! (`crate::state::lock`): the hidden temporary files `.part-<run_id>-<seq>.<ext>.inprogress`
//! below the local output directory of every file sink (its `path` setting), and the spool
//! directories `pipe-spool-*` (in the system temporary directory) of sinks writing to object
//! storage.
//!
//! Only files named after a run the lock proves dead are removed: a run id is swept only when
//! its run held this pipeline's lock before us and never marked it finished. Files of any other
//! run, live or not (another pipeline, another shard writing to the same directory), are never
//! touched.

use std::path::{Path, PathBuf};

use pipe_plugin_sdk::storage;

use crate::config::Pipeline;

/// The local directories to look in for `p`'s file sinks: every sink `path` that is not an
/// object storage URL.
pub fn sink_dirs(p: &Pipeline) -> Vec<PathBuf> {
    p.sinks
        .iter()
        .filter_map(|s| s.config.get("path")?.as_str())
        .filter(|path| !storage::is_url(path))
        .map(PathBuf::from)
        .collect()
}

/// Removes the temporary files of the dead runs `dead` below each of `dirs` (recursively) and
/// their spool directories in `spool_root`. Returns the number of files and directories
/// removed.
///
/// Errors: a file or directory of a dead run that exists but cannot be removed (the sweep
/// goes on; the first error is returned).
pub fn sweep(dead: &[String], dirs: &[PathBuf], spool_root: &Path) -> (usize, Option<std::io::Error>) {
    let mut removed = 0;
    let mut first_error = None;
    if dead.is_empty() {
        return (0, None);
    }
    let prefixes: Vec<String> = dead.iter().map(|id| format!(".part-{id}-")).collect();
    let is_dead_temp = |name: &str| name.ends_with(".inprogress") && prefixes.iter().any(|p| name.starts_with(p));
    for dir in dirs {
        for file in walk(dir) {
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if is_dead_temp(&name) {
                removed += counted(std::fs::remove_file(&file), &file, &mut first_error);
            }
        }
    }
    // A spool directory belongs to one sink of one run: any file of a dead run in it makes it
    // that run's (published-but-not-uploaded files are named `part-<run_id>-...` there).
    let owners: Vec<String> = dead.iter().map(|id| format!("part-{id}-")).collect();
    let spools = std::fs::read_dir(spool_root).into_iter().flatten().flatten().map(|e| e.path());
    for spool in
        spools.filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("pipe-spool-")))
    {
        let dead_run = walk(&spool).iter().any(|f| {
            let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            owners.iter().any(|o| name.trim_start_matches('.').starts_with(o))
        });
        if dead_run {
            removed += counted(std::fs::remove_dir_all(&spool), &spool, &mut first_error);
        }
    }
    (removed, first_error)
}

/// 1 when `result` removed `path` (logged), 0 when it was gone already or could not be removed
/// (the first such error is kept in `first_error`).
fn counted(result: std::io::Result<()>, path: &Path, first_error: &mut Option<std::io::Error>) -> usize {
    match result {
        Ok(()) => {
            tracing::info!("removed {} (left by a run that crashed)", path.display());
            1
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => {
            first_error.get_or_insert(e);
            0
        }
    }
}

/// Every file below `dir`, recursively (symbolic links are not followed); empty when `dir`
/// does not exist.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => todo.push(entry.path()),
                Ok(t) if t.is_file() => out.push(entry.path()),
                _ => {}
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_the_temporary_files_and_spools_of_dead_runs() {
        let out = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let touch = |p: PathBuf| {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
            p
        };
        let dead = touch(out.path().join("messages/date=2025-01-01/.part-dead-00000.parquet.inprogress"));
        let live = touch(out.path().join("messages/.part-live-00000.parquet.inprogress"));
        let published = touch(out.path().join("messages/part-dead-00001.parquet"));
        let dead_spool = touch(tmp.path().join("pipe-spool-abc/messages/part-dead-00000.parquet"))
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .to_path_buf();
        let live_spool = touch(tmp.path().join("pipe-spool-def/messages/.part-live-00000.parquet.inprogress"));
        let (removed, err) = sweep(&["dead".to_string()], &[out.path().to_path_buf()], tmp.path());
        assert!(err.is_none());
        assert_eq!(removed, 2);
        assert!(!dead.exists() && !dead_spool.exists());
        assert!(live.exists() && published.exists() && live_spool.exists(), "live and committed files stay");
    }
}
