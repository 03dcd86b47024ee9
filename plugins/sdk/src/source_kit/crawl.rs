//! The crawl driver: how an HTTP source turns a vendor crawl into the source protocol.
//!
//! ```text
//!  CrawlSource::spawn(spec, crawl)          engine
//!        │ tokio task                          ▲ Source::next()
//!        ▼                                     │
//!  Crawl::run(&mut Emitter) ── rows ──► Emitter ══ bounded channel (4 events) ══╝
//!                           ── advance(units, state) → batch cut / checkpoint every N units
//!  Ok            → End
//!  retry budget  → flush, Checkpoint(Crawl::state), DeadLetter(retry_budget_exhausted), End
//!  listing cut   → flush, Checkpoint(Crawl::state), DeadLetter(paging_loop | response_too_large), End
//!  other error   → the error, as the next event
//! ```
//!
//! * The crawl runs in its own task on the caller's tokio runtime; events pass through a small
//!   bounded channel, so a slow pipeline slows the vendor requests and memory stays flat.
//! * Dropping the [`CrawlSource`] aborts the task (a run stopped by `--limit`, a signal or a
//!   failing sink sends no more requests).
//! * [`Emitter::flush`] sends the `messages` batch before the `conversations` batch, so a
//!   conversation's messages reach the transforms no later than the conversation row
//!   (docs/design.md §3.1).
//! * A checkpoint is emitted every `checkpoint_every` units of work (conversations, or clients
//!   for a vendor that exports per client) or once [`CHECKPOINT_BYTES`] of rows were appended
//!   since the last one, whichever comes first, and a batch is cut before it grows past
//!   [`BATCH_MESSAGES`] messages, [`BATCH_CONVERSATIONS`] conversations or [`BATCH_BYTES`]
//!   bytes of text and raw payloads.
//! * When the vendor keeps failing and the run's retry budget is spent
//!   ([`PluginError::RetryBudgetExhausted`]), what is complete is committed and the run ends
//!   `partial` (exit 3): the driver flushes, checkpoints [`Crawl::state`], records a dead letter
//!   with reason [`REASON_RETRY_BUDGET`] and ends normally.
//! * When a listing cannot be read to its end ([`PluginError::ListingCut`]: its pages repeat,
//!   or a response is over `max_response_bytes`) and the crawl lets the error out, the same
//!   happens with the error's reason (`paging_loop`, `response_too_large`): the conversation
//!   listing ends there, what was read before it is committed, the run ends `partial`. A crawl
//!   that meets the error in one conversation's own listing dead-letters that conversation
//!   itself and goes on ([`cut_conversation`]).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::schema::{
    CONVERSATIONS, ConversationRow, ConversationsBuilder, MESSAGES, MessageRow, MessagesBuilder, conversations_schema,
    messages_schema,
};
use crate::{
    Checkpoint, DeadLetter, Event, Metrics, PluginError, REASON_CONVERSATION_FORBIDDEN, REASON_CONVERSATION_GONE,
    REASON_RETRY_BUDGET, Result, Source, StreamDecl,
};

/// Messages per emitted batch, at most.
pub const BATCH_MESSAGES: usize = 8192;
/// Conversations per emitted batch, at most.
pub const BATCH_CONVERSATIONS: usize = 1024;
/// A batch is cut once its rows hold this many bytes of text and raw payload (the bulk of a
/// row), whatever their number: with long messages a batch of [`BATCH_MESSAGES`] rows would
/// otherwise grow with the vendor's payloads, and each batch is held in several places at once
/// (the builder, the channels, the coordinator's hold-back).
pub const BATCH_BYTES: usize = 4 * 1024 * 1024;
/// A checkpoint follows at the next unit boundary once the rows appended since the last one
/// hold this many bytes of text and raw payload. The engine holds back what no checkpoint
/// covers yet (engine/src/runtime/coordinator.rs), so without this the hold-back would grow
/// with the conversations' size times `checkpoint_every`, not with a budget.
pub const CHECKPOINT_BYTES: usize = 1024 * 1024;
/// Events buffered between the crawl task and the engine.
const CHANNEL_EVENTS: usize = 4;

/// What the driver needs to know of a crawl.
#[derive(Debug, Clone)]
pub struct CrawlSpec {
    /// Vendor name: the `stage` and `vendor` of the retry-budget dead letter, and in errors.
    pub vendor: &'static str,
    /// The `account_id` of the rows (the key of the retry-budget dead letter).
    pub account_id: String,
    /// A checkpoint after this many units of work (at least 1).
    pub checkpoint_every: u64,
    /// What a unit of work is, plural, for the retry-budget message (`conversations`, `clients`).
    pub unit: &'static str,
    /// Run counters: the emitter adds the rows it is given.
    pub metrics: Arc<Metrics>,
}

/// One vendor crawl, run by [`CrawlSource::spawn`] in its own task.
#[async_trait::async_trait]
pub trait Crawl: Send + 'static {
    /// Crawls the account: appends rows to `out`, calls [`Emitter::advance`] after each unit
    /// of work, and checkpoints at the end ([`Emitter::checkpoint`]). The driver sends `End`
    /// after it returns `Ok`.
    ///
    /// Errors: any; [`PluginError::RetryBudgetExhausted`] ends the run partial (module docs),
    /// every other error fails the run.
    async fn run(&mut self, out: &mut Emitter) -> Result<()>;

    /// The state covering every row appended so far: checkpointed when the retry budget ends
    /// the run (the driver flushes those rows first).
    fn state(&self) -> Value;
}

/// A source whose events come from a [`Crawl`] task: the canonical `conversations` and
/// `messages` streams. Dropping it aborts the crawl.
pub struct CrawlSource {
    events: mpsc::Receiver<Result<Event>>,
    task: tokio::task::JoinHandle<()>,
    vendor: &'static str,
}

impl CrawlSource {
    /// Starts `crawl` on the current tokio runtime (call it from inside one: a source's open).
    pub fn spawn(spec: CrawlSpec, mut crawl: impl Crawl) -> Self {
        let vendor = spec.vendor;
        let (tx, events) = mpsc::channel(CHANNEL_EVENTS);
        let task = tokio::spawn(async move {
            let mut out = Emitter::new(tx, spec);
            let result = crawl.run(&mut out).await;
            let ended = match result {
                Ok(()) => out.send(Event::End).await,
                Err(PluginError::RetryBudgetExhausted { vendor, message }) => {
                    let units = format!("{} {}", out.units, out.spec.unit);
                    let message = format!(
                        "{vendor} kept failing and the retry budget is spent; stopped after {units} ({message})"
                    );
                    out.end_partial(REASON_RETRY_BUDGET, message, crawl.state()).await
                }
                Err(PluginError::ListingCut { reason, message, .. }) => {
                    let message = format!("{message}; stopped after {} {}", out.units, out.spec.unit);
                    out.end_partial(reason, message, crawl.state()).await
                }
                Err(e) => Err(e),
            };
            if let Err(e) = ended {
                // The receiver may be gone already (the run stopped): nothing left to tell.
                let _ = out.tx.send(Err(e)).await;
            }
        });
        CrawlSource { events, task, vendor }
    }
}

impl Drop for CrawlSource {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[async_trait::async_trait]
impl Source for CrawlSource {
    fn streams(&self) -> Vec<StreamDecl> {
        vec![
            StreamDecl { name: CONVERSATIONS.into(), schema: conversations_schema() },
            StreamDecl { name: MESSAGES.into(), schema: messages_schema() },
        ]
    }

    async fn next(&mut self) -> Result<Event> {
        match self.events.recv().await {
            Some(ev) => ev,
            None => Err(PluginError::other(format!("{} crawl task ended without End (it panicked?)", self.vendor))),
        }
    }
}

/// Rows being built, the way to the engine, and the checkpoint cadence.
pub struct Emitter {
    tx: mpsc::Sender<Result<Event>>,
    spec: CrawlSpec,
    messages: MessagesBuilder,
    conversations: ConversationsBuilder,
    /// Conversation rows appended by this run.
    emitted: u64,
    /// Units of work done by this run.
    units: u64,
    /// `units` at the last periodic checkpoint.
    checkpointed: u64,
    /// Bytes of text and raw payload in the rows being built (compared with [`BATCH_BYTES`]).
    pending_bytes: usize,
    /// The same since the last checkpoint (compared with [`CHECKPOINT_BYTES`]).
    unchecked_bytes: usize,
}

impl Emitter {
    fn new(tx: mpsc::Sender<Result<Event>>, spec: CrawlSpec) -> Self {
        Emitter {
            tx,
            spec,
            messages: MessagesBuilder::new(),
            conversations: ConversationsBuilder::new(),
            emitted: 0,
            units: 0,
            checkpointed: 0,
            pending_bytes: 0,
            unchecked_bytes: 0,
        }
    }

    /// Sends one event as it is (rows still being built are not flushed first).
    ///
    /// Errors: the pipeline stopped reading (the engine dropped the source).
    pub async fn send(&self, event: Event) -> Result<()> {
        self.tx
            .send(Ok(event))
            .await
            .map_err(|_| PluginError::other(format!("pipeline stopped reading from the {} source", self.spec.vendor)))
    }

    /// Sends a dead letter at once (it travels beside the batches).
    pub async fn dead_letter(&self, dead_letter: DeadLetter) -> Result<()> {
        self.send(Event::DeadLetter(dead_letter)).await
    }

    /// Appends the rows of one conversation (its messages, then the row itself if any) and
    /// counts them in the run's metrics.
    pub fn append(&mut self, messages: &[MessageRow], conversation: Option<&ConversationRow>) {
        Metrics::add(&self.spec.metrics.messages, messages.len() as u64);
        let before = self.pending_bytes;
        for m in messages {
            self.pending_bytes += m.raw.len() + m.text.as_ref().map_or(0, String::len);
            self.messages.append(m);
        }
        if let Some(c) = conversation {
            self.pending_bytes += c.raw.len();
            self.conversations.append(c);
            self.emitted += 1;
            Metrics::add(&self.spec.metrics.conversations, 1);
        }
        self.unchecked_bytes += self.pending_bytes - before;
    }

    /// Conversation rows appended by this run (what `pipe run --limit N` counts).
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Records `units` more units of work done. Every `checkpoint_every` units, or once
    /// [`CHECKPOINT_BYTES`] were appended since the last checkpoint, this flushes and
    /// checkpoints `state()`; otherwise it cuts a batch when one is full.
    pub async fn advance(&mut self, units: u64, state: impl FnOnce() -> Value) -> Result<()> {
        self.units += units;
        if self.units >= self.checkpointed + self.spec.checkpoint_every.max(1)
            // By bytes only when a unit was finished here: a conversation skipped (0 units)
            // leaves the cadence where `checkpoint_every` alone would have it.
            || (units > 0 && self.unchecked_bytes >= CHECKPOINT_BYTES)
        {
            self.checkpointed = self.units;
            self.checkpoint(state()).await
        } else if self.messages.len() >= BATCH_MESSAGES
            || self.conversations.len() >= BATCH_CONVERSATIONS
            || self.pending_bytes >= BATCH_BYTES
        {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Sends the rows built so far: messages first, then the conversations they belong to.
    pub async fn flush(&mut self) -> Result<()> {
        self.pending_bytes = 0;
        if !self.messages.is_empty() {
            let batch = self.messages.finish();
            self.send(Event::Batch { stream: MESSAGES.into(), batch }).await?;
        }
        if !self.conversations.is_empty() {
            let batch = self.conversations.finish();
            self.send(Event::Batch { stream: CONVERSATIONS.into(), batch }).await?;
        }
        Ok(())
    }

    /// Flushes, then checkpoints `state` (it must cover every row appended so far).
    pub async fn checkpoint(&mut self, state: Value) -> Result<()> {
        self.unchecked_bytes = 0;
        self.flush().await?;
        self.send(Event::Checkpoint(Checkpoint { state })).await
    }

    /// The crawl cannot go on (retry budget spent, listing cut): commit what is complete, then
    /// a dead letter with `reason` keyed by the account, and end (the engine ends it partial).
    async fn end_partial(&mut self, reason: &str, message: String, state: Value) -> Result<()> {
        self.checkpoint(state).await?;
        let dl = DeadLetter {
            stream: CONVERSATIONS.into(),
            key: json!({"vendor": self.spec.vendor, "account_id": self.spec.account_id}),
            stage: self.spec.vendor.into(),
            reason: reason.into(),
            message,
            raw: Value::Null,
        };
        self.dead_letter(dl).await?;
        self.send(Event::End).await
    }
}

/// For a crawl fetching one conversation: `Ok(Err(dead letter))` when `result` is a
/// [`PluginError::ListingCut`] (the conversation's own listing loops or is too large) or
/// [`PluginError::NotFound`] (deleted since it was listed: [`REASON_CONVERSATION_GONE`]). The
/// dead letter is keyed by `vendor`, `account_id` and `conversation_id`, and the crawl goes on
/// with the others; any other result as it is. The engine names the conversation and ends the
/// run `partial`.
pub fn cut_conversation<T>(
    result: Result<T>,
    vendor: &str,
    account_id: &str,
    conversation_id: &str,
) -> Result<std::result::Result<T, DeadLetter>> {
    cut(result, vendor, account_id, conversation_id, false)
}

/// [`cut_conversation`] for a conversation the vendor itself listed with the same credentials:
/// the listing was readable, so an HTTP 403 on this conversation's own endpoints is this
/// conversation's (a room or channel those credentials may not read:
/// [`REASON_CONVERSATION_FORBIDDEN`]), not refused credentials. Where conversation ids come
/// from the configuration instead (Aimylogic's clients), a 403 means a bad token and stays an
/// error: use [`cut_conversation`].
pub fn cut_listed_conversation<T>(
    result: Result<T>,
    vendor: &str,
    account_id: &str,
    conversation_id: &str,
) -> Result<std::result::Result<T, DeadLetter>> {
    cut(result, vendor, account_id, conversation_id, true)
}

fn cut<T>(
    result: Result<T>,
    vendor: &str,
    account_id: &str,
    conversation_id: &str,
    listed: bool,
) -> Result<std::result::Result<T, DeadLetter>> {
    let dead_letter = |reason: &str, message: String| DeadLetter {
        stream: CONVERSATIONS.into(),
        key: json!({"vendor": vendor, "account_id": account_id, "conversation_id": conversation_id}),
        stage: vendor.into(),
        reason: reason.into(),
        message: format!("conversation `{conversation_id}` not exported: {message}"),
        raw: Value::Null,
    };
    match result {
        Ok(v) => Ok(Ok(v)),
        Err(PluginError::ListingCut { reason, message, .. }) => Ok(Err(dead_letter(reason, message))),
        Err(PluginError::NotFound { message, .. }) => Ok(Err(dead_letter(REASON_CONVERSATION_GONE, message))),
        Err(e @ PluginError::Auth { status: 403, .. }) if listed => {
            Ok(Err(dead_letter(REASON_CONVERSATION_FORBIDDEN, e.to_string())))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::schema::SenderRole;

    fn message(conversation: &str, i: u32) -> MessageRow {
        MessageRow {
            vendor: "v".into(),
            account_id: "a".into(),
            conversation_id: conversation.into(),
            message_id: format!("{conversation}-{i}"),
            seq: i,
            sent_at: 1,
            sender_role: SenderRole::Visitor,
            sender_id: None,
            sender_name: None,
            message_type: "msg".into(),
            text: Some("hi".into()),
            is_encrypted: false,
            ciphertext: None,
            tags: Vec::new(),
            attributes: Default::default(),
            raw: "{}".into(),
            extracted_at: 2,
        }
    }

    fn conversation(id: &str) -> ConversationRow {
        ConversationRow {
            vendor: "v".into(),
            account_id: "a".into(),
            conversation_id: id.into(),
            channel_id: None,
            title: None,
            state: None,
            is_ended: None,
            created_at: None,
            updated_at: None,
            ended_at: None,
            last_message_at: None,
            message_count: None,
            visitor_id: None,
            visitor_name: None,
            agent_ids: Vec::new(),
            tag_ids: Vec::new(),
            tags: Vec::new(),
            variables: Default::default(),
            raw: "{}".into(),
            extracted_at: 2,
        }
    }

    fn spec(checkpoint_every: u64) -> CrawlSpec {
        CrawlSpec {
            vendor: "v",
            account_id: "a".into(),
            checkpoint_every,
            unit: "conversations",
            metrics: Arc::default(),
        }
    }

    /// Emits `n` conversations of two messages each, then fails with `fail` (if any).
    struct Fake {
        n: u32,
        fail: Option<PluginError>,
        done: u32,
    }

    #[async_trait::async_trait]
    impl Crawl for Fake {
        async fn run(&mut self, out: &mut Emitter) -> Result<()> {
            for i in 0..self.n {
                let id = format!("c{i}");
                out.append(&[message(&id, 0), message(&id, 1)], Some(&conversation(&id)));
                self.done = i + 1;
                let done = self.done;
                out.advance(1, || json!({"done": done})).await?;
            }
            if let Some(e) = self.fail.take() {
                return Err(e);
            }
            out.checkpoint(self.state()).await
        }

        fn state(&self) -> Value {
            json!({"done": self.done})
        }
    }

    /// Every event until `End` or an error, as short strings.
    async fn drain(mut source: CrawlSource) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match source.next().await {
                Ok(Event::Batch { stream, batch }) => out.push(format!("{stream}:{}", batch.num_rows())),
                Ok(Event::Checkpoint(c)) => out.push(format!("checkpoint:{}", c.state["done"])),
                Ok(Event::DeadLetter(d)) => out.push(format!("dead_letter:{}:{}", d.reason, d.message)),
                Ok(Event::End) => {
                    out.push("end".into());
                    return out;
                }
                Err(e) => {
                    out.push(format!("error:{e}"));
                    return out;
                }
            }
        }
    }

    #[tokio::test]
    async fn messages_before_their_conversations_and_a_checkpoint_every_n_units() {
        let spec = spec(2);
        let metrics = spec.metrics.clone();
        let source = CrawlSource::spawn(spec, Fake { n: 5, fail: None, done: 0 });
        assert_eq!(source.streams().iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), [CONVERSATIONS, MESSAGES]);
        let events = drain(source).await;
        assert_eq!(
            events,
            [
                "messages:4",
                "conversations:2",
                "checkpoint:2",
                "messages:4",
                "conversations:2",
                "checkpoint:4",
                "messages:2",
                "conversations:1",
                "checkpoint:5",
                "end"
            ]
        );
        assert_eq!((Metrics::get(&metrics.conversations), Metrics::get(&metrics.messages)), (5, 10));
    }

    /// Conversations of one 256 KiB message each: however few rows and conversations, a batch
    /// is cut and a checkpoint follows once they hold `CHECKPOINT_BYTES` of payload, so the
    /// engine never holds back much more than that.
    struct Large;

    #[async_trait::async_trait]
    impl Crawl for Large {
        async fn run(&mut self, out: &mut Emitter) -> Result<()> {
            for i in 0..10 {
                let id = format!("c{i}");
                let big = MessageRow { raw: "x".repeat(256 * 1024), ..message(&id, 0) };
                out.append(&[big], Some(&conversation(&id)));
                out.advance(1, || json!({"done": i + 1})).await?;
            }
            out.checkpoint(json!({"done": 10})).await
        }

        fn state(&self) -> Value {
            Value::Null
        }
    }

    #[tokio::test]
    async fn a_batch_is_cut_and_checkpointed_at_the_byte_budget_whatever_its_rows() {
        // checkpoint_every = 1000 conversations: only the byte budget cuts here.
        let events = drain(CrawlSource::spawn(spec(1000), Large)).await;
        // 256 KiB of raw plus a little per message: the fourth passes 1 MiB.
        assert_eq!(
            events,
            [
                "messages:4",
                "conversations:4",
                "checkpoint:4",
                "messages:4",
                "conversations:4",
                "checkpoint:8",
                "messages:2",
                "conversations:2",
                "checkpoint:10",
                "end"
            ]
        );
    }

    #[tokio::test]
    async fn a_spent_retry_budget_commits_what_is_done_and_ends_partial() {
        let fail = PluginError::RetryBudgetExhausted { vendor: "v".into(), message: "last failure: HTTP 503".into() };
        let events = drain(CrawlSource::spawn(spec(10), Fake { n: 3, fail: Some(fail), done: 0 })).await;
        assert_eq!(
            events,
            [
                "messages:6",
                "conversations:3",
                "checkpoint:3",
                "dead_letter:retry_budget_exhausted:v kept failing and the retry budget is spent; stopped after 3 conversations (last failure: HTTP 503)",
                "end"
            ]
        );
    }

    #[tokio::test]
    async fn a_cut_listing_commits_what_is_done_and_ends_partial_with_its_reason() {
        for reason in [crate::REASON_PAGING_LOOP, crate::REASON_RESPONSE_TOO_LARGE] {
            let fail = PluginError::ListingCut { vendor: "v".into(), reason, message: "in /chats".into() };
            let events = drain(CrawlSource::spawn(spec(10), Fake { n: 2, fail: Some(fail), done: 0 })).await;
            assert_eq!(
                events,
                [
                    "messages:4".to_string(),
                    "conversations:2".into(),
                    "checkpoint:2".into(),
                    format!("dead_letter:{reason}:in /chats; stopped after 2 conversations"),
                    "end".into()
                ]
            );
        }
    }

    #[test]
    fn a_cut_conversation_is_a_dead_letter_and_other_errors_stay_errors() {
        let cut = PluginError::ListingCut { vendor: "v".into(), reason: "paging_loop", message: "loop".into() };
        let dl = cut_conversation::<()>(Err(cut), "v", "a", "c1").unwrap().unwrap_err();
        assert_eq!((dl.reason.as_str(), dl.key["conversation_id"].as_str()), ("paging_loop", Some("c1")));
        assert!(dl.message.contains("c1") && dl.message.contains("loop"), "{}", dl.message);
        assert_eq!(cut_conversation(Ok(5), "v", "a", "c1").unwrap().unwrap(), 5);
        assert!(cut_conversation::<()>(Err(PluginError::other("boom")), "v", "a", "c").is_err());
        let gone = PluginError::NotFound { vendor: "v".into(), message: "v answered HTTP 404".into() };
        let dl = cut_conversation::<()>(Err(gone), "v", "a", "c2").unwrap().unwrap_err();
        assert_eq!(dl.reason, REASON_CONVERSATION_GONE);
    }

    #[test]
    fn a_403_is_the_conversations_only_when_the_vendor_listed_it() {
        let forbidden = || PluginError::Auth { vendor: "v".into(), status: 403, what: "/chats/c3".into() };
        // Ids from the configuration: a 403 is refused credentials, and fails the run.
        assert!(matches!(
            cut_conversation::<()>(Err(forbidden()), "v", "a", "c3"),
            Err(PluginError::Auth { status: 403, .. })
        ));
        // Listed by the vendor with the same credentials: this conversation's.
        let dl = cut_listed_conversation::<()>(Err(forbidden()), "v", "a", "c3").unwrap().unwrap_err();
        assert_eq!(
            (dl.reason.as_str(), dl.key["conversation_id"].as_str()),
            (REASON_CONVERSATION_FORBIDDEN, Some("c3"))
        );
        // A 401 never is.
        let refused = PluginError::Auth { vendor: "v".into(), status: 401, what: "/chats".into() };
        assert!(cut_listed_conversation::<()>(Err(refused), "v", "a", "c3").is_err());
    }

    #[tokio::test]
    async fn other_errors_fail_the_run() {
        let events =
            drain(CrawlSource::spawn(spec(10), Fake { n: 1, fail: Some(PluginError::other("boom")), done: 0 })).await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert!(events[0].starts_with("error:") && events[0].contains("boom"), "{events:?}");
    }

    /// Never ends; notes when its future is dropped.
    struct Endless(Arc<AtomicBool>);

    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    #[async_trait::async_trait]
    impl Crawl for Endless {
        async fn run(&mut self, out: &mut Emitter) -> Result<()> {
            let _flag = DropFlag(self.0.clone());
            let mut i = 0;
            loop {
                out.send(Event::Checkpoint(Checkpoint { state: json!({"done": i}) })).await?;
                i += 1;
            }
        }

        fn state(&self) -> Value {
            Value::Null
        }
    }

    #[tokio::test]
    async fn dropping_the_source_aborts_the_crawl_and_the_channel_is_bounded() {
        let dropped = Arc::new(AtomicBool::new(false));
        let mut source = CrawlSource::spawn(spec(1), Endless(dropped.clone()));
        assert!(matches!(source.next().await, Ok(Event::Checkpoint(_))));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(source.events.len() <= CHANNEL_EVENTS, "the crawl waits for the pipeline");
        assert!(!dropped.load(Ordering::SeqCst));
        drop(source);
        for _ in 0..100 {
            if dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the crawl task was not aborted when its source was dropped");
    }
}
