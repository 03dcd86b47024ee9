//! The Aimylogic history export end to end: the real `pipe` binary against the simulator,
//! read back with pyarrow and compared with the simulator's ground truth.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use pipe_sim::aimylogic::{AimylogicSim, Dataset, SimConfig, generate};
use pipe_tests::*;
use serde_json::Value;

const TOKEN: &str = "E2eChnl7:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";

fn pipeline(base_url: &str, extra: &str) -> String {
    format!(
        "name = \"aimy\"\n\n[source]\nplugin = \"aimylogic\"\nbase_url = \"{base_url}\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n"
    )
}

fn dataset(clients: usize) -> Dataset {
    generate(&SimConfig { seed: 11, clients, max_turns: 9, token: TOKEN.into() })
}

/// Every file under `dir` holding `needle` (bytes), for the token checks.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())).unwrap_or(false))
        .map(|p| p.display().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_exports_every_client_once_with_roles_and_order() {
    let d = Arc::new(dataset(24));
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // Two ids inline (one also in the file: taken once), the rest from the file, plus one
    // client the channel does not know.
    let mut file = String::from("# clients\n\n");
    for c in &d.clients[1..] {
        file.push_str(&format!("{}\n", c.id));
    }
    file.push_str("ghost-client\n");
    std::fs::write(dir.path().join("clients.txt"), file).unwrap();
    let inline = format!(
        "client_ids = [{}, {}]\nclient_ids_file = \"clients.txt\"\npage_size = 3\nconcurrency = 3\ncheckpoint_every = 5",
        serde_json::to_string(&d.clients[0].id).unwrap(),
        serde_json::to_string(&d.clients[1].id).unwrap()
    );
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim.base_url(), &inline)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_AIMY_TOKEN", TOKEN)]).await;
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");

    let v = Parquet::streams(dir.path().join("out"), &["messages", "conversations"]).read_streams();
    let msgs = &v["messages"].rows;
    // Exactly the truth: every message once, right role, type, text, time and seq.
    type Row = (String, u32, String, String, String, Option<String>, i64);
    let got: Vec<Row> = msgs
        .iter()
        .map(|m| {
            (
                m["conversation_id"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap() as u32,
                m["message_id"].as_str().unwrap().to_string(),
                m["sender_role"].as_str().unwrap().to_string(),
                m["message_type"].as_str().unwrap().to_string(),
                m["text"].as_str().map(str::to_string),
                m["sent_at"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want: Vec<Row> = d
        .expected()
        .into_iter()
        .map(|e| (e.conversation_id, e.seq, e.message_id, e.sender_role, e.message_type, e.text, e.sent_at_us))
        .collect();
    want.sort();
    assert_eq!(got_sorted.len(), want.len(), "message count");
    assert_eq!(got_sorted, want);
    let roles: BTreeSet<&str> = msgs.iter().map(|m| m["sender_role"].as_str().unwrap()).collect();
    assert_eq!(roles, BTreeSet::from(["agent", "bot", "system", "visitor"]));
    assert!(msgs.iter().all(|m| m["vendor"] == "aimylogic" && m["account_id"] == "E2eChnl7"));
    // Sessions are numbered per client, from 1.
    for c in &d.clients {
        let max = msgs
            .iter()
            .filter(|m| m["conversation_id"] == c.id.as_str())
            .filter_map(|m| m["attributes"]["aimylogic.session"].as_str()?.parse::<u32>().ok())
            .max();
        assert_eq!(max, Some(c.sessions), "sessions of {}", c.id);
    }

    // One conversation row per known client, with its message count.
    let convs = &v["conversations"].rows;
    assert_eq!(convs.len(), d.clients.len());
    for c in &d.clients {
        let row = convs
            .iter()
            .find(|r| r["conversation_id"] == c.id.as_str())
            .unwrap_or_else(|| panic!("no row for {}", c.id));
        assert_eq!(row["message_count"].as_u64(), Some(c.expected.len() as u64), "{}", c.id);
        assert_eq!(row["created_at"].as_i64(), c.expected.iter().map(|e| e.sent_at_us).min());
    }

    // The unknown client is a dead letter, not a failure.
    let dl = std::fs::read_to_string(dir.path().join("dl/conversations.jsonl")).unwrap();
    let dls: Vec<Value> = dl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dls.len(), 1, "{dl}");
    assert_eq!(dls[0]["reason"], "unknown_client");
    assert_eq!(dls[0]["key"]["conversation_id"], "ghost-client");

    // Paging was used, ids were sent percent-encoded and arrived intact.
    let log = sim.request_log();
    assert!(log.iter().any(|l| l.contains("offset=Some(3)")), "no second page asked");
    assert!(log.iter().any(|l| l.contains("tg:3/chat 1")), "path-hostile id not requested intact: {log:?}");

    // The token is nowhere: not in the logs, not in any output file or the state.
    for secret in [TOKEN, "5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345"] {
        assert!(!err.contains(secret), "token in stderr:\n{err}");
        assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
        assert_eq!(files_containing(dir.path(), secret), Vec::<String>::new(), "token written to a file");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_span_and_bad_token() {
    let d = Arc::new(dataset(6));
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = serde_json::to_string(&d.clients.iter().map(|c| c.id.clone()).collect::<Vec<_>>()).unwrap();

    // `from`/`to` narrow every history to its span.
    let all: Vec<i64> = d.clients.iter().flat_map(|c| c.item_times_us.iter().copied()).collect();
    let (lo, hi) = (*all.iter().min().unwrap(), *all.iter().max().unwrap());
    let mid = lo + (hi - lo) / 2;
    let from = chrono::DateTime::from_timestamp_micros(lo + (mid - lo) / 2).unwrap();
    let to = chrono::DateTime::from_timestamp_micros(mid).unwrap();
    let extra = format!("client_ids = {ids}\nfrom = \"{}\"\nto = \"{}\"", from.to_rfc3339(), to.to_rfc3339());
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim.base_url(), &extra)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_AIMY_TOKEN", TOKEN)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v = Parquet::streams(dir.path().join("out"), &["messages", "conversations"]).read_streams();
    let got: BTreeSet<String> =
        v["messages"].rows.iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect();
    let (f, t) = (from.timestamp_micros(), to.timestamp_micros());
    let want: BTreeSet<String> =
        d.expected().into_iter().filter(|e| e.sent_at_us >= f && e.sent_at_us < t).map(|e| e.message_id).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);

    // A refused token stops the run with exit 1, naming the vendor and status, never the token.
    let bad = "BadToken:0000000000000000000000000000000000000000";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim.base_url(), &format!("client_ids = {ids}"))).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_AIMY_TOKEN", bad)]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("aimylogic") && err.contains("401"), "{err}");
    assert!(!err.contains(bad) && !err.contains("0000000000000000"), "token in stderr:\n{err}");
    sim.shutdown().await;
}

type MsgRow = (String, u32, String, String, String, Option<String>, i64);

fn msg_rows(v: &Streams) -> Vec<MsgRow> {
    v["messages"]
        .rows
        .iter()
        .map(|m| {
            (
                m["conversation_id"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap() as u32,
                m["message_id"].as_str().unwrap().to_string(),
                m["sender_role"].as_str().unwrap().to_string(),
                m["message_type"].as_str().unwrap().to_string(),
                m["text"].as_str().map(str::to_string),
                m["sent_at"].as_i64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_runs_are_incremental_per_client_watermark() {
    let d = Arc::new(dataset(10));
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ids = serde_json::to_string(&d.clients.iter().map(|c| c.id.clone()).collect::<Vec<_>>()).unwrap();
    let extra = format!("client_ids = {ids}\npage_size = 4\nconcurrency = 2\ncheckpoint_every = 3");
    // Same pipeline (so the same state), a fresh output directory per run.
    let run = |n: u32, args: &'static [&'static str]| {
        let toml = pipeline(&sim.base_url(), &extra).replace("path = \"out\"", &format!("path = \"out{n}\""));
        let dir = dir.path().to_path_buf();
        async move {
            std::fs::write(dir.join("p.toml"), toml).unwrap();
            let mut a = vec!["run", "p.toml"];
            a.extend_from_slice(args);
            let out = run_pipe(&dir, &a, &[("E2E_AIMY_TOKEN", TOKEN)]).await;
            assert!(out.status.success(), "run {n}: {}", stderr(&out));
            // A stream a run never wrote reads as empty.
            Parquet::streams(dir.join(format!("out{n}")), &["messages", "conversations"]).allow_missing().read_streams()
        }
    };
    let truth = |d: &pipe_sim::aimylogic::Dataset| {
        let mut w: Vec<MsgRow> = d
            .expected()
            .into_iter()
            .map(|e| (e.conversation_id, e.seq, e.message_id, e.sender_role, e.message_type, e.text, e.sent_at_us))
            .collect();
        w.sort();
        w
    };

    // 1. First run: everything.
    let v1 = run(1, &[]).await;
    let mut got1 = msg_rows(&v1);
    got1.sort();
    assert_eq!(got1, truth(&d));
    assert_eq!(v1["conversations"].rows.len(), d.clients.len());
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".pipe/state/aimy.json")).unwrap()).unwrap();
    let st = &state["source_state"];
    assert_eq!(st["mode"], "history");
    assert_eq!(st["clients"].as_object().unwrap().len(), d.clients.len(), "one watermark per client: {st}");
    assert!(st.get("done").is_none(), "a finished run keeps no resume list: {st}");
    for c in &d.clients {
        let ms = c.item_times_us.iter().max().unwrap() / 1000;
        assert_eq!(st["clients"][&c.id]["ms"].as_i64(), Some(ms), "watermark of {}", c.id);
    }

    // 2. Unchanged data: no message, no conversation.
    let v2 = run(2, &[]).await;
    assert_eq!(v2["messages"].rows.len(), 0, "{v2:?}");
    assert_eq!(v2["conversations"].rows.len(), 0, "{v2:?}");

    // 3. New items for three clients (the first of each ties the old watermark's time).
    let changed = [1usize, 4, 7];
    let (d3, new_keys) = d.with_new_items(&changed, 4, "n3");
    sim.set_dataset(Arc::new(d3.clone()));
    let v3 = run(3, &[]).await;
    let got3: BTreeSet<(String, String)> = msg_rows(&v3).into_iter().map(|r| (r.0, r.2)).collect();
    assert_eq!(v3["messages"].rows.len(), new_keys.len(), "no message twice");
    assert_eq!(got3, new_keys.iter().cloned().collect::<BTreeSet<_>>());
    let convs3: BTreeSet<String> =
        v3["conversations"].rows.iter().map(|c| c["conversation_id"].as_str().unwrap().to_string()).collect();
    assert_eq!(convs3, changed.iter().map(|&i| d3.clients[i].id.clone()).collect::<BTreeSet<_>>());
    assert_eq!(v3["conversations"].rows.len(), changed.len());

    // The union of the three runs, deduplicated by primary key (latest `updated_at` for
    // conversations), is the truth.
    let mut union: std::collections::BTreeMap<(String, String), MsgRow> = Default::default();
    let mut convs: std::collections::BTreeMap<String, Value> = Default::default();
    for v in [&v1, &v2, &v3] {
        for r in msg_rows(v) {
            union.insert((r.0.clone(), r.2.clone()), r);
        }
        for c in &v["conversations"].rows {
            assert_eq!((c["vendor"].as_str(), c["account_id"].as_str()), (Some("aimylogic"), Some("E2eChnl7")));
            let id = c["conversation_id"].as_str().unwrap().to_string();
            if convs.get(&id).is_none_or(|old| old["updated_at"].as_i64() <= c["updated_at"].as_i64()) {
                convs.insert(id, c.clone());
            }
        }
    }
    let mut all: Vec<MsgRow> = union.into_values().collect();
    all.sort();
    assert_eq!(all, truth(&d3));
    assert_eq!(convs.len(), d3.clients.len());
    for c in &d3.clients {
        let row = &convs[&c.id];
        assert_eq!(row["message_count"].as_u64(), Some(c.expected.len() as u64), "{}", c.id);
        assert_eq!(row["updated_at"].as_i64(), c.expected.iter().map(|e| e.sent_at_us).max(), "{}", c.id);
        assert_eq!(row["created_at"].as_i64(), c.expected.iter().map(|e| e.sent_at_us).min(), "{}", c.id);
    }

    // 4. `--full-refresh` passes no state: everything again.
    let v4 = run(4, &["--full-refresh"]).await;
    let mut got4 = msg_rows(&v4);
    got4.sort();
    assert_eq!(got4, truth(&d3));
    assert_eq!(v4["conversations"].rows.len(), d3.clients.len());

    // The token is not in the state.
    let state = std::fs::read_to_string(dir.path().join(".pipe/state/aimy.json")).unwrap();
    assert!(!state.contains(TOKEN) && !state.contains("5f0c1b2a3d4e5f6071"), "{state}");
    sim.shutdown().await;
}
