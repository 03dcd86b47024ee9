//! Aimylogic JSON → canonical rows (docs/design.md §3.1). Pure functions, tested without a server.
//!
//! One *item* is a history entry (docs/vendors/aimylogic.md §2.5) or a webhook event (§2.3); both
//! describe one `questionId`: the client request (`query` or `event`, top level or under
//! `request`) and the answer (`response`, or `data` when it holds `replies`/`answer`).
//! The shapes are partly assumed (§5), so every lookup is defensive and the vendor JSON is
//! kept in `raw`:
//!
//! | message | `message_id` | `sender_role` | `message_type` | `text` | `raw` |
//! |---|---|---|---|---|---|
//! | the request | `<questionId>:q` | `visitor` | `text`, or `event` | `query`, or the `event` name | the whole item |
//! | reply item i | `<questionId>:r<i>` | `bot`; `agent` when the item is an agent reply | reply `type`, lower case (default `text`) | reply `text` | the reply item (the whole item when there is no request) |
//! | an item with neither | `<questionId>:e` | `system` | the item `type`, else `event` | null | the whole item |
//!
//! `sent_at` is the item `timestamp` (naive ISO, read in the `timezone` key's zone, default
//! UTC; epoch milliseconds accepted); an item without `questionId` or a usable `timestamp`
//! becomes a dead letter.
//!
//! Shape drift (docs/design.md §6, `unexpected_shape`): an item with neither a request, an
//! answer nor a `type` (the mapping cannot tell what it is: exported as a `system` message of
//! type `event`), and a reply item without a string `type` (exported as `text`, the documented
//! default), are exported and also reported as a dead letter `unexpected_shape` with the
//! item. Reply types themselves are open (docs/vendors/aimylogic.md §3): an unknown one is
//! passed through as `message_type`, not drift.

use std::collections::BTreeMap;

use pipe_plugin_sdk::schema::{ConversationRow, MESSAGES, MessageRow, SenderRole};
use pipe_plugin_sdk::time::{EpochUnit, TimeProblem, Zone, now_micros, vendor_time};
use pipe_plugin_sdk::{DeadLetter, REASON_UNEXPECTED_SHAPE};
use serde_json::{Value, json};

use crate::VENDOR;

/// What every row of one client shares.
#[derive(Debug, Clone)]
pub struct MapCtx<'a> {
    /// Token prefix (see [`crate::account_id_of`]).
    pub account_id: &'a str,
    /// The `clientId`: the conversation id.
    pub client_id: &'a str,
    /// The channel token, removed from every `raw`.
    pub token: &'a str,
    /// When this run fetched the rows, µs UTC.
    pub extracted_at: i64,
    /// The zone of zone-less `timestamp`s (the `timezone` key).
    pub zone: Zone,
}

/// The rows of one client (history) or of one client's events in one POST (webhook).
#[derive(Debug, Default)]
pub struct MappedClient {
    pub messages: Vec<MessageRow>,
    pub conversation: Option<ConversationRow>,
    pub dead_letters: Vec<DeadLetter>,
    /// Bot sessions seen (items flagged `newSessionStarted`, the first item counting as one).
    pub sessions: u32,
}

/// `v` as compact JSON without the token: a top-level `token` key is dropped and any other
/// occurrence of the token is replaced by `***`.
pub fn scrub_raw(v: &Value, token: &str) -> String {
    let text = match v {
        Value::Object(map) if map.contains_key("token") => {
            let mut m = map.clone();
            m.remove("token");
            Value::Object(m).to_string()
        }
        other => other.to_string(),
    };
    if token.is_empty() { text } else { text.replace(token, "***") }
}

fn str_or_num(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The `questionId` of an item (string or number).
pub fn question_id(item: &Value) -> Option<String> {
    str_or_num(item.get("questionId"))
}

/// A vendor time as µs UTC: an ISO string (naive = a wall-clock time of `zone`) or epoch
/// milliseconds, checked against `now_us` ([`vendor_time`]: never wrapped or saturated,
/// nothing past now + 24 h).
pub fn time_micros(v: Option<&Value>, zone: Zone, now_us: i64) -> Result<Option<i64>, TimeProblem> {
    vendor_time(v, EpochUnit::Millis, zone, now_us)
}

/// The item's `timestamp`, else its response's, checked ([`time_micros`]); an item with
/// neither is [`TimeProblem::Unparsable`].
pub fn item_time(item: &Value, zone: Zone) -> Result<i64, TimeProblem> {
    item_time_at(item, zone, now_micros())
}

fn item_time_at(item: &Value, zone: Zone, now_us: i64) -> Result<i64, TimeProblem> {
    let own = time_micros(item.get("timestamp"), zone, now_us)?;
    let answer = || response(item).map_or(Ok(None), |r| time_micros(r.get("timestamp"), zone, now_us));
    own.map_or_else(answer, |t| Ok(Some(t)))?.ok_or(TimeProblem::Unparsable)
}

/// Where an item stands against a client's watermark, in µs: its time without the future
/// check, and `i64::MAX` for a time beyond any timestamp (so an item dated 2099, which is
/// never exported, stays ahead of every watermark and is dead-lettered on every run while the
/// vendor keeps it). `None` when the item has no readable time.
pub fn item_position(item: &Value, zone: Zone) -> Option<i64> {
    match item_time_at(item, zone, i64::MAX) {
        Ok(t) => Some(t),
        Err(TimeProblem::OutOfRange) => Some(i64::MAX),
        Err(_) => None,
    }
}

/// The request part: the item itself, or its `request` object.
fn request(item: &Value) -> &Value {
    match item.get("request") {
        Some(r @ Value::Object(_)) => r,
        _ => item,
    }
}

/// The answer part: `response`, else `data` when it looks like one (webhook objects).
pub fn response(item: &Value) -> Option<&Value> {
    match item.get("response") {
        Some(r @ Value::Object(_)) => Some(r),
        _ => item.get("data").filter(|d| d.get("replies").is_some() || d.get("answer").is_some()),
    }
}

/// Agent (operator) replies: an item `type`/`sender` naming an agent or operator
/// (docs/vendors/aimylogic.md §2.5, assumed `"type": "agentResponse"`).
pub fn is_agent(item: &Value) -> bool {
    ["type", "sender", "senderType"].iter().any(|k| {
        item.get(*k).and_then(Value::as_str).is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t.contains("agent") || t.contains("operator")
        })
    })
}

fn flag(v: Option<&Value>) -> bool {
    v.and_then(Value::as_bool).unwrap_or(false)
}

fn attr_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn dead_letter(ctx: &MapCtx<'_>, item: &Value, reason: &str, message: String) -> DeadLetter {
    DeadLetter {
        stream: MESSAGES.into(),
        key: json!({"vendor": VENDOR, "account_id": ctx.account_id, "conversation_id": ctx.client_id, "message_id": question_id(item)}),
        stage: VENDOR.into(),
        reason: reason.into(),
        message,
        raw: serde_json::from_str(&scrub_raw(item, ctx.token)).unwrap_or(Value::Null),
    }
}

/// The messages of one item, `seq` from `seq_start`, with `session` (if known) in
/// `attributes["aimylogic.session"]`.
///
/// Errors: a dead letter (`missing_question_id`, `unparsable_timestamp`) when the item cannot
/// be keyed or placed in time.
// The dead letter is the error's payload; boxing it would only add an allocation per bad item.
#[allow(clippy::result_large_err)]
pub fn map_item(
    ctx: &MapCtx<'_>,
    item: &Value,
    seq_start: u32,
    session: Option<u32>,
) -> Result<Vec<MessageRow>, DeadLetter> {
    let Some(qid) = question_id(item) else {
        return Err(dead_letter(ctx, item, "missing_question_id", "item has no questionId".into()));
    };
    let sent_at = match item_time(item, ctx.zone) {
        Ok(t) => t,
        Err(problem) => {
            let ts = item.get("timestamp").map(attr_value).unwrap_or_else(|| "(none)".into());
            return Err(dead_letter(
                ctx,
                item,
                problem.reason(),
                format!("questionId {qid}: timestamp `{ts}` {} (an ISO time or epoch ms)", problem.describe()),
            ));
        }
    };
    let agent = is_agent(item);
    let raw_item = scrub_raw(item, ctx.token);
    let mut common = BTreeMap::new();
    if let Some(s) = session {
        common.insert("aimylogic.session".to_string(), s.to_string());
    }
    if let Some(cid) = str_or_num(item.get("cid")) {
        common.insert("aimylogic.cid".to_string(), cid);
    }
    let row = |id: String,
               role: SenderRole,
               kind: String,
               text: Option<String>,
               attributes: BTreeMap<String, String>,
               raw: String| MessageRow {
        vendor: VENDOR.into(),
        account_id: ctx.account_id.into(),
        conversation_id: ctx.client_id.into(),
        message_id: id,
        seq: 0,
        sent_at,
        sender_role: role,
        sender_id: match role {
            SenderRole::Visitor => Some(ctx.client_id.to_string()),
            _ => None,
        },
        sender_name: None,
        message_type: kind,
        text,
        is_encrypted: false,
        ciphertext: None,
        tags: Vec::new(),
        attributes,
        raw,
        extracted_at: ctx.extracted_at,
    };

    let mut out = Vec::new();
    // The client request (agent replies have none).
    let req = request(item);
    let query = req.get("query").and_then(Value::as_str).filter(|s| !s.is_empty());
    let event = req.get("event").and_then(Value::as_str).filter(|s| !s.is_empty());
    if !agent && (query.is_some() || event.is_some()) {
        let mut attributes = common.clone();
        if let Some(d) = req.get("data").filter(|d| !d.is_null() && response(item) != Some(*d)) {
            attributes.insert("aimylogic.data".into(), d.to_string().replace(ctx.token, "***"));
        }
        let (kind, text) = match query {
            Some(q) => ("text", q),
            None => ("event", event.unwrap_or_default()),
        };
        out.push(row(
            format!("{qid}:q"),
            SenderRole::Visitor,
            kind.into(),
            Some(text.into()),
            attributes,
            raw_item.clone(),
        ));
    }

    // The answer: one message per reply item; `answer` alone counts as one text reply.
    if let Some(resp) = response(item) {
        let mut replies: Vec<Value> = resp.get("replies").and_then(Value::as_array).cloned().unwrap_or_default();
        let answer = resp.get("answer").and_then(Value::as_str).filter(|a| !a.is_empty());
        if let (true, Some(answer)) = (replies.is_empty(), answer) {
            replies.push(json!({"type": "text", "text": answer}));
        }
        let mut answer_attrs = common.clone();
        for key in ["nlpClass", "confidence", "newSessionStarted", "endSession"] {
            if let Some(v) = resp.get(key).filter(|v| !v.is_null()) {
                answer_attrs.insert(format!("aimylogic.{key}"), attr_value(v));
            }
        }
        if let Some(status) = item.get("status").filter(|v| !v.is_null()) {
            answer_attrs.insert("aimylogic.status".into(), attr_value(status));
        }
        let role = if agent { SenderRole::Agent } else { SenderRole::Bot };
        for (i, reply) in replies.iter().enumerate() {
            let kind = reply.get("type").and_then(Value::as_str).unwrap_or("text").to_ascii_lowercase();
            let text = reply.get("text").and_then(Value::as_str).map(str::to_string);
            let mut attributes = answer_attrs.clone();
            if let Value::Object(fields) = reply {
                for (k, v) in fields {
                    if k != "type" && k != "text" && !v.is_null() {
                        attributes.insert(format!("aimylogic.reply.{k}"), attr_value(v).replace(ctx.token, "***"));
                    }
                }
            }
            // With no request message, the first reply carries the whole item, so nothing is lost.
            let raw = if out.is_empty() && i == 0 { raw_item.clone() } else { scrub_raw(reply, ctx.token) };
            out.push(row(format!("{qid}:r{i}"), role, kind, text, attributes, raw));
        }
    }

    // Neither a request nor an answer (widget state, unknown kinds): keep it as an event.
    if out.is_empty() {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("event").to_ascii_lowercase();
        out.push(row(format!("{qid}:e"), SenderRole::System, kind, None, common, raw_item));
    }
    for (i, m) in out.iter_mut().enumerate() {
        m.seq = seq_start + i as u32;
    }
    Ok(out)
}

/// The shape drift of an item that [`map_item`] mapped (module docs): `None` when every field
/// the mapping reads is there, else one dead letter `unexpected_shape` with the item (token
/// removed), keyed by the first message it affects and naming each problem with the fallback
/// the exported row got.
pub fn shape_drift(ctx: &MapCtx<'_>, item: &Value) -> Option<DeadLetter> {
    let qid = question_id(item)?;
    let mut problems: Vec<(String, String)> = Vec::new();
    let req = request(item);
    let has_request =
        ["query", "event"].iter().any(|k| req.get(*k).and_then(Value::as_str).is_some_and(|s| !s.is_empty()));
    let answer = response(item);
    if !has_request && answer.is_none() && item.get("type").and_then(Value::as_str).is_none() {
        problems.push((
            format!("{qid}:e"),
            "item has no `query`, `event`, `response` (or answer `data`) and no `type`: exported as a `system` message of type `event`".into(),
        ));
    }
    if let Some(replies) = answer.and_then(|r| r.get("replies")).and_then(Value::as_array) {
        for (i, reply) in replies.iter().enumerate() {
            if reply.get("type").and_then(Value::as_str).is_none() {
                problems.push((format!("{qid}:r{i}"), format!("reply {i} has no string `type`: exported as `text`")));
            }
        }
    }
    let (first, _) = problems.first()?;
    let mut dl = dead_letter(
        ctx,
        item,
        REASON_UNEXPECTED_SHAPE,
        format!("questionId {qid}: {}", problems.iter().map(|(_, p)| p.as_str()).collect::<Vec<_>>().join("; ")),
    );
    dl.key["message_id"] = Value::String(first.clone());
    Some(dl)
}

/// The items of a history response: `messages`, `history`, `items` or `events` of an object,
/// or a bare array. `None` when the body has none of those shapes.
pub fn history_items(body: &Value) -> Option<Vec<Value>> {
    match body {
        Value::Array(items) => Some(items.clone()),
        Value::Object(o) => {
            ["messages", "history", "items", "events"].iter().find_map(|k| o.get(*k).and_then(Value::as_array).cloned())
        }
        _ => None,
    }
}

/// Maps a client's whole history: items ordered by time (ties keep the API's order), `seq`
/// over the whole conversation, bot sessions numbered from 1 (a new one at each
/// `newSessionStarted`), and the conversation row last.
pub fn map_history(ctx: &MapCtx<'_>, items: &[Value]) -> MappedClient {
    let mut out = MappedClient::default();
    let mut timed: Vec<(i64, &Value)> = Vec::new();
    for item in items {
        match item_time(item, ctx.zone) {
            Ok(t) => timed.push((t, item)),
            // map_item produces the dead letter with its reason.
            Err(_) => {
                if let Err(dl) = map_item(ctx, item, 0, None) {
                    out.dead_letters.push(dl);
                }
            }
        }
    }
    timed.sort_by_key(|(t, _)| *t);
    let mut seen = std::collections::HashSet::new();
    let mut ended = None;
    for (_, item) in timed {
        let new_session = response(item).is_some_and(|r| flag(r.get("newSessionStarted")));
        if out.sessions == 0 || new_session {
            out.sessions += 1;
        }
        match map_item(ctx, item, out.messages.len() as u32, Some(out.sessions)) {
            Ok(rows) => {
                // Overlapping pages (a server ignoring `offset`) repeat items: keep the first.
                if rows.iter().any(|r| !seen.insert(r.message_id.clone())) {
                    continue;
                }
                if let Some(r) = response(item) {
                    ended = Some(flag(r.get("endSession")));
                }
                out.dead_letters.extend(shape_drift(ctx, item));
                out.messages.extend(rows);
            }
            Err(dl) => out.dead_letters.push(dl),
        }
    }
    for (i, m) in out.messages.iter_mut().enumerate() {
        m.seq = i as u32;
    }
    out.conversation =
        Some(conversation(ctx, &out.messages, Some(out.messages.len() as u32), ended, out.sessions, items.len()));
    out
}

/// The conversation row of a client from the messages emitted for it. `raw` is our summary
/// (the Chat API has no conversation object): `{"clientId", "items", "sessions"}`.
pub fn conversation(
    ctx: &MapCtx<'_>,
    messages: &[MessageRow],
    count: Option<u32>,
    ended: Option<bool>,
    sessions: u32,
    items: usize,
) -> ConversationRow {
    let first = messages.iter().map(|m| m.sent_at).min();
    let last = messages.iter().map(|m| m.sent_at).max();
    ConversationRow {
        vendor: VENDOR.into(),
        account_id: ctx.account_id.into(),
        conversation_id: ctx.client_id.into(),
        channel_id: Some(ctx.account_id.into()),
        created_at: first,
        updated_at: last,
        last_message_at: last,
        is_ended: ended,
        message_count: count,
        visitor_id: Some(ctx.client_id.into()),
        raw: json!({"clientId": ctx.client_id, "items": items, "sessions": sessions}).to_string(),
        extracted_at: ctx.extracted_at,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "FZWSBqfV:68932bef32cca3534102fc03717456d948216edd";

    fn ctx() -> MapCtx<'static> {
        MapCtx { account_id: "FZWSBqfV", client_id: "client-42", token: TOKEN, extracted_at: 1, zone: Zone::UTC }
    }

    #[test]
    fn documented_history_item() {
        // docs/vendors/aimylogic.md §2.5, verbatim shape.
        let item = json!({ "questionId": "4b0a", "timestamp": "2024-05-14T09:12:03.517",
            "query": "Hi", "event": null, "data": null,
            "response": { "replies": [ {"type": "text", "text": "Hello! How can I help?"}, {"type": "buttons", "buttons": [{"text": "Yes"}]} ],
                          "answer": "Hello! How can I help?", "newSessionStarted": true, "endSession": false },
            "status": "READ" });
        let m = map_history(&ctx(), &[item]);
        assert!(m.dead_letters.is_empty());
        let ids: Vec<_> =
            m.messages.iter().map(|r| (r.message_id.as_str(), r.sender_role, r.message_type.as_str(), r.seq)).collect();
        assert_eq!(
            ids,
            vec![
                ("4b0a:q", SenderRole::Visitor, "text", 0),
                ("4b0a:r0", SenderRole::Bot, "text", 1),
                ("4b0a:r1", SenderRole::Bot, "buttons", 2)
            ]
        );
        assert_eq!(m.messages[0].text.as_deref(), Some("Hi"));
        assert_eq!(m.messages[0].sent_at, 1_715_677_923_517_000);
        assert_eq!(m.messages[2].attributes["aimylogic.reply.buttons"], r#"[{"text":"Yes"}]"#);
        assert_eq!(m.messages[1].attributes["aimylogic.session"], "1");
        assert_eq!(m.conversation.unwrap().message_count, Some(3));
    }

    #[test]
    fn agent_event_and_webhook_shapes() {
        let agent = json!({"questionId": "a1", "timestamp": "2024-05-14T09:15:40.002", "type": "agentResponse",
            "response": {"replies": [{"type": "text", "text": "Hi, this is Anna"}]}});
        let rows = map_item(&ctx(), &agent, 0, None).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].message_id.as_str(), rows[0].sender_role), ("a1:r0", SenderRole::Agent));
        // Webhook object (§2.3): the answer is under `data`, the token is in the body.
        let hook = json!({"token": TOKEN, "clientId": "client-42", "questionId": "w1", "event": "start",
            "data": {"replies": [{"type": "text", "text": "Hey"}], "answer": "Hey", "nlpClass": "/CatchAll"},
            "timestamp": "2022-09-28T12:32:13.262"});
        let rows = map_item(&ctx(), &hook, 0, None).unwrap();
        assert_eq!(rows.iter().map(|r| r.message_type.as_str()).collect::<Vec<_>>(), ["event", "text"]);
        assert_eq!(rows[0].text.as_deref(), Some("start"));
        assert!(rows.iter().all(|r| !r.raw.contains(TOKEN) && !r.raw.contains("68932bef")), "token leaked into raw");
        assert_eq!(rows[1].attributes["aimylogic.nlpClass"], "/CatchAll");
    }

    #[test]
    fn far_future_and_unrepresentable_times_are_dead_letters_never_watermarks() {
        let items = vec![
            json!({"questionId": "future", "timestamp": "2099-01-01T00:00:00", "query": "?"}),
            json!({"questionId": "huge", "timestamp": 1e30, "query": "?"}),
            json!({"questionId": "wraps", "timestamp": i64::MAX, "query": "?"}),
            json!({"questionId": "1", "timestamp": 1715677923517i64, "query": "a"}),
        ];
        let m = map_history(&ctx(), &items);
        let reasons: Vec<_> =
            m.dead_letters.iter().map(|d| (d.key["message_id"].as_str(), d.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                (Some("future"), "time_in_future"),
                (Some("huge"), "time_out_of_range"),
                (Some("wraps"), "time_out_of_range")
            ]
        );
        assert!(m.dead_letters.iter().all(|d| pipe_plugin_sdk::REJECTED_REASONS.contains(&d.reason.as_str())));
        let ids: Vec<_> = m.messages.iter().map(|r| r.message_id.as_str()).collect();
        assert_eq!(ids, ["1:q"], "every other item is exported");
        // Against a watermark these stay ahead of it (reported while the vendor keeps them).
        assert_eq!(item_position(&items[1], Zone::UTC), Some(i64::MAX));
        assert!(item_position(&items[0], Zone::UTC).is_some_and(|t| t > now_micros()));
    }

    #[test]
    fn bad_items_are_dead_letters_and_sessions_count() {
        let items = vec![
            json!({"questionId": "x", "timestamp": "yesterday", "query": "?"}),
            json!({"timestamp": "2024-05-14T09:12:03.517", "query": "no id"}),
            json!({"questionId": "2", "timestamp": 1715677930000i64, "query": "b", "response": {"answer": "B", "newSessionStarted": true}}),
            json!({"questionId": "1", "timestamp": "2024-05-14T09:12:03.517", "query": "a"}),
            json!({"questionId": "3", "timestamp": "2024-05-14T09:13:00", "type": "widgetState"}),
        ];
        let m = map_history(&ctx(), &items);
        let reasons: Vec<_> = m.dead_letters.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(reasons, ["unparsable_timestamp", "missing_question_id"]);
        let ids: Vec<_> =
            m.messages.iter().map(|r| (r.message_id.as_str(), r.attributes["aimylogic.session"].as_str())).collect();
        assert_eq!(ids, [("1:q", "1"), ("2:q", "2"), ("2:r0", "2"), ("3:e", "2")]);
        assert_eq!(m.messages[3].sender_role, SenderRole::System);
        assert_eq!(m.sessions, 2);
    }

    #[test]
    fn shape_drift_is_reported_with_the_fallback_and_known_shapes_are_not() {
        // docs/vendors/aimylogic.md §2.5's documented item (and the seed's webhook object,
        // webhook/mod.rs tests): no drift.
        let documented = json!({ "questionId": "4b0a", "timestamp": "2024-05-14T09:12:03.517", "query": "Hi",
            "response": {"replies": [{"type": "text", "text": "Hello"}, {"type": "Raw", "body": {}}]}});
        assert!(shape_drift(&ctx(), &documented).is_none(), "an unknown reply type is passed through, not drift");
        let m = map_history(&ctx(), &[documented]);
        assert!(m.dead_letters.is_empty());

        // A reply without `type`, and an item that is neither request, answer nor typed.
        let untyped = json!({"questionId": "q1", "timestamp": "2024-05-14T09:12:04.000", "query": "Hi",
            "response": {"replies": [{"text": "Hello"}]}});
        let bare = json!({"questionId": "q2", "timestamp": "2024-05-14T09:12:05.000", "token": TOKEN});
        let m = map_history(&ctx(), &[untyped, bare]);
        let rows: Vec<_> =
            m.messages.iter().map(|r| (r.message_id.as_str(), r.sender_role, r.message_type.as_str())).collect();
        assert_eq!(
            rows,
            [
                ("q1:q", SenderRole::Visitor, "text"),
                ("q1:r0", SenderRole::Bot, "text"),
                ("q2:e", SenderRole::System, "event")
            ]
        );
        let dls: Vec<_> =
            m.dead_letters.iter().map(|d| (d.reason.as_str(), d.key["message_id"].as_str().unwrap())).collect();
        assert_eq!(dls, [(REASON_UNEXPECTED_SHAPE, "q1:r0"), (REASON_UNEXPECTED_SHAPE, "q2:e")]);
        assert!(m.dead_letters[0].message.contains("reply 0 has no string `type`: exported as `text`"));
        assert!(m.dead_letters.iter().all(|d| !d.raw.to_string().contains("68932bef")), "no token in raw");
    }

    #[test]
    fn zone_less_timestamps_are_read_in_the_configured_zone() {
        let moscow = MapCtx { zone: Zone::named("Europe/Moscow").unwrap(), ..ctx() };
        // The seed's literal timestamp (docs/vendors/aimylogic.md §1).
        let item = json!({"questionId": "1", "timestamp": "2022-09-28T12:32:13.262", "query": "a"});
        let utc = map_history(&ctx(), std::slice::from_ref(&item)).messages[0].sent_at;
        let msk = map_history(&moscow, &[item]).messages[0].sent_at;
        assert_eq!(utc - msk, 3 * 3_600_000_000);
        assert_eq!(pipe_plugin_sdk::time::format_micros(msk), "2022-09-28T09:32:13.262000Z");
    }

    #[test]
    fn history_envelopes() {
        assert_eq!(history_items(&json!([{"a": 1}])).unwrap().len(), 1);
        assert_eq!(history_items(&json!({"clientId": "c", "messages": [{}, {}]})).unwrap().len(), 2);
        assert!(history_items(&json!({"oops": 1})).is_none());
    }
}
