//! `pipe run --metrics-file PATH`: the final values in the Prometheus text format, for
//! node_exporter's textfile collector (which reads `*.prom` files of one directory at every
//! scrape). The file is replaced atomically: written to a hidden temporary file in the same
//! directory (a name that does not end in `.prom`, so the collector never reads it), fsynced,
//! made readable by other users (node_exporter rarely runs as the same user), renamed over
//! `PATH`, and the directory fsynced. A run killed at any point leaves the previous file
//! whole under `PATH`.

use std::io::Write as _;
use std::path::Path;

/// Writes `text` to `path` atomically (see the module docs).
///
/// Errors: the directory cannot be written, or the rename fails (the message names `path`).
pub fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let fail = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot write the metrics file {}: {e}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| fail(&"it names no file"))?.to_string_lossy().into_owned();
    let mut tmp =
        tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir).map_err(|e| fail(&e))?;
    tmp.write_all(text.as_bytes()).map_err(|e| fail(&e))?;
    tmp.as_file().sync_all().map_err(|e| fail(&e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(|e| fail(&e))?;
    }
    tmp.persist(path).map_err(|e| fail(&e.error))?;
    // The rename is durable only once the directory is.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipe.prom");
        std::fs::write(&path, "old\n").unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["pipe.prom"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
        }
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_file() {
        let err = write_atomically(Path::new("/nonexistent-dir-of-pipe/x.prom"), "x").unwrap_err().to_string();
        assert!(err.contains("/nonexistent-dir-of-pipe/x.prom"), "{err}");
    }
}
