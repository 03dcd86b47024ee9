//! # pipe-plugin-parquet
//!
//! Sink plugin writing Parquet (`plugin = "parquet"`): one dataset per stream,
//! `<path>/<stream>/`, optionally Hive-partitioned (`partition_by = ["vendor", "date"]` gives
//! `<path>/messages/vendor=giosg/date=2024-01-31/part-<run_id>-<seq>.parquet`).
//!
//! * Files are zstd-compressed, carry page statistics and the embedded Arrow schema, so every
//!   reader gets the exact stream schema back (`timestamp[us, tz=UTC]`, `uint32`, lists, maps).
//! * A file is written under a hidden temporary name (`.part-….parquet.inprogress`), closed
//!   when it reaches `max_file_rows` rows or about `max_file_bytes` bytes, and renamed to its
//!   final name only at the next commit, so `**/*.parquet` never matches a partial or
//!   uncommitted file. `abort` deletes what was not committed.
//! * Runs only add files: names carry the run id, and an existing name is never replaced.
//! * Memory stays flat whatever the size of the export: the writer flushes a row group every
//!   `row_group_rows` rows or once it holds `row_group_bytes` bytes (encoded, or in memory,
//!   whichever is larger), and the row groups being filled in all open files together hold at
//!   most about `row_group_bytes`: past it, the largest is written out early. At most
//!   `max_open_files` files are open at once.
//!
//! Partitioning, rolling, staging, publishing (locally or to object storage) and abort are the
//! SDK's file-sink core (`pipe_plugin_sdk::file_sink`); this crate is its Parquet encoder
//! ([`sink`]) and its config.

pub mod sink;

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, Result};
use pipe_plugin_sdk::{config, file_sink};
use schemars::JsonSchema;
use serde::Deserialize;

pub use pipe_plugin_sdk::file_sink::partition::{DATE_PARTITION, HIVE_DEFAULT_PARTITION};
pub use sink::{ParquetSink, open};

/// Configuration of the parquet sink (a `[[sinks]]` table with `plugin = "parquet"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ParquetConfig {
    /// Output directory: a local path (relative to the working directory) or an object storage
    /// URL, `s3://bucket/prefix`, `gs://…`, `az://…` or `file:///abs/dir` (credentials from the
    /// standard environment, see `pipe_plugin_sdk::storage`). Each stream is a dataset below
    /// it: `<path>/<stream>/[<key>=<value>/...]part-<run_id>-<seq>.parquet`. For object
    /// storage, files are written to a local spool directory and uploaded at each commit (one
    /// PUT, or a multipart upload for large files), so an object appears under its final key
    /// only complete. Required.
    pub path: String,
    /// Column compression: `"zstd"` (default) or `"none"`.
    #[serde(default)]
    pub compression: Compression,
    /// A file is closed, and the next one started, once it holds this many rows. Default
    /// 1000000.
    #[serde(default = "default_max_file_rows")]
    pub max_file_rows: u64,
    /// A file is closed, and the next one started, once its size (written plus still buffered,
    /// as the writer estimates it) reaches this many bytes. Default 134217728 (128 MiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Rows per row group (a row group is also flushed at `row_group_bytes`, whichever comes
    /// first). Default 131072.
    #[serde(default = "default_row_group_rows")]
    pub row_group_rows: usize,
    /// A row group is flushed once it holds this many bytes, encoded or in the writer's
    /// memory, whichever is larger (checked every 1,024 rows), and the row groups being
    /// filled in all open files (streams, partitions) hold this much together at most: past
    /// it, the largest is written out early. The sink's memory grows neither with the export
    /// nor with the number of open files. Default 4194304 (4 MiB: about 9,000 giosg messages
    /// per row group, 1 MiB of them on disk, and the same file size as at 8 MiB;
    /// docs/running.md, Memory).
    #[serde(default = "default_row_group_bytes")]
    pub row_group_bytes: u64,
    /// Hive partition columns, outermost first: each file lands in
    /// `<stream>/<key>=<value>/...`. Any string, integer, boolean or date column of the
    /// stream, or `date`: the UTC date (`YYYY-MM-DD`) of `sent_at` for messages and of
    /// `created_at` for conversations. Partition columns stay in the files. A null or empty
    /// value goes to `__HIVE_DEFAULT_PARTITION__`; other values are escaped the way Hive and
    /// Spark do (`/` becomes `%2F`). Default: not partitioned.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Most files open at the same time (one per stream and partition being written). When a
    /// batch needs one more, the least recently written file is closed early; memory is about
    /// this many row groups. Default 16.
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

/// Column compression codec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard, level 3: small files, fast to read; what every modern reader supports.
    #[default]
    Zstd,
    /// No compression.
    None,
}

fn default_max_file_rows() -> u64 {
    1_000_000
}
fn default_max_file_bytes() -> u64 {
    128 * 1024 * 1024
}
fn default_row_group_rows() -> usize {
    128 * 1024
}
fn default_row_group_bytes() -> u64 {
    4 * 1024 * 1024
}
fn default_max_open_files() -> usize {
    16
}

impl ParquetConfig {
    /// Checks the values serde cannot: a non-empty `path`, limits of at least 1, no repeated
    /// partition column. (Whether each partition column exists is checked against the stream
    /// schemas when the sink opens.)
    ///
    /// Errors: [`PluginError::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        file_sink::check_path(&self.path)?;
        for (key, value) in [
            ("max_file_rows", self.max_file_rows),
            ("max_file_bytes", self.max_file_bytes),
            ("row_group_rows", self.row_group_rows as u64),
            ("row_group_bytes", self.row_group_bytes),
            ("max_open_files", self.max_open_files as u64),
        ] {
            if value == 0 {
                return Err(PluginError::Config { path: key.into(), message: "must be at least 1".into() });
            }
        }
        file_sink::check_partition_by(&self.partition_by)
    }
}

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "parquet",
        version: env!("CARGO_PKG_VERSION"),
        description: "Parquet datasets, one per stream, optionally Hive-partitioned; files published at each checkpoint",
        config_schema: Arc::new(config::schema_of::<ParquetConfig>),
        check_config: PluginDescriptor::check_with(|cfg| config::parse::<ParquetConfig>(cfg.clone())?.validate()),
        factory: PluginFactory::sink(|cfg, ctx| {
            let cfg: ParquetConfig = config::parse(cfg)?;
            Ok(Box::new(open(cfg, ctx)?))
        }),
    }
}
