//! `pipe plugin check`: the conformance kit (`pipe_plugin_sdk::conformance`) passes for every
//! shipped plugin — the giosg, parquet, json and stdout libraries, and the decrypt and tags
//! built-ins by name — and fails, with a clear reason, for the deliberately broken test
//! plugins: wrong ABI, not a plugin, panicking, leaking, lying about its schema. Also
//! `pipe validate --check` against the giosg simulator (good and refused token).

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;

/// `pipe plugin check <lib> [--config check.toml]` in `dir`.
async fn check(dir: &Path, lib: &str, config: Option<&str>) -> (Output, String) {
    let mut args = vec!["plugin", "check", lib];
    if let Some(text) = config {
        std::fs::write(dir.join("check.toml"), text).unwrap();
        args.extend(["--config", "check.toml"]);
    }
    let out = run_pipe(dir, &args, &[]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, report)
}

/// The line of `plugin`'s `check`: (status, detail).
fn line<'a>(report: &'a str, plugin: &str, check: &str) -> (&'a str, &'a str) {
    let l = report
        .lines()
        .find(|l| l.split_whitespace().take(2).eq([plugin, check]))
        .unwrap_or_else(|| panic!("no `{plugin} {check}` line in:\n{report}"));
    let mut parts = l.split_whitespace();
    let status = parts.nth(2).unwrap();
    let detail = l.split_once(status).unwrap().1.trim();
    (status, detail)
}

/// The `N B/cycle` figure of a memory check's detail.
fn bytes_per_cycle(detail: &str) -> u64 {
    let before = detail.split(" B/cycle").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap_or_else(|_| panic!("no B/cycle figure in `{detail}`"))
}

fn assert_all_pass(out: &Output, report: &str, what: &str) {
    assert!(out.status.success(), "{what}: the kit failed (exit {:?}):\n{report}\n{}", out.status.code(), stderr(out));
    assert!(report.lines().all(|l| !l.contains(" FAIL ")), "{what}:\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_plugin_passes() {
    let dataset = Arc::new(generate(&SimConfig::small(30)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let lib = |stem: &str| libraries::library(stem).to_str().unwrap().to_string();

    let giosg = format!(
        "[giosg]\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\npage_size = 10\n",
        sim.base_url(),
        dataset.organization_id,
        dataset.token
    );
    let (out, report) = check(dir.path(), &lib("pipe_giosg"), Some(&giosg)).await;
    assert_all_pass(&out, &report, "giosg");
    for c in ["handshake", "descriptor", "config_errors", "schema", "checkpoint", "cancel", "memory", "no_panics"] {
        let plugin = if c == "handshake" { "pipe-plugin-giosg-dylib" } else { "giosg" };
        assert_eq!(line(&report, plugin, c).0, "PASS", "giosg {c}:\n{report}");
    }
    // Across the ABI, `cancel` either interrupted a read in flight or found the read done.
    let (status, why) = line(&report, "giosg", "cancel_abi");
    assert!(status == "PASS" || status == "SKIP", "{why}");
    sim.shutdown().await;

    for (stem, name, table) in [
        ("pipe_parquet", "parquet", "path = \"out/pq\""),
        ("pipe_json", "json", "path = \"out/js\""),
        ("pipe_stdout", "stdout", ""),
    ] {
        let (out, report) = check(dir.path(), &lib(stem), Some(&format!("[{name}]\n{table}\n"))).await;
        assert_all_pass(&out, &report, name);
        assert_eq!(line(&report, name, "commit").0, "PASS", "{report}");
        let (status, detail) = line(&report, name, "memory");
        assert_eq!(status, "PASS", "{report}");
        // Allocator thread caches once read as 400–1,300 B/cycle of growth across the ABI
        // (`pipe plugin check` now runs without them); a flat heap measures near zero.
        assert!(bytes_per_cycle(detail) <= 512, "{name}: {detail}");
    }

    std::fs::write(dir.path().join("key.pem"), &dataset.private_key_pkcs8_pem).unwrap();
    let (out, report) = check(dir.path(), "decrypt", Some("[decrypt]\nprivate_key_file = \"key.pem\"\n")).await;
    assert_all_pass(&out, &report, "decrypt");
    assert_eq!(line(&report, "decrypt", "schema").0, "PASS", "{report}");
    let (out, report) =
        check(dir.path(), "tags", Some("[tags]\n[[tags.rules]]\ntag = \"billing\"\npattern = \"(?i)invoice\"\n")).await;
    assert_all_pass(&out, &report, "tags");
    assert_eq!(line(&report, "tags", "schema").0, "PASS", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_config_only_the_config_free_checks_run() {
    let dir = tempfile::tempdir().unwrap();
    let (out, report) = check(dir.path(), libraries::library("pipe_giosg").to_str().unwrap(), None).await;
    assert_all_pass(&out, &report, "giosg without config");
    assert_eq!(line(&report, "giosg", "config_errors").0, "PASS");
    let (status, why) = line(&report, "giosg", "schema");
    assert_eq!((status, why), ("SKIP", "needs a working config (pass one with --config)"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_plugins_fail_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let lib = |stem: &str| libraries::library(stem).to_str().unwrap().to_string();

    let (out, report) = check(dir.path(), &lib("pipe_test_wrong_abi"), None).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (status, why) = line(&report, &lib("pipe_test_wrong_abi"), "handshake");
    assert_eq!(status, "FAIL");
    assert!(why.contains("plugin ABI version 2,") && why.contains("supports plugin ABI version 1"), "{why}");

    let (out, report) = check(dir.path(), &lib("pipe_test_not_a_plugin"), None).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        line(&report, &lib("pipe_test_not_a_plugin"), "handshake").1.contains("not a pipe plugin library"),
        "{report}"
    );

    let (out, report) =
        check(dir.path(), &lib("pipe_test_panicky"), Some("[panicky_source]\npanic_in = \"source.next\"\n")).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (status, why) = line(&report, "panicky_source", "no_panics");
    assert_eq!(status, "FAIL");
    assert!(why.contains("source.next") && why.contains("deliberate panic in source.next"), "{why}");
    assert!(stderr(&out).contains("conformance check failed"), "{}", stderr(&out));

    let (out, report) = check(dir.path(), &lib("pipe_test_leaky"), Some("[leaky_source]\n")).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (status, why) = line(&report, "leaky_source", "memory");
    assert_eq!(status, "FAIL", "{report}");
    assert!(why.starts_with("grows: heap"), "{why}");
    // Only the leak fails: the rest of the plugin is correct.
    for c in ["schema", "checkpoint", "cancel", "no_panics"] {
        assert_eq!(line(&report, "leaky_source", c).0, "PASS", "{report}");
    }

    let (out, report) = check(dir.path(), &lib("pipe_test_lying_schema"), Some("[lying_source]\n")).await;
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (status, why) = line(&report, "lying_source", "schema");
    assert_eq!(status, "FAIL");
    // The engine refuses the batch at the boundary (before the kit compares schemas), naming
    // the plugin, the stream and both schemas.
    assert!(
        why.contains("plugin `lying_source` sent a batch on stream `numbers` whose schema differs")
            && why.contains("\"n: Int64\"")
            && why.contains("\"n: Utf8\""),
        "{why}"
    );
    assert_eq!(line(&report, "lying_source", "memory").0, "PASS", "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_probes_the_source() {
    let dataset = Arc::new(generate(&SimConfig::small(5)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"${{T}}\"\n\n[[sinks]]\nplugin = \"json\"\npath = \"out\"\n",
        sim.base_url(),
        dataset.organization_id
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();

    let out = run_pipe(dir.path(), &["validate", "p.toml", "--check"], &[("T", &dataset.token)]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    assert!(stdout.contains("✓ confirmed  giosg.chats.listing"), "{stdout}");
    assert!(stdout.contains("every required check passed"), "{stdout}");
    assert!(!dir.path().join("out").exists(), "validate --check wrote output");

    let before = sim.request_log().len();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[("T", "wrong")]).await;
    assert!(out.status.success(), "without --check nothing is sent: {}", stderr(&out));
    assert_eq!(sim.request_log().len(), before, "validate without --check made a request");

    let out = run_pipe(dir.path(), &["validate", "p.toml", "--check"], &[("T", "wrong-token")]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("source `giosg`: check failed: giosg rejected the credentials: HTTP 401"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("wrong-token"));
    sim.shutdown().await;
}

/// The Alli (both surfaces) and Aimylogic sources pass the kit too, checked as built-ins by
/// name against their simulators.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_sources_pass_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let alli =
        pipe_sim::alli::AlliSim::start(pipe_sim::alli::generate(&pipe_sim::alli::SimConfig::small(12))).await.unwrap();
    let d = alli.dataset();
    for table in [
        format!("[alli]\nbase_url = \"{}\"\napi_key = \"{}\"\ncheckpoint_every = 3\n", alli.base_url(), d.api_key),
        format!(
            "[alli]\napi = \"graphql\"\nbase_url = \"{}\"\nemail = \"{}\"\npassword = \"{}\"\ncheckpoint_every = 3\n",
            alli.base_url(),
            d.email,
            d.password
        ),
    ] {
        let (out, report) = check(dir.path(), "alli", Some(&table)).await;
        assert_all_pass(&out, &report, "alli");
        for c in ["config_errors", "schema", "checkpoint", "cancel", "memory"] {
            assert_eq!(line(&report, "alli", c).0, "PASS", "alli {c}:\n{report}");
        }
    }

    let token = "KitBot01:0123456789abcdef0123456789abcdef01234567";
    let data = Arc::new(pipe_sim::aimylogic::generate(&pipe_sim::aimylogic::SimConfig {
        seed: 5,
        clients: 12,
        max_turns: 6,
        token: token.into(),
    }));
    let aimy = pipe_sim::aimylogic::AimylogicSim::start(data.clone()).await.unwrap();
    let ids: Vec<String> = data.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    let table = format!(
        "[aimylogic]\nbase_url = \"{}\"\ntoken = \"{token}\"\nclient_ids = [{}]\ncheckpoint_every = 3\n",
        aimy.base_url(),
        ids.join(", ")
    );
    let (out, report) = check(dir.path(), "aimylogic", Some(&table)).await;
    assert_all_pass(&out, &report, "aimylogic");
    for c in ["config_errors", "schema", "checkpoint", "cancel", "memory"] {
        assert_eq!(line(&report, "aimylogic", c).0, "PASS", "aimylogic {c}:\n{report}");
    }
    assert!(!report.contains(token) && !stderr(&out).contains(token), "the token is never printed");
}

/// A vendor spec of the `rest` source gets the checks of a library source: the shipped Alli
/// spec passes them against the Alli simulator, and a broken spec fails with its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_spec_passes_the_kit_like_a_library_source() {
    let dir = tempfile::tempdir().unwrap();
    let alli =
        pipe_sim::alli::AlliSim::start(pipe_sim::alli::generate(&pipe_sim::alli::SimConfig::small(12))).await.unwrap();
    let d = alli.dataset();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/specs/alli-rest.toml");
    let table = format!("[rest]\nbase_url = \"{}\"\naccount_id = \"proj\"\ncheckpoint_every = 3\n", alli.base_url());
    std::fs::write(dir.path().join("check.toml"), table).unwrap();
    let env = [("ALLI_API_KEY", d.api_key.as_str())];
    let args = ["plugin", "check", spec.to_str().unwrap(), "--config", "check.toml"];
    let out = run_pipe(dir.path(), &args, &env).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_all_pass(&out, &report, "the Alli spec");
    for c in ["spec", "config_errors", "schema", "checkpoint", "cancel", "memory"] {
        assert_eq!(line(&report, "rest", c).0, "PASS", "rest {c}:\n{report}");
    }
    assert!(!report.contains(&d.api_key) && !stderr(&out).contains(&d.api_key), "the key is never printed");

    let text = std::fs::read_to_string(&spec).unwrap();
    let bad = text.replace("id = \".id | strings\"", "id = \".id | stringz\"");
    let at = bad.lines().position(|l| l.contains("stringz")).unwrap() + 1;
    std::fs::write(dir.path().join("bad.toml"), bad).unwrap();
    let out = run_pipe(dir.path(), &["plugin", "check", "bad.toml", "--config", "check.toml"], &env).await;
    alli.shutdown().await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{report}");
    let (status, detail) = line(&report, "rest", "spec");
    assert_eq!(status, "FAIL", "{report}");
    assert!(detail.contains(&format!("bad.toml:{at}:")) && detail.contains("conversations.id"), "{detail}");
}

/// The shipped Intercom spec (a vendor with no native source) passes the kit against the
/// Intercom simulator, its token never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intercom_spec_passes_the_kit() {
    use pipe_sim::intercom::{IntercomSim, SimConfig, generate};
    let dir = tempfile::tempdir().unwrap();
    let sim = IntercomSim::start(generate(&SimConfig::small(12))).await.unwrap();
    let d = sim.dataset();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/specs/intercom.toml");
    let table = format!("[rest]\nbase_url = \"{}\"\naccount_id = \"ws\"\ncheckpoint_every = 3\n", sim.base_url());
    std::fs::write(dir.path().join("check.toml"), table).unwrap();
    let env = [("INTERCOM_TOKEN", d.token.as_str())];
    let args = ["plugin", "check", spec.to_str().unwrap(), "--config", "check.toml"];
    let out = run_pipe(dir.path(), &args, &env).await;
    sim.shutdown().await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_all_pass(&out, &report, "the Intercom spec");
    for c in ["spec", "config_errors", "schema", "checkpoint", "cancel", "memory"] {
        assert_eq!(line(&report, "rest", c).0, "PASS", "rest {c}:\n{report}");
    }
    assert!(!report.contains(&d.token) && !stderr(&out).contains(&d.token), "the token is never printed");
}

/// The shipped Aimylogic spec (configured conversations, a token in the path, a watermark per
/// conversation) passes the kit against the Aimylogic simulator, the token never printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aimylogic_spec_passes_the_kit() {
    use pipe_sim::aimylogic::{AimylogicSim, SimConfig as AimySim, generate as aimy_generate};
    let dir = tempfile::tempdir().unwrap();
    let token = "KitSpec1:00112233445566778899aabbccddeeff00112233";
    let d = aimy_generate(&AimySim { seed: 3, clients: 8, max_turns: 6, token: token.into() });
    let ids: Vec<String> = d.clients.iter().map(|c| serde_json::to_string(&c.id).unwrap()).collect();
    let sim = AimylogicSim::start(Arc::new(d)).await.unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/specs/aimylogic.toml");
    let table = format!(
        "[rest]\nbase_url = \"{}\"\naccount_id = \"KitSpec1\"\ncheckpoint_every = 3\nvars = {{ clients = [{}] }}\n",
        sim.base_url(),
        ids.join(", ")
    );
    std::fs::write(dir.path().join("check.toml"), table).unwrap();
    let args = ["plugin", "check", spec.to_str().unwrap(), "--config", "check.toml"];
    let out = run_pipe(dir.path(), &args, &[("AIMYLOGIC_TOKEN", token)]).await;
    sim.shutdown().await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_all_pass(&out, &report, "the Aimylogic spec");
    for c in ["spec", "config_errors", "schema", "checkpoint", "cancel", "memory"] {
        assert_eq!(line(&report, "rest", c).0, "PASS", "rest {c}:\n{report}");
    }
    let secret = token.split_once(':').unwrap().1;
    assert!(!report.contains(secret) && !stderr(&out).contains(secret), "the token is never printed");
}
