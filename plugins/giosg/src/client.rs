//! The giosg HTTP API: authenticated GETs and the `{next, previous, results}` envelope.

use std::sync::Arc;

use pipe_plugin_sdk::http::{HttpClient, HttpSettings};
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION};
use serde_json::Value;

use crate::{GiosgConfig, VENDOR};

/// One page of a giosg collection.
pub struct Page {
    pub results: Vec<Value>,
    /// Absolute URL of the next page, `None` on the last one.
    pub next: Option<String>,
}

/// A client for one organization.
#[derive(Clone)]
pub struct GiosgClient {
    http: HttpClient,
    org_root: String,
    page_size: u32,
}

impl GiosgClient {
    pub fn new(cfg: &GiosgConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HttpClient::sensitive_header(&format!("Token {}", cfg.token.expose()))?);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = HttpClient::new(HttpSettings::new(VENDOR), headers, metrics)?;
        let base = cfg.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(PluginError::Config {
                path: "base_url".into(),
                message: format!("`{base}` is not an http(s) URL"),
            });
        }
        let org = url::form_urlencoded::byte_serialize(cfg.organization_id.as_bytes()).collect::<String>();
        Ok(GiosgClient {
            http,
            org_root: format!("{base}/api/v5/orgs/{org}"),
            page_size: cfg.page_size.clamp(1, 100),
        })
    }

    /// First page URL of the organization's chats, newest first (the incremental scan stops
    /// below the watermark).
    pub fn owned_chats_url(&self) -> String {
        format!("{}/owned_chats?ordering=-created_at&page_size={}", self.org_root, self.page_size)
    }

    /// First page URL of the organization's open chats.
    pub fn open_chats_url(&self) -> String {
        format!("{}/owned_chats?ordering=-created_at&is_ended=false&page_size={}", self.org_root, self.page_size)
    }

    /// One chat object (`GET owned_chats/{id}`; vendors/giosg.md §2.3 marks the path as
    /// assumed by REST analogy). Used only for chats that ended since the last run.
    pub async fn chat(&self, chat_id: &str) -> Result<Value> {
        self.http.get_json(&self.chat_url(chat_id, "")).await
    }

    fn chat_url(&self, chat_id: &str, tail: &str) -> String {
        let id = url::form_urlencoded::byte_serialize(chat_id.as_bytes()).collect::<String>();
        format!("{}/owned_chats/{id}/{tail}", self.org_root)
    }

    /// Fetches one page. Accepts the envelope and, for collections documented loosely
    /// (tags), a bare JSON array.
    pub async fn page(&self, url: &str) -> Result<Page> {
        let body = self.http.get_json(url).await?;
        match body {
            Value::Array(results) => Ok(Page { results, next: None }),
            Value::Object(mut map) => {
                let results = match map.remove("results") {
                    Some(Value::Array(r)) => r,
                    _ => {
                        return Err(PluginError::Protocol {
                            vendor: VENDOR.into(),
                            message: format!("no `results` array in the page at {}", path_only(url)),
                        })
                    }
                };
                let next = match map.remove("next") {
                    Some(Value::String(s)) if !s.is_empty() => Some(s),
                    _ => None,
                };
                Ok(Page { results, next })
            }
            _ => Err(PluginError::Protocol {
                vendor: VENDOR.into(),
                message: format!("expected a JSON object at {}", path_only(url)),
            }),
        }
    }

    /// Every item of a collection, following `next` until it is null.
    pub async fn all(&self, first_url: String) -> Result<Vec<Value>> {
        let mut items = Vec::new();
        let mut url = Some(first_url);
        while let Some(u) = url {
            let page = self.page(&u).await?;
            items.extend(page.results);
            url = page.next;
        }
        Ok(items)
    }

    pub async fn messages(&self, chat_id: &str) -> Result<Vec<Value>> {
        self.all(format!("{}?page_size={}", self.chat_url(chat_id, "messages"), self.page_size)).await
    }

    pub async fn memberships(&self, chat_id: &str) -> Result<Vec<Value>> {
        self.all(self.chat_url(chat_id, "memberships")).await
    }

    pub async fn tags(&self, chat_id: &str) -> Result<Vec<Value>> {
        self.all(self.chat_url(chat_id, "tags")).await
    }

    pub async fn variables(&self, chat_id: &str, visitor_id: &str) -> Result<Vec<Value>> {
        let visitor = url::form_urlencoded::byte_serialize(visitor_id.as_bytes()).collect::<String>();
        self.all(self.chat_url(chat_id, &format!("visitors/{visitor}/variables"))).await
    }
}

fn path_only(url: &str) -> &str {
    url.find("/api/").map(|i| &url[i..]).unwrap_or(url)
}
