//! The REST webapi v2: `GET /webapi/v2/conversations` (cursor) and
//! `GET /webapi/v2/conversations/{id}/chats` (page numbers, 100 per page, `totalCount`).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use futures::stream::BoxStream;
use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::{PageGuard, Paging, take_items_at, with_param};
use pipe_plugin_sdk::{Metrics, Result};
use reqwest::header::{ACCEPT, HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use crate::mapping::Bundle;
use crate::{AlliConfig, Api, VENDOR};

/// `{"conversations": [...], "cursor": "..." | null}`.
const LIST_PAGING: Paging = Paging::Cursor { items: "/conversations", cursor: "/cursor", param: "cursor" };

/// A client for one project (API key).
#[derive(Clone)]
pub struct RestClient {
    http: HttpClient,
    root: String,
    list_query: Vec<(String, String)>,
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl RestClient {
    pub fn new(cfg: &AlliConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let key = cfg.api_key.as_ref().map(|k| k.expose().trim().to_string()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let value = HttpClient::sensitive_header(&key).map_err(|_| pipe_plugin_sdk::PluginError::Config {
            path: "api_key".into(),
            message: "contains characters not allowed in an HTTP header".into(),
        })?;
        headers.insert(HeaderName::from_static("api-key"), value);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = HttpClient::new(cfg.http.settings(), headers, metrics)?.redact(key);
        let mut list_query =
            vec![("pageSize".to_string(), cfg.page_size().to_string()), ("order".into(), "LAST_CHAT_TIME_DESC".into())];
        if let Some(a) = &cfg.llm_app_id {
            list_query.push(("llmAppId".into(), a.clone()));
        }
        if let Some(c) = &cfg.category_id {
            list_query.push(("categoryId".into(), c.clone()));
        }
        for v in &cfg.variables {
            list_query.push(("variables".into(), v.clone()));
        }
        Ok(RestClient { http, root: format!("{}/webapi/v2/conversations", cfg.http.base_url()?), list_query })
    }

    /// The first listing page's URL with `extra` parameters on top of the configured ones
    /// (`pageSize` replaced when given), for the contract probe.
    pub fn list_url(&self, extra: &[(&str, String)]) -> String {
        let mut query: Vec<(String, String)> =
            self.list_query.iter().filter(|(k, _)| !extra.iter().any(|(e, _)| e == k)).cloned().collect();
        query.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        format!("{}?{}", self.root, qs.join("&"))
    }

    /// The URL of page `page_no` of a conversation's chats.
    pub fn chats_url(&self, id: &str, page_no: u64) -> String {
        format!("{}/{}/chats?pageNo={page_no}", self.root, encode(id).replace('+', "%20"))
    }

    /// The HTTP client (its `scrub` hides the API key).
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The listing, newest last chat first, one `Vec` per page; `started_at` is the
    /// "last chat time after" filter in the API's own unit.
    pub fn listing(&self, started_at: Option<i64>) -> BoxStream<'static, Result<Vec<Value>>> {
        let mut query = self.list_query.clone();
        if let Some(t) = started_at {
            query.push(("startedAt".into(), t.to_string()));
        }
        let qs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
        self.http.pages(format!("{}?{}", self.root, qs.join("&")), LIST_PAGING).boxed()
    }

    /// Every chat of a conversation (every `pageNo` until `totalCount` is reached or a page is
    /// empty), and the `totalCount` of the last page.
    ///
    /// Errors: [`pipe_plugin_sdk::PluginError::ListingCut`] when the pages repeat (a server
    /// ignoring `pageNo`) short of `totalCount`, besides the HTTP errors.
    pub async fn bundle(&self, mut conversation: Value) -> Result<Bundle> {
        let Some(id) = conversation.get("id").and_then(Value::as_str).map(str::to_string) else {
            return Ok(Bundle { api: Api::Rest, conversation, chats: Vec::new(), total: None, incomplete: None });
        };
        if let Some(o) = conversation.as_object_mut() {
            o.remove("chats");
        }
        let first = format!("{}/{}/chats", self.root, encode(&id).replace('+', "%20"));
        let mut chats = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut total: Option<u64> = None;
        let mut page_no = 1u64;
        let mut guard = PageGuard::new(VENDOR, format!("the chats of conversation `{id}`"));
        loop {
            let url = with_param(&first, "pageNo", &page_no.to_string())?;
            guard.position("page number", &page_no.to_string())?;
            let mut body = self.http.get_json(&url).await?;
            let page = take_items_at(&mut body, "/chats", VENDOR, &url)?;
            // A page equal to an earlier one: the server ignores pageNo.
            guard.page(&page)?;
            total = body.get("totalCount").and_then(Value::as_u64).or(total);
            let mut new = 0;
            let page_empty = page.is_empty();
            for chat in page {
                let fresh = match chat.get("id").and_then(Value::as_str) {
                    Some(cid) => seen.insert(cid.to_string()),
                    None => true,
                };
                if fresh {
                    new += 1;
                    chats.push(chat);
                }
            }
            let done = total.is_some_and(|t| chats.len() as u64 >= t);
            if done || page_empty {
                break;
            }
            // Chats, but none new, short of the total: the pages overlap without end.
            if new == 0 {
                return Err(guard.cut("a page holds only chats already read"));
            }
            page_no += 1;
        }
        Ok(Bundle { api: Api::Rest, conversation, chats, total, incomplete: None })
    }
}
