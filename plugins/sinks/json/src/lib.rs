//! # pipe-plugin-json
//!
//! Sink plugin writing JSON Lines (`plugin = "json"`): one directory per stream,
//! `<path>/<stream>/part-<run_id>-<seq>.jsonl`, one JSON object per row (docs/design.md §3:
//! timestamps as RFC 3339 UTC strings, lists as arrays, maps as objects, every column on
//! every line, nulls as `null`).
//!
//! Files are written under a hidden temporary name and renamed to their final name only when
//! the engine commits a checkpoint; `abort` deletes what was not committed. A file rolls over
//! at `max_file_rows` rows or about `max_file_bytes` bytes. Runs only add files.
//!
//! The crate also hosts what the other sinks share: [`encode`] (the JSON Lines encoding, used
//! by the stdout sink) and [`staging`] (temporary names, publish at commit, used by the
//! parquet sink).

mod sink;

use std::sync::Arc;

use pipe_plugin_sdk::config;
use pipe_plugin_sdk::{PluginDescriptor, PluginError, PluginFactory, Result};
use schemars::JsonSchema;
use serde::Deserialize;

pub use sink::JsonSink;

/// Configuration of the json sink (a `[[sinks]]` table with `plugin = "json"`).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonConfig {
    /// Output directory on the local file system (relative to the working directory; object
    /// storage URLs are refused for now). Each stream is
    /// written to `<path>/<stream>/part-<run_id>-<seq>.jsonl`. Required.
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
}

impl JsonConfig {
    /// Checks the values serde cannot: a non-empty `path`, limits of at least 1.
    ///
    /// Errors: [`PluginError::Config`] naming the key.
    pub fn validate(&self) -> Result<()> {
        let config_error =
            |path: &str, message: &str| Err(PluginError::Config { path: path.into(), message: message.into() });
        if self.path.is_empty() {
            return config_error("path", "must not be empty");
        }
        if self.path.contains("://") {
            return config_error("path", "must be a local directory; object storage URLs are not supported yet");
        }
        if self.max_file_rows == 0 {
            return config_error("max_file_rows", "must be at least 1");
        }
        if self.max_file_bytes == 0 {
            return config_error("max_file_bytes", "must be at least 1");
        }
        Ok(())
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
        description: "JSON Lines files, one directory per stream, published at each checkpoint",
        config_schema: Arc::new(config::schema_of::<JsonConfig>),
        check_config: PluginDescriptor::check_with(|cfg| config::parse::<JsonConfig>(cfg.clone())?.validate()),
        factory: PluginFactory::sink(|cfg, ctx| {
            let cfg: JsonConfig = config::parse(cfg)?;
            Ok(Box::new(JsonSink::open(cfg, ctx)?))
        }),
    }
}
