//! `pipe demo` as a new user runs it: twice in a row into the same directory, output read back
//! with pyarrow; and logs without colour codes when stderr is not a terminal.

use std::collections::BTreeMap;

use pipe_tests::{Parquet, run_pipe, stderr};

/// Rows per stream of one vendor's demo output, read by pyarrow.
fn rows(dir: &std::path::Path) -> BTreeMap<String, usize> {
    let tables = Parquet::streams(dir, &["messages", "conversations"]).columns(&[]).read_streams();
    tables.into_iter().map(|(stream, t)| (stream, t.len())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_demo_replaces_the_first_and_logs_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let first = run_pipe(dir.path(), &["demo", "--vendor", "giosg", "--chats", "30", "--out", "out"], &[]).await;
    assert!(first.status.success(), "first demo failed:\n{}", stderr(&first));
    let after_first = rows(&dir.path().join("out/giosg"));
    assert_eq!(after_first["conversations"], 30, "one row per simulated chat");
    assert!(after_first["messages"] > 0);

    let second = run_pipe(dir.path(), &["demo", "--vendor", "giosg", "--chats", "30", "--out", "out"], &[]).await;
    assert!(second.status.success(), "second demo failed:\n{}", stderr(&second));
    assert_eq!(rows(&dir.path().join("out/giosg")), after_first, "the second demo replaced the first, not added to it");

    // stderr is a pipe here, as under a scheduler: no ANSI escape codes in the log lines.
    let log = stderr(&second);
    assert!(log.contains("run started"), "info logs are on:\n{log}");
    assert!(!log.contains('\u{1b}'), "colour codes in a piped log:\n{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_refuses_to_replace_a_directory_it_did_not_write() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("out/giosg")).unwrap();
    std::fs::write(dir.path().join("out/giosg/precious.txt"), "not a demo's").unwrap();
    let out = run_pipe(dir.path(), &["demo", "--vendor", "giosg", "--chats", "5", "--out", "out"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("was not written by `pipe demo`"), "{}", stderr(&out));
    assert!(dir.path().join("out/giosg/precious.txt").exists(), "the user's file is untouched");
}
