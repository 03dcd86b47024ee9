//! The paging shapes of a spec ([`PagingSpec`]) over the SDK's HTTP client, each listing kept
//! bounded by the SDK's [`PageGuard`] (a position asked for twice, a page repeating an earlier
//! one, or more than a million pages end it with `paging_loop`).
//!
//! The shapes [`pipe_plugin_sdk::paging::Paging`] has are driven here too rather than through
//! `HttpClient::pages`, because a spec selects records and cursors with jq instead of JSON
//! pointers, and adds two shapes (`Link` header, offset/limit); the query helpers
//! ([`with_param`]) and the guard are the SDK's.

use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::{PageGuard, with_param};
use pipe_plugin_sdk::{PluginError, Result};
use serde_json::Value;

use crate::spec::{OffsetEnd, PagedPrograms, PagingSpec};

/// One page: its records and the body they came from.
#[derive(Debug)]
pub struct Page {
    /// The records (`records` jq, arrays spread).
    pub records: Vec<Value>,
    /// The whole body.
    pub body: Value,
}

enum Next {
    Url(String),
    Page(u64),
    Offset(u64),
    Done,
}

/// A listing being read page by page.
pub struct Pager {
    http: HttpClient,
    paging: PagingSpec,
    programs: PagedPrograms,
    vars: Value,
    /// The first URL, with the spec's query (and a query credential).
    first: String,
    /// A query credential to keep on every URL the vendor hands back (`name`, `value`).
    auth_query: Option<(String, String)>,
    next: Next,
    guard: PageGuard,
    records_so_far: u64,
}

impl Pager {
    /// A pager over `first` (absolute URL with its query), named `listing` in loop errors.
    pub fn new(
        http: HttpClient,
        first: String,
        paging: PagingSpec,
        programs: PagedPrograms,
        vars: Value,
        auth_query: Option<(String, String)>,
        listing: String,
    ) -> Self {
        let next = match &paging {
            PagingSpec::PageNumber { first, .. } => Next::Page(*first),
            PagingSpec::Offset { .. } => Next::Offset(0),
            _ => Next::Url(first.clone()),
        };
        let guard = PageGuard::new(http.vendor().to_string(), listing);
        Pager { http, paging, programs, vars, first, auth_query, next, guard, records_so_far: 0 }
    }

    /// The guard, for loops its caller detects (pages of nothing new).
    pub fn guard(&self) -> &PageGuard {
        &self.guard
    }

    fn protocol(&self, message: String) -> PluginError {
        PluginError::Protocol { vendor: self.http.vendor().to_string(), message: self.http.scrub(&message) }
    }

    /// `url` with the query credential set, when the spec sends one.
    fn with_auth(&self, url: String) -> Result<String> {
        match &self.auth_query {
            Some((name, value)) => with_param(&url, name, value),
            None => Ok(url),
        }
    }

    /// The next page, or `None` after the last.
    ///
    /// Errors: HTTP errors of [`HttpClient::get_json`]; [`PluginError::ListingCut`] when the
    /// listing loops; [`PluginError::Protocol`] when a jq program fails on a body or a next URL
    /// leaves the origin.
    pub async fn next_page(&mut self) -> Result<Option<Page>> {
        let (url, what) = match std::mem::replace(&mut self.next, Next::Done) {
            Next::Done => return Ok(None),
            Next::Url(u) => (u, "next page URL"),
            Next::Page(n) => {
                let PagingSpec::PageNumber { param, .. } = &self.paging else { unreachable!("page numbers") };
                (with_param(&self.first, param, &n.to_string())?, "page number")
            }
            Next::Offset(o) => {
                let PagingSpec::Offset { param, limit_param, limit, .. } = &self.paging else {
                    unreachable!("offsets")
                };
                let url = with_param(&self.first, limit_param, &limit.to_string())?;
                (with_param(&url, param, &o.to_string())?, "offset")
            }
        };
        self.guard.position(what, &url)?;
        let (body, headers) = self.http.get_json_with_headers(&url).await?;
        let records = self.programs.records.list(&body, &[&self.vars]).map_err(|m| self.protocol(m))?;
        self.guard.page(&records)?;
        self.records_so_far += records.len() as u64;
        let step = |p: &Option<crate::expr::Program>| -> Result<Value> {
            match p {
                Some(p) => p.first(&body, &[&self.vars]).map_err(|m| self.protocol(m)),
                None => Ok(Value::Null),
            }
        };
        let next = match &self.paging {
            PagingSpec::None => Next::Done,
            PagingSpec::NextUrl { .. } => match step(&self.programs.paging)? {
                Value::String(s) if !s.is_empty() => Next::Url(self.with_auth(absolute(&url, &s)?)?),
                _ => Next::Done,
            },
            PagingSpec::LinkHeader => match next_link(&headers) {
                Some(s) => Next::Url(self.with_auth(absolute(&url, &s)?)?),
                None => Next::Done,
            },
            PagingSpec::Cursor { param, .. } => {
                let cursor = match step(&self.programs.paging)? {
                    Value::String(s) if !s.is_empty() => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                };
                match cursor {
                    Some(c) if !records.is_empty() => Next::Url(with_param(&self.first, param, &c)?),
                    _ => Next::Done,
                }
            }
            PagingSpec::PageNumber { .. } => {
                let total = step(&self.programs.paging)?.as_u64();
                let PagingSpec::PageNumber { param, .. } = &self.paging else { unreachable!("page numbers") };
                let n: u64 = url::Url::parse(&url)
                    .ok()
                    .and_then(|u| u.query_pairs().find(|(k, _)| k == param.as_str()).and_then(|(_, v)| v.parse().ok()))
                    .unwrap_or(0);
                if records.is_empty() || total.is_some_and(|t| self.records_so_far >= t) {
                    Next::Done
                } else {
                    Next::Page(n + 1)
                }
            }
            PagingSpec::Offset { limit, end, .. } => {
                let last = match end {
                    OffsetEnd::ShortPage => records.len() as u64 != *limit,
                    OffsetEnd::EmptyPage => records.is_empty(),
                };
                if last { Next::Done } else { Next::Offset(self.records_so_far) }
            }
        };
        self.next = next;
        Ok(Some(Page { records, body }))
    }
}

/// `next` made absolute against the URL of the page that named it (a path or relative URL).
fn absolute(current: &str, next: &str) -> Result<String> {
    let base = url::Url::parse(current).map_err(|e| PluginError::other(format!("bad URL: {e}")))?;
    base.join(next).map(String::from).map_err(|_| PluginError::other("the vendor's next page link is not a URL"))
}

/// The `rel="next"` target of a `Link` header (RFC 8288), if any.
pub fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    for value in headers.get_all(reqwest::header::LINK) {
        let Ok(text) = value.to_str() else { continue };
        for link in text.split(',') {
            let mut parts = link.split(';');
            let target = parts.next()?.trim();
            let is_next = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("rel=")
                    .map(|r| r.trim_matches('"').split_whitespace().any(|r| r.eq_ignore_ascii_case("next")))
                    .unwrap_or(false)
            });
            if is_next && target.starts_with('<') && target.ends_with('>') {
                return Some(target[1..target.len() - 1].to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderMap, HeaderValue, LINK};

    use super::*;

    #[test]
    fn link_headers_give_the_next_target() {
        let mut h = HeaderMap::new();
        h.insert(
            LINK,
            HeaderValue::from_static(
                r#"<https://a.example/x?page=1>; rel="prev", <https://a.example/x?page=3>; rel="next""#,
            ),
        );
        assert_eq!(next_link(&h).as_deref(), Some("https://a.example/x?page=3"));
        h.insert(LINK, HeaderValue::from_static(r#"</x?page=2>; rel="first""#));
        assert_eq!(next_link(&h), None);
        assert_eq!(absolute("http://h:1/a/b?x=1", "/c?d=2").unwrap(), "http://h:1/c?d=2");
        assert_eq!(absolute("http://h:1/a/b", "http://evil.example/c").unwrap(), "http://evil.example/c");
    }
}
