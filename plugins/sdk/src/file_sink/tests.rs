//! The core with a minimal format (one JSON object per row), on real files.

use std::io::Write as _;
use std::sync::Arc;

use arrow_array::{StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde_json::json;

use super::*;
use crate::StreamDecl;

const DAY: i64 = 86_400_000_000;

struct Lines;

struct LinesWriter {
    file: File,
    bytes: u64,
}

impl FileFormat for Lines {
    type Writer = LinesWriter;
    const NAME: &'static str = "lines";
    const EXTENSION: &'static str = "jsonl";
    const STRICT_SCHEMA: bool = true;

    fn create(&self, file: File, _path: &Path, _schema: &SchemaRef) -> Result<LinesWriter> {
        Ok(LinesWriter { file, bytes: 0 })
    }
}

impl FileWriter for LinesWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut out = Vec::new();
        crate::json_rows::encode_rows(batch, &mut out)?;
        self.file.write_all(&out).map_err(|e| PluginError::io("writing", e))?;
        self.bytes += out.len() as u64;
        Ok(())
    }
    fn size(&self) -> u64 {
        self.bytes
    }
    fn finish(self) -> Result<File> {
        Ok(self.file)
    }
}

/// Like [`Lines`], but accepts batches of any schema.
struct LooseLines;

impl FileFormat for LooseLines {
    type Writer = LinesWriter;
    const NAME: &'static str = "loose";
    const EXTENSION: &'static str = "jsonl";
    const STRICT_SCHEMA: bool = false;

    fn create(&self, file: File, path: &Path, schema: &SchemaRef) -> Result<LinesWriter> {
        Lines.create(file, path, schema)
    }
}

/// Like [`Lines`], but holding what it is given in memory until `flush_buffered` or `finish`
/// (as a Parquet row group is), under a shared `budget`; `held[i]` is what the `i`-th file
/// created holds now, and `flushes` counts the early writes.
struct Held {
    budget: Option<usize>,
    held: Arc<std::sync::Mutex<Vec<usize>>>,
    flushes: Arc<std::sync::atomic::AtomicUsize>,
}

struct HeldWriter {
    file: File,
    buffer: Vec<u8>,
    written: u64,
    slot: usize,
    held: Arc<std::sync::Mutex<Vec<usize>>>,
    flushes: Arc<std::sync::atomic::AtomicUsize>,
}

impl FileFormat for Held {
    type Writer = HeldWriter;
    const NAME: &'static str = "held";
    const EXTENSION: &'static str = "jsonl";
    const STRICT_SCHEMA: bool = true;

    fn create(&self, file: File, _path: &Path, _schema: &SchemaRef) -> Result<HeldWriter> {
        let mut held = self.held.lock().unwrap();
        held.push(0);
        let (held_all, flushes) = (self.held.clone(), self.flushes.clone());
        Ok(HeldWriter { file, buffer: Vec::new(), written: 0, slot: held.len() - 1, held: held_all, flushes })
    }

    fn buffer_budget(&self) -> Option<usize> {
        self.budget
    }
}

impl HeldWriter {
    fn write_out(&mut self) -> Result<()> {
        self.file.write_all(&self.buffer).map_err(|e| PluginError::io("writing", e))?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        self.held.lock().unwrap()[self.slot] = 0;
        Ok(())
    }
}

impl FileWriter for HeldWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        crate::json_rows::encode_rows(batch, &mut self.buffer)?;
        self.held.lock().unwrap()[self.slot] = self.buffer.len();
        Ok(())
    }
    fn size(&self) -> u64 {
        self.written + self.buffer.len() as u64
    }
    fn buffered_bytes(&self) -> usize {
        self.buffer.len()
    }
    fn flush_buffered(&mut self) -> Result<()> {
        self.flushes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.write_out()
    }
    fn finish(mut self) -> Result<File> {
        self.write_out()?;
        Ok(self.file)
    }
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("vendor", DataType::Utf8, true),
        Field::new("sent_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), false),
    ]))
}

/// Rows `range`: ids `m<i>`, vendor `a` or `b` by parity, one per day from the epoch.
fn rows(range: std::ops::Range<i64>) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from_iter_values(range.clone().map(|i| format!("m{i}")))),
            Arc::new(StringArray::from_iter_values(range.clone().map(|i| if i % 2 == 0 { "a" } else { "b" }))),
            Arc::new(TimestampMicrosecondArray::from_iter_values(range.map(|i| i * DAY)).with_timezone("UTC")),
        ],
    )
    .unwrap()
}

fn ctx() -> SinkContext {
    SinkContext {
        pipeline: "t".into(),
        streams: vec![StreamDecl { name: "messages".into(), schema: schema() }],
        run_id: "run".into(),
    }
}

struct Options {
    path: String,
    roll: RollPolicy,
    max_open_files: usize,
    partition_by: Vec<String>,
}

fn options(path: &str) -> Options {
    Options {
        path: path.into(),
        roll: RollPolicy { max_file_rows: 1_000, max_file_bytes: 1 << 30 },
        max_open_files: 16,
        partition_by: Vec::new(),
    }
}

fn try_open<F: FileFormat>(format: F, o: Options, ctx: &SinkContext) -> Result<FileSink<F>> {
    let destination = Destination::open(&o.path, "path")?;
    let options = FileSinkOptions { roll: o.roll, max_open_files: o.max_open_files, partition_by: o.partition_by };
    FileSink::open(format, destination, options, ctx)
}

fn open<F: FileFormat>(format: F, o: Options) -> FileSink<F> {
    try_open(format, o, &ctx()).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint { state: json!({}) }
}

/// Every file below `dir`, relative, sorted (hidden ones too).
fn files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// The `id`s in the published files below `dir`, file by file.
fn ids(dir: &Path) -> Vec<Vec<String>> {
    files(dir)
        .iter()
        .filter(|f| f.ends_with(".jsonl"))
        .map(|f| {
            std::fs::read_to_string(dir.join(f))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["id"].as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn files_are_hidden_until_commit_then_renamed() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(Lines, options(dir.path().to_str().unwrap()));
    sink.write("messages", &rows(0..3)).await.unwrap();
    assert_eq!(files(dir.path()), vec!["messages/.part-run-00000.jsonl.inprogress"]);
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(files(dir.path()), vec!["messages/part-run-00000.jsonl"]);
    assert_eq!(ids(dir.path()), vec![vec!["m0", "m1", "m2"]]);
    assert_eq!((sink.stats().files, sink.stats().rows), (1, 3));
}

#[tokio::test]
async fn rolls_at_exact_row_counts_and_at_the_byte_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path().join("rows").to_str().unwrap());
    o.roll.max_file_rows = 4;
    let mut sink = open(Lines, o);
    sink.write("messages", &rows(0..3)).await.unwrap();
    sink.write("messages", &rows(3..10)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    let sizes: Vec<usize> = ids(&dir.path().join("rows")).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![4, 4, 2]);

    let mut o = options(dir.path().join("bytes").to_str().unwrap());
    o.roll.max_file_bytes = 1;
    let mut sink = open(Lines, o);
    for i in 0..3 {
        sink.write("messages", &rows(i * 2..i * 2 + 2)).await.unwrap();
    }
    sink.commit(&checkpoint()).await.unwrap();
    let sizes: Vec<usize> = ids(&dir.path().join("bytes")).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 2], "each batch overshoots the limit and closes its file");
}

#[tokio::test]
async fn partitions_into_hive_directories_keeping_the_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path().to_str().unwrap());
    o.partition_by = vec!["vendor".into(), "date".into()];
    let mut sink = open(Lines, o);
    sink.write("messages", &rows(0..3)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(
        files(dir.path()),
        vec![
            "messages/vendor=a/date=1970-01-01/part-run-00000.jsonl",
            "messages/vendor=a/date=1970-01-03/part-run-00002.jsonl",
            "messages/vendor=b/date=1970-01-02/part-run-00001.jsonl",
        ]
    );
    let line =
        std::fs::read_to_string(dir.path().join("messages/vendor=b/date=1970-01-02/part-run-00001.jsonl")).unwrap();
    assert_eq!(line, "{\"id\":\"m1\",\"vendor\":\"b\",\"sent_at\":\"1970-01-02T00:00:00.000000Z\"}\n");
}

#[tokio::test]
async fn bounded_open_files_close_the_least_recent_early() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path().to_str().unwrap());
    o.partition_by = vec!["vendor".into()];
    o.max_open_files = 1;
    let mut sink = open(Lines, o);
    for i in 0..4 {
        sink.write("messages", &rows(i..i + 1)).await.unwrap();
    }
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(ids(dir.path()).concat().len(), 4);
    assert_eq!(sink.stats().files, 4, "every switch of vendor closed the other vendor's file");
}

#[tokio::test]
async fn open_files_hold_at_most_the_budget_together_and_lose_nothing() {
    // Two partitions written in turn, each batch ~5 rows (~400 bytes) to each: per file the
    // buffers would pass the budget only after several batches, together after two.
    for budget in [None, Some(1_000)] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = options(dir.path().to_str().unwrap());
        o.partition_by = vec!["vendor".into()];
        let held = Arc::new(std::sync::Mutex::new(Vec::new()));
        let flushes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut sink = open(Held { budget, held: held.clone(), flushes: flushes.clone() }, o);
        let mut most = 0;
        for i in 0..40 {
            sink.write("messages", &rows(i * 10..i * 10 + 10)).await.unwrap();
            most = most.max(held.lock().unwrap().iter().sum::<usize>());
        }
        sink.commit(&checkpoint()).await.unwrap();
        let mut got = ids(dir.path()).concat();
        got.sort();
        let mut want: Vec<String> = (0..400).map(|i| format!("m{i}")).collect();
        want.sort();
        assert_eq!(got, want, "every row once, in whichever row group");
        let flushed = flushes.load(std::sync::atomic::Ordering::Relaxed);
        match budget {
            None => assert!(most > 20_000 && flushed == 0, "unbounded: {most} bytes held, {flushed} early writes"),
            Some(b) => {
                assert!(most <= b, "{most} bytes held together, budget {b}");
                assert!(flushed >= 20, "the largest buffer was written out early: {flushed} times");
            }
        }
    }
}

#[tokio::test]
async fn abort_and_drop_leave_only_committed_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(dir.path().to_str().unwrap());
    o.roll.max_file_rows = 2;
    let path = o.path.clone();
    let mut sink = open(Lines, o);
    sink.write("messages", &rows(0..2)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    let committed = files(dir.path());
    sink.write("messages", &rows(2..7)).await.unwrap(); // two closed files and one open
    assert_eq!(files(dir.path()).len(), 4);
    sink.abort().await.unwrap();
    assert_eq!(files(dir.path()), committed);

    let mut dropped = try_open(Lines, options(&path), &SinkContext { run_id: "other".into(), ..ctx() }).unwrap();
    dropped.write("messages", &rows(0..3)).await.unwrap();
    drop(dropped);
    assert_eq!(files(dir.path()), committed);
}

#[tokio::test]
async fn strict_formats_refuse_a_foreign_schema_loose_ones_partition_it_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let other = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("vendor", DataType::Utf8, false),
            Field::new("id", DataType::Utf8, false),
        ])),
        vec![Arc::new(StringArray::from(vec!["a"])), Arc::new(StringArray::from(vec!["x"]))],
    )
    .unwrap();
    let mut strict = open(Lines, options(dir.path().join("s").to_str().unwrap()));
    let err = strict.write("messages", &other).await.unwrap_err();
    assert!(err.to_string().contains("lines sink: a batch of stream `messages`"), "{err}");
    strict.abort().await.unwrap();

    let mut o = options(dir.path().join("l").to_str().unwrap());
    o.partition_by = vec!["vendor".into()];
    let mut loose = open(LooseLines, o);
    loose.write("messages", &other).await.unwrap();
    loose.commit(&checkpoint()).await.unwrap();
    assert_eq!(files(&dir.path().join("l")), vec!["messages/vendor=a/part-run-00000.jsonl"]);
}

#[tokio::test]
async fn bad_partition_columns_and_stream_names_are_refused() {
    let mut o = options("unused");
    o.partition_by = vec!["vendor".into(), "nope".into()];
    let err = try_open(Lines, o, &ctx()).err().unwrap();
    assert!(matches!(err, PluginError::Config { ref path, .. } if path == "partition_by[1]"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(Lines, options(dir.path().to_str().unwrap()));
    assert!(sink.write("../x", &rows(0..1)).await.is_err());
    assert!(check_partition_by(&["a".into(), "a".into()]).is_err());
    assert!(check_path("").is_err() && check_path("://x").is_err() && check_path("s3://b/p").is_ok());
}

/// Object storage (`file://` here): published files appear in the store only at commit, and
/// an abort uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_gets_files_at_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/lake", dir.path().display());
    let mut o = options(&url);
    o.partition_by = vec!["date".into()];
    let mut sink = open(Lines, o);
    sink.write("messages", &rows(0..2)).await.unwrap();
    assert!(files(&dir.path().join("lake")).is_empty());
    sink.commit(&checkpoint()).await.unwrap();
    let published = files(&dir.path().join("lake"));
    assert_eq!(
        published,
        vec!["messages/date=1970-01-01/part-run-00000.jsonl", "messages/date=1970-01-02/part-run-00001.jsonl"]
    );
    sink.write("messages", &rows(2..4)).await.unwrap();
    sink.abort().await.unwrap();
    assert_eq!(files(&dir.path().join("lake")), published);
    assert_eq!(sink.stats().rows, 2);
}
