//! The giosg source: a crawl task that walks owned chats and feeds events to `next()`.

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::{
    conversations_schema, messages_schema, ConversationsBuilder, MessagesBuilder, CONVERSATIONS, MESSAGES,
};
use pipe_plugin_sdk::time::{format_micros, now_micros};
use pipe_plugin_sdk::{Checkpoint, Event, Metrics, PluginError, Result, Source, SourceContext, StreamDecl};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::client::GiosgClient;
use crate::mapping::{map_chat, visitor_id, ChatBundle};
use crate::GiosgConfig;

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
        let (tx, rx) = mpsc::channel(4);
        let crawl = Crawl {
            client,
            organization_id: cfg.organization_id.clone(),
            concurrency: cfg.concurrency.max(1) as usize,
            checkpoint_every: cfg.checkpoint_every.max(1) as u64,
            limit: ctx.limit,
            metrics: ctx.metrics.clone(),
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
}

type Tx = mpsc::Sender<Result<Event>>;

async fn send(tx: &Tx, ev: Event) -> Result<()> {
    tx.send(Ok(ev)).await.map_err(|_| PluginError::other("pipeline stopped reading from the giosg source"))
}

impl Crawl {
    async fn run(self, tx: Tx) -> Result<()> {
        let started = now_micros();
        // A stream of chat objects across all pages of owned_chats.
        let client = self.client.clone();
        let chats = stream::try_unfold(Some(client.owned_chats_url()), move |url| {
            let client = client.clone();
            async move {
                let Some(url) = url else { return Ok::<_, PluginError>(None) };
                let page = client.page(&url).await?;
                Ok(Some((stream::iter(page.results.into_iter().map(Ok)), page.next)))
            }
        })
        .try_flatten();
        let chats: std::pin::Pin<Box<dyn futures::Stream<Item = Result<Value>> + Send>> = match self.limit {
            Some(n) => Box::pin(chats.take(n as usize)),
            None => Box::pin(chats),
        };
        // Fetch each chat's details with bounded concurrency, keeping list order.
        let mut bundles = chats
            .map_ok(|chat| {
                let client = self.client.clone();
                async move { fetch_bundle(&client, chat).await }
            })
            .try_buffered(self.concurrency);

        let mut messages = MessagesBuilder::new();
        let mut conversations = ConversationsBuilder::new();
        let mut total_conversations = 0u64;
        while let Some(bundle) = bundles.try_next().await? {
            let mapped = map_chat(&self.organization_id, &bundle, now_micros());
            for dl in mapped.dead_letters {
                send(&tx, Event::DeadLetter(dl)).await?;
            }
            Metrics::add(&self.metrics.messages, mapped.messages.len() as u64);
            for m in &mapped.messages {
                messages.append(m);
            }
            if let Some(c) = &mapped.conversation {
                conversations.append(c);
                total_conversations += 1;
                Metrics::add(&self.metrics.conversations, 1);
            }
            if total_conversations % self.checkpoint_every == 0 {
                flush(&tx, &mut messages, &mut conversations).await?;
                send(&tx, checkpoint(started, total_conversations, false)).await?;
            } else if messages.len() >= BATCH_MESSAGES || conversations.len() >= BATCH_CONVERSATIONS {
                flush(&tx, &mut messages, &mut conversations).await?;
            }
        }
        flush(&tx, &mut messages, &mut conversations).await?;
        send(&tx, checkpoint(started, total_conversations, true)).await?;
        send(&tx, Event::End).await
    }
}

/// The state after `done` conversations of a full scan. A later run re-scans everything (the
/// incremental cursor is future work), so a crash re-delivers but never skips.
fn checkpoint(started: i64, done: u64, complete: bool) -> Event {
    Event::Checkpoint(Checkpoint {
        state: json!({
            "version": 1,
            "full_scan_started_at": format_micros(started),
            "conversations_done": done,
            "complete": complete,
        }),
    })
}

/// Messages first, then the conversations they belong to (design.md §3.1).
async fn flush(tx: &Tx, messages: &mut MessagesBuilder, conversations: &mut ConversationsBuilder) -> Result<()> {
    if !messages.is_empty() {
        send(tx, Event::Batch { stream: MESSAGES.into(), batch: messages.finish() }).await?;
    }
    if !conversations.is_empty() {
        send(tx, Event::Batch { stream: CONVERSATIONS.into(), batch: conversations.finish() }).await?;
    }
    Ok(())
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
