//! The shared HTTP client against a local server that misbehaves on purpose.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use pipe_plugin_sdk::http::{HttpClient, HttpSettings};
use pipe_plugin_sdk::paging::Paging;
use pipe_plugin_sdk::{Metrics, PluginError};
use serde_json::{Value, json};

/// Answers each request with the next scripted response (then 200 `{"ok": true}`), counting
/// requests and the most requests in flight at once.
#[derive(Default)]
struct Script {
    steps: std::sync::Mutex<Vec<Response>>,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

async fn scripted(State(s): State<Arc<Script>>) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    s.max_in_flight.fetch_max(now, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    s.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut steps = s.steps.lock().unwrap();
    if steps.is_empty() { Json(json!({"ok": true})).into_response() } else { steps.remove(0) }
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    url
}

async fn script(steps: Vec<Response>) -> (String, Arc<Script>) {
    let s = Arc::new(Script { steps: std::sync::Mutex::new(steps), ..Default::default() });
    let url = serve(Router::new().route("/x", get(scripted)).with_state(s.clone())).await;
    (format!("{url}/x"), s)
}

fn settings() -> HttpSettings {
    HttpSettings {
        initial_backoff: Duration::from_millis(10),
        min_retry_after: Duration::from_millis(300),
        ..HttpSettings::new("acme")
    }
}

fn client(s: HttpSettings) -> (HttpClient, Arc<Metrics>) {
    let m = Arc::new(Metrics::default());
    (HttpClient::new(s, HeaderMap::new(), m.clone()).unwrap(), m)
}

fn status(code: u16, headers: &[(&'static str, &'static str)], body: &'static str) -> Response {
    let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
    for (k, v) in headers {
        r.headers_mut().insert(*k, v.parse().unwrap());
    }
    r
}

#[tokio::test]
async fn retries_5xx_429_and_truncated_bodies_then_succeeds() {
    let (url, s) =
        script(vec![status(503, &[], ""), status(429, &[("retry-after", "0")], ""), status(200, &[], "{\"ok\": tr")])
            .await;
    let (c, m) = client(settings());
    let started = Instant::now();
    assert_eq!(c.get_json(&url).await.unwrap(), json!({"ok": true}));
    assert_eq!(s.requests.load(Ordering::SeqCst), 4);
    assert_eq!(Metrics::get(&m.retries), 3);
    assert!(started.elapsed() >= Duration::from_millis(300), "Retry-After: 0 still waits the floor");
}

#[tokio::test]
async fn retry_after_seconds_are_honoured() {
    let (url, _) = script(vec![status(429, &[("retry-after", "1")], "")]).await;
    let (c, _) = client(settings());
    let started = Instant::now();
    c.get_json(&url).await.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn auth_failures_stop_at_once_without_the_secret() {
    let (url, s) = script(vec![status(401, &[], "{\"detail\": \"bad token\"}")]).await;
    let (c, _) = client(settings());
    let c = c.redact("x");
    let err = c.get_json(&url).await.unwrap_err();
    assert!(matches!(err, PluginError::Auth { status: 401, .. }), "{err}");
    assert!(err.to_string().contains("acme") && err.to_string().contains("401"));
    assert_eq!(s.requests.load(Ordering::SeqCst), 1, "no retry on 401");
}

#[tokio::test]
async fn retry_budget_is_shared_by_the_whole_run() {
    let steps = (0..20).map(|_| status(503, &[], "")).collect();
    let (url, s) = script(steps).await;
    let (c, _) = client(HttpSettings { retry_budget: 3, ..settings() });
    let err = c.get_json(&url).await.unwrap_err();
    assert!(matches!(err, PluginError::RetryBudgetExhausted { .. }), "{err}");
    assert_eq!(s.requests.load(Ordering::SeqCst), 4, "one try and three retries");
    // A clone shares the spent budget: the next failure ends at once.
    let err = c.clone().get_json(&url).await.unwrap_err();
    assert!(matches!(err, PluginError::RetryBudgetExhausted { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_caps_requests_in_flight() {
    let (url, s) = script(Vec::new()).await;
    let (c, _) = client(HttpSettings { concurrency: 3, ..settings() });
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get_json(&url).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(s.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn requests_per_second_is_a_shared_token_bucket() {
    let (url, s) = script(Vec::new()).await;
    let (c, _) = client(HttpSettings { requests_per_second: Some(10.0), concurrency: 16, ..settings() });
    let started = Instant::now();
    let calls: Vec<_> = (0..20)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get_json(&url).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(s.requests.load(Ordering::SeqCst), 20);
    // A burst of 10, then 10 more at 10/s: at least ~0.9 s.
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adaptive_concurrency_grows_from_two_but_never_past_max_concurrency() {
    let (url, s) = script(Vec::new()).await;
    let (c, m) = client(HttpSettings { max_concurrency: Some(6), ..settings() });
    let calls: Vec<_> = (0..120)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get_json(&url).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let most = s.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 6, "{most} in flight, max_concurrency 6");
    assert!(most > 2, "the limit grew from 2 on a flat server: {most}");
    assert_eq!(Metrics::get(&m.concurrency_adaptive), 1);
    assert!((1..=6).contains(&Metrics::get(&m.concurrency)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_stays_a_hard_ceiling_with_adaptive_concurrency() {
    let (url, s) = script(Vec::new()).await;
    let (c, _) = client(HttpSettings { requests_per_second: Some(20.0), max_concurrency: Some(64), ..settings() });
    let started = Instant::now();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move { c.get_json(&url).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(s.requests.load(Ordering::SeqCst), 50);
    // A burst of 20, then 30 more at 20/s: at least ~1.5 s, however far concurrency grew.
    assert!(started.elapsed() >= Duration::from_millis(1400), "{:?}", started.elapsed());
}

/// Counts requests per fixed one-second window (aligned to the Unix epoch), answers 429 past
/// `limit`, and states the quota on every answer in `RateLimit-*` headers.
#[derive(Default)]
struct Quota {
    limit: u64,
    window: std::sync::Mutex<(u64, u64)>,
    ok: AtomicU64,
    throttled: AtomicU64,
}

async fn quota_stating(State(q): State<Arc<Quota>>) -> Response {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let (count, reset) = {
        let mut w = q.window.lock().unwrap();
        if w.0 != now.as_secs() {
            *w = (now.as_secs(), 0);
        }
        w.1 += 1;
        (w.1, 1)
    };
    let remaining = q.limit.saturating_sub(count).to_string();
    let mut r = if count > q.limit {
        q.throttled.fetch_add(1, Ordering::SeqCst);
        status(429, &[("retry-after", "1")], "")
    } else {
        q.ok.fetch_add(1, Ordering::SeqCst);
        Json(json!({"ok": true})).into_response()
    };
    let h = r.headers_mut();
    h.insert("ratelimit-limit", q.limit.to_string().parse().unwrap());
    h.insert("ratelimit-remaining", remaining.parse().unwrap());
    h.insert("ratelimit-reset", reset.to_string().parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_stated_in_headers_is_kept_without_429() {
    let q = Arc::new(Quota { limit: 25, ..Default::default() });
    let base = serve(Router::new().route("/q", get(quota_stating)).with_state(q.clone())).await;
    let (c, m) = client(HttpSettings { max_concurrency: Some(64), ..settings() });
    let calls: Vec<_> = (0..90)
        .map(|_| {
            let (c, url) = (c.clone(), format!("{base}/q"));
            tokio::spawn(async move { c.get_json(&url).await.unwrap() })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    assert_eq!(q.throttled.load(Ordering::SeqCst), 0, "paced to the stated quota");
    assert_eq!((q.ok.load(Ordering::SeqCst), Metrics::get(&m.throttled_responses)), (90, 0));
}

#[tokio::test]
async fn paging_shapes() {
    async fn cursor_pages(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Json<Value> {
        let q = q.unwrap_or_default();
        Json(match q.as_str() {
            "cursor=c1" => json!({"conversations": [3, 4], "cursor": "c2"}),
            "cursor=c2" => json!({"conversations": [5], "cursor": null}),
            _ => json!({"conversations": [1, 2], "cursor": "c1"}),
        })
    }
    async fn numbered(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Json<Value> {
        let page: u64 = q.unwrap_or_default().trim_start_matches("pageNo=").parse().unwrap();
        let items: Vec<u64> = (0..2).map(|i| page * 10 + i).filter(|x| *x < 31).collect();
        Json(json!({"chats": items, "totalCount": 5}))
    }
    async fn relay(Json(body): Json<Value>) -> Json<Value> {
        let after = body["variables"]["after"].as_str().map(str::to_string);
        Json(match after.as_deref() {
            None => {
                json!({"data": {"chats": {"edges": [{"node": 1}, {"node": 2}], "pageInfo": {"hasNextPage": true, "endCursor": "e2"}}}})
            }
            _ => {
                json!({"data": {"chats": {"edges": [{"node": 3}], "pageInfo": {"hasNextPage": false, "endCursor": "e3"}}}})
            }
        })
    }
    let base =
        serve(Router::new().route("/c", get(cursor_pages)).route("/n", get(numbered)).route("/g", post(relay))).await;
    let (c, _) = client(settings());
    let items = c
        .all_items(format!("{base}/c"), Paging::Cursor { items: "/conversations", cursor: "/cursor", param: "cursor" })
        .await
        .unwrap();
    assert_eq!(items, vec![json!(1), json!(2), json!(3), json!(4), json!(5)]);
    let items = c
        .all_items(
            format!("{base}/n"),
            Paging::PageNumber { items: "/chats", total: "/totalCount", param: "pageNo", first: 1 },
        )
        .await
        .unwrap();
    assert_eq!(items, vec![json!(10), json!(11), json!(20), json!(21), json!(30)], "stops at totalCount");
    let nodes = c
        .relay_all(&format!("{base}/g"), "/data/chats", |after| json!({"query": "q", "variables": {"after": after}}))
        .await
        .unwrap();
    assert_eq!(nodes, vec![json!(1), json!(2), json!(3)]);
}

/// The kind and message of a [`PluginError::ListingCut`].
fn cut(err: PluginError) -> (&'static str, String) {
    match err {
        PluginError::ListingCut { reason, message, .. } => (reason, message),
        other => panic!("expected a cut listing, got {other}"),
    }
}

#[tokio::test]
async fn a_body_over_max_response_bytes_is_not_read_and_not_retried() {
    // One answer states its length, the other streams without one (chunked).
    let big = "x".repeat(10_000);
    let stated = format!("{{\"pad\": \"{big}\"}}");
    let chunks: Vec<Result<String, std::io::Error>> = (0..100).map(|_| Ok(format!("{big} "))).collect();
    let streamed = axum::body::Body::from_stream(futures::stream::iter(chunks)).into_response();
    let (url, s) = script(vec![(StatusCode::OK, stated).into_response(), streamed]).await;
    let (c, m) = client(HttpSettings { max_response_bytes: 4096, ..settings() });
    for _ in 0..2 {
        let (reason, message) = cut(c.get_json(&url).await.unwrap_err());
        assert_eq!(reason, pipe_plugin_sdk::REASON_RESPONSE_TOO_LARGE);
        assert!(message.contains("/x") && message.contains("max_response_bytes (4096 bytes)"), "{message}");
    }
    assert_eq!((s.requests.load(Ordering::SeqCst), Metrics::get(&m.retries)), (2, 0), "no retries");
    // A body within the cap is read as before.
    assert_eq!(c.get_json(&url).await.unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn looping_listings_end_after_their_good_pages() {
    use futures::StreamExt;
    // giosg: page 2's `next` points at page 2 itself.
    async fn next_self(
        axum::extract::RawQuery(q): axum::extract::RawQuery,
        headers: axum::http::HeaderMap,
    ) -> Json<Value> {
        let host = headers["host"].to_str().unwrap().to_string();
        Json(match q.as_deref() {
            Some("p=2") => json!({"results": [3], "next": format!("http://{host}/u?p=2")}),
            _ => json!({"results": [1, 2], "next": format!("http://{host}/u?p=2")}),
        })
    }
    // Alli REST: the cursor comes back the same.
    async fn same_cursor(axum::extract::RawQuery(q): axum::extract::RawQuery) -> Json<Value> {
        Json(match q.as_deref() {
            Some("cursor=c1") => json!({"conversations": [3], "cursor": "c1"}),
            _ => json!({"conversations": [1, 2], "cursor": "c1"}),
        })
    }
    // A server ignoring the page number.
    async fn same_page() -> Json<Value> {
        Json(json!({"chats": [1, 2], "totalCount": 9}))
    }
    // GraphQL: endCursor never moves on.
    async fn relay_stuck(Json(body): Json<Value>) -> Json<Value> {
        let first = body["variables"]["after"].is_null();
        let node = if first { 1 } else { 2 };
        Json(json!({"data": {"c": {"edges": [{"node": node}], "pageInfo": {"hasNextPage": true, "endCursor": "e"}}}}))
    }
    let base = serve(
        Router::new()
            .route("/u", get(next_self))
            .route("/c", get(same_cursor))
            .route("/n", get(same_page))
            .route("/g", post(relay_stuck)),
    )
    .await;
    let (c, _) = client(settings());
    let shapes = [
        ("/u", Paging::NextUrl { items: "/results", next: "/next" }, vec![vec![json!(1), json!(2)], vec![json!(3)]]),
        (
            "/c",
            Paging::Cursor { items: "/conversations", cursor: "/cursor", param: "cursor" },
            vec![vec![json!(1), json!(2)], vec![json!(3)]],
        ),
        (
            "/n",
            Paging::PageNumber { items: "/chats", total: "/totalCount", param: "pageNo", first: 1 },
            vec![vec![json!(1), json!(2)]],
        ),
    ];
    for (path, paging, good) in shapes {
        let pages: Vec<_> =
            tokio::time::timeout(Duration::from_secs(10), c.pages(format!("{base}{path}"), paging).collect())
                .await
                .expect("the listing ends");
        let (ok, rest): (Vec<_>, Vec<_>) = pages.into_iter().partition(|p| p.is_ok());
        assert_eq!(ok.into_iter().map(Result::unwrap).collect::<Vec<_>>(), good, "{path}");
        assert_eq!(rest.len(), 1, "{path}: one error ends the stream");
        let (reason, message) = cut(rest.into_iter().next().unwrap().unwrap_err());
        assert_eq!(reason, pipe_plugin_sdk::REASON_PAGING_LOOP);
        assert!(message.contains(path) && !message.contains("127.0.0.1"), "{path}: {message}");
    }
    let err = c.relay_all(&format!("{base}/g"), "/data/c", |after| json!({"variables": {"after": after}})).await;
    let (reason, message) = cut(err.unwrap_err());
    assert_eq!(reason, pipe_plugin_sdk::REASON_PAGING_LOOP);
    assert!(message.contains("endCursor"), "{message}");
}
