//! `libpipe_plugin_delta.so`: the `delta` sink — one Delta Lake table per stream under `path`,
//! written by delta-rs, in `append` or `merge` (upsert on the primary key) mode, with exactly-once
//! commits keyed by Delta transaction identifiers (`txn` actions). See README.md for the
//! semantics; in short:
//!
//! * [`bridge`]: arrow 60 batches (the SDK) become arrow 59 batches (delta-rs) through the Arrow
//!   C Data Interface, without copying.
//! * [`ledger`]: which app ids a checkpoint advances, at what `txn` version, and whether a commit
//!   is a replay of one already in the table.
//! * [`sink`]: the [`pipe_plugin_sdk::Sink`]: buffering, table creation, append and merge.

pub mod bridge;
pub mod ledger;
pub mod sink;

use std::collections::BTreeMap;
use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginFactory, config};
use schemars::JsonSchema;
use serde::Deserialize;

/// How rows reach the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every committed row is appended (replays of an already committed checkpoint are skipped).
    Append,
    /// Rows are upserted on the stream's primary key (needs the `merge` cargo feature).
    Merge,
}

/// The `[[sinks]]` keys of `plugin = "delta"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeltaConfig {
    /// Directory (or URL: `file://`, and `s3://`, `gs://`, `az://` when built with those
    /// features) under which each stream gets its table, `<path>/<stream>`.
    pub path: String,
    /// `append` (default) or `merge`.
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Partition columns, outermost first. `date` is added as a real `date` column (the UTC
    /// date of `sent_at` for messages, `created_at` for conversations) unless the stream has
    /// one. Default `["vendor", "date"]`; `[]` for an unpartitioned table.
    #[serde(default = "default_partition_by")]
    pub partition_by: Vec<String>,
    /// Most rows held in memory between two commits (the buffer of the uncommitted rows);
    /// more is an error telling to commit more often. Default 2,000,000.
    #[serde(default = "default_max_buffered_rows")]
    pub max_buffered_rows: u64,
    /// Primary key of streams other than the canonical `messages` and `conversations`
    /// (needed for them in merge mode): stream → columns.
    #[serde(default)]
    pub primary_keys: BTreeMap<String, Vec<String>>,
    /// Options handed to delta-rs's object store (credentials, endpoint, ...).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
}

fn default_mode() -> Mode {
    Mode::Append
}

fn default_partition_by() -> Vec<String> {
    vec!["vendor".to_string(), "date".to_string()]
}

fn default_max_buffered_rows() -> u64 {
    2_000_000
}

/// Whether this library was built with the `merge` cargo feature (DataFusion).
pub const MERGE_BUILT: bool = cfg!(feature = "merge");

/// Parses and checks the config: without the `merge` feature, `mode = "merge"` is refused.
pub fn parse_config(value: serde_json::Value) -> pipe_plugin_sdk::Result<DeltaConfig> {
    let cfg: DeltaConfig = config::parse(value)?;
    if cfg.mode == Mode::Merge && !MERGE_BUILT {
        return Err(pipe_plugin_sdk::PluginError::Config {
            path: "mode".to_string(),
            message: "this delta plugin library was built without merge support (the `merge` cargo feature, \
                      which brings DataFusion); rebuild it with `--features merge` or use mode = \"append\""
                .to_string(),
        });
    }
    if cfg.max_buffered_rows == 0 {
        return Err(pipe_plugin_sdk::PluginError::Config {
            path: "max_buffered_rows".to_string(),
            message: "must be at least 1".to_string(),
        });
    }
    Ok(cfg)
}

fn check(value: &serde_json::Value) -> pipe_plugin_sdk::Result<()> {
    parse_config(value.clone()).map(|_| ())
}

/// The `delta` sink's descriptor.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "delta",
        version: env!("CARGO_PKG_VERSION"),
        description: if MERGE_BUILT {
            "Delta Lake tables, one per stream: append or merge (upsert by primary key), exactly-once commits"
        } else {
            "Delta Lake tables, one per stream: append (built without merge), exactly-once commits"
        },
        config_schema: Arc::new(config::schema_of::<DeltaConfig>),
        check_config: Arc::new(check),
        factory: PluginFactory::sink(sink::open),
    }
}

pipe_plugin_sdk::declare_plugin! {
    plugins: [descriptor],
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults() {
        let cfg = parse_config(json!({"path": "/tmp/x"})).unwrap();
        assert_eq!(cfg.mode, Mode::Append);
        assert_eq!(cfg.partition_by, vec!["vendor", "date"]);
    }

    #[test]
    fn unknown_key_and_bad_mode_name_the_key() {
        let e = parse_config(json!({"path": "/x", "mdoe": "merge"})).unwrap_err();
        assert!(e.to_string().contains("mdoe"), "{e}");
        let pipe_plugin_sdk::PluginError::Config { path, .. } =
            parse_config(json!({"path": "/x", "mode": "upsert"})).unwrap_err()
        else {
            panic!()
        };
        assert_eq!(path, "mode");
    }

    #[test]
    fn merge_needs_the_feature() {
        let r = parse_config(json!({"path": "/x", "mode": "merge"}));
        if MERGE_BUILT {
            r.unwrap();
        } else {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("built without merge"), "{e}");
        }
    }
}
