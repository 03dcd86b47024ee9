//! The ABI-level cancel check of `pipe plugin check` (`plugin_host::cancel_probe`): a library
//! source blocked on a server that never answers returns from `next_event` promptly after
//! `cancel`; a source that is already done reports that there was nothing to interrupt.

use pipe_engine::plugin_host;
use pipe_tests::libraries;

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use plugin_host::cancel_probe::{CancelOutcome, cancel_latency};
use serde_json::json;

fn plugin(stem: &str, name: &str) -> std::sync::Arc<plugin_host::ExternalPlugin> {
    let lib = plugin_host::loader::load(&libraries::library(stem)).unwrap().expect("a plugin library");
    lib.plugins.iter().find(|p| p.name == name).unwrap().clone()
}

#[test]
fn cancel_interrupts_a_blocked_library_read_within_a_second() {
    // Accepts connections and reads requests forever, never answering.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut conn = conn;
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    let giosg = plugin("pipe_giosg", "giosg");
    let config = json!({"base_url": format!("http://{addr}"), "organization_id": "org", "token": "t"});
    match cancel_latency(&giosg, &config, Duration::from_millis(300), Duration::from_secs(5)).unwrap() {
        CancelOutcome::Interrupted(took) => {
            assert!(took < Duration::from_secs(1), "next_event returned {took:?} after cancel")
        }
        other => panic!("expected an interrupted read, got {other:?}"),
    }
}

#[test]
fn a_source_that_already_ended_has_nothing_to_interrupt() {
    let leaky = plugin("pipe_test_leaky", "leaky_source");
    let outcome = cancel_latency(&leaky, &json!({}), Duration::from_millis(300), Duration::from_secs(5)).unwrap();
    assert_eq!(outcome, CancelOutcome::FinishedFirst);
    // A config the plugin refuses is an error, not an outcome.
    let err =
        cancel_latency(&leaky, &json!({"nope": 1}), Duration::from_millis(10), Duration::from_secs(1)).unwrap_err();
    assert!(err.contains("nope"), "{err}");
}
