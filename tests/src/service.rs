//! `pipe run` as a long-lived service (the webhook listener): wait until it answers, read its
//! log, stop it the way a scheduler does.

use std::path::Path;
use std::time::{Duration, Instant};

/// The log a service test sends `pipe`'s stderr to: `<dir>/pipe.log` (empty if not written yet).
pub fn service_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("pipe.log")).unwrap_or_default()
}

/// Waits (at most 60 s) until `http://127.0.0.1:<port>/healthz` answers 2xx.
///
/// Panics with [`service_log`] of `dir` when it does not.
pub async fn wait_until_healthy(port: u16, dir: &Path) {
    let health = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if reqwest::get(&health).await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(Instant::now() < deadline, "pipe did not answer /healthz:\n{}", service_log(dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sends SIGTERM and returns the exit code (panics unless `pipe` exits within 30 s).
pub async fn sigterm_and_wait(child: &mut tokio::process::Child) -> Option<i32> {
    let pid = child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("waits for pipe");
    status.code()
}
