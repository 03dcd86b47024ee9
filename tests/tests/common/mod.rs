//! Helpers for end-to-end tests: find the real `pipe` binary and an independent Parquet
//! reader (pyarrow), write pipeline files, run the binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The `pipe` binary of the same profile as this test (`cargo build [--release]` first), or
/// `$PIPE_BIN`.
pub fn pipe_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PIPE_BIN") {
        return PathBuf::from(p);
    }
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let bin = target.join(profile).join("pipe");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build{} -p pipe-engine`) or set PIPE_BIN",
        bin.display(),
        if profile == "release" { " --release" } else { "" }
    );
    bin
}

/// A Python with pyarrow: `$PIPE_TEST_PYTHON`, else the workspace `.venv`, else `python3`.
pub fn python() -> PathBuf {
    let py = std::env::var("PIPE_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
        let venv = workspace().join(".venv/bin/python");
        if venv.exists() { venv } else { PathBuf::from("python3") }
    });
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pyarrow.parquet"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{} cannot import pyarrow: run `.ci/run` once, or `python3 -m venv .venv && .venv/bin/pip install pyarrow`",
        py.display()
    );
    py
}

/// Runs `pipe` with `args` in `cwd`, with extra environment variables, and waits for it
/// (asynchronously, so an in-process simulator keeps serving).
pub async fn run_pipe(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(pipe_bin());
    cmd.args(args).current_dir(cwd).env("PIPE_LOG", "info").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(std::time::Duration::from_secs(300), cmd.output())
        .await
        .expect("pipe did not finish within 300 s")
        .expect("pipe could not be started")
}

/// Runs a Python snippet with the reader, passing `args`, and parses its stdout as JSON.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python()).arg("-c").arg(script).args(args).output().expect("python runs");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}
