//! A plugin library that panics fails its run with a clear error and exit code 1, and the
//! `pipe` process ends normally (no abort, no signal) — for every kind of entry point of every
//! plugin kind. The panicking plugins are `tests/plugins/panicky`.

use pipe_tests::*;

/// A pipeline through all three panicky plugins; `panic_in` is given to each of them.
fn pipeline(source_panic: &str, transform_panic: &str, sink_panic: &str) -> String {
    let key = |p: &str| if p.is_empty() { String::new() } else { format!("panic_in = \"{p}\"\n") };
    format!(
        "name = \"panics\"\nplugin_dirs = [\"plugins\"]\n\n[source]\nplugin = \"panicky_source\"\n{}\n[[transforms]]\nplugin = \"panicky_transform\"\n{}\n[[sinks]]\nplugin = \"panicky_sink\"\n{}\n[state]\npath = \"state\"\n",
        key(source_panic),
        key(transform_panic),
        key(sink_panic)
    )
}

async fn run(source: &str, transform: &str, sink: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_test_panicky"]);
    std::fs::write(dir.path().join("p.toml"), pipeline(source, transform, sink)).unwrap();
    run_pipe(dir.path(), &["run", "p.toml"], &[]).await
}

fn assert_failed_cleanly(out: &std::process::Output, plugin: &str, entry: &str) {
    let err = stderr(out);
    // `code()` is None when a signal (SIGABRT from a panic crossing `extern "C"`) ended it.
    assert_eq!(out.status.code(), Some(1), "panic in {entry}: expected exit code 1, got {:?}:\n{err}", out.status);
    let wanted = format!("plugin `{plugin}` panicked: deliberate panic in {entry} at ");
    assert!(err.contains(&wanted), "panic in {entry}: the error does not say `{wanted}`:\n{err}");
    assert!(err.contains("error: run of `panics` failed:"), "{err}");
    assert!(!err.contains("panicked at"), "a panic message leaked to stderr unrouted:\n{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_run_through_all_three_library_plugins_succeeds() {
    let out = run("", "", "").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("30 rows"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_any_run_entry_point_fails_the_run_with_exit_1() {
    let cases = [
        ("panicky_source", "source.open"),
        ("panicky_source", "source.streams"),
        ("panicky_source", "source.next"),
        ("panicky_transform", "transform.open"),
        ("panicky_transform", "transform.output_stream"),
        ("panicky_transform", "transform.transform"),
        ("panicky_transform", "transform.flush"),
        ("panicky_sink", "sink.open"),
        ("panicky_sink", "sink.write"),
        ("panicky_sink", "sink.commit"),
    ];
    for (plugin, entry) in cases {
        let p = |name: &str| if name == plugin { entry } else { "" };
        let out = run(p("panicky_source"), p("panicky_transform"), p("panicky_sink")).await;
        assert_failed_cleanly(&out, plugin, entry);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_abort_after_a_failure_is_logged_and_the_run_still_fails_cleanly() {
    let out = run("source.next", "", "sink.abort").await;
    assert_failed_cleanly(&out, "panicky_source", "source.next");
    assert!(
        stderr(&out).contains("deliberate panic in sink.abort"),
        "the abort panic was not reported:\n{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_stats_loses_only_the_stats() {
    // `Sink::stats` has no error path: the run is committed, the summary just lacks the numbers.
    let out = run("", "", "sink.stats").await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("stats failed"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_check_config_is_reported_at_validation() {
    let dir = tempfile::tempdir().unwrap();
    libraries::plugin_dir(dir.path(), "plugins", &["pipe_test_panicky"]);
    std::fs::write(dir.path().join("p.toml"), pipeline("check_config", "", "")).unwrap();
    let out = run_pipe(dir.path(), &["validate", "p.toml"], &[]).await;
    // Validation problems are configuration errors (exit 2); the process still ends normally.
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("plugin `panicky_source` panicked: deliberate panic in check_config"),
        "{}",
        stderr(&out)
    );
}
