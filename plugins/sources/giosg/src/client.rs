//! The giosg HTTP API: authenticated GETs and the `{next, previous, results}` envelope.

use std::sync::Arc;

use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::Paging;
use pipe_plugin_sdk::{Metrics, Result};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::GiosgConfig;

/// giosg's envelope: `{"next": <absolute URL> | null, "previous": ..., "results": [...]}`.
const GIOSG_PAGING: Paging = Paging::NextUrl { items: "/results", next: "/next" };

/// A client for one organization.
#[derive(Clone)]
pub struct GiosgClient {
    http: HttpClient,
    org_root: String,
    page_size: u32,
}

impl GiosgClient {
    /// Errors: [`pipe_plugin_sdk::PluginError::Config`] for a `base_url` that is not http(s),
    /// a token that cannot be sent in a header, an unreadable `ca_file` or a bad
    /// `requests_per_second`.
    pub fn new(cfg: &GiosgConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HttpClient::sensitive_header(&format!("Token {}", cfg.token.expose()))?);
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        // The token travels only in the header, but a vendor error body may echo it.
        let http = HttpClient::new(cfg.http.settings(), headers, metrics)?.redact(cfg.token.expose().trim());
        let base = cfg.http.base_url()?;
        let org = url::form_urlencoded::byte_serialize(cfg.organization_id.as_bytes()).collect::<String>();
        Ok(GiosgClient { http, org_root: format!("{base}/api/v5/orgs/{org}"), page_size: cfg.page_size.clamp(1, 100) })
    }

    /// `text` without the token.
    pub fn scrub(&self, text: &str) -> String {
        self.http.scrub(text)
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

    /// One chat object (`GET owned_chats/{id}`; docs/vendors/giosg.md §2.3 marks the path as
    /// assumed by REST analogy). Used only for chats that ended since the last run.
    pub async fn chat(&self, chat_id: &str) -> Result<Value> {
        self.http.get_json(&self.chat_url(chat_id, "")).await
    }

    fn chat_url(&self, chat_id: &str, tail: &str) -> String {
        let id = url::form_urlencoded::byte_serialize(chat_id.as_bytes()).collect::<String>();
        format!("{}/owned_chats/{id}/{tail}", self.org_root)
    }

    /// The pages of a collection, following the absolute `next` URL until it is null. A bare
    /// JSON array (tags are documented loosely) is taken as one last page.
    pub fn pages(&self, first_url: String) -> impl futures::Stream<Item = Result<Vec<Value>>> + Send + 'static {
        self.http.pages(first_url, GIOSG_PAGING)
    }

    /// Every item of a collection.
    pub async fn all(&self, first_url: String) -> Result<Vec<Value>> {
        self.http.all_items(first_url, GIOSG_PAGING).await
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
