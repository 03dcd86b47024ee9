//! The HTTP layer end to end: the real `pipe` binary against a misbehaving giosg simulator.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{GiosgSim, HttpFaults, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

fn pipeline(sim: &GiosgSim, org: &str, source_extra: &str) -> String {
    format!(
        "name = \"http\"\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\n{source_extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n",
        sim.base_url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_xx_truncation_and_resets_lose_nothing() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(60) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    sim.set_faults(HttpFaults { error_rate: 0.10, truncate_rate: 0.03, reset_rate: 0.03, ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d.organization_id, "concurrency = 6")).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml", "--report", "r.json"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    let records = sim.request_records();
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let failed = records.iter().filter(|r| r.status >= 500).count();
    assert!(failed > 0, "the simulator injected 5xx");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert!(report["retries"].as_u64().unwrap() as usize >= failed, "every failure was retried and reported: {report}");

    let rows =
        Parquet::at(dir.path().join("out/messages")).columns(&["conversation_id", "message_id", "text"]).read().rows;
    let got: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r["conversation_id"].as_str().unwrap().into(), r["message_id"].as_str().unwrap().into()))
        .collect();
    let want: BTreeSet<(String, String)> = d
        .chats
        .iter()
        .flat_map(|c| c.messages.iter().map(move |m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string())))
        .collect();
    assert_eq!(rows.len(), want.len(), "exactly once");
    assert_eq!(got, want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_keeps_under_the_vendor_limit_and_retry_after_is_respected() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(40) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let limit = 40.0;
    sim.set_faults(HttpFaults { rate_limit: Some(limit), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        pipeline(&sim, &d.organization_id, "concurrency = 8\nrequests_per_second = 40"),
    )
    .unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    let records = sim.request_records();
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let throttled: Vec<_> = records.iter().filter(|r| r.status == 429).collect();
    assert!(throttled.len() <= 3, "{} of {} requests were answered 429", throttled.len(), records.len());
    // After a 429 with Retry-After: 1, nothing new arrives until the second has passed (50 ms of
    // slack for requests already on the wire when the 429 was sent).
    for t in &throttled {
        let early = records
            .iter()
            .filter(|r| r.at > t.at + Duration::from_millis(50) && r.at < t.at + Duration::from_millis(950))
            .count();
        assert_eq!(early, 0, "requests within Retry-After of the 429 at {:?}", t.at);
    }
    // And the allowed rate is used: the whole run is not much slower than requests / limit.
    let span = records.last().unwrap().at - records.first().unwrap().at;
    let achieved = records.len() as f64 / span.as_secs_f64().max(0.001);
    assert!(achieved <= limit * 1.6, "achieved {achieved:.1}/s against {limit}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_variables_are_honoured() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(3) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d.organization_id, "retry_budget = 1")).unwrap();
    // A proxy that does not exist: the run can only fail if the variable is used.
    let dead_proxy = "http://127.0.0.1:9";
    let env = [
        ("E2E_GIOSG_TOKEN", d.token.as_str()),
        ("HTTP_PROXY", dead_proxy),
        ("http_proxy", dead_proxy),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ];
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    assert_ne!(out.status.code(), Some(0), "requests went around HTTP_PROXY");
    assert_eq!(sim.requests(), 0);
    // NO_PROXY exempts the simulator's host.
    let env = [
        ("E2E_GIOSG_TOKEN", d.token.as_str()),
        ("HTTP_PROXY", dead_proxy),
        ("http_proxy", dead_proxy),
        ("NO_PROXY", "127.0.0.1"),
        ("no_proxy", "127.0.0.1"),
    ];
    let out = run_pipe(dir.path(), &["run", "p.toml"], &env).await;
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
}

#[tokio::test]
async fn a_ca_file_that_is_not_pem_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let toml = "[source]\nplugin = \"giosg\"\nbase_url = \"https://127.0.0.1:9\"\norganization_id = \"o\"\ntoken = \"t\"\nca_file = \"ca.pem\"\nretry_budget = 1\n\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n";
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ca_file"), "{}", stderr(&out));
}
