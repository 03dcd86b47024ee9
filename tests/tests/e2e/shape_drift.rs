//! Shape drift is counted, not swallowed (issue 17, part 4; docs/design.md §6,
//! `unexpected_shape`): simulators that send enum values and shapes the mappings do not know —
//! giosg messages whose `sender_type` is `bot`, an Aimylogic reply without `type` and an item
//! with neither request, answer nor type, Alli chats of a kind alli.md does not list (REST
//! `sender` `CAMPAIGN`, GraphQL `CampaignChat` in the `Chat` union). The real `pipe` binary must export every row with
//! the documented fallback, write one `unexpected_shape` dead letter per drifted record (with
//! the raw object), count them in the summary and the report, and end 0 (nothing is missing),
//! or 4 with `fail_on_dead_letters`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

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

fn keys_of(dls: &[Value]) -> BTreeSet<(String, String)> {
    dls.iter()
        .map(|d| {
            (
                d["key"]["conversation_id"].as_str().unwrap().to_string(),
                d["key"]["message_id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(conversation_id, message_id)` → (sender_role, message_type) of every exported message.
fn roles(dir: &Path) -> std::collections::BTreeMap<(String, String), (String, String)> {
    let rows = Parquet::at(dir.join("out/messages"))
        .columns(&["conversation_id", "message_id", "sender_role", "message_type"])
        .read()
        .rows;
    let s = |r: &Value, k: &str| r[k].as_str().unwrap().to_string();
    rows.iter()
        .map(|r| ((s(r, "conversation_id"), s(r, "message_id")), (s(r, "sender_role"), s(r, "message_type"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giosg_unknown_sender_types_are_exported_as_system_and_counted() {
    let base = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(12) });
    let (d, drifted) = base.with_unknown_sender_types(7);
    assert!(drifted.len() >= 3, "{drifted:?}");
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    let pipeline = |top: &str| {
        format!(
            "name = \"drift\"\n{top}\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
            sim.base_url(),
            d.organization_id
        )
    };
    let env = [("E2E_GIOSG_TOKEN", d.token.as_str())];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline("")).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "every row is exported: not partial: {err}");
    assert!(err.contains(&format!("({} unexpected shape)", drifted.len())), "the summary counts them: {err}");
    assert!(err.contains("exported with the documented fallbacks"), "{err}");

    // Every message exported once; the drifted ones with the fallback role `system`.
    let got = roles(dir.path());
    assert_eq!(got.len(), d.message_count());
    let drifted_set: BTreeSet<(String, String)> = drifted.iter().cloned().collect();
    for (key, (role, kind)) in &got {
        if drifted_set.contains(key) {
            assert_eq!((role.as_str(), kind.as_str()), ("system", "msg"), "{key:?}");
        } else {
            assert_ne!(kind, "", "{key:?}");
        }
    }
    // One dead letter per drifted message, with the raw object and the fallback named.
    let dls = dead_letters(dir.path());
    assert!(dls.iter().all(|d| d["reason"] == "unexpected_shape" && d["stage"] == "giosg"), "{dls:?}");
    assert_eq!(keys_of(&dls), drifted_set);
    assert!(dls.iter().all(|d| d["raw"]["sender_type"] == "bot"), "the raw object is kept");
    assert!(
        dls[0]["message"].as_str().unwrap().contains("unknown `sender_type` `bot`: exported with sender_role `system`")
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["unexpected_shape"]["count"], drifted.len());
    assert_eq!(report["completeness"]["ok"], true);
    assert_eq!(report["outcome"], "success");

    // A pipeline that fails on dead letters fails on these too (exit 4, everything committed).
    let strict = tempfile::tempdir().unwrap();
    std::fs::write(strict.path().join("p.toml"), pipeline("fail_on_dead_letters = true\n")).unwrap();
    let out = run_pipe(strict.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(roles(strict.path()).len(), d.message_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aimylogic_items_of_unknown_shape_are_exported_with_fallbacks_and_counted() {
    use pipe_sim::aimylogic::{AimylogicSim, SimConfig, generate};
    const TOKEN: &str = "E2eDrift:5f0c1b2a3d4e5f60718293a4b5c6d7e8f9012345";
    let base = generate(&SimConfig { seed: 9, clients: 4, max_turns: 6, token: TOKEN.into() });
    let (d, drifted) = base.with_shape_drift(1);
    let sim = AimylogicSim::start(Arc::new(d.clone())).await.unwrap();
    let ids: Vec<String> = d.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    let toml = format!(
        "name = \"drift\"\n\n[source]\nplugin = \"aimylogic\"\nbase_url = \"{}\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\nclient_ids = [{}]\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        ids.join(", ")
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let env = [("E2E_AIMY_TOKEN", TOKEN)];
    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // Exactly the ground truth, the drifted rows with their documented fallbacks.
    let want: std::collections::BTreeMap<(String, String), (String, String)> = d
        .expected()
        .into_iter()
        .map(|e| ((e.conversation_id, e.message_id), (e.sender_role, e.message_type)))
        .collect();
    assert_eq!(roles(dir.path()), want);
    let dls = dead_letters(dir.path());
    assert!(dls.iter().all(|d| d["reason"] == "unexpected_shape"), "{dls:?}");
    assert_eq!(keys_of(&dls), drifted.iter().cloned().collect::<BTreeSet<_>>());
    assert!(!dls.iter().any(|d| d.to_string().contains("5f0c1b2a3d4e5f6071")), "no token in the dead letters");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["unexpected_shape"]["count"], 2);

    // The next run (nothing new) reports nothing again: drift is reported with its row, once.
    let again = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(dead_letters(dir.path()).len(), 2);
}

/// Alli chats of a kind the vendor notes do not list, on both APIs: REST `sender: "CAMPAIGN"`,
/// and GraphQL `CampaignChat`, a union member the source learns of by introspection and
/// selects by the fields every chat has. Each is exported once as `system` (message type
/// `campaign`) with one `unexpected_shape` dead letter holding the raw chat; nothing else is
/// lost and the run ends 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alli_chats_of_an_unknown_kind_are_exported_as_system_and_counted() {
    use pipe_sim::alli::{AlliSim, SchemaMode, SimConfig, generate};
    let (d, drifted) = generate(&SimConfig::small(14)).with_unknown_senders(9);
    assert!(drifted.len() >= 10, "{}", drifted.len());
    let sim = AlliSim::start(d.clone()).await.unwrap();
    sim.graphql_schema(SchemaMode::ExtraChatKind);
    let drifted_set: BTreeSet<(String, String)> = drifted.iter().cloned().collect();
    let env = [("E2E_ALLI_KEY", d.api_key.as_str()), ("E2E_ALLI_PASSWORD", d.password.as_str())];
    for (api, auth, field, kind) in [
        ("rest", "api_key = \"${E2E_ALLI_KEY}\"".to_string(), "sender", "CAMPAIGN"),
        (
            "graphql",
            format!("email = \"{}\"\npassword = \"${{E2E_ALLI_PASSWORD}}\"", d.email),
            "__typename",
            "CampaignChat",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!(
            "name = \"drift\"\n[source]\nplugin = \"alli\"\napi = \"{api}\"\nbase_url = \"{}\"\n{auth}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
            sim.base_url()
        );
        std::fs::write(dir.path().join("p.toml"), toml).unwrap();
        let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "report.json"], &env).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(0), "{api}: every chat is exported: {err}");
        assert!(
            err.contains(&format!("({} unexpected shape)", drifted.len())),
            "{api}: the summary counts them: {err}"
        );

        let got = roles(dir.path());
        assert_eq!(got.len(), d.chat_count(), "{api}: every chat exported once");
        for (key, (role, kind_col)) in &got {
            if drifted_set.contains(key) {
                assert_eq!((role.as_str(), kind_col.as_str()), ("system", "campaign"), "{api} {key:?}");
            } else {
                assert_ne!(role, "system", "{api} {key:?}");
            }
        }
        let dls = dead_letters(dir.path());
        assert!(dls.iter().all(|x| x["reason"] == "unexpected_shape"), "{api}: {dls:?}");
        assert_eq!(keys_of(&dls), drifted_set, "{api}: one dead letter per drifted chat");
        assert!(dls.iter().all(|x| x["raw"][field] == kind), "{api}: the raw chat is kept");
        let message = dls[0]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("the unknown `{field}` `{kind}`: exported with sender_role `system`")),
            "{api}: {message}"
        );
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap()).unwrap();
        assert_eq!(report["unexpected_shape"]["count"], drifted.len(), "{api}");
        assert_eq!(report["outcome"], "success", "{api}");
    }
    sim.shutdown().await;
}
