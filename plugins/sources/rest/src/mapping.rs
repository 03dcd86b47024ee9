//! The spec's jq mapping → canonical rows (docs/design.md §3), typed and checked.
//!
//! `map.message` turns one message record into zero or more objects of `messages` columns,
//! `map.conversation` the conversation record into one object of `conversations` columns.
//! Each value is converted by its column's type:
//!
//! | column type | accepted | refused |
//! |---|---|---|
//! | utf8 | a string; a number or boolean as its JSON text | an object or array (JSON text is kept for `raw`) |
//! | timestamp | an epoch number in the spec's `time_unit`, a numeric string, RFC 3339 or a zone-less ISO time (in the spec's `timezone`, default UTC), through the SDK's `vendor_time`; for a conversation column also an array of candidates (the first usable one) | anything else, or more than 24 h in the future: the row is dead-lettered (`sent_at`) or the column left null with a dead letter |
//! | uint32 | a non-negative number (capped at 4294967295) | anything else |
//! | bool | a boolean | anything else |
//! | list | an array; items as utf8 | |
//! | map | an object; values as utf8, nulls left out | |
//!
//! `vendor`, `account_id`, `conversation_id`, `seq` and `extracted_at` are the source's. A
//! message without `message_id` or `sent_at` is an `unparsable_message` dead letter; repeated
//! `message_id`s keep the first. `seq` numbers the messages by `sent_at`, ties in record
//! order. `last_message_at` is the newest message's `sent_at` when there is a message, else
//! what the mapping gave. Every `raw` has the credentials removed.

use std::collections::{BTreeMap, HashSet};

use pipe_plugin_sdk::schema::{CONVERSATIONS, ConversationRow, MESSAGES, MessageRow, SenderRole};
use pipe_plugin_sdk::time::{EpochUnit, Zone, format_micros, now_micros, vendor_time};
use pipe_plugin_sdk::{DeadLetter, REASON_INCOMPLETE};
use serde_json::{Map, Value, json};

use crate::spec::{Programs, SpecFile};

/// What every row of a run shares, and how values are read.
pub struct MapCtx<'a> {
    /// The `vendor` column and the dead letters' stage.
    pub vendor: &'a str,
    /// The `account_id` column.
    pub account_id: &'a str,
    /// Unit of numeric times.
    pub unit: EpochUnit,
    /// Zone of zone-less times (the spec's `timezone`).
    pub zone: Zone,
    /// When this run fetched the rows (µs UTC): `extracted_at`, and "now" for the future check.
    pub now: i64,
    /// `map.roles`.
    pub roles: &'a BTreeMap<String, String>,
    /// `map.role_default`.
    pub role_default: Option<&'a str>,
    /// `$vars`.
    pub vars: &'a Value,
    /// Removes credentials from text (the HTTP client's scrub).
    pub scrub: &'a (dyn Fn(&str) -> String + Sync),
}

impl<'a> MapCtx<'a> {
    /// The context `spec` maps with, for `vendor`'s account `account_id`, fetched now.
    pub fn of_spec(
        spec: &'a SpecFile,
        vendor: &'a str,
        account_id: &'a str,
        vars: &'a Value,
        scrub: &'a (dyn Fn(&str) -> String + Sync),
    ) -> Self {
        MapCtx {
            vendor,
            account_id,
            unit: spec.time_unit.epoch_unit(),
            zone: spec.zone(),
            now: now_micros(),
            roles: &spec.map.roles,
            role_default: spec.map.role_default.as_deref(),
            vars,
            scrub,
        }
    }
}

/// Everything fetched for one conversation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Its id (the listing's `id`).
    pub id: String,
    /// The conversation record, extras merged in.
    pub conversation: Value,
    /// The message records, repeated identities dropped.
    pub records: Vec<Value>,
    /// The completeness count, if the spec has one and the vendor gave it.
    pub count: Option<u64>,
}

/// The rows of one conversation.
#[derive(Debug, Default)]
pub struct Mapped {
    /// The conversation row (none when it cannot be mapped: then a dead letter says why).
    pub conversation: Option<ConversationRow>,
    /// The message rows, `seq` numbered.
    pub messages: Vec<MessageRow>,
    /// What could not be exported, and why.
    pub dead_letters: Vec<DeadLetter>,
}

const MESSAGE_KEYS: [&str; 12] = [
    "message_id",
    "sent_at",
    "sender_role",
    "sender_id",
    "sender_name",
    "message_type",
    "text",
    "is_encrypted",
    "ciphertext",
    "tags",
    "attributes",
    "raw",
];

const CONVERSATION_KEYS: [&str; 17] = [
    "channel_id",
    "title",
    "state",
    "is_ended",
    "created_at",
    "updated_at",
    "ended_at",
    "last_message_at",
    "message_count",
    "visitor_id",
    "visitor_name",
    "agent_ids",
    "tag_ids",
    "tags",
    "variables",
    "raw",
    "conversation_id",
];

impl MapCtx<'_> {
    fn dead_letter(&self, stream: &str, key: Value, reason: &str, message: String, raw: &Value) -> DeadLetter {
        let raw = serde_json::from_str((self.scrub)(&raw.to_string()).as_str()).unwrap_or(Value::Null);
        DeadLetter {
            stream: stream.into(),
            key,
            stage: self.vendor.into(),
            reason: reason.into(),
            message: (self.scrub)(&message),
            raw,
        }
    }

    fn key(&self, conversation_id: &str, message_id: Option<&str>) -> Value {
        match message_id {
            Some(m) => {
                json!({"vendor": self.vendor, "account_id": self.account_id, "conversation_id": conversation_id, "message_id": m})
            }
            None => json!({"vendor": self.vendor, "account_id": self.account_id, "conversation_id": conversation_id}),
        }
    }

    fn role(&self, kind: &Value) -> Option<SenderRole> {
        let kind = text(kind).unwrap_or_default();
        let role = self.roles.get(&kind).map(String::as_str).or_else(|| {
            if crate::spec::ROLES.contains(&kind.as_str()) { Some(kind.as_str()) } else { self.role_default }
        })?;
        Some(match role {
            "visitor" => SenderRole::Visitor,
            "agent" => SenderRole::Agent,
            "bot" => SenderRole::Bot,
            _ => SenderRole::System,
        })
    }
}

/// A utf8 column's value: strings as they are, numbers and booleans as JSON text.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(_) | Value::Bool(_) => Some(v.to_string()),
        other => Some(other.to_string()),
    }
}

fn texts(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(other).into_iter().collect(),
    }
}

fn text_map(v: &Value) -> BTreeMap<String, String> {
    match v {
        Value::Object(o) => o.iter().filter_map(|(k, v)| text(v).map(|t| (k.clone(), t))).collect(),
        _ => BTreeMap::new(),
    }
}

/// Maps one conversation (module docs).
pub fn map_conversation(ctx: &MapCtx<'_>, programs: &Programs, b: &Bundle) -> Mapped {
    let mut out = Mapped::default();
    let conv_id = b.id.as_str();
    let conv_key = ctx.key(conv_id, None);

    let records = match &programs.prepare {
        Some(p) => match p.list(&Value::Array(b.records.clone()), &[ctx.vars]) {
            Ok(r) => r,
            Err(m) => {
                let message = format!("conversation {conv_id}: messages.prepare failed: {m}");
                out.dead_letters.push(ctx.dead_letter(
                    CONVERSATIONS,
                    conv_key,
                    "unparsable_conversation",
                    message,
                    &b.conversation,
                ));
                return out;
            }
        },
        None => b.records.clone(),
    };

    let mut ids = HashSet::new();
    let mut rows: Vec<MessageRow> = Vec::new();
    for record in &records {
        let objects = match programs.map_message.run(record, &[ctx.vars, &b.conversation]) {
            Ok(o) => o,
            Err(m) => {
                out.dead_letters.push(ctx.dead_letter(MESSAGES, conv_key.clone(), "unparsable_message", m, record));
                continue;
            }
        };
        // A record with a refused row is reported for that alone: what the mapping reported
        // of it (its drift) would name rows that are not exported.
        let mut refused = false;
        let mut reported = Vec::new();
        for object in objects {
            if let Some(dl) = reported_dead_letter(ctx, conv_id, record, &object) {
                reported.push(dl);
                continue;
            }
            match message_row(ctx, conv_id, record, &object) {
                Ok(row) => {
                    if ids.insert(row.message_id.clone()) {
                        rows.push(row);
                    }
                }
                Err(dl) => {
                    refused = true;
                    out.dead_letters.push(dl);
                }
            }
        }
        if !refused {
            out.dead_letters.extend(reported);
        }
    }
    rows.sort_by_key(|r| r.sent_at);
    for (seq, r) in rows.iter_mut().enumerate() {
        r.seq = seq as u32;
    }

    if let Some(total) = b.count
        && total != b.records.len() as u64
    {
        let message = format!("{} reports {total} message records but {} arrived", ctx.vendor, b.records.len());
        out.dead_letters.push(ctx.dead_letter(
            CONVERSATIONS,
            conv_key.clone(),
            REASON_INCOMPLETE,
            message,
            &b.conversation,
        ));
    }

    let count = b.count.map_or(Value::Null, Value::from);
    let messages = message_summaries(&rows);
    let account_id = Value::String(ctx.account_id.to_string());
    let mapped = programs
        .map_conversation
        .first(&b.conversation, &[ctx.vars, &Value::Array(records), &count, &messages, &account_id]);
    match mapped.and_then(|o| conversation_row(ctx, conv_id, &b.conversation, &o, &rows)) {
        Ok((row, bad)) => {
            out.conversation = Some(row);
            out.dead_letters.extend(bad);
        }
        Err(m) => {
            out.dead_letters.push(ctx.dead_letter(
                CONVERSATIONS,
                conv_key,
                "unparsable_conversation",
                m,
                &b.conversation,
            ));
        }
    }
    out.messages = rows;
    out
}

/// `$messages` of the conversation mapping: per exported message row, in `seq` order,
/// `{message_id, seq, sent_at (RFC 3339 UTC, µs), sender_role}`.
fn message_summaries(rows: &[MessageRow]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({"message_id": r.message_id, "seq": r.seq, "sent_at": format_micros(r.sent_at),
                       "sender_role": r.sender_role.as_str()})
            })
            .collect(),
    )
}

/// A dead letter the message mapping reports: an object `{"dead_letter": {"reason", "message",
/// "message_id"}}` among its outputs (shape drift of a record whose rows are exported with a
/// fallback, `unexpected_shape`; a record that cannot become a row for a vendor-specific reason,
/// `missing_question_id`). Its key is the conversation's, with `message_id` when the object has
/// that key (null kept); its raw the record. `None` for a row object.
fn reported_dead_letter(ctx: &MapCtx<'_>, conv_id: &str, record: &Value, v: &Value) -> Option<DeadLetter> {
    let Value::Object(o) = v else { return None };
    let inner = o.get("dead_letter").filter(|_| o.len() == 1)?;
    let mut key = ctx.key(conv_id, None);
    let (reason, message) = match inner {
        Value::Object(d) => {
            if let Some(id) = d.get("message_id") {
                key["message_id"] = match id {
                    Value::Null => Value::Null,
                    other => Value::String(text(other).unwrap_or_default()),
                };
            }
            match d.get("reason").and_then(Value::as_str).filter(|r| !r.is_empty()) {
                Some(r) => (r.to_string(), text(d.get("message").unwrap_or(&Value::Null)).unwrap_or_default()),
                None => ("unparsable_message".into(), "the message mapping gave a dead_letter without a reason".into()),
            }
        }
        _ => ("unparsable_message".into(), "the message mapping gave a dead_letter that is not an object".into()),
    };
    Some(ctx.dead_letter(MESSAGES, key, &reason, message, record))
}

fn object<'a>(v: &'a Value, what: &str, keys: &[&str]) -> Result<&'a Map<String, Value>, String> {
    let Value::Object(o) = v else { return Err(format!("the {what} mapping gave {}, not an object", kind(v))) };
    if let Some(k) = o.keys().find(|k| !keys.contains(&k.as_str())) {
        return Err(format!("the {what} mapping gave `{k}`, which is not a {what} column ({})", keys.join(", ")));
    }
    Ok(o)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn raw_text(ctx: &MapCtx<'_>, given: Option<&Value>, record: &Value) -> String {
    let text = match given {
        None | Some(Value::Null) => record.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    (ctx.scrub)(&text)
}

#[allow(clippy::result_large_err)]
fn message_row(ctx: &MapCtx<'_>, conv_id: &str, record: &Value, v: &Value) -> Result<MessageRow, DeadLetter> {
    let unparsable =
        |key: Value, message: String| ctx.dead_letter(MESSAGES, key, "unparsable_message", message, record);
    let o = object(v, "message", &MESSAGE_KEYS).map_err(|m| unparsable(ctx.key(conv_id, None), m))?;
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    let Some(id) = text(get("message_id")).filter(|s| !s.is_empty()) else {
        return Err(unparsable(ctx.key(conv_id, None), "message has no `message_id`".into()));
    };
    let key = ctx.key(conv_id, Some(&id));
    let sent_at = match vendor_time(Some(get("sent_at")), ctx.unit, ctx.zone, ctx.now) {
        Ok(Some(t)) => t,
        Ok(None) => return Err(unparsable(key, format!("message {id} has no `sent_at`"))),
        Err(problem) => {
            let message = format!("message {id}: `sent_at` {} {}", get("sent_at"), problem.describe());
            return Err(ctx.dead_letter(MESSAGES, key, problem.reason(), message, record));
        }
    };
    let Some(role) = ctx.role(get("sender_role")) else {
        let message = format!(
            "message {id}: sender kind {} is not in map.roles and there is no map.role_default",
            get("sender_role")
        );
        return Err(unparsable(key, message));
    };
    Ok(MessageRow {
        vendor: ctx.vendor.into(),
        account_id: ctx.account_id.into(),
        conversation_id: conv_id.into(),
        message_id: id,
        seq: 0,
        sent_at,
        sender_role: role,
        sender_id: text(get("sender_id")),
        sender_name: text(get("sender_name")),
        message_type: text(get("message_type")).unwrap_or_else(|| "unknown".into()),
        text: text(get("text")),
        is_encrypted: get("is_encrypted").as_bool().unwrap_or(false),
        ciphertext: text(get("ciphertext")),
        tags: texts(get("tags")),
        attributes: text_map(get("attributes")).into_iter().map(|(k, v)| (k, (ctx.scrub)(&v))).collect(),
        raw: raw_text(ctx, o.get("raw"), record),
        extracted_at: ctx.now,
    })
}

/// The conversation row, and the dead letters of columns left null (bad times, bad counts).
fn conversation_row(
    ctx: &MapCtx<'_>,
    conv_id: &str,
    record: &Value,
    v: &Value,
    messages: &[MessageRow],
) -> Result<(ConversationRow, Vec<DeadLetter>), String> {
    let o = object(v, "conversation", &CONVERSATION_KEYS)?;
    let get = |k: &str| o.get(k).unwrap_or(&Value::Null);
    let mut bad = Vec::new();
    // An array is a list of candidates: the first usable time; each unusable one before it is
    // a dead letter (`[.lastChatTime, .createdAt]`).
    let mut time = |k: &str| {
        let candidates = match get(k) {
            Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for v in candidates {
            match vendor_time(Some(v), ctx.unit, ctx.zone, ctx.now) {
                Ok(Some(t)) => return Some(t),
                Ok(None) => {}
                Err(problem) => {
                    let message = format!("conversation {conv_id}: `{k}` {v} {}", problem.describe());
                    bad.push(ctx.dead_letter(CONVERSATIONS, ctx.key(conv_id, None), problem.reason(), message, record));
                }
            }
        }
        None
    };
    let created_at = time("created_at");
    let updated_at = time("updated_at");
    let ended_at = time("ended_at");
    let last_given = time("last_message_at");
    let message_count =
        match get("message_count") {
            Value::Null => None,
            n => Some(n.as_u64().map(|n| n.min(u64::from(u32::MAX)) as u32).ok_or_else(|| {
                format!("the conversation mapping gave `message_count` {n}, not a non-negative integer")
            })?),
        };
    let is_ended = match get("is_ended") {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        other => return Err(format!("the conversation mapping gave `is_ended` {other}, not a boolean")),
    };
    let row = ConversationRow {
        vendor: ctx.vendor.into(),
        account_id: ctx.account_id.into(),
        conversation_id: conv_id.into(),
        channel_id: text(get("channel_id")),
        title: text(get("title")),
        state: text(get("state")),
        is_ended,
        created_at,
        updated_at,
        ended_at,
        last_message_at: messages.iter().map(|m| m.sent_at).max().or(last_given),
        message_count,
        visitor_id: text(get("visitor_id")),
        visitor_name: text(get("visitor_name")),
        agent_ids: texts(get("agent_ids")),
        tag_ids: texts(get("tag_ids")),
        tags: texts(get("tags")),
        variables: text_map(get("variables")),
        raw: raw_text(ctx, o.get("raw"), record),
        extracted_at: ctx.now,
    };
    Ok((row, bad))
}
