//! `pipe run --metrics-addr HOST:PORT`: `GET /metrics` in the Prometheus text format while the
//! run lasts, and for up to `--metrics-linger` seconds after it, until a scrape has read the
//! final values (a batch run that ends between two scrapes would otherwise take them along).
//!
//! The listener binds exactly where it is told (examples use loopback); what it serves holds
//! no secret (see the module docs of [`super`]). It is meant for a scraper on a trusted
//! network: it has no authentication and no connection cap of its own.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use super::Telemetry;

/// The `Content-Type` of the text format 0.0.4.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How often the recorder's histogram storage is drained while nobody scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The running `/metrics` listener.
pub struct Server {
    telemetry: Telemetry,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    addr: std::net::SocketAddr,
}

impl Server {
    /// Binds `addr` (`HOST:PORT`; port 0 picks a free one) and serves `/metrics`.
    ///
    /// Errors: the address does not resolve or cannot be bound (the message names it).
    pub async fn start(addr: &str, telemetry: Telemetry) -> anyhow::Result<Server> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("--metrics-addr: cannot listen on {addr}: {e}"))?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let app = Router::new().route("/metrics", get(metrics)).with_state(telemetry.clone());
        let (serve_stop, upkeep_stop, upkeep) = (stop.clone(), stop.clone(), telemetry.clone());
        let task = tokio::spawn(async move {
            let serve =
                async move { axum::serve(listener, app).with_graceful_shutdown(serve_stop.cancelled_owned()).await };
            let keep = async move {
                while tokio::time::timeout(UPKEEP_EVERY, upkeep_stop.cancelled()).await.is_err() {
                    upkeep.upkeep();
                }
            };
            let (served, ()) = tokio::join!(serve, keep);
            if let Err(e) = served {
                tracing::warn!("the metrics listener stopped: {e}");
            }
        });
        tracing::info!("metrics on http://{addr}/metrics");
        Ok(Server { telemetry, stop, task, addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// After the run: keeps serving until one scrape has read the final values, or `linger`
    /// has passed, then stops.
    pub async fn linger(self, linger: Duration) {
        let deadline = Instant::now() + linger;
        while self.telemetry.final_scrapes() == 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.stop.cancel();
        // Connections still open (a keep-alive scraper) must not hold the process.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

async fn metrics(State(telemetry): State<Telemetry>) -> impl IntoResponse {
    ([(CONTENT_TYPE, TEXT_FORMAT)], telemetry.scrape())
}
