//! The orchestration examples under `deploy/` parse (YAML, Python) and run the fleet pipeline
//! the way `pipe` expects: sharded, one shard index per task, and the pipeline they point to
//! validates. The monitoring files pass promtool (rules, their unit tests, the dashboard's
//! queries) and name only metrics `pipe` exports; the pods serve metrics where the scrape
//! annotations and the PodMonitor look.

use pipe_tests::{python_json, run_pipe, stderr, workspace};

#[test]
fn kubernetes_indexed_job_shards_by_completion_index() {
    let path = workspace().join("deploy/kubernetes/pipe-giosg-fleet-job.yaml");
    let v = python_json(
        "import json, sys, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nj = d['spec']['jobTemplate']['spec']\nc = j['template']['spec']['containers'][0]\nprint(json.dumps({'kind': d['kind'], 'mode': j['completionMode'], 'completions': j['completions'], 'parallelism': j['parallelism'], 'args': c['args'], 'policy': d['spec']['concurrencyPolicy']}))",
        &[&path.display().to_string()],
    );
    assert_eq!(v["kind"], "CronJob");
    assert_eq!(v["mode"], "Indexed");
    assert_eq!(v["completions"], v["parallelism"]);
    let n = v["completions"].as_u64().unwrap();
    let args = v["args"][0].as_str().unwrap();
    assert!(args.contains(&format!("--shard \"${{JOB_COMPLETION_INDEX}}/{n}\"")), "{args}");
    assert_eq!(v["policy"], "Forbid", "two runs for one account must not overlap");
}

#[test]
fn airflow_dag_is_valid_python_with_one_task_per_shard() {
    let path = workspace().join("deploy/airflow/pipe_giosg_fleet.py");
    // Airflow itself is not installed here: parse the file and evaluate its shard loop.
    let v = python_json(
        "import ast, json, sys\nsrc = open(sys.argv[1]).read()\ntree = ast.parse(src)\nshards = [n.value.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'SHARDS'][0]\nprint(json.dumps({'shards': shards, 'has_shard_arg': '--shard {k}/{SHARDS}' in src}))",
        &[&path.display().to_string()],
    );
    assert!(v["shards"].as_u64().unwrap() >= 2);
    assert_eq!(v["has_shard_arg"], true);
}

#[tokio::test]
async fn the_fleet_pipeline_validates() {
    let env = [
        ("BRAND_A_GIOSG_ORG_ID", "org-a"),
        ("BRAND_A_GIOSG_API_TOKEN", "t-a"),
        ("BRAND_B_GIOSG_ORG_ID", "org-b"),
        ("BRAND_B_GIOSG_API_TOKEN", "t-b"),
        ("PIPE_BUCKET", "bucket"),
        ("AWS_REGION", "eu-north-1"),
    ];
    let out = run_pipe(&workspace(), &["validate", "pipelines/giosg-fleet.toml"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// Monitoring: the alerting rules, their unit tests, the dashboard and the scrape set-up.

use std::collections::BTreeSet;

use pipe_engine::telemetry::catalog::{CATALOG, Kind};
use pipe_tests::prometheus::promtool_bin;

/// Runs promtool with `args` in `deploy/prometheus/`; returns whether it succeeded and its output.
fn promtool(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(promtool_bin())
        .args(args)
        .current_dir(workspace().join("deploy/prometheus"))
        .output()
        .expect("promtool runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// Every `pipe_*` metric name that `text` uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("pipe_") {
        let before = rest[..at].chars().next_back();
        let len = rest[at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len() - at);
        if before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '/' || c == '.')) {
            names.insert(rest[at..at + len].to_string());
        }
        rest = &rest[at + len..];
    }
    names
}

/// True when `name` is a catalog metric, or a histogram's `_bucket`/`_sum`/`_count` series.
fn in_catalog(name: &str) -> bool {
    CATALOG.iter().any(|m| {
        m.name == name
            || (m.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"].iter().any(|s| name.strip_suffix(s) == Some(m.name)))
    })
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests_fire_each_alert() {
    let (ok, out) = promtool(&["check", "rules", "pipe-alerts.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    let (ok, out) = promtool(&["test", "rules", "pipe-alerts.test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");
    // Every alert of the rules has a unit test that expects it to fire.
    let rules = std::fs::read_to_string(workspace().join("deploy/prometheus/pipe-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(workspace().join("deploy/prometheus/pipe-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")).collect();
    assert_eq!(alerts.len(), 6, "{alerts:?}");
    for alert in alerts {
        let fired = tests.split("alertname: ").skip(1).any(|t| t.starts_with(alert) && t.contains("exp_labels"));
        assert!(fired, "{alert} has no unit test in which it fires");
    }
    let names = metric_names(&rules);
    assert!(names.len() >= 6, "{names:?}");
    for name in names {
        assert!(in_catalog(&name), "pipe-alerts.yml uses {name}, which pipe does not export");
    }
}

#[test]
fn the_dashboard_queries_parse_and_use_only_exported_metrics() {
    let path = workspace().join("deploy/grafana/pipe-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()))
        .collect();
    assert!(exprs.len() >= 14, "{exprs:?}");
    let mut used = BTreeSet::new();
    for e in &exprs {
        used.extend(metric_names(e));
    }
    for name in &used {
        assert!(in_catalog(name), "the dashboard uses {name}, which pipe does not export");
    }
    // Every metric of the catalog is on the dashboard, but those it shows another way: the
    // watermark's age is computed from its timestamp (right for a stale metrics file too), the
    // run's start and end times are what the duration and last-success panels show.
    const SHOWN_OTHERWISE: [&str; 3] =
        ["pipe_watermark_age_seconds", "pipe_run_start_time_seconds", "pipe_run_end_time_seconds"];
    for m in CATALOG {
        let shown = used.iter().any(|u| u == m.name || u.starts_with(&format!("{}_", m.name)));
        assert!(shown || SHOWN_OTHERWISE.contains(&m.name), "{} is not on the dashboard", m.name);
    }
    // Grafana's variables as Prometheus would see them: promtool parses every query as a rule.
    let dir = tempfile::tempdir().unwrap();
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        let e = e.replace("$__rate_interval", "5m").replace("$pipeline", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&e).unwrap()
        ));
    }
    std::fs::write(dir.path().join("dashboard.yml"), rules).unwrap();
    let out = std::process::Command::new(promtool_bin())
        .args(["check", "rules"])
        .arg(dir.path().join("dashboard.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "a dashboard query does not parse:\n{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn kubernetes_pods_serve_metrics_where_the_scrape_config_looks() {
    let job = workspace().join("deploy/kubernetes/pipe-giosg-fleet-job.yaml");
    let monitor = workspace().join("deploy/kubernetes/pipe-podmonitor.yaml");
    let v = python_json(
        "import json, sys, yaml\nd = yaml.safe_load(open(sys.argv[1]))\nm = yaml.safe_load(open(sys.argv[2]))\nt = d['spec']['jobTemplate']['spec']['template']\nc = t['spec']['containers'][0]\nprint(json.dumps({'annotations': t['metadata']['annotations'], 'labels': t['metadata']['labels'], 'args': c['args'], 'ports': c['ports'], 'monitor': m}))",
        &[&job.display().to_string(), &monitor.display().to_string()],
    );
    let port = v["annotations"]["prometheus.io/port"].as_str().unwrap();
    assert_eq!(v["annotations"]["prometheus.io/scrape"], "true");
    assert_eq!(v["annotations"]["prometheus.io/path"], "/metrics");
    let args = v["args"][0].as_str().unwrap();
    assert!(args.contains(&format!("--metrics-addr 0.0.0.0:{port}")), "{args}");
    assert!(args.contains("--metrics-linger"), "a batch pod lingers for the final scrape: {args}");
    let named = v["ports"].as_array().unwrap().iter().find(|p| p["name"] == "metrics").expect("a `metrics` port");
    assert_eq!(named["containerPort"].to_string(), port);
    let m = &v["monitor"];
    assert_eq!(m["kind"], "PodMonitor");
    assert_eq!(m["spec"]["selector"]["matchLabels"], v["labels"]);
    assert_eq!(m["spec"]["podMetricsEndpoints"][0]["port"], "metrics");
    assert_eq!(m["spec"]["podMetricsEndpoints"][0]["path"], "/metrics");
}
