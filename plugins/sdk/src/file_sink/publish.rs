//! Where published files end up: a local directory, or object storage through a local spool.
//!
//! * A local path (relative to the working directory): files are staged and published in
//!   place, `<path>/<stream>/...`; publishing is the rename of [`Staging::publish`].
//! * An object storage URL (`s3://`, `gs://`, `az://`, `file://`, see [`crate::storage`]):
//!   files are staged and published in a private spool directory (a fresh temporary directory,
//!   deleted with the sink; a crash leaves files there, never in the store), then uploaded at
//!   the same commit to the same relative keys below the URL's prefix, and each local copy is
//!   deleted once its upload completed. An object appears under its final key only complete
//!   (one PUT, or a multipart upload for large files), so nothing uncommitted or partial is
//!   ever visible in the store, and an abort uploads nothing.
//!
//! [`Staging::publish`]: super::stage::Staging::publish

use std::path::{Path, PathBuf};

use crate::storage::{self, Location};
use crate::{PluginError, Result};

/// The output of a file sink. See the [module docs](self).
#[derive(Debug)]
pub enum Destination {
    /// Files are published in this directory.
    Local(PathBuf),
    /// Files are published in the spool directory, then uploaded below the location.
    Remote {
        /// The object storage location of the sink's `path`.
        location: Location,
        /// The spool directory (deleted when dropped).
        spool: tempfile::TempDir,
    },
}

impl Destination {
    /// The destination of a sink's `path` setting: a URL is parsed as an object storage
    /// location (its store built from the environment) and gets a spool directory; anything
    /// else is a local directory.
    ///
    /// Errors: [`PluginError::Config`] at `key` for a URL [`Location::parse`] refuses or a
    /// local path that exists and is not a directory; [`PluginError::Io`] when the spool
    /// directory cannot be created.
    pub fn open(path: &str, key: &str) -> Result<Destination> {
        let destination = if storage::is_url(path) {
            Destination::remote(Location::parse(path, key)?)?
        } else {
            Destination::Local(PathBuf::from(path))
        };
        let root = destination.root();
        if root.exists() && !root.is_dir() {
            return Err(PluginError::Config {
                path: key.into(),
                message: format!("{} exists and is not a directory", root.display()),
            });
        }
        Ok(destination)
    }

    /// Object storage at `location` (any `object_store` store, an in-memory one included),
    /// with a fresh spool directory.
    ///
    /// Errors: [`PluginError::Io`] when the spool directory cannot be created.
    pub fn remote(location: Location) -> Result<Destination> {
        let spool = tempfile::Builder::new()
            .prefix("pipe-spool-")
            .tempdir()
            .map_err(|e| PluginError::io("creating a spool directory", e))?;
        Ok(Destination::Remote { location, spool })
    }

    /// The local directory files are staged and published in: the output directory, or the
    /// spool directory.
    pub fn root(&self) -> &Path {
        match self {
            Destination::Local(root) => root,
            Destination::Remote { spool, .. } => spool.path(),
        }
    }

    /// For object storage, uploads `published` (final paths below [`Destination::root`]) to
    /// the same relative keys below the location, deleting each local copy once its upload
    /// completed. Nothing to do for a local directory.
    ///
    /// Errors: the first upload that failed; files uploaded before it stay (the checkpoint is
    /// not saved, so a re-run delivers their rows again: at-least-once).
    pub async fn upload(&self, published: Vec<PathBuf>) -> Result<()> {
        let Destination::Remote { location, spool } = self else {
            return Ok(());
        };
        for local in published {
            let relative = local
                .strip_prefix(spool.path())
                .map_err(|_| PluginError::other(format!("{} is outside the spool directory", local.display())))?
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            let key = location.child(&relative);
            storage::upload_file(&location.store, &local, &key).await?;
            tracing::debug!(object = %location.url_of(&key), "file sink uploaded");
            let _ = std::fs::remove_file(&local);
        }
        Ok(())
    }

    /// The output as the user gave it, for logs: the directory or the URL.
    pub fn describe(&self) -> String {
        match self {
            Destination::Local(root) => root.display().to_string(),
            Destination::Remote { location, .. } => location.url.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remote_uploads_below_the_prefix_and_empties_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/lake", dir.path().display());
        let destination = Destination::open(&url, "path").unwrap();
        let local = destination.root().join("messages/date=2026-01-01/part-r-00000.jsonl");
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, b"{}\n").unwrap();
        destination.upload(vec![local.clone()]).await.unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("lake/messages/date=2026-01-01/part-r-00000.jsonl")).unwrap(),
            b"{}\n"
        );
        assert!(!local.exists(), "the spool copy is deleted once uploaded");
        assert_eq!(destination.describe(), url);
    }

    #[test]
    fn local_paths_stay_local_and_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let destination = Destination::open(out.to_str().unwrap(), "path").unwrap();
        assert_eq!(destination.root(), out);
        let file = dir.path().join("f");
        std::fs::write(&file, b"").unwrap();
        let err = Destination::open(file.to_str().unwrap(), "sinks[0].path").unwrap_err();
        assert!(matches!(err, PluginError::Config { ref path, .. } if path == "sinks[0].path"), "{err}");
    }
}
