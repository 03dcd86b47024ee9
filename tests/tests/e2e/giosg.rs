//! The real `pipe` binary against the giosg simulator, output read back with pyarrow (not our
//! code; JSON Lines with Python's own `json`) and compared with the simulator's ground truth.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

/// Reads JSON Lines files (stdlib json only) and prints the rows.
const READ_JSONL: &str = r#"
import json, sys, glob, datetime
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/**/*.jsonl", recursive=True)):
    for line in open(f, encoding="utf-8"):
        r = json.loads(line)
        for k in ("sent_at", "extracted_at", "created_at", "updated_at", "ended_at", "last_message_at"):
            if r.get(k) is not None:
                dt = datetime.datetime.fromisoformat(r[k].replace("Z", "+00:00"))
                assert dt.utcoffset() == datetime.timedelta(0), r[k]
                r[k] = (dt - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // datetime.timedelta(microseconds=1)
        rows.append(r)
print(json.dumps({"rows": rows}))
"#;

/// docs/design.md §3, written out independently of the SDK: (name, pyarrow type, nullable).
fn expected_messages_schema() -> Vec<(&'static str, &'static str, bool)> {
    let ts = "timestamp[us, tz=UTC]";
    vec![
        ("vendor", "string", false),
        ("account_id", "string", false),
        ("conversation_id", "string", false),
        ("message_id", "string", false),
        ("seq", "uint32", false),
        ("sent_at", ts, false),
        ("sender_role", "string", false),
        ("sender_id", "string", true),
        ("sender_name", "string", true),
        ("message_type", "string", false),
        ("text", "string", true),
        ("is_encrypted", "bool", false),
        ("ciphertext", "string", true),
        ("tags", "list<item: string>", false),
        ("attributes", "map<string, string>", false),
        ("raw", "string", false),
        ("extracted_at", ts, false),
    ]
}

fn expected_conversations_schema() -> Vec<(&'static str, &'static str, bool)> {
    let ts = "timestamp[us, tz=UTC]";
    vec![
        ("vendor", "string", false),
        ("account_id", "string", false),
        ("conversation_id", "string", false),
        ("channel_id", "string", true),
        ("title", "string", true),
        ("state", "string", true),
        ("is_ended", "bool", true),
        ("created_at", ts, true),
        ("updated_at", ts, true),
        ("ended_at", ts, true),
        ("last_message_at", ts, true),
        ("message_count", "uint32", true),
        ("visitor_id", "string", true),
        ("visitor_name", "string", true),
        ("agent_ids", "list<item: string>", false),
        ("tag_ids", "list<item: string>", false),
        ("tags", "list<item: string>", false),
        ("variables", "map<string, string>", false),
        ("raw", "string", false),
        ("extracted_at", ts, false),
    ]
}

fn assert_schema(read: &Table, expected: Vec<(&str, &str, bool)>) {
    let want: Vec<(String, String, bool)> = expected.into_iter().map(|(a, b, c)| (a.into(), b.into(), c)).collect();
    assert_eq!(read.schema, want);
}

/// Microseconds of a giosg timestamp, parsed here independently (naive means UTC).
fn micros(s: &str) -> i64 {
    let s = s.trim_end_matches('Z');
    let dt = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").expect("simulator timestamp");
    dt.and_utc().timestamp_micros()
}

fn pipeline(sim: &GiosgSim, org: &str, sinks: &str) -> String {
    format!(
        "name = \"e2e\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 30\nconcurrency = 6\n\n{sinks}",
        sim.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giosg_export_matches_ground_truth_in_parquet_and_json() {
    let dataset = Arc::new(generate(&SimConfig { chats: 400, max_messages_per_chat: 30, ..SimConfig::small(400) }));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sinks = "[[sinks]]\nplugin = \"parquet\"\npath = \"out/pq\"\nmax_file_rows = 2500\n\n[[sinks]]\nplugin = \"json\"\npath = \"out/js\"\n";
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &dataset.organization_id, sinks)).unwrap();

    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &dataset.token)]).await;
    assert!(out.status.success(), "pipe failed: {}", stderr(&out));
    assert!(!stderr(&out).contains(&dataset.token), "the token leaked into the output");
    // No wasted request: no page is fetched twice, and each chat costs its pages plus three.
    let log = sim.request_log();
    let unique: HashSet<&String> = log.iter().collect();
    assert_eq!(unique.len(), log.len(), "a request was repeated");
    let first_pages = |kind: &str| log.iter().filter(|l| l.contains(kind) && !l.contains("cursor=")).count();
    let with_visitor =
        dataset.chats.iter().filter(|c| c.memberships.iter().any(|m| m["member_type"] == "visitor")).count();
    assert_eq!(first_pages("/messages"), dataset.chats.len(), "each chat's messages listed once");
    assert_eq!(first_pages("/memberships"), dataset.chats.len());
    assert_eq!(first_pages("/tags"), dataset.chats.len());
    assert_eq!(first_pages("/variables"), with_visitor);
    sim.shutdown().await;

    // Messages: every message of the truth exactly once, with the truth's values.
    let pq = Parquet::at(dir.path().join("out/pq/messages")).read();
    assert_schema(&pq, expected_messages_schema());
    assert!(pq.files >= 2, "max_file_rows = 2500 rolls files over");
    let rows = &pq.rows;
    let mut by_key: HashMap<(String, String), &Value> = HashMap::new();
    for r in rows {
        let key = (r["conversation_id"].as_str().unwrap().to_string(), r["message_id"].as_str().unwrap().to_string());
        assert!(by_key.insert(key.clone(), r).is_none(), "message {key:?} written twice");
    }
    let truth_messages: usize = dataset.chats.iter().map(|c| c.messages.len()).sum();
    assert_eq!(rows.len(), truth_messages, "every message exactly once");
    let (mut encrypted, mut purged) = (0, 0);
    for chat in &dataset.chats {
        let chat_id = chat.chat["id"].as_str().unwrap();
        let tag_names: Vec<&str> = chat.tags.iter().map(|t| t["name"].as_str().unwrap()).collect();
        let mut seqs = Vec::new();
        for m in &chat.messages {
            let id = m.json["id"].as_str().unwrap();
            let row = by_key[&(chat_id.to_string(), id.to_string())];
            assert_eq!(row["vendor"], "giosg");
            assert_eq!(row["account_id"].as_str(), Some(dataset.organization_id.as_str()));
            assert_eq!(row["sent_at"].as_i64().unwrap(), micros(m.json["created_at"].as_str().unwrap()));
            assert_eq!(row["message_type"].as_str(), m.json["type"].as_str());
            let raw: Value = serde_json::from_str(row["raw"].as_str().unwrap()).unwrap();
            assert_eq!(raw, m.json, "raw keeps the vendor JSON");
            assert_eq!(
                row["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect::<Vec<_>>(),
                tag_names
            );
            let role = row["sender_role"].as_str().unwrap();
            let kind = m.json["type"].as_str().unwrap();
            let expected_role = match (kind, m.json["sender_type"].as_str()) {
                ("join" | "leave" | "tag_created" | "system", _) => "system",
                (_, Some("visitor")) => "visitor",
                (_, Some("user")) => "agent",
                _ => "system",
            };
            assert_eq!(role, expected_role, "{kind} from {:?}", m.json["sender_type"]);
            if m.json["sensitive_data_purged_at"].is_string() {
                purged += 1;
                assert!(row["text"].is_null());
                assert!(row["attributes"]["giosg.sensitive_data_purged_at"].is_string());
            } else if let Some(ct) = m.json.get("encrypted_message").and_then(Value::as_str) {
                encrypted += 1;
                assert_eq!(row["is_encrypted"], true);
                assert!(row["text"].is_null());
                assert_eq!(row["ciphertext"].as_str(), Some(ct), "ciphertext kept as received");
                assert_eq!(
                    row["attributes"]["giosg.encrypted_symmetric_key"].as_str(),
                    chat.chat["encrypted_symmetric_key"].as_str()
                );
            } else {
                assert_eq!(row["is_encrypted"], false);
                assert_eq!(row["text"].as_str(), m.json["message"].as_str());
                assert_eq!(row["text"].as_str(), m.plaintext.as_deref(), "text is the simulator's plaintext");
            }
            seqs.push((row["sent_at"].as_i64().unwrap(), row["seq"].as_u64().unwrap()));
        }
        // seq numbers the conversation from 0 in sent order.
        seqs.sort();
        assert_eq!(
            seqs.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            (0..seqs.len() as u64).collect::<Vec<_>>(),
            "chat {chat_id}"
        );
    }
    assert!(encrypted > 0 && purged > 0, "the dataset exercises encryption ({encrypted}) and purges ({purged})");

    // Conversations: every chat once.
    let pq_conv = Parquet::at(dir.path().join("out/pq/conversations")).read();
    assert_schema(&pq_conv, expected_conversations_schema());
    let conv_rows = &pq_conv.rows;
    assert_eq!(conv_rows.len(), dataset.chats.len());
    let convs: HashMap<&str, &Value> = conv_rows.iter().map(|r| (r["conversation_id"].as_str().unwrap(), r)).collect();
    assert_eq!(convs.len(), dataset.chats.len(), "every chat exactly once");
    for chat in &dataset.chats {
        let row = convs[chat.chat["id"].as_str().unwrap()];
        assert_eq!(row["channel_id"], chat.chat["room_id"]);
        assert_eq!(row["is_ended"], chat.chat["is_ended"]);
        assert_eq!(row["created_at"].as_i64().unwrap(), micros(chat.chat["created_at"].as_str().unwrap()));
        assert_eq!(row["message_count"], chat.chat["message_count"]);
        let visitor = chat.memberships.iter().find(|m| m["member_type"] == "visitor").map(|m| m["member_id"].clone());
        assert_eq!(row["visitor_id"], visitor.unwrap_or(Value::Null));
        let tags: Vec<&Value> = chat.tags.iter().map(|t| &t["name"]).collect();
        assert_eq!(row["tags"].as_array().unwrap().iter().collect::<Vec<_>>(), tags);
        let vars: BTreeMap<String, Value> =
            chat.variables.iter().map(|v| (v["key"].as_str().unwrap().to_string(), v["value"].clone())).collect();
        let got: BTreeMap<String, Value> =
            row["variables"].as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default();
        assert_eq!(got, vars);
        let raw: Value = serde_json::from_str(row["raw"].as_str().unwrap()).unwrap();
        assert_eq!(raw, chat.chat);
    }

    // JSON Lines: the same rows as the Parquet, value for value.
    for (stream, pq_rows, key) in [("messages", rows, "message_id"), ("conversations", conv_rows, "conversation_id")] {
        let js = python_json(READ_JSONL, &[dir.path().join("out/js").join(stream).to_str().unwrap()]);
        let js_rows = js["rows"].as_array().unwrap();
        assert_eq!(js_rows.len(), pq_rows.len(), "{stream}: same row count");
        let by_id: HashMap<(&str, &str), &Value> =
            js_rows.iter().map(|r| ((r["conversation_id"].as_str().unwrap(), r[key].as_str().unwrap()), r)).collect();
        for r in pq_rows {
            let j = by_id[&(r["conversation_id"].as_str().unwrap(), r[key].as_str().unwrap())];
            let cols: HashSet<&String> = r.as_object().unwrap().keys().collect();
            assert_eq!(j.as_object().unwrap().keys().collect::<HashSet<_>>(), cols, "{stream}: same columns");
            for c in cols {
                let (a, b) = (&r[c.as_str()], &j[c.as_str()]);
                assert_eq!(a, b, "{stream}.{c}: parquet vs json");
            }
        }
    }

    // Nothing temporary left, and the state was committed.
    for f in files_under(&dir.path().join("out")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".parquet") || name.ends_with(".jsonl"), "leftover file {}", f.display());
    }
    assert!(dir.path().join(".pipe/state/e2e.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_that_fails_half_way_leaves_no_unreadable_parquet_and_exits_1() {
    let dataset = Arc::new(generate(&SimConfig::small(200)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    // Roughly 4 requests per chat: the simulator turns to 401 after ~100 chats.
    sim.fail_auth_after(400);
    let dir = tempfile::tempdir().unwrap();
    let sinks = "[[sinks]]\nplugin = \"parquet\"\npath = \"out/pq\"\nmax_file_rows = 100\n";
    let toml = pipeline(&sim, &dataset.organization_id, sinks)
        .replace("name = \"e2e\"", "name = \"e2e\"\ncommit_interval_seconds = 0")
        .replace("concurrency = 6", "concurrency = 2\ncheckpoint_every = 20");
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &dataset.token)]).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("giosg") && err.contains("401"), "the error names the vendor and status: {err}");
    assert!(!err.contains(&dataset.token), "the token leaked: {err}");

    // Checkpoints before the failure were committed: their files are complete and readable,
    // nothing temporary is left behind, and the state records the last checkpoint.
    let files = files_under(&dir.path().join("out"));
    assert!(!files.is_empty(), "checkpoints before the failure committed files");
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with(".parquet"), "leftover temporary file {}", f.display());
        python_json(
            "import sys, json, pyarrow.parquet as pq; pq.read_table(sys.argv[1]); print('{}')",
            &[f.to_str().unwrap()],
        );
    }
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".pipe/state/e2e.json")).unwrap()).unwrap();
    // No complete scan yet, so no watermark; the scan in progress covers exactly the committed
    // chats: the newest ones, down to its done floor.
    assert!(state["source_state"]["watermark"].is_null());
    let done_floor = state["source_state"]["scan"]["done_floor"].as_i64().unwrap();
    let conv = Parquet::at(dir.path().join("out/pq/conversations")).read();
    let committed: std::collections::BTreeSet<&str> =
        conv.rows.iter().map(|r| r["conversation_id"].as_str().unwrap()).collect();
    let expected: std::collections::BTreeSet<&str> = dataset
        .chats
        .iter()
        .filter(|c| micros(c.chat["created_at"].as_str().unwrap()) >= done_floor)
        .map(|c| c.chat["id"].as_str().unwrap())
        .collect();
    assert!(!committed.is_empty());
    assert_eq!(committed, expected, "exactly the checkpointed conversations are committed");
    // Every committed conversation has all of its messages committed too.
    let msgs = Parquet::at(dir.path().join("out/pq/messages")).read();
    for c in &conv.rows {
        let id = c["conversation_id"].as_str().unwrap();
        let have = msgs.rows.iter().filter(|m| m["conversation_id"] == id).count();
        assert_eq!(have, dataset.chat(id).unwrap().messages.len(), "chat {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limit_stops_after_n_conversations() {
    let dataset = Arc::new(generate(&SimConfig::small(120)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sinks = "[[sinks]]\nplugin = \"parquet\"\npath = \"out/pq\"\n";
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &dataset.organization_id, sinks)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml", "--limit", "7"], &[("E2E_GIOSG_TOKEN", &dataset.token)]).await;
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let conv = Parquet::at(dir.path().join("out/pq/conversations")).read();
    assert_eq!(conv.len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rides_out_429s_without_losing_a_message() {
    let dataset = Arc::new(generate(&SimConfig::small(30)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    sim.inject_429_every(10);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(&sim, &dataset.organization_id, "[[sinks]]\nplugin = \"parquet\"\npath = \"out/pq\"\n"),
    )
    .unwrap();
    let out =
        run_pipe(dir.path(), &["run", "p.toml", "--report", "r.json"], &[("E2E_GIOSG_TOKEN", &dataset.token)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(sim.throttled() > 0);
    sim.shutdown().await;
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert!(report["retries"].as_u64().unwrap() >= 1, "{report}");
    let msgs = Parquet::at(dir.path().join("out/pq/messages")).read();
    assert_eq!(msgs.len(), dataset.message_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_retry_budget_commits_what_it_has_and_exits_3() {
    let dataset = Arc::new(generate(&SimConfig::small(60)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let toml = pipeline(&sim, &dataset.organization_id, "[[sinks]]\nplugin = \"parquet\"\npath = \"out/pq\"\n")
        .replace("concurrency = 6", "concurrency = 1\nretry_budget = 2\ncheckpoint_every = 5");
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    // Let the first chats through, then throttle every other request.
    let env = [("E2E_GIOSG_TOKEN", dataset.token.as_str())];
    let run = run_pipe(dir.path(), &["run", "p.toml"], &env);
    let throttle = async {
        while sim.requests() < 60 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sim.inject_429_every(2);
    };
    let (out, ()) = tokio::join!(run, throttle);
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("retry budget"), "{}", stderr(&out));
    // What was committed is whole: every conversation row comes with all its messages.
    let conv = Parquet::at(dir.path().join("out/pq/conversations")).read();
    let msgs = Parquet::at(dir.path().join("out/pq/messages")).read();
    let convs = &conv.rows;
    assert!(!convs.is_empty() && convs.len() < 60, "{} conversations committed", convs.len());
    for c in convs {
        let id = c["conversation_id"].as_str().unwrap();
        let have = msgs.rows.iter().filter(|m| m["conversation_id"] == id).count();
        assert_eq!(have, dataset.chat(id).unwrap().messages.len());
    }
    assert!(dir.path().join(".pipe/state/e2e.json").exists());
}
