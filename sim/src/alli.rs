//! Alli (Allganize) API simulator: a deterministic synthetic project ([`generate`]) served by
//! one HTTP server ([`AlliSim`]) on both of Alli's surfaces (docs/vendors/alli.md):
//!
//! * **REST webapi v2** — `GET /webapi/v2/conversations` (keyset cursor, newest last chat first,
//!   `pageSize` 1–50, `startedAt`/`endAt`/`llmAppId`/`categoryId` filters, each conversation
//!   embedding only its latest 20 chats) and `GET /webapi/v2/conversations/{id}/chats` (`pageNo`,
//!   100 per page, ascending, `totalCount`), authenticated by the `API-KEY` header.
//! * **GraphQL agent API** — `POST /d/graphql/`: every incoming document is parsed and validated
//!   against [`SCHEMA_SDL`] (the schema of docs/vendors/alli.md §3 written out as SDL) with apollo-compiler and
//!   answered with GraphQL `errors` when it does not validate; valid ones are executed against the
//!   same project (`login` mutation, Relay `conversations` with nested `chats` connections capped
//!   at 100 per page like graphene-django, `node(id:)`, `campaigns`, `users`). Queries need the
//!   `AUTHORIZATION` header with the token `login` returned.
//!
//! The dataset is the ground truth: every conversation and chat with the plain text a client
//! should extract. Bot chats are served as Draft.js JSON on GraphQL, and as either plain text or
//! Draft.js on REST, so both surfaces must agree after normalization. Some conversations are
//! longer than one chats page (100), one has no chat at all.

mod generate;
mod graphql;
mod server;

use std::collections::BTreeMap;

use serde_json::{Value, json};

pub use generate::generate;
pub use graphql::{SCHEMA_SDL, SchemaMode, execute, schema, schema_of, validate_document, validate_document_in};
pub use server::AlliSim;

/// Creation time of the first generated conversation (epoch ms): 2026-01-05T07:00:00Z.
pub const EPOCH_MS: i64 = 1_767_596_400_000;

/// What to generate. Everything derives from `seed`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimConfig {
    /// Seed of the deterministic generator.
    pub seed: u64,
    /// Number of ordinary conversations (0..=`max_chats` chats each).
    pub conversations: usize,
    /// Upper bound on chats of an ordinary conversation.
    pub max_chats: usize,
    /// Chat counts of extra long conversations, spread among the others (e.g. `[100, 101, 250]`
    /// for page-boundary cases of the 100-per-page chats endpoint).
    pub long_conversations: Vec<usize>,
    /// The project's API key (REST `API-KEY` header).
    pub api_key: String,
    /// The agent's login email (GraphQL `login`).
    pub email: String,
    /// The agent's password (GraphQL `login`).
    pub password: String,
}

impl SimConfig {
    /// The `pipe demo` project: seed 42, 200 conversations of at most 40 chats, plus long ones
    /// of 120 and 260 chats.
    pub fn demo() -> Self {
        SimConfig {
            seed: 42,
            conversations: 200,
            max_chats: 40,
            long_conversations: vec![120, 260],
            api_key: "alli-demo-api-key-5f0c8e2a9b7d4e61".into(),
            email: "agent@demo.alli.example".into(),
            password: "demo-password-3c9f".into(),
        }
    }

    /// A small project for tests: `conversations` ordinary conversations of at most 24 chats,
    /// plus conversations of exactly 100, 101 and 250 chats.
    pub fn small(conversations: usize) -> Self {
        SimConfig { seed: 7, conversations, max_chats: 24, long_conversations: vec![100, 101, 250], ..Self::demo() }
    }
}

/// Who sent a chat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// The end user (`USER`, `UserChat`).
    User,
    /// Alli itself (`BOT`, `BotChat`).
    Bot,
    /// A human agent (`AGENT`, `AgentChat`).
    Agent,
    /// A kind docs/vendors/alli.md does not list (`CAMPAIGN`, `CampaignChat`): a proactive
    /// campaign message, as a real account may add one day. Never generated; put in by
    /// [`Dataset::with_unknown_senders`] (GraphQL serves it under
    /// [`SchemaMode::ExtraChatKind`] only).
    Campaign,
}

impl Sender {
    /// The REST `sender` value.
    pub fn rest(self) -> &'static str {
        match self {
            Sender::User => "USER",
            Sender::Bot => "BOT",
            Sender::Agent => "AGENT",
            Sender::Campaign => "CAMPAIGN",
        }
    }
    /// The GraphQL `__typename`.
    pub fn typename(self) -> &'static str {
        match self {
            Sender::User => "UserChat",
            Sender::Bot => "BotChat",
            Sender::Agent => "AgentChat",
            Sender::Campaign => "CampaignChat",
        }
    }
    /// The canonical `sender_role` (docs/design.md §3.1; an unknown kind's fallback is
    /// `system`, §6 `unexpected_shape`).
    pub fn role(self) -> &'static str {
        match self {
            Sender::User => "visitor",
            Sender::Bot => "bot",
            Sender::Agent => "agent",
            Sender::Campaign => "system",
        }
    }
}

/// An LLM app (REST `llmApp`), which is also the conversation's campaign on GraphQL.
#[derive(Clone, Debug, PartialEq)]
pub struct App {
    /// Relay global id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// An end user.
#[derive(Clone, Debug, PartialEq)]
pub struct UserTruth {
    /// Alli user id (REST `userId`, GraphQL `id`).
    pub id: String,
    /// The integrator's id (`ownUserId`).
    pub own_user_id: String,
    /// First name.
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
}

impl UserTruth {
    /// "First Last", trimmed.
    pub fn full_name(&self) -> String {
        format!("{} {}", self.first_name, self.last_name).trim().to_string()
    }
}

/// One chat (message) of a conversation.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatTruth {
    /// Relay global id (`Chat:<hex>`).
    pub id: String,
    /// Sender kind.
    pub sender: Sender,
    /// The plain text a client must extract (Draft.js blocks joined with `\n`).
    pub text: String,
    /// Whether REST serves `message` as Draft.js JSON (GraphQL always does for bot chats).
    pub rest_draftjs: bool,
    /// Epoch milliseconds; strictly increasing within a conversation.
    pub timestamp_ms: i64,
    /// RAG citations (REST), as served.
    pub citations: Vec<Value>,
    /// End-user thumbs feedback.
    pub rating: Option<bool>,
    /// Agent feedback.
    pub agent_rating: Option<bool>,
    /// Agent's name, for agent chats.
    pub agent_name: Option<String>,
    /// Button labels offered with a bot chat (GraphQL `chatOptions`).
    pub chat_options: Vec<String>,
    /// REST `type` (`llm` on LLM answers), kept in `raw` by clients.
    pub kind: Option<String>,
}

impl ChatTruth {
    /// `text` as Draft.js raw JSON: one block per line.
    pub fn draftjs(&self) -> String {
        draftjs(&self.text)
    }

    /// The `message` field as REST serves it.
    pub fn rest_message(&self) -> String {
        if self.rest_draftjs { self.draftjs() } else { self.text.clone() }
    }

    /// The `message` field as GraphQL serves it (bot chats in Draft.js).
    pub fn graphql_message(&self) -> String {
        if self.sender == Sender::Bot { self.draftjs() } else { self.text.clone() }
    }

    /// The chat object of the REST API.
    pub fn rest_json(&self) -> Value {
        let mut v = json!({
            "id": self.id,
            "sender": self.sender.rest(),
            "message": self.rest_message(),
            "timestamp": self.timestamp_ms,
            "citations": self.citations,
            "rating": self.rating,
            "agentRating": self.agent_rating,
        });
        if let Some(k) = &self.kind {
            v["type"] = json!(k);
        }
        v
    }
}

/// Draft.js raw content of a plain text: one unstyled block per line.
pub fn draftjs(text: &str) -> String {
    let blocks: Vec<Value> = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| {
            json!({"key": format!("b{i:04x}"), "text": line, "type": "unstyled", "depth": 0, "inlineStyleRanges": [], "entityRanges": [], "data": {}})
        })
        .collect();
    json!({"blocks": blocks, "entityMap": {}}).to_string()
}

/// One conversation with everything either API serves about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversationTruth {
    /// Relay global id (`Conversation:<hex>`).
    pub id: String,
    /// Title.
    pub title: String,
    /// The end user.
    pub user: UserTruth,
    /// Epoch ms.
    pub created_at_ms: i64,
    /// GraphQL `state` (`END_BY_USER`, `WAIT_USER_ANSWER`, ...).
    pub state: String,
    /// Category names.
    pub categories: Vec<String>,
    /// Agent memo.
    pub memo: String,
    /// Index into [`Dataset::apps`].
    pub app: usize,
    /// Conversation variables (REST `variables`, only those requested).
    pub variables: BTreeMap<String, String>,
    /// Chats, ascending by time.
    pub chats: Vec<ChatTruth>,
}

/// GraphQL states that mean the conversation is over.
pub const ENDED_STATES: [&str; 3] = ["END_OF_CHATBOT", "END_BY_AGENT", "END_BY_USER"];

impl ConversationTruth {
    /// Time of the last chat (epoch ms), if any.
    pub fn last_chat_time_ms(&self) -> Option<i64> {
        self.chats.last().map(|c| c.timestamp_ms)
    }
    /// The listing order key: last chat time, else creation time.
    pub fn sort_key(&self) -> i64 {
        self.last_chat_time_ms().unwrap_or(self.created_at_ms)
    }
    /// Whether the conversation has ended (REST `isEnd`).
    pub fn is_end(&self) -> bool {
        ENDED_STATES.contains(&self.state.as_str())
    }
    /// GraphQL `modifiedAt` (epoch ms): the last chat, one second later for ended conversations.
    pub fn modified_at_ms(&self) -> i64 {
        self.sort_key() + if self.is_end() { 1_000 } else { 0 }
    }
}

/// The generated ground truth, shared by the server and the tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// REST API key the server accepts.
    pub api_key: String,
    /// GraphQL login email.
    pub email: String,
    /// GraphQL login password.
    pub password: String,
    /// The token `login` hands out (and the only one GraphQL queries accept).
    pub token: String,
    /// LLM apps / campaigns.
    pub apps: Vec<App>,
    /// Category id → name.
    pub categories: Vec<(String, String)>,
    /// Conversations in creation order.
    pub conversations: Vec<ConversationTruth>,
}

impl Dataset {
    /// The conversation with this id.
    pub fn conversation(&self, id: &str) -> Option<&ConversationTruth> {
        self.conversations.iter().find(|c| c.id == id)
    }

    /// Total chats over all conversations.
    pub fn chat_count(&self) -> usize {
        self.conversations.iter().map(|c| c.chats.len()).sum()
    }

    /// The ground truth as `(conversation_id, message_id, sender_role, text)` rows.
    pub fn message_rows(&self) -> Vec<(String, String, String, String)> {
        self.conversations
            .iter()
            .flat_map(|c| {
                c.chats.iter().map(move |m| (c.id.clone(), m.id.clone(), m.sender.role().to_string(), m.text.clone()))
            })
            .collect()
    }

    /// This project with every `every`-th chat (counted over all conversations, from the
    /// second) of a sender kind the vendor notes do not list ([`Sender::Campaign`]), as plain
    /// text; also the `(conversation_id, chat_id)` of those chats.
    pub fn with_unknown_senders(&self, every: usize) -> (Dataset, Vec<(String, String)>) {
        let mut d = self.clone();
        let mut changed = Vec::new();
        let mut n = 0usize;
        for c in &mut d.conversations {
            for chat in &mut c.chats {
                n += 1;
                if n.is_multiple_of(every.max(1)) {
                    chat.sender = Sender::Campaign;
                    chat.rest_draftjs = false;
                    chat.agent_name = None;
                    chat.chat_options.clear();
                    changed.push((c.id.clone(), chat.id.clone()));
                }
            }
        }
        (d, changed)
    }

    /// The conversation object of the REST API; `embed` = how many of the latest chats it
    /// carries (the real API embeds 20).
    pub fn rest_conversation(&self, c: &ConversationTruth, embed: usize, variables: &[String]) -> Value {
        let app = &self.apps[c.app];
        let start = c.chats.len().saturating_sub(embed);
        let vars: serde_json::Map<String, Value> =
            c.variables.iter().filter(|(k, _)| variables.contains(k)).map(|(k, v)| (k.clone(), json!(v))).collect();
        json!({
            "id": c.id,
            "title": c.title,
            "user": {"userId": c.user.id, "firstName": c.user.first_name, "lastName": c.user.last_name},
            "createdAt": c.created_at_ms,
            "lastChatTime": c.last_chat_time_ms(),
            "isEnd": c.is_end(),
            "categories": c.categories,
            "memo": c.memo,
            "chats": c.chats[start..].iter().map(ChatTruth::rest_json).collect::<Vec<_>>(),
            "chatCount": c.chats.len(),
            "llmApp": {"id": app.id, "name": app.name, "description": app.description},
            "variables": vars,
        })
    }
}
