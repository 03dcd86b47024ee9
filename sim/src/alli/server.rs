//! The HTTP side: REST webapi v2 and GraphQL on one loopback port, like `backend.alli.ai`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::graphql::{self, Answer, SchemaMode};
use super::{ConversationTruth, Dataset};
use crate::serve::LoopbackServer;

/// Chats per page of `/chats` (fixed by Alli).
pub const CHATS_PAGE: usize = 100;
/// Chats embedded in a listed conversation.
const EMBEDDED_CHATS: usize = 20;

/// A running Alli simulator on a loopback port. Dropping it stops the server.
pub struct AlliSim {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

struct Shared {
    data: RwLock<Arc<Dataset>>,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
    /// GraphQL documents that did not validate, with the errors answered.
    invalid: Mutex<Vec<(String, Value)>>,
    /// Conversations whose `/chats` pages leave out their first chat (totalCount unchanged).
    lossy: Mutex<HashSet<String>>,
    /// Chats appended so far, to seed the generator of the next ones.
    appended: AtomicU64,
    /// The conversation listings hand back the cursor they were asked with ([`AlliSim::repeat_cursor`]).
    repeat_cursor: std::sync::atomic::AtomicBool,
    /// The schema GraphQL serves ([`AlliSim::graphql_schema`]).
    schema_mode: Mutex<SchemaMode>,
    /// REST `startedAt` is read as epoch seconds ([`AlliSim::started_at_in_seconds`]).
    started_at_seconds: std::sync::atomic::AtomicBool,
    /// REST times are served as epoch seconds ([`AlliSim::times_in_seconds`]).
    times_seconds: std::sync::atomic::AtomicBool,
}

impl AlliSim {
    /// Binds `127.0.0.1:0` and serves `dataset` from a task on the current tokio runtime.
    pub async fn start(dataset: Dataset) -> std::io::Result<AlliSim> {
        let listener = LoopbackServer::bind().await?;
        let shared = Arc::new(Shared {
            data: RwLock::new(Arc::new(dataset)),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            invalid: Mutex::new(Vec::new()),
            lossy: Mutex::new(HashSet::new()),
            appended: AtomicU64::new(0),
            repeat_cursor: std::sync::atomic::AtomicBool::new(false),
            schema_mode: Mutex::new(SchemaMode::Assumed),
            started_at_seconds: std::sync::atomic::AtomicBool::new(false),
            times_seconds: std::sync::atomic::AtomicBool::new(false),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        Ok(AlliSim { server: LoopbackServer::serve(listener, app)?, shared })
    }

    /// `http://127.0.0.1:PORT` — the value for a pipeline's `base_url`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The project as served now (the ground truth).
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.data.read().expect("dataset").clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(SeqCst)
    }

    /// Every request as `METHOD path?query` (GraphQL: `POST /d/graphql/ <operationName>`).
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().expect("log").clone()
    }

    /// GraphQL documents that failed validation against the SDL, with the errors answered.
    pub fn invalid_queries(&self) -> Vec<(String, Value)> {
        self.shared.invalid.lock().expect("invalid").clone()
    }

    /// From now on `/chats` of this conversation leaves out its first chat while still
    /// reporting the full `totalCount`, as a flaky backend might.
    pub fn lose_a_chat_of(&self, conversation_id: &str) {
        self.shared.lossy.lock().expect("lossy").insert(conversation_id.to_string());
    }

    /// From now on (`true`) both conversation listings answer a page asked for with a cursor
    /// with that same cursor as the next one (REST `cursor`, GraphQL `endCursor`), a paging bug
    /// that makes a client loop on its second page; `false` switches it off.
    pub fn repeat_cursor(&self, on: bool) {
        self.shared.repeat_cursor.store(on, SeqCst);
    }

    /// From now on GraphQL validates and answers against the schema of `mode` (and answers
    /// introspection of it): [`SchemaMode::Sparse`] lacks the fields and paging alli.md §3
    /// assumes, [`SchemaMode::Unpaged`] cannot page chats at all.
    pub fn graphql_schema(&self, mode: SchemaMode) {
        *self.shared.schema_mode.lock().expect("schema mode") = mode;
    }

    /// From now on (`true`) REST reads `startedAt`/`endAt` as epoch **seconds** while its
    /// responses still carry milliseconds: a client sending the floor in the responses' unit
    /// asks for a time ~50,000 years ahead and gets nothing.
    pub fn started_at_in_seconds(&self, on: bool) {
        self.shared.started_at_seconds.store(on, SeqCst);
    }

    /// From now on (`true`) REST serves every time (`createdAt`, `lastChatTime`, chat
    /// `timestamp`) in epoch **seconds** (whole, rounded down) while `startedAt`/`endAt` are
    /// still read as milliseconds: the reverse mismatch.
    pub fn times_in_seconds(&self, on: bool) {
        self.shared.times_seconds.store(on, SeqCst);
    }

    /// Appends `n` new chats to conversation `index` (creation order), one minute apart from
    /// `at_ms`: its last chat time moves, as when the user comes back.
    pub fn add_chats(&self, index: usize, n: usize, at_ms: i64) {
        let seed = 1_000 + self.shared.appended.fetch_add(n as u64, SeqCst);
        let mut guard = self.shared.data.write().expect("dataset");
        let data = Arc::make_mut(&mut guard);
        let chats = super::generate::more_chats(seed, n, at_ms);
        data.conversations[index].chats.extend(chats);
    }

    /// Stops the server and waits (at most 5 s) for it to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn alli_error(status: StatusCode, code: u32, message: &str) -> Response {
    (status, Json(json!({"result": null, "errors": {"code": code, "message": message}}))).into_response()
}

/// FastAPI-style validation error.
fn unprocessable(param: &str, message: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"detail": [{"loc": ["query", param], "msg": message, "type": "value_error"}]})),
    )
        .into_response()
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    s.requests.fetch_add(1, SeqCst);
    let path = uri.path().to_string();
    let segments: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
    let segs: Vec<&str> = segments.iter().map(String::as_str).collect();
    let mut line = format!("{method} {uri}");

    let response = match (&method, segs.as_slice()) {
        (&Method::POST, ["d", "graphql"]) => {
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Some(op) = body.get("operationName").and_then(Value::as_str) {
                line.push(' ');
                line.push_str(op);
            }
            let data = s.data.read().expect("dataset").clone();
            let authorized = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(data.token.as_str());
            let mode = *s.schema_mode.lock().expect("schema mode");
            match graphql::answer(&data, &body, authorized, mode) {
                Answer::Ok(mut v) => {
                    let after = body.pointer("/variables/after").and_then(Value::as_str);
                    if let (true, Some(after), Some(info)) = (
                        s.repeat_cursor.load(SeqCst),
                        after,
                        v.pointer_mut("/data/conversations/pageInfo").and_then(Value::as_object_mut),
                    ) {
                        info.insert("endCursor".into(), json!(after));
                        info.insert("hasNextPage".into(), json!(true));
                    }
                    (StatusCode::OK, Json(v)).into_response()
                }
                Answer::Invalid(v) => {
                    let query = body.get("query").and_then(Value::as_str).unwrap_or_default().to_string();
                    s.invalid.lock().expect("invalid").push((query, v.clone()));
                    (StatusCode::OK, Json(v)).into_response()
                }
                Answer::Unauthorized => (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({"errors": [{"message": "Authentication credentials were not provided or are invalid."}]})),
                )
                    .into_response(),
                Answer::BadRequest(v) => (StatusCode::BAD_REQUEST, Json(v)).into_response(),
            }
        }
        (&Method::GET, ["webapi", "v2", "conversations", rest @ ..]) => {
            let data = s.data.read().expect("dataset").clone();
            if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(data.api_key.as_str()) {
                alli_error(StatusCode::UNAUTHORIZED, 7001, "Invalid API key")
            } else {
                let query: Vec<(String, String)> =
                    url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
                let filter_scale = if s.started_at_seconds.load(SeqCst) { 1_000 } else { 1 };
                let response = match rest {
                    [] => list(&data, &query, s.repeat_cursor.load(SeqCst), filter_scale),
                    [id] => match data.conversation(id) {
                        Some(c) => {
                            (StatusCode::OK, Json(data.rest_conversation(c, EMBEDDED_CHATS, &variables_param(&query))))
                                .into_response()
                        }
                        None => alli_error(StatusCode::NOT_FOUND, 7003, "Conversation not found"),
                    },
                    [id, "chats"] => match data.conversation(id) {
                        Some(c) => chats(c, &query, s.lossy.lock().expect("lossy").contains(*id)),
                        None => alli_error(StatusCode::NOT_FOUND, 7003, "Conversation not found"),
                    },
                    _ => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response(),
                };
                if s.times_seconds.load(SeqCst) { in_seconds(response).await } else { response }
            }
        }
        _ => (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"}))).into_response(),
    };
    s.log.lock().expect("log").push(line);
    response
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// `variables=a&variables=b` or `variables=a,b`.
fn variables_param(query: &[(String, String)]) -> Vec<String> {
    query.iter().filter(|(k, _)| k == "variables").flat_map(|(_, v)| v.split(',').map(str::to_string)).collect()
}

fn encode_cursor(key: i64, id: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!({"lastChatTime": key, "id": id}).to_string())
}

fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    Some((v.get("lastChatTime")?.as_i64()?, v.get("id")?.as_str()?.to_string()))
}

/// A REST response with every time field (`createdAt`, `lastChatTime`, `timestamp`) in epoch
/// seconds instead of milliseconds.
async fn in_seconds(response: Response) -> Response {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    match (k.as_str(), x.as_i64()) {
                        ("createdAt" | "lastChatTime" | "timestamp", Some(ms)) => *x = json!(ms.div_euclid(1_000)),
                        _ => walk(x),
                    }
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (parts, axum::body::Body::empty()).into_response();
    };
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(mut v) => {
            walk(&mut v);
            (parts.status, Json(v)).into_response()
        }
        Err(_) => (parts, axum::body::Body::from(bytes)).into_response(),
    }
}

/// `GET /webapi/v2/conversations`: keyset pagination on (last chat time, id); `startedAt` and
/// `endAt` are multiplied by `filter_scale` (1000: read as seconds).
fn list(data: &Dataset, query: &[(String, String)], repeat_cursor: bool, filter_scale: i64) -> Response {
    let page_size = match param(query, "pageSize").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(n)) if (1..=50).contains(&n) => n,
        Some(_) => return unprocessable("pageSize", "Input should be less than or equal to 50"),
    };
    // A bad number is answered like FastAPI does; the error names the parameter.
    let number = |name: &'static str| -> Result<Option<i64>, &'static str> {
        match param(query, name) {
            None | Some("") => Ok(None),
            Some(v) => v.parse::<f64>().map(|f| Some((f as i64).saturating_mul(filter_scale))).map_err(|_| name),
        }
    };
    let (started_at, end_at) = match (number("startedAt"), number("endAt")) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(name), _) | (_, Err(name)) => return unprocessable(name, "Input should be a valid number"),
    };
    let ascending = match param(query, "order") {
        None | Some("LAST_CHAT_TIME_DESC") => false,
        Some("LAST_CHAT_TIME_ASC") => true,
        Some(_) => return unprocessable("order", "Input should be 'LAST_CHAT_TIME_DESC' or 'LAST_CHAT_TIME_ASC'"),
    };
    let app = param(query, "llmAppId");
    let category =
        param(query, "categoryId").map(|id| data.categories.iter().find(|(cid, _)| cid == id).map(|(_, n)| n.as_str()));
    let mut items: Vec<&ConversationTruth> = data
        .conversations
        .iter()
        .filter(|c| started_at.is_none_or(|t| c.sort_key() >= t))
        .filter(|c| end_at.is_none_or(|t| c.sort_key() <= t))
        .filter(|c| app.is_none_or(|a| data.apps[c.app].id == a))
        .filter(|c| category.is_none_or(|name| name.is_some_and(|n| c.categories.iter().any(|x| x == n))))
        .collect();
    items.sort_by(|a, b| (a.sort_key(), &a.id).cmp(&(b.sort_key(), &b.id)));
    if !ascending {
        items.reverse();
    }
    let start = match param(query, "cursor").filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => match decode_cursor(c) {
            None => return alli_error(StatusCode::BAD_REQUEST, 7003, "Invalid cursor"),
            Some((key, id)) => items
                .iter()
                .position(|c| {
                    let here = (c.sort_key(), c.id.as_str());
                    let at = (key, id.as_str());
                    if ascending { here > at } else { here < at }
                })
                .unwrap_or(items.len()),
        },
    };
    let end = (start + page_size).min(items.len());
    let vars = variables_param(query);
    let page: Vec<Value> = items[start..end].iter().map(|c| data.rest_conversation(c, EMBEDDED_CHATS, &vars)).collect();
    let cursor = match param(query, "cursor").filter(|c| !c.is_empty()) {
        Some(asked) if repeat_cursor => Some(asked.to_string()),
        _ if end < items.len() => Some(encode_cursor(items[end - 1].sort_key(), &items[end - 1].id)),
        _ => None,
    };
    (StatusCode::OK, Json(json!({"conversations": page, "cursor": cursor}))).into_response()
}

/// `GET /webapi/v2/conversations/{id}/chats?pageNo=N`.
fn chats(c: &ConversationTruth, query: &[(String, String)], lossy: bool) -> Response {
    let page_no = match param(query, "pageNo").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n >= 1 => n,
        Some(_) => return unprocessable("pageNo", "Input should be greater than or equal to 1"),
    };
    let start = ((page_no - 1) * CHATS_PAGE).min(c.chats.len());
    let end = (start + CHATS_PAGE).min(c.chats.len());
    let chats: Vec<Value> = c.chats[start..end]
        .iter()
        .enumerate()
        .filter(|(i, _)| !(lossy && start + i == 0))
        .map(|(_, m)| m.rest_json())
        .collect();
    (StatusCode::OK, Json(json!({"chats": chats, "pageNo": page_no, "totalCount": c.chats.len()}))).into_response()
}
