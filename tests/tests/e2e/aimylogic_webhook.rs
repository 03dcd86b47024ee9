//! The Aimylogic webhook listener end to end: a running `pipe run` receives the simulator's
//! webhook POSTs (concurrent, some malformed), is stopped with SIGTERM or killed with
//! SIGKILL and restarted, and its Parquet output is read back with pyarrow.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pipe_sim::aimylogic::{PostOutcome, WebhookSender, webhook_events};
use pipe_tests::*;
use serde_json::{Value, json};

const TOKEN: &str = "HookChnl:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const SECRET: &str = "s3cret-hook-value";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn write_pipeline(dir: &Path, port: u16) {
    let toml = format!(
        r#"name = "hook"
commit_interval_seconds = 0.5

[source]
plugin = "aimylogic"
mode = "webhook"
token = "${{E2E_AIMY_TOKEN}}"
listen = "127.0.0.1:{port}"
path = "/hook"
secret = "${{E2E_HOOK_SECRET}}"
client_ids_file = "clients.txt"
max_body_bytes = 65536
ack_timeout_seconds = 10

[[sinks]]
plugin = "parquet"
path = "out"

[dead_letter]
path = "dl"
"#
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
}

/// Starts `pipe run p.toml` in `dir` (stderr appended to `dir/pipe.log`) and waits until
/// `/healthz` answers.
async fn start(dir: &Path, port: u16) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("pipe.log")).unwrap();
    let child = tokio::process::Command::new(pipe_bin())
        .args(["run", "p.toml"])
        .current_dir(dir)
        .env("PIPE_LOG", "info")
        .env("E2E_AIMY_TOKEN", TOKEN)
        .env("E2E_HOOK_SECRET", SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("pipe starts");
    wait_until_healthy(port, dir).await;
    child
}

/// `(conversation_id, message_id, sender_role)` of every committed message (none before the
/// first commit).
fn output_keys(dir: &Path) -> Vec<(String, String, String)> {
    let t = Parquet::at(dir.join("out/messages"))
        .columns(&["conversation_id", "message_id", "sender_role"])
        .allow_missing()
        .read();
    t.rows
        .iter()
        .map(|r| {
            (
                r["conversation_id"].as_str().unwrap().into(),
                r["message_id"].as_str().unwrap().into(),
                r["sender_role"].as_str().unwrap().into(),
            )
        })
        .collect()
}

fn dead_letter_reasons(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = files_under(&dir.join("dl"))
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["reason"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out
}

fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| std::fs::read(p).map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes())).unwrap_or(false))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_become_rows_and_malformed_ones_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), port);
    let mut child = start(dir.path(), port).await;
    let url = format!("http://127.0.0.1:{port}/hook");

    // 60 valid events in 20 POSTs, all in flight at once; half carry the secret in a header,
    // half in the query string.
    let (events, keys) = webhook_events(TOKEN, 60, 1);
    let by_header = WebhookSender::new(url.clone());
    let by_query = WebhookSender::new(format!("{url}?secret={SECRET}"));
    let posts = events.chunks(3).enumerate().map(|(i, chunk)| {
        let (h, q) = (by_header.clone(), by_query.clone());
        let body = serde_json::to_vec(chunk).unwrap();
        async move {
            if i % 2 == 0 {
                h.send_raw(body, &[("X-Webhook-Secret", SECRET)]).await
            } else {
                q.send_raw(body, &[]).await
            }
        }
    });
    let started = Instant::now();
    let outcomes: Vec<PostOutcome> = futures::future::join_all(posts).await;
    eprintln!(
        "20 concurrent POSTs (60 events) acknowledged after {:?} (commit_interval_seconds = 0.5)",
        started.elapsed()
    );
    assert!(outcomes.iter().all(|o| matches!(o, PostOutcome::Acked { .. })), "{outcomes:?}");

    // Malformed and refused bodies: 4xx at once, a dead letter each (not the wrong secret).
    let hdr = [("X-Webhook-Secret", SECRET)];
    let big = serde_json::to_vec(&vec![json!({"clientId": "x", "questionId": "big", "query": "y".repeat(1000)}); 80])
        .unwrap();
    assert!(big.len() > 65536);
    let refused = [
        (by_header.send_raw(b"not json {".to_vec(), &hdr).await, 400),
        (by_header.send_raw(b"42".to_vec(), &hdr).await, 400),
        (by_header.send_raw(b"[{\"clientId\": \"cut".to_vec(), &hdr).await, 400),
        (by_header.send_raw(big, &hdr).await, 413),
        (by_header.send_raw(serde_json::to_vec(&events[..1]).unwrap(), &[("X-Webhook-Secret", "wrong")]).await, 401),
    ];
    for (outcome, status) in &refused {
        assert_eq!(outcome, &PostOutcome::Refused(*status));
    }
    // A well-formed POST whose one event names no client: refused (422), one dead letter.
    let orphan = json!([{"token": TOKEN, "questionId": "orphan-1", "timestamp": "2026-02-02T08:00:00.000", "query": "who am I"}]);
    assert_eq!(by_header.send_raw(serde_json::to_vec(&orphan).unwrap(), &hdr).await, PostOutcome::Refused(422));
    // A POST mixing a valid event and a refused one: the valid one is acknowledged.
    let (extra, extra_keys) = webhook_events(TOKEN, 1, 9);
    let mut mixed = extra.clone();
    mixed.push(json!({"clientId": "no-token", "questionId": "nt-1", "query": "x"}));
    let started = Instant::now();
    assert!(matches!(by_header.send_raw(serde_json::to_vec(&mixed).unwrap(), &hdr).await, PostOutcome::Acked { .. }));
    eprintln!("one POST acknowledged after {:?}", started.elapsed());

    // Graceful stop: exit 0, everything committed.
    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));
    let mut got = output_keys(dir.path());
    got.sort();
    let mut want_keys: Vec<(String, String)> = keys.iter().chain(&extra_keys).cloned().collect();
    want_keys.sort();
    let got_keys: Vec<(String, String)> = got.iter().map(|(c, m, _)| (c.clone(), m.clone())).collect();
    assert_eq!(got_keys, want_keys, "exactly the valid events, each once");
    // Every 7th event is an agent reply.
    let agents: BTreeSet<String> =
        got.iter().filter(|r| r.2 == "agent").map(|r| r.1.split(':').next().unwrap().to_string()).collect();
    let want_agents: BTreeSet<String> = events
        .iter()
        .filter(|e| e["type"] == "agentResponse")
        .map(|e| e["questionId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(agents, want_agents);

    assert_eq!(
        dead_letter_reasons(dir.path()),
        ["malformed_body", "malformed_body", "malformed_body", "missing_client_id", "missing_token", "oversized_body"]
    );
    // New client ids were recorded for the nightly history run.
    let recorded: BTreeSet<String> =
        std::fs::read_to_string(dir.path().join("clients.txt")).unwrap().lines().map(str::to_string).collect();
    let seen: BTreeSet<String> =
        events.iter().chain(&extra).map(|e| e["clientId"].as_str().unwrap().to_string()).collect();
    assert_eq!(recorded, seen);

    // Neither the token nor the secret is in the logs or any output file.
    let log = service_log(dir.path());
    assert!(log.contains("webhook listening on"), "{log}");
    for secret in [TOKEN, "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567", SECRET] {
        assert!(!log.contains(secret), "secret in the log:\n{log}");
        let leaked: Vec<_> = files_containing(&dir.path().join("out"), secret)
            .into_iter()
            .chain(files_containing(&dir.path().join("dl"), secret))
            .collect();
        assert!(leaked.is_empty(), "{secret} written to {leaked:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), port);
    let mut child = start(dir.path(), port).await;
    let url = format!("http://127.0.0.1:{port}/hook?secret={SECRET}");

    // 120 events in 60 POSTs, 4 in flight; the sender retries every POST until it is
    // acknowledged (connection refused while pipe is down, 503 while it stops).
    let (events, keys) = webhook_events(TOKEN, 120, 2);
    let mut sender = WebhookSender::new(url);
    sender.max_attempts = 400;
    sender.retry_pause = Duration::from_millis(100);
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let chunks: Vec<Vec<Value>> = events.chunks(2).map(|c| c.to_vec()).collect();
    let n_posts = chunks.len();
    let sending = {
        let acked = acked.clone();
        tokio::spawn(async move {
            futures::stream::iter(chunks.into_iter().enumerate())
                .map(|(i, chunk)| {
                    let (sender, acked) = (sender.clone(), acked.clone());
                    async move {
                        // Spread the POSTs out so the kill lands mid-stream.
                        tokio::time::sleep(Duration::from_millis(30)).await;
                        let outcome = sender.send_events(&chunk).await;
                        if matches!(outcome, PostOutcome::Acked { .. }) {
                            acked.lock().unwrap().push(i);
                        }
                        outcome
                    }
                })
                .buffer_unordered(4)
                .collect::<Vec<_>>()
                .await
        })
    };

    // Kill -9 once a quarter of the POSTs are acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.lock().unwrap().len() < n_posts / 4 {
        assert!(Instant::now() < deadline, "POSTs are not acknowledged:\n{}", service_log(dir.path()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let acked_before_kill: Vec<usize> = acked.lock().unwrap().clone();
    assert!(acked_before_kill.len() < n_posts, "the kill came after the last POST");

    // Restart on the same port and state; the sender's retries get through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = start(dir.path(), port).await;
    let outcomes = sending.await.unwrap();
    assert!(outcomes.iter().all(|o| matches!(o, PostOutcome::Acked { .. })), "{outcomes:?}");
    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));

    let got = output_keys(dir.path());
    let got_set: BTreeSet<(String, String)> = got.iter().map(|(c, m, _)| (c.clone(), m.clone())).collect();
    // Every event acknowledged before the kill is in the output (it was not sent again).
    let per_post: Vec<Vec<(String, String)>> = events
        .chunks(2)
        .map(|chunk| {
            let ids: BTreeSet<&str> = chunk.iter().map(|e| e["questionId"].as_str().unwrap()).collect();
            keys.iter().filter(|(_, m)| ids.contains(m.split(':').next().unwrap())).cloned().collect()
        })
        .collect();
    for i in &acked_before_kill {
        for k in &per_post[*i] {
            assert!(got_set.contains(k), "acknowledged event {k:?} (POST {i}) lost after kill -9");
        }
    }
    // In the end every event is there; repeats of committed-but-unacknowledged events are
    // suppressed by the dedupe window kept in the state.
    let want: BTreeSet<(String, String)> = keys.iter().cloned().collect();
    assert_eq!(got_set, want);
    let duplicates = got.len() - got_set.len();
    eprintln!(
        "posts acknowledged before the kill: {} of {n_posts}; duplicate rows: {duplicates}",
        acked_before_kill.len()
    );
    assert_eq!(duplicates, 0, "an event was emitted twice");
}
