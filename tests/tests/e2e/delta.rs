//! The `delta` sink plugin library (`plugins/delta`, built on its own: delta-rs pins another
//! arrow major) loaded from a plugin directory by the real `pipe` binary against the giosg
//! simulator: two overlapping runs in `merge` mode, the second with a long lookback that
//! re-delivers most rows, leave tables with no duplicate primary key, every message, and the
//! latest state of every conversation — read back with the Python `deltalake` package.
//! Then a replayed commit (the state file restored to before the last run, the same data) adds
//! no table version and no row.
//!
//! Needs `target/<profile>/libpipe_plugin_delta.so` built with the `merge` feature:
//! `cargo build --release --features merge --manifest-path plugins/sinks/delta/Cargo.toml --target-dir target`,
//! or the library named by `PIPE_DELTA_LIBRARY` (CI builds it in the plugin's quicker `ci` profile).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pipe_sim::giosg::{Dataset, GiosgSim, SimConfig, SimOptions, generate, parse_timestamp};
use pipe_tests::*;
use serde_json::{Value, json};

fn delta_library() -> PathBuf {
    if let Some(lib) = std::env::var_os("PIPE_DELTA_LIBRARY") {
        return PathBuf::from(lib);
    }
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let lib = target.join(profile).join("libpipe_plugin_delta.so");
    assert!(
        lib.exists(),
        "{} does not exist: build the delta plugin first with `cargo build{} --features merge --manifest-path plugins/sinks/delta/Cargo.toml --target-dir target`",
        lib.display(),
        if profile == "release" { " --release" } else { "" }
    );
    lib
}

/// Both tables through the `deltalake` package: rows (keys and a few columns), the table
/// version, and the `txn` app ids of the log.
const READ: &str = r#"
import json, sys, os
from deltalake import DeltaTable
out = {}
for stream in ("messages", "conversations"):
    dt = DeltaTable(os.path.join(sys.argv[1], stream))
    cols = ["vendor", "account_id", "conversation_id", "updated_at", "state", "date"] if stream == "conversations" \
        else ["vendor", "account_id", "conversation_id", "message_id", "text", "date"]
    t = dt.to_pyarrow_table(columns=cols)
    if stream == "conversations":
        t = t.set_column(3, "updated_at", t.column("updated_at").cast("int64"))
    t = t.set_column(len(cols) - 1, "date", t.column("date").cast("string"))
    out[stream] = {"rows": t.to_pylist(), "version": dt.version(),
                   "partitions": dt.metadata().partition_columns,
                   "txn": dt.transaction_version("lake"),
                   "history": [h.get("pipe") for h in dt.history()]}
print(json.dumps(out))
"#;

fn pipeline(base_url: &str, org: &str, lookback_hours: u32) -> String {
    format!(
        r#"name = "lake"
plugin_dirs = ["plugins"]
# One commit per run (the final checkpoint), so restoring the state of before a run replays exactly that commit.
commit_interval_seconds = 3600

[source]
plugin = "giosg"
base_url = "{base_url}"
organization_id = "{org}"
token = "${{E2E_GIOSG_TOKEN}}"
page_size = 40
lookback_hours = {lookback_hours}

[[sinks]]
plugin = "delta"
path = "lake"
mode = "merge"
"#
    )
}

/// Runs the pipeline on `d`; returns the run report (`--report`).
async fn run(dir: &Path, d: &Dataset, lookback_hours: u32) -> Value {
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    std::fs::write(dir.join("p.toml"), pipeline(&sim.base_url(), &d.organization_id, lookback_hours)).unwrap();
    let out = run_pipe(dir, &["run", "p.toml", "--report", "report.json"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

fn micros(v: &Value) -> i64 {
    parse_timestamp(v.as_str().unwrap()).unwrap().timestamp_micros()
}

struct Tables {
    messages: Vec<Value>,
    conversations: Vec<Value>,
    messages_version: i64,
    conversations_version: i64,
    raw: Value,
}

fn read(dir: &Path) -> Tables {
    let v = python_json(READ, &[dir.join("lake").to_str().unwrap()]);
    Tables {
        messages: v["messages"]["rows"].as_array().unwrap().clone(),
        conversations: v["conversations"]["rows"].as_array().unwrap().clone(),
        messages_version: v["messages"]["version"].as_i64().unwrap(),
        conversations_version: v["conversations"]["version"].as_i64().unwrap(),
        raw: v,
    }
}

fn key(row: &Value, cols: &[&str]) -> Vec<String> {
    cols.iter().map(|c| row[*c].as_str().unwrap().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_runs_overlap_without_duplicates_and_replays_are_skipped() {
    let lib = delta_library();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    // The library is large (DataFusion): a hard link when the file system allows, else a copy.
    let dest = dir.path().join("plugins/libpipe_plugin_delta.so");
    if std::fs::hard_link(&lib, &dest).is_err() {
        std::fs::copy(&lib, &dest).unwrap();
    }

    // Run 1 sees the oldest 120 of 160 chats.
    let all = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(160) });
    let first = Dataset { chats: all.chats[..120].to_vec(), ..all.clone() };
    run(dir.path(), &first, 48).await;
    let t1 = read(dir.path());
    assert_eq!(t1.messages.len(), first.message_count());
    assert_eq!(t1.conversations.len(), 120);
    assert_eq!(t1.raw["messages"]["partitions"], json!(["vendor", "date"]));

    // Between runs: 40 new chats, every open chat ends. Run 2 looks back ten years, so it
    // re-delivers nearly every chat and message of run 1 as well.
    let mut grown = all.clone();
    let changed = grown.end_open_chats();
    assert!(!changed.is_empty());
    let state_file = dir.path().join(".pipe/state/lake.json");
    let state_before_run2 = std::fs::read(&state_file).unwrap();
    let report2 = run(dir.path(), &grown, 24 * 365 * 10).await;
    let t2 = read(dir.path());
    // The runs overlap: run 2 re-delivered messages run 1 had already committed.
    let new_messages = (grown.message_count() - first.message_count()) as u64;
    assert!(report2["rows"]["messages"].as_u64().unwrap() > new_messages, "no overlap: {report2}");

    // No duplicate primary key; every message; the latest state of every conversation.
    let msg_keys: Vec<Vec<String>> =
        t2.messages.iter().map(|r| key(r, &["vendor", "account_id", "conversation_id", "message_id"])).collect();
    let unique: BTreeSet<&Vec<String>> = msg_keys.iter().collect();
    assert_eq!(unique.len(), msg_keys.len(), "duplicate message keys");
    let want_msgs: BTreeSet<(String, String)> = grown
        .chats
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string())))
        .collect();
    let got_msgs: BTreeSet<(String, String)> = msg_keys.iter().map(|k| (k[2].clone(), k[3].clone())).collect();
    assert_eq!(got_msgs, want_msgs);
    let conv_keys: Vec<Vec<String>> =
        t2.conversations.iter().map(|r| key(r, &["vendor", "account_id", "conversation_id"])).collect();
    assert_eq!(conv_keys.iter().collect::<BTreeSet<_>>().len(), conv_keys.len(), "duplicate conversation keys");
    let got_convs: BTreeMap<String, i64> = t2
        .conversations
        .iter()
        .map(|r| (r["conversation_id"].as_str().unwrap().to_string(), r["updated_at"].as_i64().unwrap()))
        .collect();
    let want_convs: BTreeMap<String, i64> =
        grown.chats.iter().map(|c| (c.id().to_string(), micros(&c.chat["updated_at"]))).collect();
    assert_eq!(got_convs, want_convs, "the latest updated_at of every conversation");
    for r in &t2.conversations {
        if changed.contains(r["conversation_id"].as_str().unwrap()) {
            assert_eq!(r["state"], json!("ended"), "{r}");
        }
    }
    // Each commit carries the pipeline's txn with its checkpoint hash, versions 1, 2, 3, ...
    let txns: Vec<i64> = t2.raw["messages"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p.get("txns").and_then(|t| t.get("lake")).and_then(|t| t["version"].as_i64()))
        .collect();
    assert!(!txns.is_empty());
    let mut sorted = txns.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(txns, sorted, "newest first, increasing by commit");
    assert_eq!(*txns.first().unwrap(), txns.len() as i64);
    assert_eq!(t2.raw["messages"]["txn"], json!(2), "the table's txn version of app id `lake`: one per run");

    // A crash after the sink committed run 2 but before the state was saved: put the state of
    // before run 2 back and run again on the same data. The source re-delivers the same rows
    // up to the same checkpoints; the sink recognizes its commits and skips them.
    std::fs::write(&state_file, &state_before_run2).unwrap();
    let report3 = run(dir.path(), &grown, 24 * 365 * 10).await;
    let t3 = read(dir.path());
    assert_eq!(report3["rows"]["messages"], report2["rows"]["messages"], "the same rows were re-delivered");
    assert_eq!(report3["sinks"][0]["rows"], json!(0), "and none was written: {report3}");
    assert_eq!(t3.messages_version, t2.messages_version, "a replayed commit adds no table version");
    assert_eq!(t3.conversations_version, t2.conversations_version, "a replayed commit adds no table version");
    assert_eq!(t3.messages.len(), t2.messages.len());
    assert_eq!(t3.raw["messages"]["txn"], json!(2));
}
