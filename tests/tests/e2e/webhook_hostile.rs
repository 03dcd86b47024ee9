//! The Aimylogic webhook listener against hostile or careless senders, and its default commit
//! cadence, end to end with the real `pipe` binary: a flood of idle and half-sent connections
//! under a low open-files limit, refused configurations (exit 2), events without the channel
//! token or with a huge `clientId`, and prompt acknowledgements without
//! `commit_interval_seconds`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pipe_sim::aimylogic::{PostOutcome, WebhookSender, webhook_events};
use pipe_tests::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "HostChnl:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const SECRET: &str = "a-webhook-secret-of-some-length";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A minimal webhook pipeline: no `commit_interval_seconds`, no limits set (defaults), the
/// secret from the environment; `extra` is appended to `[source]`.
fn write_pipeline(dir: &Path, listen: &str, extra: &str) {
    let toml = format!(
        r#"name = "hook"

[source]
plugin = "aimylogic"
mode = "webhook"
token = "${{E2E_AIMY_TOKEN}}"
listen = "{listen}"
path = "/hook"
{extra}

[[sinks]]
plugin = "parquet"
path = "out"

[dead_letter]
path = "dl"
"#
    );
    std::fs::write(dir.join("p.toml"), toml).unwrap();
}

/// `pipe run p.toml` in `dir` through `sh -c 'ulimit -n N; exec pipe ...'` (stderr to
/// `dir/pipe.log`), with the token and `secret` in the environment.
fn spawn(dir: &Path, nofile: u32, secret: &str) -> tokio::process::Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("pipe.log")).unwrap();
    tokio::process::Command::new("sh")
        .args(["-c", &format!("ulimit -n {nofile} && exec \"$0\" run p.toml")])
        .arg(pipe_bin())
        .current_dir(dir)
        .env("PIPE_LOG", "info")
        .env("E2E_AIMY_TOKEN", TOKEN)
        .env("E2E_HOOK_SECRET", secret)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("pipe starts")
}

/// [`spawn`], then waits until `/healthz` answers.
async fn start(dir: &Path, port: u16, nofile: u32) -> tokio::process::Child {
    let child = spawn(dir, nofile, SECRET);
    wait_until_healthy(port, dir).await;
    child
}

/// Sends every chunk as one POST (secret in the header), `senders` at a time: each outcome with
/// its latency.
async fn post_all(sender: &WebhookSender, chunks: Vec<Vec<Value>>, senders: usize) -> Vec<(PostOutcome, Duration)> {
    futures::stream::iter(chunks)
        .map(|chunk| {
            let sender = sender.clone();
            async move {
                let t = Instant::now();
                let body = serde_json::to_vec(&chunk).expect("events serialize");
                (sender.send_raw(body, &[("X-Webhook-Secret", SECRET)]).await, t.elapsed())
            }
        })
        .buffer_unordered(senders)
        .collect()
        .await
}

/// `(conversation_id, message_id)` of every committed message, repeats kept.
fn output_keys(dir: &Path) -> Vec<(String, String)> {
    let t = Parquet::at(dir.join("out/messages")).columns(&["conversation_id", "message_id"]).allow_missing().read();
    t.rows
        .iter()
        .map(|r| (r["conversation_id"].as_str().unwrap().into(), r["message_id"].as_str().unwrap().into()))
        .collect()
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    files_under(&dir.join("dl"))
        .iter()
        .flat_map(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every event of `posts` (by their message keys) is in the output exactly once.
fn assert_each_once(dir: &Path, want: &[(String, String)]) {
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for k in output_keys(dir) {
        *counts.entry(k).or_default() += 1;
    }
    for k in want {
        assert_eq!(counts.get(k), Some(&1), "acknowledged event {k:?} is not in the output exactly once");
    }
}

/// One hostile connection, again and again until `stop`: connects, writes `prefix` (nothing,
/// half a request head, or a head and half a body) and holds the connection until the server
/// closes it. Counts the connections the server cut.
async fn hostile(port: u16, prefix: &'static [u8], stop: Arc<AtomicBool>, cut: Arc<AtomicUsize>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut conn) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if conn.write_all(prefix).await.is_err() {
            continue;
        }
        let mut buf = [0u8; 512];
        // Hold it: read until the server closes (or answers and closes).
        loop {
            tokio::select! {
                n = conn.read(&mut buf) => match n {
                    Ok(0) | Err(_) => {
                        cut.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        break;
                    }
                    Ok(_) => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(200)) => {
                    if stop.load(Ordering::Relaxed) { return; }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_legitimate_posts_through_a_flood_of_idle_and_half_sent_connections() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), &format!("127.0.0.1:{port}"), "secret = \"${E2E_HOOK_SECRET}\"");
    // 256 descriptors for the whole process; the flood below is 600 connections.
    let mut child = start(dir.path(), port, 256).await;

    let stop_flood = Arc::new(AtomicBool::new(false));
    let cut = Arc::new(AtomicUsize::new(0));
    let kinds: [&'static [u8]; 3] = [
        b"",                                                                                       // idle
        b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/js",                 // half a head
        b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n[{\"clientId\"", // half a body
    ];
    let flood: Vec<_> =
        (0..600).map(|i| tokio::spawn(hostile(port, kinds[i % 3], stop_flood.clone(), cut.clone()))).collect();
    // Let the flood take every connection slot first.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Two legitimate senders, 10 POSTs of 2 events each, secret in the header.
    let (events, keys) = webhook_events(TOKEN, 40, 5);
    let sender = WebhookSender::new(format!("http://127.0.0.1:{port}/hook"));
    let chunks: Vec<Vec<Value>> = events.chunks(2).map(|c| c.to_vec()).collect();
    let started = Instant::now();
    let results = post_all(&sender, chunks, 2).await;
    let slowest = results.iter().map(|r| r.1).max().unwrap();
    eprintln!(
        "20 POSTs through the flood in {:?}; slowest {slowest:?}; connections cut so far: {}",
        started.elapsed(),
        cut.load(Ordering::Relaxed)
    );
    stop_flood.store(true, Ordering::Relaxed);
    assert!(
        results.iter().all(|r| matches!(r.0, PostOutcome::Acked { .. })),
        "{results:?}\n{}",
        service_log(dir.path())
    );
    assert!(slowest < Duration::from_secs(20), "a POST waited {slowest:?} behind the flood");
    // The listener did cut the hostile connections (they do not just sit in the backlog).
    assert!(cut.load(Ordering::Relaxed) >= 200, "only {} hostile connections were cut", cut.load(Ordering::Relaxed));
    for f in flood {
        let _ = tokio::time::timeout(Duration::from_secs(10), f).await;
    }

    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));
    assert_each_once(dir.path(), &keys);
    let log = service_log(dir.path());
    assert!(!log.contains("panicked"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refuses_an_empty_or_short_secret_and_an_open_address_without_one() {
    let cases: [(&str, &str, &str); 4] = [
        ("127.0.0.1:0", "secret = \"${E2E_HOOK_SECRET}\"", ""),
        ("127.0.0.1:0", "secret = \"${E2E_HOOK_SECRET}\"", "short-secret"),
        ("0.0.0.0:0", "", SECRET),
        ("0.0.0.0:0", "secret_header = \"X-Hook\"", SECRET),
    ];
    for (listen, extra, secret) in cases {
        let dir = tempfile::tempdir().unwrap();
        write_pipeline(dir.path(), listen, extra);
        let mut child = spawn(dir.path(), 1024, secret);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("pipe kept running with listen = {listen}, {extra:?}"))
            .unwrap();
        let log = service_log(dir.path());
        assert_eq!(status.code(), Some(2), "listen = {listen}, {extra:?}:\n{log}");
        assert!(log.contains("secret"), "the error names the key:\n{log}");
        if !secret.is_empty() {
            assert!(!log.contains(secret), "the secret is in the log:\n{log}");
        }
    }
    // Explicitly allowed: starts, and stops cleanly.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), &format!("0.0.0.0:{port}"), "allow_unauthenticated = true");
    let mut child = start(dir.path(), port, 1024).await;
    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_refuses_events_without_token_or_with_a_huge_client_id_and_keeps_them_out_of_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), &format!("127.0.0.1:{port}"), "secret = \"${E2E_HOOK_SECRET}\"");
    let mut child = start(dir.path(), port, 1024).await;
    let sender = WebhookSender::new(format!("http://127.0.0.1:{port}/hook"));
    let hdr = [("X-Webhook-Secret", SECRET)];

    let (events, keys) = webhook_events(TOKEN, 2, 3);
    let mut tokenless = events[0].clone();
    tokenless.as_object_mut().unwrap().remove("token");
    tokenless["questionId"] = json!("tokenless-1");
    let huge_id = "H".repeat(900 * 1024);
    let mut huge = events[0].clone();
    huge["clientId"] = json!(huge_id);
    huge["questionId"] = json!("huge-1");

    assert!(matches!(
        sender.send_raw(serde_json::to_vec(&events[..1]).unwrap(), &hdr).await,
        PostOutcome::Acked { .. }
    ));
    assert_eq!(sender.send_raw(serde_json::to_vec(&[tokenless]).unwrap(), &hdr).await, PostOutcome::Refused(422));
    assert_eq!(sender.send_raw(serde_json::to_vec(&[huge]).unwrap(), &hdr).await, PostOutcome::Refused(422));
    assert!(matches!(
        sender.send_raw(serde_json::to_vec(&events[1..]).unwrap(), &hdr).await,
        PostOutcome::Acked { .. }
    ));
    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));

    // Only the two valid events are rows.
    let got = output_keys(dir.path());
    let mut want = keys.clone();
    want.sort();
    let mut got_sorted = got.clone();
    got_sorted.sort();
    assert_eq!(got_sorted, want);
    // One dead letter each, bounded in size, no token in them.
    let dl = dead_letters(dir.path());
    let mut reasons: Vec<&str> = dl.iter().map(|d| d["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["missing_token", "oversized_id"]);
    for d in &dl {
        let text = d.to_string();
        assert!(text.len() < 100 * 1024, "a dead letter of {} bytes", text.len());
        assert!(!text.contains("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"), "token in a dead letter");
    }
    // The state is small and holds neither refused event.
    let state_files = files_under(&dir.path().join(".pipe/state"));
    assert!(!state_files.is_empty(), "no state saved");
    for f in state_files {
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.len() < 4096, "{} is {} bytes", f.display(), text.len());
        assert!(!text.contains("HHHH") && !text.contains("tokenless-1") && !text.contains("huge-1"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_without_commit_interval_acknowledges_each_post_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    write_pipeline(dir.path(), &format!("127.0.0.1:{port}"), "secret = \"${E2E_HOOK_SECRET}\"");
    let mut child = start(dir.path(), port, 1024).await;
    let sender = WebhookSender::new(format!("http://127.0.0.1:{port}/hook"));

    // 30 POSTs (one or two events each) from 4 senders at once.
    let (events, keys) = webhook_events(TOKEN, 45, 11);
    let chunks: Vec<Vec<Value>> = events.chunks(3).flat_map(|c| [c[..1].to_vec(), c[1..].to_vec()]).collect();
    assert_eq!(chunks.len(), 30);
    let results = post_all(&sender, chunks, 4).await;
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.1).collect();
    latencies.sort();
    eprintln!("30 POSTs, 4 senders: ack latency p50 {:?}, max {:?}", latencies[15], latencies[29]);
    for (outcome, took) in &results {
        // First try, within 5 s: no 503 after the 30 s ack timeout, no retry.
        assert_eq!(outcome, &PostOutcome::Acked { attempts: 1 }, "{}", service_log(dir.path()));
        assert!(*took < Duration::from_secs(5), "a POST was acknowledged after {took:?}");
    }

    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));
    assert_each_once(dir.path(), &keys);
    assert_eq!(output_keys(dir.path()).len(), keys.len(), "extra rows");
}
