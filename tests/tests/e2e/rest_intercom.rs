//! A vendor `pipe` does not ship, described in TOML alone (issue 20): the real `pipe` binary
//! runs the shipped spec `pipelines/specs/intercom.toml` against the Intercom simulator
//! (`sim/src/intercom.rs`, written from Intercom's public API reference like the spec,
//! docs/vendors/intercom.md), and the output, read back with pyarrow, must be exactly the
//! workspace's conversations and messages: on a first run, on an incremental second run after
//! changes, and — with the dead letters and exit code 3 of docs/design.md — when the workspace
//! behaves as the docs allow but differently from the spec's assumptions (a blank author, more
//! than the 500 parts the API returns, a repeated cursor).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pipe_sim::intercom::{ConversationTruth, Dataset, IntercomSim, PartTruth, SimConfig, generate, plaintext};
use pipe_tests::*;
use serde_json::{Map, Value, json};

const MESSAGE_COLUMNS: [&str; 11] = [
    "conversation_id",
    "message_id",
    "seq",
    "sent_at",
    "sender_role",
    "sender_id",
    "sender_name",
    "message_type",
    "text",
    "tags",
    "attributes",
];

const CONVERSATION_COLUMNS: [&str; 15] = [
    "conversation_id",
    "channel_id",
    "title",
    "state",
    "is_ended",
    "created_at",
    "updated_at",
    "last_message_at",
    "message_count",
    "visitor_id",
    "visitor_name",
    "agent_ids",
    "tag_ids",
    "tags",
    "variables",
];

fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/specs/intercom.toml")
}

fn pipeline(name: &str, sim: &IntercomSim, out: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[source]\nplugin = \"rest\"\nspec = \"{}\"\nbase_url = \"{}\"\naccount_id = \"ws\"\nconcurrency = 4\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[dead_letter]\npath = \"{out}/_dead_letter\"\n",
        spec_path().display(),
        sim.base_url()
    )
}

async fn run(dir: &Path, file: &str, toml: &str, d: &Dataset, args: &[&str]) -> std::process::Output {
    std::fs::write(dir.join(file), toml).unwrap();
    let mut all = args.to_vec();
    all.push(file);
    run_pipe(dir, &all, &[("INTERCOM_TOKEN", d.token.as_str())]).await
}

fn nonempty(s: Option<&str>) -> Value {
    match s.map(str::trim) {
        Some(t) if !t.is_empty() => json!(t),
        _ => Value::Null,
    }
}

/// The canonical message rows of `c` (docs/vendors/intercom.md §4), written from the ground
/// truth: the source and the parts the API serves, minus those `skip` names.
fn expected_messages(c: &ConversationTruth, skip: &BTreeSet<String>) -> Vec<Value> {
    let tags: Vec<&str> = c.tags.iter().map(|(_, n)| n.as_str()).collect();
    let message = |p: &PartTruth, is_source: bool| -> Value {
        let role = if is_source || p.is_message() { p.author.role().unwrap_or("(none)") } else { "system" };
        let mut attributes = Map::new();
        if is_source {
            attributes.insert("intercom.delivered_as".into(), json!(c.delivered_as));
        }
        if let Some(e) = p.literal.get("external_id").and_then(Value::as_str) {
            attributes.insert("intercom.external_id".into(), json!(e));
        }
        json!({
            "conversation_id": c.id,
            "message_id": p.id,
            "sent_at": p.created_at * 1_000_000,
            "sender_role": role,
            "sender_id": nonempty(Some(&p.author.id)),
            "sender_name": nonempty(p.author.name.as_deref()),
            "message_type": if is_source { "source" } else { p.part_type.as_str() },
            "text": p.body.as_deref().map(plaintext),
            "tags": tags,
            "attributes": attributes,
        })
    };
    let mut rows: Vec<Value> = std::iter::once(message(&c.source, true))
        .chain(c.served_parts().iter().map(|p| message(p, false)))
        .filter(|r| !skip.contains(r["message_id"].as_str().unwrap()))
        .collect();
    // `seq`: by sent time, ties in record order (a stable sort).
    rows.sort_by_key(|r| r["sent_at"].as_i64().unwrap());
    for (i, r) in rows.iter_mut().enumerate() {
        r["seq"] = json!(i);
    }
    rows
}

/// The canonical conversation row of `c`, from the ground truth.
fn expected_conversation(c: &ConversationTruth, messages: &[Value]) -> Value {
    let mut agents: Vec<&str> = c.admin_ids.iter().map(String::as_str).chain(c.admin_assignee_id.as_deref()).collect();
    agents.sort();
    agents.dedup();
    let variables: Map<String, Value> = c
        .custom_attributes
        .iter()
        .map(|(k, v)| (k.clone(), json!(v.as_str().map_or_else(|| v.to_string(), str::to_string))))
        .collect();
    let visitor = matches!(c.source.author.kind.as_str(), "user" | "lead" | "contact");
    json!({
        "conversation_id": c.id,
        "channel_id": "conversation",
        "title": c.title,
        "state": c.state,
        "is_ended": c.state == "closed",
        "created_at": c.created_at * 1_000_000,
        "updated_at": c.updated_at * 1_000_000,
        "last_message_at": messages.iter().map(|m| m["sent_at"].as_i64().unwrap()).max(),
        "message_count": c.parts.len() + 1,
        "visitor_id": c.contact.id,
        "visitor_name": if visitor { nonempty(c.source.author.name.as_deref()) } else { Value::Null },
        "agent_ids": agents,
        "tag_ids": c.tags.iter().map(|(i, _)| i.as_str()).collect::<Vec<_>>(),
        "tags": c.tags.iter().map(|(_, n)| n.as_str()).collect::<Vec<_>>(),
        "variables": variables,
    })
}

/// Expected (messages, conversations) of `convs`, each sorted by its JSON text.
fn expected<'a>(
    convs: impl IntoIterator<Item = &'a ConversationTruth>,
    skip: &BTreeSet<String>,
) -> (Vec<Value>, Vec<Value>) {
    let (mut ms, mut cs) = (Vec::new(), Vec::new());
    for c in convs {
        let m = expected_messages(c, skip);
        cs.push(expected_conversation(c, &m));
        ms.extend(m);
    }
    sorted(ms, cs)
}

fn sorted(mut ms: Vec<Value>, mut cs: Vec<Value>) -> (Vec<Value>, Vec<Value>) {
    ms.sort_by_key(Value::to_string);
    cs.sort_by_key(Value::to_string);
    (ms, cs)
}

/// The exported rows under `out` (pyarrow), each stream sorted by its JSON text.
fn exported(out: &Path) -> (Vec<Value>, Vec<Value>) {
    let streams = Parquet::streams(out, &["messages", "conversations"]).read_streams();
    let pick = |rows: &[Value], cols: &[&str]| -> Vec<Value> {
        rows.iter().map(|r| Value::Object(cols.iter().map(|c| (c.to_string(), r[*c].clone())).collect())).collect()
    };
    sorted(
        pick(&streams["messages"].rows, &MESSAGE_COLUMNS),
        pick(&streams["conversations"].rows, &CONVERSATION_COLUMNS),
    )
}

fn assert_rows(got: &[Value], want: &[Value], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g, w, "{what}: a row differs");
    }
}

fn dead_letters(out: &Path) -> Vec<Value> {
    jsonl_rows(&out.join("_dead_letter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intercom_spec_exports_the_workspace_exactly_then_only_what_changed() {
    // 171 conversations: two listing pages of the spec's 150.
    let sim = IntercomSim::start(generate(&SimConfig::small(170))).await.unwrap();
    let d0 = sim.dataset();
    let dir = tempfile::tempdir().unwrap();

    // `validate --check` probes the spec against the workspace first.
    let check =
        run(dir.path(), "check.toml", &pipeline("check", &sim, "out/check"), &d0, &["validate", "--check"]).await;
    assert_eq!(check.status.code(), Some(0), "validate --check: {}", stderr(&check));
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), stderr(&check));
    assert!(said.contains("source `rest (intercom)`") && said.contains("every required check passed"), "{said}");
    for check in ["rest.conversations.records", "rest.incremental.order", "rest.messages.records", "rest.map.message"] {
        assert!(said.lines().any(|l| l.starts_with("✓ confirmed") && l.contains(check)), "{check}: {said}");
    }

    let before = sim.request_log().len();
    let first = run(dir.path(), "p.toml", &pipeline("ic", &sim, "out/run1"), &d0, &["run"]).await;
    let log = sim.request_log().split_off(before);
    assert_eq!(first.status.code(), Some(0), "first run: {}", stderr(&first));
    assert!(!stderr(&first).contains(&d0.token), "the token leaked");
    let (ms, cs) = exported(&dir.path().join("out/run1"));
    let (want_ms, want_cs) = expected(&d0.conversations, &BTreeSet::new());
    assert_rows(&cs, &want_cs, "first run: conversations");
    assert_rows(&ms, &want_ms, "first run: messages");
    assert!(dead_letters(&dir.path().join("out/run1")).is_empty());

    // The requests the docs describe: two listing pages, the second by the first's cursor, and
    // one plain-text retrieve per conversation.
    let listings: Vec<&String> = log.iter().filter(|l| l.starts_with("GET /conversations?")).collect();
    assert_eq!(listings.len(), 2, "{listings:?}");
    assert!(listings.iter().all(|l| l.contains("per_page=150")), "{listings:?}");
    assert!(listings[1].contains("starting_after="), "{listings:?}");
    let retrieves = log.iter().filter(|l| l.starts_with("GET /conversations/")).count();
    assert_eq!(retrieves, d0.conversations.len());
    assert!(log.iter().filter(|l| l.starts_with("GET /conversations/")).all(|l| l.ends_with("?display_as=plaintext")));

    // The docs' literal example conversation and part, checked against the docs' values
    // themselves, not the generator's.
    let m = Parquet::at(dir.path().join("out/run1/messages"))
        .columns(&["message_id", "sent_at", "sender_role", "sender_id", "sender_name", "text", "raw"])
        .read();
    let by_id =
        |id: &str| m.rows.iter().find(|r| r["message_id"] == id).unwrap_or_else(|| panic!("message {id}")).clone();
    let source = by_id("269650473");
    assert_eq!(
        (source["sent_at"].clone(), source["sender_role"].clone(), source["text"].clone()),
        (json!(1_539_897_198_000_000i64), json!("visitor"), json!("Hi"))
    );
    assert_eq!(source["sender_id"], "5bc8f7421ae2d96695c18a");
    let part = by_id("3");
    assert_eq!(
        (part["sender_role"].clone(), part["sender_name"].clone(), part["text"].clone()),
        (json!("agent"), json!("Operator"), json!("Okay!"))
    );
    let raw: Value = serde_json::from_str(part["raw"].as_str().unwrap()).unwrap();
    assert_eq!(
        raw["author"],
        json!({"type": "admin", "id": "274", "name": "Operator", "email": "operator+abcd1234@intercom.io"})
    );
    assert_eq!(raw["assigned_to"], json!({"type": "contact", "id": "1a2b3c"}));
    let c = Parquet::at(dir.path().join("out/run1/conversations"))
        .columns(&["conversation_id", "visitor_id", "agent_ids", "variables", "updated_at"])
        .read();
    let example = c.rows.iter().find(|r| r["conversation_id"] == "1911149811").unwrap();
    assert_eq!(example["visitor_id"], "5bc8f7ae2d96695c18a");
    assert_eq!(example["agent_ids"], json!(["814860"]));
    assert_eq!(example["variables"], json!({"issue_type": "Billing", "priority": "High"}));
    assert_eq!(example["updated_at"], json!(1_540_393_270_000_000i64));

    // Changes: an older conversation gets two comments now, a new conversation starts.
    let now = pipe_plugin_sdk::time::now_micros() / 1_000_000;
    sim.add_parts(5, 2, now - 600);
    let new_id = sim.add_conversation(3, now - 300);
    let d1 = sim.dataset();
    let before = sim.request_log().len();
    let second = run(dir.path(), "p.toml", &pipeline("ic", &sim, "out/run2"), &d1, &["run"]).await;
    let log = sim.request_log().split_off(before);
    sim.shutdown().await;
    assert_eq!(second.status.code(), Some(0), "second run: {}", stderr(&second));
    let changed: Vec<&ConversationTruth> =
        d1.conversations.iter().filter(|c| c.id == d1.conversations[5].id || c.id == new_id).collect();
    assert_eq!(changed.len(), 2);
    let (ms, cs) = exported(&dir.path().join("out/run2"));
    let (want_ms, want_cs) = expected(changed, &BTreeSet::new());
    assert_rows(&cs, &want_cs, "second run: conversations");
    assert_rows(&ms, &want_ms, "second run: messages (each changed conversation whole)");
    let retrieves: BTreeSet<&str> = log
        .iter()
        .filter_map(|l| l.strip_prefix("GET /conversations/"))
        .map(|l| l.split('?').next().unwrap())
        .collect();
    assert_eq!(
        retrieves,
        BTreeSet::from([d1.conversations[5].id.as_str(), new_id.as_str()]),
        "only the changed ones are retrieved"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blank_author_and_a_conversation_past_500_parts_are_dead_letters_and_the_rest_is_exported() {
    let config = SimConfig { long_conversations: vec![503], ..SimConfig::small(12) };
    let sim = IntercomSim::start(generate(&config)).await.unwrap();
    let d = sim.dataset();
    // A part with a blank author, as the docs say Twitter conversations have.
    let index = d
        .conversations
        .iter()
        .position(|c| c.id != "1911149811" && c.parts.iter().any(|p| p.part_type == "comment"))
        .unwrap();
    let blank = sim.blank_author_of(index);
    let d = sim.dataset();
    let long = d.conversations.iter().find(|c| c.parts.len() == 503).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "p.toml", &pipeline("odd", &sim, "out"), &d, &["run"]).await;
    sim.shutdown().await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "partial: {err}");
    assert!(err.contains(&long.id), "the incomplete conversation is named: {err}");

    let mut dls: Vec<(String, String, Value)> = dead_letters(&dir.path().join("out"))
        .into_iter()
        .map(|d| {
            (d["stream"].as_str().unwrap().to_string(), d["reason"].as_str().unwrap().to_string(), d["key"].clone())
        })
        .collect();
    dls.sort_by_key(|d| d.1.clone());
    assert_eq!(dls.len(), 2, "{dls:?}");
    assert_eq!((dls[0].0.as_str(), dls[0].1.as_str()), ("conversations", "incomplete"));
    assert_eq!(dls[0].2["conversation_id"], long.id.as_str());
    assert_eq!((dls[1].0.as_str(), dls[1].1.as_str()), ("messages", "unparsable_message"));
    assert_eq!(dls[1].2["message_id"], blank.as_str());

    // Everything else is exported: the long conversation with the 500 most recent parts (what
    // the API returns) and its true count, the blank-author part left out.
    let (ms, cs) = exported(&dir.path().join("out"));
    let (want_ms, want_cs) = expected(&d.conversations, &BTreeSet::from([blank]));
    assert_rows(&cs, &want_cs, "conversations");
    assert_rows(&ms, &want_ms, "messages");
    assert_eq!(ms.iter().filter(|m| m["conversation_id"] == long.id.as_str()).count(), 501, "the source and 500 parts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_the_server_repeats_is_a_paging_loop_after_everything_read_is_exported() {
    let sim = IntercomSim::start(generate(&SimConfig::small(160))).await.unwrap();
    sim.repeat_cursor(true);
    let d = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), "p.toml", &pipeline("loop", &sim, "out"), &d, &["run"]).await;
    let listings = sim.request_log().iter().filter(|l| l.starts_with("GET /conversations?")).count();
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(listings, 2, "the repeated cursor is never asked for again");
    let dls = dead_letters(&dir.path().join("out"));
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0]["reason"], "paging_loop");
    // Both pages were read before the loop showed: every conversation is exported.
    let (ms, cs) = exported(&dir.path().join("out"));
    let (want_ms, want_cs) = expected(&d.conversations, &BTreeSet::new());
    assert_rows(&cs, &want_cs, "conversations");
    assert_rows(&ms, &want_ms, "messages");
}
