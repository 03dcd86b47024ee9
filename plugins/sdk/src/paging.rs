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

use futures::stream::{self, Stream};
use serde_json::Value;

use crate::http::HttpClient;
use crate::{PluginError, Result};

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

/// The items array at `pointer`, or a protocol error naming the URL.
pub fn items_at(body: &Value, pointer: &str, vendor: &str, url: &str) -> Result<Vec<Value>> {
    match body.pointer(pointer) {
        Some(Value::Array(items)) => Ok(items.clone()),
        Some(Value::Null) => Ok(Vec::new()),
        _ => Err(PluginError::Protocol {
            vendor: vendor.into(),
            message: format!("no array at `{pointer}` in the response of {}", path_only(url)),
        }),
    }
}

fn path_only(url: &str) -> &str {
    url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..])).unwrap_or(url)
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
    pub fn pages(&self, first_url: String, paging: Paging) -> impl Stream<Item = Result<Vec<Value>>> + Send + 'static {
        let client = self.clone();
        let start = match paging {
            Paging::PageNumber { first, .. } => Next::Page(first, 0),
            _ => Next::Url(first_url.clone()),
        };
        stream::try_unfold(start, move |next| {
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
                let body = client.get_json(&url).await?;
                let vendor = client.vendor();
                let (items, next) = match paging {
                    Paging::NextUrl { items, next } => {
                        if let Value::Array(all) = body {
                            (all, Next::Done)
                        } else {
                            let page = items_at(&body, items, vendor, &url)?;
                            let next = match body.pointer(next) {
                                Some(Value::String(s)) if !s.is_empty() => Next::Url(s.clone()),
                                _ => Next::Done,
                            };
                            (page, next)
                        }
                    }
                    Paging::Cursor { items, cursor, param } => {
                        let page = items_at(&body, items, vendor, &url)?;
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
                        let page = items_at(&body, items, vendor, &url)?;
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
                Ok(Some((items, next)))
            }
        })
    }

    /// Every item of a collection.
    pub async fn all_items(&self, first_url: String, paging: Paging) -> Result<Vec<Value>> {
        use futures::TryStreamExt;
        let pages: Vec<Vec<Value>> = self.pages(first_url, paging).try_collect().await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// Every node of a GraphQL Relay connection: POSTs `request(after)` (the query body with
    /// the `after` cursor, `None` first) to `url` until `pageInfo.hasNextPage` is false. The
    /// connection is at pointer `connection` in the response (`/data/chats`); nodes are
    /// `edges[].node`. GraphQL `errors` fail the call with their messages.
    pub async fn relay_all(
        &self,
        url: &str,
        connection: &str,
        request: impl Fn(Option<&str>) -> Value,
    ) -> Result<Vec<Value>> {
        let mut nodes = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let body = self.post_json(url, &request(after.as_deref())).await?;
            if let Some(Value::Array(errors)) = body.get("errors")
                && !errors.is_empty()
            {
                let msgs: Vec<&str> = errors.iter().filter_map(|e| e.get("message").and_then(Value::as_str)).collect();
                return Err(PluginError::Protocol {
                    vendor: self.vendor().into(),
                    message: format!("GraphQL errors: {}", msgs.join("; ")),
                });
            }
            let conn = body.pointer(connection).ok_or_else(|| PluginError::Protocol {
                vendor: self.vendor().into(),
                message: format!("no connection at `{connection}` in the GraphQL response"),
            })?;
            for edge in items_at(conn, "/edges", self.vendor(), url)? {
                if let Some(node) = edge.get("node") {
                    nodes.push(node.clone());
                }
            }
            let info = conn.get("pageInfo");
            let has_next = info.and_then(|i| i.get("hasNextPage")).and_then(Value::as_bool).unwrap_or(false);
            let end = info.and_then(|i| i.get("endCursor")).and_then(Value::as_str).map(str::to_string);
            match (has_next, end) {
                (true, Some(c)) if after.as_deref() != Some(c.as_str()) => after = Some(c),
                _ => return Ok(nodes),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_param_replaces() {
        assert_eq!(with_param("http://h/x?a=1&pageNo=1", "pageNo", "2").unwrap(), "http://h/x?a=1&pageNo=2");
        assert_eq!(with_param("http://h/x", "cursor", "a b").unwrap(), "http://h/x?cursor=a+b");
    }
}
