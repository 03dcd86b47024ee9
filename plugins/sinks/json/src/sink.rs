//! The JSON Lines encoder of the file-sink core: one buffered file per open file, rows encoded
//! by `pipe_plugin_sdk::json_rows` (docs/design.md §3).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pipe_plugin_sdk::file_sink::publish::Destination;
use pipe_plugin_sdk::file_sink::{FileFormat, FileSink, FileSinkOptions, FileWriter, roll::RollPolicy};
use pipe_plugin_sdk::json_rows::encode_rows;
use pipe_plugin_sdk::{PluginError, Result, SinkContext};

use crate::JsonConfig;

/// Most files open at once (one per stream and partition being written); opening one more
/// closes the least recently written early. Each costs a 1 MiB write buffer.
pub const MAX_OPEN_FILES: usize = 16;

/// The JSON Lines sink: the file-sink core with [`JsonLines`] files. See the [crate docs](crate).
pub type JsonSink = FileSink<JsonLines>;

/// Opens the json sink for the streams of `ctx`. Nothing is created in the output until the
/// first row arrives.
///
/// Errors: [`PluginError::Config`] for an invalid value (see [`JsonConfig::validate`]), a
/// `partition_by` column a declared stream lacks or cannot partition by, or a `path` that
/// exists and is not a directory; [`PluginError::Other`] for a declared stream whose name
/// cannot be a directory.
pub fn open(cfg: JsonConfig, ctx: SinkContext) -> Result<JsonSink> {
    cfg.validate()?;
    let destination = Destination::open(&cfg.path, "path")?;
    let options = FileSinkOptions {
        roll: RollPolicy { max_file_rows: cfg.max_file_rows, max_file_bytes: cfg.max_file_bytes },
        max_open_files: MAX_OPEN_FILES,
        partition_by: cfg.partition_by,
    };
    FileSink::open(JsonLines, destination, options, &ctx)
}

/// JSON Lines files: one object per row, every column on every line.
pub struct JsonLines;

/// One open JSON Lines file.
pub struct JsonLinesFile {
    out: BufWriter<File>,
    /// Bytes encoded into the file so far (written or still buffered).
    bytes: u64,
    /// Reused encoding buffer, so a batch costs no allocation once warmed up.
    buf: Vec<u8>,
    path: PathBuf,
}

impl FileFormat for JsonLines {
    type Writer = JsonLinesFile;
    const NAME: &'static str = "json";
    const EXTENSION: &'static str = "jsonl";
    // Each line carries its own keys, so a batch need not have the declared schema.
    const STRICT_SCHEMA: bool = false;

    fn create(&self, file: File, path: &Path, _schema: &SchemaRef) -> Result<JsonLinesFile> {
        Ok(JsonLinesFile {
            out: BufWriter::with_capacity(1 << 20, file),
            bytes: 0,
            buf: Vec::new(),
            path: path.to_path_buf(),
        })
    }
}

impl FileWriter for JsonLinesFile {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.buf.clear();
        encode_rows(batch, &mut self.buf)?;
        self.out.write_all(&self.buf).map_err(|e| write_error(&self.path, e))?;
        self.bytes += self.buf.len() as u64;
        Ok(())
    }

    fn size(&self) -> u64 {
        self.bytes
    }

    fn finish(self) -> Result<File> {
        let path = self.path;
        self.out.into_inner().map_err(|e| write_error(&path, e.into_error()))
    }
}

fn write_error(path: &Path, e: std::io::Error) -> PluginError {
    PluginError::io(format!("writing {}", path.display()), e)
}
