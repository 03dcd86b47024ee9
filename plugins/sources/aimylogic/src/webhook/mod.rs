//! `mode = "webhook"`: a service receiving Aimylogic's webhook POSTs (docs/vendors/aimylogic.md
//! §2.3) and streaming their rows until stopped.
//!
//! ## Acknowledgement after durability
//!
//! Every accepted POST becomes rows plus an [`Event::Checkpoint`] whose state is
//! `{"mode": "webhook", "seq": N, "recent": [event keys]}` (N grows by one per POST that
//! produced something). The engine commits a checkpoint as soon as one is pending and the
//! previous commit has finished ([`CommitCadence::Prompt`]; a pipeline that sets
//! `commit_interval_seconds` gets that cadence instead), and after every commit reports the
//! saved state through [`SourceControl::committed`]. The POST is answered 200 only when a committed `seq` covers
//! it; until then the sender's connection waits (503 after `ack_timeout_seconds`, so it
//! retries). A crash therefore loses no acknowledged event: everything acknowledged is in
//! committed files, and everything else was never acknowledged and is sent again.
//!
//! Retries after a crash can repeat an event that was committed but whose 200 was lost: the
//! state remembers the last `dedupe_window` event keys (`clientId`, `questionId`, item
//! `type`), and such repeats are acknowledged without being emitted again. Within the window
//! delivery is exactly-once; beyond it at-least-once, with the same primary keys.
//!
//! On SIGINT/SIGTERM the engine cancels [`SourceControl::shutdown`]: the listener stops
//! accepting, POSTs already received are turned into rows, a last checkpoint and `End` are
//! emitted, the engine commits and the run exits 0.
//!
//! Plugins loaded as dynamic libraries get no [`SourceControl`] (the C ABI carries none): this
//! mode is only useful built in, as shipped.
//!
//! Rejected input: a body that is not JSON or not an array (400, `malformed_body`), over
//! `max_body_bytes` (413, `oversized_body`); an event without the channel's `token`
//! (`missing_token`) or with another channel's (`token_mismatch`), without `clientId`
//! (`missing_client_id`), or with a `clientId`/`questionId` over [`MAX_ID_BYTES`] or a `type`
//! over [`MAX_TYPE_BYTES`] (`oversized_id`) — each a dead letter, never rows or state. A POST
//! whose events are all refused is answered 422; the valid events of a mixed POST are
//! accepted (200 after the commit, with the count of refused ones).
//!
//! Hostile clients: see `server.rs` for the connection cap and the header, idle and body
//! timeouts.
//!
//! Rows: the mapping of [`crate::mapping::map_item`] per event, `seq` numbered within the
//! event (0 for the request, then the replies) because a listener does not see the whole
//! conversation; a nightly history run gives the conversation-wide `seq`. An event without
//! `query` or `event` (the seed's webhook object of docs/vendors/aimylogic.md §2.3 has
//! neither) gives no visitor message: nothing is invented for the visitor side. One
//! conversation row per client per POST (latest `updated_at` wins); its `created_at` is the
//! client's **first** event's time, not the POST's: the state remembers the first event time
//! of the `dedupe_window` most recently active clients (`"first": {clientId: {"us", "seq"}}`).
//! A client the listener knew before (in `client_ids`/`client_ids_file`, or forgotten from
//! that window) whose first event it did not see gets a null `created_at`: its history began
//! before, and the history run has the true value.

mod server;

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use pipe_plugin_sdk::schema::{
    CONVERSATIONS, ConversationsBuilder, MESSAGES, MessagesBuilder, conversations_schema, messages_schema,
};
use pipe_plugin_sdk::time::{Zone, now_micros};
use pipe_plugin_sdk::{
    Checkpoint, CommitCadence, Event, Metrics, PluginError, Result, Source, SourceContext, SourceControl, StreamDecl,
};
use serde_json::{Value, json};
use subtle::ConstantTimeEq as _;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::mapping::{MapCtx, conversation, map_item, question_id, response, shape_drift};
use crate::{AimylogicConfig, VENDOR};
use server::{Shared, Work};

/// POSTs waiting for the source loop.
const WORK_QUEUE: usize = 64;

/// Longest accepted `clientId` and `questionId`, in bytes. Both go into the rows and the
/// dedupe keys of the saved state (rewritten at every commit), so their size is bounded.
pub const MAX_ID_BYTES: usize = 256;

/// Longest accepted event `type`, in bytes (part of the dedupe key).
pub const MAX_TYPE_BYTES: usize = 64;

/// Why an event is refused: a dead-letter reason and a message without the event's content.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

/// Checks one webhook event before anything of it is kept: the channel's `token` (compared in
/// constant time), a `clientId`, and the lengths of the ids.
///
/// Errors: the [`Refusal`] (`missing_token`, `token_mismatch`, `missing_client_id`,
/// `oversized_id`).
pub(crate) fn check_event(ev: &Value, token: &str) -> std::result::Result<(), Refusal> {
    let refuse = |reason, message: String| Err(Refusal { reason, message });
    // Aimylogic puts the channel token in every webhook object (docs/vendors/aimylogic.md
    // §2.3): an event without it, or with another channel's, is not filed under this account.
    match ev.get("token").and_then(Value::as_str) {
        None => return refuse("missing_token", "webhook event without the channel `token`".into()),
        Some(t) if !bool::from(t.as_bytes().ct_eq(token.as_bytes())) => {
            return refuse("token_mismatch", "webhook event carries another channel's token".into());
        }
        Some(_) => {}
    }
    let Some(client) = client_id(ev) else {
        return refuse("missing_client_id", "webhook event without a clientId".into());
    };
    let question = question_id(ev).unwrap_or_default();
    let kind = ev.get("type").and_then(Value::as_str).unwrap_or("");
    for (field, len, max) in [
        ("clientId", client.len(), MAX_ID_BYTES),
        ("questionId", question.len(), MAX_ID_BYTES),
        ("type", kind.len(), MAX_TYPE_BYTES),
    ] {
        if len > max {
            return refuse("oversized_id", format!("webhook event `{field}` is {len} bytes long (at most {max})"));
        }
    }
    Ok(())
}

/// Binds `listen` (the first address it resolves to) with [`server::LISTEN_BACKLOG`] and
/// `SO_REUSEADDR` (a restart rebinds the port at once).
fn bind(listen: &str) -> std::io::Result<tokio::net::TcpListener> {
    use std::net::ToSocketAddrs as _;
    let addr = listen
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address"))?;
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(server::LISTEN_BACKLOG)
}

/// The webhook listener source. See the [module docs](self).
pub struct WebhookSource {
    work: mpsc::Receiver<Work>,
    queue: VecDeque<Event>,
    stop: CancellationToken,
    acked: Arc<watch::Sender<u64>>,
    closing: bool,
    ended: bool,
    seq: u64,
    recent: VecDeque<String>,
    recent_set: HashSet<String>,
    dedupe_window: usize,
    /// Per client: the time of its first event (µs UTC) and the `seq` of its latest POST, for
    /// the `dedupe_window` most recently active clients.
    first_seen: BTreeMap<String, (i64, u64)>,
    zone: Zone,
    known_clients: HashSet<String>,
    record_file: Option<String>,
    account_id: String,
    token: String,
    metrics: Arc<Metrics>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    addr: std::net::SocketAddr,
}

impl WebhookSource {
    /// Binds `listen` and starts serving (answers wait for the engine's commits).
    ///
    /// Errors: [`PluginError::Config`] for a `path` not starting with `/`, an address that
    /// cannot be bound (`listen`), an unreadable `client_ids_file`, or a corrupt state.
    pub fn open(cfg: AimylogicConfig, ctx: SourceContext) -> Result<Self> {
        if !cfg.path.starts_with('/') || cfg.path == "/healthz" {
            return Err(PluginError::Config {
                path: "path".into(),
                message: format!("`{}` must start with `/` and not be /healthz", cfg.path),
            });
        }
        cfg.check_webhook()?;
        let listener = bind(&cfg.listen).map_err(|e| PluginError::Config {
            path: "listen".into(),
            message: format!("cannot listen on {}: {e}", cfg.listen),
        })?;
        let addr = listener.local_addr().map_err(|e| PluginError::io("webhook listener address", e))?;

        let zone = cfg.zone()?;
        let (seq, recent, first_seen) = from_state(ctx.state.as_ref())?;
        let (acked_tx, acked_rx) = watch::channel(seq);
        let (work_tx, work_rx) = mpsc::channel(WORK_QUEUE);
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            work: work_tx,
            acked: acked_rx,
            secret: cfg.secret.as_ref().map(|s| s.expose().to_string()),
            secret_header: cfg.secret_header.clone(),
            secret_query: cfg.secret_query.clone(),
            max_body: cfg.max_body_bytes.max(1),
            body_timeout: Duration::from_secs_f64(cfg.body_timeout_seconds.clamp(0.1, 3600.0)),
            ack_timeout: Duration::from_secs_f64(cfg.ack_timeout_seconds.clamp(0.1, 3600.0)),
            token: cfg.token.expose().to_string(),
            account_id: cfg.account_id(),
            unauthorized: Default::default(),
            last_unauthorized_warning: Default::default(),
        });
        let app = server::router(&cfg.path, shared);
        let limits = server::Limits {
            max_connections: cfg.max_connections,
            header_timeout: Duration::from_secs_f64(cfg.header_timeout_seconds.clamp(0.1, 3600.0)),
        };
        let serve = tokio::spawn(server::serve(listener, app, limits, stop.clone()));
        tracing::info!(
            vendor = VENDOR,
            "webhook listening on http://{addr}{} (health: http://{addr}/healthz)",
            cfg.path
        );

        let record_file = cfg.client_ids_file.clone().filter(|_| cfg.record_client_ids);
        let known_clients: HashSet<String> = cfg.all_client_ids()?.into_iter().collect();
        let recent_set = recent.iter().cloned().collect();
        Ok(WebhookSource {
            work: work_rx,
            queue: VecDeque::new(),
            stop,
            acked: Arc::new(acked_tx),
            closing: false,
            ended: false,
            seq,
            recent,
            recent_set,
            dedupe_window: cfg.dedupe_window,
            first_seen,
            zone,
            known_clients,
            record_file,
            account_id: cfg.account_id(),
            token: cfg.token.expose().to_string(),
            metrics: ctx.metrics,
            tasks: vec![serve],
            addr,
        })
    }

    /// The address the listener is bound to (useful with `listen = "127.0.0.1:0"`).
    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    fn state(&self) -> Value {
        let first: serde_json::Map<String, Value> =
            self.first_seen.iter().map(|(c, (us, seq))| (c.clone(), json!({"us": us, "seq": seq}))).collect();
        json!({"mode": "webhook", "seq": self.seq, "recent": self.recent, "first": first})
    }

    /// The `created_at` of `client`'s conversation rows, given the earliest event time of this
    /// POST (`earliest`, µs), and remembers it (module docs). `None` for a client known before
    /// whose first event is not remembered. Call before [`Self::record_client`].
    fn first_event_time(&mut self, client: &str, earliest: i64) -> Option<i64> {
        let next_seq = self.seq + 1;
        let first = match self.first_seen.get(client) {
            Some(&(us, _)) => Some(us.min(earliest)),
            None if self.known_clients.contains(client) => None,
            None => Some(earliest),
        };
        if let Some(us) = first
            && self.dedupe_window > 0
        {
            self.first_seen.insert(client.to_string(), (us, next_seq));
            while self.first_seen.len() > self.dedupe_window {
                let Some(oldest) = self.first_seen.iter().min_by_key(|(_, (_, s))| *s).map(|(c, _)| c.clone()) else {
                    break;
                };
                self.first_seen.remove(&oldest);
            }
        }
        first
    }

    fn remember(&mut self, key: String) {
        if self.dedupe_window == 0 {
            return;
        }
        self.recent_set.insert(key.clone());
        self.recent.push_back(key);
        while self.recent.len() > self.dedupe_window {
            if let Some(old) = self.recent.pop_front() {
                self.recent_set.remove(&old);
            }
        }
    }

    /// Appends a client id seen for the first time to `client_ids_file`.
    fn record_client(&mut self, id: &str) {
        if !self.known_clients.insert(id.to_string()) {
            return;
        }
        let Some(path) = &self.record_file else { return };
        if id.contains(['\n', '\r']) {
            tracing::warn!(vendor = VENDOR, "client id with a line break not recorded in {path}");
            return;
        }
        let written =
            std::fs::OpenOptions::new().create(true).append(true).open(path).and_then(|mut f| writeln!(f, "{id}"));
        if let Err(e) = written {
            tracing::warn!(vendor = VENDOR, "cannot append a client id to {path}: {e}");
        }
    }

    /// Turns one unit of work into queued events.
    fn process(&mut self, work: Work) {
        match work {
            Work::Rejected(dead) => {
                self.queue.extend(dead.into_iter().map(Event::DeadLetter));
                self.seq += 1;
                self.queue.push_back(Event::Checkpoint(Checkpoint { state: self.state() }));
            }
            Work::Events { events, rejected, reply } => {
                let extracted_at = now_micros();
                let mut messages = MessagesBuilder::new();
                let mut per_client: BTreeMap<String, (Vec<pipe_plugin_sdk::schema::MessageRow>, Option<bool>, usize)> =
                    BTreeMap::new();
                // The handler refused these already (`check_event`); every event here passed it.
                let mut dead = rejected;
                // Per client: its conversation's `created_at` (the first event's time, if known).
                let mut first_times: BTreeMap<String, Option<i64>> = BTreeMap::new();
                for ev in &events {
                    let Some(client_id) = client_id(ev) else { continue };
                    let kind = ev.get("type").and_then(Value::as_str).unwrap_or("");
                    let key = format!("{client_id}\u{1f}{}\u{1f}{kind}", question_id(ev).unwrap_or_default());
                    if self.recent_set.contains(&key) {
                        continue; // a retry of an event already emitted
                    }
                    let ctx = MapCtx {
                        account_id: &self.account_id,
                        client_id: &client_id,
                        token: &self.token,
                        extracted_at,
                        zone: self.zone,
                    };
                    match map_item(&ctx, ev, 0, None) {
                        Ok(rows) => {
                            dead.extend(shape_drift(&ctx, ev));
                            self.remember(key);
                            if let Some(earliest) = rows.iter().map(|r| r.sent_at).min() {
                                let first = self.first_event_time(&client_id, earliest);
                                first_times.insert(client_id.clone(), first);
                            }
                            self.record_client(&client_id);
                            let entry = per_client.entry(client_id.clone()).or_default();
                            if let Some(r) = response(ev) {
                                entry.1 = r.get("endSession").and_then(Value::as_bool).or(entry.1);
                            }
                            entry.2 += 1;
                            entry.0.extend(rows);
                        }
                        Err(dl) => dead.push(dl),
                    }
                }
                let mut conversations = ConversationsBuilder::new();
                for (client_id, (rows, ended, items)) in &per_client {
                    let ctx = MapCtx {
                        account_id: &self.account_id,
                        client_id,
                        token: &self.token,
                        extracted_at,
                        zone: self.zone,
                    };
                    for r in rows {
                        messages.append(r);
                    }
                    Metrics::add(&self.metrics.messages, rows.len() as u64);
                    let mut row = conversation(&ctx, rows, None, *ended, 0, *items);
                    row.created_at = first_times.get(client_id).copied().flatten();
                    conversations.append(&row);
                }
                let produced = !dead.is_empty() || !messages.is_empty();
                self.queue.extend(dead.into_iter().map(Event::DeadLetter));
                if !messages.is_empty() {
                    self.queue.push_back(Event::Batch { stream: MESSAGES.into(), batch: messages.finish() });
                    self.queue.push_back(Event::Batch { stream: CONVERSATIONS.into(), batch: conversations.finish() });
                }
                if produced {
                    self.seq += 1;
                    self.queue.push_back(Event::Checkpoint(Checkpoint { state: self.state() }));
                }
                // Nothing new (all retries): acknowledged once what is already emitted is committed.
                let _ = reply.send(self.seq);
            }
        }
    }
}

fn client_id(ev: &Value) -> Option<String> {
    match ev.get("clientId")? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first event time (µs) and latest POST `seq` per client, as the state remembers them.
type FirstSeen = BTreeMap<String, (i64, u64)>;

/// `(seq, recent keys, first event times)` of a saved state; a state of the other mode starts
/// at 0; a state without `first` (written before it existed) remembers no first time.
///
/// Errors: [`PluginError::Config`] when a webhook state has no numeric `seq`.
fn from_state(state: Option<&Value>) -> Result<(u64, VecDeque<String>, FirstSeen)> {
    let Some(s) = state.filter(|s| s.get("mode").and_then(Value::as_str) == Some("webhook")) else {
        return Ok((0, VecDeque::new(), BTreeMap::new()));
    };
    let first = s
        .get("first")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter().filter_map(|(c, v)| Some((c.clone(), (v.get("us")?.as_i64()?, v.get("seq")?.as_u64()?)))).collect()
        })
        .unwrap_or_default();
    let seq = s.get("seq").and_then(Value::as_u64).ok_or_else(|| PluginError::Config {
        path: String::new(),
        message: "the saved webhook state has no numeric `seq`; reset it with `pipe state reset`".into(),
    })?;
    let recent = s
        .get("recent")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    Ok((seq, recent, first))
}

impl Drop for WebhookSource {
    fn drop(&mut self) {
        self.stop.cancel();
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[async_trait::async_trait]
impl Source for WebhookSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    fn stops_gracefully(&self) -> bool {
        true
    }

    /// Every POST waits for a commit: commit as soon as a checkpoint is pending.
    fn commit_cadence(&self) -> CommitCadence {
        CommitCadence::Prompt
    }

    fn attach_control(&mut self, control: SourceControl) {
        // Committed states → the highest committed `seq`, which the handlers wait for.
        let acked = self.acked.clone();
        let mut committed = control.committed;
        self.tasks.push(tokio::spawn(async move {
            while committed.changed().await.is_ok() {
                let seq = committed.borrow_and_update().as_ref().and_then(|s| s.get("seq")).and_then(Value::as_u64);
                if let Some(seq) = seq {
                    acked.send_modify(|c| *c = (*c).max(seq));
                }
            }
        }));
        let stop = self.stop.clone();
        let shutdown = control.shutdown;
        self.tasks.push(tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        }));
    }

    async fn next(&mut self) -> Result<Event> {
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(ev);
            }
            if self.ended {
                return Ok(Event::End);
            }
            if self.closing {
                // Everything received is queued: a last checkpoint, then the end.
                self.ended = true;
                self.queue.push_back(Event::Checkpoint(Checkpoint { state: self.state() }));
                continue;
            }
            tokio::select! {
                biased;
                work = self.work.recv() => match work {
                    Some(w) => self.process(w),
                    None => self.closing = true,
                },
                _ = self.stop.cancelled() => {
                    // Stop taking POSTs; those already handed over are drained by recv above.
                    tracing::info!(vendor = VENDOR, "webhook listener stopping");
                    self.work.close();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "UnitTest:00112233445566778899aabbccddeeff00112233";

    fn open(state: Option<Value>) -> (WebhookSource, CancellationToken, watch::Sender<Option<Value>>) {
        open_with(TOKEN, state)
    }

    fn open_with(
        token: &str,
        state: Option<Value>,
    ) -> (WebhookSource, CancellationToken, watch::Sender<Option<Value>>) {
        let cfg: AimylogicConfig = pipe_plugin_sdk::config::parse(
            json!({"mode": "webhook", "token": token, "listen": "127.0.0.1:0", "path": "/hook"}),
        )
        .unwrap();
        let ctx = SourceContext { pipeline: "t".into(), state, limit: None, metrics: Arc::default() };
        let mut src = WebhookSource::open(cfg, ctx).unwrap();
        let shutdown = CancellationToken::new();
        let (committed, rx) = watch::channel(None);
        src.attach_control(SourceControl { shutdown: shutdown.clone(), committed: rx });
        (src, shutdown, committed)
    }

    fn post(src: &WebhookSource, body: Value) -> tokio::task::JoinHandle<u16> {
        let url = format!("http://{}/hook", src.local_addr());
        tokio::spawn(
            async move { reqwest::Client::new().post(url).json(&body).send().await.unwrap().status().as_u16() },
        )
    }

    fn event(qid: &str) -> Value {
        json!({"token": TOKEN, "clientId": "c1", "questionId": qid, "query": "hi", "data": {"replies": [{"type": "text", "text": "hello"}]}, "timestamp": "2026-01-01T00:00:00.000"})
    }

    #[tokio::test]
    async fn acknowledges_only_after_commit_dedupes_and_stops_gracefully() {
        let (mut src, shutdown, committed) = open(None);
        let first = post(&src, json!([event("q1")]));
        let mut seen = Vec::new();
        loop {
            match src.next().await.unwrap() {
                Event::Checkpoint(cp) => {
                    assert_eq!(cp.state["seq"], 1);
                    break;
                }
                Event::Batch { stream, batch } => seen.push((stream, batch.num_rows())),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, [("messages".to_string(), 2), ("conversations".to_string(), 1)]);
        // Emitted but not committed: no answer yet.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!first.is_finished(), "acknowledged before the commit");
        committed.send_replace(Some(json!({"mode": "webhook", "seq": 1})));
        assert_eq!(first.await.unwrap(), 200);

        // The same event again: nothing emitted, acknowledged at once (already committed).
        let again = post(&src, json!([event("q1")]));
        assert!(tokio::time::timeout(Duration::from_millis(300), src.next()).await.is_err(), "a repeat was emitted");
        assert_eq!(again.await.unwrap(), 200);

        // Another channel's event, an event without a token and one with an over-long
        // clientId are refused (422) and dead letters, with no token in them.
        let mut foreign = event("q9");
        foreign["token"] = json!("Other000:ffffffffffffffffffffffffffffffffffffffff");
        let mut long = event("q7");
        long["clientId"] = json!("c".repeat(MAX_ID_BYTES + 1));
        let mixed = post(&src, json!([foreign, {"clientId": "c1", "questionId": "q8"}, long]));
        let mut reasons = Vec::new();
        loop {
            match src.next().await.unwrap() {
                Event::DeadLetter(dl) => {
                    assert!(!dl.raw.to_string().contains("ffffffff"), "{}", dl.raw);
                    reasons.push(dl.reason);
                }
                Event::Checkpoint(_) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(reasons, ["token_mismatch", "missing_token", "oversized_id"]);
        assert_eq!(mixed.await.unwrap(), 422);

        // Shutdown: a last checkpoint, then End.
        shutdown.cancel();
        assert!(matches!(src.next().await.unwrap(), Event::Checkpoint(_)));
        assert!(matches!(src.next().await.unwrap(), Event::End));
    }

    #[tokio::test]
    async fn state_carries_seq_and_dedupe_keys_across_restarts() {
        let state = json!({"mode": "webhook", "seq": 7, "recent": ["c1\u{1f}q1\u{1f}"]});
        let (mut src, _shutdown, _committed) = open(Some(state));
        // Committed seq 7 is known: a repeat of q1 is acknowledged without new rows.
        let repeat = post(&src, json!([event("q1")]));
        assert!(tokio::time::timeout(Duration::from_millis(300), src.next()).await.is_err());
        assert_eq!(repeat.await.unwrap(), 200);
        // A new event continues the numbering.
        let _new = post(&src, json!([event("q2")]));
        loop {
            if let Event::Checkpoint(cp) = src.next().await.unwrap() {
                assert_eq!(cp.state["seq"], 8);
                break;
            }
        }
    }

    /// The webhook object of the Aimylogic help page ("Chat API", English edition; see
    /// docs/vendors/aimylogic.md §2.3), exactly as the page shows it; its `// Bot message`
    /// annotation is not JSON and is removed before parsing.
    const SEED_OBJECT: &str = r#"{
"token": "token",
"clientId": "test",
"questionId": "12345",
"data": {
"nlpClass": "/CatchAll",
"confidence": -0.010999999999999979,
"replies": [ // Bot message
{
"type": "text",
"text": "Tell the bot something",
"state": "/CatchAll"
}
],
"answer": "Tell the bot something",
"newSessionStarted": false,
"debugData": [],
"endSession": false
},
"timestamp": "2022-09-28T12:32:13.262",
"blockForm": false
}"#;

    fn seed_object() -> Value {
        serde_json::from_str(&SEED_OBJECT.replace("// Bot message", "")).unwrap()
    }

    /// The rows of the next POST: (messages as (id, role, type, text, sent_at), conversations
    /// as (id, created_at, updated_at, visitor_id)), and the dead-letter reasons.
    type PostRows = (
        Vec<(String, String, String, Option<String>, i64)>,
        Vec<(String, Option<i64>, Option<i64>, Option<String>)>,
        Vec<String>,
    );

    async fn next_post(src: &mut WebhookSource) -> PostRows {
        use pipe_plugin_sdk::reexports::arrow_array::Array as _;
        use pipe_plugin_sdk::reexports::arrow_array::cast::AsArray;
        use pipe_plugin_sdk::reexports::arrow_array::types::TimestampMicrosecondType;
        let (mut msgs, mut convs, mut dead) = (Vec::new(), Vec::new(), Vec::new());
        loop {
            match src.next().await.unwrap() {
                Event::Checkpoint(_) => return (msgs, convs, dead),
                Event::DeadLetter(dl) => dead.push(dl.reason),
                Event::Batch { stream, batch } => {
                    let s = |c: &str| batch.column_by_name(c).unwrap().as_string::<i32>().clone();
                    let t =
                        |c: &str| batch.column_by_name(c).unwrap().as_primitive::<TimestampMicrosecondType>().clone();
                    if stream == MESSAGES {
                        let (id, role, kind, text, at) =
                            (s("message_id"), s("sender_role"), s("message_type"), s("text"), t("sent_at"));
                        for r in 0..batch.num_rows() {
                            msgs.push((
                                id.value(r).to_string(),
                                role.value(r).to_string(),
                                kind.value(r).to_string(),
                                text.is_valid(r).then(|| text.value(r).to_string()),
                                at.value(r),
                            ));
                        }
                    } else {
                        let (id, created, updated, visitor) =
                            (s("conversation_id"), t("created_at"), t("updated_at"), s("visitor_id"));
                        for r in 0..batch.num_rows() {
                            convs.push((
                                id.value(r).to_string(),
                                created.is_valid(r).then(|| created.value(r)),
                                updated.is_valid(r).then(|| updated.value(r)),
                                visitor.is_valid(r).then(|| visitor.value(r).to_string()),
                            ));
                        }
                    }
                }
                Event::End => panic!("unexpected end"),
            }
        }
    }

    #[tokio::test]
    async fn the_seed_object_gives_its_bot_reply_only_and_created_at_stays_the_first_event_time() {
        use pipe_plugin_sdk::time::parse_timestamp_micros;
        let (mut src, _shutdown, committed) = open_with("token", None);
        let first_post = post(&src, json!([seed_object()]));
        let (msgs, convs, dead) = next_post(&mut src).await;
        let t0 = parse_timestamp_micros("2022-09-28T12:32:13.262").unwrap();
        // No `query`, no `event`: no visitor message is invented; the reply is the bot's.
        assert_eq!(
            msgs,
            [(
                "12345:r0".to_string(),
                "bot".to_string(),
                "text".to_string(),
                Some("Tell the bot something".to_string()),
                t0
            )]
        );
        assert_eq!(convs, [("test".to_string(), Some(t0), Some(t0), Some("test".to_string()))]);
        assert!(dead.is_empty(), "{dead:?}");
        committed.send_replace(Some(json!({"mode": "webhook", "seq": 1})));
        assert_eq!(first_post.await.unwrap(), 200);

        // A later POST of the same client: the row's created_at is still the first event's.
        let mut later = seed_object();
        later["questionId"] = json!("12346");
        later["timestamp"] = json!("2022-09-28T12:40:00.000");
        let second_post = post(&src, json!([later]));
        let (msgs, convs, _) = next_post(&mut src).await;
        let t1 = parse_timestamp_micros("2022-09-28T12:40:00.000").unwrap();
        assert_eq!(msgs.iter().map(|m| m.0.as_str()).collect::<Vec<_>>(), ["12346:r0"]);
        assert_eq!(convs, [("test".to_string(), Some(t0), Some(t1), Some("test".to_string()))]);
        committed.send_replace(Some(json!({"mode": "webhook", "seq": 2})));
        assert_eq!(second_post.await.unwrap(), 200);

        // The state carries the first time across a restart.
        let state = src.state();
        assert_eq!(state["first"]["test"]["us"], json!(t0));
        drop(src);
        let (mut again, _s, _c) = open_with("token", Some(state));
        let mut third = seed_object();
        third["questionId"] = json!("12347");
        third["timestamp"] = json!("2022-09-29T08:00:00.000");
        let _p = post(&again, json!([third]));
        let (_, convs, _) = next_post(&mut again).await;
        assert_eq!(convs[0].1, Some(t0));
    }

    #[tokio::test]
    async fn a_client_known_before_without_a_remembered_first_event_gets_no_created_at() {
        let cfg: AimylogicConfig = pipe_plugin_sdk::config::parse(json!({"mode": "webhook", "token": "token",
            "listen": "127.0.0.1:0", "path": "/hook", "client_ids": ["test"], "timezone": "Europe/Moscow"}))
        .unwrap();
        let ctx = SourceContext { pipeline: "t".into(), state: None, limit: None, metrics: Arc::default() };
        let mut src = WebhookSource::open(cfg, ctx).unwrap();
        let (_committed, rx) = watch::channel(None);
        src.attach_control(SourceControl { shutdown: CancellationToken::new(), committed: rx });
        let _p = post(&src, json!([seed_object()]));
        let (msgs, convs, _) = next_post(&mut src).await;
        assert_eq!(convs[0].1, None, "its history began before the listener saw it");
        // `timezone`: the seed's zone-less 12:32:13.262 read as Moscow time is 09:32 UTC.
        assert_eq!(pipe_plugin_sdk::time::format_micros(msgs[0].4), "2022-09-28T09:32:13.262000Z");
    }
}
