//! The plugin boundary is really C: `tests/plugins/c_upper/upper.c`, written against
//! `plugins/abi/pipe_plugin.h` only, is compiled with gcc into a `.so` here, loaded by the real
//! `pipe` binary from a plugin directory, and runs as a transform between the giosg simulator
//! and the json sink, through the Arrow C Data Interface. The output must equal a run without
//! it, with `text` upper-cased. `pipe plugin check` must pass on it too.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use pipe_sim::giosg::{GiosgSim, SimConfig, SimOptions, generate};
use pipe_tests::*;
use serde_json::Value;

/// Compiles the C plugin into `dir/libc_upper.so` with `$CC` (default gcc).
fn compile_c_plugin(dir: &Path) -> PathBuf {
    let out = dir.join("libc_upper.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let root = workspace();
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(root.join("plugins/abi"))
        .arg("-o")
        .arg(&out)
        .arg(root.join("tests/plugins/c_upper/upper.c"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "{cc} failed to compile upper.c");
    out
}

fn by_key(rows: Vec<Value>, key: &str) -> HashMap<String, Value> {
    rows.into_iter()
        .map(|mut r| {
            r.as_object_mut().unwrap().remove("extracted_at");
            (r[key].as_str().unwrap().to_string(), r)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_written_in_c_runs_as_a_transform() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    compile_c_plugin(&dir.path().join("plugins"));
    let dataset = Arc::new(generate(&SimConfig::small(40)));
    let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await.unwrap();
    let pipeline = |name: &str, transform: &str| {
        format!(
            "name = \"{name}\"\nplugin_dirs = [\"plugins\"]\n\n[source]\nplugin = \"giosg\"\nbase_url = \"{}\"\norganization_id = \"{}\"\ntoken = \"{}\"\n\n{transform}[[sinks]]\nplugin = \"json\"\npath = \"out/{name}\"\n\n[state]\npath = \"state\"\n",
            sim.base_url(),
            dataset.organization_id,
            dataset.token
        )
    };
    std::fs::write(dir.path().join("plain.toml"), pipeline("plain", "")).unwrap();
    std::fs::write(
        dir.path().join("upper.toml"),
        pipeline("upper", "[[transforms]]\nplugin = \"c_upper\"\ncolumn = \"text\"\n\n"),
    )
    .unwrap();

    let out = run_pipe(dir.path(), &["plugins", "--plugin-dir", "plugins"], &[]).await;
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        listing.lines().any(|l| l.starts_with("c_upper") && l.contains("transform") && l.contains(" 1 ")),
        "{listing}"
    );
    assert!(listing.contains("c (gcc), hand-written against pipe_plugin.h"), "{listing}");

    for p in ["plain.toml", "upper.toml"] {
        let out = run_pipe(dir.path(), &["run", p], &[]).await;
        assert!(out.status.success(), "{p}: {}", stderr(&out));
    }
    sim.shutdown().await;

    let plain = by_key(jsonl_rows(&dir.path().join("out/plain/messages")), "message_id");
    let upper = by_key(jsonl_rows(&dir.path().join("out/upper/messages")), "message_id");
    assert_eq!(plain.len(), dataset.message_count());
    assert_eq!(upper.len(), plain.len());
    let mut changed = 0;
    for (id, p) in &plain {
        let mut expected = p.clone();
        if let Some(text) = p["text"].as_str() {
            expected["text"] = Value::String(text.to_ascii_uppercase());
            changed += usize::from(text != text.to_ascii_uppercase());
        }
        assert_eq!(upper[id], expected, "message {id}");
    }
    assert!(changed > 0, "no text had lower-case letters: the test proves nothing");
    // A stream without the column passes through untouched.
    let plain_c = by_key(jsonl_rows(&dir.path().join("out/plain/conversations")), "conversation_id");
    let upper_c = by_key(jsonl_rows(&dir.path().join("out/upper/conversations")), "conversation_id");
    assert_eq!(plain_c, upper_c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_plugin_passes_the_conformance_kit() {
    let dir = tempfile::tempdir().unwrap();
    let lib = compile_c_plugin(dir.path());
    std::fs::write(dir.path().join("check.toml"), "column = \"text\"\n").unwrap();
    let out = run_pipe(dir.path(), &["plugin", "check", lib.to_str().unwrap(), "--config", "check.toml"], &[]).await;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{report}\n{}", stderr(&out));
    for check in ["config_errors", "schema", "memory", "no_panics"] {
        let line = report
            .lines()
            .find(|l| l.split_whitespace().take(2).eq(["c_upper", check]))
            .unwrap_or_else(|| panic!("no {check}:\n{report}"));
        assert_eq!(line.split_whitespace().nth(2), Some("PASS"), "{line}");
    }
}
