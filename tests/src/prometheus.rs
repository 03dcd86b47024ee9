//! A real Prometheus server (Debian's `prometheus` package, which `.ci/run` installs) on
//! loopback, scraping `pipe run --metrics-addr`, queried through its own HTTP API; and its
//! `promtool`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `prometheus` binary: `$PIPE_TEST_PROMETHEUS`, else `prometheus` on the `PATH`.
///
/// Panics, saying how to install it, when it does not run. The check runs once per process.
pub fn prometheus_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var_os("PIPE_TEST_PROMETHEUS").map(PathBuf::from).unwrap_or_else(|| "prometheus".into());
        runs_or_panic(&bin);
        bin
    })
    .clone()
}

/// `promtool`: beside `$PIPE_TEST_PROMETHEUS` when that is set, else on the `PATH`.
///
/// Panics, saying how to install it, when it does not run.
pub fn promtool_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var_os("PIPE_TEST_PROMETHEUS")
            .map(|p| PathBuf::from(p).with_file_name("promtool"))
            .unwrap_or_else(|| "promtool".into());
        runs_or_panic(&bin);
        bin
    })
    .clone()
}

fn runs_or_panic(bin: &PathBuf) {
    let ok = std::process::Command::new(bin).arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok,
        "{} does not run: install Prometheus (`apt-get install -y prometheus`; `.ci/run` does), or set \
         PIPE_TEST_PROMETHEUS to the prometheus binary (promtool beside it)",
        bin.display()
    );
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A Prometheus server with its own config and data in a temporary directory, scraping
/// `targets` every second. Killed when dropped.
pub struct Prometheus {
    child: tokio::process::Child,
    port: u16,
    dir: tempfile::TempDir,
    client: reqwest::Client,
}

impl Prometheus {
    /// Starts it on a free loopback port and waits (at most 60 s) until it is ready.
    ///
    /// Panics with its log when it does not become ready.
    pub async fn start(targets: &[String]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: pipe\n    static_configs:\n      - targets: [{list}]\n"
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = tokio::process::Command::new(prometheus_bin())
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus { child, port, dir, client: reqwest::Client::new() };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = p.client.get(format!("http://127.0.0.1:{port}/-/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return p;
            }
            assert!(Instant::now() < deadline, "prometheus did not become ready:\n{}", p.log());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Its log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The `data.result` of an instant query through `/api/v1/query`.
    ///
    /// Panics when the query fails.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let answer: Value =
            self.client.get(url).query(&[("query", promql)]).send().await.unwrap().json().await.unwrap();
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        answer["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// An instant query's vector as `{labels (without __name__, job, instance) → value}`.
    pub async fn vector(&self, promql: &str) -> BTreeMap<BTreeMap<String, String>, f64> {
        self.query(promql)
            .await
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "job" | "instance"))
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                (labels, r["value"][1].as_str().unwrap().parse::<f64>().unwrap())
            })
            .collect()
    }

    /// The value of a query that yields one number (`sum(...)`), 0 when it yields nothing.
    pub async fn scalar(&self, promql: &str) -> f64 {
        let v = self.vector(promql).await;
        assert!(v.len() <= 1, "{promql} yields several series: {v:?}");
        v.values().next().copied().unwrap_or(0.0)
    }

    /// Waits (at most 60 s) until `promql` yields something.
    ///
    /// Panics with Prometheus's log when it does not.
    pub async fn wait_for(&self, promql: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.query(promql).await.is_empty() {
            assert!(Instant::now() < deadline, "{promql} stayed empty:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Stops it (SIGKILL: its data is thrown away with the directory).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
