//! The vendor spec: a TOML file (or an inline table) describing a plain-REST chat API, its
//! keys ([`SpecFile`], whose JSON Schema is the reference of plugins/sources/rest/README.md),
//! and its loading: parse with the position of every problem, then compile every jq program
//! ([`crate::config::load_file`], [`crate::config::load_inline`]).
//!
//! Errors name the spec file, line and column, and the key (`specs/acme.toml:12:1:
//! conversations.records: not a jq program: ...`); for an inline spec, the key under `spec`.
//! Strings may hold `${VAR}`; they are resolved when the source opens ([`crate::config::Loaded::vars`]), so
//! a spec file holds references, never secrets.

use std::collections::BTreeMap;
use std::ops::Range;

use pipe_plugin_sdk::time::Zone;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::{Program, globals};

/// The keys of a vendor spec (the whole TOML file, or the `spec` table of a pipeline).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpecFile {
    /// The vendor name, written to the `vendor` column and naming the vendor in errors and dead
    /// letters (`acme`). Lower case letters, digits, `-` and `_`.
    pub vendor: String,
    /// The API root (`https://api.acme.example`), without a trailing `/`. Paths below are
    /// appended to it; credentials go only to its origin (scheme, host, port). A pipeline's
    /// `base_url` replaces it (a regional host, a proxy, a simulator).
    pub base_url: String,
    /// The `account_id` of every row, unless the pipeline gives one. Default: `vendor`.
    #[serde(default)]
    pub account_id: Option<String>,
    /// The unit of numeric (epoch) times: `s`, `ms`, `us`, or `auto` (by magnitude: below
    /// 10¹² seconds, below 10¹⁵ milliseconds, else microseconds). Default `auto`.
    #[serde(default)]
    pub time_unit: TimeUnitSpec,
    /// The IANA zone of times written without one (`2024-06-01T12:00:00`), e.g.
    /// `Europe/Moscow`. Default `UTC`. Times with an offset or `Z` are read as written.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Extra request headers (not secret: secrets go in `[auth]`), e.g. `Accept`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How requests authenticate. Default: none.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The conversation listing.
    pub conversations: ListingSpec,
    /// The messages of one conversation.
    pub messages: MessagesSpec,
    /// Per-conversation extras (tags, members) fetched and merged into the conversation object
    /// under `into` before it is mapped.
    #[serde(default)]
    pub extras: Vec<ExtraSpec>,
    /// Incremental runs: the listing is read newest first down to the watermark minus the
    /// lookback. Without it every run reads everything.
    #[serde(default)]
    pub incremental: Option<IncrementalSpec>,
    /// Completeness: a per-conversation count compared with the message records that arrived.
    #[serde(default)]
    pub completeness: Option<CompletenessSpec>,
    /// A watermark per conversation over its messages' `sent_at` (the newest exported, and the
    /// `message_id`s at that instant), for APIs whose conversations are not listed newest first
    /// (configured ids): every run reads each conversation whole, maps it as a first run does,
    /// and emits only the messages newer than the conversation's watermark, and the
    /// conversation row only with them. Not with `[incremental]`. Default false.
    #[serde(default)]
    pub conversation_watermarks: bool,
    /// The mapping onto the canonical columns.
    pub map: MapSpec,
}

/// The unit of numeric times.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnitSpec {
    /// By magnitude.
    #[default]
    Auto,
    /// Seconds since the Unix epoch.
    S,
    /// Milliseconds since the Unix epoch.
    Ms,
    /// Microseconds since the Unix epoch.
    Us,
}

impl SpecFile {
    /// The zone of zone-less times: `timezone`, checked at load (UTC when absent).
    pub fn zone(&self) -> Zone {
        self.timezone.as_deref().and_then(|z| Zone::named(z).ok()).unwrap_or(Zone::UTC)
    }
}

impl TimeUnitSpec {
    /// The SDK's unit.
    pub fn epoch_unit(self) -> pipe_plugin_sdk::time::EpochUnit {
        use pipe_plugin_sdk::time::EpochUnit;
        match self {
            TimeUnitSpec::Auto => EpochUnit::ByMagnitude,
            TimeUnitSpec::S => EpochUnit::Seconds,
            TimeUnitSpec::Ms => EpochUnit::Millis,
            TimeUnitSpec::Us => EpochUnit::Micros,
        }
    }
}

/// Authentication. Every value may be `${VAR}`; every resolved secret is registered with the
/// HTTP client (never in a log, error, dead letter or state) and sent only to the origin of
/// `base_url`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthSpec {
    /// No credentials.
    #[default]
    None,
    /// A header carrying a token as is: `name = "API-KEY"`, `value = "${ACME_KEY}"`.
    Header {
        /// Header name.
        name: String,
        /// Header value (the secret).
        value: String,
    },
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// User name (or API key, for vendors that put it there).
        username: String,
        /// Password (may be empty).
        #[serde(default)]
        password: String,
    },
    /// A query parameter on every request: `name = "api_key"`, `value = "${ACME_KEY}"`.
    Query {
        /// Parameter name.
        name: String,
        /// Parameter value (the secret).
        value: String,
    },
    /// A secret that is part of every request path (a channel token in the URL, as
    /// Aimylogic's Chat API has it): each path's `{auth}` is replaced by it, percent-encoded.
    /// It is removed from every message, dead letter and `raw` in both spellings.
    Path {
        /// The secret (`${AIMYLOGIC_TOKEN}`).
        value: String,
    },
    /// A login request (POST of a JSON body) whose answer holds a token, then sent in a header.
    Login {
        /// Path of the login request, below `base_url`.
        path: String,
        /// The JSON body (a table; strings may be `${VAR}`).
        body: Value,
        /// jq over the login answer giving the token (`.data.login.token`).
        token: String,
        /// Header the token is sent in. Default `Authorization`.
        #[serde(default = "default_login_header")]
        header: String,
        /// Written before the token in the header (`"Bearer "`). Default none.
        #[serde(default)]
        prefix: String,
    },
}

fn default_login_header() -> String {
    "Authorization".into()
}

/// How a listing pages. Every shape is bounded like a native source's listing: a position
/// (URL, cursor, page, offset) asked for twice, a page equal to an earlier one, or more than a
/// million pages ends it with a `paging_loop` dead letter (the SDK's `PageGuard`).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum PagingSpec {
    /// One request.
    #[default]
    None,
    /// The body holds the next page's URL (absolute, or a path below the origin); null or empty
    /// on the last page.
    NextUrl {
        /// jq over the body giving the next URL (`.next`, `.links.next`).
        next: String,
    },
    /// The `Link` response header's `rel="next"` URL (RFC 8288), absent on the last page.
    LinkHeader,
    /// The body holds a cursor, sent back in a query parameter; ends when it is null or empty, or
    /// a page has no records.
    Cursor {
        /// jq over the body giving the cursor (`.cursor`, `.pages.next.starting_after`).
        cursor: String,
        /// Query parameter the cursor is sent in.
        param: String,
    },
    /// Numbered pages; ends at an empty page, or when the records so far reach `total`.
    PageNumber {
        /// Query parameter of the page number.
        param: String,
        /// Number of the first page. Default 1.
        #[serde(default = "one")]
        first: u64,
        /// jq over the body giving the total number of records, when the API states one.
        #[serde(default)]
        total: Option<String>,
    },
    /// `offset`/`limit`; ends at a page shorter than `limit`.
    Offset {
        /// Query parameter of the offset. Default `offset`.
        #[serde(default = "offset_param")]
        param: String,
        /// Query parameter of the page size. Default `limit`.
        #[serde(default = "limit_param")]
        limit_param: String,
        /// Records asked for per page.
        limit: u64,
        /// When the listing ends. Default `short_page`.
        #[serde(default)]
        end: OffsetEnd,
    },
}

/// When an offset listing ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OffsetEnd {
    /// At a page shorter than `limit`.
    #[default]
    ShortPage,
    /// At an empty page: a server that caps its pages below `limit` (or ignores it) still
    /// gives everything, for one more request per listing. The offset always advances by the
    /// records that arrived.
    EmptyPage,
}

fn one() -> u64 {
    1
}
fn offset_param() -> String {
    "offset".into()
}
fn limit_param() -> String {
    "limit".into()
}

/// The conversation listing.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListingSpec {
    /// Path below `base_url` (`/v2/conversations`). Without it the conversations are not
    /// fetched but configured: `records` runs once on `$vars` (the pipeline's `vars`, e.g.
    /// `.clients | map({clientId: .})`), for APIs with no listing endpoint; a conversation
    /// given twice is read once, and an HTTP 403 on its endpoints stops the run (refused
    /// credentials, not a conversation of its own).
    #[serde(default)]
    pub path: Option<String>,
    /// Query parameters of the first request (values may be `${VAR}`).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// jq over a page's body giving its records (`.conversations`; an array is spread); without
    /// `path`, over `$vars`.
    pub records: String,
    /// How it pages. Default: one request.
    #[serde(default)]
    pub paging: PagingSpec,
    /// jq over a conversation record giving its id (a string or number).
    pub id: String,
}

/// The messages of one conversation.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessagesSpec {
    /// Path below `base_url`, with `{field}` replaced by the conversation record's top-level
    /// field, percent-encoded (`/v2/conversations/{id}/messages`). Without it, `records` runs
    /// on the conversation record itself (messages embedded in the listing).
    #[serde(default)]
    pub path: Option<String>,
    /// Query parameters of the first request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// jq over a page's body (or the conversation record) giving the message records.
    pub records: String,
    /// How it pages. Default: one request.
    #[serde(default)]
    pub paging: PagingSpec,
    /// jq over a record giving its identity: a record whose identity was seen before in this
    /// conversation is dropped (overlapping pages), and a page of only such records ends the
    /// conversation as a `paging_loop`.
    #[serde(default)]
    pub unique: Option<String>,
    /// jq over the array of all the conversation's records, giving the array to map (sort,
    /// number sessions); runs before `map.message`.
    #[serde(default)]
    pub prepare: Option<String>,
    /// The dead-letter reason of a conversation whose endpoints answer HTTP 404/410, where the
    /// vendor gives it a meaning of its own (`unknown_client`: an id the channel does not
    /// know). Default `conversation_gone`.
    #[serde(default)]
    pub gone_reason: Option<String>,
}

/// A per-conversation extra.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtraSpec {
    /// The key of the conversation object the records are stored under (an array).
    pub into: String,
    /// Path below `base_url`, with `{field}` templates as `messages.path`.
    pub path: String,
    /// Query parameters of the first request.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// jq over a page's body giving the records.
    pub records: String,
    /// How it pages. Default: one request.
    #[serde(default)]
    pub paging: PagingSpec,
}

/// Incremental runs over a listing ordered newest first.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalSpec {
    /// jq over a conversation record giving the time the listing is ordered by, newest first
    /// (`.updated_at`, `.lastChatTime // .createdAt`). The watermark is the newest such time
    /// of the last complete scan.
    pub time: String,
    /// How far below the watermark a run looks again (hours). Default 48; the pipeline's
    /// `lookback_hours` replaces it.
    #[serde(default = "default_lookback")]
    pub lookback_hours: u32,
    /// A query parameter of the listing's first request carrying the floor (watermark minus
    /// lookback), for APIs that filter server-side. Default: none (the scan stops client-side
    /// after a page wholly below the floor).
    #[serde(default)]
    pub param: Option<String>,
    /// How the floor is written in `param`. Default `auto`.
    #[serde(default)]
    pub format: ParamFormat,
}

fn default_lookback() -> u32 {
    48
}

/// How a time is written in a query parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ParamFormat {
    /// In the unit the API's numeric listing times were seen in (remembered in the state); not
    /// sent until a run has seen one (a wrong guess would filter everything out).
    #[default]
    Auto,
    /// Epoch seconds.
    EpochS,
    /// Epoch milliseconds.
    EpochMs,
    /// Epoch microseconds.
    EpochUs,
    /// RFC 3339 UTC (`2026-01-01T00:00:00Z`).
    Rfc3339,
}

/// Completeness of one conversation.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompletenessSpec {
    /// jq over `{conversation, page}` (the conversation record, and the body of the last
    /// messages page) giving the number of message records the vendor says it has
    /// (`.page.totalCount`, `.conversation.message_count`). Fewer or more distinct records
    /// make an `incomplete` dead letter and the run ends partial. Also `$count` in
    /// `map.conversation`.
    pub count: String,
}

/// The mapping onto the canonical columns (docs/design.md §3).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MapSpec {
    /// jq over the conversation record (extras merged in) giving an object of `conversations`
    /// columns (`conversation_id` is the listing's `id`; `vendor`, `account_id`,
    /// `extracted_at` are the source's). `$records` are the message records, `$count` the
    /// completeness count, `$messages` the exported message rows (`{message_id, seq,
    /// sent_at, sender_role}`, `sent_at` RFC 3339 UTC: `$messages | length` is a message
    /// count, `[$messages[].sent_at] | min` the first time), `$account_id` the rows'
    /// `account_id`. Times are converted by type
    /// (epoch in `time_unit`, or RFC 3339); `raw` defaults to the record.
    pub conversation: String,
    /// jq over one message record (`$conversation`: the conversation record) giving zero or
    /// more objects of `messages` columns; `message_id` and `sent_at` are required, `seq` is
    /// numbered by the source (by `sent_at`, ties in record order), `raw` defaults to the
    /// record. An output `{dead_letter: {reason, message, message_id}}` is a dead letter of the
    /// messages stream instead (shape drift: `unexpected_shape` beside the row exported with a
    /// fallback), reported unless a row of the same record is refused.
    pub message: String,
    /// Vendor sender kinds → `visitor`, `agent`, `bot` or `system`, applied to the
    /// `sender_role` the message mapping gives (`USER = "visitor"`).
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The role of a kind not in `roles`. Default: an unknown kind is a dead letter.
    #[serde(default)]
    pub role_default: Option<String>,
}

/// A problem in a spec, located by its key and, for a spec file, byte span.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecError {
    /// Key path (`conversations.paging.cursor`), empty for the whole spec.
    pub key: String,
    /// Byte range in the spec text, when known.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub message: String,
}

/// A loaded spec: the keys, and every jq program compiled.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The keys as written (`${VAR}` not yet resolved).
    pub file: SpecFile,
    /// The compiled programs.
    pub programs: Programs,
}

/// The programs of a listing or extra.
#[derive(Debug, Clone)]
pub struct PagedPrograms {
    /// Records of a page.
    pub records: Program,
    /// The paging shape's program (next URL, cursor or total), if it has one.
    pub paging: Option<Program>,
}

/// Every jq program of a spec, compiled.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `conversations.records` and paging.
    pub conversations: PagedPrograms,
    /// `conversations.id`.
    pub conversation_id: Program,
    /// `messages.records` and paging.
    pub messages: PagedPrograms,
    /// `messages.unique`.
    pub unique: Option<Program>,
    /// `messages.prepare`.
    pub prepare: Option<Program>,
    /// `extras[i]`.
    pub extras: Vec<PagedPrograms>,
    /// `incremental.time`.
    pub time: Option<Program>,
    /// `completeness.count`.
    pub count: Option<Program>,
    /// `auth.token` of a login.
    pub login_token: Option<Program>,
    /// `map.conversation`.
    pub map_conversation: Program,
    /// `map.message`.
    pub map_message: Program,
}

/// The canonical sender roles.
pub const ROLES: [&str; 4] = ["visitor", "agent", "bot", "system"];

impl Spec {
    /// Parses and checks a spec file's text.
    ///
    /// Errors: every problem found, each with its key and span.
    pub fn parse(text: &str) -> Result<Spec, Vec<SpecError>> {
        let file: SpecFile = toml::from_str(text).map_err(|e| {
            vec![SpecError { key: String::new(), span: e.span(), message: e.message().trim().to_string() }]
        })?;
        let errors = std::cell::RefCell::new(Vec::new());
        let fail = |key: &str, message: String| {
            errors.borrow_mut().push(SpecError { key: key.to_string(), span: span_of(text, key), message });
        };
        let compile = |key: &str, code: &str, g: &[&'static str]| match Program::compile(code, g) {
            Ok(p) => Some(p),
            Err(m) => {
                fail(key, m);
                None
            }
        };
        let compile_opt =
            |key: &str, code: &Option<String>, g: &[&'static str]| code.as_ref().map(|c| compile(key, c, g));
        let paged = |prefix: &str, records: &str, paging: &PagingSpec| {
            let records = compile(&format!("{prefix}.records"), records, globals::PLAIN);
            let paging_program = match paging {
                PagingSpec::NextUrl { next } => Some(compile(&format!("{prefix}.paging.next"), next, globals::PLAIN)),
                PagingSpec::Cursor { cursor, param } => {
                    if param.trim().is_empty() {
                        fail(&format!("{prefix}.paging.param"), "must not be empty".into());
                    }
                    Some(compile(&format!("{prefix}.paging.cursor"), cursor, globals::PLAIN))
                }
                PagingSpec::PageNumber { total: Some(t), .. } => {
                    Some(compile(&format!("{prefix}.paging.total"), t, globals::PLAIN))
                }
                PagingSpec::Offset { limit: 0, .. } => {
                    fail(&format!("{prefix}.paging.limit"), "must be at least 1".into());
                    None
                }
                _ => None,
            };
            match (records, paging_program) {
                (Some(records), None) => Some(PagedPrograms { records, paging: None }),
                (Some(records), Some(Some(p))) => Some(PagedPrograms { records, paging: Some(p) }),
                _ => None,
            }
        };

        let vendor_ok = !file.vendor.is_empty()
            && file.vendor.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if !vendor_ok {
            fail("vendor", "must be lower case letters, digits, `-` or `_` (it names the vendor column)".into());
        }
        let base = file.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://") || base.starts_with("${")) {
            fail("base_url", "is not an http(s) URL (it must start with http:// or https://)".into());
        }
        if let Some(z) = &file.timezone
            && let Err(e) = Zone::named(z)
        {
            fail("timezone", e);
        }
        let mut paths: Vec<(String, &String)> = Vec::new();
        if let Some(p) = &file.conversations.path {
            paths.push(("conversations.path".into(), p));
        }
        for (key, m) in crate::configured::spec_problems(&file) {
            fail(&key, m);
        }
        if let Some(p) = &file.messages.path {
            paths.push(("messages.path".into(), p));
        }
        for (i, e) in file.extras.iter().enumerate() {
            paths.push((format!("extras[{i}].path"), &e.path));
        }
        for (key, path) in paths {
            if let Err(m) = check_path(path) {
                fail(&key, m);
            }
        }
        for (kind, role) in
            file.map.roles.iter().map(|(k, r)| (Some(k), r)).chain(file.map.role_default.iter().map(|r| (None, r)))
        {
            if !ROLES.contains(&role.as_str()) {
                let key = match kind {
                    Some(k) => format!("map.roles.{k}"),
                    None => "map.role_default".into(),
                };
                fail(&key, format!("`{role}` is not a sender role (visitor, agent, bot, system)"));
            }
        }
        let mut login_token = None;
        if let AuthSpec::Login { token, body, .. } = &file.auth {
            login_token = compile("auth.token", token, globals::PLAIN);
            if !body.is_object() {
                fail("auth.body", "must be a table (the JSON body of the login request)".into());
            }
        }
        let conversations = paged("conversations", &file.conversations.records, &file.conversations.paging);
        let conversation_id = compile("conversations.id", &file.conversations.id, globals::PLAIN);
        let messages = paged("messages", &file.messages.records, &file.messages.paging);
        let unique = compile_opt("messages.unique", &file.messages.unique, globals::PLAIN);
        let prepare = compile_opt("messages.prepare", &file.messages.prepare, globals::PLAIN);
        let extras: Vec<Option<PagedPrograms>> = file
            .extras
            .iter()
            .enumerate()
            .map(|(i, e)| paged(&format!("extras[{i}]"), &e.records, &e.paging))
            .collect();
        let time = file.incremental.as_ref().map(|i| compile("incremental.time", &i.time, globals::PLAIN));
        let count = file.completeness.as_ref().map(|c| compile("completeness.count", &c.count, globals::PLAIN));
        let map_conversation = compile("map.conversation", &file.map.conversation, globals::CONVERSATION);
        let map_message = compile("map.message", &file.map.message, globals::MESSAGE);

        let errors = errors.into_inner();
        if !errors.is_empty() {
            return Err(errors);
        }
        let programs = Programs {
            conversations: conversations.expect("no error"),
            conversation_id: conversation_id.expect("no error"),
            messages: messages.expect("no error"),
            unique: unique.map(|p| p.expect("no error")),
            prepare: prepare.map(|p| p.expect("no error")),
            extras: extras.into_iter().map(|p| p.expect("no error")).collect(),
            time: time.map(|p| p.expect("no error")),
            count: count.map(|p| p.expect("no error")),
            login_token,
            map_conversation: map_conversation.expect("no error"),
            map_message: map_message.expect("no error"),
        };
        Ok(Spec { file, programs })
    }
}

/// A path must start with `/` and its `{field}` templates must be closed and name a field.
fn check_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` must start with `/` (a path below base_url)"));
    }
    let mut rest = p;
    while let Some(i) = rest.find('{') {
        let Some(end) = rest[i..].find('}') else { return Err(format!("`{p}`: unclosed `{{`")) };
        let name = &rest[i + 1..i + end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            return Err(format!("`{p}`: `{{{name}}}` does not name a field of the conversation"));
        }
        rest = &rest[i + end + 1..];
    }
    Ok(())
}

/// The byte span of the key at `path` (`a.b[2].c`) in a TOML text: of the deepest key found.
pub fn span_of(text: &str, path: &str) -> Option<Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut found: Option<Range<usize>> = None;
    let mut table: Option<&DeTable<'_>> = Some(doc.get_ref());
    let mut value: Option<&DeValue<'_>> = None;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let t = match (table, value) {
            (Some(t), _) => t,
            (None, Some(DeValue::Table(t))) => t,
            _ => break,
        };
        let Some((k, v)) = t.get_key_value(name) else { break };
        found = Some(k.span());
        let mut v = v;
        if let Some(i) = index {
            match v.get_ref() {
                DeValue::Array(items) if i < items.len() => {
                    found = Some(items[i].span());
                    v = &items[i];
                }
                _ => break,
            }
        }
        table = None;
        value = Some(v.get_ref());
    }
    found
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text.as_bytes()[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let col = before.iter().rev().take_while(|b| **b != b'\n').count() + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
vendor = "acme"
base_url = "https://api.acme.example"

[conversations]
path = "/v1/conversations"
records = ".items"
id = ".id"
paging = { type = "offset", limit = 50 }

[messages]
path = "/v1/conversations/{id}/messages"
records = ".messages"
paging = { type = "link_header" }

[map]
roles = { customer = "visitor", operator = "agent" }
conversation = "{title: .subject, created_at: .created}"
message = "{message_id: .id, sent_at: .ts, sender_role: .author.type, text: .body}"
"#;

    /// One spec error as a test sees it: key, (line, column), message.
    type Found = (String, Option<(usize, usize)>, String);

    fn errors(text: &str) -> Vec<Found> {
        match Spec::parse(text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(errs) => {
                errs.into_iter().map(|e| (e.key, e.span.map(|s| line_col(text, s.start)), e.message)).collect()
            }
        }
    }

    #[test]
    fn the_shipped_specs_and_a_minimal_one_load() {
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../pipelines/specs/alli-rest.toml"))
                .expect("the shipped Alli spec");
        let spec = Spec::parse(&shipped).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(spec.file.vendor, "alli");
        assert!(spec.programs.time.is_some() && spec.programs.count.is_some() && spec.programs.unique.is_some());
        let shipped =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../pipelines/specs/aimylogic.toml"))
                .expect("the shipped Aimylogic spec");
        let spec = Spec::parse(&shipped).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(spec.file.conversations.path.is_none() && spec.file.conversation_watermarks);
        assert!(matches!(spec.file.auth, AuthSpec::Path { .. }));
        let spec = Spec::parse(MINIMAL).unwrap();
        assert!(matches!(spec.file.messages.paging, PagingSpec::LinkHeader));
        assert!(matches!(spec.file.auth, AuthSpec::None));
    }

    #[test]
    fn problems_are_located_by_key_line_and_column() {
        let bad = MINIMAL.replace("records = \".items\"", "records = \".items | (\"");
        let e = errors(&bad);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!((e[0].0.as_str(), e[0].1), ("conversations.records", Some((7, 1))));
        assert!(e[0].2.contains("not a jq program"), "{e:?}");

        // Several at once: every one reported.
        let bad = MINIMAL
            .replace("vendor = \"acme\"", "vendor = \"Acme Inc\"")
            .replace("operator = \"agent\"", "operator = \"staff\"")
            .replace("{id}", "{id");
        let keys: Vec<String> = errors(&bad).into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["vendor", "messages.path", "map.roles.operator"]);

        // Types and unknown keys: serde's message at the toml crate's span.
        let e = errors(&MINIMAL.replace("limit = 50", "limit = \"fifty\""));
        assert_eq!(e[0].1.map(|(l, _)| l), Some(9), "{e:?}");
        let e = errors(&MINIMAL.replace("[map]", "[map]\ncolour = \"blue\""));
        assert!(e[0].2.contains("colour"), "{e:?}");
        let e = errors(&MINIMAL.replace("type = \"link_header\"", "type = \"link\""));
        assert!(e[0].2.contains("link"), "{e:?}");
        // A global a program may not read there.
        let e = errors(&MINIMAL.replace("records = \".messages\"", "records = \"$records\""));
        assert_eq!(e[0].0, "messages.records", "{e:?}");
        let e =
            errors(&MINIMAL.replace(
                "base_url = \"https://api.acme.example\"",
                "timezone = \"Mars/Olympus\"\nbase_url = \"ftp://x\"",
            ));
        let keys: Vec<&str> = e.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["base_url", "timezone"]);
    }

    #[test]
    fn spans_of_nested_and_indexed_keys() {
        let text = "a = 1\n[b]\nc = [1, {d = 2}]\n[[e]]\nf = 3\n[[e]]\nf = 4\n";
        assert_eq!(span_of(text, "b.c").map(|s| line_col(text, s.start).0), Some(3));
        assert_eq!(span_of(text, "e[1].f").map(|s| line_col(text, s.start).0), Some(7));
        assert_eq!(span_of(text, "b.zz").map(|s| line_col(text, s.start).0), Some(2), "the deepest key found");
    }
}
