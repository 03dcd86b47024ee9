//! The parquet sink: one open `ArrowWriter` per (stream, partition directory), rolled at the
//! row/byte limits, bounded in number, published at commit.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use pipe_plugin_sdk::staging::{StagedFile, Staging, check_stream_name, run_blocking};
use pipe_plugin_sdk::storage::{self, Location};
use pipe_plugin_sdk::{Checkpoint, PluginError, Result, Sink, SinkContext, SinkStats};

use crate::partition::Partitioner;
use crate::{Compression, ParquetConfig};

/// A row group is flushed at this much encoded data even before `row_group_rows`, so wide rows
/// (long `raw` JSON) cannot make one open file hold hundreds of MB in memory.
const ROW_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// The Parquet sink. See the [crate docs](crate).
pub struct ParquetSink {
    /// Where files are staged and published: the output directory, or for object storage the
    /// local spool directory whose published files are uploaded at commit.
    root: PathBuf,
    /// The object storage location of `path`, with the spool directory (deleted on drop).
    remote: Option<(Location, tempfile::TempDir)>,
    max_file_rows: u64,
    max_file_bytes: u64,
    max_open_files: usize,
    partition_by: Vec<String>,
    props: WriterProperties,
    staging: Staging,
    /// Schema and partitioning of every stream seen or declared.
    streams: HashMap<String, StreamPlan>,
    /// Open files by (stream, partition directory relative to the stream's dataset).
    open: HashMap<(String, String), OpenFile>,
    /// Counts writes, to find the least recently written open file.
    clock: u64,
}

struct StreamPlan {
    schema: SchemaRef,
    partitioner: Partitioner,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    staged: StagedFile,
    rows: u64,
    last_write: u64,
}

impl ParquetSink {
    /// Opens the sink for the streams of `ctx`. Nothing is created on disk until the first
    /// row arrives.
    ///
    /// Errors: [`PluginError::Config`] for an invalid value (see [`ParquetConfig::validate`]),
    /// a `partition_by` column a declared stream lacks or cannot partition by, or a `path`
    /// that exists and is not a directory; [`PluginError::Other`] for a declared stream whose
    /// name cannot be a directory.
    pub fn open(cfg: ParquetConfig, ctx: SinkContext) -> Result<Self> {
        cfg.validate()?;
        let remote = if storage::is_url(&cfg.path) {
            let location = Location::parse(&cfg.path, "path")?;
            // Spool files sit next to nothing a reader globs; a crash leaves them in the temp
            // directory, never in the store.
            let spool = tempfile::Builder::new()
                .prefix("pipe-spool-")
                .tempdir()
                .map_err(|e| PluginError::io("creating a spool directory", e))?;
            Some((location, spool))
        } else {
            None
        };
        let root = match &remote {
            Some((_, spool)) => spool.path().to_path_buf(),
            None => PathBuf::from(&cfg.path),
        };
        if root.exists() && !root.is_dir() {
            return Err(PluginError::Config {
                path: "path".into(),
                message: format!("{} exists and is not a directory", root.display()),
            });
        }
        let mut streams = HashMap::new();
        for decl in &ctx.streams {
            check_stream_name(&decl.name)?;
            let partitioner = Partitioner::new(&decl.name, &decl.schema, &cfg.partition_by)?;
            streams.insert(decl.name.clone(), StreamPlan { schema: decl.schema.clone(), partitioner });
        }
        let codec = match cfg.compression {
            Compression::Zstd => Codec::ZSTD(ZstdLevel::try_new(3).map_err(parquet_error)?),
            Compression::None => Codec::UNCOMPRESSED,
        };
        let props = WriterProperties::builder()
            .set_compression(codec)
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(cfg.row_group_rows))
            .set_max_row_group_bytes(Some(ROW_GROUP_BYTES))
            .build();
        Ok(ParquetSink {
            staging: Staging::new(&root, &ctx.run_id),
            root,
            remote,
            max_file_rows: cfg.max_file_rows,
            max_file_bytes: cfg.max_file_bytes,
            max_open_files: cfg.max_open_files,
            partition_by: cfg.partition_by,
            props,
            streams,
            open: HashMap::new(),
            clock: 0,
        })
    }

    fn write_blocking(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        if !self.streams.contains_key(stream) {
            // A stream the context did not declare: take its schema from its first batch.
            check_stream_name(stream)?;
            let schema = batch.schema();
            let partitioner = Partitioner::new(stream, &schema, &self.partition_by)?;
            self.streams.insert(stream.to_string(), StreamPlan { schema, partitioner });
        }
        let plan = &self.streams[stream];
        if batch.schema().fields() != plan.schema.fields() {
            return Err(PluginError::other(format!(
                "parquet sink: a batch of stream `{stream}` does not have the stream's declared schema"
            )));
        }
        for (dir, rows) in plan.partitioner.split(batch)? {
            self.write_group((stream.to_string(), dir), &rows)?;
        }
        Ok(())
    }

    /// Writes rows of one partition, rolling files over at the limits.
    fn write_group(&mut self, key: (String, String), batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.open.contains_key(&key) {
                self.make_room()?;
                let file = self.create(&key)?;
                self.open.insert(key.clone(), file);
            }
            self.clock += 1;
            let file = self.open.get_mut(&key).expect("opened above");
            // Split the batch so that no file exceeds max_file_rows exactly.
            let take = (self.max_file_rows - file.rows).min((batch.num_rows() - offset) as u64);
            file.writer
                .write(&batch.slice(offset, take as usize))
                .map_err(|e| PluginError::other(format!("writing {}: {e}", file.staged.temp.display())))?;
            file.rows += take;
            file.last_write = self.clock;
            offset += take as usize;
            let size = file.writer.bytes_written() + file.writer.in_progress_size();
            if file.rows >= self.max_file_rows || size as u64 >= self.max_file_bytes {
                self.close(&key)?;
            }
        }
        Ok(())
    }

    fn create(&mut self, (stream, dir): &(String, String)) -> Result<OpenFile> {
        let mut path = self.root.join(stream);
        if !dir.is_empty() {
            path.push(dir);
        }
        let (file, staged) = self.staging.create(&path, "parquet")?;
        let schema = self.streams[stream].schema.clone();
        let writer = ArrowWriter::try_new(file, schema, Some(self.props.clone())).map_err(parquet_error)?;
        Ok(OpenFile { writer, staged, rows: 0, last_write: self.clock })
    }

    /// Closes the least recently written files until one more may be opened.
    fn make_room(&mut self) -> Result<()> {
        while self.open.len() >= self.max_open_files {
            let oldest = self
                .open
                .iter()
                .min_by_key(|(_, f)| f.last_write)
                .map(|(k, _)| k.clone())
                .expect("max_open_files is at least 1, so the map is not empty");
            self.close(&oldest)?;
        }
        Ok(())
    }

    /// Writes the footer of an open file, fsyncs it and stages it for publishing.
    fn close(&mut self, key: &(String, String)) -> Result<()> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        let path = file.staged.temp.display().to_string();
        let inner = file.writer.into_inner().map_err(|e| PluginError::other(format!("closing {path}: {e}")))?;
        inner.sync_all().map_err(|e| PluginError::io(format!("syncing {path}"), e))?;
        self.staging.ready(file.staged, file.rows);
        Ok(())
    }

    /// Closes every open file and publishes the ready ones (locally: their final names; for
    /// object storage: their final names in the spool directory, uploaded by the caller).
    fn commit_blocking(&mut self) -> Result<Vec<PathBuf>> {
        let keys: Vec<(String, String)> = self.open.keys().cloned().collect();
        for key in keys {
            self.close(&key)?;
        }
        let published = self.staging.publish()?;
        tracing::debug!(files = published.len(), root = %self.root.display(), "parquet sink committed");
        Ok(published)
    }

    /// Uploads files published in the spool directory to the same relative keys below the
    /// object storage location, deleting each local copy once its upload completed.
    ///
    /// Errors: the first upload that failed; files uploaded before it stay (the checkpoint
    /// is not saved, so a re-run delivers their rows again: at-least-once).
    async fn upload(location: Location, spool: PathBuf, published: Vec<PathBuf>) -> Result<()> {
        for local in published {
            let relative = local
                .strip_prefix(&spool)
                .map_err(|_| PluginError::other(format!("{} is outside the spool directory", local.display())))?
                .to_string_lossy()
                .replace(std::path::MAIN_SEPARATOR, "/");
            let key = location.child(&relative);
            storage::upload_file(&location.store, &local, &key).await?;
            tracing::debug!(object = %location.url_of(&key), "parquet sink uploaded");
            let _ = std::fs::remove_file(&local);
        }
        Ok(())
    }

    fn abort_blocking(&mut self) -> Result<()> {
        // Drop the writers (and their file handles) without finishing them, then delete.
        self.open.clear();
        let deleted = self.staging.discard()?;
        tracing::debug!(files = deleted, root = %self.root.display(), "parquet sink aborted");
        Ok(())
    }
}

fn parquet_error(e: ParquetError) -> PluginError {
    PluginError::other(format!("parquet: {e}"))
}

#[async_trait]
impl Sink for ParquetSink {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        run_blocking(|| self.write_blocking(stream, batch))
    }

    async fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<()> {
        let published = run_blocking(|| self.commit_blocking())?;
        match &self.remote {
            // Owned copies: the sink's writers are not `Sync`, so `self` cannot be held across
            // the uploads' awaits.
            Some((location, _)) => Self::upload(location.clone(), self.root.clone(), published).await,
            None => Ok(()),
        }
    }

    async fn abort(&mut self) -> Result<()> {
        run_blocking(|| self.abort_blocking())
    }

    fn stats(&self) -> SinkStats {
        self.staging.stats()
    }
}

impl Drop for ParquetSink {
    /// A sink dropped with uncommitted files (the engine did not get to `abort`) removes them,
    /// so no temporary file outlives the run that wrote it.
    fn drop(&mut self) {
        if self.staging.has_outstanding() {
            tracing::warn!(root = %self.root.display(), "parquet sink dropped without commit or abort; deleting its uncommitted files");
            let _ = self.abort_blocking();
        }
    }
}
