//! The plugin libraries the workspace builds (`lib<stem>.so`), found in `target/<profile>/` next
//! to the `pipe` binary of the same profile, for the tests that load them (`ffi`, `plugins`).

use std::path::{Path, PathBuf};

use crate::pipe::{profile, target_dir};

/// (library file stem, the crate that builds it).
pub const LIBRARIES: &[(&str, &str)] = &[
    ("pipe_giosg", "pipe-plugin-giosg-dylib"),
    ("pipe_parquet", "pipe-plugin-parquet-dylib"),
    ("pipe_json", "pipe-plugin-json-dylib"),
    ("pipe_stdout", "pipe-plugin-stdout-dylib"),
    ("pipe_test_panicky", "pipe-test-plugin-panicky"),
    ("pipe_test_wrong_abi", "pipe-test-plugin-wrong-abi"),
    ("pipe_test_not_a_plugin", "pipe-test-not-a-plugin"),
    ("pipe_test_leaky", "pipe-test-plugin-leaky"),
    ("pipe_test_lying_schema", "pipe-test-plugin-lying-schema"),
];

/// `target/<profile>/lib<stem>.so`.
///
/// Panics, naming the command that builds it, when the library has not been built.
pub fn library(stem: &str) -> PathBuf {
    let path = target_dir().join(format!("lib{stem}.so"));
    let krate = LIBRARIES.iter().find(|(s, _)| *s == stem).map_or("?", |(_, c)| c);
    let release = if profile() == "release" { " --release" } else { "" };
    assert!(
        path.exists(),
        "{} does not exist: build the plugin libraries first with `cargo build{release} --workspace` (this one: `cargo build{release} -p {krate}`)",
        path.display(),
    );
    path
}

/// Creates `dir/<sub>` holding copies of the libraries `stems` (a pipeline's `plugin_dirs`
/// entry), and returns it.
pub fn plugin_dir(dir: &Path, sub: &str, stems: &[&str]) -> PathBuf {
    let out = dir.join(sub);
    std::fs::create_dir_all(&out).unwrap();
    for stem in stems {
        std::fs::copy(library(stem), out.join(format!("lib{stem}.so"))).unwrap();
    }
    out
}
