//! The history endpoint over HTTP.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::generate::Dataset;
use crate::serve::LoopbackServer;

/// A running Aimylogic simulator on a loopback port. Dropping it stops the server.
pub struct AimylogicSim {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

struct Shared {
    /// Replaceable between runs ([`AimylogicSim::set_dataset`]).
    data: RwLock<Arc<Dataset>>,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
    /// The client whose history ignores `offset` ([`AimylogicSim::ignore_offset`]).
    ignore_offset: Mutex<Option<String>>,
    /// The most items a history page holds, whatever `limit` asks ([`AimylogicSim::max_page_size`]).
    max_page_size: Mutex<Option<usize>>,
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `from`/`to` as µs: ISO (naive = UTC) or epoch ms.
fn bound(v: &Option<String>) -> Result<Option<i64>, String> {
    let Some(v) = v else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms * 1000));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_micros()));
    }
    chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| Some(t.and_utc().timestamp_micros()))
        .map_err(|_| format!("bad time `{v}`"))
}

async fn history(
    State(s): State<Arc<Shared>>,
    Path((token, client)): Path<(String, String)>,
    Query(q): Query<HistoryQuery>,
) -> Response {
    s.requests.fetch_add(1, SeqCst);
    s.log.lock().expect("log").push(format!("GET history {client} offset={:?} limit={:?}", q.offset, q.limit));
    let data = s.data.read().expect("data").clone();
    if token != data.token {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid token"}))).into_response();
    }
    let Some(c) = data.clients.iter().find(|c| c.id == client) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": "client not found"}))).into_response();
    };
    let (from, to) = match (bound(&q.from), bound(&q.to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    let items: Vec<_> = c
        .items
        .iter()
        .zip(&c.item_times_us)
        .filter(|(_, t)| from.is_none_or(|f| **t >= f) && to.is_none_or(|e| **t < e))
        .map(|(i, _)| i.clone())
        .skip(if s.ignore_offset.lock().expect("fault").as_deref() == Some(client.as_str()) {
            0
        } else {
            q.offset.unwrap_or(0)
        })
        .take(q.limit.unwrap_or(usize::MAX).min(s.max_page_size.lock().expect("fault").unwrap_or(usize::MAX)))
        .collect();
    Json(json!({"clientId": c.id, "messages": items})).into_response()
}

impl AimylogicSim {
    /// Binds `127.0.0.1:0` and serves `dataset` from a task on the current tokio runtime.
    pub async fn start(dataset: Arc<Dataset>) -> std::io::Result<AimylogicSim> {
        let listener = LoopbackServer::bind().await?;
        let shared = Arc::new(Shared {
            data: RwLock::new(dataset),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            ignore_offset: Mutex::new(None),
            max_page_size: Mutex::new(None),
        });
        let app = axum::Router::new()
            .route("/chatapi/{token}/client/{client}/history", get(history))
            .with_state(shared.clone());
        Ok(AimylogicSim { server: LoopbackServer::serve(listener, app)?, shared })
    }

    /// `http://127.0.0.1:PORT`, the pipeline's `base_url`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Serves `dataset` from now on (e.g. [`Dataset::with_new_items`], to test incremental
    /// runs); requests in flight finish with the old one.
    pub fn set_dataset(&self, dataset: Arc<Dataset>) {
        *self.shared.data.write().expect("data") = dataset;
    }

    /// From now on the history of `client` ignores `offset` and answers the first page again
    /// (a paging bug: a client that pages on loops, one that stops loses the rest); `None`
    /// switches it off.
    pub fn ignore_offset(&self, client: Option<&str>) {
        *self.shared.ignore_offset.lock().expect("fault") = client.map(str::to_string);
    }

    /// From now on (`Some(n)`) every history page holds at most `n` items, however many
    /// `limit` asks for, as a server with a smaller page cap than documented; `None` switches
    /// it off.
    pub fn max_page_size(&self, cap: Option<usize>) {
        *self.shared.max_page_size.lock().expect("fault") = cap;
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(SeqCst)
    }

    /// Every history request as `GET history <clientId> offset=.. limit=..` (client decoded).
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().expect("log").clone()
    }

    /// Stops the server and waits for it (at most 5 s).
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}
