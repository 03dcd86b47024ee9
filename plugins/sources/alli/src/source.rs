//! The Alli source: a crawl task that lists conversations newest last chat first, fetches each
//! one's chats (bounded concurrency, list order kept) and feeds events to `next()`.

use std::sync::Arc;

use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationsBuilder, MESSAGES, MessagesBuilder, conversations_schema, messages_schema,
};
use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{
    Checkpoint, DeadLetter, Event, Metrics, PluginError, REASON_RETRY_BUDGET, Result, Source, SourceContext, StreamDecl,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::cursor::Cursor;
use crate::graphql::GraphqlClient;
use crate::mapping::{Bundle, listing_time, map_conversation, unit_of};
use crate::rest::RestClient;
use crate::{AlliConfig, Api, VENDOR};

const BATCH_MESSAGES: usize = 8192;
const BATCH_CONVERSATIONS: usize = 1024;

/// The Alli source. Opening it starts the crawl on the current tokio runtime (the GraphQL login
/// happens there); events go through a small bounded channel, so a slow pipeline slows the crawl.
pub struct AlliSource {
    events: mpsc::Receiver<Result<Event>>,
    crawl: tokio::task::JoinHandle<()>,
}

impl AlliSource {
    /// Starts the crawl. The config must have passed [`AlliConfig::validate`].
    ///
    /// Errors: a saved state of another layout.
    pub fn open(cfg: AlliConfig, ctx: SourceContext) -> Result<Self> {
        let cursor = Cursor::from_state(ctx.state.as_ref())?;
        let start_us = cfg.start.as_deref().and_then(parse_timestamp_micros);
        let (tx, rx) = mpsc::channel(4);
        let crawl = Crawl {
            account_id: cfg.account_id(),
            concurrency: cfg.concurrency.max(1) as usize,
            checkpoint_every: cfg.checkpoint_every.max(1) as u64,
            limit: ctx.limit,
            metrics: ctx.metrics.clone(),
            lookback_us: i64::from(cfg.lookback_hours) * 3_600_000_000,
            start_us,
            cfg,
        };
        let crawl = tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = crawl.run(cursor, tx).await {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(AlliSource { events: rx, crawl })
    }
}

impl Drop for AlliSource {
    fn drop(&mut self) {
        self.crawl.abort();
    }
}

#[pipe_plugin_sdk::reexports::async_trait]
impl Source for AlliSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    async fn next(&mut self) -> Result<Event> {
        match self.events.recv().await {
            Some(ev) => ev,
            None => Err(PluginError::other("alli crawl task ended without End (it panicked?)")),
        }
    }
}

/// One API or the other.
#[derive(Clone)]
enum Client {
    Rest(RestClient),
    Graphql(GraphqlClient),
}

impl Client {
    fn listing(&self, started_at: Option<i64>) -> BoxStream<'static, Result<Vec<Value>>> {
        match self {
            Client::Rest(c) => c.listing(started_at),
            Client::Graphql(c) => c.listing(),
        }
    }

    async fn bundle(&self, conversation: Value) -> Result<Bundle> {
        match self {
            Client::Rest(c) => c.bundle(conversation).await,
            Client::Graphql(c) => c.bundle(conversation).await,
        }
    }
}

struct Crawl {
    cfg: AlliConfig,
    account_id: String,
    concurrency: usize,
    checkpoint_every: u64,
    limit: Option<u64>,
    metrics: Arc<Metrics>,
    lookback_us: i64,
    start_us: Option<i64>,
}

type Tx = mpsc::Sender<Result<Event>>;

async fn send(tx: &Tx, ev: Event) -> Result<()> {
    tx.send(Ok(ev)).await.map_err(|_| PluginError::other("pipeline stopped reading from the alli source"))
}

/// Rows being built, and where they go.
struct Output {
    tx: Tx,
    messages: MessagesBuilder,
    conversations: ConversationsBuilder,
    emitted: u64,
    /// `emitted` at the last periodic checkpoint.
    checkpointed: u64,
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

impl Crawl {
    async fn run(self, mut cursor: Cursor, tx: Tx) -> Result<()> {
        let client = match self.cfg.api {
            Api::Rest => Client::Rest(RestClient::new(&self.cfg, self.metrics.clone())?),
            Api::Graphql => Client::Graphql(GraphqlClient::connect(&self.cfg, self.metrics.clone()).await?),
        };
        let mut out = Output {
            tx,
            messages: MessagesBuilder::new(),
            conversations: ConversationsBuilder::new(),
            emitted: 0,
            checkpointed: 0,
        };
        match self.scan(&client, &mut out, &mut cursor).await {
            Ok(()) => {}
            // Alli keeps failing: keep what is complete, checkpoint it, and end partial.
            Err(PluginError::RetryBudgetExhausted { vendor, message }) => {
                out.flush().await?;
                send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await?;
                let dl = DeadLetter {
                    stream: CONVERSATIONS.into(),
                    key: json!({"vendor": VENDOR, "account_id": self.account_id}),
                    stage: VENDOR.into(),
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

    /// Newest last chat first down to the floor; ends with a checkpoint.
    async fn scan(&self, client: &Client, out: &mut Output, cursor: &mut Cursor) -> Result<()> {
        let floor = cursor.floor(self.lookback_us, self.start_us);
        // REST filters server-side too, in the unit a previous run saw the API use; on a first
        // run the unit is unknown, and a wrong guess would filter everything out.
        let started_at = match (self.cfg.api, floor, cursor.unit) {
            (Api::Rest, Some(f), Some(unit)) => Some(unit.from_micros(f)),
            _ => None,
        };
        let mut listing = client.listing(started_at);
        let mut newest: Option<i64> = None;
        let mut window_floor = i64::MIN;
        let mut pending: Vec<(Value, Option<i64>)> = Vec::new();
        let mut complete = true;
        while let Some(page) = listing.try_next().await? {
            let mut any_above = page.is_empty();
            for conv in page {
                let t = listing_time(&conv);
                if let (Some(f), Some(t)) = (floor, t)
                    && t < f
                {
                    continue;
                }
                any_above = true;
                if cursor.unit.is_none()
                    && let Some(unit) =
                        conv.get("lastChatTime").and_then(unit_of).or_else(|| conv.get("createdAt").and_then(unit_of))
                {
                    tracing::info!(vendor = VENDOR, unit = ?unit, "numeric timestamps are epoch {}", unit.label());
                    cursor.unit = Some(unit);
                }
                if let (None, Some(top)) = (newest, t) {
                    cursor.begin_scan(top);
                    let w = cursor.watermark_micros().map_or(top, |w| w.max(top));
                    window_floor = w - self.lookback_us;
                }
                if let Some(t) = t {
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
                let id = conv.get("id").and_then(Value::as_str).unwrap_or_default();
                if cursor.needs_emit(id, t) {
                    pending.push((conv, t));
                }
            }
            if pending.len() >= self.concurrency * 8
                && !self.emit(client, std::mem::take(&mut pending), cursor, out, window_floor).await?
            {
                complete = false;
                break;
            }
            // Sorted newest first: a page entirely below the floor ends the scan.
            if floor.is_some() && !any_above {
                break;
            }
        }
        if complete && !self.emit(client, std::mem::take(&mut pending), cursor, out, window_floor).await? {
            complete = false;
        }
        if complete {
            cursor.complete_scan(newest, self.lookback_us);
        }
        out.flush().await?;
        send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await
    }

    /// Fetches and emits `convs` (bounded concurrency, list order kept), checkpointing every
    /// `checkpoint_every` conversations. Returns false when `--limit` stopped it.
    async fn emit(
        &self,
        client: &Client,
        convs: Vec<(Value, Option<i64>)>,
        cursor: &mut Cursor,
        out: &mut Output,
        window_floor: i64,
    ) -> Result<bool> {
        if self.limit.is_some_and(|l| out.emitted >= l) {
            return Ok(false);
        }
        let mut bundles = stream::iter(convs)
            .map(|(conv, t)| {
                let client = client.clone();
                async move { client.bundle(conv).await.map(|b| (b, t)) }
            })
            .buffered(self.concurrency);
        while let Some((bundle, t)) = bundles.try_next().await? {
            if self.limit.is_some_and(|l| out.emitted >= l) {
                return Ok(false);
            }
            let mapped = map_conversation(&self.account_id, &bundle, now_micros());
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
                cursor.record(&c.conversation_id, t, window_floor);
            }
            if out.emitted >= out.checkpointed + self.checkpoint_every {
                out.checkpointed = out.emitted;
                out.flush().await?;
                send(&out.tx, Event::Checkpoint(Checkpoint { state: cursor.to_state() })).await?;
            } else if out.messages.len() >= BATCH_MESSAGES || out.conversations.len() >= BATCH_CONVERSATIONS {
                out.flush().await?;
            }
        }
        Ok(self.limit.is_none_or(|l| out.emitted < l))
    }
}
