//! The `row_counts` sink: committed rows per stream in `<path>/row_counts.json`, with the
//! checkpoint that covers them. The file is replaced atomically (write, fsync, rename) at every
//! commit, so it only ever shows committed counts: the commit contract of every sink.
//!
//! ```json
//! {"rows": {"conversations": 120, "messages": 1042}, "checkpoint": {"updated_since": "..."}}
//! ```

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use pipe_plugin_sdk::config;
use pipe_plugin_sdk::reexports::arrow_array::RecordBatch;
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{Checkpoint, PluginDescriptor, PluginError, PluginFactory, Result, Sink, SinkContext, SinkStats};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The `[[sinks]]` keys of `plugin = "row_counts"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CountsConfig {
    /// Directory of `row_counts.json` (created if missing).
    pub path: PathBuf,
}

/// The plugin's descriptor, listed in `declare_plugin!`.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "row_counts",
        version: env!("CARGO_PKG_VERSION"),
        description: "committed row counts per stream, as JSON (example plugin)",
        config_schema: Arc::new(config::schema_of::<CountsConfig>),
        check_config: Arc::new(config::check::<CountsConfig>),
        factory: PluginFactory::sink(open),
    }
}

fn open(config: Value, _ctx: SinkContext) -> Result<Box<dyn Sink>> {
    let cfg: CountsConfig = config::parse(config)?;
    std::fs::create_dir_all(&cfg.path).map_err(|e| PluginError::io(format!("creating {}", cfg.path.display()), e))?;
    // Counts accumulate over runs: start from what the last run committed.
    let file = cfg.path.join("row_counts.json");
    let committed: BTreeMap<String, u64> = match std::fs::read(&file) {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| serde_json::from_value(v["rows"].clone()).ok())
            .ok_or_else(|| PluginError::other(format!("{} is not a row_counts file", file.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(PluginError::io(format!("reading {}", file.display()), e)),
    };
    Ok(Box::new(Counts { file, committed, pending: BTreeMap::new(), rows_this_run: 0 }))
}

struct Counts {
    file: PathBuf,
    committed: BTreeMap<String, u64>,
    pending: BTreeMap<String, u64>,
    rows_this_run: u64,
}

#[async_trait]
impl Sink for Counts {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        *self.pending.entry(stream.to_string()).or_default() += batch.num_rows() as u64;
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let mut next = self.committed.clone();
        for (stream, n) in &self.pending {
            *next.entry(stream.clone()).or_default() += n;
        }
        let body = serde_json::to_vec_pretty(&json!({"rows": next, "checkpoint": checkpoint.state})).expect("JSON");
        let tmp = self.file.with_extension("json.tmp");
        let io = |e| PluginError::io(format!("writing {}", self.file.display()), e);
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.file).map_err(io)?;
        self.rows_this_run += self.pending.values().sum::<u64>();
        self.pending.clear();
        self.committed = next;
        Ok(())
    }

    async fn abort(&mut self) -> Result<()> {
        self.pending.clear();
        Ok(())
    }

    fn stats(&self) -> SinkStats {
        SinkStats { files: 0, bytes: 0, rows: self.rows_this_run }
    }
}
