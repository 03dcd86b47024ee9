//! Prometheus metrics end to end: a real Prometheus server (Debian's `prometheus`, installed by
//! `.ci/run`) on loopback scrapes `pipe run --metrics-addr` during a slowed batch run of the
//! giosg simulator and during a webhook run; queried through Prometheus's HTTP API, the final
//! values equal the run report's figures and the simulator's own request log. The
//! `--metrics-file` passes `promtool check metrics`, is replaced atomically (a killed run
//! leaves the previous file whole), and has the same series whether the account has 30 or
//! 300 conversations.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pipe_sim::aimylogic::{PostOutcome, WebhookSender, webhook_events};
use pipe_sim::giosg::{Dataset, GiosgSim, HttpFaults, SimConfig, SimOptions, generate};
use pipe_tests::prometheus::{Prometheus, free_port, promtool_bin};
use pipe_tests::*;
use serde_json::Value;

/// A giosg pipeline with decrypt, Parquet and dead letters in `dl`, committing often.
fn giosg_pipeline(sim: &GiosgSim, d: &Dataset) -> String {
    format!(
        "name = \"metrics-e2e\"\ncommit_interval_seconds = 0.5\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\n\
         organization_id = \"{}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 10\nconcurrency = 4\ncheckpoint_every = 5\n\n\
         [[transforms]]\nplugin = \"decrypt\"\nprivate_key_file = \"key.pem\"\n\n\
         [[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n",
        sim.base_url(),
        d.organization_id
    )
}

/// A fresh directory with the key and the pipeline for `sim`.
fn giosg_dir(sim: &GiosgSim, d: &Dataset) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), &d.private_key_pkcs8_pem).unwrap();
    std::fs::write(dir.path().join("p.toml"), giosg_pipeline(sim, d)).unwrap();
    dir
}

fn report(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("r.json")).unwrap()).unwrap()
}

/// Runs `promtool check metrics` on `text` and returns its exit status and output.
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = std::process::Command::new(promtool_bin())
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The series of a metrics file (`name{labels}`) with their values.
fn file_series(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// The number of samples of each series of `selector` over the last 10 minutes.
async fn sample_counts(prom: &Prometheus, selector: &str) -> usize {
    prom.query(&format!("{selector}[10m]"))
        .await
        .iter()
        .map(|r| r["values"].as_array().map_or(0, Vec::len))
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_slowed_batch_run_and_its_final_values_equal_the_report() {
    let mut d = generate(&SimConfig { encrypted_every: 2, ..SimConfig::small(40) });
    d.corrupt_one_encrypted_message().expect("the dataset has encrypted messages");
    let d = Arc::new(d);
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    // Slow, flaky and rate limited: retries, 5xx and 429 pauses to count.
    sim.set_faults(HttpFaults {
        latency: Duration::from_millis(120),
        error_rate: 0.08,
        rate_limit: Some(15.0),
        ..Default::default()
    });
    let port = free_port();
    let prom = Prometheus::start(&[format!("127.0.0.1:{port}")]).await;
    let dir = giosg_dir(&sim, &d);
    let addr = format!("127.0.0.1:{port}");
    let args = [
        "run",
        "p.toml",
        "--report",
        "r.json",
        "--metrics-addr",
        &addr,
        "--metrics-linger",
        "30",
        "--metrics-file",
        "pipe.prom",
    ];
    let out = run_pipe(dir.path(), &args, &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    let records = sim.request_records();
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let r = report(dir.path());
    eprintln!("run took {} s, {} requests", r["elapsed_s"], r["requests"]);

    // Scraped while it ran: samples of the start time from before the end time existed.
    let (started, ended) = (
        sample_counts(&prom, "pipe_run_start_time_seconds").await,
        sample_counts(&prom, "pipe_run_end_time_seconds").await,
    );
    assert!(ended >= 1, "the final values were scraped (--metrics-linger):\n{}", prom.log());
    assert!(started > ended, "scraped during the run too: {started} samples in all, {ended} after its end");
    let last = |m: &str| format!("last_over_time({m}[10m])");

    // Rows per stream, requests, retries, dead letters, commits: the report's figures.
    let rows = prom.vector(&last("pipe_rows_written_total")).await;
    let rows: BTreeMap<String, f64> = rows.into_iter().map(|(l, v)| (l["stream"].clone(), v)).collect();
    let want_rows: BTreeMap<String, f64> =
        r["rows"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect();
    assert_eq!(rows, want_rows);
    assert!(want_rows["messages"] > 0.0);
    let requests = prom.scalar(&format!("sum({})", last("pipe_http_requests_total"))).await;
    assert_eq!(requests, r["requests"].as_f64().unwrap());
    assert_eq!(requests as usize, records.len(), "the simulator saw every request counted");
    let retries = prom.scalar(&format!("sum({})", last("pipe_http_retries_total"))).await;
    assert_eq!(retries, r["retries"].as_f64().unwrap());
    assert!(retries > 0.0, "the faults caused retries");
    let dead = prom.vector(&last("pipe_dead_letters_total")).await;
    assert_eq!(dead.values().sum::<f64>(), r["dead_letters"].as_f64().unwrap());
    assert_eq!(dead.len(), 1, "{dead:?}");
    let (labels, n) = dead.iter().next().unwrap();
    assert_eq!((labels["reason"].as_str(), labels["stream"].as_str(), *n), ("hmac_mismatch", "messages", 1.0));
    let commits = prom.scalar(&last("pipe_commits_total")).await;
    assert_eq!(commits, r["checkpoints"].as_f64().unwrap());
    assert!(commits >= 2.0, "committed several times: {commits}");

    // Requests by status class: exactly what the simulator answered.
    let by_class: BTreeMap<String, f64> = prom
        .vector(&format!("sum by (status_class) ({})", last("pipe_http_requests_total")))
        .await
        .into_iter()
        .map(|(l, v)| (l["status_class"].clone(), v))
        .collect();
    let mut want_class: BTreeMap<String, f64> = BTreeMap::new();
    for rec in &records {
        *want_class.entry(format!("{}xx", rec.status / 100)).or_default() += 1.0;
    }
    assert_eq!(by_class, want_class);
    let throttled = records.iter().filter(|rec| rec.status == 429).count() as f64;
    assert!(throttled > 0.0 && want_class.contains_key("5xx"), "the simulator throttled and failed: {want_class:?}");
    // Every 429 paused the source (Retry-After: 1, so at least a second each).
    let pauses = prom.scalar(&format!("sum({})", last("pipe_rate_limit_pause_seconds_count"))).await;
    let paused = prom.scalar(&format!("sum({})", last("pipe_rate_limit_pause_seconds_sum"))).await;
    assert_eq!(pauses, throttled);
    assert!(paused >= throttled, "{paused} s paused for {throttled} pauses");

    // Files and bytes per sink; the decrypt counts; outcome, duration, watermark.
    let sink = &r["sinks"][0];
    let files = prom.vector(&last("pipe_files_published_total")).await;
    let bytes = prom.vector(&last("pipe_bytes_published_total")).await;
    let sink_name = sink["sink"].as_str().unwrap();
    assert_eq!(
        files.iter().map(|(l, v)| (l["sink"].as_str(), *v)).collect::<Vec<_>>(),
        [(sink_name, sink["files"].as_f64().unwrap())]
    );
    assert_eq!(
        bytes.iter().map(|(l, v)| (l["sink"].as_str(), *v)).collect::<Vec<_>>(),
        [(sink_name, sink["bytes"].as_f64().unwrap())]
    );
    let encrypted = d.encrypted_messages().count() as f64;
    assert_eq!(prom.scalar(&last("pipe_decrypt_messages_failed_total")).await, 1.0);
    assert_eq!(prom.scalar(&last("pipe_decrypt_messages_decrypted_total")).await, encrypted - 1.0);
    let outcome: BTreeMap<String, f64> =
        prom.vector(&last("pipe_run_outcome")).await.into_iter().map(|(l, v)| (l["outcome"].clone(), v)).collect();
    assert_eq!(outcome["success"], 1.0);
    assert_eq!(outcome.values().sum::<f64>(), 1.0, "{outcome:?}");
    let duration = prom.scalar(&last("pipe_run_duration_seconds")).await;
    let elapsed = r["elapsed_s"].as_f64().unwrap();
    assert!(duration >= elapsed && duration < elapsed + 5.0, "{duration} s vs the report's {elapsed} s");
    let watermark = prom.scalar(&last("pipe_watermark_timestamp_seconds")).await;
    let saved = r["state_after"]["watermark"].as_str().expect("giosg saves a watermark");
    let saved = chrono::DateTime::parse_from_rfc3339(saved).unwrap().timestamp_micros() as f64 / 1e6;
    assert!((watermark - saved).abs() < 1e-3, "{watermark} vs {saved}");
    let every = prom.query("last_over_time({__name__=~\"pipe_.+\"}[10m])").await;
    let pipelines: BTreeSet<String> = every.iter().map(|s| s["metric"]["pipeline"].to_string()).collect();
    assert!(every.len() > 20, "{every:?}");
    assert_eq!(pipelines, BTreeSet::from(["\"metrics-e2e\"".to_string()]), "every series names the pipeline");

    // The metrics file: the same final values, valid for promtool, no secret.
    let text = std::fs::read_to_string(dir.path().join("pipe.prom")).unwrap();
    let (ok, lint) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{lint}\n{text}");
    let series = file_series(&text);
    assert_eq!(series["pipe_rows_written_total{pipeline=\"metrics-e2e\",stream=\"messages\"}"], want_rows["messages"]);
    assert_eq!(series["pipe_run_outcome{pipeline=\"metrics-e2e\",outcome=\"success\"}"], 1.0);
    assert!(!text.contains(&d.token), "the token is in the metrics file");
    prom.stop().await;
}

const HOOK_TOKEN: &str = "HookChnl:0a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const HOOK_SECRET: &str = "s3cret-hook-value";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_a_webhook_run_and_its_final_values_equal_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (hook_port, metrics_port) = (free_port(), free_port());
    let toml = format!(
        "name = \"hook-metrics\"\n\n[source]\nplugin = \"aimylogic\"\nmode = \"webhook\"\ntoken = \"${{E2E_AIMY_TOKEN}}\"\n\
         listen = \"127.0.0.1:{hook_port}\"\npath = \"/hook\"\nsecret = \"${{E2E_HOOK_SECRET}}\"\n\
         client_ids_file = \"clients.txt\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n"
    );
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let prom = Prometheus::start(&[format!("127.0.0.1:{metrics_port}")]).await;
    let log = std::fs::File::create(dir.path().join("pipe.log")).unwrap();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut child = tokio::process::Command::new(pipe_bin())
        .args(["run", "p.toml", "--report", "r.json", "--metrics-addr", &metrics_addr, "--metrics-linger", "30"])
        .current_dir(dir.path())
        .env("PIPE_LOG", "info")
        .env("E2E_AIMY_TOKEN", HOOK_TOKEN)
        .env("E2E_HOOK_SECRET", HOOK_SECRET)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_until_healthy(hook_port, dir.path()).await;

    // 10 POSTs of 3 events, acknowledged; 2 without the secret (401); 1 not JSON (400).
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    let sender = WebhookSender::new(url.clone());
    let hdr = [("X-Webhook-Secret", HOOK_SECRET)];
    let (events, _keys) = webhook_events(HOOK_TOKEN, 30, 3);
    for chunk in events.chunks(3) {
        let outcome = sender.send_raw(serde_json::to_vec(chunk).unwrap(), &hdr).await;
        assert!(matches!(outcome, PostOutcome::Acked { attempts: 1 }), "{outcome:?}");
    }
    for _ in 0..2 {
        let outcome =
            sender.send_raw(serde_json::to_vec(&events[..1]).unwrap(), &[("X-Webhook-Secret", "wrong")]).await;
        assert_eq!(outcome, PostOutcome::Refused(401));
    }
    assert_eq!(sender.send_raw(b"not json {".to_vec(), &hdr).await, PostOutcome::Refused(400));

    // Scraped while the service runs.
    prom.wait_for("sum(pipe_webhook_ack_duration_seconds_count) >= 10").await;
    prom.wait_for("sum(pipe_dead_letters_total) >= 1").await;
    assert_eq!(sigterm_and_wait(&mut child).await, Some(0), "{}", service_log(dir.path()));
    prom.wait_for("last_over_time(pipe_run_end_time_seconds[10m])").await;
    let r = report(dir.path());
    let last = |m: &str| format!("last_over_time({m}[10m])");

    let rows: BTreeMap<String, f64> = prom
        .vector(&last("pipe_rows_written_total"))
        .await
        .into_iter()
        .map(|(l, v)| (l["stream"].clone(), v))
        .collect();
    let want_rows: BTreeMap<String, f64> =
        r["rows"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_f64().unwrap())).collect();
    assert_eq!(rows, want_rows);
    assert!(want_rows["messages"] >= 30.0, "30 events, their replies too: {want_rows:?}");
    let dead = prom.vector(&last("pipe_dead_letters_total")).await;
    assert_eq!(dead.values().sum::<f64>(), r["dead_letters"].as_f64().unwrap());
    assert_eq!(dead.keys().map(|l| l["reason"].as_str()).collect::<Vec<_>>(), ["malformed_body"]);
    assert_eq!(
        prom.scalar(&format!("sum({})", last("pipe_http_requests_total"))).await,
        r["requests"].as_f64().unwrap()
    );

    // Answers by code (GET /healthz answers 200 too), and one acknowledgement per accepted POST.
    let by_code: BTreeMap<String, f64> = prom
        .vector(&format!("sum by (code) ({})", last("pipe_webhook_requests_total")))
        .await
        .into_iter()
        .map(|(l, v)| (l["code"].clone(), v))
        .collect();
    assert_eq!((by_code["401"], by_code["400"]), (2.0, 1.0), "{by_code:?}");
    assert!(by_code["200"] >= 10.0, "{by_code:?}");
    assert_eq!(by_code.keys().collect::<Vec<_>>(), ["200", "400", "401"]);
    assert_eq!(prom.scalar(&format!("sum({})", last("pipe_webhook_ack_duration_seconds_count"))).await, 10.0);
    let acked_in = prom.scalar(&format!("sum({})", last("pipe_webhook_ack_duration_seconds_sum"))).await;
    assert!(acked_in > 0.0 && acked_in < 30.0, "{acked_in} s for 10 acknowledgements");
    assert_eq!(prom.scalar("last_over_time(pipe_run_outcome{outcome=\"success\"}[10m])").await, 1.0);
    assert!(!prom.query(&last("pipe_rows_written_total")).await.is_empty());
    assert!(
        prom.query(&last("pipe_watermark_timestamp_seconds")).await.is_empty(),
        "a webhook listener has no watermark"
    );
    let log = service_log(dir.path());
    assert!(log.contains(&format!("metrics on http://{metrics_addr}/metrics")), "{log}");
    prom.stop().await;
}

/// Runs a slowed export as a child process with `--metrics-file pipe.prom` in `dir`, and
/// returns it once the simulator has seen its first requests.
async fn slow_run(dir: &Path, sim: &GiosgSim, token: &str) -> tokio::process::Child {
    let before = sim.request_records().len();
    let log = std::fs::File::create(dir.join("pipe.log")).unwrap();
    let child = tokio::process::Command::new(pipe_bin())
        .args(["run", "p.toml", "--metrics-file", "pipe.prom"])
        .current_dir(dir)
        .env("PIPE_LOG", "info")
        .env("E2E_GIOSG_TOKEN", token)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sim.request_records().len() < before + 3 {
        assert!(Instant::now() < deadline, "the run made no request:\n{}", service_log(dir));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_file_is_replaced_atomically_and_a_killed_run_leaves_the_previous_one() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 5, ..SimConfig::small(60) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    sim.set_faults(HttpFaults { latency: Duration::from_millis(400), ..Default::default() });
    let dir = giosg_dir(&sim, &d);
    let previous = "# HELP pipe_run_start_time_seconds previous run\n# TYPE pipe_run_start_time_seconds gauge\npipe_run_start_time_seconds{pipeline=\"metrics-e2e\"} 1\n";
    std::fs::write(dir.path().join("pipe.prom"), previous).unwrap();

    // SIGKILL mid-run: the previous file stays whole, and nothing else is left behind.
    let mut child = slow_run(dir.path(), &sim, &d.token).await;
    child.kill().await.unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("pipe.prom")).unwrap(), previous);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("prom"))
        .collect();
    assert_eq!(left, ["pipe.prom"]);

    // SIGTERM: the run ends interrupted (130) and says so in a new, valid file.
    let mut child = slow_run(dir.path(), &sim, &d.token).await;
    assert_eq!(sigterm_and_wait(&mut child).await, Some(130), "{}", service_log(dir.path()));
    sim.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join("pipe.prom")).unwrap();
    let (ok, lint) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{lint}\n{text}");
    let series = file_series(&text);
    assert_eq!(series["pipe_run_outcome{pipeline=\"metrics-e2e\",outcome=\"interrupted\"}"], 1.0);
    assert_eq!(series["pipe_run_outcome{pipeline=\"metrics-e2e\",outcome=\"success\"}"], 0.0);
    assert!(series.keys().all(|s| !s.contains("pipe_run_success_time_seconds")), "{text}");
}

/// The series (`name{labels}`) of the metrics file of a plain export of `chats` conversations.
async fn series_of_export(chats: usize) -> (BTreeSet<String>, String, Arc<Dataset>) {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 3, ..SimConfig::small(chats) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let dir = giosg_dir(&sim, &d);
    let out =
        run_pipe(dir.path(), &["run", "p.toml", "--metrics-file", "pipe.prom"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    sim.shutdown().await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(dir.path().join("pipe.prom")).unwrap();
    (file_series(&text).into_keys().collect(), text, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_label_value_grows_with_the_number_of_conversations() {
    let (few, _, _) = series_of_export(30).await;
    let (many, text, d) = series_of_export(300).await;
    assert_eq!(many, few, "10 times the conversations, the same series");
    assert!(many.len() < 120, "{} series:\n{text}", many.len());
    for chat in &d.chats {
        assert!(!text.contains(chat.id()), "conversation id {} in a label", chat.id());
    }
    let (ok, lint) = promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{lint}\n{text}");
    // Everything the catalog names with a label set known in advance is there.
    for name in ["pipe_rows_written_total", "pipe_http_requests_total", "pipe_commits_total", "pipe_run_outcome"] {
        assert!(many.iter().any(|s| s.starts_with(&format!("{name}{{"))), "{name} missing:\n{text}");
    }
}
