//! # pipe-plugin-json
//!
//! Sink plugin writing JSON Lines (`plugin = "json"`): one directory per stream,
//! `<path>/<stream>/[<key>=<value>/...]part-<run_id>-<seq>.jsonl`, one JSON object per row
//! (docs/design.md §3: timestamps as RFC 3339 UTC strings, lists as arrays, maps as objects,
//! every column on every line, nulls as `null`).
//!
//! Files are written under a hidden temporary name and renamed to their final name only when
//! the engine commits a checkpoint; `abort` deletes what was not committed. A file rolls over
//! at `max_file_rows` rows or about `max_file_bytes` bytes. Runs only add files. With
//! `partition_by`, files land in Hive directories, as the parquet sink's do; with an object
//! storage URL as `path`, files are spooled locally and uploaded at each commit.
//!
//! Partitioning, rolling, staging, publishing and abort are the SDK's file-sink core
//! (`pipe_plugin_sdk::file_sink`); this crate is its JSON Lines encoder ([`sink`]) and its
//! config.

pub mod sink;

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, Result};
use pipe_plugin_sdk::{config, file_sink};
use schemars::JsonSchema;
use serde::Deserialize;

pub use sink::{JsonSink, open};

/// Configuration of the json sink (a `[[sinks]]` table with `plugin = "json"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// Output directory: a local path (relative to the working directory) or an object storage
    /// URL, `s3://bucket/prefix`, `gs://…`, `az://…` or `file:///abs/dir` (credentials from the
    /// standard environment, see `pipe_plugin_sdk::storage`). Each stream is written to
    /// `<path>/<stream>/[<key>=<value>/...]part-<run_id>-<seq>.jsonl`. For object storage,
    /// files are written to a local spool directory and uploaded at each commit, so an object
    /// appears under its final key only complete. Required.
    pub path: String,
    /// A file is closed, and the next one started, once it holds this many rows. Default
    /// 1000000.
    #[serde(default = "default_max_file_rows")]
    pub max_file_rows: u64,
    /// A file is closed, and the next one started, once it has grown past this many bytes
    /// (checked after each batch, so a file may exceed it by up to one batch). Default
    /// 134217728 (128 MiB).
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Hive partition columns, outermost first: each file lands in
    /// `<stream>/<key>=<value>/...`. Any string, integer, boolean or date column of the
    /// stream, or `date`: the UTC date (`YYYY-MM-DD`) of `sent_at` for messages and of
    /// `created_at` for conversations. Partition columns stay in the rows. A null or empty
    /// value goes to `__HIVE_DEFAULT_PARTITION__`; other values are escaped the way Hive and
    /// Spark do (`/` becomes `%2F`). Default: not partitioned.
    #[serde(default)]
    pub partition_by: Vec<String>,
}

impl JsonConfig {
    /// Checks the values serde cannot: a non-empty `path` that is a local path or a URL,
    /// limits of at least 1, no repeated partition column. (Whether each partition column
    /// exists is checked against the stream schemas when the sink opens.)
    ///
    /// Errors: [`PluginError::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        file_sink::check_path(&self.path)?;
        for (key, value) in [("max_file_rows", self.max_file_rows), ("max_file_bytes", self.max_file_bytes)] {
            if value == 0 {
                return Err(PluginError::Config { path: key.into(), message: "must be at least 1".into() });
            }
        }
        file_sink::check_partition_by(&self.partition_by)
    }
}

fn default_max_file_rows() -> u64 {
    1_000_000
}
fn default_max_file_bytes() -> u64 {
    128 * 1024 * 1024
}

/// The plugin's descriptor for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "json",
        version: env!("CARGO_PKG_VERSION"),
        description: "JSON Lines files, one directory per stream, optionally Hive-partitioned; files published at each checkpoint",
        config_schema: Arc::new(config::schema_of::<JsonConfig>),
        check_config: PluginDescriptor::check_with(|cfg| config::parse::<JsonConfig>(cfg.clone())?.validate()),
        factory: PluginFactory::sink(|cfg, ctx| {
            let cfg: JsonConfig = config::parse(cfg)?;
            Ok(Box::new(open(cfg, ctx)?))
        }),
    }
}
