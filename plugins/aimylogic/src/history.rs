//! `mode = "history"`: the history of every configured client, one conversation per client.

use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::{conversations_schema, messages_schema, ConversationsBuilder, MessagesBuilder, CONVERSATIONS, MESSAGES};
use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{Checkpoint, DeadLetter, Event, Metrics, PluginError, Result, Source, SourceContext, StreamDecl, REASON_RETRY_BUDGET};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::client::{ChatApiClient, History};
use crate::mapping::{map_history, scrub_raw, MapCtx};
use crate::{AimylogicConfig, VENDOR};

/// Messages per emitted batch (a batch is also cut at every checkpoint).
const BATCH_MESSAGES: usize = 8192;

/// The history source. Opening it starts the export on the current tokio runtime; events
/// pass through a small bounded channel, so a slow pipeline slows the requests.
///
/// The checkpoint state is `{"mode": "history", "clients_done": n}`; it records progress for
/// the run report but is not used to skip clients: every run exports the whole `from`..`to`
/// span of every listed client (a loader dedupes by the primary key).
pub struct HistorySource {
    events: mpsc::Receiver<Result<Event>>,
    task: tokio::task::JoinHandle<()>,
}

impl HistorySource {
    /// Validates the config, reads the client ids and starts the export.
    ///
    /// Errors: [`PluginError::Config`] when no client id is configured, `from`/`to` are not
    /// times, `base_url` is not http(s), or `client_ids_file` cannot be read.
    pub fn open(cfg: AimylogicConfig, ctx: SourceContext) -> Result<Self> {
        for (key, v) in [("from", &cfg.from), ("to", &cfg.to)] {
            if let Some(v) = v.as_ref().filter(|v| parse_timestamp_micros(v).is_none() && v.parse::<i64>().is_err()) {
                return Err(PluginError::Config { path: key.into(), message: format!("`{v}` is not an ISO-8601 time (e.g. 2026-01-01T00:00:00Z) or epoch milliseconds") });
            }
        }
        let client_ids = cfg.all_client_ids()?;
        if client_ids.is_empty() {
            return Err(PluginError::Config {
                path: if cfg.client_ids_file.is_some() { "client_ids_file".into() } else { "client_ids".into() },
                message: "no client ids: the Chat API cannot list clients, give `client_ids` or a non-empty `client_ids_file`".into(),
            });
        }
        let client = ChatApiClient::new(&cfg, ctx.metrics.clone())?;
        let export = Export {
            client,
            client_ids,
            account_id: cfg.account_id(),
            token: cfg.token.expose().to_string(),
            concurrency: cfg.concurrency.max(1) as usize,
            checkpoint_every: cfg.checkpoint_every.max(1) as u64,
            limit: ctx.limit,
            metrics: ctx.metrics.clone(),
        };
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            let err_tx = tx.clone();
            if let Err(e) = export.run(tx).await {
                let _ = err_tx.send(Err(e)).await;
            }
        });
        Ok(HistorySource { events: rx, task })
    }
}

impl Drop for HistorySource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl Source for HistorySource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    async fn next(&mut self) -> Result<Event> {
        match self.events.recv().await {
            Some(ev) => ev,
            None => Err(PluginError::other("aimylogic export task ended without End (it panicked?)")),
        }
    }
}

struct Export {
    client: ChatApiClient,
    client_ids: Vec<String>,
    account_id: String,
    token: String,
    concurrency: usize,
    checkpoint_every: u64,
    limit: Option<u64>,
    metrics: Arc<Metrics>,
}

type Tx = mpsc::Sender<Result<Event>>;

async fn send(tx: &Tx, ev: Event) -> Result<()> {
    tx.send(Ok(ev)).await.map_err(|_| PluginError::other("pipeline stopped reading from the aimylogic source"))
}

impl Export {
    async fn run(self, tx: Tx) -> Result<()> {
        let mut out = Output { tx, messages: MessagesBuilder::new(), conversations: ConversationsBuilder::new() };
        let mut done: u64 = 0;
        let ids: Vec<String> = match self.limit {
            Some(l) => self.client_ids.iter().take(l as usize).cloned().collect(),
            None => self.client_ids.clone(),
        };
        // Clients fetched `concurrency` at a time, emitted in the configured order.
        let mut histories = stream::iter(ids)
            .map(|id| {
                let client = self.client.clone();
                async move { client.history(&id).await.map(|h| (id, h)) }
            })
            .buffered(self.concurrency);
        loop {
            let (id, history) = match histories.try_next().await {
                Ok(Some(x)) => x,
                Ok(None) => break,
                // Aimylogic keeps failing: keep what is complete and end partial.
                Err(PluginError::RetryBudgetExhausted { vendor, message }) => {
                    out.flush().await?;
                    send(&out.tx, Event::Checkpoint(Checkpoint { state: state(done) })).await?;
                    let dl = DeadLetter {
                        stream: CONVERSATIONS.into(),
                        key: json!({"vendor": VENDOR, "account_id": self.account_id}),
                        stage: VENDOR.into(),
                        reason: REASON_RETRY_BUDGET.into(),
                        message: format!("{vendor} kept failing and the retry budget is spent; stopped after {done} clients ({message})"),
                        raw: Value::Null,
                    };
                    send(&out.tx, Event::DeadLetter(dl)).await?;
                    return send(&out.tx, Event::End).await;
                }
                Err(e) => return Err(e),
            };
            let ctx = MapCtx { account_id: &self.account_id, client_id: &id, token: &self.token, extracted_at: now_micros() };
            let key = json!({"vendor": VENDOR, "account_id": self.account_id, "conversation_id": id});
            match history {
                History::Items(items) => {
                    let mapped = map_history(&ctx, &items);
                    for dl in mapped.dead_letters {
                        send(&out.tx, Event::DeadLetter(dl)).await?;
                    }
                    Metrics::add(&self.metrics.messages, mapped.messages.len() as u64);
                    for m in &mapped.messages {
                        out.messages.append(m);
                    }
                    if let Some(c) = &mapped.conversation {
                        out.conversations.append(c);
                    }
                    Metrics::add(&self.metrics.conversations, 1);
                }
                History::UnknownClient => {
                    let dl = DeadLetter {
                        stream: CONVERSATIONS.into(),
                        key,
                        stage: VENDOR.into(),
                        reason: "unknown_client".into(),
                        message: format!("aimylogic answered HTTP 404 for the history of client `{id}`"),
                        raw: Value::Null,
                    };
                    send(&out.tx, Event::DeadLetter(dl)).await?;
                }
                History::Unrecognized(body) => {
                    let dl = DeadLetter {
                        stream: CONVERSATIONS.into(),
                        key,
                        stage: VENDOR.into(),
                        reason: "unrecognized_history".into(),
                        message: format!("the history of client `{id}` has no messages/history/items array"),
                        raw: serde_json::from_str(&scrub_raw(&body, &self.token)).unwrap_or(Value::Null),
                    };
                    send(&out.tx, Event::DeadLetter(dl)).await?;
                }
            }
            done += 1;
            if done.is_multiple_of(self.checkpoint_every) {
                out.flush().await?;
                send(&out.tx, Event::Checkpoint(Checkpoint { state: state(done) })).await?;
            } else if out.messages.len() >= BATCH_MESSAGES {
                out.flush().await?;
            }
        }
        out.flush().await?;
        send(&out.tx, Event::Checkpoint(Checkpoint { state: state(done) })).await?;
        send(&out.tx, Event::End).await
    }
}

fn state(done: u64) -> Value {
    json!({"mode": "history", "clients_done": done})
}

/// Rows being built, and where they go.
struct Output {
    tx: Tx,
    messages: MessagesBuilder,
    conversations: ConversationsBuilder,
}

impl Output {
    /// Messages first, then the conversations they belong to (design.md §3.1).
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
