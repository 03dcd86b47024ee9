//! Runs that overlap, get interrupted or crash (issue 16): the real `pipe` binary against a
//! slowed giosg simulator, output read back with pyarrow and compared with the ground truth.
//!
//! * a second run of a pipeline that is running exits 1 at once naming the holder, and the
//!   first ends with exactly the ground truth, its state never moving backwards;
//! * SIGINT after the first checkpoints: exit 130, what those checkpoints cover is committed
//!   (and nothing else), and the next run fetches only the rest;
//! * the temporary files of a crashed run are removed at the next start, never those of a
//!   live run writing to the same directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pipe_sim::giosg::{Dataset, GiosgSim, HttpFaults, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

/// A giosg → Parquet pipeline `name` writing to `out`, checkpointing every 10 chats.
fn pipeline(name: &str, base_url: &str, org: &str, extra: &str) -> String {
    format!(
        "name = \"{name}\"\n{extra}\n[source]\nplugin = \"giosg\"\nbase_url = \"{base_url}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 20\nconcurrency = 2\ncheckpoint_every = 10\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n"
    )
}

/// Every chat ended, so a chat once committed is never fetched again.
fn dataset(chats: usize) -> Dataset {
    let mut d = generate(&SimConfig { encrypted_every: 0, ..SimConfig::small(chats) });
    d.end_open_chats();
    d
}

async fn slow_sim(d: &Dataset, latency_ms: u64) -> GiosgSim {
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    sim.set_faults(HttpFaults { latency: Duration::from_millis(latency_ms), ..Default::default() });
    sim
}

/// Starts `pipe run <file>` in `dir`, stderr to `dir/<log>`.
fn spawn_run(dir: &Path, file: &str, log: &str, token: &str) -> tokio::process::Child {
    let log = std::fs::File::create(dir.join(log)).unwrap();
    tokio::process::Command::new(pipe_bin())
        .args(["run", file])
        .current_dir(dir)
        .env("E2E_GIOSG_TOKEN", token)
        .env("PIPE_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn wait_exit(child: &mut tokio::process::Child, within: Duration) -> Option<i32> {
    tokio::time::timeout(within, child.wait()).await.expect("pipe exits in time").unwrap().code()
}

/// The chats whose messages the simulator served.
fn fetched_chats(sim: &GiosgSim) -> BTreeSet<String> {
    sim.request_log()
        .iter()
        .filter_map(|line| {
            let rest = line.split_whitespace().nth(1)?.split("/owned_chats/").nth(1)?;
            let (id, tail) = rest.split_once('/')?;
            tail.starts_with("messages").then(|| id.to_string())
        })
        .collect()
}

/// Committed output: (conversation_id, message_id) of every message row (with repeats), and
/// every conversation row's id (with repeats).
fn committed(dir: &Path) -> (Vec<(String, String)>, Vec<String>) {
    let v = Parquet::streams(dir.join("out"), &["messages", "conversations"]).allow_missing().read_streams();
    let id = |r: &Value, k: &str| r[k].as_str().unwrap().to_string();
    let msgs = v["messages"].rows.iter().map(|m| (id(m, "conversation_id"), id(m, "message_id"))).collect();
    let convs = v["conversations"].rows.iter().map(|c| id(c, "conversation_id")).collect();
    (msgs, convs)
}

/// Ground truth: message keys per chat.
fn truth(d: &Dataset) -> BTreeMap<String, BTreeSet<(String, String)>> {
    d.chats
        .iter()
        .map(|c| {
            let keys = c.messages.iter().map(|m| (c.id().to_string(), m.json["id"].as_str().unwrap().to_string()));
            (c.id().to_string(), keys.collect())
        })
        .collect()
}

/// Asserts the output holds every message of `chats` exactly once (those of `twice` at most
/// twice), and nothing else.
fn assert_exactly(dir: &Path, d: &Dataset, chats: &BTreeSet<String>, twice: &BTreeSet<String>, context: &str) {
    let (msgs, convs) = committed(dir);
    let conv_set: BTreeSet<String> = convs.iter().cloned().collect();
    // Rows per key beyond what is allowed (once; twice for a chat of `twice`).
    fn repeated<K: Ord + Clone>(keys: &[K], chat: impl Fn(&K) -> &String, twice: &BTreeSet<String>) -> Vec<K> {
        let mut n = BTreeMap::<&K, usize>::new();
        keys.iter().for_each(|k| *n.entry(k).or_default() += 1);
        n.into_iter()
            .filter(|(k, n)| *n > if twice.contains(chat(k)) { 2 } else { 1 })
            .map(|(k, _)| k.clone())
            .collect()
    }
    assert_eq!(repeated(&convs, |c| c, twice), Vec::<String>::new(), "{context}: conversation rows repeated");
    assert_eq!(repeated(&msgs, |(c, _)| c, twice), vec![], "{context}: message rows repeated");
    assert_eq!(&conv_set, chats, "{context}: committed conversations");
    let want: BTreeSet<(String, String)> =
        truth(d).into_iter().filter(|(id, _)| chats.contains(id)).flat_map(|(_, k)| k).collect();
    let got: BTreeSet<(String, String)> = msgs.iter().cloned().collect();
    assert_eq!(got, want, "{context}: committed messages");
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_exits_at_once_naming_the_holder_and_the_first_ends_exact() {
    let d = dataset(150);
    let sim = slow_sim(&d, 60).await;
    let dir = tempfile::tempdir().unwrap();
    let toml = pipeline("busy", &sim.base_url(), &d.organization_id, "commit_interval_seconds = 0");
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    let mut first = spawn_run(dir.path(), "p.toml", "first.log", &d.token);
    let first_pid = first.id().unwrap();
    let lock = dir.path().join(".pipe/state/busy.lock");
    let state_file = dir.path().join(".pipe/state/busy.json");
    wait_for("the first run's lock", Duration::from_secs(30), || {
        read_json(&lock).is_some_and(|h| h["pid"] == first_pid && h["finished"] == false)
    })
    .await;
    // It has committed something before the second run comes.
    wait_for("the first run's first commit", Duration::from_secs(30), || state_file.exists()).await;
    let state_before = read_json(&state_file).unwrap();

    let started = std::time::Instant::now();
    let second = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    let took = started.elapsed();
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(err.contains("another run of this pipeline is in progress"), "{err}");
    assert!(err.contains(&format!("pid {first_pid}")), "the message names the holder: {err}");
    assert!(took < Duration::from_secs(5), "the second run stops at once, not after {took:?}");
    assert!(first.try_wait().unwrap().is_none(), "the first run is still running: the test proves nothing otherwise");
    // Nor can the state be reset under it.
    let reset = run_pipe(dir.path(), &["state", "reset", "p.toml"], &[]).await;
    assert_eq!(reset.status.code(), Some(1), "{}", stderr(&reset));
    assert!(stderr(&reset).contains(&format!("pid {first_pid}")), "{}", stderr(&reset));
    assert!(state_file.exists(), "the state was not removed under the live run");

    // The state never moves backwards: sampled until the first run ends, `committed_at` and
    // the number of chats the scan has done only grow.
    let mut samples = vec![state_before];
    let code = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status.code();
        }
        if let Some(s) = read_json(&state_file) {
            samples.push(s);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let log = std::fs::read_to_string(dir.path().join("first.log")).unwrap();
    assert_eq!(code, Some(0), "{log}");
    samples.push(read_json(&state_file).unwrap());
    for pair in samples.windows(2) {
        let at = |s: &Value| s["committed_at"].as_str().unwrap().to_string();
        assert!(at(&pair[0]) <= at(&pair[1]), "the state moved backwards: {} then {}", pair[0], pair[1]);
        let floor = |s: &Value| s["source_state"]["scan"]["done_floor"].as_i64();
        if let (Some(a), Some(b)) = (floor(&pair[0]), floor(&pair[1])) {
            assert!(b <= a, "the scan moved backwards (newest first): {a} then {b}");
        }
    }
    assert!(samples.len() > 2);
    sim.shutdown().await;
    let all: BTreeSet<String> = d.chats.iter().map(|c| c.id().to_string()).collect();
    assert_exactly(dir.path(), &d, &all, &BTreeSet::new(), "after the first run");
    assert_eq!(read_json(&lock).unwrap()["finished"], true, "the lock file says the run ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_commits_what_the_checkpoints_cover_and_the_rerun_fetches_only_the_rest() {
    let d = dataset(120);
    let sim = slow_sim(&d, 30).await;
    let dir = tempfile::tempdir().unwrap();
    // The default commit interval (60 s): without the interrupt's commit nothing would be saved.
    std::fs::write(dir.path().join("p.toml"), pipeline("int", &sim.base_url(), &d.organization_id, "")).unwrap();
    let state_file = dir.path().join(".pipe/state/int.json");
    let mut child = spawn_run(dir.path(), "p.toml", "run.log", &d.token);
    // Past the second checkpoint (every 10 chats), well before the end.
    wait_for("32 chats fetched", Duration::from_secs(60), || fetched_chats(&sim).len() >= 32).await;
    assert!(!state_file.exists(), "nothing is committed before the interval: the test proves nothing otherwise");
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let code = wait_exit(&mut child, Duration::from_secs(20)).await;
    let log = std::fs::read_to_string(dir.path().join("run.log")).unwrap();
    assert_eq!(code, Some(130), "{log}");
    assert!(log.contains("interrupted (SIGINT)"), "{log}");
    let fetched_before = fetched_chats(&sim).len();
    assert!(fetched_before < d.chats.len(), "the run stopped fetching before the end");
    sim.shutdown().await;

    // Saved: a state that covers what was committed; committed: whole checkpoints (multiples
    // of 10 chats), each chat with all its messages, nothing twice.
    let state = read_json(&state_file).expect("the interrupt saved the state");
    assert!(state["source_state"]["scan"].is_object(), "a scan in progress: {state}");
    let (_, convs) = committed(dir.path());
    let chats: BTreeSet<String> = convs.into_iter().collect();
    assert!(chats.len() >= 20, "at least the two checkpoints emitted before the signal: {}", chats.len());
    assert_eq!(chats.len() % 10, 0, "exactly the rows of whole checkpoints, not {}", chats.len());
    assert!(chats.len() <= fetched_before);
    assert_exactly(dir.path(), &d, &chats, &BTreeSet::new(), "after the interrupt");
    for f in files_under(&dir.path().join("out")) {
        assert!(!f.to_string_lossy().ends_with(".inprogress"), "left behind: {}", f.display());
    }

    // The re-run fetches only what was not committed and ends with exactly the ground truth.
    let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
    std::fs::write(dir.path().join("p.toml"), pipeline("int", &sim.base_url(), &d.organization_id, "")).unwrap();
    let out = run_pipe(dir.path(), &["run", "p.toml"], &[("E2E_GIOSG_TOKEN", &d.token)]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let refetched = fetched_chats(&sim);
    sim.shutdown().await;
    // The source resumes its scan at the oldest committed chat, inclusive (`done_floor`): that
    // one chat may come twice; every other committed chat is not fetched again.
    let again: BTreeSet<String> = refetched.intersection(&chats).cloned().collect();
    assert!(again.len() <= 1, "the re-run fetched committed chats again: {again:?}");
    assert_eq!(refetched.len(), d.chats.len() - chats.len() + again.len(), "the re-run fetches the rest");
    let all: BTreeSet<String> = d.chats.iter().map(|c| c.id().to_string()).collect();
    assert_exactly(dir.path(), &d, &all, &again, "after the re-run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_runs_temporary_files_are_swept_at_the_next_start_a_live_runs_are_not() {
    let d = dataset(200);
    let sim = slow_sim(&d, 30).await;
    let dir = tempfile::tempdir().unwrap();
    let temps = |dir: &Path| -> Vec<String> {
        files_under(&dir.join("out"))
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".inprogress"))
            .collect()
    };
    std::fs::write(dir.path().join("a.toml"), pipeline("a", &sim.base_url(), &d.organization_id, "")).unwrap();
    std::fs::write(dir.path().join("b.toml"), pipeline("b", &sim.base_url(), &d.organization_id, "")).unwrap();

    // Pipeline `a` crashes (SIGKILL) with a temporary file open.
    let mut crashed = spawn_run(dir.path(), "a.toml", "a1.log", &d.token);
    wait_for("a's temporary file", Duration::from_secs(60), || !temps(dir.path()).is_empty()).await;
    crashed.start_kill().unwrap();
    crashed.wait().await.unwrap();
    let dead = temps(dir.path());
    assert!(!dead.is_empty());

    // Pipeline `b`, writing to the same directory, is live with its own temporary file.
    let mut live = spawn_run(dir.path(), "b.toml", "b.log", &d.token);
    wait_for("b's temporary file", Duration::from_secs(60), || temps(dir.path()).len() > dead.len()).await;
    let live_temps: Vec<String> = temps(dir.path()).into_iter().filter(|n| !dead.contains(n)).collect();

    // `a` starts again: its crashed run's files go, `b`'s stay.
    let mut again = spawn_run(dir.path(), "a.toml", "a2.log", &d.token);
    let log = dir.path().join("a2.log");
    wait_for("a's sweep", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("swept what crashed earlier runs left behind")
    })
    .await;
    let now = temps(dir.path());
    assert!(live.try_wait().unwrap().is_none(), "b is still running: the test proves nothing otherwise");
    for f in &dead {
        assert!(!now.contains(f), "the crashed run's {f} is still there: {now:?}");
    }
    for f in &live_temps {
        // b may have published it meanwhile (committed: the hidden name is gone, the file is not).
        let published = f.trim_start_matches('.').trim_end_matches(".inprogress");
        let out_names: Vec<String> = files_under(&dir.path().join("out"))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(now.contains(f) || out_names.iter().any(|n| n == published), "the live run's {f} was removed");
    }
    again.start_kill().unwrap();
    live.start_kill().unwrap();
    let _ = again.wait().await;
    let _ = live.wait().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_sharing_one_dead_letter_file_write_whole_lines() {
    // Eight organizations, every second chat encrypted, and a key that decrypts none of them:
    // one dead letter (several KiB: the raw row) per encrypted message, from both shards at once.
    let mut fleet = Vec::new();
    for i in 0..8u64 {
        let cfg = SimConfig {
            seed: 2000 + i,
            encrypted_every: 2,
            organization_id: format!("00000000-0000-4000-8000-{i:012}"),
            token: format!("token-of-brand-{i}"),
            ..SimConfig::small(40)
        };
        let d = generate(&cfg);
        let sim = GiosgSim::start(Arc::new(d.clone()), SimOptions::default()).await.unwrap();
        fleet.push((d, sim));
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key.pem"), pipe_sim::giosg::crypto::unrelated_private_key_pem()).unwrap();
    let mut toml =
        "name = \"dl\"\ncommit_interval_seconds = 0\n\n[source]\nplugin = \"giosg\"\npage_size = 10\n\n".to_string();
    for (i, (d, sim)) in fleet.iter().enumerate() {
        toml.push_str(&format!(
            "[[source.accounts]]\nid = \"brand-{i}\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\n\n",
            sim.base_url(),
            d.organization_id,
            d.token
        ));
    }
    toml.push_str("[[transforms]]\nplugin = \"decrypt\"\nprivate_key_file = \"key.pem\"\n\n[[sinks]]\nplugin = \"parquet\"\npath = \"out\"\n\n[dead_letter]\npath = \"dl\"\n");
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();

    let shard = |k: u32| {
        let root = dir.path().to_path_buf();
        async move { run_pipe(&root, &["run", "p.toml", "--shard", &format!("{k}/2")], &[]).await }
    };
    let (a, b) = tokio::join!(shard(0), shard(1));
    for out in [&a, &b] {
        assert!(out.status.success(), "the shards lock different accounts and run side by side: {}", stderr(out));
    }
    let text = std::fs::read_to_string(dir.path().join("dl/messages.jsonl")).unwrap();
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        let dl: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("a torn dead-letter line ({e}): {line:.200}"));
        assert_eq!(dl["stage"], "decrypt");
        keys.insert((dl["key"]["account_id"].to_string(), dl["key"]["message_id"].to_string()));
    }
    let want: usize = fleet.iter().map(|(d, _)| d.encrypted_messages().count()).sum();
    assert_eq!(text.lines().count(), want, "one line per encrypted message");
    assert_eq!(keys.len(), want, "each once");
    for (_, sim) in fleet {
        sim.shutdown().await;
    }
}
