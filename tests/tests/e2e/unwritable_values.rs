//! Values a sink could not write before (issue 16): a partition value too long for a
//! directory name, with `/` and `..` in it, on the Parquet sink, and a time beyond chrono's
//! range on the JSON sink. The real `pipe` binary against the Aimylogic simulator; the output
//! is read back with pyarrow and Python's `json`. Every row is written, the run ends 0, and the
//! run after it is not stuck.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use pipe_sim::aimylogic::{AimylogicSim, Dataset, SimConfig, generate};
use pipe_tests::*;
use serde_json::json;

const TOKEN: &str = "E2eVals7:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";

fn pipeline(sim: &AimylogicSim, d: &Dataset, sink: &str) -> String {
    let ids: Vec<String> = d.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    format!(
        "name = \"vals\"\n\n[source]\nplugin = \"aimylogic\"\nbase_url = \"{}\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\nclient_ids = [{}]\npage_size = 4\n\n[[sinks]]\n{sink}\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        ids.join(", ")
    )
}

/// `dataset` with client `i` renamed to `id` (its expected rows follow).
fn rename(d: &mut Dataset, i: usize, id: &str) {
    d.clients[i].id = id.to_string();
    for e in &mut d.clients[i].expected {
        e.conversation_id = id.to_string();
    }
}

/// Reads every Parquet file under `dir` on its own (no Hive partition inference) and prints
/// `(conversation_id, message_id)` of each row.
const READ_FILES: &str = r#"
import json, sys, glob
import pyarrow.parquet as pq
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/**/*.parquet", recursive=True)):
    t = pq.read_table(f, columns=["conversation_id", "message_id"])
    rows += [[c, m] for c, m in zip(t.column(0).to_pylist(), t.column(1).to_pylist())]
print(json.dumps(rows))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_partition_values_too_long_or_with_slashes_and_dots_are_encoded_and_every_row_written() {
    let mut d = generate(&SimConfig { seed: 3, clients: 4, max_turns: 6, token: TOKEN.into() });
    let long = format!("../{}/..", "x".repeat(300));
    rename(&mut d, 0, &long);
    rename(&mut d, 1, "team/../ops");
    let d = Arc::new(d);
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = "plugin = \"parquet\"\npath = \"out\"\npartition_by = [\"conversation_id\"]";
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, sink)).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];

    let first = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!dir.path().join("dl").exists(), "nothing dead-lettered");
    let truth: BTreeSet<(String, String)> =
        d.expected().into_iter().map(|e| (e.conversation_id, e.message_id)).collect();
    let read = |root: &Path| -> Vec<(String, String)> {
        let rows = python_json(READ_FILES, &[root.to_str().unwrap()]);
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| (r[0].as_str().unwrap().into(), r[1].as_str().unwrap().into()))
            .collect()
    };
    let rows = read(&dir.path().join("out/messages"));
    assert_eq!(rows.len(), truth.len(), "every row once");
    assert_eq!(rows.into_iter().collect::<BTreeSet<_>>(), truth);

    // The directories: every one directly below the stream, none longer than 255 bytes; the
    // short value escaped as Hive does, the long one cut and hashed; no file outside `out`.
    let dirs: Vec<String> = std::fs::read_dir(dir.path().join("out/messages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(dirs.len(), 4, "{dirs:?}");
    assert!(dirs.iter().all(|n| n.len() <= 255 && n.starts_with("conversation_id=")), "{dirs:?}");
    assert!(dirs.contains(&"conversation_id=team%2F..%2Fops".to_string()), "{dirs:?}");
    let hashed: Vec<&String> = dirs.iter().filter(|n| n.len() == 255).collect();
    assert_eq!(hashed.len(), 1, "{dirs:?}");
    assert!(hashed[0].starts_with("conversation_id=..%2Fxxxx") && hashed[0].contains('~'), "{}", hashed[0]);
    for f in files_under(dir.path()) {
        let rel = f.strip_prefix(dir.path()).unwrap();
        assert!(rel.starts_with("out") || rel.starts_with(".pipe") || rel.starts_with("p.toml"), "{}", rel.display());
    }

    // The next run: not stuck, nothing new, nothing rewritten.
    let second = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(read(&dir.path().join("out/messages")).len(), truth.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_a_time_beyond_chronos_range_is_a_named_dead_letter_and_never_fails_a_run() {
    let mut d = generate(&SimConfig { seed: 4, clients: 3, max_turns: 5, token: TOKEN.into() });
    // 9e15 ms after the epoch: year 287168, within i64 microseconds, beyond chrono's ±262143.
    // It once failed the JSON sink on this run and every run after it. The source's checked
    // conversion now stops it before any sink (`time_out_of_range`); a time that still reaches
    // the JSON sink (a library source) is written losslessly (`json_rows` unit tests).
    let item = &mut d.clients[0].items[0];
    item["timestamp"] = json!(9_000_000_000_000_000i64);
    let qid = item["questionId"].as_str().unwrap().to_string();
    let d = Arc::new(d);
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, "plugin = \"json\"\npath = \"out\"")).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];

    let first = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    assert!(stderr(&first).contains(&format!("{qid} (time_out_of_range)")), "names it: {}", stderr(&first));
    let lines = |stream: &str| jsonl_rows(&dir.path().join("out").join(stream));
    let messages = lines("messages");
    let got: BTreeSet<(String, String)> = messages
        .iter()
        .map(|m| (m["conversation_id"].as_str().unwrap().into(), m["message_id"].as_str().unwrap().into()))
        .collect();
    let truth: BTreeSet<(String, String)> = d
        .expected()
        .into_iter()
        .map(|e| (e.conversation_id, e.message_id))
        .filter(|(_, m)| !m.starts_with(&format!("{qid}:")))
        .collect();
    assert_eq!((messages.len(), got), (truth.len(), truth), "every other row, once");
    assert!(messages.iter().all(|m| m["sent_at"].as_str().unwrap().ends_with('Z')));
    assert!(!lines("conversations").is_empty());

    // The next run is not stuck: it completes its work and names the item again (the vendor
    // still holds it and it is still not exported).
    let second = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(second.status.code(), Some(3), "{}", stderr(&second));
    assert!(stderr(&second).contains(&qid), "{}", stderr(&second));
}
