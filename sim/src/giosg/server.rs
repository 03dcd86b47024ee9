//! The HTTP side: routes, auth, filters, ordering, pagination envelopes and failure injection.
//!
//! One fallback handler routes by path segments instead of an axum `Router` table, because giosg
//! tolerates a trailing slash on every path and answers every miss with a JSON `{"detail"}` body
//! (Django REST framework style), both of which are simpler to get exactly right by hand.

use super::http_faults::{Fault, FaultState, HttpFaults, RequestRecord};
use super::paging::{Cursors, page_len};
use super::{Dataset, parse_timestamp};
use crate::serve::LoopbackServer;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// Server knobs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// Page size when the request has no (valid) `page_size` parameter.
    pub page_size_default: usize,
    /// Largest page size honoured; larger requests are clamped to it (as DRF does).
    pub max_page_size: usize,
}

impl Default for SimOptions {
    /// 25 per page by default, at most 100 (giosg.md §1).
    fn default() -> Self {
        Self { page_size_default: 25, max_page_size: 100 }
    }
}

/// Paging misbehaviour, for the bounded-paging tests. A listing is chosen by the start of its
/// scope: `owned_chats` (the chat listings), `messages|<chat id>`, `memberships|<chat id>`,
/// `tags|<chat id>`, `variables|<chat id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PagingFaults {
    /// Every page after the first of the chosen listings names itself as `next` (a vendor
    /// bug seen in cursor APIs): a client that follows `next` blindly pages forever.
    pub next_self: Option<String>,
    /// Every page of the chosen listings carries this many bytes of padding (`"padding"`), for
    /// a body larger than the client's cap.
    pub oversize: Option<(String, usize)>,
    /// Chats still listed whose own endpoints (`owned_chats/<id>` and everything below it)
    /// answer this status: 404 for a chat deleted between listing and fetching, 403 for a room
    /// the token may not read.
    pub chat_status: Vec<(String, u16)>,
    /// The single-chat GET (`owned_chats/<id>`, an assumed path: giosg.md §2.3) answers 404
    /// for every chat, as on a server without that route; the listing and every collection
    /// below a chat still answer.
    pub no_single_chat: bool,
}

/// A running giosg simulator on a loopback port.
///
/// Dropping it also stops the server (gracefully, in the background); [`GiosgSim::shutdown`]
/// additionally waits until it has stopped.
pub struct GiosgSim {
    server: LoopbackServer,
    shared: Arc<Shared>,
}

impl GiosgSim {
    /// Binds `127.0.0.1:0` and serves `dataset` from a task on the current tokio runtime.
    pub async fn start(dataset: Arc<Dataset>, opts: SimOptions) -> std::io::Result<GiosgSim> {
        let listener = LoopbackServer::bind().await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(dataset, opts, addr));
        let app = axum::Router::new().fallback(handle).with_state(shared.clone());
        tracing::debug!(%addr, chats = shared.data.chats.len(), "giosg simulator listening");
        Ok(GiosgSim { server: LoopbackServer::serve(listener, app)?, shared })
    }

    /// `http://127.0.0.1:PORT` — the value for a pipeline's `base_url`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Total requests received so far, including the ones answered with an error.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(SeqCst)
    }

    /// How many requests were answered 429: by [`GiosgSim::inject_429_every`] or a rate limit
    /// of [`HttpFaults`].
    pub fn throttled(&self) -> u64 {
        self.shared.throttled.load(SeqCst)
    }

    /// The most recent requests (up to 100 000) as `METHOD path?query`, oldest first.
    pub fn request_log(&self) -> Vec<String> {
        self.shared.log.lock().expect("request log").iter().cloned().collect()
    }

    /// The next `n` requests are served normally; every request after them gets 401, as if the
    /// token had been revoked mid-run.
    pub fn fail_auth_after(&self, n: u64) {
        let now = self.shared.requests.load(SeqCst);
        self.shared.auth_fails_after.store(now.saturating_add(n), SeqCst);
    }

    /// From now on every `n`th request is answered `429 Too Many Requests` with
    /// `Retry-After: 1`; 0 switches throttling off.
    pub fn inject_429_every(&self, n: u64) {
        self.shared.throttle_base.store(self.shared.requests.load(SeqCst), SeqCst);
        self.shared.throttle_every.store(n, SeqCst);
    }

    /// Switches transport faults on (latency, 5xx, truncated bodies, cut connections, a
    /// server-side rate limit); `HttpFaults::default()` switches them off.
    pub fn set_faults(&self, faults: HttpFaults) {
        self.shared.faults.set(faults);
    }

    /// Switches paging misbehaviour on; `PagingFaults::default()` switches it off.
    pub fn set_paging_faults(&self, faults: PagingFaults) {
        *self.shared.paging_faults.lock().expect("paging faults") = faults;
    }

    /// Every request (up to 100 000) with its arrival time and the status answered.
    pub fn request_records(&self) -> Vec<RequestRecord> {
        self.shared.records.lock().expect("records").iter().cloned().collect()
    }

    /// Stops accepting requests, lets in-flight ones finish (at most 5 s) and waits for the
    /// server task to end.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

/// Server state shared by all requests.
struct Shared {
    data: Arc<Dataset>,
    opts: SimOptions,
    /// Fallback for the `Host` header when building absolute URLs.
    addr: SocketAddr,
    /// chat id → index in `data.chats`
    by_id: HashMap<String, usize>,
    /// Parsed (created_at, updated_at) per chat, for filters and ordering.
    times: Vec<(DateTime<Utc>, DateTime<Utc>)>,
    /// Filtered + ordered chat indices per listing scope; valid forever as data never changes.
    listings: Mutex<HashMap<String, Arc<Vec<usize>>>>,
    cursors: Cursors,
    requests: AtomicU64,
    /// Requests numbered above this get 401 (u64::MAX = never).
    auth_fails_after: AtomicU64,
    throttle_every: AtomicU64,
    throttle_base: AtomicU64,
    throttled: AtomicU64,
    /// Bounded, so a long benchmark run doesn't grow memory without limit.
    log: Mutex<VecDeque<String>>,
    faults: FaultState,
    records: Mutex<VecDeque<RequestRecord>>,
    paging_faults: Mutex<PagingFaults>,
}

/// How many requests [`GiosgSim::request_log`] keeps.
const LOG_CAPACITY: usize = 100_000;

impl Shared {
    /// The status [`PagingFaults::chat_status`] sets for a per-chat `path`, if any.
    fn chat_status(&self, path: &str) -> Option<u16> {
        let faults = self.paging_faults.lock().expect("paging faults");
        let rest = path.split("/owned_chats/").nth(1)?;
        let id = rest.split('/').next()?;
        faults.chat_status.iter().find(|(c, _)| c == id).map(|(_, status)| *status)
    }

    fn new(data: Arc<Dataset>, opts: SimOptions, addr: SocketAddr) -> Self {
        let by_id = data.chats.iter().enumerate().map(|(i, c)| (c.id().to_owned(), i)).collect();
        let times = data
            .chats
            .iter()
            .map(|c| {
                let t = |f: &str| c.chat[f].as_str().and_then(parse_timestamp).expect("generated timestamps parse");
                (t("created_at"), t("updated_at"))
            })
            .collect();
        Self {
            data,
            opts,
            addr,
            by_id,
            times,
            listings: Mutex::new(HashMap::new()),
            cursors: Cursors::new(),
            requests: AtomicU64::new(0),
            auth_fails_after: AtomicU64::new(u64::MAX),
            throttle_every: AtomicU64::new(0),
            throttle_base: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            log: Mutex::new(VecDeque::new()),
            faults: FaultState::new(),
            records: Mutex::new(VecDeque::new()),
            paging_faults: Mutex::new(PagingFaults::default()),
        }
    }
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let n = s.requests.fetch_add(1, SeqCst) + 1;
    {
        let mut log = s.log.lock().expect("request log");
        if log.len() == LOG_CAPACITY {
            log.pop_front();
        }
        log.push_back(format!("{method} {uri}"));
    }
    let arrived = s.faults.started.elapsed();
    let latency = s.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let window = s.faults.window_check();
    let mut response = match s.faults.pick(n) {
        _ if window.as_ref().is_some_and(|w| !w.allowed) => {
            s.throttled.fetch_add(1, SeqCst);
            let retry_after = window.as_ref().map_or(1, |w| w.retry_after);
            let mut resp = ApiError::detail(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Request was throttled. Expected available in {retry_after} seconds."),
            )
            .into_response();
            resp.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
            resp
        }
        Fault::RateLimited => {
            s.throttled.fetch_add(1, SeqCst);
            ApiError::detail(StatusCode::TOO_MANY_REQUESTS, "Request was throttled. Expected available in 1 second.")
                .into_response()
        }
        Fault::ServerError(code) => {
            (StatusCode::from_u16(code).expect("valid"), "<html><body>upstream error</body></html>").into_response()
        }
        _ if s.chat_status(uri.path()).is_some() => {
            let status = StatusCode::from_u16(s.chat_status(uri.path()).unwrap_or(404)).expect("valid");
            ApiError::detail(
                status,
                if status == StatusCode::NOT_FOUND {
                    "Not found."
                } else {
                    "You do not have permission to perform this action."
                },
            )
            .into_response()
        }
        fault => match s.serve(n, &method, &uri, &headers) {
            Ok(body) if fault == Fault::Truncate => {
                let text = body.to_string();
                let cut = text.len() / 2;
                let cut = (0..=cut).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
                ([(header::CONTENT_TYPE, "application/json")], text[..cut].to_owned()).into_response()
            }
            Ok(body) if fault == Fault::Reset => {
                // Promise a longer body than we send, then fail the stream: the client sees the
                // connection end mid-body.
                let text = body.to_string();
                let half = text.as_bytes()[..text.len() / 2].to_vec();
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    vec![Ok(half), Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "cut"))];
                let mut resp = axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response();
                resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
                resp
            }
            Ok(body) => (StatusCode::OK, Json(body)).into_response(),
            Err(e) => {
                tracing::debug!(%uri, status = %e.status, "giosg simulator error response");
                e.into_response()
            }
        },
    };
    for (name, value) in window.map(|w| w.headers).unwrap_or_default() {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, value);
        }
    }
    let mut records = s.records.lock().expect("records");
    if records.len() == LOG_CAPACITY {
        records.pop_front();
    }
    records.push_back(RequestRecord {
        at: arrived,
        line: format!("{method} {uri}"),
        status: response.status().as_u16(),
    });
    response
}

/// An error answer: status + JSON body (+ the headers DRF sends with it).
struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    fn detail(status: StatusCode, detail: &str) -> Self {
        Self { status, body: json!({ "detail": detail }) }
    }

    fn not_found() -> Self {
        Self::detail(StatusCode::NOT_FOUND, "Not found.")
    }

    /// A DRF form-field validation error: `{"<param>": ["<message>"]}`.
    fn invalid_param(param: &str, message: String) -> Self {
        Self { status: StatusCode::BAD_REQUEST, body: json!({ param: [message] }) }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        let h = resp.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                h.insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Token"));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                h.insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            _ => {}
        }
        resp
    }
}

/// The endpoints under `/api/v5/orgs/{organization_id}/owned_chats`.
enum Route<'a> {
    Chats,
    Chat(&'a str),
    Messages(&'a str),
    Memberships(&'a str),
    Tags(&'a str),
    Variables(&'a str, &'a str),
}

/// Splits a path into (organization id, route); one trailing slash is tolerated.
fn route(path: &str) -> Option<(&str, Route<'_>)> {
    let path = path.strip_suffix('/').unwrap_or(path);
    let segs: Vec<&str> = path.split('/').collect();
    let ["", "api", "v5", "orgs", org, "owned_chats", rest @ ..] = segs.as_slice() else {
        return None;
    };
    if org.is_empty() || rest.contains(&"") {
        return None;
    }
    let route = match rest {
        [] => Route::Chats,
        [chat] => Route::Chat(chat),
        [chat, "messages"] => Route::Messages(chat),
        [chat, "memberships"] => Route::Memberships(chat),
        [chat, "tags"] => Route::Tags(chat),
        [chat, "visitors", visitor, "variables"] => Route::Variables(chat, visitor),
        _ => return None,
    };
    Some((org, route))
}

impl Shared {
    fn serve(&self, n: u64, method: &Method, uri: &Uri, headers: &HeaderMap) -> Result<Value, ApiError> {
        // Injected failures come first: a revoked token or a throttle hits any request.
        if n > self.auth_fails_after.load(SeqCst) {
            return Err(ApiError::detail(StatusCode::UNAUTHORIZED, "Invalid token."));
        }
        let every = self.throttle_every.load(SeqCst);
        let base = self.throttle_base.load(SeqCst);
        if every > 0 && n > base && (n - base).is_multiple_of(every) {
            self.throttled.fetch_add(1, SeqCst);
            return Err(ApiError::detail(
                StatusCode::TOO_MANY_REQUESTS,
                "Request was throttled. Expected available in 1 second.",
            ));
        }
        if method != Method::GET && method != Method::HEAD {
            return Err(ApiError::detail(StatusCode::METHOD_NOT_ALLOWED, &format!("Method \"{method}\" not allowed.")));
        }
        self.authenticate(headers)?;

        let (org, route) = route(uri.path()).ok_or_else(ApiError::not_found)?;
        if org != self.data.organization_id {
            return Err(ApiError::detail(StatusCode::FORBIDDEN, "You do not have permission to perform this action."));
        }
        let query = Query::parse(uri.query());
        // Absolute `next`/`previous` URLs are built from the Host the client used, like giosg's
        // (which sits behind a proxy and echoes its public host name).
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).map_or(self.addr.to_string(), str::to_owned);
        let page = Paging { query: &query, url_base: format!("http://{host}{}", uri.path()) };

        match route {
            Route::Chats => self.list_chats(&page),
            Route::Chat(_) if self.paging_faults.lock().expect("paging faults").no_single_chat => {
                Err(ApiError::not_found())
            }
            Route::Chat(id) => Ok(self.chat(id)?.chat.clone()),
            Route::Messages(id) => {
                let chat = self.chat(id)?;
                self.paginate(&format!("messages|{id}"), chat.messages.len(), &page, |r| {
                    chat.messages[r].iter().map(|m| m.json.clone()).collect()
                })
            }
            Route::Memberships(id) => {
                let items = &self.chat(id)?.memberships;
                self.paginate(&format!("memberships|{id}"), items.len(), &page, |r| items[r].to_vec())
            }
            Route::Tags(id) => {
                let items = &self.chat(id)?.tags;
                self.paginate(&format!("tags|{id}"), items.len(), &page, |r| items[r].to_vec())
            }
            Route::Variables(id, visitor) => {
                let chat = self.chat(id)?;
                if chat.visitor_id() != visitor {
                    return Err(ApiError::not_found());
                }
                let items = &chat.variables;
                self.paginate(&format!("variables|{id}"), items.len(), &page, |r| items[r].to_vec())
            }
        }
    }

    /// DRF `TokenAuthentication`: `Authorization: Token <key>`, keyword case-insensitive.
    fn authenticate(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
        match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("token") => {
                if token.trim() == self.data.token {
                    Ok(())
                } else {
                    Err(ApiError::detail(StatusCode::UNAUTHORIZED, "Invalid token."))
                }
            }
            _ => Err(ApiError::detail(StatusCode::UNAUTHORIZED, "Authentication credentials were not provided.")),
        }
    }

    fn chat(&self, id: &str) -> Result<&super::ChatTruth, ApiError> {
        self.by_id.get(id).map(|&i| &self.data.chats[i]).ok_or_else(ApiError::not_found)
    }

    fn list_chats(&self, page: &Paging<'_>) -> Result<Value, ApiError> {
        let filter = ChatFilter::parse(page.query)?;
        // The scope names the listing exactly; cursors are only valid within it.
        let scope = format!("owned_chats|{filter:?}");
        let listing = {
            let mut cache = self.listings.lock().expect("listing cache");
            cache.entry(scope.clone()).or_insert_with(|| Arc::new(self.select(&filter))).clone()
        };
        self.paginate(&scope, listing.len(), page, |r| {
            listing[r].iter().map(|&i| self.data.chats[i].chat.clone()).collect()
        })
    }

    /// Chat indices matching `f`, in its ordering; ties broken by id so the order is total.
    fn select(&self, f: &ChatFilter) -> Vec<usize> {
        let chats = &self.data.chats;
        let flag = |i: usize, field: &str, want: Option<bool>| want.is_none_or(|w| chats[i].chat[field] == w);
        let within = |t: DateTime<Utc>, gte: Option<DateTime<Utc>>, lte: Option<DateTime<Utc>>| {
            gte.is_none_or(|g| t >= g) && lte.is_none_or(|l| t <= l)
        };
        let mut out: Vec<usize> = (0..chats.len())
            .filter(|&i| {
                let (created, updated) = self.times[i];
                flag(i, "is_ended", f.is_ended)
                    && flag(i, "has_user_messages", f.has_user_messages)
                    && flag(i, "has_visitor_messages", f.has_visitor_messages)
                    && within(created, f.created_gte, f.created_lte)
                    && within(updated, f.updated_gte, f.updated_lte)
            })
            .collect();
        out.sort_by(|&a, &b| {
            f.ordering
                .iter()
                .map(|&(field, desc)| {
                    let (ta, tb) = match field {
                        SortField::CreatedAt => (self.times[a].0, self.times[b].0),
                        SortField::UpdatedAt => (self.times[a].1, self.times[b].1),
                    };
                    if desc { tb.cmp(&ta) } else { ta.cmp(&tb) }
                })
                .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
                .then_with(|| chats[a].id().cmp(chats[b].id()))
        });
        out
    }

    /// Serves one page of a listing of `total` items in the `{next, previous, results}`
    /// envelope; `items` renders a range of it.
    fn paginate(
        &self,
        scope: &str,
        total: usize,
        page: &Paging<'_>,
        items: impl FnOnce(Range<usize>) -> Vec<Value>,
    ) -> Result<Value, ApiError> {
        let offset = match page.query.get("cursor") {
            Some(c) => self
                .cursors
                .resolve(c, scope)
                .filter(|&o| o <= total)
                .ok_or_else(|| ApiError::detail(StatusCode::NOT_FOUND, "Invalid cursor"))?,
            None => 0,
        };
        let size = page
            .query
            .get("page_size")
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(self.opts.page_size_default)
            .min(self.opts.max_page_size)
            .max(1);
        let len = page_len(scope, offset, size, total - offset);
        let next = (offset + len < total).then(|| page.url(&self.cursors.issue(scope, offset + len)));
        // With irregular page sizes the previous page's start isn't recorded anywhere; pointing
        // one page size back gives a valid (if differently cut) previous page.
        let previous = (offset > 0).then(|| page.url(&self.cursors.issue(scope, offset.saturating_sub(size))));
        let faults = self.paging_faults.lock().expect("paging faults").clone();
        let next = match faults.next_self {
            Some(p) if scope.starts_with(&p) && offset > 0 => Some(page.url(&self.cursors.issue(scope, offset))),
            _ => next,
        };
        let mut body = json!({ "next": next, "previous": previous, "results": items(offset..offset + len) });
        if let Some((p, bytes)) = faults.oversize
            && scope.starts_with(&p)
        {
            body["padding"] = json!("x".repeat(bytes));
        }
        Ok(body)
    }
}

/// The request's query string and the base of the URLs to link other pages with.
struct Paging<'a> {
    query: &'a Query,
    url_base: String,
}

impl Paging<'_> {
    /// The URL of another page: the cursor first (as in giosg's examples), then the request's
    /// own parameters verbatim, minus its cursor.
    fn url(&self, cursor: &str) -> String {
        let mut url = format!("{}?cursor={cursor}", self.url_base);
        for (key, _, raw) in &self.query.pairs {
            if key != "cursor" {
                url.push('&');
                url.push_str(raw);
            }
        }
        url
    }
}

/// A parsed query string: (decoded key, decoded value, raw `key=value` text) per pair.
struct Query {
    pairs: Vec<(String, String, String)>,
}

impl Query {
    fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v), p.to_owned())
            })
            .collect();
        Self { pairs }
    }

    /// The last value of `key` (Django's `QueryDict.get` semantics).
    fn get(&self, key: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _, _)| k == key).map(|(_, v, _)| v.as_str())
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex_digit(b[i + 1]), hex_digit(b[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[derive(Clone, Copy, Debug)]
enum SortField {
    CreatedAt,
    UpdatedAt,
}

/// The `owned_chats` query parameters that select and order chats. Its `Debug` form is the
/// canonical listing scope.
#[derive(Debug)]
struct ChatFilter {
    ordering: Vec<(SortField, bool)>,
    is_ended: Option<bool>,
    has_user_messages: Option<bool>,
    has_visitor_messages: Option<bool>,
    created_gte: Option<DateTime<Utc>>,
    created_lte: Option<DateTime<Utc>>,
    updated_gte: Option<DateTime<Utc>>,
    updated_lte: Option<DateTime<Utc>>,
}

impl ChatFilter {
    fn parse(q: &Query) -> Result<Self, ApiError> {
        let boolean = |name: &str| -> Result<Option<bool>, ApiError> {
            match q.get(name) {
                None | Some("") => Ok(None),
                Some("true" | "True" | "1") => Ok(Some(true)),
                Some("false" | "False" | "0") => Ok(Some(false)),
                Some(v) => Err(ApiError::invalid_param(
                    name,
                    format!("Select a valid choice. {v} is not one of the available choices."),
                )),
            }
        };
        // Time-range filters are an assumption (giosg.md §2.1): supported, never required.
        let time = |name: &str| -> Result<Option<DateTime<Utc>>, ApiError> {
            match q.get(name) {
                None | Some("") => Ok(None),
                Some(v) => parse_timestamp(v)
                    .map(Some)
                    .ok_or_else(|| ApiError::invalid_param(name, "Enter a valid date/time.".to_owned())),
            }
        };
        Ok(Self {
            ordering: parse_ordering(q.get("ordering").unwrap_or(""))?,
            is_ended: boolean("is_ended")?,
            has_user_messages: boolean("has_user_messages")?,
            has_visitor_messages: boolean("has_visitor_messages")?,
            created_gte: time("created_at__gte")?,
            created_lte: time("created_at__lte")?,
            updated_gte: time("updated_at__gte")?,
            updated_lte: time("updated_at__lte")?,
        })
    }
}

/// `ordering=<field>[,<field>]` with `-` for descending; default `-created_at` (newest first).
///
/// Unknown fields are rejected with 400 rather than ignored as DRF would, so a client sending
/// an ordering giosg may not support fails loudly in tests instead of silently getting another
/// order.
fn parse_ordering(s: &str) -> Result<Vec<(SortField, bool)>, ApiError> {
    let s = if s.trim().is_empty() { "-created_at" } else { s };
    s.split(',')
        .map(|item| {
            let item = item.trim();
            let (name, desc) = item.strip_prefix('-').map_or((item, false), |n| (n, true));
            match name {
                "created_at" => Ok((SortField::CreatedAt, desc)),
                "updated_at" => Ok((SortField::UpdatedAt, desc)),
                _ => Err(ApiError::detail(
                    StatusCode::BAD_REQUEST,
                    &format!("Invalid ordering \"{item}\": use created_at, -created_at, updated_at or -updated_at."),
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let org = "ff6e7834-9d89-11e9-a62f-0242ac110003";
        let p = |s: &str| {
            let path = format!("/api/v5/orgs/{org}/owned_chats{s}");
            route(&path).map(|(o, r)| {
                assert_eq!(o, org);
                match r {
                    Route::Chats => "chats".to_owned(),
                    Route::Chat(c) => format!("chat {c}"),
                    Route::Messages(c) => format!("messages {c}"),
                    Route::Memberships(c) => format!("memberships {c}"),
                    Route::Tags(c) => format!("tags {c}"),
                    Route::Variables(c, v) => format!("variables {c} {v}"),
                }
            })
        };
        assert_eq!(p("").as_deref(), Some("chats"));
        assert_eq!(p("/").as_deref(), Some("chats"));
        assert_eq!(p("/abc").as_deref(), Some("chat abc"));
        assert_eq!(p("/abc/messages/").as_deref(), Some("messages abc"));
        assert_eq!(p("/abc/visitors/v1/variables").as_deref(), Some("variables abc v1"));
        assert_eq!(p("/abc/memberships").as_deref(), Some("memberships abc"));
        assert_eq!(p("/abc/tags").as_deref(), Some("tags abc"));
        assert_eq!(p("/abc/nope"), None);
        assert_eq!(p("//"), None);
        assert!(route("/api/v5/orgs").is_none());
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a+b%2Cc%3"), "a b,c%3");
        assert_eq!(percent_decode("2026-01-05T07%3A00%3A00Z"), "2026-01-05T07:00:00Z");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("%4"), "%4");
        assert_eq!(percent_decode("%41"), "A");
    }
}
