//! Listings that never end, and answers too large to read (issue 16): the real `pipe` binary
//! against simulators that loop (a `next` link to itself, a cursor handed back unchanged, an
//! `offset` ignored, and `from` too) or pad a body past `max_response_bytes`. Each run must end, either with
//! exactly the ground truth or with exit 3 and a dead letter naming what is missing, every
//! other record exported; the run after it, the vendor fixed, completes the export.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{GiosgSim, PagingFaults, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

/// A run that does not end within this is a listing paging forever.
const RUN_LIMIT: Duration = Duration::from_secs(120);

async fn run_bounded(dir: &Path, env: &[(&str, &str)]) -> Output {
    tokio::time::timeout(RUN_LIMIT, run_pipe(dir, &["run", "p.toml"], env))
        .await
        .expect("the run ended (no listing pages forever)")
}

/// Every dead letter written under `dir/dl`, all streams.
fn dead_letters(dir: &Path) -> Vec<Value> {
    files_under(&dir.join("dl"))
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<_>>()
        })
        .collect()
}

/// `(conversation_id, message_id)` of every message committed under `out/messages`, in all
/// runs so far (a resumed scan may write the chat at its resume point again: at least once).
fn message_rows(dir: &Path) -> Vec<(String, String)> {
    let rows =
        Parquet::at(dir.join("out/messages")).columns(&["conversation_id", "message_id"]).allow_missing().read().rows;
    rows.iter()
        .map(|r| (r["conversation_id"].as_str().unwrap().to_string(), r["message_id"].as_str().unwrap().to_string()))
        .collect()
}

/// The distinct keys of [`message_rows`].
fn message_keys(dir: &Path) -> BTreeSet<(String, String)> {
    message_rows(dir).into_iter().collect()
}

fn giosg_pipeline(sim: &GiosgSim, org: &str, extra: &str) -> String {
    format!(
        "name = \"loop\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 3\nconcurrency = 2\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url()
    )
}

fn giosg_truth(d: &pipe_sim::giosg::Dataset) -> BTreeSet<(String, String)> {
    d.chats
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string())))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giosg_a_next_link_to_itself_ends_the_chat_listing_partial_and_the_next_run_completes() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(14) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    sim.set_paging_faults(PagingFaults { next_self: Some("owned_chats".into()), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), giosg_pipeline(&sim, &d.organization_id, "")).unwrap();
    let env = [("E2E_GIOSG_TOKEN", d.token.as_str())];

    let first = run_bounded(dir.path(), &env).await;
    assert_eq!(first.status.code(), Some(3), "partial: {}", stderr(&first));
    let dls = dead_letters(dir.path());
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0]["reason"], "paging_loop");
    assert!(dls[0]["key"].get("conversation_id").is_none(), "the listing, not a chat: {}", dls[0]);
    assert!(dls[0]["message"].as_str().unwrap().contains("owned_chats"), "{}", dls[0]);
    let truth = giosg_truth(&d);
    let partial = message_keys(dir.path());
    assert!(!partial.is_empty() && partial.is_subset(&truth) && partial.len() < truth.len());
    // Pages 1 and 2 were read (page 2 named itself as next): their chats, complete.
    let listed: BTreeSet<&str> = partial.iter().map(|(c, _)| c.as_str()).collect();
    for c in &listed {
        let want = d.chat(c).unwrap().messages.len();
        assert_eq!(partial.iter().filter(|(id, _)| id == c).count(), want, "chat {c} is complete");
    }

    // The vendor fixed: the next run exports the rest, and nothing is missing.
    sim.set_paging_faults(PagingFaults::default());
    let second = run_bounded(dir.path(), &env).await;
    sim.shutdown().await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(message_keys(dir.path()), truth);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giosg_a_looping_or_oversized_chat_is_that_chats_dead_letter_and_the_rest_is_exported() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(14) }));
    // The oldest chats with several pages of messages (page_size 3): far below the next
    // run's floor (lookback 1 hour), so only the re-check of what was cut brings them back.
    let mut long: Vec<&str> = d.chats.iter().filter(|c| c.messages.len() >= 7).map(|c| c.id()).collect();
    long.truncate(2);
    assert_eq!(long.len(), 2, "the dataset has chats of several message pages");
    let created = |id: &str| pipe_sim::giosg::parse_timestamp(d.chat(id).unwrap().chat["created_at"].as_str().unwrap());
    let newest = d.chats.iter().filter_map(|c| created(c.id())).max().unwrap();
    for id in &long {
        assert!(newest - created(id).unwrap() > chrono::Duration::hours(2), "{id} lies below the next floor");
    }
    let truth = giosg_truth(&d);
    for (fault, reason) in [
        (PagingFaults { next_self: Some(format!("messages|{}", long[0])), ..Default::default() }, "paging_loop"),
        (
            PagingFaults { oversize: Some((format!("messages|{}", long[1]), 300_000)), ..Default::default() },
            "response_too_large",
        ),
    ] {
        let chat = if reason == "paging_loop" { long[0] } else { long[1] };
        let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
        sim.set_paging_faults(fault);
        let dir = tempfile::tempdir().unwrap();
        let toml = giosg_pipeline(&sim, &d.organization_id, "max_response_bytes = 100000\nlookback_hours = 1");
        std::fs::write(dir.path().join("p.toml"), toml).unwrap();
        let env = [("E2E_GIOSG_TOKEN", d.token.as_str())];

        let first = run_bounded(dir.path(), &env).await;
        assert_eq!(first.status.code(), Some(3), "{reason}: {}", stderr(&first));
        let dls = dead_letters(dir.path());
        assert_eq!(dls.len(), 1, "{dls:?}");
        assert_eq!((dls[0]["reason"].as_str(), dls[0]["key"]["conversation_id"].as_str()), (Some(reason), Some(chat)));
        assert!(!dls[0]["message"].as_str().unwrap().contains(&d.token), "no secret in the dead letter");
        // Every other chat, exactly.
        let others: BTreeSet<_> = truth.iter().filter(|(c, _)| c != chat).cloned().collect();
        assert_eq!(message_rows(dir.path()).len(), others.len(), "{reason}: each once");
        assert_eq!(message_keys(dir.path()), others, "{reason}");

        sim.set_paging_faults(PagingFaults::default());
        let second = run_bounded(dir.path(), &env).await;
        sim.shutdown().await;
        assert!(second.status.success(), "{reason}: {}", stderr(&second));
        assert_eq!(message_keys(dir.path()), truth, "{reason}: the next run completes the export");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alli_a_cursor_handed_back_unchanged_ends_the_listing_partial_over_rest_and_graphql() {
    use pipe_sim::alli::{AlliSim, SimConfig, generate};
    let sim = AlliSim::start(generate(&SimConfig::small(40))).await.unwrap();
    let d = sim.dataset();
    let truth: BTreeSet<(String, String)> = d.message_rows().into_iter().map(|(c, m, _, _)| (c, m)).collect();
    for api in ["rest", "graphql"] {
        let credentials = if api == "rest" {
            "api_key = \"${E2E_ALLI_KEY}\"".to_string()
        } else {
            format!("email = \"{}\"\npassword = \"${{E2E_ALLI_PASSWORD}}\"", d.email)
        };
        let toml = format!(
            "name = \"loop\"\n\n[source]\nplugin = \"alli\"\napi = \"{api}\"\nbase_url = \"{}\"\n{credentials}\npage_size = 7\nconcurrency = 2\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
            sim.base_url()
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("p.toml"), toml).unwrap();
        let env = [("E2E_ALLI_KEY", d.api_key.as_str()), ("E2E_ALLI_PASSWORD", d.password.as_str())];

        sim.repeat_cursor(true);
        let first = run_bounded(dir.path(), &env).await;
        assert_eq!(first.status.code(), Some(3), "{api}: {}", stderr(&first));
        let dls = dead_letters(dir.path());
        assert_eq!(dls.len(), 1, "{api}: {dls:?}");
        assert_eq!(dls[0]["reason"], "paging_loop", "{api}");
        assert!(dls[0]["key"].get("conversation_id").is_none(), "{api}: the listing: {}", dls[0]);
        let partial = message_keys(dir.path());
        assert!(!partial.is_empty() && partial.is_subset(&truth) && partial.len() < truth.len(), "{api}");

        sim.repeat_cursor(false);
        let second = run_bounded(dir.path(), &env).await;
        assert!(second.status.success(), "{api}: {}", stderr(&second));
        assert_eq!(message_keys(dir.path()), truth, "{api}: the next run completes the export");
    }
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aimylogic_a_history_ignoring_offset_and_from_is_that_clients_dead_letter_not_a_silent_cut() {
    use pipe_sim::aimylogic::{AimylogicSim, SimConfig, generate};
    const TOKEN: &str = "E2eLoop7:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";
    let d = Arc::new(generate(&SimConfig { seed: 5, clients: 6, max_turns: 20, token: TOKEN.into() }));
    // A client with more than two pages of 3 items: the first page repeats instead of the
    // second, and paging by time (`from`, what the source falls back to) is ignored as well.
    let looping = d.clients.iter().find(|c| c.items.len() > 6).expect("a long history").id.clone();
    let sim = AimylogicSim::start(d.clone()).await.unwrap();
    sim.ignore_offset(Some(&looping));
    sim.ignore_from(Some(&looping));
    let ids: Vec<String> = d.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    let toml = format!(
        "name = \"loop\"\n\n[source]\nplugin = \"aimylogic\"\nbase_url = \"{}\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\nclient_ids = [{}]\npage_size = 3\nconcurrency = 2\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        ids.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];
    let truth: BTreeSet<(String, String)> =
        d.expected().into_iter().map(|e| (e.conversation_id, e.message_id)).collect();

    let first = run_bounded(dir.path(), &env).await;
    assert_eq!(first.status.code(), Some(3), "{}", stderr(&first));
    let dls = dead_letters(dir.path());
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(
        (dls[0]["reason"].as_str(), dls[0]["key"]["conversation_id"].as_str()),
        (Some("incomplete"), Some(looping.as_str()))
    );
    let others: BTreeSet<_> = truth.iter().filter(|(c, _)| *c != looping).cloned().collect();
    assert_eq!(message_rows(dir.path()).len(), others.len(), "each once");
    assert_eq!(message_keys(dir.path()), others, "every other client, exactly; none of the looping one");
    assert!(!dls[0]["message"].as_str().unwrap().contains(TOKEN));

    sim.ignore_offset(None);
    sim.ignore_from(None);
    let second = run_bounded(dir.path(), &env).await;
    sim.shutdown().await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(message_keys(dir.path()), truth, "the next run exports the client");
}
