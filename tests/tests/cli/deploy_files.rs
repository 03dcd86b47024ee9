//! The orchestration examples under `deploy/` parse (YAML, Python) and run the fleet pipeline
//! the way `pipe` expects: sharded, one shard index per task, and the pipeline they point to
//! validates.

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
