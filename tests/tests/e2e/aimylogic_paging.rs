//! Aimylogic history paging and clocks as a real Chat API might differ from our notes (issue
//! 17, parts 2 and 7; docs/vendors/aimylogic.md §2.5 assumes `limit`/`offset`, §1 a zone-less
//! `timestamp`): the real `pipe` binary against the simulator capping its pages, ignoring
//! `offset` (and `from`), and writing times in Moscow's wall clock. Output read back with
//! pyarrow and compared row for row with the simulator's ground truth.

use std::path::Path;
use std::sync::Arc;

use pipe_sim::aimylogic::{AimylogicSim, Dataset, SimConfig, generate};
use pipe_tests::*;
use serde_json::Value;

const TOKEN: &str = "E2ePage7:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";

/// One exported message: conversation, message id, role, type, text, sent_at (µs UTC).
type Row = (String, String, String, String, Option<String>, i64);

fn pipeline(sim: &AimylogicSim, d: &Dataset, extra: &str) -> String {
    let ids: Vec<String> = d.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    format!(
        "name = \"aimy\"\n\n[source]\nplugin = \"aimylogic\"\nbase_url = \"{}\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\nclient_ids = [{}]\nconcurrency = 2\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        ids.join(", ")
    )
}

/// Every message row committed under `dir/out/messages`, sorted (duplicates kept).
fn rows(dir: &Path) -> Vec<Row> {
    let t = Parquet::at(dir.join("out/messages"))
        .columns(&["conversation_id", "message_id", "sender_role", "message_type", "text", "sent_at"])
        .allow_missing()
        .read();
    let s = |r: &Value, k: &str| r[k].as_str().unwrap().to_string();
    let mut out: Vec<Row> = t
        .rows
        .iter()
        .map(|r| {
            let text = r["text"].as_str().map(str::to_string);
            (
                s(r, "conversation_id"),
                s(r, "message_id"),
                s(r, "sender_role"),
                s(r, "message_type"),
                text,
                r["sent_at"].as_i64().unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// The rows a correct export holds, of the clients not in `skip`, sorted.
fn truth(d: &Dataset, skip: &[&str]) -> Vec<Row> {
    let mut out: Vec<Row> = d
        .expected()
        .into_iter()
        .filter(|e| !skip.contains(&e.conversation_id.as_str()))
        .map(|e| (e.conversation_id, e.message_id, e.sender_role, e.message_type, e.text, e.sent_at_us))
        .collect();
    out.sort();
    out
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    files_under(&dir.join("dl"))
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect()
}

fn dataset() -> Dataset {
    generate(&SimConfig { seed: 5, clients: 6, max_turns: 20, token: TOKEN.into() })
}

/// A client with more than two pages of 3 items and no instant shared by 3 items (a page of
/// 3 all at one instant is ambiguous when `offset` is ignored, and would be `incomplete`).
fn long_client(d: &Dataset) -> String {
    let c = d
        .clients
        .iter()
        .find(|c| c.items.len() > 9 && c.item_times_us.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])))
        .expect("a long history");
    c.id.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capped_pages_and_an_ignored_offset_still_export_every_item_exactly_once() {
    let d = dataset();
    let long = long_client(&d);
    let sim = AimylogicSim::start(Arc::new(d.clone())).await.unwrap();
    // Pages of at most 3 whatever `limit` asks; one client's history ignores `offset` too.
    sim.max_page_size(Some(3));
    sim.ignore_offset(Some(&long));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, "page_size = 5")).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];

    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(dir.path()), truth(&d, &[]), "every message exactly once, with its role, type, text and time");
    assert!(dead_letters(dir.path()).is_empty(), "{:?}", dead_letters(dir.path()));
    // The long client was paged by time (`from` moving), the others by what arrived.
    let log = sim.request_log();
    assert!(log.iter().filter(|l| l.contains(&long)).count() > 3, "{log:?}");

    // Nothing new: the next run exports nothing more (the watermarks are right).
    let again = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(rows(dir.path()), truth(&d, &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_no_strategy_can_page_is_incomplete_and_keeps_its_watermark() {
    let d = dataset();
    let long = long_client(&d);
    let sim = AimylogicSim::start(Arc::new(d.clone())).await.unwrap();
    // Ignoring `offset` and `from`: neither paging gets past the first page.
    sim.ignore_offset(Some(&long));
    sim.ignore_from(Some(&long));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, "page_size = 3")).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];

    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "partial: {err}");
    assert!(err.contains(&long), "the client is named: {err}");
    let dls = dead_letters(dir.path());
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(
        (dls[0]["reason"].as_str(), dls[0]["key"]["conversation_id"].as_str()),
        (Some("incomplete"), Some(long.as_str()))
    );
    assert!(dls[0]["message"].as_str().unwrap().contains("ignores `from` too"), "{}", dls[0]);
    assert!(!dls[0].to_string().contains("5f0c1b2a3d4e5f6071"), "no token in the dead letter");
    assert_eq!(rows(dir.path()), truth(&d, &[&long]), "every other client, exactly; nothing of the cut one");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["completeness"]["incomplete_conversations"], serde_json::json!([long]));
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".pipe/state/aimy.json")).unwrap()).unwrap();
    let watermarks = state["source_state"]["clients"].as_object().unwrap();
    assert!(!watermarks.contains_key(&long), "no watermark for the cut client: {state}");
    assert_eq!(watermarks.len(), d.clients.len() - 1);

    // The vendor pages properly again: the next run exports the client, whole.
    sim.ignore_offset(None);
    sim.ignore_from(None);
    let again = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(rows(dir.path()), truth(&d, &[]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_less_times_are_read_in_the_configured_timezone() {
    let d = dataset();
    let sim = AimylogicSim::start(Arc::new(d.clone())).await.unwrap();
    // The vendor writes Moscow wall-clock times without a zone (docs/vendors/aimylogic.md §1).
    sim.zone_less_in(Some("Europe/Moscow"));
    let env = [("E2E_AIMY_TOKEN", TOKEN)];

    let moscow = tempfile::tempdir().unwrap();
    std::fs::write(moscow.path().join("p.toml"), pipeline(&sim, &d, "timezone = \"Europe/Moscow\"")).unwrap();
    let out = run_pipe(moscow.path(), &["run", "p.toml"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(moscow.path()), truth(&d, &[]), "the true instants");

    // Without the key the same answers are read as UTC: every time three hours late (what
    // `timezone` is for), nothing else different.
    let utc = tempfile::tempdir().unwrap();
    std::fs::write(utc.path().join("p.toml"), pipeline(&sim, &d, "")).unwrap();
    let out = run_pipe(utc.path(), &["run", "p.toml"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shifted: Vec<Row> =
        truth(&d, &[]).into_iter().map(|(c, m, r, t, x, at)| (c, m, r, t, x, at + 3 * 3_600_000_000)).collect();
    assert_eq!(rows(utc.path()), shifted);

    // An unknown zone is a configuration error naming the key (exit 2).
    let bad = tempfile::tempdir().unwrap();
    std::fs::write(bad.path().join("p.toml"), pipeline(&sim, &d, "timezone = \"Mars/Olympus\"")).unwrap();
    let out = run_pipe(bad.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("timezone"), "{}", stderr(&out));
}
