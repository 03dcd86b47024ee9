//! The conformance kit on this library's descriptors, in-process: the same checks
//! `pipe plugin check target/release/libpipe_example.so --config FILE` runs through the C ABI.
//! A plugin's own `cargo test` is the cheapest place to run them.

use pipe_plugin_sdk::conformance::{Options, Status, check};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transform_and_the_sink_conform() {
    let report = check(&pipe_example::redact::descriptor(), &Options::with_config(json!({"min_digits": 4}))).await;
    assert!(report.passed(), "{report}");

    let dir = tempfile::tempdir().unwrap();
    let report = check(&pipe_example::counts::descriptor(), &Options::with_config(json!({"path": dir.path()}))).await;
    assert!(report.passed(), "{report}");
    assert!(dir.path().join("row_counts.json").exists(), "the sink committed nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_refuses_bad_configs_with_key_paths() {
    // Without a vendor to talk to, only the config-free checks run; the others are skipped.
    let report = check(&pipe_example::acme::descriptor(), &Options::default()).await;
    assert!(report.passed(), "{report}");
    let status = |name: &str| report.checks.iter().find(|c| c.name == name).map(|c| c.status);
    assert_eq!(status("config_errors"), Some(Status::Pass));
    assert_eq!(status("schema"), Some(Status::Skip));

    let err =
        (pipe_example::acme::descriptor().check_config)(&json!({"base_url": "ftp://x", "account": "a", "token": "t"}))
            .unwrap_err();
    assert_eq!(err.to_string(), "base_url: must start with https:// (or http:// for a local test server)");
}
