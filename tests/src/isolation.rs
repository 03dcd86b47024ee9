//! Measurements that need the test process to themselves (heap and resident memory).

/// Whether the calling test may measure in this process: true when it already runs alone here
/// (under `cargo nextest`, which runs every test in a process of its own, or in the re-run
/// below). Otherwise (`cargo test` runs a binary's tests as threads of one process) it re-runs
/// `test` alone in a fresh process of this test binary, prints that run's output, panics if it
/// failed, and returns false: the caller then returns.
///
/// `test` is the test's full path as `module_path!()` gives it plus its name, e.g.
/// `concat!(module_path!(), "::open_close_cycles")`; the binary's own name in front is dropped.
pub fn alone_in_process(test: &str) -> bool {
    const RERUN: &str = "PIPE_TEST_ALONE";
    if std::env::var_os("NEXTEST_EXECUTION_MODE").is_some_and(|m| m == "process-per-test")
        || std::env::var_os(RERUN).is_some()
    {
        return true;
    }
    let name = test.split_once("::").map_or(test, |(_, rest)| rest);
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(exe)
        .args([name, "--exact", "--nocapture", "--include-ignored", "--test-threads=1"])
        .env(RERUN, "1")
        .output()
        .expect("the test binary runs again");
    print!("{}", String::from_utf8_lossy(&out.stdout));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name}, run alone in a process of its own, failed");
    let ran = String::from_utf8_lossy(&out.stdout).contains("1 passed");
    assert!(ran, "{name} did not run in the process of its own: is the path right?");
    false
}
