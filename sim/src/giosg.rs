//! giosg API simulator: a deterministic synthetic dataset ([`generate`]) and an HTTP server
//! ([`GiosgSim`]) that serves it the way giosg's `/api/v5` does (docs/vendors/giosg.md §1–§6).
//!
//! The dataset is the ground truth: every chat, message, membership, tag and variable object is
//! stored exactly as the server sends it, plus each message's plaintext, so end-to-end tests can
//! compare the pipeline's output with what the "vendor" really holds. Encrypted chats follow
//! giosg's scheme (RSA-OAEP-SHA1 wrapped AES-256-CBC + HMAC-SHA1 keys) and the dataset carries
//! the RSA private key that decrypts them.
//!
//! What the server deliberately makes hard for clients, because real giosg does too: cursor
//! pagination with absolute `next` URLs and pages shorter than `page_size`; timestamps with and
//! without the `Z`; purged, empty, open and encrypted chats; `encrypted_message` keys that are
//! absent (not null) on join/leave events; unicode and 2000-character texts. Failure knobs
//! ([`GiosgSim::fail_auth_after`], [`GiosgSim::inject_429_every`]) drive the error-path tests;
//! decryption failures come from a wrong key ([`crypto::unrelated_private_key_pem`]) or a
//! damaged message ([`Dataset::corrupt_one_encrypted_message`]).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pipe_sim::giosg::{generate, GiosgSim, SimConfig, SimOptions};
//! let dataset = std::sync::Arc::new(generate(&SimConfig::small(20)));
//! let sim = GiosgSim::start(dataset.clone(), SimOptions::default()).await?;
//! println!("giosg at {} (org {})", sim.base_url(), dataset.organization_id);
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod corpus;
pub mod crypto;
mod faults;
mod generate;
mod http_faults;
mod paging;
mod server;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Value, json};

pub use generate::generate;
pub use http_faults::{HttpFaults, QuotaHeaders, RequestRecord, WindowLimit};
pub use server::{GiosgSim, PagingFaults, SimOptions};

/// Creation time of the first generated chat: every dataset starts here and moves forward by
/// minutes to hours per chat (300 chats ≈ 6 weeks), so pipelines starting at
/// `2026-01-01T00:00:00Z` see all of it.
pub const EPOCH: &str = "2026-01-05T07:00:00.000Z";

/// What to generate. Everything in the dataset derives from `seed` except crypto randomness
/// (the RSA key, AES/HMAC keys and IVs), so two datasets with one config agree on all ids,
/// timestamps, texts and plaintexts but not on ciphertexts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Number of chats.
    pub chats: usize,
    /// Upper bound on messages (of all types: msg, join, leave, …) in one chat.
    pub max_messages_per_chat: usize,
    /// Every Nth chat in creation order is encrypted (chats N-1, 2N-1, … counted from 0);
    /// 0 = none.
    pub encrypted_every: usize,
    /// The organization id the server answers for (a lower-case UUID).
    pub organization_id: String,
    /// The API token the server requires as `Authorization: Token <token>`.
    pub token: String,
    /// Most milliseconds between the creation of two consecutive chats (the gap is drawn
    /// uniformly from one minute to this); 6 hours in [`SimConfig::demo`].
    pub max_chat_gap_ms: i64,
}

impl SimConfig {
    /// The `pipe demo` dataset: seed 42, 300 chats, at most 40 messages each, every 5th
    /// encrypted.
    pub fn demo() -> Self {
        Self {
            seed: 42,
            chats: 300,
            max_messages_per_chat: 40,
            encrypted_every: 5,
            organization_id: "ff6e7834-9d89-11e9-a62f-0242ac110003".to_owned(),
            token: "giosg-demo-token-0123456789abcdef".to_owned(),
            max_chat_gap_ms: 6 * 3_600_000,
        }
    }

    /// This config with the gap between chats narrowed (never widened) so that its chats span
    /// about `days` days from [`EPOCH`] on average: a large dataset then still lies in the
    /// past (a pipeline dead-letters times after now as `time_in_future`). Datasets that fit
    /// already are unchanged.
    pub fn spread_within_days(mut self, days: i64) -> Self {
        const MINUTE: i64 = 60_000;
        // The mean gap is (MINUTE + max) / 2; `chats` gaps must fit in `days`.
        let fitting = 2 * days * 86_400_000 / self.chats.max(1) as i64 - MINUTE;
        self.max_chat_gap_ms = self.max_chat_gap_ms.min(fitting).max(2 * MINUTE);
        self
    }

    /// A small dataset for tests: `chats` chats of at most 12 messages, every 3rd encrypted,
    /// same organization and token as [`SimConfig::demo`].
    pub fn small(chats: usize) -> Self {
        Self { seed: 7, chats, max_messages_per_chat: 12, encrypted_every: 3, ..Self::demo() }
    }
}

/// The generated ground truth, shared by the server and the tests that check pipeline output.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Organization id (`account_id` in the canonical schema).
    pub organization_id: String,
    /// API token the server accepts.
    pub token: String,
    /// Chats in creation order (ascending `created_at`).
    pub chats: Vec<ChatTruth>,
    /// PKCS#8 PEM of the RSA-2048 private key that decrypts the encrypted chats; empty if no
    /// chat is encrypted.
    pub private_key_pkcs8_pem: String,
}

impl Dataset {
    /// The chat with this id.
    pub fn chat(&self, id: &str) -> Option<&ChatTruth> {
        self.chats.iter().find(|c| c.id() == id)
    }

    /// Total number of message objects (all types) over all chats.
    pub fn message_count(&self) -> usize {
        self.chats.iter().map(|c| c.messages.len()).sum()
    }

    /// A copy whose encrypted chats (those with `encrypted_symmetric_key`) have encrypted
    /// visitor variables, as giosg serves them for an encrypted room (docs/vendors/giosg.md
    /// §5.5, [`crypto::encrypt_visitor_variables`]): each value a ciphertext, plus the variable
    /// `_encrypted_aes_key`. The plaintexts are the variables of `self`. Their visitor
    /// membership's `member_name` (the plain `username`) becomes null: where the name is only
    /// in an encrypted variable, an export must decrypt it (ASSUMPTION: giosg does not copy a
    /// plaintext name there for encrypted rooms). Chats without variables are left alone.
    ///
    /// Panics when the dataset has encrypted chats but no usable private key.
    pub fn with_encrypted_variables(&self) -> Dataset {
        let mut d = self.clone();
        for c in d.chats.iter_mut().filter(|c| c.is_encrypted() && !c.variables.is_empty()) {
            c.variables = crypto::encrypt_visitor_variables(&self.private_key_pkcs8_pem, &c.variables)
                .expect("the dataset's private key");
            for m in c.memberships.iter_mut().filter(|m| m["member_type"] == "visitor") {
                m["member_name"] = Value::Null;
            }
        }
        d
    }

    /// A copy in which every `every`-th `msg` message (counted over the whole dataset from 0)
    /// carries a `sender_type` the giosg mapping does not know (`bot`): shape drift, exported
    /// with sender_role `system` and reported as `unexpected_shape`. Returns the copy and the
    /// `(chat id, message id)` of the messages changed.
    pub fn with_unknown_sender_types(&self, every: usize) -> (Dataset, Vec<(String, String)>) {
        let mut d = self.clone();
        let mut changed = Vec::new();
        let mut n = 0usize;
        for c in &mut d.chats {
            let chat_id = c.id().to_string();
            for m in c.messages.iter_mut().filter(|m| m.json["type"] == "msg") {
                if n.is_multiple_of(every.max(1)) {
                    m.json["sender_type"] = json!("bot");
                    changed.push((chat_id.clone(), m.json["id"].as_str().unwrap_or_default().to_string()));
                }
                n += 1;
            }
        }
        (d, changed)
    }

    /// Grows the dataset the way a day of traffic does, for incremental-run tests: every open
    /// chat gets one more `msg` message an hour after its last change and ends then
    /// (`is_ended`, `ended_at`, `updated_at`, `message_count` follow). Returns the ids of the
    /// chats changed.
    pub fn end_open_chats(&mut self) -> std::collections::BTreeSet<String> {
        const TEXT: &str = "Thanks, closing this chat now.";
        let time = |v: &Value| v.as_str().and_then(parse_timestamp).expect("a giosg timestamp");
        let mut changed = std::collections::BTreeSet::new();
        for c in self.chats.iter_mut().filter(|c| c.chat["is_ended"] == false) {
            let last = c.messages.last().map_or_else(|| time(&c.chat["created_at"]), |m| time(&m.json["created_at"]));
            let at = format_timestamp(last + chrono::Duration::hours(1), false);
            let mut m = c
                .messages
                .last()
                .map(|m| m.json.clone())
                .unwrap_or_else(|| json!({"chat_id": c.id(), "sender_type": "user"}));
            let obj = m.as_object_mut().expect("a message is an object");
            obj.insert("id".into(), json!(uuid::Uuid::new_v4().to_string()));
            obj.insert("type".into(), json!("msg"));
            obj.insert("created_at".into(), json!(at));
            obj.insert("message".into(), json!(TEXT));
            obj.insert("is_encrypted".into(), json!(false));
            obj.remove("encrypted_message");
            obj.insert("sensitive_data_purged_at".into(), Value::Null);
            c.messages.push(MessageTruth { json: m, plaintext: Some(TEXT.into()) });
            let chat = c.chat.as_object_mut().expect("a chat is an object");
            chat.insert("is_ended".into(), json!(true));
            chat.insert("ended_at".into(), json!(at));
            chat.insert("updated_at".into(), json!(at));
            let count = chat["message_count"].as_u64().unwrap_or(0) + 1;
            chat.insert("message_count".into(), json!(count));
            changed.insert(c.id().to_string());
        }
        changed
    }
}

/// One chat with everything the API serves about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTruth {
    /// The chat object exactly as served by `owned_chats` (§3.1).
    pub chat: Value,
    /// Its messages exactly as served, ascending by `created_at` (strictly increasing).
    pub messages: Vec<MessageTruth>,
    /// Membership objects (§3.3): the visitor first, then 1–3 users.
    pub memberships: Vec<Value>,
    /// Tag objects `{id, name, created_at}` (0–3).
    pub tags: Vec<Value>,
    /// Visitor variable objects `{key, value}` (0–4).
    pub variables: Vec<Value>,
}

impl ChatTruth {
    /// The chat id.
    pub fn id(&self) -> &str {
        self.chat["id"].as_str().expect("chat id")
    }

    /// The visitor's id (32 hex chars): the `member_id` of the visitor membership.
    pub fn visitor_id(&self) -> &str {
        self.memberships
            .iter()
            .find(|m| m["member_type"] == "visitor")
            .and_then(|m| m["member_id"].as_str())
            .expect("every chat has a visitor membership")
    }

    /// Whether the chat's messages are encrypted.
    pub fn is_encrypted(&self) -> bool {
        self.chat["is_encrypted"] == true
    }

    /// Names of the chat's tags, in the order served.
    pub fn tag_names(&self) -> Vec<&str> {
        self.tags.iter().filter_map(|t| t["name"].as_str()).collect()
    }
}

/// One message as served, plus its plaintext.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageTruth {
    /// The message object exactly as served (§3.2).
    pub json: Value,
    /// The text before encryption (equal to `message` for unencrypted chats); `None` for
    /// join/leave events and purged messages.
    pub plaintext: Option<String>,
}

/// Parses a giosg timestamp: `YYYY-MM-DDTHH:MM:SS[.fff]` with `Z`, with an RFC 3339 offset, or
/// naive (treated as UTC, as giosg.md §1 prescribes).
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").ok().map(|n| n.and_utc())
}

/// Formats `t` the way giosg does (`2023-06-14T10:49:34.406Z`), or in the older naive form
/// without the `Z` when `naive` is set.
pub(crate) fn format_timestamp(t: DateTime<Utc>, naive: bool) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    if !naive {
        s.push('Z');
    }
    s
}
