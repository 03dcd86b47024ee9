//! The Chat API over HTTP: `GET /chatapi/{token}/client/{clientId}/history`, with the token
//! redacted from every message the HTTP layer produces.

use std::sync::Arc;

use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::PageGuard;
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::AimylogicConfig;
use crate::mapping::history_items;

/// A client for one Chat API channel.
#[derive(Clone)]
pub struct ChatApiClient {
    http: HttpClient,
    /// `{base_url}/chatapi/{token}` (the token percent-encoded).
    root: String,
    page_size: u32,
    from: Option<String>,
    to: Option<String>,
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
    /// `ca_file` or a bad `requests_per_second`.
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
        })
    }

    /// `text` without the token (for log lines and errors built outside the HTTP layer).
    pub fn scrub(&self, text: &str) -> String {
        self.http.scrub(text)
    }

    fn history_url(&self, client_id: &str, offset: usize) -> String {
        let mut url = format!(
            "{}/client/{}/history?limit={}&offset={offset}",
            self.root,
            encode_segment(client_id),
            self.page_size
        );
        for (k, v) in [("from", &self.from), ("to", &self.to)] {
            if let Some(v) = v {
                url.push_str(&format!("&{k}={}", encode_segment(v)));
            }
        }
        url
    }

    /// Every history item of `client_id`, following `limit`/`offset` until a page is shorter
    /// than `page_size`, or longer (a server ignoring `limit` sent everything from `offset`).
    ///
    /// Errors: [`PluginError::Auth`] on 401/403 (bad token), [`PluginError::NotFound`] on a
    /// 404/410 past the first page, [`PluginError::Http`] on other 4xx or after the retries, [`PluginError::RetryBudgetExhausted`]; and
    /// [`PluginError::ListingCut`] when a page repeats one already read (a server ignoring
    /// `offset` answers the first page again: paging on would loop, stopping would lose the
    /// rest silently) or a body is over `max_response_bytes`. Messages never hold the token.
    pub async fn history(&self, client_id: &str) -> Result<History> {
        let mut items: Vec<Value> = Vec::new();
        let mut guard = PageGuard::new(crate::VENDOR, format!("the history of client `{client_id}`"));
        loop {
            let offset = items.len();
            guard.position("offset", &offset.to_string())?;
            let body = match self.http.get_json(&self.history_url(client_id, offset)).await {
                Ok(b) => b,
                Err(PluginError::NotFound { .. }) if items.is_empty() => {
                    return Ok(History::UnknownClient);
                }
                Err(e) => return Err(e),
            };
            let Some(page) = history_items(&body) else { return Ok(History::Unrecognized(body)) };
            guard.page(&page)?;
            let n = page.len();
            items.extend(page);
            if n != self.page_size as usize {
                break;
            }
        }
        Ok(History::Items(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("a b/c:д"), "a%20b%2Fc%3A%D0%B4");
    }
}
