//! The json sink end to end with the real `pipe` binary: Hive partitions on the local file
//! system, and object storage (an S3-compatible server, moto, on loopback), read back with
//! Python's json module and boto3 (not our code) and compared with the simulator's truth.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{Dataset, GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::{python_json, run_pipe, stderr};
use serde_json::Value;

fn pipeline(sim: &GiosgSim, d: &Dataset, sink: &str) -> String {
    format!(
        "name = \"json-e2e\"\ncommit_interval_seconds = 0\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\npage_size = 10\ncheckpoint_every = 10\n\n[[sinks]]\nplugin = \"json\"\n{sink}",
        sim.base_url(),
        d.organization_id,
        d.token
    )
}

/// Every message id of the simulator's truth.
fn truth(d: &Dataset) -> BTreeSet<String> {
    d.chats.iter().flat_map(|c| c.messages.iter().map(|m| m.json["id"].as_str().unwrap().to_string())).collect()
}

/// Checks rows printed by the readers below as `[[relative directory, row], ...]`: each row of
/// `messages` lies in `vendor=<its vendor>/date=<UTC date of its sent_at>`, and the ids are the
/// truth, each once.
fn assert_partitioned_messages(rows: &Value, d: &Dataset) {
    let mut ids = Vec::new();
    for pair in rows.as_array().unwrap() {
        let (dir, row) = (pair[0].as_str().unwrap(), &pair[1]);
        let Some(dir) = dir.strip_prefix("messages/") else { continue };
        let date = &row["sent_at"].as_str().unwrap()[..10];
        assert!(row["sent_at"].as_str().unwrap().ends_with('Z'), "{row}");
        assert_eq!(dir, format!("vendor={}/date={date}", row["vendor"].as_str().unwrap()), "{row}");
        ids.push(row["message_id"].as_str().unwrap().to_string());
    }
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "a message was written twice");
    assert_eq!(unique, truth(d));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_sink_partitions_by_vendor_and_date() {
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(60) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = "path = \"out/js\"\npartition_by = [\"vendor\", \"date\"]\nmax_file_rows = 50\n";
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, sink)).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml", "-q"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let rows = python_json(
        "import json, sys, pathlib\n\
         root = pathlib.Path(sys.argv[1])\n\
         names = [p.name for p in root.rglob('*') if p.is_file()]\n\
         assert all(n.endswith('.jsonl') and not n.startswith('.') for n in names), names\n\
         print(json.dumps([[f.parent.relative_to(root).as_posix(), json.loads(l)] for f in sorted(root.rglob('*.jsonl')) for l in open(f, encoding='utf-8')]))",
        &[dir.path().join("out/js").to_str().unwrap()],
    );
    assert_partitioned_messages(&rows, &d);
    let conversation_dirs: BTreeSet<&str> =
        rows.as_array().unwrap().iter().filter_map(|p| p[0].as_str().unwrap().strip_prefix("conversations/")).collect();
    assert!(!conversation_dirs.is_empty() && conversation_dirs.iter().all(|d| d.starts_with("vendor=giosg/date=")));
}

/// An S3-compatible server (moto, from PyPI) on a free loopback port, killed on drop.
struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = std::process::Command::new(pipe_tests::python())
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto starts (pip install 'moto[server]')");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto did not start on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, endpoint: format!("http://127.0.0.1:{port}") }
    }

    /// Runs a boto3 snippet against this server (`s3` is the client) and parses what it prints.
    fn py(&self, script: &str) -> Value {
        let prelude = format!(
            "import json, boto3\ns3 = boto3.client('s3', endpoint_url={:?}, aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\n",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_sink_writes_complete_objects_to_s3() {
    let moto_ok = std::process::Command::new(pipe_tests::python())
        .args(["-c", "import moto.server, boto3"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(moto_ok, "moto is not installed in the test Python: `.ci/run` installs it (pip install 'moto[server]')");
    let moto = Moto::start();
    moto.py("s3.create_bucket(Bucket='lake'); print(json.dumps(True))");
    let d = Arc::new(generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(40) }));
    let sim = GiosgSim::start(d.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = "path = \"s3://lake/exports/json\"\npartition_by = [\"vendor\", \"date\"]\n";
    std::fs::write(dir.path().join("p.toml"), pipeline(&sim, &d, sink)).unwrap();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT", moto.endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
    ];
    let out = run_pipe(dir.path(), &["run", "p.toml", "-q"], &env).await;
    assert!(out.status.success(), "{}", stderr(&out));

    let rows = moto.py(
        "keys = [o['Key'] for p in s3.get_paginator('list_objects_v2').paginate(Bucket='lake') for o in p.get('Contents', [])]\n\
         assert keys and all(k.startswith('exports/json/') and k.endswith('.jsonl') and '/.' not in k for k in keys), keys\n\
         out = []\n\
         for k in sorted(keys):\n    body = s3.get_object(Bucket='lake', Key=k)['Body'].read().decode('utf-8')\n    out += [[k.rsplit('/', 1)[0][len('exports/json/'):], json.loads(l)] for l in body.splitlines()]\n\
         print(json.dumps(out))",
    );
    assert_partitioned_messages(&rows, &d);
}
