//! Alli JSON → canonical rows (docs/design.md §3.1). Pure functions over what was fetched for one
//! conversation, for both APIs, so the two produce the same ids, roles and texts.

use std::collections::{BTreeMap, HashSet};

use pipe_plugin_sdk::schema::{CONVERSATIONS, ConversationRow, MESSAGES, MessageRow, SenderRole};
use pipe_plugin_sdk::source_kit::MAX_CLOCK_SKEW_US;
use pipe_plugin_sdk::time::{EpochUnit, RecordTimes, TimeProblem, Zone, now_micros, vendor_time};
use pipe_plugin_sdk::{DeadLetter, REASON_INCOMPLETE, REASON_UNEXPECTED_SHAPE};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Api, VENDOR};

/// The unit of Alli's numeric timestamps, detected by magnitude (alli.md §1: not documented;
/// milliseconds expected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeUnit {
    /// Seconds since the epoch (values below 10¹²).
    S,
    /// Milliseconds since the epoch (10¹² up to 10¹⁵).
    Ms,
    /// Microseconds since the epoch (10¹⁵ and above).
    Us,
}

impl TimeUnit {
    /// The unit of an epoch number, by magnitude.
    pub fn of(n: f64) -> TimeUnit {
        let a = n.abs();
        if a >= 1e15 {
            TimeUnit::Us
        } else if a >= 1e12 {
            TimeUnit::Ms
        } else {
            TimeUnit::S
        }
    }

    /// The unit's name, for logs.
    pub fn label(self) -> &'static str {
        match self {
            TimeUnit::S => "seconds",
            TimeUnit::Ms => "milliseconds",
            TimeUnit::Us => "microseconds",
        }
    }

    /// The SDK's unit of the same name.
    pub fn epoch_unit(self) -> EpochUnit {
        match self {
            TimeUnit::S => EpochUnit::Seconds,
            TimeUnit::Ms => EpochUnit::Millis,
            TimeUnit::Us => EpochUnit::Micros,
        }
    }

    /// Microseconds in this unit (for filters sent back to the API).
    pub fn from_micros(self, us: i64) -> i64 {
        match self {
            TimeUnit::S => us.div_euclid(1_000_000),
            TimeUnit::Ms => us.div_euclid(1_000),
            TimeUnit::Us => us,
        }
    }
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

/// The unit of a numeric timestamp value, if it is one.
pub fn unit_of(v: &Value) -> Option<TimeUnit> {
    number_of(v).map(TimeUnit::of)
}

/// An Alli timestamp in microseconds UTC: an epoch number (seconds, milliseconds or
/// microseconds, by magnitude; also as a numeric string) or an ISO-8601 string, checked
/// ([`vendor_time`]: never saturated or wrapped, nothing past now + 24 h).
pub fn epoch_micros(v: &Value) -> Result<Option<i64>, TimeProblem> {
    vendor_time(Some(v), EpochUnit::ByMagnitude, Zone::UTC, now_micros())
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn non_empty(v: Option<&str>) -> Option<String> {
    v.map(str::trim).filter(|x| !x.is_empty()).map(str::to_string)
}

/// `v[key]` as a time for the cursor: a bad one is `None`, a future one counts as now + the
/// cursor's clock skew (so one conversation dated 2099 does not move the scan's top).
fn position(v: &Value, key: &str) -> Option<i64> {
    // "Now" at the end of time: no future check here, the clamp below replaces it.
    let t = vendor_time(v.get(key), EpochUnit::ByMagnitude, Zone::UTC, i64::MAX).ok().flatten();
    t.map(|t| t.min(now_micros().saturating_add(MAX_CLOCK_SKEW_US)))
}

/// The listing order key of a conversation (µs): its last chat time, else its creation time.
/// A time that is unusable is skipped; one in the future counts as now + the clock skew.
pub fn listing_time(conversation: &Value) -> Option<i64> {
    position(conversation, "lastChatTime").or_else(|| position(conversation, "createdAt"))
}

/// Plain text of a Draft.js raw content string (`{"blocks": [{"text": ...}], "entityMap": ...}`):
/// the blocks' texts joined with `\n`. `None` when `message` is not Draft.js.
pub fn draftjs_text(message: &str) -> Option<String> {
    let t = message.trim_start();
    if !t.starts_with('{') {
        return None;
    }
    let v: Value = serde_json::from_str(t).ok()?;
    let blocks = v.get("blocks")?.as_array()?;
    let texts: Option<Vec<&str>> = blocks.iter().map(|b| b.get("text").and_then(Value::as_str)).collect();
    Some(texts?.join("\n"))
}

/// Everything fetched for one conversation.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Which API it came from.
    pub api: Api,
    /// The conversation object (REST) or node (GraphQL) as listed, without its `chats`.
    pub conversation: Value,
    /// Every chat, in the API's order (REST chat objects, GraphQL chat nodes).
    pub chats: Vec<Value>,
    /// REST: `totalCount` of the last `/chats` page.
    pub total: Option<u64>,
    /// Set when the chats could not all be fetched (e.g. `node(id:)` answered null).
    pub incomplete: Option<String>,
}

/// The rows of one conversation.
#[derive(Debug, Default)]
pub struct Mapped {
    pub conversation: Option<ConversationRow>,
    pub messages: Vec<MessageRow>,
    pub dead_letters: Vec<DeadLetter>,
}

/// `sender_role` of a REST `sender` or a GraphQL `__typename` (docs/design.md §3.1).
pub fn sender_role(kind: &str) -> SenderRole {
    match kind {
        "USER" | "UserChat" => SenderRole::Visitor,
        "BOT" | "BotChat" => SenderRole::Bot,
        "AGENT" | "AgentChat" => SenderRole::Agent,
        _ => SenderRole::System,
    }
}

/// The REST `sender`s and GraphQL typenames the mapping knows (docs/vendors/alli.md); any
/// other is exported with the fallback `system` and reported as `unexpected_shape`.
const KNOWN_SENDERS: [&str; 6] = ["USER", "BOT", "AGENT", "UserChat", "BotChat", "AgentChat"];

/// `message_type`: the REST `sender` lower case; for GraphQL the typename without `Chat`, lower
/// case (`UserChat` → `user`), so both APIs give the same values.
pub fn message_type(kind: &str) -> String {
    kind.strip_suffix("Chat").unwrap_or(kind).to_lowercase()
}

/// Conversation states that mean it is over (GraphQL `state`).
const ENDED_STATES: [&str; 3] = ["END_OF_CHATBOT", "END_BY_AGENT", "END_BY_USER"];

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dead_letter(stream: &str, key: Value, reason: &str, message: String, raw: &Value) -> DeadLetter {
    DeadLetter { stream: stream.into(), key, stage: VENDOR.into(), reason: reason.into(), message, raw: raw.clone() }
}

/// Maps one conversation and its chats to canonical rows.
///
/// Chats without a string `id` or a parsable time become `unparsable_message` dead letters; a
/// conversation without an `id` an `unparsable_conversation` one. Fewer (or more) distinct
/// chats than the REST `totalCount` make an `incomplete` dead letter (the rows are still
/// emitted; the fetch already dropped repeated ids). `seq` numbers chats from 0 by sent time, ties in API order.
pub fn map_conversation(account_id: &str, b: &Bundle, extracted_at: i64) -> Mapped {
    let mut out = Mapped::default();
    let c = &b.conversation;
    let Some(conv_id) = s(c, "id").map(str::to_string) else {
        out.dead_letters.push(dead_letter(
            CONVERSATIONS,
            json!({"vendor": VENDOR, "account_id": account_id}),
            "unparsable_conversation",
            "conversation has no string `id`".into(),
            c,
        ));
        return out;
    };
    let key = |m: Option<&str>| match m {
        Some(m) => json!({"vendor": VENDOR, "account_id": account_id, "conversation_id": conv_id, "message_id": m}),
        None => json!({"vendor": VENDOR, "account_id": account_id, "conversation_id": conv_id}),
    };

    // Conversation-level facts both row kinds use.
    let user = c.get("user").filter(|u| u.is_object());
    let (visitor_id, visitor_name) = match (b.api, user) {
        (_, None) => (None, None),
        (Api::Rest, Some(u)) => {
            let name = format!("{} {}", s(u, "firstName").unwrap_or(""), s(u, "lastName").unwrap_or(""));
            (non_empty(s(u, "userId")), non_empty(Some(&name)))
        }
        (Api::Graphql, Some(u)) => {
            (non_empty(s(u, "id")), non_empty(s(u, "name")).or_else(|| non_empty(s(u, "firstName"))))
        }
    };
    let tags: Vec<String> = match c.get("categories") {
        Some(Value::Array(a)) => a.iter().map(value_text).collect(),
        _ => Vec::new(),
    };

    // Every time through one checked conversion: a bad one is a dead letter naming it.
    let mut times = RecordTimes::new(now_micros(), EpochUnit::ByMagnitude);
    let mut parsed: Vec<(i64, &Value, &str)> = Vec::with_capacity(b.chats.len());
    let mut ids = HashSet::new();
    for m in &b.chats {
        let kind = match b.api {
            Api::Rest => s(m, "sender"),
            Api::Graphql => s(m, "__typename"),
        };
        let time = match b.api {
            Api::Rest => times.read(m, "timestamp"),
            Api::Graphql => times.read(m, "createdAt"),
        };
        match (s(m, "id"), time, times.take().first()) {
            (Some(id), Some(at), _) => {
                if ids.insert(id) {
                    parsed.push((at, m, kind.unwrap_or("")));
                }
            }
            (Some(id), None, Some(bad)) => out.dead_letters.push(dead_letter(
                MESSAGES,
                key(Some(id)),
                bad.problem.reason(),
                bad.message(&format!("chat {id}")),
                m,
            )),
            (id, _, _) => out.dead_letters.push(dead_letter(
                MESSAGES,
                key(id),
                "unparsable_message",
                "chat has no string `id` or no time".into(),
                m,
            )),
        }
    }
    parsed.sort_by_key(|(at, _, _)| *at);

    for (seq, (sent_at, m, kind)) in parsed.iter().enumerate() {
        let role = sender_role(kind);
        let mut attributes = BTreeMap::new();
        let message = s(m, "message");
        let text = match (role, message) {
            (SenderRole::Bot, Some(msg)) => match draftjs_text(msg) {
                Some(t) => {
                    attributes.insert("alli.format".to_string(), "draftjs".to_string());
                    Some(t)
                }
                None => Some(msg.to_string()),
            },
            (_, msg) => msg.map(str::to_string),
        };
        if let Some(Value::Array(cites)) = m.get("citations")
            && !cites.is_empty()
        {
            attributes.insert("alli.citations".into(), Value::Array(cites.clone()).to_string());
        }
        if let Some(Value::Array(opts)) = m.get("chatOptions")
            && !opts.is_empty()
        {
            attributes.insert("alli.chat_options".into(), Value::Array(opts.clone()).to_string());
        }
        for (field, attr) in [("rating", "alli.rating"), ("agentRating", "alli.agent_rating"), ("type", "alli.type")] {
            if let Some(v) = m.get(field).filter(|v| !v.is_null()) {
                attributes.insert(attr.into(), value_text(v));
            }
        }
        let agent_name = m.get("agent").and_then(|a| non_empty(s(a, "name")));
        let (sender_id, sender_name) = match role {
            SenderRole::Visitor => (visitor_id.clone(), visitor_name.clone()),
            SenderRole::Agent => (None, agent_name),
            _ => (None, None),
        };
        out.messages.push(MessageRow {
            vendor: VENDOR.into(),
            account_id: account_id.into(),
            conversation_id: conv_id.clone(),
            message_id: s(m, "id").unwrap_or_default().to_string(),
            seq: seq as u32,
            sent_at: *sent_at,
            sender_role: role,
            sender_id,
            sender_name,
            message_type: if kind.is_empty() { "unknown".into() } else { message_type(kind) },
            text,
            is_encrypted: false,
            ciphertext: None,
            tags: tags.clone(),
            attributes,
            raw: m.to_string(),
            extracted_at,
        });
        if !KNOWN_SENDERS.contains(kind) {
            let field = if b.api == Api::Rest { "sender" } else { "__typename" };
            let what = if kind.is_empty() {
                format!("no string `{field}`")
            } else {
                format!("the unknown `{field}` `{kind}`")
            };
            let id = s(m, "id").unwrap_or_default();
            out.dead_letters.push(dead_letter(
                MESSAGES,
                key(Some(id)),
                REASON_UNEXPECTED_SHAPE,
                format!("chat {id}: {what}: exported with sender_role `system`"),
                m,
            ));
        }
    }

    // Completeness: REST states the total; GraphQL pages until hasNextPage is false.
    if let Some(total) = b.total
        && total != b.chats.len() as u64
    {
        out.dead_letters.push(dead_letter(
            CONVERSATIONS,
            key(None),
            REASON_INCOMPLETE,
            format!("alli reports {total} chats (totalCount) but {} arrived", b.chats.len()),
            c,
        ));
    }
    if let Some(why) = &b.incomplete {
        out.dead_letters.push(dead_letter(CONVERSATIONS, key(None), REASON_INCOMPLETE, why.clone(), c));
    }

    let last_message_at = parsed.iter().map(|(at, _, _)| *at).max();
    let created_at = times.read(c, "createdAt");
    let last_chat = times.read(c, "lastChatTime");
    let row = match b.api {
        Api::Rest => {
            let is_end = c.get("isEnd").and_then(Value::as_bool);
            let state = non_empty(s(c, "state"))
                .map(|x| x.to_lowercase())
                .or_else(|| is_end.map(|e| if e { "ended" } else { "open" }.to_string()));
            let variables = match c.get("variables") {
                Some(Value::Object(o)) => {
                    o.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), value_text(v))).collect()
                }
                _ => BTreeMap::new(),
            };
            ConversationRow {
                channel_id: c.get("llmApp").and_then(|a| non_empty(s(a, "id"))),
                title: non_empty(s(c, "title")),
                state,
                is_ended: is_end,
                updated_at: last_chat.or(created_at),
                message_count: b
                    .total
                    .or_else(|| c.get("chatCount").and_then(Value::as_u64))
                    .map(|n| n.min(u32::MAX as u64) as u32),
                agent_ids: non_empty(s(c, "assignee")).into_iter().collect(),
                variables,
                ..Default::default()
            }
        }
        Api::Graphql => {
            let state = non_empty(s(c, "state"));
            ConversationRow {
                channel_id: c.get("campaign").and_then(|a| non_empty(s(a, "id"))),
                title: non_empty(s(c, "title")),
                is_ended: state.as_deref().map(|st| ENDED_STATES.contains(&st)),
                state: state.map(|x| x.to_lowercase()),
                // A server without `lastChatTime`/`modifiedAt` (introspected away): the last chat.
                updated_at: [last_chat, times.read(c, "modifiedAt")]
                    .into_iter()
                    .flatten()
                    .max()
                    .or(last_message_at)
                    .or(created_at),
                ..Default::default()
            }
        }
    };
    let mut raw = c.clone();
    if let Some(o) = raw.as_object_mut() {
        o.remove("chats");
    }
    out.conversation = Some(ConversationRow {
        vendor: VENDOR.into(),
        account_id: account_id.into(),
        conversation_id: conv_id.clone(),
        created_at,
        last_message_at: last_message_at.or(last_chat),
        visitor_id,
        visitor_name,
        tags,
        raw: raw.to_string(),
        extracted_at,
        ..row
    });
    // The row is exported with those columns null; the dead letter says which and why.
    for bad in times.take() {
        let message = bad.message(&format!("conversation {conv_id}"));
        out.dead_letters.push(dead_letter(CONVERSATIONS, key(None), bad.problem.reason(), message, c));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_by_magnitude() {
        let ms = epoch_micros(&json!(1717243200000_i64)).unwrap().unwrap();
        assert_eq!(ms, 1_717_243_200_000_000);
        assert_eq!(epoch_micros(&json!(1717243200)), Ok(Some(ms)), "seconds");
        assert_eq!(epoch_micros(&json!(1717243200.5)), Ok(Some(ms + 500_000)), "fractional seconds");
        assert_eq!(epoch_micros(&json!("1717243200000")), Ok(Some(ms)), "numeric string");
        assert_eq!(epoch_micros(&json!("2024-06-01T12:00:00Z")), Ok(Some(ms)));
        assert_eq!(epoch_micros(&json!(1717243200000000_i64)), Ok(Some(ms)), "microseconds");
        assert_eq!(epoch_micros(&json!(null)), Ok(None));
        // The value that once saturated to i64::MAX and wrapped the watermark.
        assert_eq!(epoch_micros(&json!(1e30)), Err(TimeProblem::OutOfRange));
        assert_eq!(listing_time(&json!({"lastChatTime": 1e30, "createdAt": 1717243200000_i64})), Some(ms));
        let far = listing_time(&json!({"lastChatTime": "2099-01-01T00:00:00Z"})).unwrap();
        assert!(far <= now_micros() + MAX_CLOCK_SKEW_US, "a far-future conversation counts as now + skew");
        assert_eq!(unit_of(&json!(1717243200000_i64)), Some(TimeUnit::Ms));
        assert_eq!(TimeUnit::S.from_micros(ms), 1717243200);
    }

    #[test]
    fn draftjs_is_flattened() {
        let m =
            r#"{"blocks":[{"text":"Hi Pocoyo","entityRanges":[]},{"text":"Good to see you back."}],"entityMap":{}}"#;
        assert_eq!(draftjs_text(m).as_deref(), Some("Hi Pocoyo\nGood to see you back."));
        assert_eq!(draftjs_text("You have **15 days**."), None);
        assert_eq!(draftjs_text(r#"{"status":"ok"}"#), None, "JSON but not Draft.js");
    }

    #[test]
    fn roles_and_types() {
        assert_eq!(sender_role("USER"), SenderRole::Visitor);
        assert_eq!(sender_role("BotChat"), SenderRole::Bot);
        assert_eq!(sender_role("AGENT"), SenderRole::Agent);
        assert_eq!(sender_role("SYSTEM"), SenderRole::System);
        assert_eq!(message_type("AgentChat"), "agent");
        assert_eq!(message_type("BOT"), "bot");
    }

    /// The REST example of alli.md §4, mapped.
    #[test]
    fn rest_example() {
        let conv = json!({
            "id": "Q29udmVyc2F0aW9uOjY2NWE0YjNjMmYxZTRhMDAxMmFiY2RlZg==", "title": "Annual leave policy",
            "user": {"userId": "VXNlcjo2NjVh", "firstName": "Pocoyo", "lastName": ""},
            "createdAt": 1717243200000_i64, "lastChatTime": 1717243265000_i64, "isEnd": false, "categories": ["HR"], "memo": "",
            "chatCount": 2, "llmApp": {"id": "TExNQXBw", "name": "HR assistant", "description": ""}, "variables": {"level": 3}
        });
        let chats = vec![
            json!({"id": "c1", "sender": "USER", "message": "How many days?", "timestamp": 1717243200000_i64, "citations": [], "rating": null, "agentRating": null}),
            json!({"id": "c2", "sender": "BOT", "message": "You have **15 days** per year.", "timestamp": 1717243265000_i64,
                   "citations": [{"clueId": "c1", "title": "HR handbook.pdf"}], "rating": true, "agentRating": null, "type": "llm"}),
        ];
        let m = map_conversation(
            "acc",
            &Bundle { api: Api::Rest, conversation: conv, chats, total: Some(2), incomplete: None },
            0,
        );
        assert!(m.dead_letters.is_empty());
        let conv = m.conversation.unwrap();
        assert_eq!(conv.channel_id.as_deref(), Some("TExNQXBw"));
        assert_eq!(conv.visitor_name.as_deref(), Some("Pocoyo"));
        assert_eq!(conv.state.as_deref(), Some("open"));
        assert_eq!(conv.tags, vec!["HR"]);
        assert_eq!(conv.variables.get("level").map(String::as_str), Some("3"));
        assert_eq!(conv.message_count, Some(2));
        let bot = &m.messages[1];
        assert_eq!((bot.seq, bot.sender_role, bot.message_type.as_str()), (1, SenderRole::Bot, "bot"));
        assert_eq!(bot.attributes["alli.rating"], "true");
        assert_eq!(bot.attributes["alli.type"], "llm");
        assert!(bot.attributes["alli.citations"].contains("HR handbook.pdf"));
        assert_eq!(m.messages[0].sender_id.as_deref(), Some("VXNlcjo2NjVh"));
    }

    #[test]
    fn incomplete_and_unparsable() {
        let conv = json!({"id": "c", "createdAt": 1717243200000_i64});
        let chats = vec![
            json!({"id": "a", "sender": "USER", "message": "x", "timestamp": 1717243200000_i64}),
            json!({"sender": "BOT"}),
        ];
        let m = map_conversation(
            "acc",
            &Bundle { api: Api::Rest, conversation: conv, chats, total: Some(3), incomplete: None },
            0,
        );
        let reasons: Vec<&str> = m.dead_letters.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons, vec!["unparsable_message", REASON_INCOMPLETE]);
        assert_eq!(m.messages.len(), 1);
    }

    /// The chat object of the webapi v2 seed (`chats[]` of a conversation, verbatim) with a
    /// `sender` the mapping does not know, and a GraphQL node of an unknown typename: each is
    /// exported with the fallback role `system` and reported as `unexpected_shape`.
    #[test]
    fn unknown_senders_are_exported_as_system_and_reported() {
        let mut seed_chat = json!({"id": "text", "sender": "USER", "message": "text", "timestamp": 1,
            "citations": [{"clueId": "text", "source": "text", "title": "text", "knowledgeBaseId": "text", "pageNo": 1, "url": "text", "text": "text"}],
            "rating": true, "agentRating": true});
        seed_chat["timestamp"] = json!(1717243200000_i64);
        let mut campaign = seed_chat.clone();
        campaign["id"] = json!("c2");
        campaign["sender"] = json!("CAMPAIGN");
        let conv = json!({"id": "conv", "createdAt": 1717243200000_i64});
        let m = map_conversation(
            "acc",
            &Bundle {
                api: Api::Rest,
                conversation: conv.clone(),
                chats: vec![seed_chat, campaign],
                total: Some(2),
                incomplete: None,
            },
            0,
        );
        let rows: Vec<_> =
            m.messages.iter().map(|r| (r.message_id.as_str(), r.sender_role, r.message_type.as_str())).collect();
        assert_eq!(rows, [("text", SenderRole::Visitor, "user"), ("c2", SenderRole::System, "campaign")]);
        assert_eq!(m.dead_letters.len(), 1, "{:?}", m.dead_letters);
        let dl = &m.dead_letters[0];
        assert_eq!((dl.reason.as_str(), dl.key["message_id"].as_str()), (REASON_UNEXPECTED_SHAPE, Some("c2")));
        assert!(
            dl.message.contains("the unknown `sender` `CAMPAIGN`: exported with sender_role `system`"),
            "{}",
            dl.message
        );
        assert_eq!(dl.raw["sender"], "CAMPAIGN");

        let node = json!({"__typename": "SystemChat", "id": "s", "message": "Conversation assigned", "createdAt": 1543512345678_i64});
        let m = map_conversation(
            "acc",
            &Bundle { api: Api::Graphql, conversation: conv, chats: vec![node], total: None, incomplete: None },
            0,
        );
        assert_eq!((m.messages[0].sender_role, m.messages[0].message_type.as_str()), (SenderRole::System, "system"));
        assert_eq!(m.dead_letters.iter().map(|d| d.reason.as_str()).collect::<Vec<_>>(), [REASON_UNEXPECTED_SHAPE]);
        assert!(m.dead_letters[0].message.contains("`__typename` `SystemChat`"));
    }

    /// The GraphQL example of alli.md §4, mapped.
    #[test]
    fn graphql_example() {
        let node = json!({"id": "Q29u", "state": "END_BY_AGENT", "campaign": {"id": "Q2Ft", "name": "Landing greeter"},
            "user": {"id": "VXNl", "ownUserId": "ko_pocoyo_id", "firstName": "Pocoyo"}, "createdAt": 1543512345000_i64});
        let chats = vec![
            json!({"__typename": "BotChat", "id": "b", "message": "{\"blocks\":[{\"text\":\"Hi Pocoyo Good to see you back.\",\"entityRanges\":[]}],\"entityMap\":{}}", "createdAt": 1543512345678_i64, "chatOptions": ["Pricing", "Talk to an agent"]}),
            json!({"__typename": "UserChat", "id": "u", "message": "Talk to an agent", "createdAt": 1543512350000_i64}),
            json!({"__typename": "AgentChat", "id": "a", "message": "Hello, this is Anna.", "createdAt": 1543512400000_i64, "agent": {"name": "Anna"}}),
        ];
        let m = map_conversation(
            "acc",
            &Bundle { api: Api::Graphql, conversation: node, chats, total: None, incomplete: None },
            0,
        );
        let texts: Vec<(&str, &str)> =
            m.messages.iter().map(|r| (r.sender_role.as_str(), r.text.as_deref().unwrap())).collect();
        assert_eq!(
            texts,
            vec![
                ("bot", "Hi Pocoyo Good to see you back."),
                ("visitor", "Talk to an agent"),
                ("agent", "Hello, this is Anna.")
            ]
        );
        assert_eq!(m.messages[2].sender_name.as_deref(), Some("Anna"));
        assert_eq!(m.messages[0].attributes["alli.format"], "draftjs");
        assert_eq!(m.messages[0].message_type, "bot");
        let c = m.conversation.unwrap();
        assert_eq!((c.state.as_deref(), c.is_ended), (Some("end_by_agent"), Some(true)));
        assert_eq!(c.channel_id.as_deref(), Some("Q2Ft"));
    }
}
