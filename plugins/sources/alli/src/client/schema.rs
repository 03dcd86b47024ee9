//! What the Alli GraphQL server has, learnt by introspection, and the queries built from it.
//!
//! The onboarding guide (docs/vendors/alli.md §3) shows only `conversations(filter, first)` with
//! `id`, `campaign`, `user` and `chats { edges { node { ... on UserChat … } } }`; everything else
//! the source would like to select (`Conversation.state`, `createdAt`, `modifiedAt`,
//! `lastChatTime`, `pageInfo`, `chats(first:, after:)`, `node(id:)`, `User.name`) is an
//! assumption, and GraphQL refuses a whole document for one unknown field. So the source asks the
//! server first: [`INTROSPECTION`] fetches, in one request, every type the queries use by the
//! name the source assumes (`__type(name:)` under aliases); a type found under another name
//! (followed from its parent's field) is fetched in a further round. [`Schema`] holds the
//! answer and [`Plan`] is what the source can select and how it pages, from which
//! [`Plan::conversations_query`] and [`Plan::chats_query`] build the documents it sends.
//!
//! Fields the server lacks are left out of the documents, their columns are null (listed once
//! in the log, [`Plan::absent_columns`]); capabilities it lacks change how the source pages
//! ([`Paging`]) or, when a conversation's chats cannot be paged at all, make that conversation
//! the dead letter `incomplete`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// The names the source assumes for the types it selects (alli.md §3; `UserChat`, `AgentChat`,
/// `BotChat` are confirmed by the guide, the others follow graphene's Relay naming).
pub const ASSUMED_TYPES: [&str; 15] = [
    "Query",
    "ConversationOrder",
    "ConversationConnection",
    "ConversationEdge",
    "Conversation",
    "PageInfo",
    "Campaign",
    "User",
    "ChatConnection",
    "ChatEdge",
    "Chat",
    "UserChat",
    "AgentChat",
    "BotChat",
    "Agent",
];

/// Type references three wrappers deep (`[Chat!]!` is `NON_NULL(LIST(NON_NULL(Chat)))`).
const TYPE_REF: &str =
    "fragment AlliTypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// The selection of one `__Type`.
const TYPE_FIELDS: &str = "fragment AlliType on __Type { name kind possibleTypes { name } enumValues(includeDeprecated: true) { name } fields(includeDeprecated: true) { name args { name type { ...AlliTypeRef } } type { ...AlliTypeRef } } }";

/// The introspection document for `names`: one `__type(name:)` per name, aliased `t0`, `t1`, ….
pub fn introspection_query(names: &[String]) -> String {
    let mut q = String::from("query AlliIntrospection {\n");
    for (i, n) in names.iter().enumerate() {
        // Names come from the server's own answers or ASSUMED_TYPES: GraphQL names only.
        let safe: String = n.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        q.push_str(&format!("  t{i}: __type(name: \"{safe}\") {{ ...AlliType }}\n"));
    }
    q.push_str("}\n");
    q.push_str(TYPE_FIELDS);
    q.push('\n');
    q.push_str(TYPE_REF);
    q.push('\n');
    q
}

/// The first introspection document: every [`ASSUMED_TYPES`] name.
pub fn introspection() -> String {
    introspection_query(&ASSUMED_TYPES.iter().map(|s| s.to_string()).collect::<Vec<_>>())
}

/// `introspection()` as a constant-like value for docs and tests.
pub static INTROSPECTION: std::sync::LazyLock<String> = std::sync::LazyLock::new(introspection);

/// A type reference: `ID`, `String!`, `[ID]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeRef {
    /// The named type under the wrappers.
    pub name: String,
    /// The reference as written in SDL (`[ID!]!`), for variable declarations.
    pub sdl: String,
}

impl TypeRef {
    /// From an introspection `type { kind name ofType {…} }`.
    pub fn parse(v: &Value) -> Option<TypeRef> {
        let kind = v.get("kind")?.as_str()?;
        match kind {
            "NON_NULL" => {
                let inner = TypeRef::parse(v.get("ofType")?)?;
                Some(TypeRef { sdl: format!("{}!", inner.sdl), name: inner.name })
            }
            "LIST" => {
                let inner = TypeRef::parse(v.get("ofType")?)?;
                Some(TypeRef { sdl: format!("[{}]", inner.sdl), name: inner.name })
            }
            _ => {
                let name = v.get("name")?.as_str()?.to_string();
                Some(TypeRef { sdl: name.clone(), name })
            }
        }
    }

    /// The same type, nullable at the top (a variable's declaration may always be nullable
    /// when it is sent with a value… but not into a non-null position: keep `!` as given).
    fn declaration(&self) -> &str {
        &self.sdl
    }
}

/// One field of an object or interface type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its type.
    pub ty: Option<TypeRef>,
    /// Its arguments by name.
    pub args: BTreeMap<String, TypeRef>,
}

/// One type as introspected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TypeDef {
    /// `OBJECT`, `UNION`, `INTERFACE`, `ENUM`, ….
    pub kind: String,
    /// Fields by name (objects and interfaces).
    pub fields: BTreeMap<String, Field>,
    /// Member types (unions and interfaces).
    pub possible: Vec<String>,
    /// Enum values.
    pub enum_values: Vec<String>,
}

/// The introspected types by name; a name asked for and answered `null` is recorded as absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    types: BTreeMap<String, Option<TypeDef>>,
}

impl Schema {
    /// Adds the answer to an [`introspection_query`] of `names` (its `data`).
    pub fn absorb(&mut self, names: &[String], data: &Value) {
        for (i, name) in names.iter().enumerate() {
            let t = data.get(format!("t{i}")).filter(|t| t.is_object()).map(|t| {
                let fields = t
                    .get("fields")
                    .and_then(Value::as_array)
                    .map(|fs| {
                        fs.iter()
                            .filter_map(|f| {
                                let name = f.get("name")?.as_str()?.to_string();
                                let args = f
                                    .get("args")
                                    .and_then(Value::as_array)
                                    .map(|a| {
                                        a.iter()
                                            .filter_map(|a| {
                                                Some((
                                                    a.get("name")?.as_str()?.to_string(),
                                                    TypeRef::parse(a.get("type")?)?,
                                                ))
                                            })
                                            .collect()
                                    })
                                    .unwrap_or_default();
                                Some((name, Field { ty: f.get("type").and_then(TypeRef::parse), args }))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let names_in = |key: &str| -> Vec<String> {
                    t.get(key)
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|x| x.get("name")?.as_str().map(str::to_string)).collect())
                        .unwrap_or_default()
                };
                TypeDef {
                    kind: t.get("kind").and_then(Value::as_str).unwrap_or_default().to_string(),
                    fields,
                    possible: names_in("possibleTypes"),
                    enum_values: names_in("enumValues"),
                }
            });
            self.types.insert(name.clone(), t);
        }
    }

    /// True when `name` was asked for (found or not).
    pub fn asked(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }

    /// The type called `name`, if the server has it.
    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name).and_then(Option::as_ref)
    }

    /// Field `field` of type `ty`.
    pub fn field(&self, ty: &str, field: &str) -> Option<&Field> {
        self.get(ty)?.fields.get(field)
    }

    /// The named type of `ty.field`.
    pub fn field_type(&self, ty: &str, field: &str) -> Option<String> {
        self.field(ty, field)?.ty.as_ref().map(|t| t.name.clone())
    }
}

/// How a connection is paged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paging {
    /// Relay: `pageInfo { hasNextPage endCursor }` and `after: endCursor`.
    Cursor,
    /// No `pageInfo`, but an `after` argument: `after` = the last node's id (the guide: "after:
    /// ID for pagination"); the pages end with a short (or empty) one.
    LastId,
    /// No way to ask for the next page.
    None,
}

/// The type names the server uses where the source assumed [`ASSUMED_TYPES`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `Query.conversations`' type.
    pub connection: Option<String>,
    /// Its `edges`' type.
    pub edge: Option<String>,
    /// The conversation type (`edges.node`).
    pub conversation: Option<String>,
    /// `ConversationConnection.pageInfo`'s type.
    pub page_info: Option<String>,
    /// `Conversation.campaign`'s type.
    pub campaign: Option<String>,
    /// `Conversation.user`'s type.
    pub user: Option<String>,
    /// `Conversation.chats`' type.
    pub chat_connection: Option<String>,
    /// `ChatConnection.edges`' type.
    pub chat_edge: Option<String>,
    /// `ChatConnection.pageInfo`'s type.
    pub chat_page_info: Option<String>,
    /// The chat union (`ChatEdge.node`).
    pub chat: Option<String>,
    /// `AgentChat.agent`'s type.
    pub agent: Option<String>,
    /// The enum type of `Query.conversations(order:)`.
    pub order: Option<String>,
}

impl Names {
    /// Follows the fields from `Query` through what `schema` has so far.
    pub fn resolve(schema: &Schema) -> Names {
        let f = |ty: &Option<String>, field: &str| ty.as_deref().and_then(|t| schema.field_type(t, field));
        let query = Some("Query".to_string());
        let connection = f(&query, "conversations");
        let edge = f(&connection, "edges");
        let conversation = f(&edge, "node");
        let chat_connection = f(&conversation, "chats");
        let chat_edge = f(&chat_connection, "edges");
        Names {
            page_info: f(&connection, "pageInfo"),
            campaign: f(&conversation, "campaign"),
            user: f(&conversation, "user"),
            chat_page_info: f(&chat_connection, "pageInfo"),
            chat: f(&chat_edge, "node"),
            agent: f(&Some("AgentChat".to_string()), "agent"),
            order: schema.field("Query", "conversations").and_then(|c| c.args.get("order")).map(|t| t.name.clone()),
            connection,
            edge,
            conversation,
            chat_connection,
            chat_edge,
        }
    }

    /// Every type name resolved so far (plus the chat members), for the next round.
    pub fn all(&self, schema: &Schema) -> Vec<String> {
        let mut out: Vec<String> = [
            &self.connection,
            &self.edge,
            &self.conversation,
            &self.page_info,
            &self.campaign,
            &self.user,
            &self.chat_connection,
            &self.chat_edge,
            &self.chat_page_info,
            &self.chat,
            &self.agent,
            &self.order,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        if let Some(chat) = self.chat.as_deref().and_then(|c| schema.get(c)) {
            out.extend(chat.possible.iter().cloned());
        }
        out
    }

    /// Names referenced but not yet asked for.
    pub fn missing(&self, schema: &Schema) -> Vec<String> {
        let set: BTreeSet<String> = self.all(schema).into_iter().filter(|n| !schema.asked(n)).collect();
        set.into_iter().collect()
    }
}

/// The chat kinds the mapping knows, by `__typename` (alli.md §3, confirmed).
pub const CHAT_KINDS: [&str; 3] = ["UserChat", "AgentChat", "BotChat"];

/// Fields of the conversation the source would select, in order.
pub const CONVERSATION_FIELDS: [&str; 5] = ["id", "state", "createdAt", "modifiedAt", "lastChatTime"];
/// Fields of `campaign`.
pub const CAMPAIGN_FIELDS: [&str; 3] = ["id", "name", "description"];
/// Fields of `user`.
pub const USER_FIELDS: [&str; 4] = ["id", "ownUserId", "firstName", "name"];

/// What the source selects and how it pages, for one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The server's type names.
    pub names: Names,
    /// Conversation scalar fields to select (of [`CONVERSATION_FIELDS`]).
    pub conversation_fields: Vec<&'static str>,
    /// `campaign { … }` fields (empty: not selected).
    pub campaign_fields: Vec<&'static str>,
    /// `user { … }` fields (empty: not selected).
    pub user_fields: Vec<&'static str>,
    /// Per chat kind present in the union: its fields to select (of `id message createdAt
    /// chatOptions`, plus `agent` for `AgentChat` when `Agent.name` exists).
    pub chat_fields: Vec<(String, Vec<&'static str>)>,
    /// `conversations(…)` arguments the server has: type per name (`filter`, `order`, `first`,
    /// `after`).
    pub list_args: BTreeMap<String, TypeRef>,
    /// Whether `order: LAST_CHAT_TIME_DESC` can be sent (the listing is then newest last chat
    /// first, and an incremental scan may stop below its floor).
    pub ordered: bool,
    /// How the conversation listing pages.
    pub list_paging: Paging,
    /// `chats(…)` arguments the server has (`first`, `after`).
    pub chat_args: BTreeMap<String, TypeRef>,
    /// How a conversation's chats page past the nested first page (`node(id:)` needed too).
    pub chat_paging: Paging,
    /// `node(id:)`'s `id` argument type, when `Query.node` exists.
    pub node_id: Option<TypeRef>,
    /// What the source cannot do without: an export is impossible (empty when it can run).
    pub missing_required: Vec<String>,
    /// Fields the source would select that the server lacks (`Conversation.lastChatTime`).
    pub absent: Vec<String>,
}

impl Plan {
    /// The plan for `schema` (after [`Names::resolve`] found every type it could).
    pub fn new(schema: &Schema) -> Plan {
        let names = Names::resolve(schema);
        let mut absent = Vec::new();
        let mut missing_required = Vec::new();
        let has = |ty: &Option<String>, field: &str| ty.as_deref().is_some_and(|t| schema.field(t, field).is_some());
        let label =
            |ty: &Option<String>, default: &str, field: &str| format!("{}.{field}", ty.as_deref().unwrap_or(default));
        let pick = |ty: &Option<String>, default: &str, fields: &[&'static str], absent: &mut Vec<String>| {
            let mut out = Vec::new();
            for &f in fields {
                if has(ty, f) {
                    out.push(f);
                } else {
                    absent.push(label(ty, default, f));
                }
            }
            out
        };
        for (ty, default, field) in [
            (&Some("Query".to_string()), "Query", "conversations"),
            (&names.connection, "ConversationConnection", "edges"),
            (&names.edge, "ConversationEdge", "node"),
            (&names.conversation, "Conversation", "id"),
            (&names.conversation, "Conversation", "chats"),
            (&names.chat_connection, "ChatConnection", "edges"),
            (&names.chat_edge, "ChatEdge", "node"),
        ] {
            if !has(ty, field) {
                missing_required.push(label(ty, default, field));
            }
        }
        let conversation_fields = pick(&names.conversation, "Conversation", &CONVERSATION_FIELDS, &mut absent);
        let campaign_fields = if has(&names.conversation, "campaign") {
            pick(&names.campaign, "Campaign", &CAMPAIGN_FIELDS, &mut absent)
        } else {
            absent.push(label(&names.conversation, "Conversation", "campaign"));
            Vec::new()
        };
        let user_fields = if has(&names.conversation, "user") {
            pick(&names.user, "User", &USER_FIELDS, &mut absent)
        } else {
            absent.push(label(&names.conversation, "Conversation", "user"));
            Vec::new()
        };
        let members: Vec<String> =
            names.chat.as_deref().and_then(|c| schema.get(c)).map(|t| t.possible.clone()).unwrap_or_default();
        let mut chat_fields = Vec::new();
        for kind in CHAT_KINDS {
            if !members.iter().any(|m| m == kind) {
                absent.push(format!("{} member {kind}", names.chat.as_deref().unwrap_or("Chat")));
                continue;
            }
            let ty = Some(kind.to_string());
            let mut wanted: Vec<&'static str> = vec!["id", "message", "createdAt"];
            match kind {
                "BotChat" => wanted.push("chatOptions"),
                "AgentChat" => wanted.push("agent"),
                _ => {}
            }
            let mut fields = pick(&ty, kind, &wanted, &mut absent);
            if fields.contains(&"agent") && !has(&names.agent, "name") {
                fields.retain(|f| *f != "agent");
                absent.push(label(&names.agent, "Agent", "name"));
            }
            for need in ["id", "createdAt"] {
                if !fields.contains(&need) {
                    missing_required.push(format!("{kind}.{need}"));
                }
            }
            chat_fields.push((kind.to_string(), fields));
        }
        // A member the mapping does not know (a kind added after alli.md was written) is still
        // selected by what every chat has, so its chats are exported (as `system`, reported
        // `unexpected_shape` by the mapping) rather than arriving as a bare `__typename`.
        for kind in members.iter().filter(|m| !CHAT_KINDS.contains(&m.as_str())) {
            let fields = pick(&Some(kind.clone()), kind, &["id", "message", "createdAt"], &mut Vec::new());
            if !fields.is_empty() {
                chat_fields.push((kind.clone(), fields));
            }
        }
        if chat_fields.is_empty() && names.chat.is_some() {
            missing_required
                .push(format!("{} members UserChat, AgentChat or BotChat", names.chat.as_deref().unwrap_or("Chat")));
        }

        let args_of = |ty: &str, field: &str| -> BTreeMap<String, TypeRef> {
            schema.field(ty, field).map(|f| f.args.clone()).unwrap_or_default()
        };
        let mut list_args = args_of("Query", "conversations");
        list_args.retain(|k, _| ["filter", "order", "first", "after"].contains(&k.as_str()));
        let ordered = list_args.get("order").is_some_and(|t| {
            schema
                .get(&t.name)
                .is_none_or(|e| e.enum_values.is_empty() || e.enum_values.iter().any(|v| v == "LAST_CHAT_TIME_DESC"))
        });
        if !ordered {
            list_args.remove("order");
            absent.push("Query.conversations(order: LAST_CHAT_TIME_DESC)".into());
        }
        let page_info_ok = |pi: &Option<String>| has(pi, "hasNextPage") && has(pi, "endCursor");
        let list_paging = match (
            has(&names.connection, "pageInfo") && page_info_ok(&names.page_info),
            list_args.contains_key("after"),
        ) {
            (true, true) => Paging::Cursor,
            (false, true) => Paging::LastId,
            (_, false) => Paging::None,
        };
        if list_paging != Paging::Cursor {
            absent.push(format!(
                "{}.pageInfo {{ hasNextPage endCursor }}",
                names.connection.as_deref().unwrap_or("ConversationConnection")
            ));
        }
        if !list_args.contains_key("after") {
            missing_required.push("Query.conversations(after:)".into());
        }
        if !list_args.contains_key("first") {
            absent.push("Query.conversations(first:)".into());
        }
        let mut chat_args = names.conversation.as_deref().map(|c| args_of(c, "chats")).unwrap_or_default();
        chat_args.retain(|k, _| ["first", "after"].contains(&k.as_str()));
        let node_id = schema.field("Query", "node").and_then(|f| f.args.get("id").cloned());
        let chat_page_info = has(&names.chat_connection, "pageInfo") && page_info_ok(&names.chat_page_info);
        let chat_ids = chat_fields.iter().all(|(_, f)| f.contains(&"id"));
        let chat_paging = match (node_id.is_some(), chat_args.contains_key("after"), chat_page_info, chat_ids) {
            (true, true, true, _) => Paging::Cursor,
            (true, true, false, true) => Paging::LastId,
            _ => Paging::None,
        };
        if !chat_page_info {
            absent.push(format!(
                "{}.pageInfo {{ hasNextPage endCursor }}",
                names.chat_connection.as_deref().unwrap_or("ChatConnection")
            ));
        }
        for arg in ["first", "after"] {
            if !chat_args.contains_key(arg) {
                absent.push(format!("{}.chats({arg}:)", names.conversation.as_deref().unwrap_or("Conversation")));
            }
        }
        if node_id.is_none() {
            absent.push("Query.node(id:)".into());
        }
        Plan {
            names,
            conversation_fields,
            campaign_fields,
            user_fields,
            chat_fields,
            list_args,
            ordered,
            list_paging,
            chat_args,
            chat_paging,
            node_id,
            missing_required,
            absent,
        }
    }

    /// The plan for the schema the source assumes (alli.md §3, the simulator's SDL): every
    /// field, Relay cursors on both connections, `node(id:)`. Used when the server refuses
    /// introspection.
    pub fn assumed() -> Plan {
        let name = |s: &str| Some(s.to_string());
        let ty = |n: &str, sdl: &str| TypeRef { name: n.to_string(), sdl: sdl.to_string() };
        Plan {
            names: Names {
                connection: name("ConversationConnection"),
                edge: name("ConversationEdge"),
                conversation: name("Conversation"),
                page_info: name("PageInfo"),
                campaign: name("Campaign"),
                user: name("User"),
                chat_connection: name("ChatConnection"),
                chat_edge: name("ChatEdge"),
                chat_page_info: name("PageInfo"),
                chat: name("Chat"),
                agent: name("Agent"),
                order: name("ConversationOrder"),
            },
            conversation_fields: CONVERSATION_FIELDS.to_vec(),
            campaign_fields: CAMPAIGN_FIELDS.to_vec(),
            user_fields: USER_FIELDS.to_vec(),
            chat_fields: vec![
                ("UserChat".into(), vec!["id", "message", "createdAt"]),
                ("AgentChat".into(), vec!["id", "message", "createdAt", "agent"]),
                ("BotChat".into(), vec!["id", "message", "createdAt", "chatOptions"]),
            ],
            list_args: [
                ("after", ty("String", "String")),
                ("filter", ty("ConversationFilterInput", "ConversationFilterInput")),
                ("first", ty("Int", "Int")),
                ("order", ty("ConversationOrder", "ConversationOrder")),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            ordered: true,
            list_paging: Paging::Cursor,
            chat_args: [("after", ty("String", "String")), ("first", ty("Int", "Int"))]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            chat_paging: Paging::Cursor,
            node_id: Some(ty("ID", "ID!")),
            missing_required: Vec::new(),
            absent: Vec::new(),
        }
    }

    /// Whether the plan selects `Conversation.<field>`.
    pub fn selects(&self, field: &str) -> bool {
        self.conversation_fields.contains(&field)
    }

    /// The canonical columns left null (or filled otherwise) because a field is absent, as
    /// `column ← field` lines for the one log warning.
    pub fn absent_columns(&self) -> Vec<String> {
        let conv = self.names.conversation.as_deref().unwrap_or("Conversation");
        let mut out = Vec::new();
        let mut note = |cond: bool, what: String| {
            if cond {
                out.push(what);
            }
        };
        note(!self.selects("state"), format!("conversations.state, is_ended ← {conv}.state"));
        note(!self.selects("createdAt"), format!("conversations.created_at ← {conv}.createdAt"));
        note(
            !self.selects("lastChatTime") && !self.selects("modifiedAt"),
            format!("conversations.updated_at ← {conv}.lastChatTime/modifiedAt (the last chat's time is used)"),
        );
        note(!self.campaign_fields.contains(&"id"), "conversations.channel_id ← campaign.id".into());
        note(!self.user_fields.contains(&"id"), "visitor_id, messages.sender_id ← user.id".into());
        note(
            !self.user_fields.contains(&"name") && !self.user_fields.contains(&"firstName"),
            "visitor_name, messages.sender_name ← user.name/firstName".into(),
        );
        for (kind, fields) in &self.chat_fields {
            note(!fields.contains(&"message"), format!("messages.text ← {kind}.message"));
        }
        if let Some((_, f)) = self.chat_fields.iter().find(|(k, _)| k == "AgentChat") {
            note(!f.contains(&"agent"), "messages.sender_name (agents) ← AgentChat.agent.name".into());
        }
        out
    }

    /// The chats page size asked for (100, Alli's cap), and what a full page holds when
    /// `first` cannot be sent (graphene's default is the same cap).
    pub fn chat_page(&self) -> u32 {
        super::graphql::MAX_PAGE
    }

    fn chats_selection(&self, args: &str) -> String {
        let mut s = format!("chats{args} {{\n");
        if self.chat_paging == Paging::Cursor {
            s.push_str("  pageInfo {\n    hasNextPage\n    endCursor\n  }\n");
        }
        s.push_str("  edges {\n    node {\n      __typename\n");
        for (kind, fields) in &self.chat_fields {
            s.push_str(&format!("      ... on {kind} {{\n"));
            for f in fields {
                if *f == "agent" {
                    s.push_str("        agent {\n          name\n        }\n");
                } else {
                    s.push_str(&format!("        {f}\n"));
                }
            }
            s.push_str("      }\n");
        }
        s.push_str("    }\n  }\n}");
        s
    }

    /// The listing document `AlliConversations`: variables `$filter` (when the server has the
    /// argument), `$first`, `$after`, `$chats` (when `chats(first:)` exists).
    pub fn conversations_query(&self) -> String {
        let mut decls = Vec::new();
        let mut args = Vec::new();
        for (name, ty) in &self.list_args {
            match name.as_str() {
                "order" => args.push("order: LAST_CHAT_TIME_DESC".to_string()),
                n => {
                    decls.push(format!("${n}: {}", nullable(ty.declaration())));
                    args.push(format!("{n}: ${n}"));
                }
            }
        }
        let chat_args = match self.chat_args.get("first") {
            Some(ty) => {
                decls.push(format!("$chats: {}", nullable(ty.declaration())));
                "(first: $chats)".to_string()
            }
            None => String::new(),
        };
        let mut q =
            format!("query AlliConversations({}) {{\n  conversations({}) {{\n", decls.join(", "), args.join(", "));
        if self.list_paging == Paging::Cursor {
            q.push_str("    pageInfo {\n      hasNextPage\n      endCursor\n    }\n");
        }
        q.push_str("    edges {\n      node {\n");
        for f in &self.conversation_fields {
            q.push_str(&format!("        {f}\n"));
        }
        for (name, fields) in [("campaign", &self.campaign_fields), ("user", &self.user_fields)] {
            if !fields.is_empty() {
                q.push_str(&format!("        {name} {{\n"));
                for f in fields {
                    q.push_str(&format!("          {f}\n"));
                }
                q.push_str("        }\n");
            }
        }
        q.push_str(&indent(&self.chats_selection(&chat_args), 8));
        q.push_str("\n      }\n    }\n  }\n}\n");
        q
    }

    /// The next-page document `AlliConversationChats` (`node(id:)`), when chats can be paged.
    pub fn chats_query(&self) -> Option<String> {
        if self.chat_paging == Paging::None {
            return None;
        }
        let id_ty = self.node_id.as_ref()?;
        let conv = self.names.conversation.as_deref().unwrap_or("Conversation");
        let mut decls = vec![format!("$id: {}", id_ty.declaration())];
        let mut args = Vec::new();
        for (name, ty) in &self.chat_args {
            decls.push(format!("${name}: {}", nullable(ty.declaration())));
            args.push(format!("{name}: ${name}"));
        }
        let mut q = format!(
            "query AlliConversationChats({}) {{\n  node(id: $id) {{\n    __typename\n    ... on {conv} {{\n      id\n",
            decls.join(", ")
        );
        q.push_str(&indent(&self.chats_selection(&format!("({})", args.join(", "))), 6));
        q.push_str("\n    }\n  }\n}\n");
        Some(q)
    }
}

/// A variable's declared type, nullable at the top: the source may leave it out (`after` on
/// the first page), and a nullable variable is accepted in a nullable position only — which is
/// every argument the source sends except `node(id:)`.
fn nullable(sdl: &str) -> &str {
    sdl.strip_suffix('!').unwrap_or(sdl)
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines().map(|l| format!("{pad}{l}")).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn named(name: &str) -> Value {
        json!({"kind": "OBJECT", "name": name})
    }
    fn non_null(inner: Value) -> Value {
        json!({"kind": "NON_NULL", "name": null, "ofType": inner})
    }
    fn list(inner: Value) -> Value {
        json!({"kind": "LIST", "name": null, "ofType": inner})
    }

    #[test]
    fn type_refs_render_as_sdl() {
        let t = TypeRef::parse(&non_null(list(non_null(named("ID"))))).unwrap();
        assert_eq!((t.name.as_str(), t.sdl.as_str()), ("ID", "[ID!]!"));
        assert_eq!(nullable("Int!"), "Int");
    }

    #[test]
    fn the_first_document_asks_every_assumed_type() {
        let q = introspection();
        for (i, n) in ASSUMED_TYPES.iter().enumerate() {
            assert!(q.contains(&format!("t{i}: __type(name: \"{n}\")")), "{q}");
        }
        assert!(introspection_query(&["Bad\"name{".into()]).contains("\"Badname\""));
    }
}
