//! The canonical chat schemas, v1 (docs/design.md §3), and the builders every source fills them with.
//!
//! Two streams:
//!
//! * [`MESSAGES`] — one row per message; primary key (`vendor`, `account_id`,
//!   `conversation_id`, `message_id`). See [`messages_schema`].
//! * [`CONVERSATIONS`] — one row per conversation per run; primary key (`vendor`,
//!   `account_id`, `conversation_id`), latest `updated_at` wins. See [`conversations_schema`].
//!
//! Timestamps are `Timestamp(Microsecond, "UTC")`; lists are `List<Utf8>` and maps
//! `Map<Utf8, Utf8>` with arrow-rs's default child names (`item`; `entries`/`key`/`value`).
//! List and map columns are never null (empty instead).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    BooleanBuilder, ListBuilder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// Name of the messages stream.
pub const MESSAGES: &str = "messages";
/// Name of the conversations stream.
pub const CONVERSATIONS: &str = "conversations";
/// The canonical streams, in the order a source declares them.
pub const CANONICAL_STREAMS: [&str; 2] = [CONVERSATIONS, MESSAGES];

/// `Timestamp(Microsecond, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `List<Utf8>` exactly as arrow-rs's `ListBuilder<StringBuilder>` produces it.
pub fn list_utf8_type() -> DataType {
    ListBuilder::new(StringBuilder::new()).finish().data_type().clone()
}

/// `Map<Utf8, Utf8>` exactly as arrow-rs's `MapBuilder<StringBuilder, StringBuilder>` produces it.
pub fn map_utf8_type() -> DataType {
    MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()).finish().data_type().clone()
}

/// The `messages` schema:
///
/// | column | type |
/// |---|---|
/// | vendor, account_id, conversation_id, message_id | utf8 |
/// | seq | uint32 (position in the conversation from 0, by sent time) |
/// | sent_at | timestamp[us, UTC] |
/// | sender_role | utf8 (`visitor`, `agent`, `bot`, `system`) |
/// | sender_id, sender_name | utf8? |
/// | message_type | utf8 (vendor kind, lower case) |
/// | text | utf8? (null while encrypted or purged) |
/// | is_encrypted | bool |
/// | ciphertext | utf8? |
/// | tags | `list<utf8>` |
/// | attributes | map<utf8, utf8> |
/// | raw | utf8 (vendor JSON) |
/// | extracted_at | timestamp[us, UTC] |
pub fn messages_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("vendor", DataType::Utf8, false),
                Field::new("account_id", DataType::Utf8, false),
                Field::new("conversation_id", DataType::Utf8, false),
                Field::new("message_id", DataType::Utf8, false),
                Field::new("seq", DataType::UInt32, false),
                Field::new("sent_at", timestamp_type(), false),
                Field::new("sender_role", DataType::Utf8, false),
                Field::new("sender_id", DataType::Utf8, true),
                Field::new("sender_name", DataType::Utf8, true),
                Field::new("message_type", DataType::Utf8, false),
                Field::new("text", DataType::Utf8, true),
                Field::new("is_encrypted", DataType::Boolean, false),
                Field::new("ciphertext", DataType::Utf8, true),
                Field::new("tags", list_utf8_type(), false),
                Field::new("attributes", map_utf8_type(), false),
                Field::new("raw", DataType::Utf8, false),
                Field::new("extracted_at", timestamp_type(), false),
            ]))
        })
        .clone()
}

/// The `conversations` schema:
///
/// | column | type |
/// |---|---|
/// | vendor, account_id, conversation_id | utf8 |
/// | channel_id, title, state | utf8? |
/// | is_ended | bool? |
/// | created_at, updated_at, ended_at, last_message_at | timestamp[us, UTC]? |
/// | message_count | uint32? (as the vendor reports it) |
/// | visitor_id, visitor_name | utf8? |
/// | agent_ids, tag_ids, tags | `list<utf8>` |
/// | variables | map<utf8, utf8> |
/// | raw | utf8 (vendor JSON) |
/// | extracted_at | timestamp[us, UTC] |
pub fn conversations_schema() -> SchemaRef {
    static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
    SCHEMA
        .get_or_init(|| {
            Arc::new(Schema::new(vec![
                Field::new("vendor", DataType::Utf8, false),
                Field::new("account_id", DataType::Utf8, false),
                Field::new("conversation_id", DataType::Utf8, false),
                Field::new("channel_id", DataType::Utf8, true),
                Field::new("title", DataType::Utf8, true),
                Field::new("state", DataType::Utf8, true),
                Field::new("is_ended", DataType::Boolean, true),
                Field::new("created_at", timestamp_type(), true),
                Field::new("updated_at", timestamp_type(), true),
                Field::new("ended_at", timestamp_type(), true),
                Field::new("last_message_at", timestamp_type(), true),
                Field::new("message_count", DataType::UInt32, true),
                Field::new("visitor_id", DataType::Utf8, true),
                Field::new("visitor_name", DataType::Utf8, true),
                Field::new("agent_ids", list_utf8_type(), false),
                Field::new("tag_ids", list_utf8_type(), false),
                Field::new("tags", list_utf8_type(), false),
                Field::new("variables", map_utf8_type(), false),
                Field::new("raw", DataType::Utf8, false),
                Field::new("extracted_at", timestamp_type(), false),
            ]))
        })
        .clone()
}

/// The canonical schema of a stream name, if it is one of ours.
pub fn canonical_schema(stream: &str) -> Option<SchemaRef> {
    match stream {
        MESSAGES => Some(messages_schema()),
        CONVERSATIONS => Some(conversations_schema()),
        _ => None,
    }
}

/// The canonical primary key columns of a stream.
pub fn primary_key(stream: &str) -> &'static [&'static str] {
    match stream {
        MESSAGES => &["vendor", "account_id", "conversation_id", "message_id"],
        CONVERSATIONS => &["vendor", "account_id", "conversation_id"],
        _ => &[],
    }
}

/// The canonical sender roles of `messages.sender_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderRole {
    /// The customer (`visitor`).
    Visitor,
    /// A human agent (`agent`).
    Agent,
    /// A bot or automated reply (`bot`).
    Bot,
    /// System events: joins, leaves, tag changes, rules (`system`).
    System,
}

impl SenderRole {
    /// The value written to the column.
    pub fn as_str(self) -> &'static str {
        match self {
            SenderRole::Visitor => "visitor",
            SenderRole::Agent => "agent",
            SenderRole::Bot => "bot",
            SenderRole::System => "system",
        }
    }
}

/// One `messages` row, owned, before it goes into a [`MessagesBuilder`].
/// Timestamps are microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    /// Vendor name (`giosg`, `alli`, `aimylogic`, or a plugin's own).
    pub vendor: String,
    /// The vendor account (docs/design.md §3.1).
    pub account_id: String,
    /// The vendor's conversation id, as given.
    pub conversation_id: String,
    /// The vendor's message id, unique within the conversation.
    pub message_id: String,
    /// Position in the conversation from 0, by sent time.
    pub seq: u32,
    /// When it was sent, microseconds since the Unix epoch, UTC.
    pub sent_at: i64,
    /// Who sent it.
    pub sender_role: SenderRole,
    /// The sender's vendor id, if any.
    pub sender_id: Option<String>,
    /// The sender's display name, if any.
    pub sender_name: Option<String>,
    /// Vendor message kind, lower case (`msg`, `join`, `text`).
    pub message_type: String,
    /// Plain text; `None` while encrypted (or purged).
    pub text: Option<String>,
    /// True until the `decrypt` transform has decrypted it.
    pub is_encrypted: bool,
    /// The vendor's encrypted payload, kept until decrypted.
    pub ciphertext: Option<String>,
    /// The conversation's vendor tags plus rule tags of this message.
    pub tags: Vec<String>,
    /// Vendor extras, key → value (JSON text for structured values).
    pub attributes: BTreeMap<String, String>,
    /// The vendor's JSON of the message, compact.
    pub raw: String,
    /// When this run fetched it, microseconds since the Unix epoch, UTC.
    pub extracted_at: i64,
}

/// One `conversations` row, owned, before it goes into a [`ConversationsBuilder`].
/// Timestamps are microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConversationRow {
    /// Vendor name.
    pub vendor: String,
    /// The vendor account.
    pub account_id: String,
    /// The vendor's conversation id, as given.
    pub conversation_id: String,
    /// Room, campaign or bot channel, if the vendor has one.
    pub channel_id: Option<String>,
    /// Subject or title, if any.
    pub title: Option<String>,
    /// Vendor state, lower case (`ended`, `waiting`).
    pub state: Option<String>,
    /// Whether the conversation has ended, when the vendor says.
    pub is_ended: Option<bool>,
    /// Microseconds since the Unix epoch, UTC.
    pub created_at: Option<i64>,
    /// Microseconds since the Unix epoch, UTC; the latest row per key wins downstream.
    pub updated_at: Option<i64>,
    /// Microseconds since the Unix epoch, UTC.
    pub ended_at: Option<i64>,
    /// Newest message's `sent_at`, microseconds since the Unix epoch, UTC.
    pub last_message_at: Option<i64>,
    /// As the vendor reports it.
    pub message_count: Option<u32>,
    /// The customer's vendor id.
    pub visitor_id: Option<String>,
    /// The customer's name.
    pub visitor_name: Option<String>,
    /// Vendor ids of the agents who took part.
    pub agent_ids: Vec<String>,
    /// Vendor tag ids.
    pub tag_ids: Vec<String>,
    /// Vendor tag names (plus tags the `tags` transform adds).
    pub tags: Vec<String>,
    /// Visitor/user variables, key → value.
    pub variables: BTreeMap<String, String>,
    /// The vendor's JSON of the conversation, compact.
    pub raw: String,
    /// When this run fetched it, microseconds since the Unix epoch, UTC.
    pub extracted_at: i64,
}

fn utc(b: TimestampMicrosecondBuilder) -> TimestampMicrosecondBuilder {
    b.with_timezone("UTC")
}

fn append_list(b: &mut ListBuilder<StringBuilder>, items: &[String]) {
    for item in items {
        b.values().append_value(item);
    }
    b.append(true);
}

fn append_map(b: &mut MapBuilder<StringBuilder, StringBuilder>, map: &BTreeMap<String, String>) {
    for (k, v) in map {
        b.keys().append_value(k);
        b.values().append_value(v);
    }
    b.append(true).expect("keys and values are appended in pairs");
}

/// Columnar builder for the `messages` stream. Append rows, then [`finish`](Self::finish) to get
/// a `RecordBatch` with exactly [`messages_schema`].
pub struct MessagesBuilder {
    vendor: StringBuilder,
    account_id: StringBuilder,
    conversation_id: StringBuilder,
    message_id: StringBuilder,
    seq: UInt32Builder,
    sent_at: TimestampMicrosecondBuilder,
    sender_role: StringBuilder,
    sender_id: StringBuilder,
    sender_name: StringBuilder,
    message_type: StringBuilder,
    text: StringBuilder,
    is_encrypted: BooleanBuilder,
    ciphertext: StringBuilder,
    tags: ListBuilder<StringBuilder>,
    attributes: MapBuilder<StringBuilder, StringBuilder>,
    raw: StringBuilder,
    extracted_at: TimestampMicrosecondBuilder,
    len: usize,
}

impl Default for MessagesBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl MessagesBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        MessagesBuilder {
            vendor: StringBuilder::new(),
            account_id: StringBuilder::new(),
            conversation_id: StringBuilder::new(),
            message_id: StringBuilder::new(),
            seq: UInt32Builder::new(),
            sent_at: utc(TimestampMicrosecondBuilder::new()),
            sender_role: StringBuilder::new(),
            sender_id: StringBuilder::new(),
            sender_name: StringBuilder::new(),
            message_type: StringBuilder::new(),
            text: StringBuilder::new(),
            is_encrypted: BooleanBuilder::new(),
            ciphertext: StringBuilder::new(),
            tags: ListBuilder::new(StringBuilder::new()),
            attributes: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            raw: StringBuilder::new(),
            extracted_at: utc(TimestampMicrosecondBuilder::new()),
            len: 0,
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &MessageRow) {
        self.vendor.append_value(&r.vendor);
        self.account_id.append_value(&r.account_id);
        self.conversation_id.append_value(&r.conversation_id);
        self.message_id.append_value(&r.message_id);
        self.seq.append_value(r.seq);
        self.sent_at.append_value(r.sent_at);
        self.sender_role.append_value(r.sender_role.as_str());
        self.sender_id.append_option(r.sender_id.as_deref());
        self.sender_name.append_option(r.sender_name.as_deref());
        self.message_type.append_value(&r.message_type);
        self.text.append_option(r.text.as_deref());
        self.is_encrypted.append_value(r.is_encrypted);
        self.ciphertext.append_option(r.ciphertext.as_deref());
        append_list(&mut self.tags, &r.tags);
        append_map(&mut self.attributes, &r.attributes);
        self.raw.append_value(&r.raw);
        self.extracted_at.append_value(r.extracted_at);
        self.len += 1;
    }

    /// Builds the batch of every row appended so far and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.vendor.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.conversation_id.finish()),
            Arc::new(self.message_id.finish()),
            Arc::new(self.seq.finish()),
            Arc::new(self.sent_at.finish()),
            Arc::new(self.sender_role.finish()),
            Arc::new(self.sender_id.finish()),
            Arc::new(self.sender_name.finish()),
            Arc::new(self.message_type.finish()),
            Arc::new(self.text.finish()),
            Arc::new(self.is_encrypted.finish()),
            Arc::new(self.ciphertext.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.attributes.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.extracted_at.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(messages_schema(), columns).expect("builder columns match the messages schema")
    }
}

/// Columnar builder for the `conversations` stream; `finish` gives a `RecordBatch` with exactly
/// [`conversations_schema`].
pub struct ConversationsBuilder {
    vendor: StringBuilder,
    account_id: StringBuilder,
    conversation_id: StringBuilder,
    channel_id: StringBuilder,
    title: StringBuilder,
    state: StringBuilder,
    is_ended: BooleanBuilder,
    created_at: TimestampMicrosecondBuilder,
    updated_at: TimestampMicrosecondBuilder,
    ended_at: TimestampMicrosecondBuilder,
    last_message_at: TimestampMicrosecondBuilder,
    message_count: UInt32Builder,
    visitor_id: StringBuilder,
    visitor_name: StringBuilder,
    agent_ids: ListBuilder<StringBuilder>,
    tag_ids: ListBuilder<StringBuilder>,
    tags: ListBuilder<StringBuilder>,
    variables: MapBuilder<StringBuilder, StringBuilder>,
    raw: StringBuilder,
    extracted_at: TimestampMicrosecondBuilder,
    len: usize,
}

impl Default for ConversationsBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ConversationsBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        ConversationsBuilder {
            vendor: StringBuilder::new(),
            account_id: StringBuilder::new(),
            conversation_id: StringBuilder::new(),
            channel_id: StringBuilder::new(),
            title: StringBuilder::new(),
            state: StringBuilder::new(),
            is_ended: BooleanBuilder::new(),
            created_at: utc(TimestampMicrosecondBuilder::new()),
            updated_at: utc(TimestampMicrosecondBuilder::new()),
            ended_at: utc(TimestampMicrosecondBuilder::new()),
            last_message_at: utc(TimestampMicrosecondBuilder::new()),
            message_count: UInt32Builder::new(),
            visitor_id: StringBuilder::new(),
            visitor_name: StringBuilder::new(),
            agent_ids: ListBuilder::new(StringBuilder::new()),
            tag_ids: ListBuilder::new(StringBuilder::new()),
            tags: ListBuilder::new(StringBuilder::new()),
            variables: MapBuilder::new(None, StringBuilder::new(), StringBuilder::new()),
            raw: StringBuilder::new(),
            extracted_at: utc(TimestampMicrosecondBuilder::new()),
            len: 0,
        }
    }

    /// Rows appended since the last `finish`.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no row is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one row.
    pub fn append(&mut self, r: &ConversationRow) {
        self.vendor.append_value(&r.vendor);
        self.account_id.append_value(&r.account_id);
        self.conversation_id.append_value(&r.conversation_id);
        self.channel_id.append_option(r.channel_id.as_deref());
        self.title.append_option(r.title.as_deref());
        self.state.append_option(r.state.as_deref());
        self.is_ended.append_option(r.is_ended);
        self.created_at.append_option(r.created_at);
        self.updated_at.append_option(r.updated_at);
        self.ended_at.append_option(r.ended_at);
        self.last_message_at.append_option(r.last_message_at);
        self.message_count.append_option(r.message_count);
        self.visitor_id.append_option(r.visitor_id.as_deref());
        self.visitor_name.append_option(r.visitor_name.as_deref());
        append_list(&mut self.agent_ids, &r.agent_ids);
        append_list(&mut self.tag_ids, &r.tag_ids);
        append_list(&mut self.tags, &r.tags);
        append_map(&mut self.variables, &r.variables);
        self.raw.append_value(&r.raw);
        self.extracted_at.append_value(r.extracted_at);
        self.len += 1;
    }

    /// Builds the batch of every row appended so far and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.vendor.finish()),
            Arc::new(self.account_id.finish()),
            Arc::new(self.conversation_id.finish()),
            Arc::new(self.channel_id.finish()),
            Arc::new(self.title.finish()),
            Arc::new(self.state.finish()),
            Arc::new(self.is_ended.finish()),
            Arc::new(self.created_at.finish()),
            Arc::new(self.updated_at.finish()),
            Arc::new(self.ended_at.finish()),
            Arc::new(self.last_message_at.finish()),
            Arc::new(self.message_count.finish()),
            Arc::new(self.visitor_id.finish()),
            Arc::new(self.visitor_name.finish()),
            Arc::new(self.agent_ids.finish()),
            Arc::new(self.tag_ids.finish()),
            Arc::new(self.tags.finish()),
            Arc::new(self.variables.finish()),
            Arc::new(self.raw.finish()),
            Arc::new(self.extracted_at.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(conversations_schema(), columns).expect("builder columns match the conversations schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> MessageRow {
        MessageRow {
            vendor: "giosg".into(),
            account_id: "org".into(),
            conversation_id: "c1".into(),
            message_id: "m1".into(),
            seq: 0,
            sent_at: 1_686_739_774_406_000,
            sender_role: SenderRole::Visitor,
            sender_id: Some("v".into()),
            sender_name: None,
            message_type: "msg".into(),
            text: Some("hei 👋".into()),
            is_encrypted: false,
            ciphertext: None,
            tags: vec!["a".into(), "b".into()],
            attributes: BTreeMap::from([("k".to_string(), "v".to_string())]),
            raw: "{}".into(),
            extracted_at: 1,
        }
    }

    #[test]
    fn builders_produce_the_declared_schemas() {
        let mut m = MessagesBuilder::new();
        m.append(&message());
        m.append(&message());
        let batch = m.finish();
        assert_eq!(batch.schema(), messages_schema());
        assert_eq!(batch.num_rows(), 2);
        assert!(m.is_empty());

        let mut c = ConversationsBuilder::new();
        c.append(&ConversationRow { vendor: "giosg".into(), ..Default::default() });
        let batch = c.finish();
        assert_eq!(batch.schema(), conversations_schema());
        // list and map columns are empty, never null
        assert_eq!(batch.column_by_name("tags").unwrap().null_count(), 0);
        assert_eq!(batch.column_by_name("variables").unwrap().null_count(), 0);
    }

    #[test]
    fn default_child_names() {
        assert_eq!(list_utf8_type(), DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))));
        let DataType::Map(entries, false) = map_utf8_type() else { panic!("not a map") };
        assert_eq!(entries.name(), "entries");
        let DataType::Struct(kv) = entries.data_type() else { panic!("entries not a struct") };
        assert_eq!(kv[0].name(), "key");
        assert!(!kv[0].is_nullable());
        assert_eq!(kv[1].name(), "value");
    }
}
