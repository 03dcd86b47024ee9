//! The HTTP side: `GET /conversations` and `GET /conversations/{id}` on one loopback port, like
//! `api.intercom.io`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, RwLock};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{Author, ConversationTruth, Dataset, PartTruth};
use crate::serve::LoopbackServer;

/// `per_page` when a request gives none.
pub const DEFAULT_PER_PAGE: usize = 20;
/// The largest `per_page` (a larger one is served as this).
pub const MAX_PER_PAGE: usize = 150;

/// A running Intercom simulator on a loopback port. Dropping it stops the server.
pub struct IntercomSim {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

struct Shared {
    data: RwLock<Arc<Dataset>>,
    requests: AtomicU64,
    log: Mutex<Vec<String>>,
    /// Changes made so far, to seed the generator of the next ones.
    changes: AtomicU64,
    /// A listing page asked for with a cursor names that same cursor as the next one.
    repeat_cursor: AtomicBool,
}

impl IntercomSim {
    /// Binds `127.0.0.1:0` and serves `dataset` from a task on the current tokio runtime.
    pub async fn start(dataset: Dataset) -> std::io::Result<IntercomSim> {
        let listener = LoopbackServer::bind().await?;
        let shared = Arc::new(Shared {
            data: RwLock::new(Arc::new(dataset)),
            requests: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            changes: AtomicU64::new(0),
            repeat_cursor: AtomicBool::new(false),
        });
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        Ok(IntercomSim { server: LoopbackServer::serve(listener, app)?, shared })
    }

    /// `http://127.0.0.1:PORT` — the value for a pipeline's `base_url`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The workspace as served now (the ground truth).
    pub fn dataset(&self) -> Arc<Dataset> {
        self.shared.data.read().expect("dataset").clone()
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(SeqCst)
    }

    /// Every request as `METHOD path?query`.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().expect("log").clone()
    }

    /// From now on (`true`) a listing page asked for with `starting_after` names that same
    /// cursor in `pages.next`, a paging bug that makes a client loop; `false` switches it off.
    pub fn repeat_cursor(&self, on: bool) {
        self.shared.repeat_cursor.store(on, SeqCst);
    }

    /// The first `comment` of conversation `index` (creation order) gets a blank `author`
    /// (served as `{}`), as the docs say parts of Twitter conversations have. Returns the
    /// part's id.
    pub fn blank_author_of(&self, index: usize) -> String {
        let mut guard = self.shared.data.write().expect("dataset");
        let data = Arc::make_mut(&mut guard);
        let part = data.conversations[index]
            .parts
            .iter_mut()
            .find(|p| p.part_type == "comment")
            .expect("the conversation has a comment");
        part.author = Author { kind: String::new(), id: String::new(), name: None, email: None };
        part.id.clone()
    }

    /// Appends `n` comments (the contact's and an admin's, alternating, a minute apart) to
    /// conversation `index` (creation order) from `at` (epoch s) on; its `updated_at` becomes
    /// the last one's time.
    pub fn add_parts(&self, index: usize, n: usize, at: i64) {
        let seed = 1 + self.shared.changes.fetch_add(1, SeqCst);
        let mut guard = self.shared.data.write().expect("dataset");
        let data = Arc::make_mut(&mut guard);
        let c = &mut data.conversations[index];
        let parts = super::generate::more_parts(seed, &c.contact, n, at);
        c.updated_at = parts.last().map_or(c.updated_at, |p| p.created_at);
        c.parts.extend(parts);
    }

    /// Adds a conversation created at `at` (epoch s) with `n` parts; returns its id.
    pub fn add_conversation(&self, n: usize, at: i64) -> String {
        let seed = 1 + self.shared.changes.fetch_add(1, SeqCst);
        let c = super::generate::new_conversation(seed, n, at);
        let id = c.id.clone();
        let mut guard = self.shared.data.write().expect("dataset");
        Arc::make_mut(&mut guard).conversations.push(c);
        id
    }

    /// Stops the server and waits (at most 5 s) for it to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Intercom's error body.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"type": "error.list", "request_id": "sim-0001", "errors": [{"code": code, "message": message}]});
    (status, Json(body)).into_response()
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, SeqCst);
    s.log.lock().expect("log").push(format!("{method} {uri}"));
    let data = s.data.read().expect("dataset").clone();
    let bearer = format!("Bearer {}", data.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(bearer.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "unauthorized", "Access Token Invalid");
    }
    let query: Vec<(String, String)> =
        uri.query().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let param = |name: &str| query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let segments: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["conversations"]) => list(&s, &data, param("per_page"), param("starting_after")),
        (&Method::GET, ["conversations", id]) => match data.conversations.iter().find(|c| c.id == *id) {
            Some(c) => Json(conversation_json(c, Some(param("display_as") == Some("plaintext")))).into_response(),
            None => error(StatusCode::NOT_FOUND, "not_found", "Resource Not Found"),
        },
        _ => error(StatusCode::NOT_FOUND, "not_found", "Resource Not Found"),
    }
}

/// The opaque `starting_after` of a position: base64 of `[updated_at, id]` (the docs' cursors
/// look like `WzE2…`, base64 of a JSON array).
fn cursor_of(c: &ConversationTruth) -> String {
    base64::engine::general_purpose::STANDARD.encode(json!([c.updated_at, c.id]).to_string())
}

fn list(s: &Shared, data: &Dataset, per_page: Option<&str>, after: Option<&str>) -> Response {
    let per_page = match per_page.map(str::parse::<usize>) {
        None => DEFAULT_PER_PAGE,
        Some(Ok(n)) if n >= 1 => n.min(MAX_PER_PAGE),
        Some(_) => return error(StatusCode::BAD_REQUEST, "parameter_invalid", "per_page must be a positive integer"),
    };
    // Newest `updated_at` first; ties by id, descending.
    let mut order: Vec<&ConversationTruth> = data.conversations.iter().collect();
    order.sort_by(|a, b| (b.updated_at, &b.id).cmp(&(a.updated_at, &a.id)));
    let start = match after {
        None => 0,
        Some(cursor) => {
            let key = base64::engine::general_purpose::STANDARD
                .decode(cursor)
                .ok()
                .and_then(|b| serde_json::from_slice::<(i64, String)>(&b).ok());
            let Some((updated, id)) = key else {
                return error(StatusCode::BAD_REQUEST, "parameter_invalid", "starting_after is invalid");
            };
            order.iter().position(|c| (c.updated_at, &c.id) < (updated, &id)).unwrap_or(order.len())
        }
    };
    let page_items = &order[start..(start + per_page).min(order.len())];
    let total_pages = order.len().div_ceil(per_page).max(1);
    let mut pages =
        json!({"type": "pages", "page": start / per_page + 1, "per_page": per_page, "total_pages": total_pages});
    let next = if s.repeat_cursor.load(SeqCst) && after.is_some() {
        after.map(str::to_string)
    } else if start + per_page < order.len() {
        page_items.last().map(|c| cursor_of(c))
    } else {
        None
    };
    if let Some(next) = next {
        pages["next"] = json!({"per_page": per_page, "starting_after": next});
    }
    Json(json!({
        "type": "conversation.list",
        "conversations": page_items.iter().map(|c| conversation_json(c, None)).collect::<Vec<_>>(),
        "total_count": order.len(),
        "pages": pages,
    }))
    .into_response()
}

fn author_json(a: &Author) -> Value {
    if a.kind.is_empty() {
        return json!({});
    }
    let mut o = json!({"type": a.kind, "id": a.id});
    if let Some(n) = &a.name {
        o["name"] = json!(n);
    }
    if let Some(e) = &a.email {
        o["email"] = json!(e);
    }
    o
}

fn body(p: &PartTruth, plain: bool) -> Value {
    match (&p.body, plain) {
        (None, _) => Value::Null,
        (Some(_), true) => json!(p.text()),
        (Some(html), false) => json!(html),
    }
}

fn with_literal(mut o: Value, literal: &std::collections::BTreeMap<String, Value>) -> Value {
    if let Some(map) = o.as_object_mut() {
        for (k, v) in literal {
            map.insert(k.clone(), v.clone());
        }
    }
    o
}

fn part_json(p: &PartTruth, plain: bool) -> Value {
    let o = json!({
        "type": "conversation_part",
        "id": p.id,
        "part_type": p.part_type,
        "body": body(p, plain),
        "created_at": p.created_at,
        "updated_at": p.created_at,
        "notified_at": p.created_at,
        "assigned_to": null,
        "author": author_json(&p.author),
        "attachments": [],
        "external_id": null,
        "redacted": false,
    });
    with_literal(o, &p.literal)
}

/// A conversation as listed (`parts: None`), or as retrieved with its parts (`Some(plaintext)`).
fn conversation_json(c: &ConversationTruth, parts: Option<bool>) -> Value {
    let plain = parts == Some(true);
    let source = with_literal(
        json!({
            "type": "conversation",
            "id": c.source.id,
            "delivered_as": c.delivered_as,
            "subject": "",
            "body": body(&c.source, plain),
            "author": author_json(&c.source.author),
            "attachments": [],
            "url": null,
            "redacted": false,
        }),
        &c.source.literal,
    );
    let tags: Vec<Value> = c.tags.iter().map(|(id, name)| json!({"type": "tag", "id": id, "name": name})).collect();
    let mut o = json!({
        "type": "conversation",
        "id": c.id,
        "title": c.title,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "waiting_since": null,
        "snoozed_until": null,
        "open": c.state == "open",
        "state": c.state,
        "read": false,
        "priority": "not_priority",
        "admin_assignee_id": c.admin_assignee_id,
        "team_assignee_id": null,
        "tags": {"type": "tag.list", "tags": tags},
        "conversation_rating": null,
        "source": source,
        "contacts": {"type": "contact.list", "contacts": [{"type": "contact", "id": c.contact.id, "external_id": null}]},
        "teammates": {"type": "admin.list", "admins": c.admin_ids.iter().map(|id| json!({"type": "admin", "id": id})).collect::<Vec<_>>()},
        "custom_attributes": Value::Object(c.custom_attributes.clone()),
    });
    if parts.is_some() {
        let served: Vec<Value> = c.served_parts().iter().map(|p| part_json(p, plain)).collect();
        o["conversation_parts"] =
            json!({"type": "conversation_part.list", "conversation_parts": served, "total_count": c.parts.len()});
    }
    with_literal(o, &c.literal)
}
