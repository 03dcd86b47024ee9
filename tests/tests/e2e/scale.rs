//! Growing past one machine (docs/design.md §8), end to end with the real `pipe` binary:
//! many accounts in one pipeline, `--shard K/N`, and object storage (an S3-compatible server,
//! moto, on loopback) for the Parquet dataset and the state.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{Dataset, GiosgSim, HttpFaults, SimConfig, SimOptions, generate};
use pipe_tests::{Parquet, pipe_bin, python, python_json, run_pipe, stderr};
use serde_json::Value;

/// `n` simulated giosg organizations, each its own server, with distinct ids and tokens.
async fn fleet(n: usize, chats: usize) -> Vec<(Arc<Dataset>, GiosgSim)> {
    let mut out = Vec::new();
    for i in 0..n {
        let cfg = SimConfig {
            seed: 1000 + i as u64,
            encrypted_every: 0,
            organization_id: format!("00000000-0000-4000-8000-{i:012}"),
            token: format!("token-of-brand-{i}"),
            ..SimConfig::small(chats)
        };
        let d = Arc::new(generate(&cfg));
        let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
        out.push((d, sim));
    }
    out
}

fn fleet_pipeline(fleet: &[(Arc<Dataset>, GiosgSim)], out: &str, state: &str) -> String {
    let mut s = "name = \"fleet\"\ncommit_interval_seconds = 0\n\n[source]\nplugin = \"giosg\"\npage_size = 10\nmax_concurrent_accounts = 3\n\n".to_string();
    for (i, (d, sim)) in fleet.iter().enumerate() {
        s.push_str(&format!(
            "[[source.accounts]]\nid = \"brand-{i}\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\n\n",
            sim.base_url(),
            d.organization_id,
            d.token
        ));
    }
    s.push_str(&format!("[[sinks]]\nplugin = \"parquet\"\npath = \"{out}\"\n\n[state]\npath = \"{state}\"\n"));
    s
}

/// `(account_id, conversation_id, message_id)` of every message in the datasets under `dirs`.
fn messages_in(dirs: &[&Path]) -> Vec<BTreeSet<(String, String, String)>> {
    Parquet::each(dirs.iter().map(|d| d.join("messages")))
        .columns(&["account_id", "conversation_id", "message_id"])
        .read_each()
        .into_iter()
        .map(|t| {
            t.rows
                .iter()
                .map(|r| {
                    let s = |c: &str| r[c].as_str().unwrap().to_string();
                    (s("account_id"), s("conversation_id"), s("message_id"))
                })
                .collect()
        })
        .collect()
}

fn truth(fleet: &[(Arc<Dataset>, GiosgSim)]) -> BTreeSet<(String, String, String)> {
    let mut t = BTreeSet::new();
    for (d, _) in fleet {
        for c in &d.chats {
            for m in &c.messages {
                t.insert((d.organization_id.clone(), c.id().to_string(), m.json["id"].as_str().unwrap().to_string()));
            }
        }
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shards_together_equal_one_unsharded_run() {
    let fleet = fleet(9, 12).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let all_out = root.join("all");
    std::fs::write(
        root.join("all.toml"),
        fleet_pipeline(&fleet, &all_out.display().to_string(), &root.join("state-all").display().to_string()),
    )
    .unwrap();
    let out = run_pipe(root, &["run", "all.toml", "-q"], &[]).await;
    assert!(out.status.success(), "unsharded run failed:\n{}", stderr(&out));

    // Three orchestrator tasks at once, one shared state store, one output directory each (so
    // the test can tell which shard wrote what; in production they share the sink path).
    let mut shard_outs = Vec::new();
    let mut runs = Vec::new();
    for k in 0..3 {
        let o = root.join(format!("shard{k}"));
        let file = format!("shard{k}.toml");
        std::fs::write(
            root.join(&file),
            fleet_pipeline(&fleet, &o.display().to_string(), &root.join("state").display().to_string()),
        )
        .unwrap();
        shard_outs.push(o);
        let root = root.to_path_buf();
        runs.push(tokio::spawn(async move {
            run_pipe(&root, &["run", &file, "--shard", &format!("{k}/3"), "-q"], &[]).await
        }));
    }
    for (k, r) in runs.into_iter().enumerate() {
        let out = r.await.unwrap();
        assert!(out.status.success(), "shard {k}/3 failed:\n{}", stderr(&out));
    }

    let mut dirs: Vec<&Path> = vec![&all_out];
    let present: Vec<&Path> = shard_outs.iter().map(|p| p.as_path()).filter(|p| p.join("messages").exists()).collect();
    dirs.extend(present.iter().copied());
    let sets = messages_in(&dirs);
    let want = truth(&fleet);
    assert_eq!(sets[0], want, "the unsharded run exports every message of the 9 accounts");

    let mut union = BTreeSet::new();
    let mut accounts_seen: Vec<BTreeSet<String>> = Vec::new();
    for s in &sets[1..] {
        let accounts: BTreeSet<String> = s.iter().map(|r| r.0.clone()).collect();
        for earlier in &accounts_seen {
            assert!(earlier.is_disjoint(&accounts), "an account appears in two shards: {earlier:?} / {accounts:?}");
        }
        accounts_seen.push(accounts);
        let before = union.len();
        union.extend(s.iter().cloned());
        assert_eq!(union.len(), before + s.len(), "no message is written by two shards");
    }
    assert_eq!(union, want, "the shards together equal the unsharded run");

    // One state document per account, none shared between shards, each with its run lock.
    let mut names: Vec<String> = std::fs::read_dir(root.join("state/fleet"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..9).flat_map(|i| [format!("brand-{i}.json"), format!("brand-{i}.lock")]).collect();
    want.sort();
    assert_eq!(names, want);

    // A shard re-run resumes from its accounts' states: nothing new to export.
    let out = run_pipe(root, &["run", "shard1.toml", "--shard", "1/3", "--report", "again.json", "-q"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(root.join("again.json")).unwrap()).unwrap();
    let rows: u64 = report["rows"].as_object().map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
    assert_eq!(rows, 0, "the second run of shard 1 re-exported rows: {report}");

    // A bad shard spec is refused by the CLI.
    let out = run_pipe(root, &["run", "shard1.toml", "--shard", "3/3"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_failing_account_does_not_stop_the_others() {
    let fleet = fleet(3, 8).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let text =
        fleet_pipeline(&fleet, &root.join("out").display().to_string(), &root.join("state").display().to_string())
            // Brand 1's token is wrong: its account fails with 401, the others finish.
            .replace("token = \"token-of-brand-1\"", "token = \"revoked-token\"");
    std::fs::write(root.join("p.toml"), text).unwrap();
    let out = run_pipe(root, &["run", "p.toml"], &[]).await;
    assert_eq!(out.status.code(), Some(3), "a failed account makes the run partial:\n{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("brand-1"), "the failure names the account: {err}");
    assert!(!err.contains("revoked-token"), "the token is not printed: {err}");
    let sets = messages_in(&[&root.join("out")]);
    let accounts: BTreeSet<String> = sets[0].iter().map(|r| r.0.clone()).collect();
    let want: BTreeSet<String> = [0usize, 2].iter().map(|i| fleet[*i].0.organization_id.clone()).collect();
    assert_eq!(accounts, want);
    assert!(root.join("state/fleet/brand-0.json").exists() && !root.join("state/fleet/brand-1.json").exists());
}

/// An S3-compatible server (moto, from PyPI) on a free loopback port, killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto starts (pip install 'moto[server]')");
        let endpoint = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ENDPOINT", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
        ]
    }

    /// Runs a boto3/pyarrow snippet against this server; `ENDPOINT` is set for it.
    fn py(&self, script: &str) -> Value {
        let prelude = format!(
            "import os, json, boto3, pyarrow.fs as pafs, pyarrow.dataset as ds, pyarrow.parquet as pq\nENDPOINT = {:?}\ns3 = boto3.client('s3', endpoint_url=ENDPOINT, aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\nfs = pafs.S3FileSystem(endpoint_override=ENDPOINT.split('//')[1], scheme='http', access_key='testing', secret_key='testing', region='us-east-1')\n",
            self.endpoint
        );
        python_json(&format!("{prelude}{script}"), &[])
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn moto_available() -> bool {
    std::process::Command::new(python())
        .args(["-c", "import moto.server, boto3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_and_state_on_s3_and_a_killed_run_leaves_no_partial_object() {
    assert!(
        moto_available(),
        "moto is not installed in the test Python: `.ci/run` installs it (pip install 'moto[server]')"
    );
    let moto = Moto::start();
    moto.py("s3.create_bucket(Bucket='lake'); print(json.dumps(True))");
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(120) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "name = \"s3run\"\ncommit_interval_seconds = 0\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\npage_size = 5\ncheckpoint_every = 5\n# A fixed limit: adaptive concurrency would finish before the kill.\nconcurrency = 4\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"s3://lake/exports/giosg\"\npartition_by = [\"date\"]\n\n[state]\npath = \"s3://lake/state\"\n",
        sim.base_url(),
        d.organization_id,
        d.token
    );
    std::fs::write(dir.path().join("p.toml"), &pipeline).unwrap();
    let env_owned = moto.env();
    let env: Vec<(&str, &str)> = env_owned.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // A slow vendor, so the run can be killed after some commits and before the end.
    sim.set_faults(HttpFaults { latency: Duration::from_millis(40), ..Default::default() });
    let mut cmd = tokio::process::Command::new(pipe_bin());
    cmd.args(["run", "p.toml", "-q"]).current_dir(dir.path()).kill_on_drop(true);
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    // Wait for the first uploaded state document (a commit happened), then kill -9.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let has_state = moto
            .py("r = s3.list_objects_v2(Bucket='lake', Prefix='state/'); print(json.dumps(r.get('KeyCount', 0) > 0))");
        if has_state == Value::Bool(true) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(std::time::Instant::now() < deadline, "no state was written within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.start_kill().unwrap();
    let status = child.wait().await.unwrap();
    assert!(!status.success(), "the run was killed mid-way");

    // Every object is complete: only final `.parquet` names, each a readable Parquet file.
    let listing = moto.py(
        "keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket='lake', Prefix='exports/') for o in p.get('Contents', [])]\n\
         rows = 0\n\
         for k in keys:\n    rows += pq.read_metadata('lake/' + k, filesystem=fs).num_rows\n\
         print(json.dumps({'keys': keys, 'rows': rows}))",
    );
    let keys: Vec<String> =
        listing["keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
    assert!(!keys.is_empty(), "the killed run committed files before it died");
    assert!(
        keys.iter().all(|k| k.ends_with(".parquet") && !k.contains("/.")),
        "only complete files are visible: {keys:?}"
    );

    // A clean run resumes from the state on S3 and completes the dataset.
    sim.set_faults(HttpFaults::default());
    let out = run_pipe(dir.path(), &["run", "p.toml", "-q"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let got = moto.py(
        "t = ds.dataset('lake/exports/giosg/messages', format='parquet', partitioning='hive', filesystem=fs).to_table(columns=['message_id'])\n\
         st = json.loads(s3.get_object(Bucket='lake', Key='state/s3run.json')['Body'].read())\n\
         print(json.dumps({'ids': sorted(set(t.column('message_id').to_pylist())), 'rows': t.num_rows, 'state': st}))",
    );
    let ids: BTreeSet<String> =
        got["ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> =
        d.chats.iter().flat_map(|c| c.messages.iter().map(|m| m.json["id"].as_str().unwrap().to_string())).collect();
    assert_eq!(ids, want, "after the kill and a resumed run, every message is in the bucket");
    assert_eq!(got["state"]["pipeline"], "s3run");
    assert!(got["state"]["source_state"].is_object(), "{}", got["state"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_backfill_windows_split_the_history_and_keep_their_own_state() {
    let fleet = fleet(1, 60).await;
    let (d, _) = &fleet[0];
    // The creation instants, as the canonical rows will carry them (naive giosg times are UTC).
    let mut created: Vec<chrono::DateTime<chrono::Utc>> = d
        .chats
        .iter()
        .map(|c| {
            let s = c.chat["created_at"].as_str().unwrap();
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&chrono::Utc))
                .unwrap_or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap().and_utc())
        })
        .collect();
    created.sort();
    let first = created[0] - chrono::Duration::days(1);
    let mid = created[created.len() / 2];
    let end = *created.last().unwrap() + chrono::Duration::days(1);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pipeline = |out: &str| {
        fleet_pipeline(&fleet, &root.join(out).display().to_string(), &root.join("state").display().to_string())
    };
    std::fs::write(root.join("a.toml"), pipeline("a")).unwrap();
    std::fs::write(root.join("b.toml"), pipeline("b")).unwrap();
    for (file, w) in
        [("a.toml", format!("{}..{}", fmt(first), fmt(mid))), ("b.toml", format!("{}..{}", fmt(mid), fmt(end)))]
    {
        let out = run_pipe(root, &["run", file, "--window", &w, "-q"], &[]).await;
        assert!(out.status.success(), "window {w}:\n{}", stderr(&out));
    }
    let sets = messages_in(&[&root.join("a"), &root.join("b")]);
    assert!(!sets[0].is_empty() && !sets[1].is_empty(), "both windows hold chats");
    assert!(
        sets[0].is_disjoint(&sets[1]),
        "no chat is in both windows: {} and {} rows, {} shared",
        sets[0].len(),
        sets[1].len(),
        sets[0].intersection(&sets[1]).count()
    );
    let union: BTreeSet<_> = sets[0].union(&sets[1]).cloned().collect();
    assert_eq!(union, truth(&fleet), "the windows together cover the history");
    // Every chat of window a was created before `mid`, every chat of window b at or after it.
    let split: Vec<(i64, i64)> = Parquet::each([root.join("a/conversations"), root.join("b/conversations")])
        .columns(&["created_at"])
        .read_each()
        .iter()
        .map(|t| {
            let v: Vec<i64> = t.column("created_at").iter().map(|x| x.as_i64().unwrap()).collect();
            (*v.iter().min().unwrap(), *v.iter().max().unwrap())
        })
        .collect();
    let mid_us = mid.timestamp_micros();
    assert!(split[0].1 < mid_us && split[1].0 >= mid_us, "{split:?}");
    // Windows keep their own state; the regular runs' state is untouched.
    let docs: Vec<String> = std::fs::read_dir(root.join("state"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(docs.iter().all(|n| n.starts_with("fleet@")), "{docs:?}");
    assert_eq!(docs.len(), 2, "{docs:?}");
}

/// `max_concurrent_accounts` bounds the accounts in flight: with 1, each account finishes
/// before the next starts; with 3, all three start before the first finishes (slow vendor).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrent_accounts_bounds_the_accounts_in_flight() {
    let fleet = fleet(3, 8).await;
    for (_, sim) in &fleet {
        sim.set_faults(HttpFaults { latency: Duration::from_millis(15), ..Default::default() });
    }
    for limit in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let text = fleet_pipeline(
            &fleet,
            &dir.path().join("out").display().to_string(),
            &dir.path().join("state").display().to_string(),
        )
        .replace("max_concurrent_accounts = 3", &format!("max_concurrent_accounts = {limit}"));
        std::fs::write(dir.path().join("p.toml"), text).unwrap();
        let out = run_pipe(dir.path(), &["run", "p.toml"], &[]).await;
        let err = stderr(&out);
        assert!(out.status.success(), "{err}");
        // The engine's own account lifecycle lines, in order: +1 at a start, -1 at a finish.
        let mut in_flight = 0i32;
        let mut most = 0;
        for l in err.lines() {
            if l.contains("account started") {
                in_flight += 1;
            } else if l.contains("account finished") {
                in_flight -= 1;
            }
            most = most.max(in_flight);
        }
        assert_eq!(in_flight, 0, "every started account finished:\n{err}");
        assert_eq!(most, limit, "limit {limit}: at most {most} accounts ran at once:\n{err}");
    }
}
