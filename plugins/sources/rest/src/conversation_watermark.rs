//! A watermark per conversation (`conversation_watermarks = true`), for APIs whose
//! conversations are not listed newest first: every run reads each conversation whole and maps
//! it as a first run does (so the conversation row's counts and times stay whole-history
//! aggregates), then lets out only what its watermark does not cover ([`select_new`]).
//!
//! The watermark of a conversation is the newest `sent_at` exported (µs UTC) and the
//! `message_id`s exported at exactly that instant (messages may share one), so "new" is a later
//! time, or the same time with an id not seen. It never moves past now + the SDK cursor's clock
//! skew: a message dated ahead is exported, and exported again until its time has passed
//! (at-least-once, one primary key).
//!
//! State: `"conversations": {id: {"at": µs, "ids": [message_id, ...]}}` in the `rest` source's
//! state; after a complete listing, conversations no longer listed are dropped, so it is
//! bounded by the listing (for configured conversations: by the configuration).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use pipe_plugin_sdk::schema::{MESSAGES, MessageRow};
use pipe_plugin_sdk::source_kit::MAX_CLOCK_SKEW_US;
use pipe_plugin_sdk::time::now_micros;
use serde::{Deserialize, Serialize};

use crate::mapping::Mapped;

/// What has been exported of one conversation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMark {
    /// The newest `sent_at` exported, µs UTC.
    pub at: i64,
    /// The `message_id`s exported at exactly `at`.
    pub ids: BTreeSet<String>,
}

impl ConversationMark {
    /// Whether a message at `at` (µs) with `id` is not covered yet.
    pub fn is_new(&self, at: i64, id: &str) -> bool {
        at > self.at || (at == self.at && !self.ids.contains(id))
    }

    /// Records a message at `at` with `id` as exported, never past now + the clock skew.
    pub fn advance(&mut self, at: i64, id: &str) {
        let ceiling = now_micros().saturating_add(MAX_CLOCK_SKEW_US);
        if at > ceiling {
            if ceiling > self.at {
                self.at = ceiling;
                self.ids.clear();
            }
            return;
        }
        if at > self.at {
            self.at = at;
            self.ids.clear();
        }
        if at == self.at {
            self.ids.insert(id.to_string());
        }
    }
}

/// What of a conversation's rows `mark` does not cover (`None`: everything): the messages
/// newer than it; the conversation row only when at least one message is let out (also on a
/// first run: a conversation without a message has no row); every dead letter but those of the
/// messages stream naming a message the watermark covers (its drift was reported when it was
/// exported). Dead letters of records that never become rows (no id, an unusable time) are so
/// reported on every run while the vendor keeps them.
pub fn select_new(mark: Option<&ConversationMark>, mut mapped: Mapped) -> Mapped {
    if let Some(w) = mark {
        let covered: HashSet<String> = mapped
            .messages
            .iter()
            .filter(|m| !w.is_new(m.sent_at, &m.message_id))
            .map(|m| m.message_id.clone())
            .collect();
        mapped.messages.retain(|m| !covered.contains(&m.message_id));
        mapped.dead_letters.retain(|dl| {
            dl.stream != MESSAGES || !dl.key["message_id"].as_str().is_some_and(|id| covered.contains(id))
        });
    }
    if mapped.messages.is_empty() {
        mapped.conversation = None;
    }
    mapped
}

/// Advances the watermark of conversation `id` over the `messages` let out.
pub fn record(marks: &mut BTreeMap<String, ConversationMark>, id: &str, messages: &[MessageRow]) {
    if messages.is_empty() {
        return;
    }
    let mark = marks.entry(id.to_string()).or_default();
    for m in messages {
        mark.advance(m.sent_at, &m.message_id);
    }
}

#[cfg(test)]
mod tests {
    use pipe_plugin_sdk::DeadLetter;
    use pipe_plugin_sdk::schema::ConversationRow;
    use serde_json::json;

    use super::*;

    fn message(id: &str, at: i64) -> MessageRow {
        MessageRow {
            vendor: "t".into(),
            account_id: "a".into(),
            conversation_id: "conv".into(),
            message_id: id.into(),
            seq: 0,
            sent_at: at,
            sender_role: pipe_plugin_sdk::schema::SenderRole::Visitor,
            sender_id: None,
            sender_name: None,
            message_type: "text".into(),
            text: None,
            is_encrypted: false,
            ciphertext: None,
            tags: Vec::new(),
            attributes: BTreeMap::new(),
            raw: String::new(),
            extracted_at: 0,
        }
    }

    fn dead_letter(message_id: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            stream: MESSAGES.into(),
            key: json!({"message_id": message_id}),
            stage: "t".into(),
            reason: reason.into(),
            message: String::new(),
            raw: serde_json::Value::Null,
        }
    }

    fn mapped(ids: &[(&str, i64)]) -> Mapped {
        Mapped {
            conversation: Some(ConversationRow::default()),
            messages: ids.iter().map(|(id, at)| message(id, *at)).collect(),
            dead_letters: vec![dead_letter("a", "unexpected_shape"), dead_letter("x", "time_in_future")],
        }
    }

    #[test]
    fn only_what_the_watermark_does_not_cover_is_let_out() {
        let mut marks = BTreeMap::new();
        let first = select_new(None, mapped(&[("a", 10), ("b", 20), ("c", 20)]));
        assert_eq!(first.messages.len(), 3);
        assert_eq!(first.dead_letters.len(), 2);
        record(&mut marks, "conv", &first.messages);
        assert_eq!(marks["conv"], ConversationMark { at: 20, ids: ["b".to_string(), "c".into()].into() });

        // Nothing new: no row, the drift of an exported message not again, the refused one again.
        let same = select_new(marks.get("conv"), mapped(&[("a", 10), ("b", 20), ("c", 20)]));
        assert!(same.messages.is_empty() && same.conversation.is_none());
        assert_eq!(same.dead_letters.iter().map(|d| d.reason.as_str()).collect::<Vec<_>>(), ["time_in_future"]);

        // A message at the watermark's very instant, and a later one.
        let more = select_new(marks.get("conv"), mapped(&[("a", 10), ("b", 20), ("c", 20), ("d", 20), ("e", 30)]));
        let ids: Vec<&str> = more.messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["d", "e"]);
        assert!(more.conversation.is_some());

        // A conversation without any message has no row, even on a first run.
        assert!(select_new(None, mapped(&[])).conversation.is_none());
    }

    #[test]
    fn the_watermark_never_moves_past_now_plus_the_skew() {
        let now = now_micros();
        let far = now + 24 * 3_600_000_000;
        let mut w = ConversationMark::default();
        w.advance(far, "z");
        assert!(w.at < far && w.at >= now && w.ids.is_empty(), "{w:?}");
        assert!(w.is_new(far, "z"), "the message ahead of the clock is let out again later");
        assert!(!w.is_new(now - 1, "old"));
    }
}
