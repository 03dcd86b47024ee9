//! The declarative `rest` source proven equal to a native one (issue 20): the real `pipe`
//! binary runs the shipped spec `pipelines/specs/alli-rest.toml` and the native `alli` source
//! (`api = "rest"`) against the same Alli simulator, and the outputs, read back with pyarrow,
//! must be the same rows on every canonical column but `extracted_at`, the same dead letters
//! and the same requests, on a first run and on a second run after changes.
//!
//! Then the hostile cases every source must pass, through a spec: a listing whose cursor
//! repeats itself, a `next` link to another origin, a chat dated beyond any timestamp; and
//! spec errors located by file, line and key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pipe_sim::alli::{AlliSim, Dataset, SimConfig, generate};
use pipe_tests::*;
use serde_json::Value;

const NATIVE_KEY_VAR: &str = "E2E_ALLI_KEY";

/// The shipped Alli spec (by this test's own manifest directory).
fn spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipelines/specs/alli-rest.toml")
}

/// The native Alli source.
fn native_pipeline(name: &str, sim: &AlliSim, out: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[source]\nplugin = \"alli\"\napi = \"rest\"\nbase_url = \"{}\"\napi_key = \"${{{NATIVE_KEY_VAR}}}\"\naccount_id = \"proj\"\nconcurrency = 4\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[dead_letter]\npath = \"{out}/_dead_letter\"\n",
        sim.base_url()
    )
}

/// The same export through the shipped spec (its key from `ALLI_API_KEY`).
fn spec_pipeline(name: &str, sim: &AlliSim, spec: &str, out: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n\n[source]\nplugin = \"rest\"\nspec = \"{spec}\"\nbase_url = \"{}\"\naccount_id = \"proj\"\nconcurrency = 4\n{extra}\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[dead_letter]\npath = \"{out}/_dead_letter\"\n",
        sim.base_url()
    )
}

async fn run(dir: &Path, file: &str, toml: &str, d: &Dataset) -> std::process::Output {
    std::fs::write(dir.join(file), toml).unwrap();
    let env = [(NATIVE_KEY_VAR, d.api_key.as_str()), ("ALLI_API_KEY", d.api_key.as_str())];
    run_pipe(dir, &["run", file], &env).await
}

/// Both streams under `out`, every column but `extracted_at`, sorted (pyarrow).
fn rows(out: &Path) -> (Vec<Value>, Vec<Value>) {
    let read = |s: &str| Parquet::at(out.join(s)).without(&["extracted_at"]).allow_missing().read().rows;
    (read("messages"), read("conversations"))
}

/// `(stream, reason, key)` of every dead letter under `out/_dead_letter`, sorted.
fn dead_letters(out: &Path) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = jsonl_rows(&out.join("_dead_letter"))
        .iter()
        .map(|d| (d["stream"].as_str().unwrap().into(), d["reason"].as_str().unwrap().into(), d["key"].to_string()))
        .collect();
    v.sort();
    v
}

/// The requests of a log slice, as (method, path, sorted query pairs), sorted: what was asked,
/// whatever order the parameters were written in.
fn requests(log: &[String]) -> Vec<String> {
    let mut v: Vec<String> = log
        .iter()
        .map(|l| {
            let (method, uri) = l.split_once(' ').unwrap();
            let url = url::Url::parse(&format!("http://h{uri}")).unwrap();
            // The floor of a run whose newest conversation is dated 2100 is "now" + the clock
            // skew at that run: the two runs' `startedAt` differ by the time between them.
            let mut q: Vec<(String, String)> = url
                .query_pairs()
                .into_owned()
                .map(|(k, v)| if k == "startedAt" { (k, "(floor)".into()) } else { (k, v) })
                .collect();
            q.sort();
            format!("{method} {} {q:?}", url.path())
        })
        .collect();
    v.sort();
    v
}

fn assert_same_export(native: &Path, spec: &Path, what: &str) {
    let (nm, nc) = rows(native);
    let (sm, sc) = rows(spec);
    assert!(!nm.is_empty() && !nc.is_empty(), "{what}: the native run exported nothing");
    assert_eq!(sm.len(), nm.len(), "{what}: message rows");
    for (s, n) in sm.iter().zip(&nm) {
        assert_eq!(s, n, "{what}: a message row differs");
    }
    assert_eq!(sc.len(), nc.len(), "{what}: conversation rows");
    for (s, n) in sc.iter().zip(&nc) {
        assert_eq!(s, n, "{what}: a conversation row differs");
    }
    assert_eq!(dead_letters(spec), dead_letters(native), "{what}: dead letters");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alli_spec_exports_what_the_native_source_does_on_first_and_second_runs() {
    let sim = AlliSim::start(generate(&SimConfig::small(60))).await.unwrap();
    let d0 = sim.dataset();
    // A conversation whose /chats loses a chat (incomplete) and one with a chat dated 2100.
    let long = d0.conversations.iter().find(|c| c.chats.len() == 101).unwrap().id.clone();
    sim.lose_a_chat_of(&long);
    sim.add_chats(5, 1, 4_102_444_800_000);
    let d0 = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_path();
    let spec = spec.to_str().unwrap();

    let before = sim.request_log().len();
    let native = run(dir.path(), "n1.toml", &native_pipeline("native", &sim, "out/native1", ""), &d0).await;
    let native_log = sim.request_log().split_off(before);
    assert_eq!(native.status.code(), Some(3), "native: {}", stderr(&native));
    let spec_run = run(dir.path(), "s1.toml", &spec_pipeline("spec", &sim, spec, "out/spec1", ""), &d0).await;
    let spec_log = sim.request_log().split_off(before + native_log.len());
    assert_eq!(spec_run.status.code(), Some(3), "spec: {}", stderr(&spec_run));
    assert!(stderr(&spec_run).contains(&long), "the incomplete conversation is named: {}", stderr(&spec_run));
    assert!(!stderr(&spec_run).contains(&d0.api_key), "the key leaked");
    assert_same_export(&dir.path().join("out/native1"), &dir.path().join("out/spec1"), "first run");
    assert_eq!(requests(&spec_log), requests(&native_log), "first run: the same requests");

    // Changes: two older conversations get new chats now (the 2100 chat holds the watermark
    // at the first run's now + skew, so "now" is above the next floor).
    let now_ms = pipe_plugin_sdk::time::now_micros() / 1000;
    sim.add_chats(3, 3, now_ms - 600_000);
    sim.add_chats(17, 2, now_ms - 300_000);
    let d1 = sim.dataset();
    let before = sim.request_log().len();
    let native = run(dir.path(), "n2.toml", &native_pipeline("native", &sim, "out/native2", ""), &d1).await;
    let native_log = sim.request_log().split_off(before);
    let spec_run = run(dir.path(), "s2.toml", &spec_pipeline("spec", &sim, spec, "out/spec2", ""), &d1).await;
    let spec_log = sim.request_log().split_off(before + native_log.len());
    sim.shutdown().await;
    assert_eq!(spec_run.status.code(), native.status.code(), "second run: {}", stderr(&spec_run));
    assert_same_export(&dir.path().join("out/native2"), &dir.path().join("out/spec2"), "second run");
    assert_eq!(requests(&spec_log), requests(&native_log), "second run: the same requests");
    assert!(!spec_log.iter().any(|l| l.contains("startedAt")), "no floor in a guessed unit: {spec_log:?}");
    let emitted: BTreeSet<String> =
        rows(&dir.path().join("out/spec2")).1.iter().map(|c| c["conversation_id"].as_str().unwrap().into()).collect();
    assert!(emitted.contains(&d1.conversations[3].id) && emitted.contains(&d1.conversations[17].id), "{emitted:?}");
    assert!(emitted.len() < 10, "an incremental run, not a full one: {emitted:?}");

    let state = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.path().join(format!(".pipe/state/{name}.json"))).unwrap();
        serde_json::from_str::<Value>(&text).unwrap()["source_state"].clone()
    };
    let (n, s) = (state("native"), state("spec"));
    assert_eq!(s["unit"], n["unit"]);
    // Both watermarks stop at "now" + the clock skew of their run (the 2100 chat): seconds apart.
    let w = |v: &Value| pipe_plugin_sdk::time::parse_timestamp_micros(v["watermark"].as_str().unwrap()).unwrap();
    assert!((w(&s) - w(&n)).abs() < 120_000_000, "watermarks {} and {}", s["watermark"], n["watermark"]);
    let keys = |v: &Value| v["seen"].as_object().unwrap().keys().cloned().collect::<BTreeSet<String>>();
    assert_eq!(keys(&s), keys(&n), "the same lookback window is remembered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeating_cursor_is_a_paging_loop_through_a_spec_as_through_the_native_source() {
    // More conversations than one listing page (the spec asks for 50): the second page's cursor
    // is handed back unchanged.
    let sim = AlliSim::start(generate(&SimConfig::small(60))).await.unwrap();
    sim.repeat_cursor(true);
    let d = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    // A spec file next to the pipeline, named relative to it (not to the working directory).
    std::fs::create_dir_all(dir.path().join("pipes/specs")).unwrap();
    std::fs::copy(spec_path(), dir.path().join("pipes/specs/alli.toml")).unwrap();
    let toml = spec_pipeline("loop", &sim, "specs/alli.toml", "out/spec", "");
    std::fs::write(dir.path().join("pipes/p.toml"), toml).unwrap();
    let env = [("ALLI_API_KEY", d.api_key.as_str())];
    let spec_run = run_pipe(dir.path(), &["run", "pipes/p.toml"], &env).await;
    let native = run(dir.path(), "n.toml", &native_pipeline("loopn", &sim, "out/native", ""), &d).await;
    sim.shutdown().await;
    assert_eq!(native.status.code(), Some(3), "native: {}", stderr(&native));
    assert_eq!(spec_run.status.code(), Some(3), "spec: {}", stderr(&spec_run));
    let dls = jsonl_rows(&dir.path().join("out/spec/_dead_letter"));
    assert_eq!(dls.len(), 1, "{dls:?}");
    assert_eq!(dls[0]["reason"], "paging_loop");
    assert_eq!(dead_letters(&dir.path().join("out/spec")), dead_letters(&dir.path().join("out/native")));
    // What was read before the loop is exported, as by the native source.
    assert_same_export(&dir.path().join("out/native"), &dir.path().join("out/spec"), "looping listing");
}

/// One request a loopback server saw: (path and query, headers).
type Seen = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// How the loopback server answers a request, by its path and query.
type Reply = Arc<dyn Fn(&str) -> String + Send + Sync>;

async fn serve(reply: impl Fn(&str) -> String + Send + Sync + 'static) -> (String, Seen) {
    use axum::extract::{Request, State};
    let seen: Seen = Arc::default();
    let reply = Arc::new(reply);
    let app = axum::Router::new()
        .fallback(|State((seen, reply)): State<(Seen, Reply)>, req: Request| async move {
            let uri = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
            let headers = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            seen.lock().unwrap().push((uri.clone(), headers));
            ([("content-type", "application/json")], reply(&uri))
        })
        .with_state((seen.clone(), reply as Reply));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_next_link_to_another_origin_is_never_followed_with_the_credentials() {
    let (elsewhere, recorder) = serve(|_| r#"{"next": null, "results": []}"#.to_string()).await;
    let lure = format!("{elsewhere}/api/chats?page=2");
    let (vendor, vendor_seen) = serve(move |_| serde_json::json!({"next": lure, "results": []}).to_string()).await;
    let secret = "acme-s3cret/9f2a+x";
    let toml = format!(
        r#"name = "lured"

[source]
plugin = "rest"
base_url = "{vendor}"

[source.spec]
vendor = "acme"
base_url = "https://api.acme.example"
auth = {{ type = "bearer", token = "${{E2E_CRED}}" }}
conversations = {{ path = "/api/chats", records = ".results", id = ".id", paging = {{ type = "next_url", next = ".next" }} }}
messages = {{ path = "/api/chats/{{id}}/messages", records = ".results" }}
map = {{ conversation = "{{}}", message = "{{message_id: .id, sent_at: .t, sender_role: \"visitor\"}}" }}

[[sinks]]
plugin = "parquet"
path = "out"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_CRED", secret)]).await;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("acme") && err.contains(&elsewhere), "names the vendor and the foreign origin: {err}");
    assert!(recorder.lock().unwrap().is_empty(), "the foreign origin got a request");
    let seen = vendor_seen.lock().unwrap();
    assert_eq!(
        seen[0].1.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.as_str()),
        Some(&*format!("Bearer {secret}"))
    );
    assert!(!err.contains(secret), "the secret leaked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_dated_beyond_any_timestamp_is_a_dead_letter_and_never_moves_the_watermark() {
    use pipe_plugin_sdk::source_kit::MAX_CLOCK_SKEW_US;
    use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
    let sim = AlliSim::start(generate(&SimConfig::small(20))).await.unwrap();
    sim.add_chats(5, 1, 4_102_444_800_000);
    let d = sim.dataset();
    let far_chat = d.conversations[5].chats.last().unwrap().id.clone();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_path();
    let out = run(dir.path(), "p.toml", &spec_pipeline("times", &sim, spec.to_str().unwrap(), "out", ""), &d).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let dls = jsonl_rows(&dir.path().join("out/_dead_letter"));
    assert!(
        dls.iter().any(|d| d["reason"] == "time_in_future" && d["key"]["message_id"] == far_chat.as_str()),
        "{dls:?}"
    );
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(".pipe/state/times.json")).unwrap()).unwrap();
    let watermark = parse_timestamp_micros(state["source_state"]["watermark"].as_str().unwrap()).unwrap();
    assert!(watermark <= now_micros() + MAX_CLOCK_SKEW_US, "the watermark stops at now: {state}");
    // New chats after that run are exported by the next one.
    sim.add_chats(8, 2, now_micros() / 1000);
    let d2 = sim.dataset();
    let out = run(dir.path(), "p.toml", &spec_pipeline("times", &sim, spec.to_str().unwrap(), "out", ""), &d2).await;
    sim.shutdown().await;
    assert_eq!(out.status.code(), Some(3), "still naming the 2100 chat: {}", stderr(&out));
    let ids: BTreeSet<String> = Parquet::at(dir.path().join("out/messages"))
        .columns(&["message_id"])
        .read()
        .rows
        .iter()
        .map(|r| r["message_id"].as_str().unwrap().to_string())
        .collect();
    for m in d2.conversations[8].chats.iter().rev().take(2) {
        assert!(ids.contains(&m.id), "new chat {} exported", m.id);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_errors_name_the_spec_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(spec_path()).unwrap();
    let cases = [
        // A jq program that does not parse: the line of its key.
        (
            good.replace("records = \".conversations\"", "records = \".conversations | (\""),
            "conversations.records",
            "records = \".conversations | (\"",
        ),
        // A wrong type (serde, through the toml crate's span).
        (good.replace("lookback_hours = 48", "lookback_hours = \"two days\""), "", "lookback_hours = \"two days\""),
        // An unknown paging shape.
        (good.replace("type = \"cursor\"", "type = \"cursr\""), "", "type = \"cursr\""),
        // A role that is not canonical.
        (good.replace("AGENT = \"agent\"", "AGENT = \"operator\""), "map.roles.AGENT", "AGENT = \"operator\""),
    ];
    std::fs::write(
        dir.path().join("p.toml"),
        "name = \"bad\"\n\n[source]\nplugin = \"rest\"\nspec = \"bad.toml\"\n\n[[sinks]]\nplugin = \"stdout\"\n",
    )
    .unwrap();
    for (text, key, line_text) in cases {
        std::fs::write(dir.path().join("bad.toml"), &text).unwrap();
        let line = text.lines().position(|l| l.contains(line_text)).unwrap() + 1;
        let out = run_pipe(dir.path(), &["validate", "p.toml"], &[("ALLI_API_KEY", "k")]).await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("bad.toml:{line}:")), "names bad.toml:{line}: {err}");
        assert!(err.contains(key), "names {key}: {err}");
        assert!(err.contains("p.toml:5"), "and the pipeline's spec key: {err}");
    }
    // The shipped spec itself validates.
    std::fs::write(dir.path().join("bad.toml"), &good).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[("ALLI_API_KEY", "k")]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_check_probes_the_spec_against_the_api() {
    let sim = AlliSim::start(generate(&SimConfig::small(5))).await.unwrap();
    let d = sim.dataset();
    let dir = tempfile::tempdir().unwrap();
    let spec = spec_path();
    std::fs::write(dir.path().join("p.toml"), spec_pipeline("probe", &sim, spec.to_str().unwrap(), "out", "")).unwrap();
    let ok = run_pipe(dir.path(), &["validate", "p.toml", "--check"], &[("ALLI_API_KEY", d.api_key.as_str())]).await;
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // A contract report like the native sources': every assumption of the spec, each line
    // `status name required|optional seen`.
    let report = String::from_utf8_lossy(&ok.stdout).into_owned();
    let status = |name: &str| -> &str {
        let line = report.lines().find(|l| l.split_whitespace().any(|w| w == name));
        let line = line.unwrap_or_else(|| panic!("no check {name}:\n{report}"));
        if line.starts_with("✓ confirmed") { "confirmed" } else { line }
    };
    for name in [
        "rest.conversations.records",
        "rest.conversations.id",
        "rest.incremental.time",
        "rest.incremental.order",
        "rest.messages.records",
        "rest.completeness.count",
        "rest.map.conversation",
        "rest.map.message",
        "rest.map.dead_letters",
    ] {
        assert_eq!(status(name), "confirmed", "{name}:\n{report}");
    }
    assert!(report.contains("source `rest (alli)`") && report.contains("every required check passed"), "{report}");
    assert!(!report.contains(&d.api_key), "the key leaked");

    // A spec whose incremental time names a field the vendor does not send: that required
    // check fails, named on stderr (exit 1), and the others still report.
    let text = std::fs::read_to_string(&spec).unwrap();
    let wrong_time = text.replace("time = \".lastChatTime // .createdAt\"", "time = \".updatedAt\"");
    assert_ne!(wrong_time, text);
    std::fs::write(dir.path().join("wrong.toml"), wrong_time).unwrap();
    std::fs::write(dir.path().join("w.toml"), spec_pipeline("probe", &sim, "wrong.toml", "out", "")).unwrap();
    let wrong = run_pipe(dir.path(), &["validate", "w.toml", "--check"], &[("ALLI_API_KEY", d.api_key.as_str())]).await;
    assert_eq!(wrong.status.code(), Some(1), "{}", stderr(&wrong));
    assert!(stderr(&wrong).contains("required check `rest.incremental.time` ≠ different"), "{}", stderr(&wrong));
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("rest.map.message"), "the other checks still run");

    let wrong = "wrong-key-5e6f";
    let bad = run_pipe(dir.path(), &["validate", "p.toml", "--check"], &[("ALLI_API_KEY", wrong)]).await;
    sim.shutdown().await;
    let err = stderr(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(err.contains("alli") && err.contains("401"), "names the vendor and the status: {err}");
    assert!(!err.contains(wrong), "the key leaked: {err}");
    assert!(!dir.path().join("out").exists(), "a check exports nothing");
}
