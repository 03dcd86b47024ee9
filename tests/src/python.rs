//! The independent reader's side: a Python with pyarrow (and, where a test needs them, DuckDB,
//! moto, boto3, PyYAML, the `deltalake` package), run as a child process.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A Python with pyarrow: `$PIPE_TEST_PYTHON`, else the workspace `.venv`, else `python3`.
///
/// Panics, saying how to install pyarrow, when that Python cannot import `pyarrow.parquet`.
/// The check runs once per test process.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let py = std::env::var("PIPE_TEST_PYTHON").map(PathBuf::from).unwrap_or_else(|_| {
                let venv = crate::workspace().join(".venv/bin/python");
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
        })
        .clone()
}

/// Runs a Python snippet (`python -c script args...`) and parses its stdout as JSON.
///
/// Panics with Python's stderr when the snippet fails, or when it prints something that is not
/// one JSON value.
pub fn python_json(script: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(python()).arg("-c").arg(script).args(args).output().expect("python runs");
    assert!(out.status.success(), "python failed:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}
