//! The `acme` source: every conversation of an Acme Chat account, incrementally.
//!
//! ## The vendor API (imaginary, but shaped like real ones)
//!
//! `GET {base_url}/v1/conversations?limit=N&updated_since=RFC3339[&cursor=C]` with
//! `Authorization: Bearer <token>` returns conversations ordered by `updated_at` (oldest first),
//! with `updated_at >= updated_since`, each with its messages inline:
//!
//! ```json
//! {"data": [{"id": "c1", "created_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:07:00Z",
//!            "status": "closed", "customer": {"id": "u1", "name": "Ann"}, "agent_ids": ["a1"],
//!            "messages": [{"id": "m1", "sent_at": "2026-01-05T10:00:00Z", "author": "customer",
//!                          "author_id": "u1", "author_name": "Ann", "text": "Hello"}]}],
//!  "next_cursor": "c1"}
//! ```
//!
//! `next_cursor` is null on the last page. 401/403 mean a bad token; 429 and 5xx are transient.
//!
//! ## What the source does
//!
//! Per page: one `messages` batch, then one `conversations` batch (messages never arrive after
//! their conversation), then a checkpoint `{"updated_since": "<newest updated_at so far>"}`.
//! The next run starts from that state. The filter is inclusive, so the newest conversation
//! of the previous run comes again: at-least-once, deduplicated downstream by primary key.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use pipe_plugin_sdk::config::{self, Secret};
use pipe_plugin_sdk::http::{HttpClient, HttpSettings};
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::reexports::reqwest::header::{AUTHORIZATION, HeaderMap};
use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationRow, ConversationsBuilder, MESSAGES, MessageRow, MessagesBuilder, SenderRole,
    conversations_schema, messages_schema,
};
use pipe_plugin_sdk::time::{format_micros, now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{
    Checkpoint, DeadLetter, Event, Metrics, PluginDescriptor, PluginError, PluginFactory, Result, Source,
    SourceContext, StreamDecl, paging,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

/// The `vendor` column and the name in errors.
const VENDOR: &str = "acme";

/// The `[source]` keys of `plugin = "acme"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcmeConfig {
    /// API root, e.g. `https://api.acme-chat.example` (without `/v1`).
    pub base_url: String,
    /// The account exported; becomes the `account_id` column.
    pub account: String,
    /// API token (`"${ACME_TOKEN}"`); sent as `Authorization: Bearer`, never printed.
    pub token: Secret,
    /// Conversations asked per page (1-1000). Default 100.
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// First run only: skip conversations last updated before this RFC 3339 time.
    #[serde(default)]
    pub start: Option<String>,
    /// Steady request rate cap (requests per second); none by default.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
}

fn default_page_size() -> u32 {
    100
}

fn check(config: &Value) -> Result<()> {
    let cfg: AcmeConfig = config::parse(config.clone())?;
    validate(&cfg).map(|_| ())
}

/// Checks what types alone cannot; returns the first `updated_since` (microseconds, UTC).
fn validate(cfg: &AcmeConfig) -> Result<Option<i64>> {
    let bad = |path: &str, message: &str| PluginError::Config { path: path.into(), message: message.into() };
    if !cfg.base_url.starts_with("http://") && !cfg.base_url.starts_with("https://") {
        return Err(bad("base_url", "must start with https:// (or http:// for a local test server)"));
    }
    if !(1..=1000).contains(&cfg.page_size) {
        return Err(bad("page_size", "must be between 1 and 1000"));
    }
    cfg.start
        .as_deref()
        .map(|s| {
            parse_timestamp_micros(s).ok_or_else(|| bad("start", "must be an RFC 3339 time, e.g. 2026-01-01T00:00:00Z"))
        })
        .transpose()
}

/// The plugin's descriptor, listed in `declare_plugin!`.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: "acme",
        version: env!("CARGO_PKG_VERSION"),
        description: "Acme Chat conversations and messages (example plugin)",
        config_schema: Arc::new(config::schema_of::<AcmeConfig>),
        check_config: Arc::new(check),
        factory: PluginFactory::source(open),
    }
}

/// Opens the source: no request yet, the first one is made by the first `next`.
///
/// Errors: [`PluginError::Config`] for a bad config or an unusable state.
fn open(config: Value, ctx: SourceContext) -> Result<Box<dyn Source>> {
    let cfg: AcmeConfig = config::parse(config)?;
    let start = validate(&cfg)?;
    // The checkpoint of the last committed run wins over `start`.
    let updated_since = match &ctx.state {
        Some(state) => Some(state["updated_since"].as_str().and_then(parse_timestamp_micros).ok_or_else(|| {
            PluginError::other(format!("acme: unusable saved state {state} (reset it with `pipe state reset`)"))
        })?),
        None => start,
    };
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, HttpClient::sensitive_header(&format!("Bearer {}", cfg.token.expose()))?);
    let mut settings = HttpSettings::new(VENDOR);
    settings.requests_per_second = cfg.requests_per_second;
    let http = HttpClient::new(settings, headers, ctx.metrics.clone())?.redact(cfg.token.expose());
    Ok(Box::new(AcmeSource {
        cfg,
        http,
        metrics: ctx.metrics,
        limit: ctx.limit,
        updated_since,
        newest: updated_since,
        cursor: None,
        pending: VecDeque::new(),
        done: false,
        conversations: 0,
    }))
}

struct AcmeSource {
    cfg: AcmeConfig,
    http: HttpClient,
    metrics: Arc<Metrics>,
    limit: Option<u64>,
    /// The lower bound of this run (from the state or `start`), microseconds UTC.
    updated_since: Option<i64>,
    /// Newest `updated_at` emitted so far: the next checkpoint.
    newest: Option<i64>,
    /// The vendor's cursor for the next page; `None` before the first page.
    cursor: Option<String>,
    /// Events of the page fetched last, not yet handed out.
    pending: VecDeque<Event>,
    /// The last page was fetched (or the limit reached).
    done: bool,
    conversations: u64,
}

#[async_trait]
impl Source for AcmeSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            if self.done {
                return Ok(Event::End);
            }
            self.fetch_page().await?;
        }
    }
}

impl AcmeSource {
    fn page_url(&self) -> Result<String> {
        let mut url = format!("{}/v1/conversations", self.cfg.base_url.trim_end_matches('/'));
        url = paging::with_param(&url, "limit", &self.cfg.page_size.to_string())?;
        if let Some(since) = self.updated_since {
            url = paging::with_param(&url, "updated_since", &format_micros(since))?;
        }
        if let Some(cursor) = &self.cursor {
            url = paging::with_param(&url, "cursor", cursor)?;
        }
        Ok(url)
    }

    /// Fetches one page and queues its events: messages, conversations, checkpoint.
    async fn fetch_page(&mut self) -> Result<()> {
        let url = self.page_url()?;
        let body = self.http.get_json(&url).await?;
        let mut items = paging::items_at(&body, "/data", VENDOR, &url)?;
        self.cursor = body.pointer("/next_cursor").and_then(Value::as_str).map(str::to_string);
        self.done = self.cursor.is_none();
        if let Some(limit) = self.limit {
            let left = limit.saturating_sub(self.conversations) as usize;
            if items.len() >= left {
                items.truncate(left);
                self.done = true;
            }
        }
        let extracted_at = now_micros();
        let mut messages = MessagesBuilder::new();
        let mut conversations = ConversationsBuilder::new();
        for item in &items {
            match self.map_conversation(item, extracted_at) {
                Ok((conv, msgs)) => {
                    self.newest = self.newest.max(conv.updated_at);
                    Metrics::add(&self.metrics.messages, msgs.len() as u64);
                    msgs.iter().for_each(|m| messages.append(m));
                    conversations.append(&conv);
                }
                // A record we cannot map is never dropped silently.
                Err(message) => self.pending.push_back(Event::DeadLetter(DeadLetter {
                    stream: CONVERSATIONS.into(),
                    key: json!({"vendor": VENDOR, "account_id": self.cfg.account, "conversation_id": item["id"]}),
                    stage: String::new(),
                    reason: "unparsable_conversation".into(),
                    message,
                    raw: item.clone(),
                })),
            }
        }
        self.conversations += conversations.len() as u64;
        Metrics::add(&self.metrics.conversations, conversations.len() as u64);
        if !messages.is_empty() {
            self.pending.push_back(Event::Batch { stream: MESSAGES.into(), batch: messages.finish() });
        }
        if !conversations.is_empty() {
            self.pending.push_back(Event::Batch { stream: CONVERSATIONS.into(), batch: conversations.finish() });
        }
        if let Some(newest) = self.newest {
            self.pending
                .push_back(Event::Checkpoint(Checkpoint { state: json!({"updated_since": format_micros(newest)}) }));
        }
        Ok(())
    }

    /// One vendor conversation as canonical rows; `Err` says why it cannot be mapped.
    fn map_conversation(
        &self,
        c: &Value,
        extracted_at: i64,
    ) -> std::result::Result<(ConversationRow, Vec<MessageRow>), String> {
        let text = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
        let time = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).and_then(parse_timestamp_micros);
        let id = text(c, "id").ok_or("no `id`")?;
        let updated_at = time(c, "updated_at").ok_or("no parsable `updated_at`")?;
        let mut raw_messages: Vec<&Value> =
            c.get("messages").and_then(Value::as_array).map(|m| m.iter().collect()).unwrap_or_default();
        // `seq` is the position by sent time; a stable sort keeps the API's order on ties.
        raw_messages.sort_by_key(|m| time(m, "sent_at"));
        let mut messages = Vec::with_capacity(raw_messages.len());
        for (seq, m) in raw_messages.into_iter().enumerate() {
            let message_id = text(m, "id").ok_or_else(|| format!("a message of conversation {id} has no `id`"))?;
            let sent_at =
                time(m, "sent_at").ok_or_else(|| format!("message {message_id} has no parsable `sent_at`"))?;
            let sender_role = match m.get("author").and_then(Value::as_str) {
                Some("customer") => SenderRole::Visitor,
                Some("agent") => SenderRole::Agent,
                Some("bot") => SenderRole::Bot,
                _ => SenderRole::System,
            };
            messages.push(MessageRow {
                vendor: VENDOR.into(),
                account_id: self.cfg.account.clone(),
                conversation_id: id.clone(),
                message_id,
                seq: seq as u32,
                sent_at,
                sender_role,
                sender_id: text(m, "author_id"),
                sender_name: text(m, "author_name"),
                message_type: text(m, "type").unwrap_or_else(|| "text".into()).to_lowercase(),
                text: text(m, "text"),
                is_encrypted: false,
                ciphertext: None,
                tags: Vec::new(),
                attributes: BTreeMap::new(),
                raw: m.to_string(),
                extracted_at,
            });
        }
        let status = text(c, "status").map(|s| s.to_lowercase());
        let conversation = ConversationRow {
            vendor: VENDOR.into(),
            account_id: self.cfg.account.clone(),
            conversation_id: id,
            channel_id: text(c, "channel"),
            title: text(c, "subject"),
            is_ended: status.as_deref().map(|s| s == "closed"),
            state: status,
            created_at: time(c, "created_at"),
            updated_at: Some(updated_at),
            ended_at: time(c, "closed_at"),
            last_message_at: messages.iter().map(|m| m.sent_at).max(),
            message_count: Some(messages.len() as u32),
            visitor_id: c.pointer("/customer/id").and_then(Value::as_str).map(str::to_string),
            visitor_name: c.pointer("/customer/name").and_then(Value::as_str).map(str::to_string),
            agent_ids: c
                .get("agent_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            tag_ids: Vec::new(),
            tags: c
                .get("tags")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
                .unwrap_or_default(),
            variables: BTreeMap::new(),
            raw: {
                // `raw` keeps the conversation without its messages (they have their own rows).
                let mut raw = c.clone();
                raw.as_object_mut().map(|o| o.remove("messages"));
                raw.to_string()
            },
            extracted_at,
        };
        Ok((conversation, messages))
    }
}
