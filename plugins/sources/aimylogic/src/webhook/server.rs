//! The HTTP side of webhook mode: `POST {path}` (the events) and `GET /healthz`, served by
//! [`serve`], an accept loop that holds against clients that connect and send nothing, or
//! send slowly.
//!
//! A POST is checked (shared secret in constant time, size, JSON, each event's token and id
//! lengths), handed to the source's loop, which turns it into rows and a checkpoint with a
//! sequence number, and then answered only once the engine reports a committed state whose
//! `seq` covers it (the acknowledgement after durability).
//!
//! ## Why an accept loop of our own
//!
//! `axum::serve` has no connection cap and no header-read, idle or body timeout, so a few
//! hundred idle connections use up the process's descriptors and starve real senders. Here
//! hyper's HTTP/1 connection builder (the one `axum::serve` wraps) serves each connection with
//! `header_read_timeout` — hyper restarts it whenever it waits for a request head, so it is
//! also the keep-alive idle timeout — and a header size cap; a semaphore caps the connections
//! served at once (the rest wait in the kernel's listen backlog, costing no descriptor); the
//! handler bounds the body read. axum stays the router.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use pipe_plugin_sdk::DeadLetter;
use pipe_plugin_sdk::contract::json_kind;
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::VENDOR;
use crate::mapping::{question_id, scrub_raw};

/// Largest part of a rejected body or event kept in its dead letter.
const RAW_KEEP_BYTES: usize = 64 * 1024;

/// Largest request head (request line and headers) accepted; a larger one gets 431.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Header timeout of connections accepted while more than three quarters of the connection
/// slots are taken: a real sender writes its headers at once, a client holding a slot does not.
const PRESSURE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Listen backlog: connections waiting while every slot is taken (Linux caps it at
/// `net.core.somaxconn`).
pub const LISTEN_BACKLOG: u32 = 1024;

/// What the handlers hand the source's loop.
pub enum Work {
    /// The accepted events of one POST, and dead letters for the refused ones of the same POST;
    /// the loop answers with the sequence number whose commit makes them durable.
    Events { events: Vec<Value>, rejected: Vec<DeadLetter>, reply: oneshot::Sender<u64> },
    /// A refused POST (answered 4xx at once): its dead letters.
    Rejected(Vec<DeadLetter>),
}

/// Shared by every handler.
pub struct Shared {
    pub work: mpsc::Sender<Work>,
    /// Highest committed sequence number.
    pub acked: watch::Receiver<u64>,
    pub secret: Option<String>,
    pub secret_header: String,
    pub secret_query: String,
    pub max_body: usize,
    /// Time an authenticated request has to send its whole body.
    pub body_timeout: Duration,
    pub ack_timeout: Duration,
    pub token: String,
    pub account_id: String,
    /// POSTs answered 401 since the last warning about them.
    pub unauthorized: std::sync::atomic::AtomicU64,
    /// When that warning was last logged (at most one a second, so a flood does not flood
    /// the log).
    pub last_unauthorized_warning: std::sync::Mutex<Option<Instant>>,
}

/// Connection limits of [`serve`].
pub struct Limits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Time a connection has to send a request head, from when the server waits for one.
    pub header_timeout: Duration,
}

/// Serves `app` on `listener` until `stop` is cancelled: at most `limits.max_connections`
/// connections at once, each cut when it does not send a request head within
/// `limits.header_timeout` (1 s under pressure). On `stop` it accepts no more and lets each
/// connection finish its request in flight (idle ones close at once).
///
/// Accept errors (out of descriptors, a connection reset before it was accepted) are logged at
/// most once a second and retried after 100 ms; they never end the loop.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, limits: Limits, stop: CancellationToken) {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max));
    let pressure_at = max - max / 4;
    let mut last_warning: Option<Instant> = None;
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break, // never closed
            },
            _ = stop.cancelled() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::warn!(vendor = VENDOR, "webhook listener cannot accept a connection: {e}");
                        last_warning = Some(Instant::now());
                    }
                    drop(permit);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.cancelled() => break,
        };
        let taken = max - slots.available_permits();
        let header_timeout = if taken > pressure_at {
            limits.header_timeout.min(PRESSURE_HEADER_TIMEOUT)
        } else {
            limits.header_timeout
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.timer(TokioTimer::new()).header_read_timeout(header_timeout).max_header_size(MAX_HEADER_BYTES);
        let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let stop = stop.clone();
        tokio::spawn(async move {
            let _slot = permit;
            let mut conn = std::pin::pin!(conn);
            // Errors here are the client's (timed out, reset): nothing to report.
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

/// The router: `POST path` and `GET /healthz`, every answer counted by [`measure`].
pub fn router(path: &str, shared: Arc<Shared>) -> Router {
    Router::new()
        .route(path, post(receive))
        .route("/healthz", get(health))
        .with_state(shared)
        .layer(axum::middleware::from_fn(measure))
}

/// Records every answer by its code (`pipe_webhook_requests_total`) and, for a POST answered
/// 200 (acknowledged once a commit covers it), the time from its arrival to the answer
/// (`pipe_webhook_ack_duration_seconds`).
async fn measure(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let arrived = Instant::now();
    let is_post = request.method() == axum::http::Method::POST;
    let response = next.run(request).await;
    let code = response.status();
    let ack = (is_post && code == StatusCode::OK).then(|| arrived.elapsed());
    pipe_plugin_sdk::metrics::record_webhook_answer(VENDOR, code.as_u16(), ack);
    response
}

async fn health(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"status": "ok", "committed_seq": *s.acked.borrow()}))
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"ok": status.is_success(), "message": message}))).into_response()
}

fn rejected(s: &Shared, reason: &str, message: String, raw: Value) -> Work {
    Work::Rejected(vec![DeadLetter {
        stream: pipe_plugin_sdk::schema::MESSAGES.into(),
        key: json!({"vendor": VENDOR}),
        stage: VENDOR.into(),
        reason: reason.into(),
        message: message.replace(&s.token, "***"),
        raw,
    }])
}

/// Text cut to [`RAW_KEEP_BYTES`] (at a character boundary) and without the token.
fn cut_text(s: &Shared, text: &str) -> Value {
    let mut end = text.len().min(RAW_KEEP_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Value::String(text[..end].replace(&s.token, "***"))
}

/// Bytes as a JSON string, cut to [`RAW_KEEP_BYTES`] and without the token.
fn raw_text(s: &Shared, bytes: &[u8]) -> Value {
    let cut = &bytes[..bytes.len().min(RAW_KEEP_BYTES)];
    Value::String(String::from_utf8_lossy(cut).replace(&s.token, "***"))
}

/// The dead letter of one refused event: no token in it, its raw cut to [`RAW_KEEP_BYTES`]
/// (as text when longer), and no over-long id in its key.
fn event_dead_letter(s: &Shared, ev: &Value, reason: &str, message: String) -> DeadLetter {
    let text = scrub_raw(ev, &s.token);
    let raw = if text.len() <= RAW_KEEP_BYTES {
        serde_json::from_str(&text).unwrap_or(Value::Null)
    } else {
        cut_text(s, &text)
    };
    let message_id = question_id(ev).filter(|q| q.len() <= super::MAX_ID_BYTES);
    DeadLetter {
        stream: pipe_plugin_sdk::schema::MESSAGES.into(),
        key: json!({"vendor": VENDOR, "account_id": s.account_id, "message_id": message_id}),
        stage: VENDOR.into(),
        reason: reason.into(),
        message,
        raw,
    }
}

/// True when the request carries the shared secret (or none is configured). Each candidate is
/// compared in constant time (`subtle`); only a length difference returns early, and the
/// secret's length (at least 16 characters) is not what keeps it secret.
fn authorized(s: &Shared, query: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(secret) = &s.secret else { return true };
    let matches = |candidate: &[u8]| bool::from(candidate.ct_eq(secret.as_bytes()));
    let in_header = headers.get_all(s.secret_header.as_str()).iter().any(|v| matches(v.as_bytes()));
    let in_query = query.is_some_and(|q| {
        url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == s.secret_query.as_str() && matches(v.as_bytes()))
    });
    in_header | in_query
}

/// Counts a 401 and logs the count at most once a second.
fn warn_unauthorized(s: &Shared) {
    use std::sync::atomic::Ordering;
    let count = s.unauthorized.fetch_add(1, Ordering::Relaxed) + 1;
    let Ok(mut last) = s.last_unauthorized_warning.lock() else { return };
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        s.unauthorized.fetch_sub(count, Ordering::Relaxed);
        tracing::warn!(vendor = VENDOR, "{count} webhook POST(s) without the shared secret: answered 401");
    }
}

async fn receive(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    if !authorized(&s, query.as_deref(), &headers) {
        warn_unauthorized(&s);
        return answer(StatusCode::UNAUTHORIZED, "missing or wrong shared secret");
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes: Bytes = match tokio::time::timeout(s.body_timeout, axum::body::to_bytes(body, s.max_body)).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            let message = format!(
                "webhook body over max_body_bytes = {} (Content-Length {:?}) or unreadable: {e}",
                s.max_body, declared
            );
            let _ = s
                .work
                .send(rejected(
                    &s,
                    "oversized_body",
                    message,
                    json!({"content_length": declared, "max_body_bytes": s.max_body}),
                ))
                .await;
            return answer(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
        }
        Err(_) => {
            // A sender that stalls mid-body: nothing was received to record.
            tracing::warn!(vendor = VENDOR, "webhook body not received within {:?}: answered 408", s.body_timeout);
            return answer(StatusCode::REQUEST_TIMEOUT, "body not received in time");
        }
    };
    let events = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(events)) => events,
        // One object instead of the documented array: take it as one event.
        Ok(obj @ Value::Object(_)) => vec![obj],
        Ok(other) => {
            let message = format!("webhook body is JSON but not an array of events (a {})", json_kind(&other));
            let _ = s.work.send(rejected(&s, "malformed_body", message, raw_text(&s, &bytes))).await;
            return answer(StatusCode::BAD_REQUEST, "expected a JSON array of events");
        }
        Err(e) => {
            let message = format!("webhook body is not JSON ({} bytes): {e}", bytes.len());
            let _ = s.work.send(rejected(&s, "malformed_body", message, raw_text(&s, &bytes))).await;
            return answer(StatusCode::BAD_REQUEST, "body is not JSON");
        }
    };
    drop(bytes);
    let (mut accepted, mut refused) = (Vec::with_capacity(events.len()), Vec::new());
    for ev in events {
        match super::check_event(&ev, &s.token) {
            Ok(()) => accepted.push(ev),
            Err(bad) => refused.push(event_dead_letter(&s, &ev, bad.reason, bad.message)),
        }
    }
    if accepted.is_empty() && !refused.is_empty() {
        let mut reasons: Vec<&str> = refused.iter().map(|d| d.reason.as_str()).collect();
        reasons.dedup();
        let message = format!("no acceptable event ({})", reasons.join(", "));
        let _ = s.work.send(Work::Rejected(refused)).await;
        return answer(StatusCode::UNPROCESSABLE_ENTITY, &message);
    }
    let (n, n_refused) = (accepted.len(), refused.len());
    let (reply, seq) = oneshot::channel();
    if s.work.send(Work::Events { events: accepted, rejected: refused, reply }).await.is_err() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry later");
    }
    let Ok(seq) = seq.await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry later");
    };
    // Durable once a committed state covers `seq`.
    let mut acked = s.acked.clone();
    match tokio::time::timeout(s.ack_timeout, acked.wait_for(|c| *c >= seq)).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"ok": true, "accepted": n, "rejected": n_refused}))).into_response(),
        _ => answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later"),
    }
}
