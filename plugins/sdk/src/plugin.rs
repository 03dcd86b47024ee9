//! The plugin protocol (docs/design.md §5), one trait per plugin kind.
//!
//! * A [`Source`] declares its streams ([`StreamDecl`]: name + Arrow schema) when it is opened,
//!   receives its last committed checkpoint in [`SourceContext::state`], and then yields
//!   [`Event`]s in order: `Batch`, `DeadLetter`, `Checkpoint` (everything before it is covered by
//!   that state), and finally `End`.
//! * A [`Transform`] maps each batch of the streams it touches to zero or more batches of the
//!   same stream (same or extended schema); it may buffer and release rows at a checkpoint or
//!   at the end ([`Transform::flush`]).
//! * A [`Sink`] is opened with the stream schemas, gets [`Sink::write`] per batch,
//!   [`Sink::commit`] at every checkpoint (durable when it returns) and [`Sink::abort`] when the
//!   run fails.
//!
//! Every call is async and made by one task at a time (`&mut self`); plugins need not be
//! `Sync`. The same traits are carried by the C ABI for plugins loaded as dynamic libraries.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_trait::async_trait;
use serde_json::Value;

use crate::Result;
use crate::metrics::Metrics;

/// A named stream and its Arrow schema, declared by a source at open (and passed to sinks).
#[derive(Debug, Clone)]
pub struct StreamDecl {
    /// Stream name, e.g. `messages`.
    pub name: String,
    /// Exact Arrow schema of every batch on this stream.
    pub schema: SchemaRef,
}

/// An opaque source state, as JSON. Handed back to the source on the next run, it resumes after
/// everything emitted before it.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    /// The source's own state; the engine stores it verbatim.
    pub state: Value,
}

/// A record that could not be processed, recorded in the dead-letter output with its reason.
/// The row it describes is never removed from the main output because of it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Stream of the record.
    pub stream: String,
    /// Primary-key columns of the record, as a JSON object (`{"conversation_id": "..."}`).
    pub key: Value,
    /// Plugin that raised it (`giosg`, `decrypt`, ...); the engine fills it when empty.
    pub stage: String,
    /// Short machine-readable reason, snake case (`hmac_mismatch`, `unparsable_timestamp`).
    pub reason: String,
    /// Human explanation.
    pub message: String,
    /// The record or vendor payload, as received.
    pub raw: Value,
}

/// The dead-letter `reason` a source uses for a conversation whose records did not all
/// arrive (fewer messages than the vendor reports). The engine records it like any dead
/// letter and ends the run `partial` (exit code 3), naming the conversations.
pub const REASON_INCOMPLETE: &str = "incomplete";

/// The dead-letter `reason` a source uses when it stopped early because its retry budget was
/// spent ([`crate::PluginError::RetryBudgetExhausted`]): it emitted a final checkpoint for what it
/// has, and the engine ends the run `partial` (exit code 3).
pub const REASON_RETRY_BUDGET: &str = "retry_budget_exhausted";

/// The dead-letter `reason` the engine uses for an account of `[[source.accounts]]` whose
/// source failed (refused credentials, vendor down beyond retries): the other accounts go on,
/// that account's state stays at its last checkpoint, and the run ends `partial` (exit code 3).
pub const REASON_ACCOUNT_FAILED: &str = "account_failed";

/// The dead-letter `reason` for a listing whose pages repeat (a `next` URL, cursor, offset or
/// page seen before in the same listing): the listing is ended there instead of paging
/// forever. The key names the conversation (a conversation's own listing) or only the account
/// (the conversation listing); the engine ends the run `partial` (exit code 3).
pub const REASON_PAGING_LOOP: &str = "paging_loop";

/// The dead-letter `reason` for a response body larger than the source's `max_response_bytes`:
/// the body is not read past the cap. Keyed and counted like [`REASON_PAGING_LOOP`].
pub const REASON_RESPONSE_TOO_LARGE: &str = "response_too_large";

/// The dead-letter `reason` for a conversation listed by the vendor whose own endpoints then
/// answered HTTP 404 or 410 (deleted between listing and fetching): it is not exported, the
/// others are, and the run ends `partial` naming it (one of [`REJECTED_REASONS`]).
pub const REASON_CONVERSATION_GONE: &str = "conversation_gone";

/// The dead-letter `reason` for a conversation listed by the vendor whose own endpoints then
/// answered HTTP 403 (a room or channel the credentials may not read): it is not exported, the
/// others are, and the run ends `partial` naming it (one of [`REJECTED_REASONS`]).
pub const REASON_CONVERSATION_FORBIDDEN: &str = "conversation_forbidden";

/// The dead-letter `reason` for shape drift: a vendor object that lacks a field the mapping
/// needs, or carries an enum value the mapping does not know (a sender type, message type or
/// chat typename). The row **is** exported, every non-null column filled (a documented fallback
/// where the value was unknown, which the dead letter's message names); the dead letter holds
/// the raw object so the mapping can be fixed. Counted apart in the run summary and report
/// ([`DeadLetterKind::UnexpectedShape`]); it does not make the run partial, since nothing is
/// missing from the output (docs/design.md §6).
pub const REASON_UNEXPECTED_SHAPE: &str = "unexpected_shape";

/// The dead-letter reasons under which a record, or a value of one, is not in the output as the
/// vendor sent it: a record without an id (`unparsable_chat`, `unparsable_conversation`,
/// `unparsable_message`, `missing_question_id`) is left out; a time that cannot be read, cannot be
/// represented or lies implausibly far in the future ([`crate::time::TimeProblem`]) leaves its row
/// out when the row cannot exist without it, else its column null. The engine ends the run
/// `partial` (exit code 3) and names the records ([`DeadLetterKind::Rejected`]).
pub const REJECTED_REASONS: &[&str] = &[
    "unparsable_chat",
    "unparsable_conversation",
    "unparsable_message",
    "missing_question_id",
    "unparsable_timestamp",
    "time_out_of_range",
    "time_in_future",
    REASON_CONVERSATION_GONE,
    REASON_CONVERSATION_FORBIDDEN,
];

/// A dead letter's [`DeadLetter::reason`], typed: the reasons the engine acts on, and every
/// other (plugin-specific) reason as it is.
///
/// The reason itself stays a string on [`DeadLetter`], in the dead-letter files and across the
/// C ABI (library plugins send it as a string); this is how the engine reads it. Converting a
/// kind back to its string gives exactly the reason written to the dead-letter files.
///
/// ```
/// use pipe_plugin_sdk::{DeadLetterKind, REASON_INCOMPLETE};
///
/// assert_eq!(DeadLetterKind::from_reason(REASON_INCOMPLETE), DeadLetterKind::Incomplete);
/// assert_eq!(DeadLetterKind::from_reason("hmac_mismatch"), DeadLetterKind::Other("hmac_mismatch".into()));
/// assert_eq!(DeadLetterKind::RetryBudgetExhausted.as_reason(), "retry_budget_exhausted");
/// assert_eq!(String::from(DeadLetterKind::AccountFailed), "account_failed");
/// assert_eq!(DeadLetterKind::from_reason("time_in_future"), DeadLetterKind::Rejected("time_in_future".into()));
/// assert_eq!(DeadLetterKind::from_reason("unexpected_shape"), DeadLetterKind::UnexpectedShape);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterKind {
    /// [`REASON_INCOMPLETE`]: a conversation whose records did not all arrive.
    Incomplete,
    /// [`REASON_RETRY_BUDGET`]: the source stopped early, its retry budget spent.
    RetryBudgetExhausted,
    /// [`REASON_ACCOUNT_FAILED`]: one account of a many-account source failed.
    AccountFailed,
    /// [`REASON_PAGING_LOOP`]: a listing repeated itself and was ended there.
    PagingLoop,
    /// [`REASON_RESPONSE_TOO_LARGE`]: a response body was over `max_response_bytes`.
    ResponseTooLarge,
    /// One of [`REJECTED_REASONS`]: a record (or a value of one) is not in the output as the
    /// vendor sent it.
    Rejected(String),
    /// [`REASON_UNEXPECTED_SHAPE`]: a vendor object of a shape the mapping does not know,
    /// exported with a documented fallback; counted, the run is not partial because of it.
    UnexpectedShape,
    /// Any other reason (`hmac_mismatch`, `unparsable_timestamp`, ...): the record is bad, the
    /// run is not incomplete because of it.
    Other(String),
}

impl DeadLetterKind {
    /// The kind of a reason string; unknown reasons are [`DeadLetterKind::Other`].
    pub fn from_reason(reason: &str) -> Self {
        match reason {
            REASON_INCOMPLETE => DeadLetterKind::Incomplete,
            REASON_RETRY_BUDGET => DeadLetterKind::RetryBudgetExhausted,
            REASON_ACCOUNT_FAILED => DeadLetterKind::AccountFailed,
            REASON_PAGING_LOOP => DeadLetterKind::PagingLoop,
            REASON_RESPONSE_TOO_LARGE => DeadLetterKind::ResponseTooLarge,
            REASON_UNEXPECTED_SHAPE => DeadLetterKind::UnexpectedShape,
            rejected if REJECTED_REASONS.contains(&rejected) => DeadLetterKind::Rejected(rejected.to_string()),
            other => DeadLetterKind::Other(other.to_string()),
        }
    }

    /// The reason string, as written to the dead-letter files.
    pub fn as_reason(&self) -> &str {
        match self {
            DeadLetterKind::Incomplete => REASON_INCOMPLETE,
            DeadLetterKind::RetryBudgetExhausted => REASON_RETRY_BUDGET,
            DeadLetterKind::AccountFailed => REASON_ACCOUNT_FAILED,
            DeadLetterKind::PagingLoop => REASON_PAGING_LOOP,
            DeadLetterKind::ResponseTooLarge => REASON_RESPONSE_TOO_LARGE,
            DeadLetterKind::UnexpectedShape => REASON_UNEXPECTED_SHAPE,
            DeadLetterKind::Rejected(reason) | DeadLetterKind::Other(reason) => reason,
        }
    }
}

impl From<DeadLetterKind> for String {
    fn from(kind: DeadLetterKind) -> String {
        match kind {
            DeadLetterKind::Rejected(reason) | DeadLetterKind::Other(reason) => reason,
            known => known.as_reason().to_string(),
        }
    }
}

impl DeadLetter {
    /// The typed kind of [`Self::reason`].
    pub fn kind(&self) -> DeadLetterKind {
        DeadLetterKind::from_reason(&self.reason)
    }
}

/// What a source yields, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// Rows of one stream; the schema is the one declared for it.
    Batch {
        /// A stream the source declared in [`Source::streams`].
        stream: String,
        /// The rows, with exactly that stream's declared schema.
        batch: RecordBatch,
    },
    /// A record that could not be processed.
    DeadLetter(DeadLetter),
    /// Everything emitted before this event is covered by this state.
    Checkpoint(Checkpoint),
    /// The source is done; it is not polled again.
    End,
}

/// What a transform returns for one input.
#[derive(Debug, Clone)]
pub enum TransformOutput {
    /// A batch of the same stream as the input.
    Batch(RecordBatch),
    /// A record the transform could not process (its row still goes on in a batch).
    DeadLetter(DeadLetter),
}

/// What the engine hands a source at open.
#[derive(Clone)]
pub struct SourceContext {
    /// Name of the pipeline (for logs).
    pub pipeline: String,
    /// The state of the last committed checkpoint, or `None` on a first run.
    pub state: Option<Value>,
    /// Stop after this many conversations (`pipe run --limit N`), emitting `End` normally.
    pub limit: Option<u64>,
    /// Counters for progress and the run summary.
    pub metrics: Arc<Metrics>,
}

/// What the engine hands a long-running ("service") source after open, through
/// [`Source::attach_control`]: a way to be asked to stop, and news of what is durable.
///
/// Only sources that return true from [`Source::stops_gracefully`] need it. Plugins loaded as
/// dynamic libraries do not receive it (the C ABI carries no such channel yet): for them the
/// default methods apply, so they are batch sources that an interrupt stops at once.
#[derive(Clone)]
pub struct SourceControl {
    /// Cancelled by the engine on SIGINT (Ctrl-C) or SIGTERM. A source that honours it stops
    /// taking new work, emits a last [`Event::Checkpoint`] for what it has, then [`Event::End`];
    /// the run then ends normally (exit 0).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The state of the last checkpoint every sink has committed and the engine has saved
    /// (`None` before the first commit of this run). Updated after each commit; a source uses
    /// it to acknowledge work to its upstream only once it is durable.
    pub committed: tokio::sync::watch::Receiver<Option<Value>>,
}

/// When the engine commits a source's checkpoints ([`Source::commit_cadence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitCadence {
    /// At most every `commit_interval_seconds` of the pipeline (default 60 s), and at the end:
    /// few, large files, for batch sources.
    #[default]
    Interval,
    /// As soon as a checkpoint is pending, no further event is waiting and the previous commit
    /// has finished (checkpoints that arrive during a commit are committed together by the
    /// next one) — unless the pipeline sets `commit_interval_seconds`, which then applies. For
    /// services whose senders wait for the commit (a webhook listener answers each POST only
    /// once it is durable).
    Prompt,
}

/// What the engine hands a transform at open.
///
/// `Default` gives an empty pipeline name and fresh counters, for tests and tools that open a
/// transform outside a run.
#[derive(Clone, Default)]
pub struct TransformContext {
    /// Name of the pipeline (for logs).
    pub pipeline: String,
    /// Counters for progress and the run summary. A transform loaded from a library gets
    /// counters of its own: the C ABI v1 carries no transform counters back to the engine.
    pub metrics: Arc<Metrics>,
}

/// What the engine hands a sink at open.
#[derive(Clone)]
pub struct SinkContext {
    /// Name of the pipeline.
    pub pipeline: String,
    /// Every stream the sink will receive, with the schema its batches have after the
    /// transforms.
    pub streams: Vec<StreamDecl>,
    /// Identifier of this run (unique; used in file names so runs only add files).
    pub run_id: String,
}

/// A source plugin: pulls one vendor account. See the [module docs](self).
#[async_trait]
pub trait Source: Send {
    /// The streams this source emits, with their exact schemas. Called once, right after open.
    fn streams(&self) -> Vec<StreamDecl>;

    /// The next event. After [`Event::End`] (or an error) it is not called again.
    ///
    /// Errors: [`crate::PluginError::Auth`] when credentials are refused, `Http`/`Protocol`
    /// when the vendor fails beyond retries; the engine then aborts the sinks and exits 1.
    async fn next(&mut self) -> Result<Event>;

    /// True when this source is a service that ends on [`SourceControl::shutdown`] (flushing
    /// and checkpointing first). The engine then turns SIGINT/SIGTERM into that request instead
    /// of aborting the run. Default false: batch sources are aborted at once on a signal.
    fn stops_gracefully(&self) -> bool {
        false
    }

    /// When the engine commits this source's checkpoints. Default
    /// [`CommitCadence::Interval`]: the pipeline's `commit_interval_seconds` (60 s unless set).
    /// A service that answers its upstream only after a commit (a webhook listener) returns
    /// [`CommitCadence::Prompt`]. In-process only: plugins loaded from libraries use the
    /// default (the C ABI does not carry it).
    fn commit_cadence(&self) -> CommitCadence {
        CommitCadence::Interval
    }

    /// Called once by the engine right after open (before the first [`Self::next`]) with the
    /// shutdown token and the commit notifications. Default: ignored.
    fn attach_control(&mut self, _control: SourceControl) {}

    /// For `pipe validate --check` on a source without a contract probe (the built-in sources
    /// have one: [`crate::contract`]; plugins loaded from libraries do not), on a freshly opened
    /// source: proves the credentials and the endpoint work, and says how in one line
    /// (`authenticated; first page: 100 chats`).
    /// Nothing is committed and the source is dropped afterwards. The engine bounds it with a
    /// timeout.
    ///
    /// Default: pulls the first event (so the source's first request is the probe). Override it
    /// with one cheap authenticated request when the first event is expensive. Plugins loaded
    /// from libraries always use the default (the C ABI v1 has no probe entry point).
    ///
    /// Errors: as [`Self::next`] (`Auth` for refused credentials, `Http` for an unreachable or
    /// failing endpoint).
    async fn probe(&mut self) -> Result<String> {
        Ok(match self.next().await? {
            Event::Batch { stream, batch } => {
                format!("read a first batch of {} row(s) on `{stream}`", batch.num_rows())
            }
            Event::DeadLetter(d) => format!("read a first record (a dead letter: {})", d.reason),
            Event::Checkpoint(_) => "read a first checkpoint".to_string(),
            Event::End => "reachable; nothing to export (the source ended at once)".to_string(),
        })
    }
}

/// A transform plugin. See the [module docs](self).
#[async_trait]
pub trait Transform: Send {
    /// The schema this transform outputs for `input`, or `None` when it does not touch that
    /// stream (its batches then bypass it unchanged).
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl>;

    /// Maps one batch of a touched stream to zero or more outputs of the same stream.
    async fn transform(&mut self, stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>>;

    /// Releases anything buffered, per stream; called before each checkpoint and at the end.
    async fn flush(&mut self) -> Result<Vec<(String, TransformOutput)>> {
        Ok(Vec::new())
    }
}

/// What a sink has made durable so far in this run, for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkStats {
    /// Files committed under their final names.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Rows committed.
    pub rows: u64,
}

/// A sink plugin. See the [module docs](self).
#[async_trait]
pub trait Sink: Send {
    /// Buffers or writes one batch of `stream`. Nothing needs to be durable yet.
    async fn write(&mut self, stream: &str, batch: &RecordBatch) -> Result<()>;

    /// Makes everything written so far durable and visible under final names; returns when it
    /// is. The engine persists `checkpoint` only after every sink's commit returned `Ok`.
    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()>;

    /// Discards everything written since the last commit (temporary files are removed). Called
    /// when the run fails; errors here are logged, not raised.
    async fn abort(&mut self) -> Result<()>;

    /// Files, bytes and rows committed so far (for the summary). Sinks without files report
    /// rows only; the default reports nothing.
    fn stats(&self) -> SinkStats {
        SinkStats::default()
    }
}

/// The kind of a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginKind {
    /// Pulls a vendor account ([`Source`]).
    Source,
    /// Maps batches ([`Transform`]).
    Transform,
    /// Writes batches durably ([`Sink`]).
    Sink,
}

impl PluginKind {
    /// `source`, `transform` or `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Source => "source",
            PluginKind::Transform => "transform",
            PluginKind::Sink => "sink",
        }
    }
}

/// Opens a source from its JSON config (already `${VAR}`-resolved by the engine) and what the
/// engine hands it ([`SourceContext`]).
///
/// A closure, so a factory can carry what it opens: a built-in's is a plain function, a
/// library plugin's captures the loaded library it calls into. Called once per open, from
/// any thread.
///
/// Errors: [`crate::PluginError::Config`] for a config the typed parse refuses; whatever
/// opening needs (a file, a key) as the plugin's own error.
pub type SourceFactory = Arc<dyn Fn(Value, SourceContext) -> Result<Box<dyn Source>> + Send + Sync>;
/// Opens a transform from its JSON config and [`TransformContext`]. As [`SourceFactory`].
pub type TransformFactory = Arc<dyn Fn(Value, TransformContext) -> Result<Box<dyn Transform>> + Send + Sync>;
/// Opens a sink from its JSON config and [`SinkContext`]. As [`SourceFactory`].
pub type SinkFactory = Arc<dyn Fn(Value, SinkContext) -> Result<Box<dyn Sink>> + Send + Sync>;
/// Returns the JSON Schema of a plugin's config table (built on demand: `pipe plugins` and
/// config validation ask for it, most runs never do).
pub type ConfigSchemaFn = Arc<dyn Fn() -> Value + Send + Sync>;
/// Checks a config without opening anything (no network, no files): the typed parse.
///
/// Errors: [`crate::PluginError::Config`] with the failing key path.
pub type CheckConfigFn = Arc<dyn Fn(&Value) -> Result<()> + Send + Sync>;

/// The constructor of a plugin, by kind. Cloning it clones a reference to the same closure.
#[derive(Clone)]
pub enum PluginFactory {
    /// Opens a [`Source`].
    Source(SourceFactory),
    /// Opens a [`Transform`].
    Transform(TransformFactory),
    /// Opens a [`Sink`].
    Sink(SinkFactory),
}

impl PluginFactory {
    /// A source factory from a function or closure:
    /// `PluginFactory::source(|config, ctx| Ok(Box::new(MySource::open(config, ctx)?)))`.
    pub fn source(open: impl Fn(Value, SourceContext) -> Result<Box<dyn Source>> + Send + Sync + 'static) -> Self {
        PluginFactory::Source(Arc::new(open))
    }

    /// A transform factory from a function or closure.
    pub fn transform(
        open: impl Fn(Value, TransformContext) -> Result<Box<dyn Transform>> + Send + Sync + 'static,
    ) -> Self {
        PluginFactory::Transform(Arc::new(open))
    }

    /// A sink factory from a function or closure.
    pub fn sink(open: impl Fn(Value, SinkContext) -> Result<Box<dyn Sink>> + Send + Sync + 'static) -> Self {
        PluginFactory::Sink(Arc::new(open))
    }
}

/// Everything the engine needs to know about a plugin before it opens it.
///
/// Built-ins and plugins of loaded libraries have the same descriptor; for a library plugin,
/// the closures call through the C ABI into the library.
#[derive(Clone)]
pub struct PluginDescriptor {
    /// Name used in pipeline files (`plugin = "giosg"`).
    pub name: &'static str,
    /// Plugin version (the crate version for built-ins).
    pub version: &'static str,
    /// One-line description for `pipe plugins`.
    pub description: &'static str,
    /// JSON Schema of the plugin's config table (keys other than `plugin`), e.g.
    /// `Arc::new(config::schema_of::<MyConfig>)`.
    pub config_schema: ConfigSchemaFn,
    /// Checks a config without opening anything, e.g. `Arc::new(config::check::<MyConfig>)`
    /// or [`PluginDescriptor::check_with`] for a closure.
    pub check_config: CheckConfigFn,
    /// Constructor.
    pub factory: PluginFactory,
}

impl PluginDescriptor {
    /// A [`CheckConfigFn`] from a closure (its argument type is inferred from here):
    /// `check_config: PluginDescriptor::check_with(|v| parse(v.clone()).map(|_| ()))`.
    pub fn check_with(check: impl Fn(&Value) -> Result<()> + Send + Sync + 'static) -> CheckConfigFn {
        Arc::new(check)
    }

    /// The kind of this plugin.
    pub fn kind(&self) -> PluginKind {
        match self.factory {
            PluginFactory::Source(_) => PluginKind::Source,
            PluginFactory::Transform(_) => PluginKind::Transform,
            PluginFactory::Sink(_) => PluginKind::Sink,
        }
    }
}
