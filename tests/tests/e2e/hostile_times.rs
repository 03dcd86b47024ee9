//! Vendor times a real account may hold and our simulators never generate: a chat dated 2099,
//! a chat time beyond any timestamp. The real `pipe` binary against the giosg and Alli
//! simulators, output read back with pyarrow. The property each test asserts: the run exports
//! every other record, ends partial (exit 3) naming the record it could not export as sent,
//! saves a watermark no later than now + the clock skew, and the run after it still exports
//! what arrived in between.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use pipe_plugin_sdk::source_kit::MAX_CLOCK_SKEW_US;
use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
use pipe_sim::giosg::{Dataset, GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::{Value, json};

/// The saved watermark of pipeline `name` (local state), in µs: it must parse.
fn saved_watermark(dir: &Path, name: &str) -> i64 {
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(format!(".pipe/state/{name}.json"))).unwrap()).unwrap();
    let w = state["source_state"]["watermark"].as_str().unwrap_or_else(|| panic!("no watermark in {state}"));
    parse_timestamp_micros(w).unwrap_or_else(|| panic!("the saved watermark `{w}` does not parse"))
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap()
}

/// `(conversation_id, message_id)` of every committed message row.
fn message_keys(out: &Path) -> BTreeSet<(String, String)> {
    let v = Parquet::streams(out, &["messages"]).allow_missing().read_streams();
    let s = |m: &Value, k: &str| m[k].as_str().unwrap().to_string();
    v["messages"].rows.iter().map(|m| (s(m, "conversation_id"), s(m, "message_id"))).collect()
}

fn giosg_pipeline(sim: &GiosgSim, d: &Dataset) -> String {
    format!(
        "name = \"times\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 10\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n",
        sim.base_url(),
        d.organization_id
    )
}

fn giosg_keys(d: &Dataset) -> BTreeSet<(String, String)> {
    d.chats
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_dated_2099_neither_hides_later_chats_nor_passes_silently() {
    let all = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(24) });
    let mut first = Dataset { chats: all.chats[..23].to_vec(), ..all.clone() };
    // One chat claims to be created in 2099 (listed first: the listing is newest first), and
    // one message of another chat claims a 2099 send time.
    let future_chat = first.chats[4].id().to_string();
    first.chats[4].chat["created_at"] = json!("2099-01-01T00:00:00.000Z");
    let other = first.chats.iter().position(|c| c.id() != future_chat && c.messages.len() >= 2).unwrap();
    let future_message = first.chats[other].messages[0].json["id"].as_str().unwrap().to_string();
    first.chats[other].messages[0].json["created_at"] = json!("2099-06-01T00:00:00.000Z");

    let dir = tempfile::tempdir().unwrap();
    let sim = GiosgSim::start(Arc::new(first.clone()), SimOptions::default()).await.unwrap();
    std::fs::write(dir.path().join("p.toml"), giosg_pipeline(&sim, &first)).unwrap();
    let env = [("E2E_GIOSG_TOKEN", first.token.as_str())];
    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
    sim.shutdown().await;

    // Partial, naming both records; every other message is committed.
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&future_chat) && err.contains(&future_message), "names both: {err}");
    let rejected = report(dir.path())["completeness"]["rejected_records"].clone();
    assert_eq!(rejected.as_array().map(Vec::len), Some(2), "{rejected}");
    let mut want = giosg_keys(&first);
    want.retain(|(_, m)| *m != future_message);
    assert_eq!(message_keys(&dir.path().join("out")), want);
    // The dead letters hold the raw payloads with the reason.
    let dl = std::fs::read_to_string(dir.path().join(".pipe/dead_letter/times/messages.jsonl")).unwrap();
    let line: Value = serde_json::from_str(dl.lines().next().unwrap()).unwrap();
    assert_eq!((line["reason"].as_str(), line["raw"]["id"].as_str()), (Some("time_in_future"), Some(&*future_message)));
    // The watermark parses and stops at now + the skew, not at 2099.
    assert!(saved_watermark(dir.path(), "times") <= now_micros() + MAX_CLOCK_SKEW_US);

    // A chat created after that run, before the next: the next run exports it.
    let mut second = first.clone();
    let mut late = all.chats[23].clone();
    let now = pipe_plugin_sdk::time::format_micros(now_micros());
    late.chat["created_at"] = json!(now);
    late.chat["updated_at"] = json!(now);
    let late_id = late.id().to_string();
    second.chats.push(late);
    let sim = GiosgSim::start(Arc::new(second.clone()), SimOptions::default()).await.unwrap();
    std::fs::write(dir.path().join("p.toml"), giosg_pipeline(&sim, &second)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    // The 2099 chat is unchanged (its `updated_at` did not move): reported once, by the run
    // that exported it, not again; this run is complete.
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let keys = message_keys(&dir.path().join("out"));
    let late_keys: BTreeSet<_> = giosg_keys(&second).into_iter().filter(|(c, _)| *c == late_id).collect();
    assert!(!late_keys.is_empty() && late_keys.is_subset(&keys), "the chat created between the runs is exported");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alli_time_beyond_any_timestamp_never_wraps_the_watermark() {
    use pipe_sim::alli::{AlliSim, SimConfig, generate};
    let sim = AlliSim::start(generate(&SimConfig::small(20))).await.unwrap();
    // One conversation's newest chat is dated in the year 2100 (epoch ms, as Alli sends).
    let far = 4_102_444_800_000_i64;
    sim.add_chats(5, 1, far);
    let d = sim.dataset();
    let victim = d.conversations[5].id.clone();
    let far_chat = d.conversations[5].chats.last().unwrap().id.clone();

    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "name = \"alli-times\"\n\n[source]\nplugin = \"alli\"\napi = \"rest\"\nbase_url = \"{}\"\napi_key = \"${{E2E_ALLI_KEY}}\"\npage_size = 7\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n",
        sim.base_url()
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let env = [("E2E_ALLI_KEY", d.api_key.as_str())];
    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains(&victim), "names the conversation: {err}");
    let want: BTreeSet<(String, String)> = d
        .conversations
        .iter()
        .flat_map(|c| c.chats.iter().map(move |m| (c.id.clone(), m.id.clone())))
        .filter(|(_, m)| *m != far_chat)
        .collect();
    assert_eq!(message_keys(&dir.path().join("out")), want, "every other chat is exported");
    let watermark = saved_watermark(dir.path(), "alli-times");
    assert!(watermark <= now_micros() + MAX_CLOCK_SKEW_US, "watermark {watermark}");

    // New chats after that run: the next run exports them (the run that once exported 0 rows).
    let now_ms = now_micros() / 1000;
    sim.add_chats(8, 2, now_ms);
    let d2 = sim.dataset();
    let new: BTreeSet<(String, String)> = d2.conversations[8]
        .chats
        .iter()
        .rev()
        .take(2)
        .map(|m| (d2.conversations[8].id.clone(), m.id.clone()))
        .collect();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "still naming the 2100 chat: {}", stderr(&out));
    assert!(new.is_subset(&message_keys(&dir.path().join("out"))), "the new chats are exported");
}
