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
