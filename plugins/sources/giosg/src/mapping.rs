//! giosg JSON → canonical rows (docs/design.md §3.1). Pure functions, so they are tested against
//! the literal payloads of docs/vendors/giosg.md §6 without a server.

use std::collections::BTreeMap;

use pipe_plugin_sdk::schema::{CONVERSATIONS, ConversationRow, MESSAGES, MessageRow, SenderRole};
use pipe_plugin_sdk::source_kit::{MAX_CLOCK_SKEW_US, Mark};
use pipe_plugin_sdk::time::{EpochUnit, RecordTimes, now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{DeadLetter, REASON_INCOMPLETE, REASON_UNEXPECTED_SHAPE};
use serde_json::{Value, json};

use crate::VENDOR;

/// Attribute holding the chat's RSA-wrapped AES key on encrypted message rows.
pub const ATTR_ENCRYPTED_KEY: &str = "giosg.encrypted_symmetric_key";
/// Attribute set on purged messages: when giosg purged the content (vendor timestamp string).
pub const ATTR_PURGED_AT: &str = "giosg.sensitive_data_purged_at";

/// Everything fetched for one chat.
#[derive(Debug, Clone, Default)]
pub struct ChatBundle {
    /// The chat object from `owned_chats`.
    pub chat: Value,
    /// Every message from `owned_chats/{id}/messages`, in response order.
    pub messages: Vec<Value>,
    /// From `owned_chats/{id}/memberships`.
    pub memberships: Vec<Value>,
    /// From `owned_chats/{id}/tags`.
    pub tags: Vec<Value>,
    /// From `owned_chats/{id}/visitors/{visitor_id}/variables`.
    pub variables: Vec<Value>,
}

/// The rows of one chat.
#[derive(Debug, Default)]
pub struct MappedChat {
    pub conversation: Option<ConversationRow>,
    pub messages: Vec<MessageRow>,
    pub dead_letters: Vec<DeadLetter>,
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn owned(v: &Value, key: &str) -> Option<String> {
    s(v, key).map(str::to_string)
}

fn ts(v: &Value, key: &str) -> Option<i64> {
    s(v, key).and_then(parse_timestamp_micros)
}

/// A chat's place for the watermark cursor (microseconds UTC): `at` = `created_at` (the order
/// of the `owned_chats` listing), `changed` = `updated_at` (`created_at` when absent), open
/// unless `is_ended` is true. `None` without a parsable `created_at`. Times past now + the
/// cursor's clock skew count as now + that skew: a chat dated 2099 is listed first and
/// exported (its time dead-lettered by [`map_chat`]), but it does not move the scan's top.
pub fn chat_mark(chat: &Value) -> Option<Mark> {
    let ceiling = now_micros().saturating_add(MAX_CLOCK_SKEW_US);
    let created = ts(chat, "created_at")?.min(ceiling);
    let updated = ts(chat, "updated_at").map_or(created, |u| u.min(ceiling));
    let open = chat.get("is_ended").and_then(Value::as_bool) != Some(true);
    Some(Mark { at: created, changed: updated, open })
}

/// The visitor's id: the `member_id` of the membership whose `member_type` is `visitor`.
pub fn visitor_id(memberships: &[Value]) -> Option<String> {
    memberships.iter().find(|m| s(m, "member_type") == Some("visitor")).and_then(|m| owned(m, "member_id"))
}

/// Message types whose sender is `system` whoever sent them (docs/design.md §3.1).
const SYSTEM_TYPES: [&str; 4] = ["join", "leave", "tag_created", "system"];

/// The `sender_type`s the mapping knows (docs/vendors/giosg.md §3.2).
const SENDER_TYPES: [&str; 3] = ["visitor", "user", "rule"];

/// The `member_type`s the mapping knows (docs/vendors/giosg.md §3.3).
const MEMBER_TYPES: [&str; 2] = ["visitor", "user"];

/// Attribute holding the key of an encrypted room's visitor variables (docs/vendors/giosg.md
/// §5.5): a variable, decrypted and removed by the `decrypt` transform.
pub const VAR_ENCRYPTED_KEY: &str = "_encrypted_aes_key";

/// `sender_role` per docs/design.md §3.1: `join`/`leave`/`tag_created`/`system` messages are
/// `system` whoever sent them; otherwise `visitor`→visitor, `user`→agent, `rule`→system, and
/// any other (or no) `sender_type` → `system`, the fallback (an `unexpected_shape` dead
/// letter says so, [`map_chat`]).
pub fn sender_role(message_type: &str, sender_type: Option<&str>) -> SenderRole {
    if SYSTEM_TYPES.contains(&message_type) {
        return SenderRole::System;
    }
    match sender_type {
        Some("visitor") => SenderRole::Visitor,
        Some("user") => SenderRole::Agent,
        _ => SenderRole::System,
    }
}

/// What of a message's shape the mapping does not know, with the fallback its row got.
fn message_drift(m: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let kind = s(m, "type");
    if kind.is_none() {
        problems.push("no string `type`: exported as `msg`".to_string());
    }
    let kind = kind.unwrap_or("msg").to_lowercase();
    if !SYSTEM_TYPES.contains(&kind.as_str()) {
        match m.get("sender_type") {
            Some(Value::String(t)) if SENDER_TYPES.contains(&t.as_str()) => {}
            Some(Value::String(t)) => {
                problems.push(format!("unknown `sender_type` `{t}`: exported with sender_role `system`"))
            }
            _ => problems.push("no string `sender_type`: exported with sender_role `system`".to_string()),
        }
    }
    problems
}

fn value_as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dead_letter(stream: &str, key: Value, reason: &str, message: String, raw: &Value) -> DeadLetter {
    DeadLetter { stream: stream.into(), key, stage: VENDOR.into(), reason: reason.into(), message, raw: raw.clone() }
}

/// Maps one chat and everything fetched for it to canonical rows.
///
/// `seq` numbers messages from 0 by `created_at` (ties keep response order). A message
/// without an `id` or a parsable `created_at` cannot be a canonical row: it becomes a dead
/// letter (`unparsable_message`) instead; likewise a chat without an `id` (`unparsable_chat`).
pub fn map_chat(organization_id: &str, b: &ChatBundle, extracted_at: i64) -> MappedChat {
    let mut out = MappedChat::default();
    let Some(chat_id) = owned(&b.chat, "id") else {
        out.dead_letters.push(dead_letter(
            CONVERSATIONS,
            json!({"vendor": VENDOR, "account_id": organization_id}),
            "unparsable_chat",
            "chat object has no string `id`".into(),
            &b.chat,
        ));
        return out;
    };
    let key = |id: Option<&str>| match id {
        Some(m) => {
            json!({"vendor": VENDOR, "account_id": organization_id, "conversation_id": chat_id, "message_id": m})
        }
        None => json!({"vendor": VENDOR, "account_id": organization_id, "conversation_id": chat_id}),
    };

    let tag_names: Vec<String> = b.tags.iter().filter_map(|t| owned(t, "name")).collect();
    let tag_ids: Vec<String> = b.tags.iter().filter_map(|t| owned(t, "id")).collect();
    let chat_key = owned(&b.chat, "encrypted_symmetric_key");

    // Parse, then order by sent time; the stable sort keeps response order for ties.
    // Every time through one checked conversion: a bad one is a dead letter naming it.
    let mut times = RecordTimes::new(now_micros(), EpochUnit::Millis);
    let mut parsed: Vec<(i64, &Value)> = Vec::with_capacity(b.messages.len());
    for m in &b.messages {
        let (id, at) = (s(m, "id"), times.read(m, "created_at"));
        match (id, at, times.take().first()) {
            (Some(_), Some(at), _) => parsed.push((at, m)),
            (Some(id), None, Some(bad)) => out.dead_letters.push(dead_letter(
                MESSAGES,
                key(Some(id)),
                bad.problem.reason(),
                bad.message(&format!("message {id}")),
                m,
            )),
            (id, _, _) => out.dead_letters.push(dead_letter(
                MESSAGES,
                key(id),
                "unparsable_message",
                "message has no string `id` or no `created_at`".into(),
                m,
            )),
        }
    }
    parsed.sort_by_key(|(at, _)| *at);

    for (seq, (sent_at, m)) in parsed.iter().enumerate() {
        let message_type = s(m, "type").unwrap_or("msg").to_lowercase();
        let purged_at = owned(m, "sensitive_data_purged_at");
        let ciphertext = owned(m, "encrypted_message").filter(|c| !c.trim().is_empty());
        let mut attributes = BTreeMap::new();
        let text = match (&purged_at, &ciphertext) {
            (Some(at), _) => {
                attributes.insert(ATTR_PURGED_AT.to_string(), at.clone());
                None
            }
            (None, Some(_)) => None,
            (None, None) => owned(m, "message"),
        };
        let is_encrypted = purged_at.is_none() && ciphertext.is_some();
        if is_encrypted && let Some(k) = &chat_key {
            attributes.insert(ATTR_ENCRYPTED_KEY.to_string(), k.clone());
        }
        for extra in [
            "response_text",
            "response_value",
            "response_to_message_id",
            "selected_reply_suggestion_id",
            "sender_public_name",
        ] {
            if let Some(v) = owned(m, extra) {
                attributes.insert(format!("giosg.{extra}"), v);
            }
        }
        if let Some(Value::Array(a)) = m.get("attachments")
            && !a.is_empty()
        {
            attributes.insert("giosg.attachments".into(), Value::Array(a.clone()).to_string());
        }
        out.messages.push(MessageRow {
            vendor: VENDOR.into(),
            account_id: organization_id.into(),
            conversation_id: chat_id.clone(),
            message_id: owned(m, "id").unwrap_or_default(),
            seq: seq as u32,
            sent_at: *sent_at,
            sender_role: sender_role(&message_type, s(m, "sender_type")),
            sender_id: owned(m, "sender_id"),
            sender_name: owned(m, "sender_name").or_else(|| owned(m, "sender_public_name")),
            message_type,
            text: if is_encrypted { None } else { text },
            is_encrypted,
            ciphertext: if is_encrypted { ciphertext } else { None },
            tags: tag_names.clone(),
            attributes,
            raw: m.to_string(),
            extracted_at,
        });
        let problems = message_drift(m);
        if !problems.is_empty() {
            let id = s(m, "id");
            let message = format!("message {}: {}", id.unwrap_or("?"), problems.join("; "));
            out.dead_letters.push(dead_letter(MESSAGES, key(id), REASON_UNEXPECTED_SHAPE, message, m));
        }
    }

    // Completeness: giosg's `message_count` counts `msg` messages (docs/vendors/giosg.md §3.1).
    let reported = b.chat.get("message_count").and_then(Value::as_u64);
    let fetched = b.messages.iter().filter(|m| s(m, "type") == Some("msg")).count() as u64;
    if let Some(reported) = reported.filter(|r| *r > fetched) {
        out.dead_letters.push(dead_letter(
            CONVERSATIONS,
            key(None),
            REASON_INCOMPLETE,
            format!("giosg reports {reported} `msg` messages but {fetched} arrived"),
            &b.chat,
        ));
    }

    let visitor = visitor_id(&b.memberships);
    let visitor_name = b
        .memberships
        .iter()
        .find(|m| s(m, "member_type") == Some("visitor"))
        .and_then(|m| owned(m, "member_name").or_else(|| owned(m, "member_public_name")));
    let variables: BTreeMap<String, String> = b
        .variables
        .iter()
        .filter_map(|v| Some((owned(v, "key")?, v.get("value").map(value_as_text).unwrap_or_default())))
        .collect();
    // Encrypted variables (docs/vendors/giosg.md §5.5) stay as they arrived for the `decrypt`
    // transform, which also fills the name from the decrypted `username`: never a ciphertext.
    let encrypted_variables = variables.contains_key(VAR_ENCRYPTED_KEY);
    let visitor_name = visitor_name.or_else(|| variables.get("username").filter(|_| !encrypted_variables).cloned());
    for m in &b.memberships {
        match s(m, "member_type") {
            Some(t) if MEMBER_TYPES.contains(&t) => {}
            other => {
                let message = format!(
                    "chat {chat_id}: membership of `member_id` {} has {}: left out of visitor_id and agent_ids",
                    s(m, "member_id").unwrap_or("?"),
                    other.map_or("no string `member_type`".to_string(), |t| format!("the unknown `member_type` `{t}`"))
                );
                out.dead_letters.push(dead_letter(CONVERSATIONS, key(None), REASON_UNEXPECTED_SHAPE, message, m));
            }
        }
    }
    let mut agent_ids: Vec<String> = b
        .memberships
        .iter()
        .filter(|m| s(m, "member_type") == Some("user"))
        .filter_map(|m| owned(m, "member_id"))
        .collect();
    agent_ids.dedup();

    let flag = |k: &str| b.chat.get(k).and_then(Value::as_bool);
    let state = if flag("is_ended") == Some(true) {
        "ended"
    } else if flag("is_waiting") == Some(true) {
        "waiting"
    } else if flag("is_pending") == Some(true) {
        "pending"
    } else {
        "open"
    };
    out.conversation = Some(ConversationRow {
        vendor: VENDOR.into(),
        account_id: organization_id.into(),
        conversation_id: chat_id.clone(),
        channel_id: owned(&b.chat, "room_id"),
        title: None,
        state: Some(state.into()),
        is_ended: flag("is_ended"),
        created_at: times.read(&b.chat, "created_at"),
        updated_at: times.read(&b.chat, "updated_at"),
        ended_at: times.read(&b.chat, "ended_at"),
        last_message_at: parsed.last().map(|(at, _)| *at),
        message_count: b.chat.get("message_count").and_then(Value::as_u64).map(|n| n.min(u32::MAX as u64) as u32),
        visitor_id: visitor,
        visitor_name,
        agent_ids,
        tag_ids,
        tags: tag_names,
        variables,
        raw: b.chat.to_string(),
        extracted_at,
    });
    // The row is exported with those columns null; the dead letter says which and why.
    for bad in times.take() {
        let message = bad.message(&format!("chat {chat_id}"));
        out.dead_letters.push(dead_letter(CONVERSATIONS, key(None), bad.problem.reason(), message, &b.chat));
    }
    out
}
