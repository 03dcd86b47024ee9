//! The json sink end to end: real files in a temporary directory, read back with serde_json.

use std::collections::BTreeMap;
use std::path::Path;

use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationRow, ConversationsBuilder, MESSAGES, MessageRow, MessagesBuilder, SenderRole,
    conversations_schema, messages_schema,
};
use pipe_plugin_sdk::{Checkpoint, PluginFactory, Sink, SinkContext, StreamDecl};
use serde_json::{Value, json};

const SENT_AT: i64 = 1_686_739_774_406_000; // 2023-06-14T10:49:34.406Z

fn message(i: u32) -> MessageRow {
    MessageRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: "c1".into(),
        message_id: format!("m{i}"),
        seq: i,
        sent_at: SENT_AT + i as i64,
        sender_role: SenderRole::Visitor,
        sender_id: Some("v1".into()),
        sender_name: None,
        message_type: "msg".into(),
        text: Some("hei 👋 \"quoted\"\nnext line".into()),
        is_encrypted: false,
        ciphertext: None,
        tags: vec!["a".into(), "b".into()],
        attributes: BTreeMap::from([("rating".to_string(), "5".to_string())]),
        raw: "{\"id\":1}".into(),
        extracted_at: SENT_AT,
    }
}

fn messages(range: std::ops::Range<u32>) -> arrow_array::RecordBatch {
    let mut b = MessagesBuilder::new();
    for i in range {
        b.append(&message(i));
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
        run_id: "20240101T000000Z-abc".into(),
    }
}

fn open(config: Value) -> Box<dyn Sink> {
    open_with(config, "20240101T000000Z-abc")
}

fn open_with(config: Value, run_id: &str) -> Box<dyn Sink> {
    let PluginFactory::Sink(factory) = pipe_plugin_json::descriptor().factory else { panic!("json is a sink") };
    factory(config, SinkContext { run_id: run_id.into(), ..ctx() }).unwrap()
}

fn checkpoint() -> Checkpoint {
    Checkpoint { state: json!({"cursor": 1}) }
}

/// Every file name in `dir`, sorted (hidden ones too).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().into_string().unwrap()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn read_lines(dir: &Path) -> Vec<Vec<Value>> {
    names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".jsonl"))
        .map(|n| {
            std::fs::read_to_string(dir.join(n)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
        })
        .collect()
}

#[tokio::test]
async fn writes_json_lines_visible_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap()}));
    sink.write(MESSAGES, &messages(0..3)).await.unwrap();

    let stream_dir = dir.path().join(MESSAGES);
    let before = names(&stream_dir);
    assert_eq!(before.len(), 1);
    assert!(before[0].starts_with(".part-") && before[0].ends_with(".inprogress"), "{before:?}");

    sink.commit(&checkpoint()).await.unwrap();
    assert_eq!(names(&stream_dir), vec!["part-20240101T000000Z-abc-00000.jsonl"]);

    let files = read_lines(&stream_dir);
    let rows = &files[0];
    assert_eq!(rows.len(), 3);
    let row = rows[1].as_object().unwrap();
    // Every column is present, nulls included (serde_json's map sorts the keys).
    let keys: Vec<&str> = row.keys().map(String::as_str).collect();
    let mut columns: Vec<String> = messages_schema().fields().iter().map(|f| f.name().clone()).collect();
    columns.sort();
    assert_eq!(keys, columns);
    // ... and in schema order in the file itself.
    let text = std::fs::read_to_string(stream_dir.join("part-20240101T000000Z-abc-00000.jsonl")).unwrap();
    assert!(text.starts_with("{\"vendor\":\"giosg\",\"account_id\":\"org\","), "{text}");
    assert_eq!(row["sender_name"], Value::Null);
    assert_eq!(row["message_id"], "m1");
    assert_eq!(row["seq"], 1);
    assert_eq!(row["text"], "hei 👋 \"quoted\"\nnext line");
    assert_eq!(row["tags"], json!(["a", "b"]));
    assert_eq!(row["attributes"], json!({"rating": "5"}));
    assert_eq!(row["is_encrypted"], false);
    // RFC 3339 in UTC, microsecond precision kept.
    assert_eq!(row["sent_at"], "2023-06-14T10:49:34.406001Z");
    let parsed = chrono::DateTime::parse_from_rfc3339(row["sent_at"].as_str().unwrap()).unwrap();
    assert_eq!(parsed.timestamp_micros(), SENT_AT + 1);
}

#[tokio::test]
async fn conversations_with_null_timestamps_and_empty_collections() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap()}));
    let mut b = ConversationsBuilder::new();
    b.append(&ConversationRow {
        vendor: "giosg".into(),
        account_id: "org".into(),
        conversation_id: "c1".into(),
        created_at: Some(SENT_AT),
        raw: "{}".into(),
        extracted_at: SENT_AT,
        ..Default::default()
    });
    sink.write(CONVERSATIONS, &b.finish()).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();

    let files = read_lines(&dir.path().join(CONVERSATIONS));
    let row = &files[0][0];
    assert_eq!(row.as_object().unwrap().len(), conversations_schema().fields().len());
    assert_eq!(row["created_at"], "2023-06-14T10:49:34.406000Z");
    assert_eq!(row["updated_at"], Value::Null);
    assert_eq!(row["agent_ids"], json!([]));
    assert_eq!(row["variables"], json!({}));
}

#[tokio::test]
async fn rolls_over_at_max_file_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap(), "max_file_rows": 2}));
    sink.write(MESSAGES, &messages(0..3)).await.unwrap();
    sink.write(MESSAGES, &messages(3..5)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    // A second checkpoint starts new files; the earlier ones are never touched again.
    sink.write(MESSAGES, &messages(5..6)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();

    let stream_dir = dir.path().join(MESSAGES);
    assert!(names(&stream_dir).iter().all(|n| n.ends_with(".jsonl")));
    let sizes: Vec<usize> = read_lines(&stream_dir).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 1, 1]);
    assert_eq!((sink.stats().files, sink.stats().rows), (4, 6));
    let ids: Vec<Value> = read_lines(&stream_dir).concat().iter().map(|r| r["message_id"].clone()).collect();
    assert_eq!(ids, (0..6).map(|i| json!(format!("m{i}"))).collect::<Vec<_>>());
}

#[tokio::test]
async fn abort_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap(), "max_file_rows": 2}));
    sink.write(MESSAGES, &messages(0..2)).await.unwrap();
    sink.commit(&checkpoint()).await.unwrap();
    sink.write(MESSAGES, &messages(2..7)).await.unwrap(); // two closed files and one open
    sink.abort().await.unwrap();
    assert_eq!(names(&dir.path().join(MESSAGES)), vec!["part-20240101T000000Z-abc-00000.jsonl"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_only_adds_files_and_a_reused_run_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({"path": dir.path().to_str().unwrap()});
    let stream_dir = dir.path().join(MESSAGES);

    let mut first = open(config.clone());
    first.write(MESSAGES, &messages(0..1)).await.unwrap();
    first.commit(&checkpoint()).await.unwrap();
    let first_file = stream_dir.join("part-20240101T000000Z-abc-00000.jsonl");
    let first_bytes = std::fs::read(&first_file).unwrap();

    let mut second = open_with(config.clone(), "run-2");
    second.write(MESSAGES, &messages(1..2)).await.unwrap();
    second.commit(&checkpoint()).await.unwrap();
    assert_eq!(names(&stream_dir).len(), 2);
    assert_eq!(std::fs::read(&first_file).unwrap(), first_bytes);

    // The first run id again would produce the same name: refused, nothing overwritten.
    let mut again = open(config);
    assert!(again.write(MESSAGES, &messages(5..6)).await.is_err());
    again.abort().await.unwrap();
    assert_eq!(names(&stream_dir).len(), 2);
    assert_eq!(std::fs::read(&first_file).unwrap(), first_bytes);
}

#[tokio::test]
async fn bad_config_is_a_config_error() {
    let PluginFactory::Sink(factory) = pipe_plugin_json::descriptor().factory else { panic!() };
    let err = factory(json!({"path": "x", "max_file_row": 2}), ctx()).err().unwrap();
    assert!(matches!(err, pipe_plugin_sdk::PluginError::Config { .. }), "{err}");
    let err = factory(json!({"path": "x", "max_file_rows": 0}), ctx()).err().unwrap();
    assert!(matches!(err, pipe_plugin_sdk::PluginError::Config { ref path, .. } if path == "max_file_rows"), "{err}");
    let schema = (pipe_plugin_json::descriptor().config_schema)();
    assert_eq!(schema["required"], json!(["path"]));
    assert!(schema["properties"]["max_file_rows"]["description"].is_string());
}

/// Messages `range` of conversation `c<i / 10>`, one hour apart from `SENT_AT` (so 40 of them
/// span three UTC dates), vendor `alli` for every fifth (4, 9, ...), else `giosg`.
fn hourly(range: std::ops::Range<u32>) -> arrow_array::RecordBatch {
    let mut b = MessagesBuilder::new();
    for i in range {
        b.append(&MessageRow {
            vendor: if i % 5 == 4 { "alli" } else { "giosg" }.into(),
            conversation_id: format!("c{}", i / 10),
            sent_at: SENT_AT + i as i64 * 3_600_000_000,
            ..message(i)
        });
    }
    b.finish()
}

/// Every `.jsonl` file below `dir`, read by Python's own json module (not our code): a list of
/// `[relative directory, [rows]]`, sorted by path. Python is `$PIPE_TEST_PYTHON` or `python3`.
fn read_with_python(dir: &Path) -> Vec<(String, Vec<Value>)> {
    const SCRIPT: &str = r#"
import json, sys, pathlib
root = pathlib.Path(sys.argv[1])
out = []
for f in sorted(root.rglob("*.jsonl")):
    with open(f, encoding="utf-8") as fh:
        out.append([f.parent.relative_to(root).as_posix(), [json.loads(line) for line in fh]])
print(json.dumps(out))
"#;
    let python = std::env::var("PIPE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = std::process::Command::new(&python)
        .args(["-c", SCRIPT, dir.to_str().unwrap()])
        .output()
        .unwrap_or_else(|e| panic!("{python} runs: {e}"));
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// Every file below `dir`, relative, sorted (hidden ones too).
fn tree(dir: &Path) -> Vec<String> {
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

#[tokio::test]
async fn partitions_by_vendor_and_date_read_back_by_python() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap(), "partition_by": ["vendor", "date"]}));
    sink.write(MESSAGES, &hourly(0..20)).await.unwrap();
    sink.write(MESSAGES, &hourly(20..40)).await.unwrap();
    let mut b = ConversationsBuilder::new();
    b.append(&ConversationRow {
        vendor: "giosg".into(),
        conversation_id: "c1".into(),
        created_at: Some(SENT_AT),
        ..Default::default()
    });
    b.append(&ConversationRow { vendor: "giosg".into(), conversation_id: "c2".into(), ..Default::default() });
    sink.write(CONVERSATIONS, &b.finish()).await.unwrap();
    assert!(read_with_python(dir.path()).is_empty(), "nothing is published before the commit");
    sink.commit(&checkpoint()).await.unwrap();

    let files = read_with_python(dir.path());
    let dirs: Vec<&str> = files.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(
        dirs,
        vec![
            "conversations/vendor=giosg/date=2023-06-14",
            "conversations/vendor=giosg/date=__HIVE_DEFAULT_PARTITION__",
            "messages/vendor=alli/date=2023-06-14",
            "messages/vendor=alli/date=2023-06-15",
            "messages/vendor=alli/date=2023-06-16",
            "messages/vendor=giosg/date=2023-06-14",
            "messages/vendor=giosg/date=2023-06-15",
            "messages/vendor=giosg/date=2023-06-16",
        ]
    );
    // Each file holds exactly the rows of its directory, partition columns included.
    let mut ids = Vec::new();
    for (dir, rows) in files.iter().filter(|(d, _)| d.starts_with("messages/")) {
        for row in rows {
            let date = &row["sent_at"].as_str().unwrap()[..10];
            assert_eq!(dir, &format!("messages/vendor={}/date={date}", row["vendor"].as_str().unwrap()));
            assert_eq!(row.as_object().unwrap().len(), messages_schema().fields().len());
            ids.push(row["seq"].as_u64().unwrap());
        }
    }
    ids.sort();
    assert_eq!(ids, (0..40).collect::<Vec<u64>>(), "every message once");
    assert_eq!(files[1].1[0]["conversation_id"], "c2");
    assert_eq!(files[1].1[0]["created_at"], Value::Null);
    assert_eq!(sink.stats().files, 8);
}

#[tokio::test]
async fn rolls_over_at_max_file_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open(json!({"path": dir.path().to_str().unwrap(), "max_file_bytes": 1}));
    for i in 0..3 {
        sink.write(MESSAGES, &messages(i * 2..i * 2 + 2)).await.unwrap();
    }
    sink.commit(&checkpoint()).await.unwrap();
    let sizes: Vec<usize> = read_lines(&dir.path().join(MESSAGES)).iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![2, 2, 2], "each batch passes the limit and closes its file");
}

/// An object storage URL (`file://` here; `s3://` against moto in tests/tests/e2e/json_sink.rs):
/// files are spooled locally and appear under their final keys only at commit; an abort
/// uploads nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn object_storage_urls_publish_complete_files_at_commit_only() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/lake", dir.path().display());
    let mut sink = open(json!({"path": url, "partition_by": ["date"], "max_file_rows": 10}));
    sink.write(MESSAGES, &hourly(0..30)).await.unwrap();
    assert!(tree(dir.path()).is_empty(), "nothing is in the store before a commit");
    sink.commit(&checkpoint()).await.unwrap();
    let published = tree(&dir.path().join("lake"));
    assert_eq!(published.len(), 4, "{published:?}"); // 14 + 16 rows on two dates, 10 per file
    assert!(
        published.iter().all(|p| p.starts_with("messages/date=2023-06-1") && p.ends_with(".jsonl")),
        "{published:?}"
    );
    let rows: usize = read_with_python(&dir.path().join("lake")).iter().map(|(_, r)| r.len()).sum();
    assert_eq!(rows, 30);
    assert_eq!(sink.stats().rows, 30);

    // Rows written after the last commit and then aborted never reach the store.
    sink.write(MESSAGES, &hourly(30..40)).await.unwrap();
    sink.abort().await.unwrap();
    assert_eq!(tree(&dir.path().join("lake")), published);
}

/// The same against an in-memory object store: the json encoder on the core, objects listed
/// through the store's own API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_store_gets_objects_at_commit_only() {
    use futures::TryStreamExt as _;
    use object_store::{ObjectStore, ObjectStoreExt as _, memory::InMemory, path::Path as Key};
    use pipe_plugin_sdk::file_sink::publish::Destination;
    use pipe_plugin_sdk::file_sink::roll::RollPolicy;
    use pipe_plugin_sdk::file_sink::{FileSink, FileSinkOptions};
    use pipe_plugin_sdk::storage::Location;

    let store: std::sync::Arc<dyn ObjectStore> = std::sync::Arc::new(InMemory::new());
    let location =
        Location { store: store.clone(), prefix: Key::from("exports/json"), url: "memory://exports/json".into() };
    let options = FileSinkOptions {
        roll: RollPolicy { max_file_rows: 1_000, max_file_bytes: 1 << 30 },
        max_open_files: 16,
        partition_by: vec!["vendor".into()],
    };
    let mut sink =
        FileSink::open(pipe_plugin_json::sink::JsonLines, Destination::remote(location).unwrap(), options, &ctx())
            .unwrap();
    let keys = || async {
        let mut keys: Vec<String> = store.list(None).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
        keys.sort();
        keys
    };
    sink.write(MESSAGES, &hourly(0..10)).await.unwrap();
    assert!(keys().await.is_empty(), "nothing is in the store before a commit");
    sink.commit(&checkpoint()).await.unwrap();
    let published = keys().await;
    assert_eq!(
        published,
        vec![
            "exports/json/messages/vendor=alli/part-20240101T000000Z-abc-00001.jsonl",
            "exports/json/messages/vendor=giosg/part-20240101T000000Z-abc-00000.jsonl",
        ]
    );
    let body = store.get(&Key::from(published[0].as_str())).await.unwrap().bytes().await.unwrap();
    let rows: Vec<Value> =
        std::str::from_utf8(&body).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.iter().map(|r| r["seq"].as_u64().unwrap()).collect::<Vec<_>>(), vec![4, 9]);

    sink.write(MESSAGES, &hourly(10..20)).await.unwrap();
    sink.abort().await.unwrap();
    assert_eq!(keys().await, published, "an abort uploads nothing");
}

#[test]
fn partition_and_path_errors_name_the_key() {
    let PluginFactory::Sink(factory) = pipe_plugin_json::descriptor().factory else { panic!() };
    let path = |config: Value| match factory(config, ctx()) {
        Err(pipe_plugin_sdk::PluginError::Config { path, .. }) => path,
        Err(other) => panic!("not a config error: {other}"),
        Ok(_) => panic!("accepted"),
    };
    assert_eq!(path(json!({"path": "x", "partition_by": ["vendor", "nope"]})), "partition_by[1]");
    assert_eq!(path(json!({"path": "x", "partition_by": ["date", "date"]})), "partition_by[1]");
    assert_eq!(path(json!({"path": "x", "partition_by": ["tags"]})), "partition_by[0]");
    assert_eq!(path(json!({"path": "ftp://host/x"})), "path");
    assert_eq!(path(json!({"path": ""})), "path");
    let d = pipe_plugin_json::descriptor();
    assert!((d.check_config)(&json!({"path": "s3://bucket/prefix", "partition_by": ["vendor", "date"]})).is_ok());
    let schema = (d.config_schema)();
    for key in ["path", "max_file_rows", "max_file_bytes", "partition_by"] {
        assert!(schema["properties"][key]["description"].is_string(), "{key} missing from the schema");
    }
}
