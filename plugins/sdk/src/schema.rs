//! The canonical chat schemas, v1 (docs/design.md §3), and the builders every source fills them with.
//!
//! Two streams:
//!
//! * [`MESSAGES`] — one row per message; primary key (`vendor`, `account_id`,
//!   `conversation_id`, `message_id`). See [`MESSAGES_COLUMNS`] and [`messages_schema`].
//! * [`CONVERSATIONS`] — one row per conversation per run; primary key (`vendor`,
//!   `account_id`, `conversation_id`), latest `updated_at` wins. See [`CONVERSATIONS_COLUMNS`]
//!   and [`conversations_schema`].
//!
//! Each stream's columns are declared once, below, as name, Rust field type, Arrow type and a
//! one-line doc. Everything else is derived from that declaration, so it cannot drift: the
//! row struct ([`MessageRow`], [`ConversationRow`]), the column list ([`Column`]), the Arrow
//! schema, the builder's column order, and the markdown table of the docs
//! ([`markdown_table`]). Nullability follows the field type: an `Option` field is a nullable
//! column, any other field a non-null one.
//!
//! Timestamps are `Timestamp(Microsecond, "UTC")` (microseconds since the Unix epoch, UTC, as
//! `i64` in the row structs); lists are `List<Utf8>` and maps `Map<Utf8, Utf8>` with arrow-rs's
//! default child names (`item`; `entries`/`key`/`value`). List and map columns are never null
//! (empty instead).
//!
//! ```
//! use pipe_plugin_sdk::schema::{ConversationRow, ConversationsBuilder, conversations_schema};
//!
//! let mut builder = ConversationsBuilder::new();
//! builder.append(&ConversationRow {
//!     vendor: "giosg".into(),
//!     account_id: "org-1".into(),
//!     conversation_id: "c1".into(),
//!     created_at: Some(1_686_739_774_406_000), // 2023-06-14T10:49:34.406Z
//!     ..Default::default()
//! });
//! let batch = builder.finish();
//! assert_eq!(batch.schema(), conversations_schema());
//! assert_eq!(batch.num_rows(), 1);
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use arrow_array::builder::{
    ArrayBuilder, BooleanBuilder, ListBuilder, MapBuilder, StringBuilder, TimestampMicrosecondBuilder, UInt32Builder,
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

/// The Arrow type of a canonical column. The canonical schemas use only these six.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `Utf8`.
    Utf8,
    /// `UInt32`.
    UInt32,
    /// `Boolean`.
    Bool,
    /// `Timestamp(Microsecond, "UTC")`: microseconds since the Unix epoch, UTC.
    Timestamp,
    /// `List<Utf8>` with arrow-rs's default child (`item`, nullable).
    ListUtf8,
    /// `Map<Utf8, Utf8>` with arrow-rs's default children (`entries`: `key`, `value`).
    MapUtf8,
}

impl ColumnType {
    /// The Arrow data type.
    pub fn data_type(self) -> DataType {
        match self {
            ColumnType::Utf8 => DataType::Utf8,
            ColumnType::UInt32 => DataType::UInt32,
            ColumnType::Bool => DataType::Boolean,
            ColumnType::Timestamp => timestamp_type(),
            ColumnType::ListUtf8 => list_utf8_type(),
            ColumnType::MapUtf8 => map_utf8_type(),
        }
    }

    /// The type as docs/design.md §3 writes it: `utf8`, `uint32`, `bool`,
    /// `timestamp[us, UTC]`, `list<utf8>`, `map<utf8, utf8>`.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Utf8 => "utf8",
            ColumnType::UInt32 => "uint32",
            ColumnType::Bool => "bool",
            ColumnType::Timestamp => "timestamp[us, UTC]",
            ColumnType::ListUtf8 => "list<utf8>",
            ColumnType::MapUtf8 => "map<utf8, utf8>",
        }
    }
}

/// One column of a canonical stream, as declared once in this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Column name, as in the Arrow schema and the files.
    pub name: &'static str,
    /// Arrow type.
    pub column_type: ColumnType,
    /// Whether the column may hold nulls (its row field is an `Option`).
    pub nullable: bool,
    /// One line: what the column holds.
    pub doc: &'static str,
}

impl Column {
    /// The Arrow field: name, type and nullability, no metadata.
    pub fn field(&self) -> Field {
        Field::new(self.name, self.column_type.data_type(), self.nullable)
    }
}

/// The Arrow schema of `columns`, in their order, with no metadata.
pub fn schema_of(columns: &[Column]) -> Schema {
    Schema::new(columns.iter().map(Column::field).collect::<Vec<_>>())
}

/// The declared columns of a canonical stream, if `stream` is one of ours.
pub fn columns(stream: &str) -> Option<&'static [Column]> {
    match stream {
        MESSAGES => Some(MESSAGES_COLUMNS),
        CONVERSATIONS => Some(CONVERSATIONS_COLUMNS),
        _ => None,
    }
}

/// The markdown table of `columns` for the docs: a header `| column | type | nullable |
/// meaning |`, then one row per column (nullable `yes` or `no`; a `|` inside a doc is
/// escaped), each line ending in `\n`.
///
/// ```
/// use pipe_plugin_sdk::schema::{MESSAGES_COLUMNS, markdown_table};
///
/// let table = markdown_table(MESSAGES_COLUMNS);
/// assert!(table.starts_with("| column | type | nullable | meaning |\n|---|---|---|---|\n| vendor | utf8 | no |"));
/// ```
pub fn markdown_table(columns: &[Column]) -> String {
    let mut out = String::from("| column | type | nullable | meaning |\n|---|---|---|---|\n");
    for c in columns {
        let nullable = if c.nullable { "yes" } else { "no" };
        let _ = writeln!(out, "| {} | {} | {nullable} | {} |", c.name, c.column_type.name(), c.doc.replace('|', "\\|"));
    }
    out
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

/// The arrow-rs builder of each [`ColumnType`], named by the variant, for the declarations.
macro_rules! column_builder {
    (Utf8) => { StringBuilder };
    (UInt32) => { UInt32Builder };
    (Bool) => { BooleanBuilder };
    (Timestamp) => { TimestampMicrosecondBuilder };
    (ListUtf8) => { ListBuilder<StringBuilder> };
    (MapUtf8) => { MapBuilder<StringBuilder, StringBuilder> };
}

/// What a row field's doc adds to its column's doc, by column type: the unit of timestamps.
macro_rules! field_note {
    (Timestamp) => {
        " Microseconds since the Unix epoch, UTC."
    };
    ($other:ident) => {
        ""
    };
}

/// A column builder of the canonical types, made and finished the same way for every column.
trait CanonicalBuilder: ArrayBuilder {
    /// An empty builder producing exactly the column's [`ColumnType::data_type`].
    fn new_column() -> Self;
}

impl CanonicalBuilder for StringBuilder {
    fn new_column() -> Self {
        StringBuilder::new()
    }
}
impl CanonicalBuilder for UInt32Builder {
    fn new_column() -> Self {
        UInt32Builder::new()
    }
}
impl CanonicalBuilder for BooleanBuilder {
    fn new_column() -> Self {
        BooleanBuilder::new()
    }
}
impl CanonicalBuilder for TimestampMicrosecondBuilder {
    fn new_column() -> Self {
        TimestampMicrosecondBuilder::new().with_timezone("UTC")
    }
}
impl CanonicalBuilder for ListBuilder<StringBuilder> {
    fn new_column() -> Self {
        ListBuilder::new(StringBuilder::new())
    }
}
impl CanonicalBuilder for MapBuilder<StringBuilder, StringBuilder> {
    fn new_column() -> Self {
        MapBuilder::new(None, StringBuilder::new(), StringBuilder::new())
    }
}

/// A row field's value appended to its column's builder `B`. Implemented only for the pairs
/// that fit, so a declaration whose field type does not match its column type does not
/// compile; `NULLABLE` is what makes an `Option` field a nullable column.
trait Cell<B> {
    /// Whether this field type can be null.
    const NULLABLE: bool;
    /// Appends the value (a null for `None`).
    fn append_to(&self, builder: &mut B);
}

impl Cell<StringBuilder> for String {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut StringBuilder) {
        b.append_value(self);
    }
}
impl Cell<StringBuilder> for Option<String> {
    const NULLABLE: bool = true;
    fn append_to(&self, b: &mut StringBuilder) {
        b.append_option(self.as_deref());
    }
}
impl Cell<StringBuilder> for SenderRole {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut StringBuilder) {
        b.append_value(self.as_str());
    }
}
impl Cell<UInt32Builder> for u32 {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut UInt32Builder) {
        b.append_value(*self);
    }
}
impl Cell<UInt32Builder> for Option<u32> {
    const NULLABLE: bool = true;
    fn append_to(&self, b: &mut UInt32Builder) {
        b.append_option(*self);
    }
}
impl Cell<BooleanBuilder> for bool {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut BooleanBuilder) {
        b.append_value(*self);
    }
}
impl Cell<BooleanBuilder> for Option<bool> {
    const NULLABLE: bool = true;
    fn append_to(&self, b: &mut BooleanBuilder) {
        b.append_option(*self);
    }
}
impl Cell<TimestampMicrosecondBuilder> for i64 {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut TimestampMicrosecondBuilder) {
        b.append_value(*self);
    }
}
impl Cell<TimestampMicrosecondBuilder> for Option<i64> {
    const NULLABLE: bool = true;
    fn append_to(&self, b: &mut TimestampMicrosecondBuilder) {
        b.append_option(*self);
    }
}
impl Cell<ListBuilder<StringBuilder>> for Vec<String> {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut ListBuilder<StringBuilder>) {
        for item in self {
            b.values().append_value(item);
        }
        b.append(true);
    }
}
impl Cell<MapBuilder<StringBuilder, StringBuilder>> for BTreeMap<String, String> {
    const NULLABLE: bool = false;
    fn append_to(&self, b: &mut MapBuilder<StringBuilder, StringBuilder>) {
        for (k, v) in self {
            b.keys().append_value(k);
            b.values().append_value(v);
        }
        b.append(true).expect("keys and values are appended in pairs");
    }
}

/// Declares one canonical stream from its list of columns (`field: RustType = ColumnType,
/// "doc";`, in schema order) and derives from it the row struct, the `Column` list, the
/// schema function and the builder.
macro_rules! canonical_stream {
    (
        stream $stream:ident;
        $(#[$row_meta:meta])* row $row:ident;
        $(#[$builder_meta:meta])* builder $builder:ident;
        $(#[$columns_meta:meta])* columns $columns:ident;
        $(#[$schema_meta:meta])* schema $schema:ident;
        { $( $field:ident : $ty:ty = $kind:ident, $doc:literal; )* }
    ) => {
        $(#[$row_meta])*
        pub struct $row {
            $( #[doc = concat!($doc, field_note!($kind))] pub $field: $ty, )*
        }

        $(#[$columns_meta])*
        pub const $columns: &[Column] = &[
            $( Column {
                name: stringify!($field),
                column_type: ColumnType::$kind,
                nullable: <$ty as Cell<column_builder!($kind)>>::NULLABLE,
                doc: $doc,
            }, )*
        ];

        $(#[$schema_meta])*
        pub fn $schema() -> SchemaRef {
            static SCHEMA: OnceLock<SchemaRef> = OnceLock::new();
            SCHEMA.get_or_init(|| Arc::new(schema_of($columns))).clone()
        }

        $(#[$builder_meta])*
        pub struct $builder {
            $( $field: column_builder!($kind), )*
            len: usize,
        }

        impl Default for $builder {
            fn default() -> Self {
                Self::new()
            }
        }

        impl $builder {
            /// An empty builder.
            pub fn new() -> Self {
                $builder { $( $field: CanonicalBuilder::new_column(), )* len: 0 }
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
            pub fn append(&mut self, r: &$row) {
                $( Cell::<column_builder!($kind)>::append_to(&r.$field, &mut self.$field); )*
                self.len += 1;
            }

            /// Builds the batch of every row appended so far, in the declared column order,
            /// and resets the builder.
            pub fn finish(&mut self) -> RecordBatch {
                let columns: Vec<ArrayRef> = vec![ $( ArrayBuilder::finish(&mut self.$field), )* ];
                self.len = 0;
                RecordBatch::try_new($schema(), columns)
                    .expect(concat!("builder columns match the ", stringify!($stream), " schema"))
            }
        }
    };
}

canonical_stream! {
    stream messages;
    /// One `messages` row, owned, before it goes into a [`MessagesBuilder`].
    /// Timestamps are microseconds since the Unix epoch, UTC.
    #[derive(Debug, Clone, PartialEq)]
    row MessageRow;
    /// Columnar builder for the `messages` stream. Append rows, then
    /// [`finish`](Self::finish) to get a `RecordBatch` with exactly [`messages_schema`].
    builder MessagesBuilder;
    /// The `messages` columns, in schema order (docs/design.md §3).
    columns MESSAGES_COLUMNS;
    /// The `messages` Arrow schema, derived from [`MESSAGES_COLUMNS`].
    schema messages_schema;
    {
        vendor: String = Utf8, "Vendor name: `giosg`, `alli`, `aimylogic`, or a plugin's own.";
        account_id: String = Utf8, "The vendor account: giosg organization, Alli project or API key scope, Aimylogic channel (docs/design.md §3.1).";
        conversation_id: String = Utf8, "The vendor's conversation id, as given.";
        message_id: String = Utf8, "The vendor's message id, as given; unique within the conversation.";
        seq: u32 = UInt32, "Position in the conversation, from 0, by sent time.";
        sent_at: i64 = Timestamp, "When the message was sent.";
        sender_role: SenderRole = Utf8, "Who sent it: `visitor`, `agent`, `bot` or `system`.";
        sender_id: Option<String> = Utf8, "The sender's vendor id, if any.";
        sender_name: Option<String> = Utf8, "The sender's display name, if any.";
        message_type: String = Utf8, "Vendor message kind, lower case (`msg`, `join`, `autosuggest`, `text`).";
        text: Option<String> = Utf8, "Plain text; null while still encrypted, or when the vendor purged it.";
        is_encrypted: bool = Bool, "True until the `decrypt` transform has decrypted the message.";
        ciphertext: Option<String> = Utf8, "The vendor's encrypted payload, kept until decrypted.";
        tags: Vec<String> = ListUtf8, "The conversation's vendor tags, plus tags the `tags` transform's rules gave this message.";
        attributes: BTreeMap<String, String> = MapUtf8, "Vendor extras, key → value, JSON text for structured values (citations, buttons, rating; giosg's `encrypted_symmetric_key` until decrypted).";
        raw: String = Utf8, "The vendor's JSON of the message, compact; nothing dropped.";
        extracted_at: i64 = Timestamp, "When this run fetched it.";
    }
}

canonical_stream! {
    stream conversations;
    /// One `conversations` row, owned, before it goes into a [`ConversationsBuilder`].
    /// Timestamps are microseconds since the Unix epoch, UTC.
    #[derive(Debug, Clone, PartialEq, Default)]
    row ConversationRow;
    /// Columnar builder for the `conversations` stream; [`finish`](Self::finish) gives a
    /// `RecordBatch` with exactly [`conversations_schema`].
    builder ConversationsBuilder;
    /// The `conversations` columns, in schema order (docs/design.md §3).
    columns CONVERSATIONS_COLUMNS;
    /// The `conversations` Arrow schema, derived from [`CONVERSATIONS_COLUMNS`].
    schema conversations_schema;
    {
        vendor: String = Utf8, "Vendor name: `giosg`, `alli`, `aimylogic`, or a plugin's own.";
        account_id: String = Utf8, "The vendor account: giosg organization, Alli project or API key scope, Aimylogic channel (docs/design.md §3.1).";
        conversation_id: String = Utf8, "The vendor's conversation id, as given.";
        channel_id: Option<String> = Utf8, "giosg room, Alli campaign or LLM app, Aimylogic bot channel, if the vendor has one.";
        title: Option<String> = Utf8, "Subject or title, if any.";
        state: Option<String> = Utf8, "Vendor state, lower case (`ended`, `waiting`, `end_by_agent`, ...).";
        is_ended: Option<bool> = Bool, "Whether the conversation has ended, when the vendor says.";
        created_at: Option<i64> = Timestamp, "When the conversation started.";
        updated_at: Option<i64> = Timestamp, "When the vendor last changed it; the latest row per primary key wins downstream.";
        ended_at: Option<i64> = Timestamp, "When it ended.";
        last_message_at: Option<i64> = Timestamp, "The newest message's `sent_at`.";
        message_count: Option<u32> = UInt32, "Number of messages, as the vendor reports it.";
        visitor_id: Option<String> = Utf8, "The customer's vendor id.";
        visitor_name: Option<String> = Utf8, "The customer's name.";
        agent_ids: Vec<String> = ListUtf8, "Vendor ids of the agents who took part.";
        tag_ids: Vec<String> = ListUtf8, "Vendor tag ids, where the vendor has them.";
        tags: Vec<String> = ListUtf8, "Vendor tag names, plus tags the `tags` transform adds (rules, decrypted `tag_created` messages).";
        variables: BTreeMap<String, String> = MapUtf8, "Visitor or user variables, key → value.";
        raw: String = Utf8, "The vendor's JSON of the conversation, compact; nothing dropped.";
        extracted_at: i64 = Timestamp, "When this run fetched it.";
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

    /// The v1 schemas as they were written out field by field before the declarations: the
    /// derived schemas must stay exactly these (names, types, nullability, no metadata).
    #[test]
    fn derived_schemas_are_v1_exactly() {
        let (s, u32_, ts, b, list, map) =
            (DataType::Utf8, DataType::UInt32, timestamp_type(), DataType::Boolean, list_utf8_type(), map_utf8_type());
        let messages = Schema::new(vec![
            Field::new("vendor", s.clone(), false),
            Field::new("account_id", s.clone(), false),
            Field::new("conversation_id", s.clone(), false),
            Field::new("message_id", s.clone(), false),
            Field::new("seq", u32_.clone(), false),
            Field::new("sent_at", ts.clone(), false),
            Field::new("sender_role", s.clone(), false),
            Field::new("sender_id", s.clone(), true),
            Field::new("sender_name", s.clone(), true),
            Field::new("message_type", s.clone(), false),
            Field::new("text", s.clone(), true),
            Field::new("is_encrypted", b.clone(), false),
            Field::new("ciphertext", s.clone(), true),
            Field::new("tags", list.clone(), false),
            Field::new("attributes", map.clone(), false),
            Field::new("raw", s.clone(), false),
            Field::new("extracted_at", ts.clone(), false),
        ]);
        assert_eq!(*messages_schema(), messages);
        let conversations = Schema::new(vec![
            Field::new("vendor", s.clone(), false),
            Field::new("account_id", s.clone(), false),
            Field::new("conversation_id", s.clone(), false),
            Field::new("channel_id", s.clone(), true),
            Field::new("title", s.clone(), true),
            Field::new("state", s.clone(), true),
            Field::new("is_ended", b, true),
            Field::new("created_at", ts.clone(), true),
            Field::new("updated_at", ts.clone(), true),
            Field::new("ended_at", ts.clone(), true),
            Field::new("last_message_at", ts.clone(), true),
            Field::new("message_count", u32_, true),
            Field::new("visitor_id", s.clone(), true),
            Field::new("visitor_name", s.clone(), true),
            Field::new("agent_ids", list.clone(), false),
            Field::new("tag_ids", list.clone(), false),
            Field::new("tags", list, false),
            Field::new("variables", map, false),
            Field::new("raw", s, false),
            Field::new("extracted_at", ts, false),
        ]);
        assert_eq!(*conversations_schema(), conversations);
        assert!(messages_schema().metadata().is_empty() && conversations_schema().metadata().is_empty());
    }

    #[test]
    fn markdown_table_has_one_row_per_column() {
        let table = markdown_table(CONVERSATIONS_COLUMNS);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2 + CONVERSATIONS_COLUMNS.len());
        assert_eq!(lines[0], "| column | type | nullable | meaning |");
        assert!(lines.contains(&"| created_at | timestamp[us, UTC] | yes | When the conversation started. |"));
        assert!(lines.contains(&"| agent_ids | list<utf8> | no | Vendor ids of the agents who took part. |"));
        let escaped =
            markdown_table(&[Column { name: "x", column_type: ColumnType::Bool, nullable: false, doc: "a|b" }]);
        assert!(escaped.ends_with("| x | bool | no | a\\|b |\n"), "{escaped}");
        assert_eq!(columns(MESSAGES), Some(MESSAGES_COLUMNS));
        assert_eq!(columns("other"), None);
    }
}
