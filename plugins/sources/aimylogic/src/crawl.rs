//! `mode = "history"`: the history of every configured client, one conversation per client,
//! exported incrementally.
//!
//! ## Incremental runs
//!
//! The saved state ([`crate::watermark::HistoryState`]) holds, per client, a watermark: the
//! largest item `timestamp` exported (epoch ms) and the `questionId`s at exactly that time
//! (docs/vendors/aimylogic.md §4: watermark = max `timestamp`, dedupe by `questionId`). A run:
//!
//! 1. fetches each client's **whole** `from`..`to` history, as a first run does. The one
//!    conversation row per client is an aggregate of the whole history (`message_count`,
//!    `created_at`, `seq` and session numbers of every message), so it can only be right if
//!    every item is seen; asking `from = watermark` would save transfer but give partial
//!    counts and `seq` restarting at 0. The Chat API has no cheaper "what changed" call.
//! 2. maps the history exactly as a full export would, then emits only the messages newer
//!    than the client's watermark (`timestamp > ms`, or `= ms` with an unseen `questionId`),
//!    and, when there is at least one, the client's conversation row again (docs/design.md §3.1:
//!    a changed conversation is re-emitted; its `updated_at` is later, so the latest wins).
//!    A client with nothing new emits nothing. Dead letters are emitted for items newer
//!    than the watermark (items without a usable time: only while the client has none).
//! 3. advances the watermark and, every `checkpoint_every` clients, checkpoints the
//!    watermarks plus the list of clients this run has done; a run that stops early is
//!    resumed after them. The last checkpoint of a finished run has no such list.
//!
//! The state is bounded by the client list (watermarks of clients no longer configured are
//! dropped). A client whose history holds no message emits no row and gets no watermark.
//! The old `{"mode": "history", "clients_done": n}` state is read as "no watermark" (one
//! full export, then incremental); any other layout is refused with a `pipe state reset` hint.
//!
//! Items that show up later with a timestamp *older* than the watermark (none are expected:
//! the history is append-only) are not exported by an incremental run; `pipe run
//! --full-refresh` (the engine passes no state) exports everything again.

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::CONVERSATIONS;
use pipe_plugin_sdk::source_kit::{Crawl, CrawlSource, CrawlSpec, Emitter, cut_conversation};
use pipe_plugin_sdk::time::{Zone, now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{DeadLetter, DeadLetterKind, PluginError, Result, SourceContext};
use serde_json::{Value, json};

use crate::client::{ChatApiClient, History};
use crate::mapping::{MapCtx, MappedClient, item_position, map_history, scrub_raw};
use crate::watermark::{HistoryState, Watermark};
use crate::{AimylogicConfig, VENDOR};

/// Validates the config, reads the client ids and starts the export on the current tokio
/// runtime; events pass through the SDK crawl driver's small bounded channel, so a slow
/// pipeline slows the requests.
///
/// `ctx.state` is the last committed checkpoint ([`HistoryState`] layout; the old
/// `{"mode": "history", "clients_done": n}` is read as "no watermark"); only messages newer
/// than each client's watermark are emitted.
///
/// Errors: [`PluginError::Config`] when no client id is configured, `from`/`to` are not
/// times, `base_url` is not http(s), `client_ids_file` cannot be read, or the saved state
/// has another layout (the message says to run `pipe state reset`).
pub fn open(cfg: AimylogicConfig, ctx: SourceContext) -> Result<CrawlSource> {
    for (key, v) in [("from", &cfg.from), ("to", &cfg.to)] {
        if let Some(v) = v.as_ref().filter(|v| parse_timestamp_micros(v).is_none() && v.parse::<i64>().is_err()) {
            return Err(PluginError::Config {
                path: key.into(),
                message: format!("`{v}` is not an ISO-8601 time (e.g. 2026-01-01T00:00:00Z) or epoch milliseconds"),
            });
        }
    }
    let client_ids = cfg.all_client_ids()?;
    if client_ids.is_empty() {
        return Err(PluginError::Config {
            path: if cfg.client_ids_file.is_some() { "client_ids_file".into() } else { "client_ids".into() },
            message:
                "no client ids: the Chat API cannot list clients, give `client_ids` or a non-empty `client_ids_file`"
                    .into(),
        });
    }
    let mut saved = HistoryState::from_state(ctx.state.as_ref())?;
    if saved.migrated {
        tracing::info!(
            vendor = VENDOR,
            "saved history state has the old layout without watermarks: this run exports every client once more, later runs only what is new"
        );
    }
    saved.retain(&client_ids);
    let zone = cfg.zone()?;
    let client = ChatApiClient::new(&cfg, ctx.metrics.clone())?;
    let spec = CrawlSpec {
        vendor: VENDOR,
        account_id: cfg.account_id(),
        checkpoint_every: u64::from(cfg.checkpoint_every.max(1)),
        unit: "clients",
        metrics: ctx.metrics.clone(),
    };
    let export = Export {
        client,
        client_ids,
        account_id: cfg.account_id(),
        token: cfg.token.expose().to_string(),
        concurrency: cfg.http.concurrency(),
        limit: ctx.limit,
        state: saved,
        zone,
    };
    Ok(CrawlSource::spawn(spec, export))
}

struct Export {
    client: ChatApiClient,
    client_ids: Vec<String>,
    account_id: String,
    token: String,
    concurrency: usize,
    limit: Option<u64>,
    /// The saved state, advanced as clients are exported.
    state: HistoryState,
    /// The zone of zone-less item times (`timezone`).
    zone: Zone,
}

#[async_trait::async_trait]
impl Crawl for Export {
    async fn run(&mut self, out: &mut Emitter) -> Result<()> {
        // A resumed run skips what the interrupted one did; a new run starts an empty list.
        let resumed = self.state.done.is_some();
        let skip = self.state.done.take().unwrap_or_default();
        let pending: Vec<String> = self.client_ids.iter().filter(|id| !skip.contains(*id)).cloned().collect();
        if resumed {
            tracing::info!(
                vendor = VENDOR,
                "resuming an interrupted history run: {} client(s) done, {} to go",
                skip.len(),
                pending.len()
            );
        }
        self.state.done = Some(skip);
        let mut done: u64 = 0;
        let (mut changed, mut unchanged) = (0u64, 0u64);
        let ids: Vec<String> = match self.limit {
            Some(l) => pending.into_iter().take(l as usize).collect(),
            None => pending,
        };
        // Clients fetched `concurrency` at a time, emitted in the configured order. When
        // Aimylogic keeps failing (retry budget spent), the driver checkpoints the clients
        // done so far and ends partial; the next run resumes after them.
        let client = self.client.clone();
        let account_id = self.account_id.clone();
        let mut histories = stream::iter(ids)
            .map(|id| {
                let client = client.clone();
                let account_id = account_id.clone();
                async move {
                    // A history that loops or is too large is this client's dead letter alone.
                    let history = cut_conversation(client.history(&id).await, VENDOR, &account_id, &id)?;
                    Ok::<_, PluginError>((id, history))
                }
            })
            .buffered(self.concurrency);
        while let Some((id, history)) = histories.try_next().await? {
            let ctx = MapCtx {
                account_id: &self.account_id,
                client_id: &id,
                token: &self.token,
                extracted_at: now_micros(),
                zone: self.zone,
            };
            let key = json!({"vendor": VENDOR, "account_id": self.account_id, "conversation_id": id});
            match history {
                // The client is done for this run (the next run fetches its whole history again).
                Err(cut) => out.dead_letter(cut).await?,
                Ok(History::Items(items)) => {
                    let mapped = map_history(&ctx, &items);
                    let new = select_new(self.state.clients.get(&id), mapped, self.zone);
                    for dl in new.dead_letters {
                        out.dead_letter(dl).await?;
                    }
                    if new.messages.is_empty() {
                        unchanged += 1;
                    } else {
                        changed += 1;
                        out.append(&new.messages, new.conversation.as_ref());
                        let w = self.state.clients.entry(id.clone()).or_default();
                        for m in &new.messages {
                            w.advance(m.sent_at.div_euclid(1000), question_of(&m.message_id));
                        }
                    }
                }
                Ok(History::UnknownClient) => {
                    let dl = DeadLetter {
                        stream: CONVERSATIONS.into(),
                        key,
                        stage: VENDOR.into(),
                        reason: "unknown_client".into(),
                        message: format!("aimylogic answered HTTP 404 for the history of client `{id}`"),
                        raw: Value::Null,
                    };
                    out.dead_letter(dl).await?;
                }
                Ok(History::Unrecognized(body)) => {
                    let dl = DeadLetter {
                        stream: CONVERSATIONS.into(),
                        key,
                        stage: VENDOR.into(),
                        reason: "unrecognized_history".into(),
                        message: format!("the history of client `{id}` has no messages/history/items array"),
                        raw: serde_json::from_str(&scrub_raw(&body, &self.token)).unwrap_or(Value::Null),
                    };
                    out.dead_letter(dl).await?;
                }
            }
            if let Some(d) = self.state.done.as_mut() {
                d.insert(id);
            }
            done += 1;
            let state = &self.state;
            out.advance(1, || state.to_json(false)).await?;
        }
        tracing::info!(
            vendor = VENDOR,
            "history: {done} client(s) fetched, {changed} with new messages, {unchanged} unchanged"
        );
        self.state.done = None;
        out.checkpoint(self.state.to_json(true)).await
    }

    fn state(&self) -> Value {
        self.state.to_json(false)
    }
}

/// The `questionId` of one of our message ids (`<questionId>:q`, `:r<i>`, `:e`).
fn question_of(message_id: &str) -> &str {
    message_id.rsplit_once(':').map_or(message_id, |(q, _)| q)
}

/// What of a fully mapped client history is not covered by `watermark` (`None`: everything).
/// The conversation row is kept only when at least one message is new; dead letters only
/// when their item is newer than the watermark ([`item_position`]: an item dated beyond the
/// watermark's reach is reported on every run while the vendor keeps it, since it is never
/// exported; an item without a readable time only when there is no watermark yet); an
/// `unexpected_shape` one only with the message it names (reported once, when exported).
fn select_new(watermark: Option<&Watermark>, mut mapped: MappedClient, zone: Zone) -> MappedClient {
    let Some(w) = watermark else {
        if mapped.messages.is_empty() {
            mapped.conversation = None;
        }
        return mapped;
    };
    mapped.messages.retain(|m| w.is_new(m.sent_at.div_euclid(1000), question_of(&m.message_id)));
    let exported: std::collections::HashSet<&str> = mapped.messages.iter().map(|m| m.message_id.as_str()).collect();
    mapped.dead_letters.retain(|dl| match dl.kind() {
        DeadLetterKind::UnexpectedShape => dl.key["message_id"].as_str().is_some_and(|m| exported.contains(m)),
        _ => item_position(&dl.raw, zone).is_some_and(|t| t.div_euclid(1000) > w.ms),
    });
    if mapped.messages.is_empty() {
        mapped.conversation = None;
    }
    mapped
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use axum::Json;
    use axum::extract::{Path, State};
    use axum::routing::get;
    use pipe_plugin_sdk::schema::MESSAGES;
    use pipe_plugin_sdk::{Event, Source};

    use super::*;

    const TOKEN: &str = "UnitTest:00112233445566778899aabbccddeeff00112233";

    /// Histories served per client, and every client asked for.
    #[derive(Default)]
    struct Fake {
        items: Mutex<BTreeMap<String, Vec<Value>>>,
        asked: Mutex<Vec<String>>,
    }

    async fn serve(fake: Arc<Fake>) -> String {
        async fn history(State(f): State<Arc<Fake>>, Path((_t, c)): Path<(String, String)>) -> Json<Value> {
            f.asked.lock().unwrap().push(c.clone());
            Json(json!({"clientId": c, "messages": f.items.lock().unwrap().get(&c).cloned().unwrap_or_default()}))
        }
        let app = axum::Router::new().route("/chatapi/{token}/client/{client}/history", get(history)).with_state(fake);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    fn item(qid: &str, ts: &str) -> Value {
        json!({"questionId": qid, "timestamp": ts, "query": "hi", "response": {"replies": [{"type": "text", "text": "hello"}]}})
    }

    /// (message ids, conversation ids with their message_count, checkpoints) of one run.
    struct Run {
        messages: Vec<String>,
        conversations: Vec<(String, u64)>,
        checkpoints: Vec<Value>,
    }

    async fn run(base: &str, clients: &[&str], state: Option<Value>, limit: Option<u64>) -> Run {
        let cfg: AimylogicConfig = pipe_plugin_sdk::config::parse(
            json!({"token": TOKEN, "base_url": base, "client_ids": clients, "checkpoint_every": 1, "concurrency": 1}),
        )
        .unwrap();
        let ctx = SourceContext { pipeline: "t".into(), state, limit, metrics: Arc::default() };
        let mut src = open(cfg, ctx).unwrap();
        let mut r = Run { messages: Vec::new(), conversations: Vec::new(), checkpoints: Vec::new() };
        loop {
            match src.next().await.unwrap() {
                Event::Batch { stream, batch } if stream == MESSAGES => {
                    let ids = batch
                        .column_by_name("message_id")
                        .unwrap()
                        .as_any()
                        .downcast_ref::<pipe_plugin_sdk::reexports::arrow_array::StringArray>()
                        .unwrap()
                        .clone();
                    r.messages.extend(ids.iter().map(|s| s.unwrap().to_string()));
                }
                Event::Batch { batch, .. } => {
                    let ids = batch
                        .column_by_name("conversation_id")
                        .unwrap()
                        .as_any()
                        .downcast_ref::<pipe_plugin_sdk::reexports::arrow_array::StringArray>()
                        .unwrap()
                        .clone();
                    let counts = batch
                        .column_by_name("message_count")
                        .unwrap()
                        .as_any()
                        .downcast_ref::<pipe_plugin_sdk::reexports::arrow_array::UInt32Array>()
                        .unwrap()
                        .clone();
                    r.conversations.extend(
                        ids.iter().zip(counts.iter()).map(|(i, c)| (i.unwrap().to_string(), c.unwrap() as u64)),
                    );
                }
                Event::Checkpoint(c) => r.checkpoints.push(c.state),
                Event::DeadLetter(_) => {}
                Event::End => return r,
            }
        }
    }

    #[tokio::test]
    async fn second_run_exports_only_new_items_and_ties_are_kept() {
        let fake = Arc::new(Fake::default());
        fake.items
            .lock()
            .unwrap()
            .insert("a".into(), vec![item("a1", "2026-01-01T00:00:00.000"), item("a2", "2026-01-01T00:01:00.000")]);
        fake.items.lock().unwrap().insert("b".into(), vec![item("b1", "2026-01-01T00:00:00.000")]);
        let base = serve(fake.clone()).await;

        let first = run(&base, &["a", "b"], None, None).await;
        assert_eq!(first.messages, ["a1:q", "a1:r0", "a2:q", "a2:r0", "b1:q", "b1:r0"]);
        assert_eq!(first.conversations, [("a".to_string(), 4), ("b".to_string(), 2)]);
        let last = first.checkpoints.last().unwrap().clone();
        assert_eq!(last["clients"]["a"], json!({"ms": 1_767_225_660_000i64, "ids": ["a2"]}));
        assert!(last.get("done").is_none(), "a finished run has no `done`: {last}");
        assert_eq!(first.checkpoints[0]["done"], json!(["a"]));

        // Unchanged data: nothing at all.
        let second = run(&base, &["a", "b"], Some(last.clone()), None).await;
        assert!(second.messages.is_empty() && second.conversations.is_empty(), "{:?}", second.messages);
        assert_eq!(second.checkpoints.last().unwrap(), &last);

        // A new item with the watermark's very timestamp, one later: only those, and a's
        // conversation row again with the whole history's count.
        fake.items
            .lock()
            .unwrap()
            .get_mut("a")
            .unwrap()
            .extend([item("a3", "2026-01-01T00:01:00.000"), item("a4", "2026-01-01T00:02:00.000")]);
        let third = run(&base, &["a", "b"], Some(last), None).await;
        assert_eq!(third.messages, ["a3:q", "a3:r0", "a4:q", "a4:r0"]);
        assert_eq!(third.conversations, [("a".to_string(), 8)]);

        // No state (`--full-refresh`): everything again.
        let full = run(&base, &["a", "b"], None, None).await;
        assert_eq!(full.messages.len(), 10);
    }

    #[tokio::test]
    async fn an_interrupted_run_resumes_after_the_clients_it_did() {
        let fake = Arc::new(Fake::default());
        for c in ["a", "b", "c"] {
            fake.items.lock().unwrap().insert(c.into(), vec![item(&format!("{c}1"), "2026-01-01T00:00:00.000")]);
        }
        let base = serve(fake.clone()).await;
        let first = run(&base, &["a", "b", "c"], None, None).await;
        // The checkpoint after client a, as if the run had stopped there.
        let cut = first.checkpoints[0].clone();
        assert_eq!(cut["done"], json!(["a"]));
        fake.asked.lock().unwrap().clear();
        let resumed = run(&base, &["a", "b", "c"], Some(cut), None).await;
        assert_eq!(resumed.messages, ["b1:q", "b1:r0", "c1:q", "c1:r0"]);
        let asked: std::collections::BTreeSet<String> = fake.asked.lock().unwrap().iter().cloned().collect();
        assert_eq!(asked.into_iter().collect::<Vec<_>>(), ["b", "c"], "client a is not fetched again");
        let end = resumed.checkpoints.last().unwrap();
        assert!(end.get("done").is_none());
        assert_eq!(end["clients"].as_object().unwrap().len(), 3);

        // The old layout is migrated (everything once), watermarks of removed clients dropped.
        let old = run(&base, &["a", "b"], Some(json!({"mode": "history", "clients_done": 3})), None).await;
        assert_eq!(old.messages.len(), 4);
        let pruned = run(&base, &["a"], Some(end.clone()), None).await;
        assert_eq!(
            pruned.checkpoints.last().unwrap()["clients"].as_object().unwrap().keys().collect::<Vec<_>>(),
            ["a"]
        );
        // A webhook state is refused with the reset hint.
        let cfg: AimylogicConfig =
            pipe_plugin_sdk::config::parse(json!({"token": TOKEN, "base_url": base, "client_ids": ["a"]})).unwrap();
        let ctx = SourceContext {
            pipeline: "t".into(),
            state: Some(json!({"mode": "webhook", "seq": 1})),
            limit: None,
            metrics: Arc::default(),
        };
        let err = open(cfg, ctx).err().unwrap().to_string();
        assert!(err.contains("pipe state reset"), "{err}");
    }
}
