//! The GraphQL agent API (`POST /d/graphql/`): the `login` mutation, an introspection of the
//! types the source selects ([`super::schema`]), Relay paging of `conversations` with their
//! nested `chats`, and `node(id:)` for conversations with more chats than one nested page
//! (docs/vendors/alli.md §3).
//!
//! The documents the source sends are built from what the server has ([`Plan`]): fields it
//! lacks are not selected (their columns are null, listed once in the log), and the paging
//! follows what it offers (`pageInfo` cursors, else `after` = the last node's id). A
//! conversation whose chats cannot be paged past the nested first page is exported with what
//! arrived and dead-lettered `incomplete`. When the server refuses introspection, the source
//! sends the documents of the assumed schema ([`Plan::assumed`]). GraphQL `errors` in a 200
//! response are errors, never empty data.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::PageGuard;
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::schema::{self, Names, Paging, Plan, Schema};
use crate::mapping::Bundle;
use crate::{AlliConfig, Api, VENDOR};

/// Chats per nested page, and the most any Alli connection serves at once (graphene-django's
/// `RELAY_CONNECTION_MAX_LIMIT`).
pub const MAX_PAGE: u32 = 100;

/// The login mutation (alli.md §3.1).
pub const LOGIN: &str = "mutation AlliLogin($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    token
  }
}";

/// Every document the plugin sends to a server with the assumed schema (alli.md §3), with its
/// operation name: the login, the introspection, and the two queries of [`Plan::assumed`].
pub fn documents() -> Vec<(&'static str, String)> {
    let plan = Plan::assumed();
    vec![
        ("AlliLogin", LOGIN.to_string()),
        ("AlliIntrospection", schema::introspection()),
        ("AlliConversations", plan.conversations_query()),
        ("AlliConversationChats", plan.chats_query().expect("the assumed schema pages chats")),
    ]
}

/// Introspection rounds at most (one when every assumed type name is right).
const INTROSPECTION_ROUNDS: usize = 6;

/// A logged-in client for one Alli account.
#[derive(Clone)]
pub struct GraphqlClient {
    http: HttpClient,
    url: String,
    page_size: u32,
    filter: Value,
    /// What to select and how to page, with the documents built from it.
    plan: Arc<Built>,
}

/// A plan and its two documents.
struct Built {
    plan: Plan,
    conversations: String,
    chats: Option<String>,
}

impl Built {
    fn new(plan: Plan) -> Built {
        Built { conversations: plan.conversations_query(), chats: plan.chats_query(), plan }
    }
}

/// The distinct messages of GraphQL `errors`, the first three, for one error line.
fn messages(errors: &[Value]) -> String {
    let mut msgs: Vec<String> = Vec::new();
    for e in errors {
        let m = e.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| e.to_string());
        if !msgs.contains(&m) {
            msgs.push(m);
        }
    }
    let more = msgs.len().saturating_sub(3);
    msgs.truncate(3);
    let mut out = msgs.join("; ");
    if more > 0 {
        out.push_str(&format!(" (and {more} more)"));
    }
    out
}

/// The `data` of a GraphQL response; its `errors` (even beside data) fail the call.
fn data_of(http: &HttpClient, body: Value, operation: &str) -> Result<Value> {
    if let Some(Value::Array(errors)) = body.get("errors")
        && !errors.is_empty()
    {
        return Err(PluginError::Protocol {
            vendor: VENDOR.into(),
            message: http.scrub(&format!("GraphQL errors in {operation}: {}", messages(errors))),
        });
    }
    match body.get("data") {
        Some(d) if d.is_object() => Ok(d.clone()),
        _ => Err(PluginError::Protocol {
            vendor: VENDOR.into(),
            message: format!("no `data` in the GraphQL response to {operation}"),
        }),
    }
}

impl GraphqlClient {
    /// Logs in, introspects the server and returns a client whose documents select only what
    /// the server has. Fields it lacks are logged once (warn) with the columns they leave null.
    ///
    /// Errors: as [`Self::login`]; [`PluginError::Protocol`] when the server lacks something no
    /// export can do without (the message lists it: `Query.conversations`, the chats' `id` or
    /// `createdAt`, paging the listing), or lacks the `filter` argument a configured
    /// `campaign_ids`/`state` needs.
    pub async fn connect(cfg: &AlliConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let mut client = Self::login(cfg, metrics).await?;
        let Some(schema) = client.introspect().await? else {
            tracing::warn!(
                vendor = VENDOR,
                "the GraphQL server refused introspection: sending the queries of the assumed schema (docs/vendors/alli.md §3); run `pipe validate --check` to see what the server accepts"
            );
            return Ok(client);
        };
        let plan = Plan::new(&schema);
        if !plan.missing_required.is_empty() {
            return Err(PluginError::Protocol {
                vendor: VENDOR.into(),
                message: format!(
                    "the GraphQL schema lacks what an export needs: {} (run `pipe validate --check`)",
                    plan.missing_required.join(", ")
                ),
            });
        }
        if !client.filter.as_object().is_none_or(|f| f.is_empty()) && !plan.list_args.contains_key("filter") {
            return Err(PluginError::Protocol {
                vendor: VENDOR.into(),
                message: "`campaign_ids`/`state` need `conversations(filter:)`, which the GraphQL schema lacks".into(),
            });
        }
        let columns = plan.absent_columns();
        if !plan.absent.is_empty() {
            tracing::warn!(
                vendor = VENDOR,
                "the GraphQL schema lacks {}; not selected{}{}",
                plan.absent.join(", "),
                if columns.is_empty() {
                    String::new()
                } else {
                    format!("; null or filled otherwise: {}", columns.join("; "))
                },
                match plan.chat_paging {
                    Paging::Cursor => String::new(),
                    Paging::LastId => "; chats are paged with `after` = the last chat's id".into(),
                    Paging::None => format!(
                        "; a conversation's chats cannot be paged past the first {}: longer conversations are dead-lettered `incomplete`",
                        plan.chat_page()
                    ),
                }
            );
        }
        client.plan = Arc::new(Built::new(plan));
        Ok(client)
    }

    /// The introspected schema (every [`schema::ASSUMED_TYPES`] name in one request, then the
    /// names the server uses instead, if any), or `None` when the server refuses introspection
    /// (GraphQL errors, or no `Query` type in the answer).
    ///
    /// Errors: HTTP errors of the requests.
    pub async fn introspect(&self) -> Result<Option<Schema>> {
        let mut schema = Schema::default();
        let mut names: Vec<String> = schema::ASSUMED_TYPES.iter().map(|s| s.to_string()).collect();
        for _ in 0..INTROSPECTION_ROUNDS {
            let body = json!({"query": schema::introspection_query(&names), "operationName": "AlliIntrospection"});
            let answer = self.http.post_json(&self.url, &body).await?;
            let data = match data_of(&self.http, answer, "AlliIntrospection") {
                Ok(d) => d,
                Err(e) => {
                    tracing::debug!(vendor = VENDOR, "introspection refused: {e}");
                    return Ok(None);
                }
            };
            schema.absorb(&names, &data);
            // `__type(name: "Query")` answered null: introspection is off (some servers answer
            // null rather than an error), not a schema without queries.
            if schema.get("Query").is_none() {
                tracing::debug!(vendor = VENDOR, "introspection answered no `Query` type");
                return Ok(None);
            }
            names = Names::resolve(&schema).missing(&schema);
            if names.is_empty() {
                break;
            }
        }
        Ok(Some(schema))
    }

    /// `text` without the token or password.
    pub fn scrub(&self, text: &str) -> String {
        self.http.scrub(text)
    }

    /// This client following `plan` (its documents rebuilt).
    pub fn with_plan(mut self, plan: Plan) -> Self {
        self.plan = Arc::new(Built::new(plan));
        self
    }

    /// The listing document the client sends.
    pub fn conversations_document(&self) -> &str {
        &self.plan.conversations
    }

    /// The plan the client's documents follow.
    pub fn plan(&self) -> &Plan {
        &self.plan.plan
    }

    /// Whether the listing is newest last chat first (`order: LAST_CHAT_TIME_DESC` was sent).
    pub fn ordered(&self) -> bool {
        self.plan.plan.ordered
    }

    /// A listed node's last chat time (µs), for the incremental scan: its `lastChatTime` (else
    /// `createdAt`) when the schema has `lastChatTime`; else the newest `createdAt` of its
    /// nested chats when that page holds every chat; else `None` (the conversation is then
    /// always fetched).
    pub fn listing_time(&self, node: &Value) -> Option<i64> {
        let plan = &self.plan.plan;
        if plan.selects("lastChatTime") {
            return crate::mapping::listing_time(node);
        }
        let page = node.get("chats")?;
        let edges = page.get("edges").and_then(Value::as_array)?;
        let complete = match plan.chat_paging {
            Paging::Cursor => page.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(false),
            _ => edges.len() < plan.chat_page() as usize,
        };
        if !complete {
            return None;
        }
        let newest = edges
            .iter()
            .filter_map(|e| e.pointer("/node/createdAt"))
            .filter_map(|t| crate::mapping::epoch_micros(t).ok().flatten())
            .max();
        newest.or_else(|| if edges.is_empty() { crate::mapping::listing_time(node) } else { None })
    }

    /// Logs in (unless a `token` is configured) and returns a client that sends the token,
    /// with the documents of the assumed schema (no introspection yet).
    ///
    /// Errors: [`PluginError::Auth`] when the login is refused (HTTP 401/403, or GraphQL errors
    /// / no token in the 200 answer to `login`).
    pub async fn login(cfg: &AlliConfig, metrics: Arc<Metrics>) -> Result<Self> {
        let url = format!("{}/d/graphql/", cfg.http.base_url()?);
        let mut base = HeaderMap::new();
        base.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let token = match (&cfg.token, &cfg.email, &cfg.password) {
            (Some(t), _, _) => t.expose().trim().to_string(),
            (None, Some(email), Some(password)) => {
                let http =
                    HttpClient::new(cfg.http.settings(), base.clone(), metrics.clone())?.redact(password.expose());
                let body = json!({
                    "query": LOGIN,
                    "operationName": "AlliLogin",
                    "variables": {"email": email, "password": password.expose()},
                });
                let answer = http.post_json(&url, &body).await?;
                let token = answer.pointer("/data/login/token").and_then(Value::as_str).filter(|t| !t.is_empty());
                match (token, answer.get("errors").and_then(Value::as_array)) {
                    (Some(t), None) => t.to_string(),
                    (Some(t), Some(e)) if e.is_empty() => t.to_string(),
                    (_, errors) => {
                        let why = errors.map(|e| messages(e)).unwrap_or_else(|| "no token in the answer".into());
                        return Err(PluginError::Auth {
                            vendor: VENDOR.into(),
                            status: 200,
                            what: http.scrub(&format!("the login mutation (GraphQL error: {why})")),
                        });
                    }
                }
            }
            _ => {
                return Err(PluginError::Config {
                    path: "email".into(),
                    message: "api = \"graphql\" needs email + password or token".into(),
                });
            }
        };
        let mut headers = base;
        headers.insert(AUTHORIZATION, HttpClient::sensitive_header(&token)?);
        let mut http = HttpClient::new(cfg.http.settings(), headers, metrics)?.redact(token);
        if let Some(p) = &cfg.password {
            http = http.redact(p.expose());
        }
        let mut filter = serde_json::Map::new();
        if !cfg.campaign_ids.is_empty() {
            filter.insert("campaignIds".into(), json!(cfg.campaign_ids));
        }
        if let Some(s) = &cfg.state {
            filter.insert("state".into(), json!(s));
        }
        Ok(GraphqlClient {
            http,
            url,
            page_size: cfg.page_size().min(MAX_PAGE),
            filter: Value::Object(filter),
            plan: Arc::new(Built::new(Plan::assumed())),
        })
    }

    /// Sends one document and returns its `data`.
    ///
    /// Errors: HTTP errors; [`PluginError::Protocol`] for GraphQL `errors` or no `data`.
    pub async fn request(&self, operation: &str, query: &str, variables: Value) -> Result<Value> {
        let body = json!({"query": query, "operationName": operation, "variables": variables});
        let answer = self.http.post_json(&self.url, &body).await?;
        data_of(&self.http, answer, operation)
    }

    /// The conversations (newest last chat first when [`Self::ordered`]), one `Vec` of nodes
    /// (each with its first page of chats) per page: by `endCursor`, or — without `pageInfo` —
    /// with `after` = the last node's id until a page is short (or empty, when `first` cannot
    /// be sent).
    ///
    /// Errors (the stream's last item): also [`PluginError::ListingCut`] when a position
    /// repeats one already sent or a page repeats an earlier one.
    pub fn listing(&self) -> BoxStream<'static, Result<Vec<Value>>> {
        let client = self.clone();
        let guard = PageGuard::new(VENDOR, "the conversation listing (GraphQL `conversations`)");
        stream::try_unfold(Some((None::<String>, guard)), move |state| {
            let client = client.clone();
            async move {
                let Some((after, mut guard)) = state else { return Ok(None) };
                let plan = &client.plan.plan;
                guard.position("after", after.as_deref().unwrap_or(""))?;
                let mut vars = serde_json::Map::new();
                for (name, value) in
                    [("filter", client.filter.clone()), ("first", json!(client.page_size)), ("after", json!(after))]
                {
                    if plan.list_args.contains_key(name) {
                        vars.insert(name.into(), value);
                    }
                }
                if plan.chat_args.contains_key("first") {
                    vars.insert("chats".into(), json!(MAX_PAGE));
                }
                let data = client.request("AlliConversations", &client.plan.conversations, Value::Object(vars)).await?;
                let conn =
                    data.get("conversations").filter(|c| c.is_object()).ok_or_else(|| PluginError::Protocol {
                        vendor: VENDOR.into(),
                        message: "`conversations` is null in the GraphQL response".into(),
                    })?;
                let nodes: Vec<Value> = match conn.get("edges") {
                    Some(Value::Array(edges)) => {
                        edges.iter().filter_map(|e| e.get("node")).filter(|n| n.is_object()).cloned().collect()
                    }
                    _ => {
                        return Err(PluginError::Protocol {
                            vendor: VENDOR.into(),
                            message: "no `edges` in `conversations`".into(),
                        });
                    }
                };
                guard.page(&nodes)?;
                let next = match plan.list_paging {
                    Paging::Cursor => match (
                        conn.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool),
                        conn.pointer("/pageInfo/endCursor").and_then(Value::as_str),
                    ) {
                        (Some(true), Some(c)) if !nodes.is_empty() => Some(c.to_string()),
                        _ => None,
                    },
                    Paging::LastId => {
                        let full = if plan.list_args.contains_key("first") {
                            nodes.len() >= client.page_size as usize
                        } else {
                            !nodes.is_empty()
                        };
                        nodes
                            .last()
                            .and_then(|n| n.get("id"))
                            .and_then(Value::as_str)
                            .filter(|_| full)
                            .map(str::to_string)
                    }
                    Paging::None => None,
                };
                Ok(Some((nodes, next.map(|c| (Some(c), guard)))))
            }
        })
        .boxed()
    }

    /// Every chat of a listed conversation node: its nested page, then `node(id:)` pages while
    /// there are more (`hasNextPage`, or a full page when paging by the last chat's id). When
    /// the server offers no way to page chats and the nested page is full, the bundle is marked
    /// incomplete (the dead letter `incomplete`; the run ends partial).
    ///
    /// Errors: [`PluginError::ListingCut`] when a position or a page of chats repeats (the
    /// listing would loop), besides the request errors.
    pub async fn bundle(&self, mut node: Value) -> Result<Bundle> {
        let first = node.get_mut("chats").map(Value::take).unwrap_or(Value::Null);
        if let Some(o) = node.as_object_mut() {
            o.remove("chats");
        }
        let plan = &self.plan.plan;
        let full_page = plan.chat_page() as usize;
        let mut chats = Vec::new();
        let mut page = first;
        let mut incomplete = None;
        let id = node.get("id").and_then(Value::as_str).map(str::to_string);
        let mut guard =
            PageGuard::new(VENDOR, format!("the chats of conversation `{}`", id.as_deref().unwrap_or_default()));
        loop {
            let edges: Vec<Value> = match page.get("edges") {
                Some(Value::Array(edges)) => edges.clone(),
                _ => Vec::new(),
            };
            guard.page(&edges)?;
            let nodes: Vec<Value> =
                edges.iter().filter_map(|e| e.get("node")).filter(|n| n.is_object()).cloned().collect();
            let after = match plan.chat_paging {
                Paging::Cursor => {
                    let has_next = page.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true);
                    let end = page.pointer("/pageInfo/endCursor").and_then(Value::as_str).map(str::to_string);
                    end.filter(|_| has_next)
                }
                Paging::LastId => nodes
                    .last()
                    .and_then(|n| n.get("id"))
                    .and_then(Value::as_str)
                    .filter(|_| edges.len() >= full_page)
                    .map(str::to_string),
                Paging::None => {
                    if edges.len() >= full_page {
                        incomplete = Some(format!(
                            "the GraphQL schema offers no way to page a conversation's chats (no `pageInfo`, `chats(after:)` or `node(id:)`): only the first {} chats were read and there may be more",
                            edges.len()
                        ));
                    }
                    None
                }
            };
            chats.extend(nodes);
            let (Some(id), Some(after), Some(doc)) = (id.as_deref(), after, self.plan.chats.as_deref()) else { break };
            guard.position("after", &after)?;
            let mut vars = serde_json::Map::new();
            vars.insert("id".into(), json!(id));
            if plan.chat_args.contains_key("first") {
                vars.insert("first".into(), json!(MAX_PAGE));
            }
            vars.insert("after".into(), json!(after));
            let data = self.request("AlliConversationChats", doc, Value::Object(vars)).await?;
            match data.pointer("/node/chats") {
                Some(next) if next.is_object() => page = next.clone(),
                _ => {
                    incomplete = Some(format!(
                        "node(id:) returned no conversation after {} chats; the rest could not be fetched",
                        chats.len()
                    ));
                    break;
                }
            }
        }
        Ok(Bundle { api: Api::Graphql, conversation: node, chats, total: None, incomplete })
    }
}
