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
    /// The client whose history ignores `from` too ([`AimylogicSim::ignore_from`]).
    ignore_from: Mutex<Option<String>>,
    /// At most this many items per page, whatever `limit` asks ([`AimylogicSim::max_page_size`]).
    max_page_size: Mutex<Option<usize>>,
    /// The zone timestamps are written in, without zone ([`AimylogicSim::zone_less_in`]).
    zone: Mutex<Option<chrono_tz::Tz>>,
}

#[derive(serde::Deserialize)]
struct HistoryQuery {
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

/// `from`/`to` as µs: ISO (naive = a wall-clock time of `zone`, UTC without one) or epoch ms.
fn bound(v: &Option<String>, zone: Option<chrono_tz::Tz>) -> Result<Option<i64>, String> {
    use chrono::TimeZone as _;
    let Some(v) = v else { return Ok(None) };
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(Some(ms * 1000));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_micros()));
    }
    let naive =
        chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| format!("bad time `{v}`"))?;
    Ok(Some(match zone {
        None => naive.and_utc().timestamp_micros(),
        Some(tz) => {
            tz.from_local_datetime(&naive).earliest().ok_or(format!("no such local time `{v}`"))?.timestamp_micros()
        }
    }))
}

/// `item` with its `timestamp` (a UTC time written without zone) rewritten as the wall-clock
/// time of `zone`, still without zone.
fn in_zone(mut item: serde_json::Value, at_us: i64, zone: chrono_tz::Tz) -> serde_json::Value {
    if item.get("timestamp").is_some_and(serde_json::Value::is_string) {
        let local = chrono::DateTime::from_timestamp_micros(at_us).expect("valid time").with_timezone(&zone);
        item["timestamp"] = json!(local.naive_local().format("%Y-%m-%dT%H:%M:%S%.3f").to_string());
    }
    item
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
    let zone = *s.zone.lock().expect("zone");
    let (from, to) = match (bound(&q.from, zone), bound(&q.to, zone)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    };
    let is = |fault: &Mutex<Option<String>>| fault.lock().expect("fault").as_deref() == Some(client.as_str());
    let from = if is(&s.ignore_from) { None } else { from };
    let cap = s.max_page_size.lock().expect("cap").unwrap_or(usize::MAX);
    let items: Vec<_> = c
        .items
        .iter()
        .zip(&c.item_times_us)
        .filter(|(_, t)| from.is_none_or(|f| **t >= f) && to.is_none_or(|e| **t < e))
        .map(|(i, t)| match zone {
            Some(z) => in_zone(i.clone(), *t, z),
            None => i.clone(),
        })
        .skip(if is(&s.ignore_offset) { 0 } else { q.offset.unwrap_or(0) })
        .take(q.limit.unwrap_or(usize::MAX).min(cap))
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
            ignore_from: Mutex::new(None),
            max_page_size: Mutex::new(None),
            zone: Mutex::new(None),
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

    /// From now on the history of `client` ignores `from` as well (together with
    /// [`AimylogicSim::ignore_offset`]: a server no strategy can page); `None` switches it off.
    pub fn ignore_from(&self, client: Option<&str>) {
        *self.shared.ignore_from.lock().expect("fault") = client.map(str::to_string);
    }

    /// From now on every history page holds at most `cap` items, whatever `limit` asks (a
    /// server capping its pages); `None` switches it off.
    pub fn max_page_size(&self, cap: Option<usize>) {
        *self.shared.max_page_size.lock().expect("cap") = cap;
    }

    /// From now on item `timestamp`s are written, still without zone, as wall-clock times of
    /// the IANA zone `zone` (`Europe/Moscow`: the vendor is Moscow-based), and zone-less `from`
    /// and `to` are read in it; `None` is UTC again.
    ///
    /// Panics on a zone name the IANA database lacks.
    pub fn zone_less_in(&self, zone: Option<&str>) {
        *self.shared.zone.lock().expect("zone") = zone.map(|z| z.parse().expect("an IANA zone name"));
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
