//! The Chat API over HTTP: `GET /chatapi/{token}/client/{clientId}/history`, with the token
//! redacted from every message the HTTP layer produces.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::PageGuard;
use pipe_plugin_sdk::time::Zone;
use pipe_plugin_sdk::{Metrics, PluginError, REASON_INCOMPLETE, Result};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::AimylogicConfig;
use crate::mapping::{history_items, item_time};

/// A client for one Chat API channel.
#[derive(Clone)]
pub struct ChatApiClient {
    http: HttpClient,
    /// `{base_url}/chatapi/{token}` (the token percent-encoded).
    root: String,
    page_size: u32,
    from: Option<String>,
    to: Option<String>,
    /// The zone of zone-less item times (paging by time compares them).
    zone: Zone,
    /// How the server was seen to page, shared by every client of the run.
    seen: Arc<PagingSeen>,
}

/// What the run has learned about the history endpoint's paging.
#[derive(Debug, Default)]
struct PagingSeen {
    /// A page of exactly `page_size` items arrived: the server honours `limit`, so a shorter
    /// page is the last.
    full_pages: AtomicBool,
    /// The largest page shorter than asked that was followed by more items: the server's cap
    /// (0: none seen).
    cap: AtomicU32,
}

/// One client's history, or why there is none.
#[derive(Debug)]
pub enum History {
    /// Every item, in the order the pages returned them.
    Items(Vec<Value>),
    /// HTTP 404: the channel does not know this client.
    UnknownClient,
    /// A body with none of the known shapes (kept, scrubbed, for the dead letter).
    Unrecognized(Value),
}

/// Percent-encodes one path segment (client ids may hold spaces, `/`, `:`, Cyrillic).
pub fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20")
}

impl ChatApiClient {
    /// Errors: [`PluginError::Config`] for a `base_url` that is not http(s), an unreadable
    /// `ca_file`, a bad `requests_per_second` or an unknown `timezone`.
    pub fn new(cfg: &AimylogicConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let token = cfg.token.expose();
        let encoded = encode_segment(token);
        // Both spellings can show up in a URL an error quotes.
        let http = HttpClient::new(cfg.http.settings(), headers, metrics)?.redact(token).redact(encoded.clone());
        let base = cfg.http.base_url()?;
        Ok(ChatApiClient {
            http,
            root: format!("{base}/chatapi/{encoded}"),
            page_size: cfg.page_size.max(1),
            from: cfg.from.clone(),
            to: cfg.to.clone(),
            zone: cfg.zone()?,
            seen: Arc::default(),
        })
    }

    /// `text` without the token (for log lines and errors built outside the HTTP layer).
    pub fn scrub(&self, text: &str) -> String {
        self.http.scrub(text)
    }

    /// The history URL: `limit` = `page_size`, `offset`, and `from`/`to` as configured;
    /// `from` replaced by `window_from` (a vendor `timestamp` as sent) when paging by time.
    fn history_url(&self, client_id: &str, offset: usize, window_from: Option<&str>) -> String {
        let mut url = format!(
            "{}/client/{}/history?limit={}&offset={offset}",
            self.root,
            encode_segment(client_id),
            self.page_size
        );
        let from = window_from.map(str::to_string).or_else(|| self.from.clone());
        for (k, v) in [("from", &from), ("to", &self.to)] {
            if let Some(v) = v {
                url.push_str(&format!("&{k}={}", encode_segment(v)));
            }
        }
        url
    }

    /// One page of `client_id`'s history: its items, and the total the body states if any.
    /// `Ok(Err(history))` when the answer is no page (404 on a first request, or a body of
    /// another shape).
    async fn page(
        &self,
        client_id: &str,
        offset: usize,
        window_from: Option<&str>,
        first: bool,
    ) -> Result<std::result::Result<(Vec<Value>, Option<usize>), History>> {
        let body = match self.http.get_json(&self.history_url(client_id, offset, window_from)).await {
            Ok(b) => b,
            Err(PluginError::NotFound { .. }) if first => return Ok(Err(History::UnknownClient)),
            Err(e) => return Err(e),
        };
        let Some(items) = history_items(&body) else { return Ok(Err(History::Unrecognized(body))) };
        Ok(Ok((items, stated_total(&body))))
    }

    /// Every history item of `client_id`. Paging adapts to how the server answers
    /// (docs/vendors/aimylogic.md §2.5 assumes `limit`/`offset`; neither is documented):
    ///
    /// * `offset` advances by the items that **arrived**, not by `page_size`, so a server that
    ///   caps its pages below `limit` still gives everything;
    /// * the listing ends at an empty page, when a stated total (`total`, `totalCount`,
    ///   `count`) is reached, or at a page shorter than asked once the server is known to
    ///   fill pages of `page_size` (or its learned cap). Until then a short (or over-long)
    ///   page is followed by one more request at the next offset: empty means it was the last,
    ///   more items mean the server caps its pages (the cap is learned for the other clients
    ///   and logged once);
    /// * a page at an offset past 0 that starts with the first page's first item means the
    ///   server **ignores `offset`**: the history is then paged by time, each request's `from`
    ///   being the latest `timestamp` read so far (sent as the vendor wrote it), items read
    ///   twice (the same instant) dropped, until a request brings nothing new.
    ///
    /// Errors: [`PluginError::Auth`] on 401/403 (bad token), [`PluginError::NotFound`] on a
    /// 404/410 past the first page, [`PluginError::Http`] on other 4xx or after the retries,
    /// [`PluginError::RetryBudgetExhausted`]; [`PluginError::ListingCut`] with reason
    /// `incomplete` when the server ignores `offset` and paging by time cannot get everything
    /// either (it ignores `from` too and its one page is exactly as long as asked, answers out of time
    /// order, or more items share one instant than a page holds), or with `paging_loop`/`response_too_large` (a position
    /// asked twice, a body over `max_response_bytes`). The client is then not exported and its
    /// watermark stays. Messages never hold the token.
    pub async fn history(&self, client_id: &str) -> Result<History> {
        let mut items: Vec<Value> = Vec::new();
        let mut guard = PageGuard::new(crate::VENDOR, format!("the history of client `{client_id}`"));
        let page_size = self.page_size as usize;
        // The length of the last page when it was shorter than asked (its successor decides).
        let mut short: Option<usize> = None;
        loop {
            let offset = items.len();
            guard.position("offset", &offset.to_string())?;
            let (page, total) = match self.page(client_id, offset, None, offset == 0).await? {
                Ok(p) => p,
                Err(other) if offset == 0 => return Ok(other),
                Err(History::Unrecognized(body)) => return Ok(History::Unrecognized(body)),
                Err(_) => return Err(self.cut(client_id, "a later page answered 404")),
            };
            if offset > 0 && !page.is_empty() && page.first() == items.first() {
                tracing::info!(
                    vendor = crate::VENDOR,
                    "the history of client `{client_id}` answers offset {offset} with its first page again: the server ignores `offset`; paging by time (`from`)"
                );
                return self.by_time(client_id, items, guard).await.map(History::Items);
            }
            guard.page(&page)?;
            let n = page.len();
            if let (Some(prev), true) = (short, n > 0) {
                self.learn_cap(prev);
            }
            items.extend(page);
            if n == 0 || total.is_some_and(|t| items.len() >= t) {
                break;
            }
            if total.is_some() || n == page_size {
                if n == page_size {
                    self.seen.full_pages.store(true, Ordering::Relaxed);
                }
                short = None;
                continue;
            }
            let cap = self.seen.cap.load(Ordering::Relaxed) as usize;
            let known_last = n < page_size && (self.seen.full_pages.load(Ordering::Relaxed) || (cap > 0 && n < cap));
            if known_last {
                break;
            }
            // A page of another length than asked, from a server not known yet: ask once more.
            short = (n < page_size).then_some(n);
        }
        Ok(History::Items(items))
    }

    /// Pages `client_id`'s history by time after the server was seen to ignore `offset`
    /// (see [`ChatApiClient::history`]); `items` is the first page.
    ///
    /// A request whose page holds nothing new (every item at the instant paged from, already
    /// read) ends the listing, unless the page is as long as the server's pages get: then more
    /// items may share that instant, and one more request from the next millisecond decides
    /// (nothing there: the end; more: items at that instant may be lost, so `incomplete`).
    async fn by_time(&self, client_id: &str, mut items: Vec<Value>, mut guard: PageGuard) -> Result<Vec<Value>> {
        let time = |item: &Value| item_time(item, self.zone).ok();
        let mut seen: HashSet<String> = items.iter().map(Value::to_string).collect();
        let mut longest = items.len();
        // A server that ignores `from` as well sends the same page whatever is asked. Shorter
        // than `page_size` (and than a cap seen elsewhere), or longer (`limit` ignored too),
        // that page is all it has; exactly `page_size` long, more may be behind it.
        let first_len = items.len();
        let cap = self.seen.cap.load(Ordering::Relaxed) as usize;
        let whole_if_unpaged = first_len != self.page_size as usize && (cap == 0 || first_len < cap);
        loop {
            let Some(last) = items.last() else { return Ok(items) };
            let Some(last_t) = time(last) else {
                return Err(
                    self.cut(client_id, "it ignores `offset` and its last item has no readable `timestamp` to page on")
                );
            };
            let window_from = match last.get("timestamp") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Number(n)) => n.to_string(),
                _ => {
                    return Err(
                        self.cut(client_id, "it ignores `offset` and its last item has no `timestamp` to page on")
                    );
                }
            };
            if !is_in_time_order(&items, time) {
                return Err(self.cut(
                    client_id,
                    "it ignores `offset` and its items are not in time order, so `from` cannot page it",
                ));
            }
            let Some(page) = self.window(client_id, &window_from, last_t, items.len(), &mut guard).await? else {
                return self.unpaged(client_id, items, first_len, whole_if_unpaged, &window_from);
            };
            let full = page.len() >= longest;
            longest = longest.max(page.len());
            let fresh: Vec<Value> = page.iter().filter(|i| seen.insert(i.to_string())).cloned().collect();
            if !fresh.is_empty() {
                items.extend(fresh);
                continue;
            }
            if !full {
                return Ok(items);
            }
            // As many items as a page holds, all at `last_t`: ask from the next millisecond.
            let next_us = last_t.div_euclid(1000) * 1000 + 1000;
            let after = match last.get("timestamp") {
                Some(Value::Number(_)) => (next_us / 1000).to_string(),
                _ => self
                    .zone
                    .wall_clock(next_us)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string())
                    .unwrap_or_default(),
            };
            let beyond = self.window(client_id, &after, next_us, items.len(), &mut guard).await?;
            let Some(beyond) = beyond else {
                return self.unpaged(client_id, items, first_len, whole_if_unpaged, &after);
            };
            if beyond.iter().all(|i| seen.contains(&i.to_string())) {
                return Ok(items);
            }
            return Err(self.cut(
                client_id,
                format!(
                    "it ignores `offset`, and a whole page of items shares the instant {window_from}: more may share it than a page holds"
                ),
            ));
        }
    }

    /// The end of [`ChatApiClient::by_time`] when the server ignores `from` too: `items` when
    /// they are still its first page and that page is all it has (`whole`), else `incomplete`.
    fn unpaged(
        &self,
        client_id: &str,
        items: Vec<Value>,
        first_len: usize,
        whole: bool,
        window_from: &str,
    ) -> Result<Vec<Value>> {
        if whole && items.len() == first_len {
            tracing::debug!(
                vendor = crate::VENDOR,
                "the history of client `{client_id}` ignores `offset` and `from`: its one page of {first_len} item(s), not as many as asked, is all of it"
            );
            return Ok(items);
        }
        Err(self.cut(
            client_id,
            format!("it ignores `offset`, and items before `from={window_from}` came back: it ignores `from` too"),
        ))
    }

    /// One page of the history from `window_from` (a vendor time, read as `from_us`), with
    /// `read` items read so far.
    ///
    /// `None` when the page holds items before `from`: the server ignores `from` too.
    ///
    /// Errors: as [`ChatApiClient::history`]; `incomplete` when the answer is not a page.
    async fn window(
        &self,
        client_id: &str,
        window_from: &str,
        from_us: i64,
        read: usize,
        guard: &mut PageGuard,
    ) -> Result<Option<Vec<Value>>> {
        // The same `from` may come twice when new items share the instant paged from; with as
        // many items read as before, it is a loop.
        guard.position("from", &format!("{window_from} after {read} items"))?;
        let page = match self.page(client_id, 0, Some(window_from), false).await? {
            Ok((page, _)) => page,
            Err(_) => return Err(self.cut(client_id, "a request by `from` answered no history")),
        };
        if page.iter().any(|i| item_time(i, self.zone).ok().is_some_and(|t| t < from_us)) {
            return Ok(None);
        }
        Ok(Some(page))
    }

    /// Records that the server returned a page of `n` items (fewer than asked) that was not its
    /// last: its page cap, logged the first time it is learned.
    fn learn_cap(&self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if self.seen.cap.fetch_max(n, Ordering::Relaxed) < n {
            tracing::info!(
                vendor = crate::VENDOR,
                "the history endpoint returns at most {n} items per page although limit={} was asked: paging by what arrives",
                self.page_size
            );
        }
    }

    /// The `incomplete` listing cut of `client_id`'s history, saying `why`.
    fn cut(&self, client_id: &str, why: impl std::fmt::Display) -> PluginError {
        PluginError::ListingCut {
            vendor: crate::VENDOR.into(),
            reason: REASON_INCOMPLETE,
            message: self.scrub(&format!("the history of client `{client_id}` cannot be read whole: {why}")),
        }
    }
}

/// The item count a history body states (`total`, `totalCount` or `count`), if any.
fn stated_total(body: &Value) -> Option<usize> {
    ["total", "totalCount", "count"].iter().find_map(|k| body.get(*k).and_then(Value::as_u64)).map(|t| t as usize)
}

/// True when the items' times never go backwards (items without a readable time are skipped).
fn is_in_time_order(items: &[Value], time: impl Fn(&Value) -> Option<i64>) -> bool {
    let times: Vec<i64> = items.iter().filter_map(time).collect();
    times.windows(2).all(|w| w[0] <= w[1])
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::Json;
    use axum::extract::{Query, State};
    use axum::routing::get;
    use serde_json::json;

    use super::*;

    /// A history server with the paging faults of docs/vendors/aimylogic.md §2.5's open
    /// question: a page cap, `offset` (and `from`) ignored, a stated total.
    #[derive(Default)]
    struct Fake {
        items: Vec<Value>,
        cap: Option<usize>,
        ignore_offset: bool,
        ignore_from: bool,
        total: bool,
        asked: Mutex<Vec<String>>,
    }

    #[derive(serde::Deserialize)]
    struct Q {
        limit: usize,
        offset: usize,
        from: Option<String>,
    }

    async fn serve(fake: Fake) -> (String, Arc<Fake>) {
        async fn history(State(f): State<Arc<Fake>>, Query(q): Query<Q>) -> Json<Value> {
            f.asked.lock().unwrap().push(format!("offset={} from={}", q.offset, q.from.as_deref().unwrap_or("-")));
            let from =
                q.from.filter(|_| !f.ignore_from).and_then(|s| pipe_plugin_sdk::time::parse_timestamp_micros(&s));
            let page: Vec<Value> = f
                .items
                .iter()
                .filter(|i| from.is_none_or(|t| item_time(i, Zone::UTC).unwrap() >= t))
                .skip(if f.ignore_offset { 0 } else { q.offset })
                .take(q.limit.min(f.cap.unwrap_or(usize::MAX)))
                .cloned()
                .collect();
            let mut body = json!({"clientId": "c", "messages": page});
            if f.total {
                body["total"] = json!(f.items.len());
            }
            Json(body)
        }
        let fake = Arc::new(fake);
        let app = axum::Router::new()
            .route("/chatapi/{token}/client/{client}/history", get(history))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), fake)
    }

    /// `n` items a minute apart, the 5th and 6th at the same instant.
    fn items(n: usize) -> Vec<Value> {
        (0..n)
            .map(|i| {
                let minute = if i == 5 { 4 } else { i };
                json!({"questionId": format!("q{i}"), "timestamp": format!("2026-01-01T00:{minute:02}:00.000"), "query": "hi"})
            })
            .collect()
    }

    fn client(base: &str, page_size: u32) -> ChatApiClient {
        let cfg: AimylogicConfig = pipe_plugin_sdk::config::parse(json!({"token": "T0000000:00", "base_url": base,
            "client_ids": ["c"], "page_size": page_size}))
        .unwrap();
        ChatApiClient::new(&cfg, Arc::default()).unwrap()
    }

    async fn ids(c: &ChatApiClient) -> Result<Vec<String>> {
        match c.history("c").await? {
            History::Items(items) => Ok(items.iter().map(|i| i["questionId"].as_str().unwrap().to_string()).collect()),
            other => panic!("{other:?}"),
        }
    }

    fn all(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("q{i}")).collect()
    }

    #[tokio::test]
    async fn a_capped_page_is_followed_and_the_cap_learned() {
        let (base, fake) = serve(Fake { items: items(10), cap: Some(3), ..Fake::default() }).await;
        let c = client(&base, 5);
        assert_eq!(ids(&c).await.unwrap(), all(10));
        // Offsets advance by what arrived; the short page at offset 0 was probed once.
        assert_eq!(
            *fake.asked.lock().unwrap(),
            ["offset=0 from=-", "offset=3 from=-", "offset=6 from=-", "offset=9 from=-"]
        );
        // The cap is known now: another client's page of 2 is its last, without a probe.
        let (base, fake) = serve(Fake { items: items(2), cap: Some(3), ..Fake::default() }).await;
        let mut c2 = client(&base, 5);
        c2.seen = c.seen.clone();
        assert_eq!(ids(&c2).await.unwrap(), all(2));
        assert_eq!(fake.asked.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_honest_short_history_costs_one_probe_or_none_with_a_total() {
        let (base, fake) = serve(Fake { items: items(3), ..Fake::default() }).await;
        assert_eq!(ids(&client(&base, 100)).await.unwrap(), all(3));
        assert_eq!(*fake.asked.lock().unwrap(), ["offset=0 from=-", "offset=3 from=-"]);
        let (base, fake) = serve(Fake { items: items(3), total: true, ..Fake::default() }).await;
        assert_eq!(ids(&client(&base, 100)).await.unwrap(), all(3));
        assert_eq!(fake.asked.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_ignored_offset_is_paged_by_time() {
        for (cap, page_size) in [(None, 4), (Some(3), 5)] {
            let (base, fake) = serve(Fake { items: items(11), cap, ignore_offset: true, ..Fake::default() }).await;
            assert_eq!(ids(&client(&base, page_size)).await.unwrap(), all(11), "cap {cap:?}");
            let asked = fake.asked.lock().unwrap();
            assert!(asked.iter().skip(2).all(|a| a.starts_with("offset=0 from=2026-01-01T00:")), "{asked:?}");
        }
        // One item only: the page by time repeats it, and that is the end.
        let (base, _) = serve(Fake { items: items(1), ignore_offset: true, ..Fake::default() }).await;
        assert_eq!(ids(&client(&base, 4)).await.unwrap(), all(1));
    }

    #[tokio::test]
    async fn ignoring_offset_and_from_is_incomplete() {
        let (base, _) =
            serve(Fake { items: items(9), ignore_offset: true, ignore_from: true, ..Fake::default() }).await;
        match client(&base, 4).history("c").await {
            Err(PluginError::ListingCut { reason, message, .. }) => {
                assert_eq!(reason, REASON_INCOMPLETE);
                assert!(message.contains("ignores `from` too") && message.contains("client `c`"), "{message}");
            }
            other => panic!("expected an incomplete cut, got {other:?}"),
        }
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a b/c:д"), "a%20b%2Fc%3A%D0%B4");
    }
}
