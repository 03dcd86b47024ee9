//! The Parquet encoder of the file-sink core: one `ArrowWriter` per open file, zstd or
//! uncompressed, page statistics, the stream's Arrow schema embedded.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression as Codec, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use pipe_plugin_sdk::file_sink::publish::Destination;
use pipe_plugin_sdk::file_sink::{FileFormat, FileSink, FileSinkOptions, FileWriter, roll::RollPolicy};
use pipe_plugin_sdk::{PluginError, Result, SinkContext};

use crate::{Compression, ParquetConfig};

/// The Parquet sink: the file-sink core with [`Parquet`] files. See the [crate docs](crate).
pub type ParquetSink = FileSink<Parquet>;

/// Opens the parquet sink for the streams of `ctx`. Nothing is created in the output until the
/// first row arrives.
///
/// Errors: [`PluginError::Config`] for an invalid value (see [`ParquetConfig::validate`]), a
/// `partition_by` column a declared stream lacks or cannot partition by, or a `path` that
/// exists and is not a directory; [`PluginError::Other`] for a declared stream whose name
/// cannot be a directory.
pub fn open(cfg: ParquetConfig, ctx: SinkContext) -> Result<ParquetSink> {
    cfg.validate()?;
    let codec = match cfg.compression {
        Compression::Zstd => Codec::ZSTD(ZstdLevel::try_new(3).map_err(parquet_error)?),
        Compression::None => Codec::UNCOMPRESSED,
    };
    let budget = row_group_bytes(&cfg);
    let mut props = WriterProperties::builder();
    for column in UNIQUE_PER_ROW {
        props = props.set_column_dictionary_enabled(ColumnPath::from(*column), false);
    }
    let props = props
        .set_compression(codec)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        .set_max_row_group_bytes(Some(budget))
        .build();
    let destination = Destination::open(&cfg.path, "path")?;
    let options = FileSinkOptions {
        roll: RollPolicy { max_file_rows: cfg.max_file_rows, max_file_bytes: cfg.max_file_bytes },
        max_open_files: cfg.max_open_files,
        partition_by: cfg.partition_by,
    };
    FileSink::open(Parquet { props, row_group_bytes: budget }, destination, options, &ctx)
}

/// Columns of the canonical streams whose values are (nearly) all distinct: dictionary encoding
/// cannot pay off there, and until it gives up (at the dictionary page limit, 1 MiB, in every
/// row group anew) it keeps each value twice in memory (docs/running.md, Memory).
const UNIQUE_PER_ROW: &[&str] = &["raw", "text", "ciphertext", "message_id"];

/// `row_group_bytes` as the writer takes it (at least 1).
fn row_group_bytes(cfg: &ParquetConfig) -> usize {
    usize::try_from(cfg.row_group_bytes).unwrap_or(usize::MAX).max(1)
}

/// Rows written at a time: the row group's memory is checked against `row_group_bytes` after
/// each slice, so it passes the budget by at most one slice (about 1 MiB of giosg messages).
const SLICE_ROWS: usize = 1024;

/// Parquet files with fixed writer properties.
pub struct Parquet {
    props: WriterProperties,
    /// The row group's memory budget (`row_group_bytes`).
    row_group_bytes: usize,
}

/// One open Parquet file.
pub struct ParquetFile {
    writer: ArrowWriter<File>,
    /// The row group is flushed once the writer's memory passes this.
    row_group_bytes: usize,
    /// The temporary path, for messages.
    path: String,
}

impl FileFormat for Parquet {
    type Writer = ParquetFile;
    const NAME: &'static str = "parquet";
    const EXTENSION: &'static str = "parquet";
    // A Parquet file has one schema: every batch must have its stream's.
    const STRICT_SCHEMA: bool = true;

    fn create(&self, file: File, path: &Path, schema: &SchemaRef) -> Result<ParquetFile> {
        let writer = ArrowWriter::try_new(file, schema.clone(), Some(self.props.clone())).map_err(parquet_error)?;
        Ok(ParquetFile { writer, row_group_bytes: self.row_group_bytes, path: path.display().to_string() })
    }

    /// `row_group_bytes` bounds the row groups being filled in all open files together.
    fn buffer_budget(&self) -> Option<usize> {
        Some(self.row_group_bytes)
    }
}

impl FileWriter for ParquetFile {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let error = |e: ParquetError| PluginError::other(format!("writing {}: {e}", self.path));
        // The writer splits at the encoded size (`max_row_group_bytes`); what it holds in
        // memory (unencoded dictionary keys, page buffers) can be larger: bound that too, and
        // check it every `SLICE_ROWS` rows, so a large batch does not carry the row group far
        // past the budget before the check.
        let mut offset = 0;
        while offset < batch.num_rows() {
            let len = SLICE_ROWS.min(batch.num_rows() - offset);
            self.writer.write(&batch.slice(offset, len)).map_err(error)?;
            offset += len;
            if self.writer.memory_size() >= self.row_group_bytes {
                self.writer.flush().map_err(error)?;
            }
        }
        Ok(())
    }

    /// Bytes written plus the encoded size of the row group in memory.
    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }

    /// The row group being filled, in the writer's memory.
    fn buffered_bytes(&self) -> usize {
        self.writer.memory_size()
    }

    /// Ends the row group being filled.
    fn flush_buffered(&mut self) -> Result<()> {
        self.writer.flush().map_err(|e| PluginError::other(format!("writing {}: {e}", self.path)))
    }

    fn finish(self) -> Result<File> {
        let path = self.path;
        self.writer.into_inner().map_err(|e| PluginError::other(format!("closing {path}: {e}")))
    }
}

fn parquet_error(e: ParquetError) -> PluginError {
    PluginError::other(format!("parquet: {e}"))
}
