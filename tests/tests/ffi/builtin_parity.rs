//! A shipped plugin survives the trip through the C ABI: the giosg source and the parquet,
//! json and stdout sinks built as dynamic libraries (`libpipe_<name>.so`), loaded from a
//! pipeline's `plugin_dirs`, give the same output as the built-ins on the same simulated
//! account (compared as sets of rows, ignoring `extracted_at`, which is the fetch time).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

/// Every JSON Lines row under `dir` without `extracted_at`, sorted.
fn jsonl_rows(dir: &Path) -> Vec<String> {
    let mut rows: Vec<String> = files_under(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|p| std::fs::read_to_string(p).unwrap().lines().map(str::to_string).collect::<Vec<_>>())
        .map(|line| without_extracted_at(&line))
        .collect();
    rows.sort();
    rows
}

fn without_extracted_at(line: &str) -> String {
    let mut v: Value = serde_json::from_str(line).expect("a JSON line");
    v.as_object_mut().expect("an object").remove("extracted_at");
    v.to_string()
}

fn pipeline(sim: &GiosgSim, org: &str, out: &str, dynamic: bool) -> String {
    let head = if dynamic { "plugin_dirs = [\"plugins\"]\nallow_override = true\n" } else { "" };
    format!(
        "name = \"parity\"\n{head}\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{org}\"\ntoken = \"${{E2E_GIOSG_TOKEN}}\"\npage_size = 30\nconcurrency = 4\n\n\
         [[sinks]]\nplugin = \"parquet\"\npath = \"{out}/pq\"\nmax_file_rows = 700\n\n\
         [[sinks]]\nplugin = \"json\"\npath = \"{out}/js\"\n\n\
         [[sinks]]\nplugin = \"stdout\"\n\n\
         [state]\npath = \"{out}/state\"\n",
        sim.base_url()
    )
}

/// `requests N` from the run summary.
fn summary_requests(stderr: &str) -> u64 {
    let at = stderr.rfind("requests ").expect("the summary names its requests");
    stderr[at + 9..].split_whitespace().next().unwrap().parse().expect("a request count")
}

/// Rows per stream from the run summary (`  messages   1234 rows`).
fn summary_rows(stderr: &str) -> BTreeMap<String, u64> {
    stderr
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (stream, n, unit) = (w.next()?, w.next()?, w.next()?);
            if unit != "rows" || w.next().is_some() {
                return None;
            }
            Some((stream.to_string(), n.parse().ok()?))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giosg_and_sinks_as_dynamic_libraries_match_the_builtins() {
    let dataset = Arc::new(generate(&SimConfig { chats: 150, max_messages_per_chat: 20, ..SimConfig::small(150) }));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_giosg", "pipe_parquet", "pipe_json", "pipe_stdout"]);
    let env = [("E2E_GIOSG_TOKEN", dataset.token.as_str())];

    std::fs::write(dir.path().join("builtin.toml"), pipeline(&sim, &dataset.organization_id, "out/builtin", false))
        .unwrap();
    std::fs::write(dir.path().join("dynamic.toml"), pipeline(&sim, &dataset.organization_id, "out/dynamic", true))
        .unwrap();
    let builtin = run_pipe(dir.path(), &["run", "builtin.toml"], &env).await;
    assert!(builtin.status.success(), "built-in run failed: {}", stderr(&builtin));
    let dynamic = run_pipe(dir.path(), &["run", "dynamic.toml"], &env).await;
    assert!(dynamic.status.success(), "dynamic run failed: {}", stderr(&dynamic));
    sim.shutdown().await;

    // The dynamic run really used the libraries.
    let dyn_err = stderr(&dynamic);
    for name in ["giosg", "parquet", "json", "stdout"] {
        assert!(
            dyn_err.contains(&format!("plugin `{name}` from ")) && dyn_err.contains("overrides the built-in"),
            "`{name}` was not loaded from the plugin directory:\n{dyn_err}"
        );
    }
    assert!(!dyn_err.contains(&dataset.token), "the token leaked into the output");

    // Parquet, read back by pyarrow: same schema, same rows.
    for stream in ["messages", "conversations"] {
        // Every row but `extracted_at` (the fetch time), in the canonical encoding, sorted.
        let [a, b]: [Table; 2] = Parquet::each([
            dir.path().join(format!("out/builtin/pq/{stream}")),
            dir.path().join(format!("out/dynamic/pq/{stream}")),
        ])
        .without(&["extracted_at"])
        .read_each()
        .try_into()
        .expect("two tables");
        assert_eq!(a.schema_text, b.schema_text, "{stream}: Parquet schemas differ");
        let (ra, rb) = (&a.rows, &b.rows);
        assert!(!ra.is_empty(), "{stream}: the built-in wrote no rows");
        assert_eq!(ra.len(), rb.len(), "{stream}: row counts differ");
        assert!(ra == rb, "{stream}: Parquet rows differ between the built-in and the dynamic library");
    }
    // JSON Lines.
    for stream in ["messages", "conversations"] {
        let a = jsonl_rows(&dir.path().join(format!("out/builtin/js/{stream}")));
        let b = jsonl_rows(&dir.path().join(format!("out/dynamic/js/{stream}")));
        assert!(!a.is_empty());
        assert!(a == b, "{stream}: JSON Lines rows differ");
    }
    // stdout (written by the library's own copy of std to the same file descriptor).
    let lines = |out: &std::process::Output| {
        let mut v: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(without_extracted_at).collect();
        v.sort();
        v
    };
    let (sa, sb) = (lines(&builtin), lines(&dynamic));
    assert!(!sa.is_empty());
    assert!(sa == sb, "stdout rows differ");

    // The library's counters reach the engine's summary.
    let b_err = stderr(&builtin);
    assert_eq!(summary_rows(&b_err), summary_rows(&dyn_err), "summary rows differ");
    assert!(summary_requests(&dyn_err) > 0, "the library's request counter did not reach the summary:\n{dyn_err}");
    assert_eq!(summary_requests(&b_err), summary_requests(&dyn_err), "request counts differ");
}
