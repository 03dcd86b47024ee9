//! Reading our Parquet output back, with pyarrow: the one reader the end-to-end tests compare
//! with the simulators' ground truth. Rust never reads back `pipe`'s own Parquet here, so a bug
//! shared by our writer and a Rust reader cannot hide.
//!
//! ```no_run
//! use pipe_tests::Parquet;
//! # let dir = std::path::Path::new("out");
//! let messages = Parquet::at(dir.join("messages")).columns(&["conversation_id", "message_id"]).read();
//! assert_eq!(messages.rows[0]["message_id"], "m-1");
//! ```
//!
//! Canonical encoding of a row (one JSON object, columns in dataset order):
//! - timestamps: integer microseconds since the Unix epoch, UTC. A timestamp column of another
//!   unit or time zone fails the read (docs/design.md §3 makes every one `Timestamp(µs, UTC)`);
//! - lists: JSON arrays, in stored order;
//! - maps: JSON objects (a map repeating a key fails the read: it would not survive as an
//!   object, and JSON Lines output writes maps as objects too);
//! - structs: objects; binary: lowercase hex; strings, integers, booleans, floats: themselves;
//!   anything else: Python's `str()` of it.
//!
//! Rows come sorted by their values, column by column (nulls first), so equal datasets give
//! equal `rows`. Hive partition folders (`date=2026-01-02/`) become columns, as in any Hive
//! reader; files and folders starting with `.` or `_` (a sink's in-progress files) are not
//! read, as in any Parquet dataset reader.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Value, json};

/// The reader, run as `python -c` by [`crate::python_json`].
const SCRIPT: &str = include_str!("read_back.py");

/// Tables by stream name (or by path), from [`Parquet::read_streams`].
pub type Streams = BTreeMap<String, Table>;

/// What to read: one or more Parquet datasets (a stream's directory each), which columns, and
/// whether a missing dataset is an error. Every dataset of one request is read by one Python
/// process (a process costs about a third of a second: pyarrow's import).
#[derive(Debug, Clone)]
pub struct Parquet {
    paths: Vec<PathBuf>,
    names: Vec<String>,
    columns: Option<Vec<String>>,
    without: Vec<String>,
    allow_missing: bool,
}

/// One dataset as pyarrow read it.
#[derive(Debug, Clone, Deserialize)]
pub struct Table {
    /// The dataset's directory.
    pub path: PathBuf,
    /// Parquet files read (0 for a missing dataset read with [`Parquet::allow_missing`]).
    pub files: usize,
    /// The dataset's schema, every column whatever was selected: `(name, type, nullable)` with
    /// pyarrow's type names (`string`, `uint32`, `timestamp[us, tz=UTC]`,
    /// `list<item: string>`, and maps as `map<string, string>`, without entry field names).
    pub schema: Vec<(String, String, bool)>,
    /// pyarrow's full text of the schema without metadata (child field names and nullability
    /// included): equal texts mean equal Arrow schemas.
    pub schema_text: String,
    /// The rows in the canonical encoding (see the module docs), sorted.
    pub rows: Vec<Value>,
}

impl Parquet {
    /// The dataset at `path`, e.g. `out/messages`.
    pub fn at(path: impl AsRef<Path>) -> Self {
        Self::each([path])
    }

    /// Several datasets read by one process (e.g. one per shard's output); see
    /// [`Parquet::read_each`].
    pub fn each<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Self {
        let paths: Vec<PathBuf> = paths.into_iter().map(|p| p.as_ref().to_path_buf()).collect();
        let names = paths.iter().map(|p| p.display().to_string()).collect();
        Parquet { paths, names, columns: None, without: Vec::new(), allow_missing: false }
    }

    /// The datasets `root/<stream>` of each of `streams`, e.g. `messages` and `conversations`
    /// under a sink's `path`; see [`Parquet::read_streams`].
    pub fn streams(root: impl AsRef<Path>, streams: &[&str]) -> Self {
        let mut p = Self::each(streams.iter().map(|s| root.as_ref().join(s)));
        p.names = streams.iter().map(|s| s.to_string()).collect();
        p
    }

    /// Reads only these columns, in this order (which is also the sort order of the rows).
    /// With no column, every row is `{}`: a row count.
    pub fn columns(mut self, columns: &[&str]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.to_string()).collect());
        self
    }

    /// Leaves these columns out (e.g. `extracted_at`, the fetch time, when two runs are
    /// compared). A column that does not exist fails the read.
    pub fn without(mut self, columns: &[&str]) -> Self {
        self.without = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// A dataset that does not exist, or has no Parquet file, reads as empty (a stream a run
    /// never wrote) instead of failing.
    pub fn allow_missing(mut self) -> Self {
        self.allow_missing = true;
        self
    }

    /// Reads the one dataset. Panics, with pyarrow's message, when it cannot be read.
    pub fn read(self) -> Table {
        assert_eq!(self.paths.len(), 1, "Parquet::read reads one dataset; use read_each");
        self.read_each().pop().expect("one table")
    }

    /// Reads every dataset, in the order given. Panics, with pyarrow's message, when one
    /// cannot be read.
    pub fn read_each(self) -> Vec<Table> {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        let spec = json!({
            "paths": paths,
            "columns": self.columns,
            "without": self.without,
            "allow_missing": self.allow_missing,
        });
        let out = crate::python_json(SCRIPT, &[&spec.to_string()]);
        serde_json::from_value(out).expect("read_back.py prints a list of tables")
    }

    /// Reads every dataset, keyed by stream name (with [`Parquet::streams`]) or by path.
    pub fn read_streams(self) -> Streams {
        let names = self.names.clone();
        names.into_iter().zip(self.read_each()).collect()
    }
}

impl Table {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the dataset has no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The values of `column`, row by row (`Value::Null` where a row lacks it).
    pub fn column(&self, column: &str) -> Vec<&Value> {
        self.rows.iter().map(|r| &r[column]).collect()
    }
}
