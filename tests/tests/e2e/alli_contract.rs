//! Alli where the vendor differs from our notes (docs/vendors/alli.md ASSUMPTIONs): the real
//! `pipe` binary against the Alli simulator in its strict modes.
//!
//! * GraphQL without `Conversation.modifiedAt`/`lastChatTime`, `User.name` and `pageInfo` on
//!   chats, with `chats(after: ID)` taking a chat id: the source introspects, selects only what
//!   exists, pages chats by the last id, and exports every row; incremental runs still find the
//!   conversations with new chats.
//! * GraphQL that cannot page chats at all: conversations of 100 chats or more are exported as
//!   far as read and dead-lettered `incomplete`, the run ends partial (3).
//! * REST whose `startedAt` is in seconds while its times are milliseconds (and the reverse):
//!   incremental runs do not depend on it and export the new chats.
//! * `pipe validate --check` says which of these it is.

use std::collections::BTreeSet;
use std::path::Path;

use pipe_sim::alli::{AlliSim, Dataset, SchemaMode, SimConfig, generate};
use pipe_tests::*;
use serde_json::Value;

type Row = (String, String, String, String);

fn pipeline(name: &str, sim: &AlliSim, d: &Dataset, api: &str, out: &str) -> String {
    let creds = match api {
        "rest" => "api_key = \"${E2E_ALLI_KEY}\"\npage_size = 7".to_string(),
        _ => format!("email = \"{}\"\npassword = \"${{E2E_ALLI_PASSWORD}}\"\npage_size = 9", d.email),
    };
    format!(
        "name = \"{name}\"\n\n[source]\nplugin = \"alli\"\napi = \"{api}\"\nbase_url = \"{}\"\n{creds}\nconcurrency = 4\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[dead_letter]\npath = \"{out}/_dead_letter\"\n",
        sim.base_url()
    )
}

async fn pipe(dir: &Path, args: &[&str], toml: &str, d: &Dataset) -> std::process::Output {
    std::fs::write(dir.join(args[1]), toml).unwrap();
    let env = [("E2E_ALLI_KEY", d.api_key.as_str()), ("E2E_ALLI_PASSWORD", d.password.as_str())];
    let out = run_pipe(dir, args, &env).await;
    let all = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    for secret in [&d.api_key, &d.password, &d.token] {
        assert!(!all.contains(secret.as_str()), "a secret leaked into the output");
    }
    out
}

fn read(dir: &Path) -> (Vec<Value>, Vec<Value>) {
    let mut v = Parquet::streams(dir, &["messages", "conversations"]).allow_missing().read_streams();
    let mut rows = |stream: &str| v.remove(stream).expect("read").rows;
    (rows("messages"), rows("conversations"))
}

fn rows(messages: &[Value]) -> BTreeSet<Row> {
    let mut set = BTreeSet::new();
    for m in messages {
        let s = |k: &str| m[k].as_str().unwrap_or_else(|| panic!("{k} missing in {m}")).to_string();
        assert!(set.insert((s("conversation_id"), s("message_id"), s("sender_role"), s("text"))), "written twice: {m}");
    }
    set
}

fn dead_letters(dir: &Path) -> Vec<Value> {
    match std::fs::read_to_string(dir.join("_dead_letter/conversations.jsonl")) {
        Ok(t) => t.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The stdout line of contract check `name`: its status label.
fn status<'a>(stdout: &'a str, name: &str) -> &'a str {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().nth(2) == Some(name))
        .unwrap_or_else(|| panic!("no line for `{name}` in:\n{stdout}"));
    line[..line.find(name).unwrap()].trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_without_the_assumed_fields_exports_everything_and_stays_incremental() {
    let sim = AlliSim::start(generate(&SimConfig::small(30))).await.unwrap();
    sim.graphql_schema(SchemaMode::Sparse);
    let d0 = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let toml = |out: &str| pipeline("sparse", &sim, &d0, "graphql", out);

    let out = pipe(dir.path(), &["run", "p1.toml"], &toml("out1"), &d0).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(sim.invalid_queries().is_empty(), "a query the sparse schema refuses: {:?}", sim.invalid_queries());
    // The absent fields are named once, with the columns they leave null.
    let err = stderr(&out);
    assert_eq!(err.matches("the GraphQL schema lacks").count(), 1, "{err}");
    for needle in ["Conversation.modifiedAt", "Conversation.lastChatTime", "User.name", "ChatConnection.pageInfo"] {
        assert!(err.contains(needle), "{needle} not named: {err}");
    }
    assert!(err.contains("chats are paged with `after` = the last chat's id"), "{err}");

    let (msgs, convs) = read(&dir.path().join("out1"));
    assert_eq!(rows(&msgs), d0.message_rows().into_iter().collect(), "every chat once, 250-chat ones too");
    assert_eq!(convs.len(), d0.conversations.len());
    for c in &d0.conversations {
        let row = convs.iter().find(|r| r["conversation_id"] == c.id.as_str()).unwrap();
        let first = Some(c.user.first_name.as_str()).filter(|n| !n.is_empty());
        assert_eq!(row["visitor_name"].as_str(), first, "no User.name: the first name");
        assert_eq!(row["updated_at"].as_i64(), Some(c.sort_key() * 1000), "no lastChatTime: the last chat's time");
        assert_eq!(row["state"].as_str(), Some(c.state.to_lowercase().as_str()));
    }
    let log = sim.request_log();
    assert_eq!(log.iter().filter(|l| l.ends_with("AlliIntrospection")).count(), 1, "one introspection request");
    assert_eq!(
        log.iter().filter(|l| l.ends_with("AlliConversationChats")).count(),
        1 + 2 + 1,
        "chats paged by id: 100 chats → one (empty) next page, 101 → one, 250 → two"
    );

    // New chats in two older conversations: the second run finds them without lastChatTime.
    let newest = d0.conversations.iter().map(|c| c.sort_key()).max().unwrap();
    sim.add_chats(4, 2, newest + 86_400_000);
    sim.add_chats(11, 1, newest + 90_000_000);
    let d1 = sim.dataset();
    let out = pipe(dir.path(), &["run", "p2.toml"], &toml("out2"), &d1).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (m2, c2) = read(&dir.path().join("out2"));
    let emitted: BTreeSet<&str> = c2.iter().map(|c| c["conversation_id"].as_str().unwrap()).collect();
    let changed = [d1.conversations[4].id.as_str(), d1.conversations[11].id.as_str()];
    for id in changed {
        assert!(emitted.contains(id), "the changed conversation {id} is exported again");
    }
    // Long conversations have no derived time (their nested page is full): fetched again;
    // every other unchanged conversation is skipped.
    let long: BTreeSet<&str> =
        d1.conversations.iter().filter(|c| c.chats.len() >= 100).map(|c| c.id.as_str()).collect();
    let expected: BTreeSet<&str> = changed.into_iter().chain(long.iter().copied()).collect();
    assert_eq!(emitted, expected);
    let mut all = rows(&read(&dir.path().join("out1")).0);
    all.extend(rows(&m2));
    assert_eq!(all, d1.message_rows().into_iter().collect(), "runs 1 + 2 = the truth");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_that_cannot_page_chats_dead_letters_the_long_conversations() {
    let sim = AlliSim::start(generate(&SimConfig::small(12))).await.unwrap();
    sim.graphql_schema(SchemaMode::Unpaged);
    let d = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let out = pipe(dir.path(), &["run", "p.toml"], &pipeline("unpaged", &sim, &d, "graphql", "out"), &d).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "partial: {}", stderr(&out));
    assert!(sim_free_of_invalid(&out));
    let long: BTreeSet<String> =
        d.conversations.iter().filter(|c| c.chats.len() >= 100).map(|c| c.id.clone()).collect();
    assert_eq!(long.len(), 3, "the 100-, 101- and 250-chat conversations");
    let dls = dead_letters(&dir.path().join("out"));
    let named: BTreeSet<String> =
        dls.iter().map(|d| d["key"]["conversation_id"].as_str().unwrap().to_string()).collect();
    assert!(dls.iter().all(|d| d["reason"] == "incomplete"), "{dls:?}");
    assert_eq!(named, long, "exactly the conversations with a full first page");
    for id in &long {
        assert!(stderr(&out).contains(id.as_str()), "{id} named in the summary: {}", stderr(&out));
    }
    // Every other conversation complete; the long ones as far as read (their first 100).
    let (msgs, convs) = read(&dir.path().join("out"));
    assert_eq!(convs.len(), d.conversations.len());
    let expected: BTreeSet<Row> = d
        .conversations
        .iter()
        .flat_map(|c| {
            c.chats.iter().take(100).map(|m| (c.id.clone(), m.id.clone(), m.sender.role().to_string(), m.text.clone()))
        })
        .collect();
    assert_eq!(rows(&msgs), expected);
}

/// The unpaged run's stderr mentions no GraphQL validation error.
fn sim_free_of_invalid(out: &std::process::Output) -> bool {
    !stderr(out).contains("GraphQL errors")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_incremental_runs_do_not_depend_on_the_started_at_unit() {
    for mode in ["filter_in_seconds", "times_in_seconds"] {
        let sim = AlliSim::start(generate(&SimConfig::small(20))).await.unwrap();
        match mode {
            "filter_in_seconds" => sim.started_at_in_seconds(true),
            _ => sim.times_in_seconds(true),
        }
        let d0 = sim.dataset();
        let dir = tempfile::tempdir().unwrap();
        let toml = |out: &str| pipeline("unit", &sim, &d0, "rest", out);
        let out = pipe(dir.path(), &["run", "p1.toml"], &toml("out1"), &d0).await;
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
        let newest = d0.conversations.iter().map(|c| c.sort_key()).max().unwrap();
        sim.add_chats(2, 3, newest + 86_400_000);
        let d1 = sim.dataset();
        let before = sim.request_log().len();
        let out = pipe(dir.path(), &["run", "p2.toml"], &toml("out2"), &d1).await;
        let log: Vec<String> = sim.request_log().split_off(before);
        sim.shutdown().await;
        assert_eq!(out.status.code(), Some(0), "{mode}: {}", stderr(&out));
        assert!(!log.iter().any(|l| l.contains("startedAt")), "{mode}: no time filter is sent: {log:?}");
        let (m2, c2) = read(&dir.path().join("out2"));
        let emitted: Vec<&str> = c2.iter().map(|c| c["conversation_id"].as_str().unwrap()).collect();
        assert_eq!(emitted, vec![d1.conversations[2].id.as_str()], "{mode}: the changed conversation, and only it");
        let new: BTreeSet<String> = d1.conversations[2].chats.iter().rev().take(3).map(|m| m.id.clone()).collect();
        let got: BTreeSet<String> = m2.iter().map(|m| m["message_id"].as_str().unwrap().to_string()).collect();
        assert!(new.is_subset(&got), "{mode}: the new chats are exported");
        let mut all = rows(&read(&dir.path().join("out1")).0);
        all.extend(rows(&m2));
        assert_eq!(all, d1.message_rows().into_iter().collect(), "{mode}: runs 1 + 2 = the truth");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_reports_the_alli_contract() {
    let sim = AlliSim::start(generate(&SimConfig::small(8))).await.unwrap();
    let d = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let rest = pipeline("check-rest", &sim, &d, "rest", "out");
    let gql = pipeline("check-gql", &sim, &d, "graphql", "out");

    // REST as assumed: every check confirmed; the chats paging on the 250-chat conversation.
    let out = pipe(dir.path(), &["validate", "r.toml", "--check"], &rest, &d).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    for name in [
        "alli.rest.listing",
        "alli.rest.listing.cursor",
        "alli.rest.conversation.fields",
        "alli.rest.listing.order",
        "alli.rest.time_unit",
        "alli.rest.started_at_unit",
        "alli.rest.chats",
        "alli.rest.chats.fields",
        "alli.rest.chats.paging",
    ] {
        assert_eq!(status(&stdout, name), "✓ confirmed", "{name}:\n{stdout}");
    }
    // startedAt in seconds: found out, reported, not fatal (the source sends no filter).
    sim.started_at_in_seconds(true);
    let out = pipe(dir.path(), &["validate", "r.toml", "--check"], &rest, &d).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert_eq!(status(&stdout, "alli.rest.started_at_unit"), "≠ different");
    assert!(stdout.contains("epoch seconds while the responses carry milliseconds"), "{stdout}");
    sim.started_at_in_seconds(false);

    // GraphQL as assumed, then sparse, then unpaged.
    let out = pipe(dir.path(), &["validate", "g.toml", "--check"], &gql, &d).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert!(!stdout.contains("✗ absent") && !stdout.contains("≠ different"), "{stdout}");
    for name in
        ["alli.graphql.Conversation.lastChatTime", "alli.graphql.chats.paging", "alli.graphql.conversations.query"]
    {
        assert_eq!(status(&stdout, name), "✓ confirmed", "{name}:\n{stdout}");
    }

    sim.graphql_schema(SchemaMode::Sparse);
    let out = pipe(dir.path(), &["validate", "g.toml", "--check"], &gql, &d).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "the source adapts: {stdout}\n{}", stderr(&out));
    for (name, want) in [
        ("alli.graphql.Conversation.lastChatTime", "✗ absent"),
        ("alli.graphql.Conversation.modifiedAt", "✗ absent"),
        ("alli.graphql.User.name", "✗ absent"),
        ("alli.graphql.ChatConnection.pageInfo", "✗ absent"),
        ("alli.graphql.chats.paging", "≠ different"),
        ("alli.graphql.Conversation.state", "✓ confirmed"),
        ("alli.graphql.conversations.query", "✓ confirmed"),
    ] {
        assert_eq!(status(&stdout, name), want, "{name}:\n{stdout}");
    }
    assert!(stdout.contains("chats(after: ID, first: Int)"), "{stdout}");

    sim.graphql_schema(SchemaMode::Unpaged);
    let out = pipe(dir.path(), &["validate", "g.toml", "--check"], &gql, &d).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", stderr(&out));
    assert_eq!(status(&stdout, "alli.graphql.chats.paging"), "✗ absent");
    assert_eq!(status(&stdout, "alli.graphql.Query.node"), "✗ absent");
    assert!(stdout.contains("dead-lettered `incomplete`"), "{stdout}");
}
