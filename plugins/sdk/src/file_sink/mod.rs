//! The file-sink core shared by the `parquet` and `json` sinks (feature `file-sink`).
//!
//! A file sink is an encoder ([`FileFormat`], [`FileWriter`]) plus its config; [`FileSink`]
//! does the rest, the same way for every format (docs/design.md §6):
//!
//! ```text
//!  write(stream, batch)
//!    │  partition::Partitioner   rows → `<stream>/[<key>=<value>/...]` (Hive), columns kept
//!    ▼
//!  roll::OpenFiles ── one open file per (stream, partition directory), at most max_open_files
//!    │  FileWriter::write        into `.part-<run_id>-<seq>.<ext>.inprogress` (stage::Staging)
//!    │  roll::RollPolicy         full at max_file_rows (exact) or max_file_bytes → finish, fsync,
//!    ▼                           ready
//!  commit(checkpoint)
//!    │  finish + fsync every open file
//!    │  stage::Staging::publish  rename to `part-<run_id>-<seq>.<ext>`, fsync the directories
//!    ▼  publish::Destination     object storage: upload from the spool, then delete the copy
//!  (engine saves the checkpoint)
//!
//!  abort / drop without commit   drop the writers, delete every unpublished temporary file;
//!                                nothing reaches the output
//! ```
//!
//! Modules: [`partition`] (Hive directories), [`roll`] (limits and open files), [`stage`]
//! (temporary names, publish at commit, discard at abort), [`publish`] (local directory or
//! object storage).
//!
//! A sink's `open` validates its config, turns its `path` into a [`Destination`] with
//! [`Destination::open`], and calls [`FileSink::open`] with its format and the
//! [`FileSinkOptions`] of its keys; the sink is then that `FileSink` (`Box<dyn Sink>`).

pub mod partition;
pub mod publish;
pub mod roll;
/// Staging (temporary names, publish, discard): [`crate::staging`], which sinks outside the
/// core use too (for [`crate::staging::run_blocking`]).
pub use crate::staging as stage;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;

use crate::{Checkpoint, PluginError, Result, Sink, SinkContext, SinkStats};
use partition::Partitioner;
use publish::Destination;
use roll::{OpenFiles, RollPolicy};
use stage::{StagedFile, Staging, check_stream_name, run_blocking};

/// An output format of a [`FileSink`]: how a staged file is encoded.
pub trait FileFormat: Send + 'static {
    /// The writer of one open file.
    type Writer: FileWriter;

    /// The sink's name, for messages and logs (`parquet`).
    const NAME: &'static str;

    /// The extension of published files, without the dot (`parquet`, `jsonl`).
    const EXTENSION: &'static str;

    /// True when every batch of a stream must have the stream's declared schema (a Parquet
    /// file has one schema). When false, a batch may differ from the declared schema (JSON
    /// Lines writes each row's own columns), and its partition columns are looked up by name.
    const STRICT_SCHEMA: bool;

    /// Starts writing a file of rows with `schema` into `file`, the freshly created temporary
    /// file at `path` (for messages).
    ///
    /// Errors: the encoder refusing the schema.
    fn create(&self, file: File, path: &Path, schema: &SchemaRef) -> Result<Self::Writer>;

    /// Bytes the sink's open files may hold in memory together, not yet written
    /// ([`FileWriter::buffered_bytes`]); past it, the file holding the most writes its buffer
    /// out ([`FileWriter::flush_buffered`]), so the sink's memory does not grow with the number
    /// of streams or partitions it writes at once. `None` (the default): no shared bound.
    fn buffer_budget(&self) -> Option<usize> {
        None
    }
}

/// One open file of a [`FileFormat`].
pub trait FileWriter: Send {
    /// Encodes `batch` (all of it) into the file. Data may stay buffered until [`finish`].
    ///
    /// [`finish`]: FileWriter::finish
    fn write(&mut self, batch: &RecordBatch) -> Result<()>;

    /// The file's size in bytes as the writer estimates it: written plus still buffered.
    /// Compared with `max_file_bytes` after each write.
    fn size(&self) -> u64;

    /// Completes the file (footer, buffers flushed) and hands the file back; the core fsyncs it.
    fn finish(self) -> Result<File>;

    /// Bytes this file holds in memory, not yet written (a Parquet row group being filled);
    /// 0 for a format that streams what it is given.
    fn buffered_bytes(&self) -> usize {
        0
    }

    /// Writes out what [`FileWriter::buffered_bytes`] counts (a Parquet row group is ended
    /// early). Does nothing for a format that streams.
    fn flush_buffered(&mut self) -> Result<()> {
        Ok(())
    }
}

/// What a [`FileSink`] is opened with besides its format and destination: the file-sink keys
/// of its config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSinkOptions {
    /// `max_file_rows` and `max_file_bytes`.
    pub roll: RollPolicy,
    /// Most files open at once (at least 1).
    pub max_open_files: usize,
    /// `partition_by`: Hive partition columns, outermost first ([`partition::Partitioner`]).
    pub partition_by: Vec<String>,
}

/// Checks a file sink's `path` setting: not empty, and either a local path or a URL.
///
/// Errors: [`PluginError::Config`] at `path`.
pub fn check_path(path: &str) -> Result<()> {
    let error = |message: String| Err(PluginError::Config { path: "path".into(), message });
    if path.is_empty() {
        return error("must not be empty".into());
    }
    if path.contains("://") && !crate::storage::is_url(path) {
        return error(format!("`{path}` is neither a local path nor a URL"));
    }
    Ok(())
}

/// Checks a file sink's `partition_by` setting: no column listed twice. (Whether each column
/// exists is checked against the stream schemas when the sink opens.)
///
/// Errors: [`PluginError::Config`] at `partition_by[i]`, the second occurrence.
pub fn check_partition_by(partition_by: &[String]) -> Result<()> {
    for (i, column) in partition_by.iter().enumerate() {
        if partition_by[..i].contains(column) {
            return Err(PluginError::Config {
                path: format!("partition_by[{i}]"),
                message: format!("`{column}` is listed twice"),
            });
        }
    }
    Ok(())
}

/// A file sink: partitions, rolls, stages and publishes the files of a [`FileFormat`]. See
/// the [module docs](self).
pub struct FileSink<F: FileFormat> {
    format: F,
    destination: Destination,
    roll: RollPolicy,
    max_open_files: usize,
    partition_by: Vec<String>,
    staging: Staging,
    /// Schema and partitioning of every stream declared or seen.
    streams: HashMap<String, StreamPlan>,
    /// Open files by (stream, partition directory relative to the stream's directory).
    open: OpenFiles<(String, String), OpenFile<F::Writer>>,
}

struct StreamPlan {
    schema: SchemaRef,
    partitioner: Partitioner,
}

struct OpenFile<W> {
    writer: W,
    staged: StagedFile,
    rows: u64,
}

impl<F: FileFormat> FileSink<F> {
    /// Opens a sink of `format` writing to `destination` (usually [`Destination::open`] of
    /// the config's `path`) for the streams of `ctx`. Nothing is created in the output until
    /// the first row arrives.
    ///
    /// Errors: [`PluginError::Config`] for a `partition_by` column a declared stream lacks or
    /// cannot partition by (at `partition_by[i]`); [`PluginError::Other`] for a declared
    /// stream whose name cannot be a directory.
    pub fn open(format: F, destination: Destination, options: FileSinkOptions, ctx: &SinkContext) -> Result<Self> {
        let mut streams = HashMap::new();
        for decl in &ctx.streams {
            check_stream_name(&decl.name)?;
            let partitioner = Partitioner::new(&decl.name, &decl.schema, &options.partition_by)?;
            streams.insert(decl.name.clone(), StreamPlan { schema: decl.schema.clone(), partitioner });
        }
        Ok(FileSink {
            format,
            staging: Staging::new(destination.root(), &ctx.run_id),
            destination,
            roll: options.roll,
            max_open_files: options.max_open_files.max(1),
            partition_by: options.partition_by,
            streams,
            open: OpenFiles::default(),
        })
    }

    fn write_blocking(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        if !self.streams.contains_key(stream) {
            // A stream the context did not declare: take its schema from its first batch.
            let schema = batch.schema();
            let partitioner = Partitioner::new(stream, &schema, &self.partition_by)?;
            self.streams.insert(stream.to_string(), StreamPlan { schema, partitioner });
        }
        let plan = &self.streams[stream];
        let groups = if batch.schema().fields() == plan.schema.fields() {
            plan.partitioner.split(batch)?
        } else if F::STRICT_SCHEMA {
            return Err(PluginError::other(format!(
                "{} sink: a batch of stream `{stream}` does not have the stream's declared schema",
                F::NAME
            )));
        } else {
            Partitioner::new(stream, &batch.schema(), &self.partition_by)?.split(batch)?
        };
        for (dir, rows) in groups {
            self.write_group((stream.to_string(), dir), &rows)?;
        }
        Ok(())
    }

    /// Writes rows of one partition, rolling files over at the limits.
    fn write_group(&mut self, key: (String, String), batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.open.contains(&key) {
                self.make_room()?;
                let file = self.create(&key, &batch.schema())?;
                self.open.insert(key.clone(), file);
            }
            let file = self.open.touch(&key).expect("opened above");
            let take = self.roll.rows_to_take(file.rows, batch.num_rows() - offset);
            file.writer.write(&batch.slice(offset, take))?;
            file.rows += take as u64;
            offset += take;
            if self.roll.is_full(file.rows, file.writer.size()) {
                self.close(&key)?;
            }
            self.bound_buffers()?;
        }
        Ok(())
    }

    /// Keeps the open files' buffers within [`FileFormat::buffer_budget`] together: the file
    /// holding the most writes its buffer out until they fit.
    fn bound_buffers(&mut self) -> Result<()> {
        let Some(budget) = self.format.buffer_budget() else {
            return Ok(());
        };
        while self.open.sum_by(|f| f.writer.buffered_bytes()) > budget {
            let Some((key, held)) = self.open.largest_by(|f| f.writer.buffered_bytes()) else {
                break;
            };
            if held == 0 {
                break;
            }
            self.open.get_mut(&key).expect("the largest is open").writer.flush_buffered()?;
        }
        Ok(())
    }

    fn create(&mut self, (stream, dir): &(String, String), schema: &SchemaRef) -> Result<OpenFile<F::Writer>> {
        let mut path = self.destination.root().join(stream);
        if !dir.is_empty() {
            path.push(dir);
        }
        let (file, staged) = self.staging.create(&path, F::EXTENSION)?;
        let writer = self.format.create(file, &staged.temp, schema)?;
        Ok(OpenFile { writer, staged, rows: 0 })
    }

    /// Closes the least recently written files until one more may be opened.
    fn make_room(&mut self) -> Result<()> {
        while self.open.len() >= self.max_open_files {
            let oldest = self.open.least_recent().expect("max_open_files is at least 1, so one file is open");
            self.close(&oldest)?;
        }
        Ok(())
    }

    /// Finishes an open file, fsyncs it and stages it for publishing.
    fn close(&mut self, key: &(String, String)) -> Result<()> {
        let Some(file) = self.open.remove(key) else {
            return Ok(());
        };
        let inner = file.writer.finish()?;
        inner.sync_all().map_err(|e| PluginError::io(format!("syncing {}", file.staged.temp.display()), e))?;
        self.staging.ready(file.staged, file.rows);
        Ok(())
    }

    /// Closes every open file and publishes the ready ones under their final names (in the
    /// output directory, or in the spool directory for the caller to upload).
    fn commit_blocking(&mut self) -> Result<Vec<PathBuf>> {
        for key in self.open.keys() {
            self.close(&key)?;
        }
        let published = self.staging.publish()?;
        tracing::debug!(sink = F::NAME, files = published.len(), output = %self.destination.describe(), "file sink committed");
        Ok(published)
    }

    fn abort_blocking(&mut self) -> Result<()> {
        // Drop the writers (and their file handles) without finishing them, then delete.
        self.open.clear();
        let deleted = self.staging.discard()?;
        tracing::debug!(sink = F::NAME, files = deleted, output = %self.destination.describe(), "file sink aborted");
        Ok(())
    }
}

#[async_trait]
impl<F: FileFormat> Sink for FileSink<F> {
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()> {
        if !self.streams.contains_key(stream) {
            check_stream_name(stream)?;
        }
        if batch.num_rows() == 0 {
            return Ok(());
        }
        run_blocking(|| self.write_blocking(stream, batch))
    }

    async fn commit(&mut self, _checkpoint: &Checkpoint) -> Result<()> {
        let published = run_blocking(|| self.commit_blocking())?;
        self.destination.upload(published).await
    }

    async fn abort(&mut self) -> Result<()> {
        run_blocking(|| self.abort_blocking())
    }

    fn stats(&self) -> SinkStats {
        self.staging.stats()
    }
}

impl<F: FileFormat> Drop for FileSink<F> {
    /// A sink dropped with uncommitted files (the engine did not get to `abort`) removes them,
    /// so no temporary file outlives the run that wrote it.
    fn drop(&mut self) {
        if self.staging.has_outstanding() {
            tracing::warn!(sink = F::NAME, output = %self.destination.describe(), "file sink dropped without commit or abort; deleting its uncommitted files");
            let _ = self.abort_blocking();
        }
    }
}

#[cfg(test)]
mod tests;
