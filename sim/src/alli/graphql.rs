//! The GraphQL side: the SDL of docs/vendors/alli.md §3 ([`SCHEMA_SDL`]), validation of incoming documents
//! against it, and execution against the simulated project with apollo-compiler's resolvers.
//!
//! Connections behave like graphene-django's (which Alli's filter naming shows): offset cursors
//! `base64("arrayconnection:<n>")`, `first`/`last` above 100 refused with a field error instead
//! of being truncated, and at most 100 items when neither is given.

use std::sync::OnceLock;

use apollo_compiler::executable::OperationType;
use apollo_compiler::resolvers::{Execution, FieldError, ObjectValue, ResolveInfo, ResolvedValue};
use apollo_compiler::validation::Valid;
use apollo_compiler::{ExecutableDocument, Schema};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{App, ChatTruth, ConversationTruth, Dataset, UserTruth};

/// The schema of the Alli GraphQL agent API as far as docs/vendors/alli.md §3 documents it (and the
/// assumptions it states), in SDL.
pub const SCHEMA_SDL: &str = include_str!("schema.graphql");

/// graphene-django's default `RELAY_CONNECTION_MAX_LIMIT`.
pub const MAX_LIMIT: i64 = 100;

/// Which schema the GraphQL endpoint serves ([`crate::alli::AlliSim::graphql_schema`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SchemaMode {
    /// [`SCHEMA_SDL`]: everything docs/vendors/alli.md §3 assumes.
    #[default]
    Assumed,
    /// Only what the onboarding guide shows plus Relay basics: no `Conversation.modifiedAt`
    /// or `lastChatTime`, no `User.name`, no `pageInfo` on `ChatConnection`, and
    /// `chats(after: ID, first: Int)` where `after` is a chat's *id* (the guide: "after: ID for
    /// pagination").
    Sparse,
    /// [`SchemaMode::Sparse`] without `chats(after:)` and without `Query.node`: a
    /// conversation's chats cannot be paged past the first 100.
    Unpaged,
    /// [`SCHEMA_SDL`] with a chat kind docs/vendors/alli.md does not list: `CampaignChat`
    /// (`id`, `message`, `createdAt`, `campaignName`) in the `Chat` union, as a real server
    /// may add one.
    ExtraChatKind,
}

impl SchemaMode {
    /// The SDL of this mode.
    pub fn sdl(self) -> String {
        let mut sdl = SCHEMA_SDL.to_string();
        let mut cut = |from: &str, to: &str| {
            assert!(sdl.contains(from), "the Alli SDL has `{from}`");
            sdl = sdl.replace(from, to);
        };
        if self == SchemaMode::ExtraChatKind {
            cut(
                "union Chat = UserChat | AgentChat | BotChat\n",
                "union Chat = UserChat | AgentChat | BotChat | CampaignChat\n\ntype CampaignChat implements Node {\n  id: ID!\n  message: String\n  createdAt: DateTime\n  campaignName: String\n}\n",
            );
            return sdl;
        }
        if self != SchemaMode::Assumed {
            cut("  modifiedAt: DateTime\n  lastChatTime: DateTime\n", "");
            cut("type ChatConnection {\n  pageInfo: PageInfo!\n", "type ChatConnection {\n");
            cut(
                "chats(before: String, after: String, first: Int, last: Int): ChatConnection",
                "chats(after: ID, first: Int): ChatConnection",
            );
            cut("  firstName: String\n  name: String\n", "  firstName: String\n");
        }
        if self == SchemaMode::Unpaged {
            cut("chats(after: ID, first: Int): ChatConnection", "chats(first: Int): ChatConnection");
            cut("  node(id: ID!): Node\n", "");
        }
        sdl
    }
}

/// The parsed and validated [`SCHEMA_SDL`].
pub fn schema() -> &'static Valid<Schema> {
    schema_of(SchemaMode::Assumed)
}

/// The parsed and validated schema of `mode`.
pub fn schema_of(mode: SchemaMode) -> &'static Valid<Schema> {
    static SCHEMAS: OnceLock<[Valid<Schema>; 4]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| {
        [SchemaMode::Assumed, SchemaMode::Sparse, SchemaMode::Unpaged, SchemaMode::ExtraChatKind]
            .map(|m| Schema::parse_and_validate(m.sdl(), "alli.graphql").expect("the Alli SDL is valid"))
    });
    match mode {
        SchemaMode::Assumed => &all[0],
        SchemaMode::Sparse => &all[1],
        SchemaMode::Unpaged => &all[2],
        SchemaMode::ExtraChatKind => &all[3],
    }
}

/// Parses and validates an executable document against [`schema`]; on failure, the GraphQL
/// errors (`{"message", "locations"}`) the server answers with.
pub fn validate_document(query: &str) -> Result<Valid<ExecutableDocument>, Vec<Value>> {
    validate_document_in(SchemaMode::Assumed, query)
}

/// [`validate_document`] against the schema of `mode`.
pub fn validate_document_in(mode: SchemaMode, query: &str) -> Result<Valid<ExecutableDocument>, Vec<Value>> {
    ExecutableDocument::parse_and_validate(schema_of(mode), query, "query.graphql")
        .map_err(|e| e.errors.iter().map(|d| serde_json::to_value(d.to_json()).expect("errors serialize")).collect())
}

/// Executes one request body against the project as the server of `mode` would (also
/// introspection), without the HTTP layer: for tests of the documents a client builds.
pub fn execute(data: &Dataset, mode: SchemaMode, body: &Value) -> Value {
    match answer(data, body, true, mode) {
        Answer::Ok(v) | Answer::Invalid(v) | Answer::BadRequest(v) => v,
        Answer::Unauthorized => json!({"errors": [{"message": "unauthorized"}]}),
    }
}

/// What the server does with one GraphQL request.
pub(crate) enum Answer {
    /// HTTP 200 with this body (`data` and/or `errors`).
    Ok(Value),
    /// The document did not parse or validate: HTTP 200 with these `errors`.
    Invalid(Value),
    /// A query without a valid `AUTHORIZATION` token: HTTP 401.
    Unauthorized,
    /// Not a GraphQL request at all (no `query` string): HTTP 400.
    BadRequest(Value),
}

/// Executes one request body `{"query", "variables", "operationName"}`.
pub(crate) fn answer(data: &Dataset, body: &Value, authorized: bool, mode: SchemaMode) -> Answer {
    let Some(query) = body.get("query").and_then(Value::as_str) else {
        return Answer::BadRequest(json!({"errors": [{"message": "Must provide query string."}]}));
    };
    let doc = match validate_document_in(mode, query) {
        Ok(d) => d,
        Err(errors) => return Answer::Invalid(json!({"errors": errors})),
    };
    let op_name = body.get("operationName").and_then(Value::as_str);
    let operation = match doc.operations.get(op_name) {
        Ok(op) => op,
        Err(e) => return Answer::Invalid(json!({"errors": [{"message": e.message().to_string()}]})),
    };
    if operation.operation_type != OperationType::Mutation && !authorized {
        return Answer::Unauthorized;
    }
    let variables: serde_json_bytes::Map<serde_json_bytes::ByteString, serde_json_bytes::Value> =
        match body.get("variables") {
            None | Some(Value::Null) => Default::default(),
            Some(v @ Value::Object(_)) => match serde_json_bytes::to_value(v) {
                Ok(serde_json_bytes::Value::Object(m)) => m,
                _ => Default::default(),
            },
            Some(_) => return Answer::Ok(json!({"errors": [{"message": "Variables are invalid JSON."}]})),
        };
    let root = match operation.operation_type {
        OperationType::Mutation => Obj::Mutation(data),
        _ => Obj::Query(data),
    };
    let execution = Execution::new(schema_of(mode), &doc)
        .operation(operation)
        .raw_variable_values(&variables)
        .enable_schema_introspection(true);
    match execution.execute_sync(&root) {
        Ok(response) => Answer::Ok(serde_json::to_value(&response).expect("response serializes")),
        Err(e) => Answer::Ok(
            json!({"errors": [serde_json::to_value(e.to_graphql_error(&doc.sources)).expect("error serializes")]}),
        ),
    }
}

/// A slice of a connection: items `start..end` of `total`.
#[derive(Clone, Copy, Debug)]
struct Slice {
    start: usize,
    end: usize,
    has_prev: bool,
    has_next: bool,
}

fn encode_cursor(offset: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("arrayconnection:{offset}"))
}

fn decode_cursor(cursor: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::STANDARD.decode(cursor).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("arrayconnection:")?.parse().ok()
}

fn err(message: impl Into<String>) -> FieldError {
    FieldError { message: message.into() }
}

/// Relay slicing of `total` items by the `before`/`after`/`first`/`last` arguments.
fn slice(total: usize, args: &Value, connection: &str) -> Result<Slice, FieldError> {
    let cursor_arg = |name: &str| -> Result<Option<usize>, FieldError> {
        match args.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(c)) => {
                decode_cursor(c).map(Some).ok_or_else(|| err(format!("Invalid cursor `{c}` for `{name}`.")))
            }
            Some(other) => Err(err(format!("Invalid cursor {other} for `{name}`."))),
        }
    };
    let int_arg = |name: &str| args.get(name).and_then(Value::as_i64);
    let (lo, hi) =
        (cursor_arg("after")?.map_or(0, |a| a + 1).min(total), cursor_arg("before")?.unwrap_or(total).min(total));
    let hi = hi.max(lo);
    let (first, last) = (int_arg("first"), int_arg("last"));
    for (name, v) in [("first", first), ("last", last)] {
        match v {
            Some(n) if n < 0 => return Err(err(format!("Argument \"{name}\" must be a non-negative integer"))),
            Some(n) if n > MAX_LIMIT => {
                return Err(err(format!(
                    "Requesting {n} records on the `{connection}` connection exceeds the `{name}` limit of {MAX_LIMIT} records."
                )));
            }
            _ => {}
        }
    }
    let first = match (first, last) {
        (None, None) => Some(MAX_LIMIT),
        (f, _) => f,
    };
    let mut start = lo;
    let mut end = hi;
    if let Some(f) = first {
        end = end.min(start + f as usize);
    }
    if let Some(l) = last {
        start = start.max(end.saturating_sub(l as usize));
    }
    Ok(Slice { start, end, has_prev: start > lo, has_next: end < hi })
}

fn arguments(info: &ResolveInfo<'_>) -> Value {
    serde_json::to_value(info.arguments()).unwrap_or(Value::Null)
}

fn leaf<'a>(v: Value) -> ResolvedValue<'a> {
    if v.is_null() {
        ResolvedValue::null()
    } else {
        ResolvedValue::leaf(serde_json_bytes::to_value(&v).expect("JSON converts"))
    }
}

/// Every GraphQL object the simulator serves.
enum Obj<'d> {
    Query(&'d Dataset),
    Mutation(&'d Dataset),
    Login(String),
    PageInfo { slice: Slice },
    ConvConnection { data: &'d Dataset, items: Vec<usize>, slice: Slice },
    ConvEdge { data: &'d Dataset, idx: usize, offset: usize },
    Conversation { data: &'d Dataset, idx: usize },
    CampaignConnection { apps: &'d [App], slice: Slice },
    CampaignEdge { app: &'d App, offset: usize },
    Campaign(&'d App),
    UserConnection { users: Vec<&'d UserTruth>, slice: Slice },
    UserEdge { user: &'d UserTruth, offset: usize },
    User(&'d UserTruth),
    UserVariables,
    Agent(&'d str),
    ChatConnection { conv: &'d ConversationTruth, slice: Slice },
    ChatEdge { chat: &'d ChatTruth, offset: usize },
    Chat(&'d ChatTruth),
}

impl<'d> Obj<'d> {
    fn boxed(self) -> ResolvedValue<'d> {
        ResolvedValue::Object(Box::new(self))
    }
}

fn distinct_users(data: &Dataset) -> Vec<&UserTruth> {
    let mut seen = std::collections::HashSet::new();
    data.conversations.iter().map(|c| &c.user).filter(|u| seen.insert(u.id.as_str())).collect()
}

/// Indices of the conversations matching `filter`, in `order` (default newest last chat first).
fn conversations(data: &Dataset, args: &Value) -> Vec<usize> {
    let filter = args.get("filter").cloned().unwrap_or(Value::Null);
    let ids = |name: &str| -> Option<Vec<String>> {
        filter
            .get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
    };
    let campaigns = ids("campaignIds");
    let users = ids("userIds");
    let state = filter.get("state").and_then(Value::as_str).map(str::to_string);
    let search = filter.get("searchTerm").and_then(Value::as_str).map(str::to_lowercase);
    let start_gte = filter.get("startAt_Gte").and_then(Value::as_i64);
    let mut out: Vec<usize> = data
        .conversations
        .iter()
        .enumerate()
        .filter(|(_, c)| campaigns.as_ref().is_none_or(|ids| ids.contains(&data.apps[c.app].id)))
        .filter(|(_, c)| users.as_ref().is_none_or(|ids| ids.contains(&c.user.id)))
        .filter(|(_, c)| state.as_ref().is_none_or(|s| *s == c.state))
        .filter(|(_, c)| search.as_ref().is_none_or(|s| c.user.full_name().to_lowercase().contains(s.as_str())))
        .filter(|(_, c)| start_gte.is_none_or(|t| c.created_at_ms >= t))
        .map(|(i, _)| i)
        .collect();
    let order = args.get("order").and_then(Value::as_str).unwrap_or("LAST_CHAT_TIME_DESC");
    let c = |i: &usize| &data.conversations[*i];
    match order {
        "CREATED_AT_ASC" => out.sort_by_key(|i| (c(i).created_at_ms, *i)),
        "CREATED_AT_DESC" => out.sort_by_key(|i| std::cmp::Reverse((c(i).created_at_ms, *i))),
        "MODIFIED_AT_ASC" => out.sort_by_key(|i| (c(i).modified_at_ms(), *i)),
        "MODIFIED_AT_DESC" => out.sort_by_key(|i| std::cmp::Reverse((c(i).modified_at_ms(), *i))),
        "LAST_CHAT_TIME_ASC" => out.sort_by_key(|i| (c(i).sort_key(), *i)),
        "CAMPAIGN_NAME_ASC" => out.sort_by_key(|i| (data.apps[c(i).app].name.clone(), *i)),
        "CAMPAIGN_NAME_DESC" => out.sort_by_key(|i| std::cmp::Reverse((data.apps[c(i).app].name.clone(), *i))),
        _ => out.sort_by_key(|i| std::cmp::Reverse((c(i).sort_key(), *i))),
    }
    out
}

impl ObjectValue for Obj<'_> {
    fn type_name(&self) -> &str {
        match self {
            Obj::Query(_) => "Query",
            Obj::Mutation(_) => "Mutation",
            Obj::Login(_) => "LoginPayload",
            Obj::PageInfo { .. } => "PageInfo",
            Obj::ConvConnection { .. } => "ConversationConnection",
            Obj::ConvEdge { .. } => "ConversationEdge",
            Obj::Conversation { .. } => "Conversation",
            Obj::CampaignConnection { .. } => "CampaignConnection",
            Obj::CampaignEdge { .. } => "CampaignEdge",
            Obj::Campaign(_) => "Campaign",
            Obj::UserConnection { .. } => "UserConnection",
            Obj::UserEdge { .. } => "UserEdge",
            Obj::User(_) => "User",
            Obj::UserVariables => "UserVariableConnection",
            Obj::Agent(_) => "Agent",
            Obj::ChatConnection { .. } => "ChatConnection",
            Obj::ChatEdge { .. } => "ChatEdge",
            Obj::Chat(c) => c.sender.typename(),
        }
    }

    fn resolve_field<'a>(&'a self, info: &'a ResolveInfo<'a>) -> Result<ResolvedValue<'a>, FieldError> {
        let field = info.field_name();
        let args = arguments(info);
        Ok(match (self, field) {
            (Obj::Mutation(data), "login") => {
                let email = args.get("email").and_then(Value::as_str).unwrap_or_default();
                let password = args.get("password").and_then(Value::as_str).unwrap_or_default();
                if email.eq_ignore_ascii_case(&data.email) && password == data.password {
                    Obj::Login(data.token.clone()).boxed()
                } else {
                    return Err(err("Please enter a correct email and password."));
                }
            }
            (Obj::Login(token), "token") => leaf(json!(token)),
            (Obj::Query(data), "conversations") => {
                let items = conversations(data, &args);
                let slice = slice(items.len(), &args, "conversations")?;
                Obj::ConvConnection { data, items, slice }.boxed()
            }
            (Obj::Query(data), "campaigns") => {
                Obj::CampaignConnection { apps: &data.apps, slice: slice(data.apps.len(), &args, "campaigns")? }.boxed()
            }
            (Obj::Query(data), "users") => {
                let users = distinct_users(data);
                let slice = slice(users.len(), &args, "users")?;
                Obj::UserConnection { users, slice }.boxed()
            }
            (Obj::Query(data), "node") => {
                let id = args.get("id").and_then(Value::as_str).unwrap_or_default();
                if let Some(idx) = data.conversations.iter().position(|c| c.id == id) {
                    Obj::Conversation { data, idx }.boxed()
                } else if let Some(app) = data.apps.iter().find(|a| a.id == id) {
                    Obj::Campaign(app).boxed()
                } else if let Some(user) = data.conversations.iter().map(|c| &c.user).find(|u| u.id == id) {
                    Obj::User(user).boxed()
                } else if let Some(chat) = data.conversations.iter().flat_map(|c| &c.chats).find(|m| m.id == id) {
                    Obj::Chat(chat).boxed()
                } else {
                    ResolvedValue::null()
                }
            }
            (Obj::PageInfo { slice }, _) => match field {
                "hasNextPage" => leaf(json!(slice.has_next)),
                "hasPreviousPage" => leaf(json!(slice.has_prev)),
                "startCursor" => {
                    leaf(if slice.end > slice.start { json!(encode_cursor(slice.start)) } else { Value::Null })
                }
                "endCursor" => {
                    leaf(if slice.end > slice.start { json!(encode_cursor(slice.end - 1)) } else { Value::Null })
                }
                _ => return Err(self.unknown_field_error(info)),
            },
            (Obj::ConvConnection { slice, .. }, "pageInfo")
            | (Obj::CampaignConnection { slice, .. }, "pageInfo")
            | (Obj::UserConnection { slice, .. }, "pageInfo")
            | (Obj::ChatConnection { slice, .. }, "pageInfo") => Obj::PageInfo { slice: *slice }.boxed(),
            (Obj::ConvConnection { data, items, slice }, "edges") => ResolvedValue::list(
                (slice.start..slice.end).map(move |offset| Obj::ConvEdge { data, idx: items[offset], offset }.boxed()),
            ),
            (Obj::CampaignConnection { apps, slice }, "edges") => ResolvedValue::list(
                (slice.start..slice.end).map(move |offset| Obj::CampaignEdge { app: &apps[offset], offset }.boxed()),
            ),
            (Obj::UserConnection { users, slice }, "edges") => ResolvedValue::list(
                (slice.start..slice.end).map(move |offset| Obj::UserEdge { user: users[offset], offset }.boxed()),
            ),
            (Obj::ChatConnection { conv, slice }, "edges") => ResolvedValue::list(
                (slice.start..slice.end).map(move |offset| Obj::ChatEdge { chat: &conv.chats[offset], offset }.boxed()),
            ),
            (Obj::ConvEdge { offset, .. }, "cursor")
            | (Obj::CampaignEdge { offset, .. }, "cursor")
            | (Obj::UserEdge { offset, .. }, "cursor")
            | (Obj::ChatEdge { offset, .. }, "cursor") => leaf(json!(encode_cursor(*offset))),
            (Obj::ConvEdge { data, idx, .. }, "node") => Obj::Conversation { data, idx: *idx }.boxed(),
            (Obj::CampaignEdge { app, .. }, "node") => Obj::Campaign(app).boxed(),
            (Obj::UserEdge { user, .. }, "node") => Obj::User(user).boxed(),
            (Obj::ChatEdge { chat, .. }, "node") => Obj::Chat(chat).boxed(),
            (Obj::Conversation { data, idx }, _) => {
                let c = &data.conversations[*idx];
                match field {
                    "id" => leaf(json!(c.id)),
                    "state" => leaf(json!(c.state)),
                    "createdAt" => leaf(json!(c.created_at_ms)),
                    "modifiedAt" => leaf(json!(c.modified_at_ms())),
                    "lastChatTime" => leaf(json!(c.last_chat_time_ms())),
                    "campaign" => Obj::Campaign(&data.apps[c.app]).boxed(),
                    "user" => Obj::User(&c.user).boxed(),
                    "chats" => {
                        // `after` given as a chat's id (the sparse schema's `after: ID`): the
                        // chats after that one.
                        let mut args = args.clone();
                        if let Some(pos) = args
                            .get("after")
                            .and_then(Value::as_str)
                            .and_then(|after| c.chats.iter().position(|m| m.id == after))
                        {
                            args["after"] = json!(encode_cursor(pos));
                        }
                        Obj::ChatConnection { conv: c, slice: slice(c.chats.len(), &args, "chats")? }.boxed()
                    }
                    _ => return Err(self.unknown_field_error(info)),
                }
            }
            (Obj::Campaign(app), _) => match field {
                "id" => leaf(json!(app.id)),
                "name" => leaf(json!(app.name)),
                "description" => leaf(json!(app.description)),
                _ => return Err(self.unknown_field_error(info)),
            },
            (Obj::User(u), _) => match field {
                "id" => leaf(json!(u.id)),
                "ownUserId" => leaf(json!(u.own_user_id)),
                "firstName" => leaf(json!(u.first_name)),
                "name" => leaf(json!(u.full_name())),
                "online" => leaf(json!(false)),
                "variables" => Obj::UserVariables.boxed(),
                _ => return Err(self.unknown_field_error(info)),
            },
            (Obj::UserVariables, "edges") => ResolvedValue::list(std::iter::empty()),
            (Obj::Agent(name), "name") => leaf(json!(name)),
            (Obj::Chat(chat), _) => match field {
                "id" => leaf(json!(chat.id)),
                "message" => leaf(json!(chat.graphql_message())),
                "createdAt" => leaf(json!(chat.timestamp_ms)),
                "agent" => match &chat.agent_name {
                    Some(name) => Obj::Agent(name).boxed(),
                    None => ResolvedValue::null(),
                },
                "chatOptions" => ResolvedValue::list(chat.chat_options.iter().map(|o| leaf(json!(o)))),
                "campaignName" => leaf(json!("Spring onboarding")),
                _ => return Err(self.unknown_field_error(info)),
            },
            _ => return Err(self.unknown_field_error(info)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alli::{SimConfig, generate};

    #[test]
    fn invalid_documents_are_refused_with_errors() {
        assert!(validate_document("{ conversations(first: 1) { edges { node { id } } } }").is_ok());
        let errors = validate_document("{ conversations(first: 1) { edges { node { id nope } } } }").unwrap_err();
        assert!(errors[0]["message"].as_str().unwrap().contains("nope"), "{errors:?}");
        assert!(
            validate_document("{ conversations { edges { node { chats { edges { node { message } } } } } } }").is_err(),
            "a union needs fragments"
        );
        assert!(validate_document("query {").is_err());
    }

    #[test]
    fn paging_and_limits() {
        let data = generate(&SimConfig::small(5));
        let q = json!({"query": "query($a: String) { conversations(first: 3, after: $a) { pageInfo { hasNextPage endCursor } edges { node { id } } } }"});
        let Answer::Ok(page) = answer(&data, &q, true, SchemaMode::Assumed) else { panic!("not ok") };
        assert_eq!(page["data"]["conversations"]["edges"].as_array().unwrap().len(), 3);
        assert_eq!(page["data"]["conversations"]["pageInfo"]["hasNextPage"], true);
        let too_many = json!({"query": "{ conversations(first: 101) { edges { node { id } } } }"});
        let Answer::Ok(body) = answer(&data, &too_many, true, SchemaMode::Assumed) else { panic!("not ok") };
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("exceeds the `first` limit"), "{body}");
        assert!(matches!(answer(&data, &too_many, false, SchemaMode::Assumed), Answer::Unauthorized));
        let login = json!({"query": "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }", "variables": {"e": data.email, "p": "wrong"}});
        let Answer::Ok(body) = answer(&data, &login, false, SchemaMode::Assumed) else { panic!("not ok") };
        assert!(body["data"]["login"].is_null() && body["errors"].is_array(), "{body}");
    }
}
