//! The HTTP side of webhook mode: `POST {path}` (the events) and `GET /healthz`.
//!
//! A POST is checked (shared secret, size, JSON), handed to the source's loop, which turns it
//! into rows and a checkpoint with a sequence number, and then answered only once the engine
//! reports a committed state whose `seq` covers it (the acknowledgement after durability).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipe_plugin_sdk::DeadLetter;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};

use crate::VENDOR;

/// Largest part of a rejected body kept in its dead letter.
const RAW_KEEP_BYTES: usize = 64 * 1024;

/// What the handlers hand the source's loop.
pub enum Work {
    /// The events of one accepted POST; the loop answers with the sequence number whose
    /// commit makes them durable.
    Events { events: Vec<Value>, reply: oneshot::Sender<u64> },
    /// A rejected POST, recorded as a dead letter (answered 4xx at once).
    Rejected(DeadLetter),
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
    pub ack_timeout: Duration,
    pub token: String,
}

/// The router: `POST path` and `GET /healthz`.
pub fn router(path: &str, shared: Arc<Shared>) -> Router {
    Router::new().route(path, post(receive)).route("/healthz", get(health)).with_state(shared)
}

async fn health(State(s): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({"status": "ok", "committed_seq": *s.acked.borrow()}))
}

fn answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"ok": status.is_success(), "message": message}))).into_response()
}

fn rejected(s: &Shared, reason: &str, message: String, raw: Value) -> Work {
    Work::Rejected(DeadLetter {
        stream: pipe_plugin_sdk::schema::MESSAGES.into(),
        key: json!({"vendor": VENDOR}),
        stage: VENDOR.into(),
        reason: reason.into(),
        message: message.replace(&s.token, "***"),
        raw,
    })
}

/// Bytes as a JSON string, cut to [`RAW_KEEP_BYTES`] and without the token.
fn raw_text(s: &Shared, bytes: &[u8]) -> Value {
    let cut = &bytes[..bytes.len().min(RAW_KEEP_BYTES)];
    Value::String(String::from_utf8_lossy(cut).replace(&s.token, "***"))
}

async fn receive(State(s): State<Arc<Shared>>, RawQuery(query): RawQuery, headers: HeaderMap, body: Body) -> Response {
    if let Some(secret) = &s.secret {
        let in_header = headers.get(s.secret_header.as_str()).and_then(|v| v.to_str().ok()) == Some(secret.as_str());
        let in_query = query.as_deref().is_some_and(|q| {
            url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == s.secret_query.as_str() && v == secret.as_str())
        });
        if !in_header && !in_query {
            tracing::warn!(vendor = VENDOR, "webhook POST without the shared secret: answered 401");
            return answer(StatusCode::UNAUTHORIZED, "missing or wrong shared secret");
        }
    }
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let bytes: Bytes = match axum::body::to_bytes(body, s.max_body).await {
        Ok(b) => b,
        Err(e) => {
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
    };
    let events = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Array(events)) => events,
        // One object instead of the documented array: take it as one event.
        Ok(obj @ Value::Object(_)) => vec![obj],
        Ok(other) => {
            let message = format!("webhook body is JSON but not an array of events (a {})", kind(&other));
            let _ = s.work.send(rejected(&s, "malformed_body", message, raw_text(&s, &bytes))).await;
            return answer(StatusCode::BAD_REQUEST, "expected a JSON array of events");
        }
        Err(e) => {
            let message = format!("webhook body is not JSON ({} bytes): {e}", bytes.len());
            let _ = s.work.send(rejected(&s, "malformed_body", message, raw_text(&s, &bytes))).await;
            return answer(StatusCode::BAD_REQUEST, "body is not JSON");
        }
    };
    let n = events.len();
    let (reply, seq) = oneshot::channel();
    if s.work.send(Work::Events { events, reply }).await.is_err() {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry later");
    }
    let Ok(seq) = seq.await else {
        return answer(StatusCode::SERVICE_UNAVAILABLE, "shutting down; retry later");
    };
    // Durable once a committed state covers `seq`.
    let mut acked = s.acked.clone();
    match tokio::time::timeout(s.ack_timeout, acked.wait_for(|c| *c >= seq)).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"ok": true, "accepted": n}))).into_response(),
        _ => answer(StatusCode::SERVICE_UNAVAILABLE, "not committed in time; retry later"),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}
