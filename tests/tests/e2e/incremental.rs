//! Incremental runs, crash safety and completeness, with the real `pipe` binary against the
//! giosg simulator and the output read back with pyarrow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{Dataset, GiosgSim, SimConfig, SimOptions, generate, parse_timestamp};
use pipe_tests::*;
use serde_json::{Value, json};

fn pipeline(base_url: &str, org: &str, extra: &str) -> String {
    format!(
        "name = \"inc\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{base_url}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 40\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n"
    )
}

async fn run(dir: &Path, toml: &str, token: &str) -> std::process::Output {
    std::fs::write(dir.join("p.toml"), toml).unwrap();
    run_pipe(dir, &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", token)]).await
}

/// Deduplicated output: message keys, and the latest `updated_at` per conversation.
fn committed(dir: &Path) -> (BTreeSet<(String, String)>, BTreeMap<String, i64>, usize) {
    // A stream never written (nothing committed yet) reads as empty.
    let v = Parquet::streams(dir.join("out"), &["messages", "conversations"]).allow_missing().read_streams();
    let msgs: Vec<&Value> = v["messages"].rows.iter().collect();
    let keys = msgs
        .iter()
        .map(|m| (m["conversation_id"].as_str().unwrap().to_string(), m["message_id"].as_str().unwrap().to_string()))
        .collect();
    let mut convs = BTreeMap::new();
    for c in &v["conversations"].rows {
        let e = convs.entry(c["conversation_id"].as_str().unwrap().to_string()).or_insert(i64::MIN);
        *e = (*e).max(c["updated_at"].as_i64().unwrap());
    }
    (keys, convs, msgs.len())
}

fn truth(d: &Dataset) -> (BTreeSet<(String, String)>, BTreeMap<String, i64>) {
    let keys = d
        .chats
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string())))
        .collect();
    let convs = d.chats.iter().map(|c| (c.id().to_string(), micros(&c.chat["updated_at"]))).collect();
    (keys, convs)
}

fn micros(v: &Value) -> i64 {
    parse_timestamp(v.as_str().unwrap()).unwrap().timestamp_micros()
}

/// The chats whose messages a run fetched, from the simulator's request log.
fn fetched_chats(sim: &GiosgSim) -> BTreeSet<String> {
    sim.request_log()
        .iter()
        .filter_map(|line| {
            let path = line.split_whitespace().nth(1)?;
            let rest = path.split("/owned_chats/").nth(1)?;
            let (id, tail) = rest.split_once('/')?;
            tail.starts_with("messages").then(|| id.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_run_fetches_only_new_and_changed_chats() {
    // One generation of 190 chats; the first run sees the oldest 150 of them.
    let all = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(190) });
    let first = Dataset { chats: all.chats[..150].to_vec(), ..all.clone() };
    let dir = tempfile::tempdir().unwrap();

    let sim = GiosgSim::start(Arc::new(first.clone()), SimOptions::default()).await.unwrap();
    let out = run(dir.path(), &pipeline(&sim.base_url(), &first.organization_id, ""), &first.token).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(fetched_chats(&sim).len(), 150, "the first run fetches every chat");
    sim.shutdown().await;

    // Between runs: 40 new chats arrive, and every open chat gets a last message and ends.
    let mut grown = all.clone();
    let changed = grown.end_open_chats();
    assert!(!changed.is_empty(), "the dataset has open chats to change");
    let new: BTreeSet<String> =
        grown.chats[150..].iter().filter(|c| c.chat["is_ended"] == true).map(|c| c.id().to_string()).collect();
    let new_open: BTreeSet<String> =
        grown.chats[150..].iter().filter(|c| c.chat["is_ended"] == false).map(|c| c.id().to_string()).collect();

    let sim = GiosgSim::start(Arc::new(grown.clone()), SimOptions::default()).await.unwrap();
    let out = run(dir.path(), &pipeline(&sim.base_url(), &grown.organization_id, ""), &grown.token).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let expected: BTreeSet<String> = changed.iter().chain(&new).chain(&new_open).cloned().collect();
    assert_eq!(fetched_chats(&sim), expected, "the second run fetches exactly the new and changed chats");
    sim.shutdown().await;

    // Union of both runs, deduplicated by primary key, latest conversation row: the truth.
    let (keys, convs, _) = committed(dir.path());
    let (want_keys, want_convs) = truth(&grown);
    assert_eq!(keys, want_keys);
    assert_eq!(convs, want_convs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_missing_messages_ends_the_run_partial_naming_it() {
    let mut d = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(30) });
    // The server silently loses messages of one chat (as if a page went missing).
    let victim =
        d.chats.iter().position(|c| c.messages.iter().filter(|m| m.json["type"] == "msg").count() >= 3).unwrap();
    let id = d.chats[victim].id().to_string();
    let msgs = &mut d.chats[victim].messages;
    let first_msg = msgs.iter().position(|m| m.json["type"] == "msg").unwrap();
    msgs.drain(first_msg..first_msg + 2);
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim.base_url(), &d.organization_id, "")).unwrap();
    let out =
        run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains(&id), "the error names the chat: {}", stderr(&out));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["outcome"], "partial");
    assert_eq!(report["completeness"]["incomplete_conversations"], json!([id]));
    // Everything that did arrive is committed nonetheless.
    let (keys, _, _) = committed(dir.path());
    assert_eq!(keys.len(), d.message_count());
}

/// Forwards loopback TCP to `upstream`, delaying every chunk the client sends, so each
/// request takes a few milliseconds and a run lasts long enough to be killed mid-way.
async fn slow_proxy(upstream: std::net::SocketAddr, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut cr, mut cw) = client.split();
                let (mut sr, mut sw) = server.split();
                let up = async {
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut sw).await;
                };
                let down = tokio::io::copy(&mut sr, &mut cw);
                let _ = tokio::join!(up, down);
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_loses_nothing_and_shows_no_partial_file() {
    let d = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(400) });
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    let upstream: std::net::SocketAddr = sim.base_url().trim_start_matches("http://").parse().unwrap();
    let base = slow_proxy(upstream, Duration::from_millis(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = pipeline(&base, &d.organization_id, "concurrency = 2\ncheckpoint_every = 15")
        .replace("name = \"inc\"", "name = \"inc\"\ncommit_interval_seconds = 0");
    std::fs::write(dir.path().join("p.toml"), &toml).unwrap();
    let state_file = dir.path().join(".pipe/state/inc.json");

    // A small deterministic generator for the kill moments.
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kills = 0;
    let mut finished_early = 0;
    while kills < 20 {
        let mut child = tokio::process::Command::new(pipe_bin())
            .args(["-q", "run", "p.toml"])
            .current_dir(dir.path())
            .env("E2E_GIOSG_TOKEN", &d.token)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Wait for a first commit (the state file), then kill at a random moment.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !state_file.exists() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(next() % 700)).await;
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "run exited {status:?} before the kill");
            finished_early += 1;
            if finished_early > 3 {
                break;
            }
            continue;
        }
        child.start_kill().unwrap();
        child.wait().await.unwrap();
        kills += 1;
        let state: Value =
            serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).expect("the state file always parses");
        assert!(state["source_state"].is_object());
    }
    assert!(kills >= 10, "only {kills} kills landed mid-run (the run is too fast for the test)");

    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    sim.shutdown().await;

    // Nothing partial is visible: every *.parquet opens; killed runs' temporary files are hidden.
    for f in files_under(&dir.path().join("out")) {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".parquet") {
            assert!(!name.starts_with('.'), "{name}");
        } else {
            assert!(name.starts_with('.'), "a non-hidden temporary file is visible: {}", f.display());
        }
    }
    let (keys, convs, rows) = committed(dir.path());
    let (want_keys, want_convs) = truth(&d);
    assert_eq!(keys, want_keys, "after {kills} kills, every message is there exactly (deduplicated)");
    assert_eq!(convs, want_convs);
    assert!(rows >= want_keys.len());
}
