//! Object storage locations for sinks and state (feature `object-store`).
//!
//! A location is a URL: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`
//! (also `abfs://`, `azure://`) or `file:///absolute/dir`. [`Location::parse`] builds the store
//! through the `object_store` crate with credentials and settings from the standard
//! environment of each cloud, read when the location is parsed:
//!
//! * S3: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//!   `AWS_ENDPOINT` (S3-compatible stores such as MinIO), `AWS_ALLOW_HTTP`, web identity
//!   (`AWS_WEB_IDENTITY_TOKEN_FILE`, as on EKS) and the instance metadata service. Conditional
//!   writes use `If-Match` on the ETag (S3 supports it since 2024; set
//!   `AWS_CONDITIONAL_PUT=dynamo:<table>` for stores that do not).
//! * GCS: `GOOGLE_SERVICE_ACCOUNT` / `GOOGLE_APPLICATION_CREDENTIALS`, workload identity.
//! * Azure: `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_CLIENT_ID`… and
//!   managed identity.
//!
//! Objects become visible only when their upload completes (a single PUT, or the
//! `CompleteMultipartUpload` of a multipart upload), so a writer that dies mid-upload never
//! leaves a partial object under its final key. Parts of an abandoned multipart upload are
//! invisible but billed until a lifecycle rule (`AbortIncompleteMultipartUpload`) removes them.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;

use crate::{PluginError, Result};

/// A parsed object storage location: the store and the key prefix below which everything of
/// this location lives.
#[derive(Clone, Debug)]
pub struct Location {
    /// The store (bucket or container, or the local filesystem for `file://`).
    pub store: Arc<dyn ObjectStore>,
    /// Key prefix inside the store, without leading or trailing `/` (may be empty).
    pub prefix: ObjectPath,
    /// The URL as given, for messages (it holds no credentials: those come from the env).
    pub url: String,
}

/// True when `path` is a URL with a scheme (`s3://…`) rather than a local path.
pub fn is_url(path: &str) -> bool {
    match path.split_once("://") {
        Some((scheme, _)) => !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || c == '+'),
        None => false,
    }
}

impl Location {
    /// Parses `url` and builds its store from the environment (see the [module docs](self)).
    ///
    /// Errors: [`PluginError::Config`] at `key` for a URL that does not parse, a scheme other
    /// than `s3`, `s3a`, `gs`, `az`, `abfs`, `abfss`, `azure`, `file`, or a store that cannot be
    /// built from the environment (e.g. no region for S3); the message names the URL.
    pub fn parse(url: &str, key: &str) -> Result<Location> {
        let config_error = |message: String| PluginError::Config { path: key.into(), message };
        let parsed = url::Url::parse(url).map_err(|e| config_error(format!("`{url}` is not a URL: {e}")))?;
        let scheme = parsed.scheme();
        let prefix_str = parsed.path().trim_matches('/');
        let built: std::result::Result<(Arc<dyn ObjectStore>, ObjectPath), String> = match scheme {
            "s3" | "s3a" => object_store::aws::AmazonS3Builder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as Arc<dyn ObjectStore>, path_of(prefix_str)))
                .map_err(|e| e.to_string()),
            "gs" => object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as Arc<dyn ObjectStore>, path_of(prefix_str)))
                .map_err(|e| e.to_string()),
            "az" | "abfs" | "abfss" | "azure" => object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url)
                .build()
                .map(|s| (Arc::new(s) as Arc<dyn ObjectStore>, path_of(prefix_str)))
                .map_err(|e| e.to_string()),
            "file" => {
                let dir =
                    parsed.to_file_path().map_err(|()| config_error(format!("`{url}` is not an absolute file URL")))?;
                std::fs::create_dir_all(&dir)
                    .map_err(|e| config_error(format!("cannot create {}: {e}", dir.display())))?;
                object_store::local::LocalFileSystem::new_with_prefix(&dir)
                    .map(|s| (Arc::new(s) as Arc<dyn ObjectStore>, ObjectPath::default()))
                    .map_err(|e| e.to_string())
            }
            other => {
                return Err(config_error(format!(
                    "`{url}`: unsupported scheme `{other}` (use s3://, gs://, az:// or file://, or a local path)"
                )));
            }
        };
        let (store, prefix) = built.map_err(|e| config_error(format!("cannot open `{url}`: {e}")))?;
        Ok(Location { store, prefix, url: url.to_string() })
    }

    /// The key of `relative` (a `/`-separated path) below this location's prefix.
    pub fn child(&self, relative: &str) -> ObjectPath {
        let mut parts: Vec<&str> = Vec::new();
        let prefix = self.prefix.as_ref();
        if !prefix.is_empty() {
            parts.push(prefix);
        }
        parts.extend(relative.split('/').filter(|p| !p.is_empty()));
        ObjectPath::from(parts.join("/"))
    }

    /// The URL of `key`, for messages: the scheme and bucket of this location followed by the key.
    pub fn url_of(&self, key: &ObjectPath) -> String {
        let base = self.url.trim_end_matches('/');
        let prefix = self.prefix.as_ref();
        let relative = key.as_ref().strip_prefix(prefix).unwrap_or(key.as_ref()).trim_start_matches('/');
        format!("{base}/{relative}")
    }
}

fn path_of(prefix: &str) -> ObjectPath {
    // The URL path is already percent-decoded by `Url`; keep segments as given.
    ObjectPath::from(prefix)
}

/// Uploads the local file `local` to `key`, as one PUT for small files and as a multipart
/// upload (parts of 10 MiB, a few in flight) for large ones. The object appears only when the
/// upload completes. Returns the number of bytes uploaded.
///
/// Errors: [`PluginError::Io`] reading the file, [`PluginError::Other`] when the store refuses
/// (the message names the key; a failed multipart upload is aborted).
pub async fn upload_file(store: &Arc<dyn ObjectStore>, local: &std::path::Path, key: &ObjectPath) -> Result<u64> {
    use object_store::buffered::BufWriter;
    use tokio::io::AsyncWriteExt as _;

    let mut file =
        tokio::fs::File::open(local).await.map_err(|e| PluginError::io(format!("opening {}", local.display()), e))?;
    let mut writer = BufWriter::with_capacity(store.clone(), key.clone(), 10 * 1024 * 1024).with_max_concurrency(4);
    let copied = match tokio::io::copy(&mut file, &mut writer).await {
        Ok(n) => n,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(PluginError::other(format!("uploading {key}: {e}")));
        }
    };
    if let Err(e) = writer.shutdown().await {
        let _ = writer.abort().await;
        return Err(PluginError::other(format!("uploading {key}: {e}")));
    }
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_local_paths() {
        assert!(is_url("s3://bucket/prefix"));
        assert!(is_url("file:///tmp/x"));
        assert!(!is_url("out/giosg"));
        assert!(!is_url("/abs/path"));
        assert!(!is_url("://x"));
    }

    #[tokio::test]
    async fn file_location_uploads_below_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/data", dir.path().display());
        let loc = Location::parse(&url, "path").unwrap();
        let local = dir.path().join("part.bin");
        std::fs::write(&local, b"hello").unwrap();
        let key = loc.child("messages/date=2026-01-01/part-1.parquet");
        assert_eq!(upload_file(&loc.store, &local, &key).await.unwrap(), 5);
        let written = dir.path().join("data/messages/date=2026-01-01/part-1.parquet");
        assert_eq!(std::fs::read(written).unwrap(), b"hello");
        assert_eq!(loc.url_of(&key), format!("{url}/messages/date=2026-01-01/part-1.parquet"));
    }

    #[test]
    fn unsupported_scheme_is_a_config_error_naming_the_key() {
        let err = Location::parse("ftp://host/x", "sinks[0].path").unwrap_err();
        assert!(
            matches!(&err, PluginError::Config { path, message } if path == "sinks[0].path" && message.contains("ftp")),
            "{err}"
        );
    }
}
