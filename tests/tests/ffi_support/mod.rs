//! Helpers shared by the `ffi_*` tests: the plugin libraries the workspace builds, found in
//! `target/<profile>/` next to the `pipe` binary of the same profile.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

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

fn profile() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}

/// `target/<profile>/lib<stem>.so`, failing with the command that builds it.
pub fn library(stem: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target"));
    let path = target.join(profile()).join(format!("lib{stem}.so"));
    let krate = LIBRARIES.iter().find(|(s, _)| *s == stem).map_or("?", |(_, c)| c);
    assert!(
        path.exists(),
        "{} does not exist: build the plugin libraries first with `cargo build{} --workspace` (this one: `cargo build{} -p {krate}`)",
        path.display(),
        if profile() == "release" { " --release" } else { "" },
        if profile() == "release" { " --release" } else { "" },
    );
    path
}

/// Creates `dir/<sub>` holding copies of the libraries `stems`, and returns it.
pub fn plugin_dir(dir: &Path, sub: &str, stems: &[&str]) -> PathBuf {
    let out = dir.join(sub);
    std::fs::create_dir_all(&out).unwrap();
    for stem in stems {
        std::fs::copy(library(stem), out.join(format!("lib{stem}.so"))).unwrap();
    }
    out
}
