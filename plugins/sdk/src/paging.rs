//! Pagination shapes of the vendors we ship, so a source describes its paging instead of
//! looping by hand. Items and page metadata are addressed by JSON pointers (`/results`,
//! `/data/conversations`); an empty pointer means the body itself.
//!
//! | shape | vendor | how the next page is found |
//! |---|---|---|
//! | [`Paging::NextUrl`] | giosg | absolute URL in the body (`next`), null on the last page |
//! | [`Paging::Cursor`] | Alli REST conversations | a cursor in the body, sent back as a query parameter |
//! | [`Paging::PageNumber`] | Alli REST chats | page number parameter until the stated total is reached |
//! | [`relay_all`](crate::http::HttpClient::relay_all) | Alli GraphQL | Relay `pageInfo { hasNextPage endCursor }` |
//!
//! **No listing pages without bound.** Every listing keeps a [`PageGuard`]: a `next` URL, cursor
//! or page number asked for a second time, a non-empty page equal to an earlier one (same
//! length, first and last item: a server ignoring its paging parameter), or more than
//! [`MAX_PAGES`] pages end the listing with [`PluginError::ListingCut`] (reason
//! [`crate::REASON_PAGING_LOOP`]), after every page read before it. Sources that page by hand
//! (offsets, per-conversation chats) use the same guard.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use futures::stream::{self, Stream};
use serde_json::Value;

use crate::http::HttpClient;
use crate::{PluginError, REASON_PAGING_LOOP, Result};

/// Most pages one listing may have: past it the listing is taken to be looping (a server that
/// keeps inventing new cursors). At 25 items a page that is 25 million items, far above any
/// account we export in one listing.
pub const MAX_PAGES: u64 = 1_000_000;

/// Notices a listing that repeats itself (module docs). Memory: 16 bytes per page read.
#[derive(Debug)]
pub struct PageGuard {
    vendor: String,
    listing: String,
    positions: HashSet<u64>,
    fingerprints: HashSet<u64>,
    pages: u64,
}

impl PageGuard {
    /// A guard for one listing of `vendor`; `listing` names it in the dead letter (a URL path
    /// without host and secrets, or `the history of client x`).
    pub fn new(vendor: impl Into<String>, listing: impl Into<String>) -> Self {
        PageGuard {
            vendor: vendor.into(),
            listing: listing.into(),
            positions: HashSet::new(),
            fingerprints: HashSet::new(),
            pages: 0,
        }
    }

    /// Records that a page is about to be asked for at `position` (its URL, cursor, offset or
    /// number), described as `what` (`next URL`, `cursor`, `offset`).
    ///
    /// Errors: [`PluginError::ListingCut`] (reason [`REASON_PAGING_LOOP`]) when that position
    /// was asked for before in this listing, or when the listing passes [`MAX_PAGES`] pages.
    pub fn position(&mut self, what: &str, position: &str) -> Result<()> {
        if !self.positions.insert(hash_of(position)) {
            return Err(self.cut(format!("its {what} repeats one already read")));
        }
        self.pages += 1;
        if self.pages > MAX_PAGES {
            return Err(self.cut(format!("it has more than {MAX_PAGES} pages")));
        }
        Ok(())
    }

    /// Records a page received.
    ///
    /// Errors: [`PluginError::ListingCut`] (reason [`REASON_PAGING_LOOP`]) when a non-empty
    /// page has the length, first and last item of one read before (the server answers the
    /// same page again, whatever the paging parameter says).
    pub fn page(&mut self, items: &[Value]) -> Result<()> {
        let (Some(first), Some(last)) = (items.first(), items.last()) else { return Ok(()) };
        let mut h = std::hash::DefaultHasher::new();
        items.len().hash(&mut h);
        first.to_string().hash(&mut h);
        last.to_string().hash(&mut h);
        if !self.fingerprints.insert(h.finish()) {
            return Err(self.cut("a page repeats one already read"));
        }
        Ok(())
    }

    /// Pages received so far (positions recorded).
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The paging-loop error of this listing, saying `why` (for loops a caller detects itself,
    /// such as pages of nothing new).
    pub fn cut(&self, why: impl std::fmt::Display) -> PluginError {
        PluginError::ListingCut {
            vendor: self.vendor.clone(),
            reason: REASON_PAGING_LOOP,
            message: format!(
                "paging loop in {}: {why}; the listing was ended after {} page(s)",
                self.listing, self.pages
            ),
        }
    }
}

fn hash_of(s: &str) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

/// How a GET collection pages.
#[derive(Debug, Clone, Copy)]
pub enum Paging {
    /// `{"next": "<absolute url>" | null, "results": [...]}`; a bare array is one last page.
    NextUrl {
        /// JSON pointer of the items array (`/results`).
        items: &'static str,
        /// JSON pointer of the next page's absolute URL (`/next`).
        next: &'static str,
    },
    /// The body carries a cursor (pointer `cursor`); the next request is the first URL with
    /// `param=<cursor>`. Ends when the cursor is null, empty, or a page has no items.
    Cursor {
        /// JSON pointer of the items array.
        items: &'static str,
        /// JSON pointer of the cursor in the body.
        cursor: &'static str,
        /// Query parameter the cursor is sent back in.
        param: &'static str,
    },
    /// Pages numbered from `first` in query parameter `param`; ends when the items so far reach
    /// the total at pointer `total`, or a page is empty.
    PageNumber {
        /// JSON pointer of the items array.
        items: &'static str,
        /// JSON pointer of the total item count.
        total: &'static str,
        /// Query parameter of the page number.
        param: &'static str,
        /// Number of the first page (0 or 1, as the vendor counts).
        first: u64,
    },
}

/// A copy of the items array at `pointer`, or a protocol error naming the URL.
pub fn items_at(body: &Value, pointer: &str, vendor: &str, url: &str) -> Result<Vec<Value>> {
    match body.pointer(pointer) {
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(Value::Null) => Ok(Vec::new()),
        _ => Err(no_array(pointer, vendor, url)),
    }
}

/// The items array at `pointer`, moved out of `body` (left as an empty array there): what
/// [`items_at`] returns, without a second copy of the page in memory while it is read.
pub fn take_items_at(body: &mut Value, pointer: &str, vendor: &str, url: &str) -> Result<Vec<Value>> {
    match body.pointer_mut(pointer) {
        Some(Value::Array(items)) => Ok(std::mem::take(items)),
        Some(Value::Null) => Ok(Vec::new()),
        _ => Err(no_array(pointer, vendor, url)),
    }
}

fn no_array(pointer: &str, vendor: &str, url: &str) -> PluginError {
    PluginError::Protocol {
        vendor: vendor.into(),
        message: format!("no array at `{pointer}` in the response of {}", path_only(url)),
    }
}

/// The path of `url`, without scheme, host or query: a query may carry a credential.
fn path_only(url: &str) -> &str {
    let path = url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..])).unwrap_or(url);
    path.split(['?', '#']).next().unwrap_or(path)
}

/// `url` with query parameter `name` set to `value` (replacing an existing one).
pub fn with_param(url: &str, name: &str, value: &str) -> Result<String> {
    let mut u = url::Url::parse(url).map_err(|e| PluginError::other(format!("bad URL {url}: {e}")))?;
    let kept: Vec<(String, String)> =
        u.query_pairs().filter(|(k, _)| k != name).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    u.query_pairs_mut().clear().extend_pairs(kept).append_pair(name, value);
    Ok(u.into())
}

enum Next {
    Url(String),
    Page(u64, u64),
    Done,
}

impl HttpClient {
    /// The pages of a collection, one `Vec` of items per page, in order; requests are made as
    /// the stream is polled.
    ///
    /// Errors (as the stream's last item, after every good page): those of
    /// [`HttpClient::get_json`], [`items_at`], and [`PluginError::ListingCut`] when the
    /// listing loops ([`PageGuard`]).
    pub fn pages(&self, first_url: String, paging: Paging) -> impl Stream<Item = Result<Vec<Value>>> + Send + 'static {
        let client = self.clone();
        let start = match paging {
            Paging::PageNumber { first, .. } => Next::Page(first, 0),
            _ => Next::Url(first_url.clone()),
        };
        let guard = PageGuard::new(self.vendor(), self.scrub(path_only(&first_url)));
        stream::try_unfold((start, guard), move |(next, mut guard)| {
            let client = client.clone();
            let first_url = first_url.clone();
            async move {
                let (url, page_no, seen) = match next {
                    Next::Done => return Ok(None),
                    Next::Url(u) => (u, 0, 0),
                    Next::Page(n, seen) => {
                        let Paging::PageNumber { param, .. } = paging else { unreachable!() };
                        (with_param(&first_url, param, &n.to_string())?, n, seen)
                    }
                };
                guard.position(if page_no > 0 { "page number" } else { "next page URL" }, &url)?;
                let mut body = client.get_json(&url).await?;
                let vendor = client.vendor();
                let (items, next) = match paging {
                    Paging::NextUrl { items, next } => {
                        if let Value::Array(all) = body {
                            (all, Next::Done)
                        } else {
                            let page =
                                take_items_at(&mut body, items, vendor, &url).map_err(|e| client.scrub_error(e))?;
                            let next = match body.pointer(next) {
                                Some(Value::String(s)) if !s.is_empty() => Next::Url(s.clone()),
                                _ => Next::Done,
                            };
                            (page, next)
                        }
                    }
                    Paging::Cursor { items, cursor, param } => {
                        let page = take_items_at(&mut body, items, vendor, &url).map_err(|e| client.scrub_error(e))?;
                        let next = match body.pointer(cursor) {
                            Some(Value::String(c)) if !c.is_empty() && !page.is_empty() => {
                                Next::Url(with_param(&first_url, param, c)?)
                            }
                            Some(Value::Number(n)) if !page.is_empty() => {
                                Next::Url(with_param(&first_url, param, &n.to_string())?)
                            }
                            _ => Next::Done,
                        };
                        (page, next)
                    }
                    Paging::PageNumber { items, total, .. } => {
                        let page = take_items_at(&mut body, items, vendor, &url).map_err(|e| client.scrub_error(e))?;
                        let seen = seen + page.len() as u64;
                        let total = body.pointer(total).and_then(Value::as_u64);
                        let next = if page.is_empty() || total.is_some_and(|t| seen >= t) {
                            Next::Done
                        } else {
                            Next::Page(page_no + 1, seen)
                        };
                        (page, next)
                    }
                };
                guard.page(&items)?;
                Ok(Some((items, (next, guard))))
            }
        })
    }

    /// Every item of a collection.
    ///
    /// Errors: as [`HttpClient::pages`]; the items read before a [`PluginError::ListingCut`]
    /// are dropped with it (a caller that wants them pages itself).
    pub async fn all_items(&self, first_url: String, paging: Paging) -> Result<Vec<Value>> {
        use futures::TryStreamExt;
        let pages: Vec<Vec<Value>> = self.pages(first_url, paging).try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Every node of a GraphQL Relay connection: POSTs `request(after)` (the query body with
    /// the `after` cursor, `None` first) to `url` until `pageInfo.hasNextPage` is false. The
    /// connection is at pointer `connection` in the response (`/data/chats`); nodes are
    /// `edges[].node`. GraphQL `errors` fail the call with their messages.
    ///
    /// Errors: also [`PluginError::ListingCut`] when an `endCursor` repeats one already sent
    /// or a page repeats an earlier one ([`PageGuard`]).
    pub async fn relay_all(
        &self,
        url: &str,
        connection: &str,
        request: impl Fn(Option<&str>) -> Value,
    ) -> Result<Vec<Value>> {
        let mut nodes = Vec::new();
        let mut after: Option<String> = None;
        let mut guard =
            PageGuard::new(self.vendor(), format!("the connection `{connection}` of {}", self.scrub(path_only(url))));
        loop {
            guard.position("endCursor", after.as_deref().unwrap_or(""))?;
            let mut body = self.post_json(url, &request(after.as_deref())).await?;
            if let Some(Value::Array(errors)) = body.get("errors")
                && !errors.is_empty()
            {
                let msgs: Vec<&str> = errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).collect();
                return Err(PluginError::Protocol {
                    vendor: self.vendor().into(),
                    message: format!("GraphQL errors: {}", msgs.join("; ")),
                });
            }
            let conn = body.pointer_mut(connection).ok_or_else(|| PluginError::Protocol {
                vendor: self.vendor().into(),
                message: format!("no connection at `{connection}` in the GraphQL response"),
            })?;
            let edges = take_items_at(conn, "/edges", self.vendor(), url).map_err(|e| self.scrub_error(e))?;
            guard.page(&edges)?;
            for mut edge in edges {
                if let Some(node) = edge.get_mut("node") {
                    nodes.push(node.take());
                }
            }
            let info = conn.get("pageInfo");
            let has_next = info.and_then(|i| i.get("hasNextPage")).and_then(Value::as_bool).unwrap_or(false);
            let end = info.and_then(|i| i.get("endCursor")).and_then(Value::as_str).map(str::to_string);
            match (has_next, end) {
                (true, Some(c)) => after = Some(c),
                _ => return Ok(nodes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loop_message(r: Result<()>) -> String {
        match r {
            Err(PluginError::ListingCut { reason, message, .. }) => {
                assert_eq!(reason, REASON_PAGING_LOOP);
                message
            }
            other => panic!("expected a paging loop, got {other:?}"),
        }
    }

    #[test]
    fn a_repeated_position_ends_the_listing_naming_it() {
        let mut g = PageGuard::new("v", "/api/x");
        g.position("cursor", "a").unwrap();
        g.position("cursor", "b").unwrap();
        let m = loop_message(g.position("cursor", "a"));
        assert!(m.contains("/api/x") && m.contains("cursor") && m.contains("2 page(s)"), "{m}");
    }

    #[test]
    fn a_repeated_page_ends_the_listing_but_empty_and_new_pages_do_not() {
        let mut g = PageGuard::new("v", "the history of client c");
        g.page(&[]).unwrap();
        g.page(&[]).unwrap();
        g.page(&[serde_json::json!({"id": 1}), serde_json::json!({"id": 2})]).unwrap();
        g.page(&[serde_json::json!({"id": 3}), serde_json::json!({"id": 4})]).unwrap();
        g.page(&[serde_json::json!({"id": 1})]).unwrap();
        let m = loop_message(g.page(&[serde_json::json!({"id": 1}), serde_json::json!({"id": 2})]));
        assert!(m.contains("the history of client c") && m.contains("repeats"), "{m}");
    }

    #[test]
    fn a_listing_past_max_pages_is_cut() {
        let mut g = PageGuard::new("v", "l");
        g.pages = MAX_PAGES - 1;
        g.position("cursor", "last").unwrap();
        assert!(loop_message(g.position("cursor", "one more")).contains(&MAX_PAGES.to_string()));
    }

    #[test]
    fn items_are_moved_out_of_the_page_and_a_missing_array_names_the_path() {
        let mut body = serde_json::json!({"data": {"items": [{"id": 1}, {"id": 2}]}, "next": "n"});
        let url = "https://vendor.example/api/items?token=secret";
        assert_eq!(items_at(&body, "/data/items", "v", url).unwrap().len(), 2, "a copy leaves the page whole");
        let items = take_items_at(&mut body, "/data/items", "v", url).unwrap();
        assert_eq!(items, [serde_json::json!({"id": 1}), serde_json::json!({"id": 2})]);
        assert_eq!(body, serde_json::json!({"data": {"items": []}, "next": "n"}), "the rest of the page stays");
        let mut null = serde_json::json!({"items": null});
        assert!(take_items_at(&mut null, "/items", "v", url).unwrap().is_empty(), "null: an empty page");
        for mut bad in [serde_json::json!({"items": {"id": 1}}), serde_json::json!({})] {
            match take_items_at(&mut bad, "/items", "v", url) {
                Err(PluginError::Protocol { message, .. }) => {
                    assert!(message.contains("`/items`") && message.contains("/api/items"), "{message}");
                    assert!(!message.contains("secret"), "the query (and any credential in it) is left out: {message}");
                }
                other => panic!("expected a protocol error, got {other:?}"),
            }
        }
    }

    #[test]
    fn with_param_replaces() {
        assert_eq!(with_param("http://h/x?a=1&pageNo=1", "pageNo", "2").unwrap(), "http://h/x?a=1&pageNo=2");
        assert_eq!(with_param("http://h/x", "cursor", "a b").unwrap(), "http://h/x?cursor=a+b");
    }
}
