//! The parquet sink end to end: real files in a temporary directory, read back with parquet's
//! own reader.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationRow, ConversationsBuilder, MESSAGES, MessageRow, MessagesBuilder, SenderRole,
    conversations_schema, messages_schema,
};
use pipe_plugin_sdk::{Checkpoint, PluginError, PluginFactory, Sink, SinkContext, SinkStats, StreamDecl};
use serde_json::{Value, json};

const RUN_ID: &str = "20240101T000000Z-abc";
const SENT_AT: i64 = 1_686_739_774_406_000; // 2023-06-14T10:49:34.406Z
const HOUR: i64 = 3_600_000_000;

fn message(i: u32, sent_at: i64) -> MessageRow {
    MessageRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: format!("c{}", i / 10),
        message_id: format!("m{i}"),
        seq: i,
        sent_at,
        sender_role: if i.is_multiple_of(2) { SenderRole::Visitor } else { SenderRole::Agent },
        sender_id: Some(format!("s{i}")),
        sender_name: i.is_multiple_of(3).then(|| "Agent Smith".to_string()),
        message_type: "msg".into(),
        text: (!i.is_multiple_of(4)).then(|| format!("hello {i} 👋")),
        is_encrypted: i.is_multiple_of(4),
        ciphertext: i.is_multiple_of(4).then(|| "b64==".to_string()),
        tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
        attributes: BTreeMap::from([("k".to_string(), format!("v{i}"))]),
        raw: format!("{{\"id\":{i}}}"),
        extracted_at: SENT_AT,
    }
}

/// Messages `range`, one hour apart from `SENT_AT`.
fn messages(range: std::ops::Range<u32>) -> RecordBatch {
    let mut b = MessagesBuilder::new();
    for i in range {
        b.append(&message(i, SENT_AT + i as i64 * HOUR));
    }
    b.finish()
}

fn ctx() -> SinkContext {
    SinkContext {
        pipeline: "test".into(),
        streams: vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ],
        run_id: RUN_ID.into(),
    }
}

fn try_open(config: Value) -> Result<Box<dyn Sink>, PluginError> {
    let PluginFactory::Sink(factory) = pipe_plugin_parquet::descriptor().factory else { panic!("parquet is a sink") };
    factory(config, ctx())
}

fn open(dir: &Path, extra: Value) -> Box<dyn Sink> {
    let mut config = json!({"path": dir.to_str().unwrap()});
    config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    try_open(config).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint { state: json!({"cursor": 1}) }
}

/// Every file below `dir`, recursively, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    files(dir).into_iter().filter(|p| p.extension().is_some_and(|e| e == "parquet")).collect()
}

/// Reads one file with parquet's reader: its Arrow schema must be `schema` exactly.
fn read(path: &Path, schema: &arrow_schema::SchemaRef) -> Vec<RecordBatch> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap()).unwrap();
    assert_eq!(builder.schema(), schema, "schema of {}", path.display());
    builder.build().unwrap().map(Result::unwrap).collect()
}

fn read_all(dir: &Path, schema: &arrow_schema::SchemaRef) -> RecordBatch {
    let batches: Vec<RecordBatch> = parquet_files(dir).iter().flat_map(|p| read(p, schema)).collect();
    arrow_select::concat::concat_batches(schema, &batches).unwrap()
}

#[tokio::test]
async fn round_trips_messages_and_publishes_only_at_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({}));
    let (a, b) = (messages(0..7), messages(7..12));
    sink.write(MESSAGES, &a).await.unwrap();
    sink.write(MESSAGES, &b).await.unwrap();

    // Before the commit: one hidden temporary file, nothing a `*.parquet` glob matches.
    let before = files(dir.path());
    assert_eq!(before.len(), 1, "{before:?}");
    let name = before[0].file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(".part-") && name.ends_with(".parquet.inprogress"), "{name}");
    assert!(parquet_files(dir.path()).is_empty());

    sink.commit(&checkpoint()).await.unwrap();
    let published = files(dir.path());
    assert_eq!(published, vec![dir.path().join(MESSAGES).join(format!("part-{RUN_ID}-00000.parquet"))]);

    let schema = messages_schema();
    let back = read_all(dir.path(), &schema);
    let expected = arrow_select::concat::concat_batches(&schema, &[a, b]).unwrap();
    assert_eq!(back, expected);

    // zstd, with statistics.
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&published[0]).unwrap()).unwrap();
    let column = reader.metadata().row_group(0).column(0);
    assert!(matches!(column.compression(), Compression::ZSTD(_)));
    assert!(column.statistics().is_some());
}

#[tokio::test]
async fn round_trips_conversations_with_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({}));
    let mut b = ConversationsBuilder::new();
    b.append(&ConversationRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: "c1".into(),
        is_ended: Some(true),
        created_at: Some(SENT_AT),
        message_count: Some(3),
        agent_ids: vec!["a1".into()],
        variables: BTreeMap::from([("email".to_string(), "x@y".to_string())]),
        raw: "{}".into(),
        extracted_at: SENT_AT,
        ..Default::default()
    });
    b.append(&ConversationRow { vendor: "giosg".into(), conversation_id: "c2".into(), ..Default::default() });
    let batch = b.finish();
    sink.write(CONVERSATIONS, &batch).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(read_all(dir.path(), &conversations_schema()), batch);
}

#[tokio::test]
async fn rolls_over_at_max_file_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({"max_file_rows": 4}));
    sink.write(MESSAGES, &messages(0..3)).await.unwrap();
    sink.write(MESSAGES, &messages(3..10)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();

    let schema = messages_schema();
    let paths = parquet_files(dir.path());
    let rows: Vec<usize> = paths.iter().map(|p| read(p, &schema).iter().map(RecordBatch::num_rows).sum()).collect();
    assert_eq!(rows, vec![4, 4, 2]);
    assert_eq!(read_all(dir.path(), &schema), messages(0..10));
    let bytes: u64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
    assert_eq!(sink.stats(), SinkStats { files: 3, bytes, rows: 10 });
}

#[tokio::test]
async fn rolls_over_at_max_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny files and row groups: every batch overshoots the limit and closes its file.
    let mut sink = open(dir.path(), json!({"max_file_bytes": 1, "row_group_rows": 2}));
    for i in 0..3 {
        sink.write(MESSAGES, &messages(i * 3..i * 3 + 3)).await.unwrap();
    }
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(parquet_files(dir.path()).len(), 3);
    assert_eq!(read_all(dir.path(), &messages_schema()), messages(0..9));
}

#[tokio::test]
async fn partitions_by_vendor_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({"partition_by": ["vendor", "date"]}));
    // 40 hourly messages from 2023-06-14T10:49Z: three UTC dates.
    sink.write(MESSAGES, &messages(0..20)).await.unwrap();
    sink.write(MESSAGES, &messages(20..40)).await.unwrap();
    let mut b = ConversationsBuilder::new();
    b.append(&ConversationRow {
        vendor: "giosg".into(),
        conversation_id: "c1".into(),
        created_at: Some(SENT_AT),
        ..Default::default()
    });
    b.append(&ConversationRow { vendor: "giosg".into(), conversation_id: "c2".into(), ..Default::default() });
    sink.write(CONVERSATIONS, &b.finish()).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();

    let relative: Vec<String> = parquet_files(dir.path())
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().parent().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(
        relative,
        vec![
            "conversations/vendor=giosg/date=2023-06-14",
            "conversations/vendor=giosg/date=__HIVE_DEFAULT_PARTITION__",
            "messages/vendor=giosg/date=2023-06-14",
            "messages/vendor=giosg/date=2023-06-15",
            "messages/vendor=giosg/date=2023-06-16",
        ]
    );

    // Each file holds exactly the rows of its date, partition columns included.
    let schema = messages_schema();
    let mut total = 0;
    for path in parquet_files(&dir.path().join(MESSAGES)) {
        let date =
            path.parent().unwrap().file_name().unwrap().to_str().unwrap().strip_prefix("date=").unwrap().to_string();
        for batch in read(&path, &schema) {
            let sent = batch.column_by_name("sent_at").unwrap();
            let sent = sent.as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().unwrap();
            for v in sent.values() {
                let day = chrono::DateTime::from_timestamp_micros(*v).unwrap().date_naive().to_string();
                assert_eq!(day, date);
            }
            total += batch.num_rows();
        }
    }
    assert_eq!(total, 40);
}

#[tokio::test]
async fn bounded_open_files_close_early_but_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({"partition_by": ["date"], "max_open_files": 1}));
    // Alternating dates: each switch closes the other date's file.
    for i in 0..4u32 {
        let mut b = MessagesBuilder::new();
        b.append(&message(i, SENT_AT + (i % 2) as i64 * 24 * HOUR));
        sink.write(MESSAGES, &b.finish()).await.unwrap();
    }
    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(parquet_files(dir.path()).len(), 4);
    assert_eq!(read_all(dir.path(), &messages_schema()).num_rows(), 4);
}

#[tokio::test]
async fn abort_deletes_uncommitted_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({"max_file_rows": 2}));
    sink.write(MESSAGES, &messages(0..2)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    let committed = files(dir.path());
    sink.write(MESSAGES, &messages(2..7)).await.unwrap(); // two closed files and one open
    assert_eq!(files(dir.path()).len(), 4);
    sink.abort().await.unwrap();
    assert_eq!(files(dir.path()), committed);
    assert_eq!((sink.stats().files, sink.stats().rows), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_only_add_files_on_a_multi_threaded_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"path": dir.path().to_str().unwrap()});
    let mut first = try_open(config.clone()).unwrap();
    first.write(MESSAGES, &messages(0..3)).await.unwrap();
    first.commit(&checkpoint()).await.unwrap();
    let committed = files(dir.path());
    let bytes = std::fs::read(&committed[0]).unwrap();

    // The same run id again: its first file name exists, so writing is refused.
    let mut again = try_open(config).unwrap();
    let err = again.write(MESSAGES, &messages(3..4)).await.unwrap_err();
    assert!(err.to_string().contains("exists already"), "{err}");
    again.abort().await.unwrap();
    assert_eq!(files(dir.path()), committed);
    assert_eq!(std::fs::read(&committed[0]).unwrap(), bytes);
}

#[tokio::test]
async fn dropping_without_commit_removes_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(dir.path(), json!({}));
    sink.write(MESSAGES, &messages(0..3)).await.unwrap();
    drop(sink);
    assert!(files(dir.path()).is_empty());
}

#[test]
fn config_errors_name_the_key() {
    let path = |e: PluginError| match e {
        PluginError::Config { path, .. } => path,
        other => panic!("not a config error: {other}"),
    };
    let err = try_open(json!({"path": "x", "partition_by": ["vendor", "nope"]})).err().unwrap();
    assert_eq!(path(err), "partition_by[1]");
    let err = try_open(json!({"path": "x", "compression": "snappy"})).err().unwrap();
    assert_eq!(path(err), "compression");
    let err = try_open(json!({"path": "x", "max_file_rows": 0})).err().unwrap();
    assert_eq!(path(err), "max_file_rows");
    let err = try_open(json!({"path": "x", "partition_by": ["date", "date"]})).err().unwrap();
    assert_eq!(path(err), "partition_by[1]");
    let err = try_open(json!({"path": "x", "unknown": 1})).err().unwrap();
    assert!(matches!(err, PluginError::Config { .. }));

    let d = pipe_plugin_parquet::descriptor();
    assert!((d.check_config)(&json!({"path": "x", "partition_by": ["vendor", "date"]})).is_ok());
    assert!((d.check_config)(&json!({"path": "x", "compression": "gzip"})).is_err());
    let schema = (d.config_schema)();
    assert_eq!(schema["required"], json!(["path"]));
    for key in [
        "path",
        "compression",
        "max_file_rows",
        "max_file_bytes",
        "row_group_rows",
        "row_group_bytes",
        "partition_by",
        "max_open_files",
    ] {
        assert!(schema["properties"][key].is_object(), "{key} missing from the schema");
    }
}

/// An object storage URL (`file://` here; `s3://` against moto in tests/tests/e2e/scale.rs):
/// files are spooled locally and appear under their final keys only at commit; an abort
/// uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_urls_publish_complete_files_at_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/lake", dir.path().display());
    let mut sink = try_open(json!({"path": url, "partition_by": ["date"]})).unwrap();
    sink.write(MESSAGES, &messages(0..30)).await.unwrap();
    assert!(files(dir.path()).is_empty(), "nothing is in the store before a commit");
    sink.commit(&checkpoint()).await.unwrap();
    let published = files(&dir.path().join("lake"));
    assert!(!published.is_empty());
    assert!(published.iter().all(|p| p.extension().is_some_and(|e| e == "parquet")), "{published:?}");
    assert!(published.iter().all(|p| p.to_string_lossy().contains("/lake/messages/date=")), "{published:?}");
    assert_eq!(read_all(&dir.path().join("lake"), &messages_schema()).num_rows(), 30);
    assert_eq!(sink.stats().rows, 30);

    // Rows written after the last commit and then aborted never reach the store.
    sink.write(MESSAGES, &messages(30..40)).await.unwrap();
    sink.abort().await.unwrap();
    assert_eq!(files(&dir.path().join("lake")), published);
}

#[test]
fn unsupported_url_schemes_are_config_errors() {
    let err = try_open(json!({"path": "ftp://host/x"})).err().expect("refused");
    assert!(
        matches!(&err, PluginError::Config { path, message } if path == "path" && message.contains("ftp")),
        "{err}"
    );
}
