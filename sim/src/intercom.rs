//! Intercom conversations API simulator, written from Intercom's public REST API reference
//! (docs/vendors/intercom.md, each fact marked confirmed or assumed there), not from our spec of
//! it (`pipelines/specs/intercom.toml`): a deterministic synthetic workspace ([`generate`])
//! served by [`IntercomSim`] on a loopback port:
//!
//! * `GET /conversations?per_page=N&starting_after=C` — `{"type": "conversation.list",
//!   "conversations": [...], "total_count", "pages": {"type": "pages", "page", "per_page",
//!   "total_pages", "next": {"per_page", "starting_after"}}}`, `per_page` default 20 and at most
//!   150, newest `updated_at` first; `next` is absent on the last page. Listed conversations have
//!   no `conversation_parts`.
//! * `GET /conversations/{id}?display_as=plaintext` — one conversation with its
//!   `conversation_parts` (`{"type": "conversation_part.list", "conversation_parts",
//!   "total_count"}`): at most the 500 most recent parts, `total_count` all of them. The first
//!   message is the conversation's `source` (no `created_at` of its own). `display_as=plaintext`
//!   serves bodies as plain text instead of HTML.
//! * `Authorization: Bearer <token>` on every request, else 401 with an `error.list`; an unknown
//!   conversation is 404 with an `error.list`. Times are epoch seconds.
//!
//! The dataset is the ground truth. It starts with the docs' literal example conversation
//! (`1911149811`, its source `<p>Hi</p>` by a `lead`, in the older array shapes of `contacts`
//! and `teammates`) whose one part is the docs' literal example part (`3`, `<p>Okay!</p>` by the
//! admin `Operator`). Modes that behave as the docs allow but our spec may not expect:
//! [`IntercomSim::blank_author_of`] (a part whose `author` is blank, as the docs say of Twitter),
//! conversations longer than the 500-part limit ([`SimConfig::long_conversations`]), and
//! [`IntercomSim::repeat_cursor`].

mod generate;
mod server;

use std::collections::BTreeMap;

use serde_json::Value;

pub use generate::generate;
pub use server::IntercomSim;

/// The most parts `GET /conversations/{id}` returns (the most recent ones).
pub const PARTS_LIMIT: usize = 500;

/// What to generate. Everything derives from `seed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Number of ordinary conversations (after the docs' example one).
    pub conversations: usize,
    /// Upper bound on the parts of an ordinary conversation.
    pub max_parts: usize,
    /// Part counts of extra long conversations (e.g. `[501]`: more than [`PARTS_LIMIT`]).
    pub long_conversations: Vec<usize>,
    /// The access token (`Authorization: Bearer`).
    pub token: String,
}

impl SimConfig {
    /// A small workspace for tests: `conversations` ordinary conversations of at most 8 parts,
    /// no long one.
    pub fn small(conversations: usize) -> Self {
        SimConfig {
            seed: 11,
            conversations,
            max_parts: 8,
            long_conversations: Vec::new(),
            token: "dG9rOjUzZjE0ZTMxX2ludGVyY29tX3NpbQ==".into(),
        }
    }
}

/// Who wrote a part: the `author` object.
#[derive(Clone, Debug, PartialEq)]
pub struct Author {
    /// `type`: `user`, `lead`, `contact`, `admin`, `team`, `bot`; empty for a blank author.
    pub kind: String,
    /// `id`.
    pub id: String,
    /// `name`, when served.
    pub name: Option<String>,
    /// `email`, when served.
    pub email: Option<String>,
}

impl Author {
    /// The canonical `sender_role` of a message by this author (docs/vendors/intercom.md):
    /// `None` for a kind the spec's table does not know (a blank author).
    pub fn role(&self) -> Option<&'static str> {
        match self.kind.as_str() {
            "user" | "lead" | "contact" => Some("visitor"),
            "admin" | "team" => Some("agent"),
            "bot" => Some("bot"),
            _ => None,
        }
    }
}

/// One conversation part, or the conversation's `source` (its first message).
#[derive(Clone, Debug, PartialEq)]
pub struct PartTruth {
    /// `id`.
    pub id: String,
    /// `part_type` (`comment`, `note`, `assignment`, `close`, …); `source` for the source.
    pub part_type: String,
    /// `body` as HTML (`None`: null, as events have).
    pub body: Option<String>,
    /// `created_at`, epoch seconds (the source: the conversation's `created_at`).
    pub created_at: i64,
    /// `author`.
    pub author: Author,
    /// Fields served as they are, over the generated ones (the docs' literal example).
    pub literal: BTreeMap<String, Value>,
}

impl PartTruth {
    /// The body as `display_as=plaintext` serves it: paragraphs and `<br>` as line breaks, tags
    /// removed, the five XML entities decoded (docs/vendors/intercom.md: an assumption).
    pub fn text(&self) -> Option<String> {
        self.body.as_deref().map(plaintext)
    }

    /// Whether the part is a message (`comment`, `note`, the source) rather than an event: an
    /// event's canonical `sender_role` is `system` (docs/vendors/intercom.md).
    pub fn is_message(&self) -> bool {
        matches!(self.part_type.as_str(), "comment" | "note" | "source")
    }
}

/// One conversation and the ground truth of its parts.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationTruth {
    /// `id`.
    pub id: String,
    /// `created_at`, epoch seconds.
    pub created_at: i64,
    /// `updated_at`, epoch seconds (the listing's order, newest first).
    pub updated_at: i64,
    /// `title` (null when `None`).
    pub title: Option<String>,
    /// `state`: `open`, `closed` or `snoozed` (`open` is `state == "open"`).
    pub state: String,
    /// The source: the first message, served without `created_at`.
    pub source: PartTruth,
    /// `source.delivered_as`.
    pub delivered_as: String,
    /// The contact (`contacts.contacts[0].id`), as the author of its parts.
    pub contact: Author,
    /// Admins who took part (`teammates.admins[].id`).
    pub admin_ids: Vec<String>,
    /// `admin_assignee_id`.
    pub admin_assignee_id: Option<String>,
    /// `tags.tags[]`: (`id`, `name`).
    pub tags: Vec<(String, String)>,
    /// `custom_attributes`.
    pub custom_attributes: serde_json::Map<String, Value>,
    /// Every part, oldest first (the API serves the last [`PARTS_LIMIT`]).
    pub parts: Vec<PartTruth>,
    /// Top-level fields served as they are, over the generated ones (the docs' literal example).
    pub literal: BTreeMap<String, Value>,
}

impl ConversationTruth {
    /// The parts `GET /conversations/{id}` returns: the most recent [`PARTS_LIMIT`].
    pub fn served_parts(&self) -> &[PartTruth] {
        &self.parts[self.parts.len().saturating_sub(PARTS_LIMIT)..]
    }
}

/// A generated workspace: the ground truth the simulator serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// The access token.
    pub token: String,
    /// Conversations in creation order (the docs' example first).
    pub conversations: Vec<ConversationTruth>,
}

/// HTML as `display_as=plaintext` gives it (see [`PartTruth::text`]).
pub fn plaintext(html: &str) -> String {
    let mut s = html.replace("</p><p>", "\n").replace("<br>", "\n").replace("<br/>", "\n");
    let mut out = String::with_capacity(s.len());
    let mut in_tag = false;
    for c in s.drain(..) {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_of_the_docs_bodies() {
        assert_eq!(plaintext("<p>Hi</p>"), "Hi");
        assert_eq!(plaintext("<p>Okay!</p>"), "Okay!");
        assert_eq!(plaintext("<p>a &amp; b</p><p>c&lt;d</p>"), "a & b\nc<d");
    }
}
