//! The real `pipe` binary: where it is, and running it the way a user does.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

/// How long one `pipe` invocation may take before the test fails instead of hanging.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The workspace root (the parent of this crate's directory, `tests/`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The build profile this test binary was built with (`release` or `debug`): the binary and
/// the plugin libraries are looked up in `target/<profile>/`.
pub fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

/// `$CARGO_TARGET_DIR/<profile>`, or `<workspace>/target/<profile>`.
pub fn target_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    target.join(profile())
}

/// The `pipe` binary of the same profile as this test, or `$PIPE_BIN`.
///
/// Panics, naming the build command, when the binary has not been built
/// (`cargo build [--release] -p pipe-engine`).
pub fn pipe_bin() -> PathBuf {
    if let Ok(p) = std::env::var("PIPE_BIN") {
        return PathBuf::from(p);
    }
    let bin = target_dir().join("pipe");
    assert!(
        bin.exists(),
        "{} does not exist: build it first (`cargo build{} -p pipe-engine`) or set PIPE_BIN",
        bin.display(),
        if profile() == "release" { " --release" } else { "" }
    );
    bin
}

/// Runs `pipe` with `args` in `cwd` with extra environment variables (`PIPE_LOG=info`), and
/// waits for it: asynchronously, so a simulator running on this test's runtime keeps serving.
///
/// Panics when `pipe` cannot be started or runs longer than 300 s (it is killed then).
pub async fn run_pipe(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(pipe_bin());
    cmd.args(args).current_dir(cwd).env("PIPE_LOG", "info").kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::time::timeout(RUN_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("pipe did not finish within {} s", RUN_TIMEOUT.as_secs()))
        .expect("pipe could not be started")
}

/// A process's stderr as text (lossy UTF-8): `pipe`'s logs and its summary.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every row of every `*.jsonl` file under `dir` (the JSON sink's output), in file order;
/// empty when `dir` does not exist. Panics on a line that is not JSON: a torn line is a defect.
pub fn jsonl_rows(dir: &Path) -> Vec<serde_json::Value> {
    files_under(dir)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "jsonl"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            text.lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {l}", f.display())))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every file under `dir`, recursively, sorted; empty when `dir` does not exist.
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
