//! The json sink: one open file per stream, rolled at the row/byte limits, published at commit.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arrow_array::RecordBatch;
use async_trait::async_trait;
use pipe_plugin_sdk::{Checkpoint, PluginError, Result, Sink, SinkContext, SinkStats};

use crate::JsonConfig;
use pipe_plugin_sdk::json_rows::encode_rows;
use pipe_plugin_sdk::staging::{StagedFile, Staging, check_stream_name, run_blocking};

/// The JSON Lines sink. See the [crate docs](crate).
pub struct JsonSink {
    root: PathBuf,
    max_file_rows: u64,
    max_file_bytes: u64,
    staging: Staging,
    /// The file each stream is currently writing, if any.
    open: HashMap<String, OpenFile>,
    /// Reused encoding buffer, so a batch costs no allocation once warmed up.
    buf: Vec<u8>,
}

struct OpenFile {
    out: BufWriter<File>,
    staged: StagedFile,
    rows: u64,
    bytes: u64,
}

impl JsonSink {
    /// Opens the sink. Nothing is created on disk until the first row arrives.
    ///
    /// Errors: [`PluginError::Config`] for a zero limit, an empty `path` or a `path` that
    /// exists and is not a directory; [`PluginError::Other`] for a declared stream whose name
    /// cannot be a directory.
    pub fn open(cfg: JsonConfig, ctx: SinkContext) -> Result<Self> {
        cfg.validate()?;
        let root = PathBuf::from(&cfg.path);
        if root.exists() && !root.is_dir() {
            return Err(PluginError::Config {
                path: "path".into(),
                message: format!("{} exists and is not a directory", root.display()),
            });
        }
        for stream in &ctx.streams {
            check_stream_name(&stream.name)?;
        }
        Ok(JsonSink {
            staging: Staging::new(&root, &ctx.run_id),
            root,
            max_file_rows: cfg.max_file_rows,
            max_file_bytes: cfg.max_file_bytes,
            open: HashMap::new(),
            buf: Vec::new(),
        })
    }

    fn write_blocking(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.open.contains_key(stream) {
                let (file, staged) = self.staging.create(&self.root.join(stream), "jsonl")?;
                let out = BufWriter::with_capacity(1 << 20, file);
                self.open.insert(stream.to_string(), OpenFile { out, staged, rows: 0, bytes: 0 });
            }
            let file = self.open.get_mut(stream).expect("opened above");
            // Split the batch so that no file exceeds max_file_rows exactly.
            let room = (self.max_file_rows - file.rows).min((batch.num_rows() - offset) as u64);
            let slice = batch.slice(offset, room as usize);
            self.buf.clear();
            encode_rows(&slice, &mut self.buf)?;
            file.out.write_all(&self.buf).map_err(|e| write_error(&file.staged, e))?;
            file.rows += room;
            file.bytes += self.buf.len() as u64;
            offset += room as usize;
            if file.rows >= self.max_file_rows || file.bytes >= self.max_file_bytes {
                self.close(stream)?;
            }
        }
        Ok(())
    }

    /// Flushes and fsyncs a stream's open file and stages it for publishing.
    fn close(&mut self, stream: &str) -> Result<()> {
        let Some(file) = self.open.remove(stream) else {
            return Ok(());
        };
        let staged = file.staged;
        let inner = file.out.into_inner().map_err(|e| write_error(&staged, e.into_error()))?;
        inner.sync_all().map_err(|e| write_error(&staged, e))?;
        self.staging.ready(staged, file.rows);
        Ok(())
    }

    fn commit_blocking(&mut self) -> Result<()> {
        let streams: Vec<String> = self.open.keys().cloned().collect();
        for stream in streams {
            self.close(&stream)?;
        }
        let published = self.staging.publish()?;
        tracing::debug!(files = published.len(), root = %self.root.display(), "json sink committed");
        Ok(())
    }

    fn abort_blocking(&mut self) -> Result<()> {
        // Close the handles before deleting (required on Windows; harmless elsewhere).
        self.open.clear();
        let deleted = self.staging.discard()?;
        tracing::debug!(files = deleted, root = %self.root.display(), "json sink aborted");
        Ok(())
    }
}

fn write_error(staged: &StagedFile, e: std::io::Error) -> PluginError {
    PluginError::io(format!("writing {}", staged.temp.display()), e)
}

#[async_trait]
impl Sink for JsonSink {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        check_stream_name(stream)?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        run_blocking(|| self.write_blocking(stream, batch))
    }

    async fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<()> {
        run_blocking(|| self.commit_blocking())
    }

    async fn abort(&mut self) -> Result<()> {
        run_blocking(|| self.abort_blocking())
    }

    fn stats(&self) -> SinkStats {
        self.staging.stats()
    }
}

impl Drop for JsonSink {
    /// A sink dropped with uncommitted files (the engine did not get to `abort`) removes them,
    /// so no temporary file outlives the run that wrote it.
    fn drop(&mut self) {
        if self.staging.has_outstanding() {
            tracing::warn!(root = %self.root.display(), "json sink dropped without commit or abort; deleting its uncommitted files");
            let _ = self.abort_blocking();
        }
    }
}
