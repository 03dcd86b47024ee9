//! `plugins/example`, built as a project of its own (not a workspace member), loaded by the
//! real `pipe` binary from a plugin directory: its `acme` source pages through a local Acme
//! Chat server with the SDK's HTTP client, its `redact_digits` transform masks numbers, its
//! `row_counts` sink and the built-in json sink commit the output; a second run resumes from
//! the checkpoint. Then `pipe plugin check` passes on the library.
//!
//! The library is built by `.ci/run` (`cargo build --manifest-path plugins/example/Cargo.toml
//! --target-dir target`); this test only finds it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use pipe_tests::*;
use serde_json::{Value, json};

const TOKEN: &str = "acme-test-token-42";
const CONVERSATIONS: usize = 25;

/// `target/<profile>/libpipe_example.so`, with the command that builds it when missing.
fn example_library() -> PathBuf {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let lib = target.join(profile).join("libpipe_example.so");
    assert!(
        lib.exists(),
        "{} does not exist: build the example first with `cargo build{} --manifest-path plugins/example/Cargo.toml --target-dir target`",
        lib.display(),
        if profile == "release" { " --release" } else { "" }
    );
    lib
}

/// The Acme Chat account: conversations updated one minute apart, each with three messages,
/// one of which carries a card number.
fn account() -> Vec<Value> {
    (0..CONVERSATIONS)
        .map(|i| {
            let at = |min: usize| format!("2026-01-05T{:02}:{:02}:00Z", 8 + (i + min) / 60, (i + min) % 60);
            json!({
                "id": format!("c{i:03}"), "created_at": at(0), "updated_at": at(2), "status": if i % 4 == 0 { "open" } else { "closed" },
                "customer": {"id": format!("u{i}"), "name": format!("Customer {i}")}, "agent_ids": ["a1"],
                "messages": [
                    {"id": format!("m{i}-1"), "sent_at": at(0), "author": "customer", "author_id": format!("u{i}"), "text": format!("my card is 4111 1111 1111 {i:04}, order {i}")},
                    {"id": format!("m{i}-2"), "sent_at": at(1), "author": "agent", "author_id": "a1", "text": "Thanks, checking."},
                    {"id": format!("m{i}-3"), "sent_at": at(1), "author": "bot", "text": null}
                ]
            })
        })
        .collect()
}

#[derive(Clone, Default)]
struct Server {
    requests: Arc<Mutex<Vec<String>>>,
}

/// `GET /v1/conversations`: Bearer auth, `updated_since` inclusive, `limit`, cursor = offset.
async fn conversations(
    State(s): State<Server>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    s.requests.lock().unwrap().push(format!("{q:?}"));
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {TOKEN}")) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "bad token"})));
    }
    let since = q.get("updated_since").cloned().unwrap_or_default();
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(100);
    let offset: usize = q.get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    // RFC 3339 UTC strings of one shape compare like the times (the source sends microseconds).
    let norm = |t: &str| t.trim_end_matches('Z').trim_end_matches(".000000").to_string();
    let matching: Vec<Value> = account()
        .into_iter()
        .filter(|c| since.is_empty() || norm(c["updated_at"].as_str().unwrap()) >= norm(&since))
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let next = (offset + limit < matching.len()).then(|| (offset + limit).to_string());
    (StatusCode::OK, Json(json!({"data": page, "next_cursor": next})))
}

async fn start_server() -> (String, Server) {
    let state = Server::default();
    let app = Router::new().route("/v1/conversations", get(conversations)).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn pipeline(base_url: &str) -> String {
    format!(
        r#"name = "acme"
plugin_dirs = ["plugins"]
commit_interval_seconds = 0

[source]
plugin = "acme"
base_url = "{base_url}"
account = "acct-1"
token = "${{ACME_TOKEN}}"
page_size = 10

[[transforms]]
plugin = "redact_digits"
min_digits = 4

[[sinks]]
plugin = "json"
path = "out/json"

[[sinks]]
plugin = "row_counts"
path = "out/counts"

[state]
path = "state"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standalone_example_library_runs_in_a_pipeline_and_resumes() {
    let lib = example_library();
    let (base_url, server) = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::copy(&lib, dir.path().join("plugins/libpipe_example.so")).unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&base_url)).unwrap();
    let env = [("ACME_TOKEN", TOKEN)];

    // `pipe plugins` lists the three plugins of the library.
    let out = run_pipe(dir.path(), &["plugins", "--plugin-dir", "plugins"], &[]).await;
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    for (name, kind) in [("acme", "source"), ("redact_digits", "transform"), ("row_counts", "sink")] {
        assert!(
            listing.lines().any(|l| l.starts_with(name) && l.contains(kind) && l.contains("libpipe_example.so")),
            "{name} not listed:\n{listing}"
        );
    }

    // `pipe validate` resolves every plugin to its origin and ABI, without a request.
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &env).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let origin = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name}:\n{text}"))
            .to_string()
    };
    assert!(origin("acme").ends_with("libpipe_example.so (plugin ABI 1, pipe-plugin-example 0.1.0)"), "{text}");
    assert!(origin("redact_digits").contains("libpipe_example.so (plugin ABI 1"), "{text}");
    assert!(origin("json").ends_with("built-in"), "{text}");
    assert!(server.requests.lock().unwrap().is_empty(), "validate made a request");

    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert!(out.status.success(), "first run failed: {}", stderr(&out));
    assert!(!stderr(&out).contains(TOKEN), "the token leaked");
    assert_eq!(server.requests.lock().unwrap().len(), 3, "25 conversations at 10 per page are 3 requests");

    let messages = jsonl_rows(&dir.path().join("out/json/messages"));
    let conversations = jsonl_rows(&dir.path().join("out/json/conversations"));
    assert_eq!(conversations.len(), CONVERSATIONS);
    assert_eq!(messages.len(), CONVERSATIONS * 3);
    for m in &messages {
        assert_eq!(m["vendor"], "acme");
        assert_eq!(m["account_id"], "acct-1");
        let text = m["text"].as_str().unwrap_or("");
        assert!(!text.chars().any(|c| c.is_ascii_digit()) || text.contains("order "), "not redacted: {text}");
        if m["sender_role"] == "visitor" {
            assert!(text.starts_with("my card is #### #### #### ####, order "), "{text}");
        }
    }
    let c7 = conversations.iter().find(|c| c["conversation_id"] == "c007").expect("c007");
    assert_eq!(c7["state"], "closed");
    assert_eq!(c7["visitor_name"], "Customer 7");
    assert_eq!(c7["message_count"], 3);
    let roles: Vec<&str> = messages
        .iter()
        .filter(|m| m["conversation_id"] == "c007")
        .map(|m| m["sender_role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["visitor", "agent", "bot"]);

    let counts: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/counts/row_counts.json")).unwrap()).unwrap();
    assert_eq!(counts["rows"], json!({"conversations": CONVERSATIONS, "messages": CONVERSATIONS * 3}));
    let newest = "2026-01-05T08:26:00.000000Z";
    assert_eq!(counts["checkpoint"], json!({"updated_since": newest}));

    // Second run: resumes from the checkpoint; the inclusive filter brings back only the newest.
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert!(out.status.success(), "second run failed: {}", stderr(&out));
    let last = server.requests.lock().unwrap().last().cloned().unwrap();
    assert!(last.contains(newest), "the second run did not resume from the checkpoint: {last}");
    let counts: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("out/counts/row_counts.json")).unwrap()).unwrap();
    assert_eq!(counts["rows"], json!({"conversations": CONVERSATIONS + 1, "messages": CONVERSATIONS * 3 + 3}));

    // A bad token stops the run at once, naming the vendor, never the token.
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("ACME_TOKEN", "wrong-token")]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("acme rejected the credentials: HTTP 401"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("wrong-token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_library_passes_the_conformance_kit() {
    let lib = example_library();
    let (base_url, _server) = start_server().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[acme]\nbase_url = \"{base_url}\"\naccount = \"acct-1\"\ntoken = \"{TOKEN}\"\npage_size = 10\n\n[redact_digits]\n\n[row_counts]\npath = \"out/counts\"\n"
    );
    std::fs::write(dir.path().join("check.toml"), config).unwrap();
    let out = run_pipe(dir.path(), &["plugin", "check", lib.to_str().unwrap(), "--config", "check.toml"], &[]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "the kit failed:\n{report}\n{}", stderr(&out));
    assert!(!report.contains(" FAIL "), "{report}");
    for (plugin, check) in [
        ("pipe-plugin-example", "handshake"),
        ("acme", "schema"),
        ("acme", "checkpoint"),
        ("acme", "cancel"),
        ("acme", "memory"),
        ("redact_digits", "schema"),
        ("row_counts", "commit"),
        ("row_counts", "memory"),
        ("row_counts", "config_errors"),
    ] {
        let line = report
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([plugin, check]))
            .unwrap_or_else(|| panic!("no {plugin} {check} line:\n{report}"));
        assert_eq!(line.split_whitespace().nth(2), Some("PASS"), "{line}");
    }
}
