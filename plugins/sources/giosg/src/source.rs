//! The giosg source: a crawl task that walks owned chats and feeds events to `next()`.

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationsBuilder, MESSAGES, MessagesBuilder, conversations_schema, messages_schema,
};
use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{
    Checkpoint, DeadLetter, Event, Metrics, PluginError, REASON_RETRY_BUDGET, Result, Source, SourceContext, StreamDecl,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::GiosgConfig;
use crate::client::GiosgClient;
use crate::cursor::{Cursor, chat_times};
use crate::mapping::{ChatBundle, map_chat, visitor_id};

/// Messages per emitted batch (a batch is also cut after this many conversations).
const BATCH_MESSAGES: usize = 8192;
const BATCH_CONVERSATIONS: usize = 1024;

/// The giosg source. Opening it starts the crawl on the current tokio runtime; events are
/// buffered in a small bounded channel, so a slow pipeline slows the crawl.
pub struct GiosgSource {
    events: mpsc::Receiver<Result<Event>>,
    crawl: tokio::task::JoinHandle<()>,
}

impl GiosgSource {
    /// Validates the config and starts the crawl.
    ///
    /// Errors: [`PluginError::Config`] for a `base_url` that is not http(s) or a token that
    /// cannot be sent in a header.
    pub fn open(cfg: GiosgConfig, ctx: SourceContext) -> Result<Self> {
        if cfg.organization_id.trim().is_empty() {
            return Err(PluginError::Config { path: "organization_id".into(), message: "must not be empty".into() });
        }
        let client = GiosgClient::new(&cfg, ctx.metrics.clone())?;
        let cursor = Cursor::from_state(ctx.state.as_ref())?;
        let instant = |key: &str, value: &Option<String>| -> Result<Option<i64>> {
            match value {
                None => Ok(None),
                Some(s) => parse_timestamp_micros(s).map(Some).ok_or_else(|| PluginError::Config {
                    path: key.into(),
                    message: format!("`{s}` is not an RFC 3339 timestamp (e.g. 2026-01-01T00:00:00Z)"),
                }),
            }
        };
        let start_us = instant("start", &cfg.start)?;
        let end_us = instant("end", &cfg.end)?;
        if let (Some(s), Some(e)) = (start_us, end_us) {
            if e <= s {
                return Err(PluginError::Config { path: "end".into(), message: "must be after `start`".into() });
            }
        }
        let (tx, rx) = mpsc::channel(4);
        let crawl = Crawl {
            client,
            organization_id: cfg.organization_id.clone(),
            concurrency: cfg.concurrency.max(1) as usize,
            checkpoint_every: cfg.checkpoint_every.max(1) as u64,
            limit: ctx.limit,
            metrics: ctx.metrics.clone(),
            cursor,
            lookback_us: i64::from(cfg.lookback_hours) * 3_600_000_000,
            start_us,
            end_us,
        };
        let crawl = tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = crawl.run(tx).await {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(GiosgSource { events: rx, crawl })
    }
}

impl Drop for GiosgSource {
    fn drop(&mut self) {
        self.crawl.abort();
    }
}

#[pipe_plugin_sdk::reexports::async_trait]
impl Source for GiosgSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    async fn next(&mut self) -> Result<Event> {
        match self.events.recv().await {
            Some(ev) => ev,
            None => Err(PluginError::other("giosg crawl task ended without End (it panicked?)")),
        }
    }
}

struct Crawl {
    client: GiosgClient,
    organization_id: String,
    concurrency: usize,
    checkpoint_every: u64,
    limit: Option<u64>,
    metrics: Arc<Metrics>,
    cursor: Cursor,
    lookback_us: i64,
    start_us: Option<i64>,
    /// Chats created at or after this instant are skipped (`end`, a backfill window).
    end_us: Option<i64>,
}

type Tx = mpsc::Sender<Result<Event>>;

async fn send(tx: &Tx, ev: Event) -> Result<()> {
    tx.send(Ok(ev)).await.map_err(|_| PluginError::other("pipeline stopped reading from the giosg source"))
}

impl Crawl {
    async fn run(self, tx: Tx) -> Result<()> {
        let mut out =
            Output { tx, messages: MessagesBuilder::new(), conversations: ConversationsBuilder::new(), emitted: 0 };
        let mut cursor = self.cursor.clone();
        match self.scan(&mut out, &mut cursor).await {
            Ok(()) => {}
            // giosg keeps failing: keep what is complete, checkpoint it, and end partial.
            Err(PluginError::RetryBudgetExhausted { vendor, message }) => {
                out.flush().await?;
                send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await?;
                let dl = DeadLetter {
                    stream: CONVERSATIONS.into(),
                    key: json!({"vendor": crate::VENDOR, "account_id": self.organization_id}),
                    stage: crate::VENDOR.into(),
                    reason: REASON_RETRY_BUDGET.into(),
                    message: format!(
                        "{vendor} kept failing and the retry budget is spent; stopped after {} conversations ({message})",
                        out.emitted
                    ),
                    raw: Value::Null,
                };
                send(&out.tx, Event::DeadLetter(dl)).await?;
            }
            Err(e) => return Err(e),
        }
        send(&out.tx, Event::End).await
    }

    /// The newest-first scan and the open-chat re-check; ends with a checkpoint.
    async fn scan(&self, out: &mut Output, cursor: &mut Cursor) -> Result<()> {
        let floor = cursor.floor(self.lookback_us, self.start_us);
        let mut newest: Option<i64> = None;
        // Chats created from here on are remembered in the cursor (newest − lookback).
        let mut window_floor = i64::MAX;

        // 1. Newest first, down to the floor: new chats and chats that changed.
        let listing = self
            .client
            .pages(self.client.owned_chats_url())
            .map_ok(|page| stream::iter(page.into_iter().map(Ok::<Value, PluginError>)))
            .try_flatten();
        let mut listing = std::pin::pin!(listing);
        let mut pending = Vec::new();
        let mut reached_floor = true;
        while let Some(chat) = listing.try_next().await? {
            let created = chat_times(&chat).map(|t| t.0);
            if let (Some(f), Some(c)) = (floor, created) {
                if c < f {
                    break;
                }
            }
            // Newer than the window: page past it (the listing is newest first).
            if let (Some(e), Some(c)) = (self.end_us, created) {
                if c >= e {
                    continue;
                }
            }
            if newest.is_none() {
                newest = created;
                if let Some(top) = created {
                    cursor.begin_scan(now_micros(), top);
                    let w = cursor.watermark_micros().map_or(top, |w| w.max(top));
                    window_floor = w - self.lookback_us;
                }
            }
            if cursor.needs_emit(&chat) {
                pending.push(chat);
            }
            if pending.len() >= self.concurrency * 8 {
                if !self.emit(std::mem::take(&mut pending), cursor, out, window_floor, true).await? {
                    reached_floor = false;
                    break;
                }
            }
        }
        if reached_floor && !self.emit(std::mem::take(&mut pending), cursor, out, window_floor, true).await? {
            reached_floor = false;
        }

        // 2. Chats that were open when we emitted them and are now below the floor.
        if reached_floor {
            if let Some(f) = floor {
                let open_now = self.client.all(self.client.open_chats_url()).await?;
                let still_open: std::collections::HashSet<&str> =
                    open_now.iter().filter_map(|c| c.get("id").and_then(Value::as_str)).collect();
                let mut recheck: Vec<Value> = open_now
                    .iter()
                    // Below the floor, but inside the configured `start`/`end`: an open chat
                    // created before `start` was never ours to export.
                    .filter(|c| {
                        chat_times(c).is_some_and(|t| {
                            t.0 < f && self.start_us.is_none_or(|s| t.0 >= s) && self.end_us.is_none_or(|e| t.0 < e)
                        }) && cursor.needs_emit(c)
                    })
                    .cloned()
                    .collect();
                for id in cursor.open_below(f) {
                    if !still_open.contains(id.as_str()) {
                        let chat = self.client.chat(&id).await?;
                        if cursor.needs_emit(&chat) {
                            recheck.push(chat);
                        }
                    }
                }
                if !self.emit(recheck, cursor, out, window_floor, false).await? {
                    reached_floor = false;
                }
            }
        }

        // 3. Only a scan that reached its floor (no --limit cut) advances the watermark.
        if reached_floor {
            cursor.complete_scan(newest, self.lookback_us);
        }
        out.flush().await?;
        send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await
    }

    /// Fetches and emits `chats` (bounded concurrency, list order kept), checkpointing every
    /// `checkpoint_every` conversations. Returns false when `--limit` stopped it.
    async fn emit(
        &self,
        chats: Vec<Value>,
        cursor: &mut Cursor,
        out: &mut Output,
        window_floor: i64,
        in_scan: bool,
    ) -> Result<bool> {
        let mut bundles = stream::iter(chats)
            .map(|chat| {
                let client = self.client.clone();
                async move { fetch_bundle(&client, chat).await }
            })
            .buffered(self.concurrency);
        while let Some(bundle) = bundles.try_next().await? {
            if self.limit.is_some_and(|l| out.emitted >= l) {
                return Ok(false);
            }
            let mapped = map_chat(&self.organization_id, &bundle, now_micros());
            for dl in mapped.dead_letters {
                send(&out.tx, Event::DeadLetter(dl)).await?;
            }
            Metrics::add(&self.metrics.messages, mapped.messages.len() as u64);
            for m in &mapped.messages {
                out.messages.append(m);
            }
            if let Some(c) = &mapped.conversation {
                out.conversations.append(c);
                out.emitted += 1;
                Metrics::add(&self.metrics.conversations, 1);
            }
            cursor.record(&bundle.chat, window_floor, in_scan);
            if out.emitted % self.checkpoint_every == 0 {
                out.flush().await?;
                send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await?;
            } else if out.messages.len() >= BATCH_MESSAGES || out.conversations.len() >= BATCH_CONVERSATIONS {
                out.flush().await?;
            }
        }
        Ok(!self.limit.is_some_and(|l| out.emitted >= l))
    }
}

/// Rows being built, and where they go.
struct Output {
    tx: Tx,
    messages: MessagesBuilder,
    conversations: ConversationsBuilder,
    emitted: u64,
}

impl Output {
    /// Messages first, then the conversations they belong to (docs/design.md §3.1).
    async fn flush(&mut self) -> Result<()> {
        if !self.messages.is_empty() {
            send(&self.tx, Event::Batch { stream: MESSAGES.into(), batch: self.messages.finish() }).await?;
        }
        if !self.conversations.is_empty() {
            send(&self.tx, Event::Batch { stream: CONVERSATIONS.into(), batch: self.conversations.finish() }).await?;
        }
        Ok(())
    }
}

async fn fetch_bundle(client: &GiosgClient, chat: Value) -> Result<ChatBundle> {
    let Some(id) = chat.get("id").and_then(Value::as_str).map(str::to_string) else {
        // Mapping turns it into a dead letter.
        return Ok(ChatBundle { chat, ..Default::default() });
    };
    let (messages, memberships, tags) =
        tokio::try_join!(client.messages(&id), client.memberships(&id), client.tags(&id))?;
    let variables = match visitor_id(&memberships) {
        Some(visitor) => client.variables(&id, &visitor).await?,
        None => Vec::new(),
    };
    Ok(ChatBundle { chat, messages, memberships, tags, variables })
}
