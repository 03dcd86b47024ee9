//! The GraphQL agent API (`POST /d/graphql/`): the `login` mutation, Relay paging of
//! `conversations` with their nested `chats`, and `node(id:)` for conversations with more chats
//! than one nested page (docs/vendors/alli.md §3).
//!
//! Every document this plugin sends is one of the constants below ([`DOCUMENTS`]); the test
//! suite validates each against the SDL of alli.md §3. GraphQL `errors` in a 200 response are
//! errors, never empty data.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{self, BoxStream};
use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::paging::PageGuard;
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::{Value, json};

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

/// The chats page selection both queries use (a macro, so `concat!` can splice it in).
macro_rules! chat_page_fragment {
    () => {
        "
fragment AlliChatPage on ChatConnection {
  pageInfo {
    hasNextPage
    endCursor
  }
  edges {
    node {
      __typename
      ... on UserChat {
        id
        message
        createdAt
      }
      ... on AgentChat {
        id
        message
        createdAt
        agent {
          name
        }
      }
      ... on BotChat {
        id
        message
        createdAt
        chatOptions
      }
    }
  }
}"
    };
}

/// One page of conversations, newest last chat first, each with its first page of chats.
pub const CONVERSATIONS: &str = concat!(
    "query AlliConversations($filter: ConversationFilterInput, $first: Int!, $after: String, $chats: Int!) {
  conversations(filter: $filter, order: LAST_CHAT_TIME_DESC, first: $first, after: $after) {
    pageInfo {
      hasNextPage
      endCursor
    }
    edges {
      node {
        id
        state
        createdAt
        modifiedAt
        lastChatTime
        campaign {
          id
          name
          description
        }
        user {
          id
          ownUserId
          firstName
          name
        }
        chats(first: $chats) {
          ...AlliChatPage
        }
      }
    }
  }
}
",
    chat_page_fragment!()
);

/// The next page of one conversation's chats.
pub const CONVERSATION_CHATS: &str = concat!(
    "query AlliConversationChats($id: ID!, $first: Int!, $after: String) {
  node(id: $id) {
    __typename
    ... on Conversation {
      id
      chats(first: $first, after: $after) {
        ...AlliChatPage
      }
    }
  }
}
",
    chat_page_fragment!()
);

/// Every document the plugin sends, with its operation name.
pub const DOCUMENTS: [(&str, &str); 3] =
    [("AlliLogin", LOGIN), ("AlliConversations", CONVERSATIONS), ("AlliConversationChats", CONVERSATION_CHATS)];

/// A logged-in client for one Alli account.
#[derive(Clone)]
pub struct GraphqlClient {
    http: HttpClient,
    url: String,
    page_size: u32,
    filter: Value,
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
    /// Logs in (unless a `token` is configured) and returns a client that sends the token.
    ///
    /// Errors: [`PluginError::Auth`] when the login is refused (HTTP 401/403, or GraphQL errors
    /// / no token in the 200 answer to `login`).
    pub async fn connect(cfg: &AlliConfig, metrics: Arc<Metrics>) -> Result<Self> {
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
        Ok(GraphqlClient { http, url, page_size: cfg.page_size().min(MAX_PAGE), filter: Value::Object(filter) })
    }

    async fn request(&self, operation: &str, query: &str, variables: Value) -> Result<Value> {
        let body = json!({"query": query, "operationName": operation, "variables": variables});
        let answer = self.http.post_json(&self.url, &body).await?;
        data_of(&self.http, answer, operation)
    }

    /// The conversations, newest last chat first, one `Vec` of nodes (each with its first
    /// page of chats) per page.
    ///
    /// Errors (the stream's last item): also [`PluginError::ListingCut`] when an `endCursor`
    /// repeats one already sent or a page repeats an earlier one.
    pub fn listing(&self) -> BoxStream<'static, Result<Vec<Value>>> {
        let client = self.clone();
        let guard = PageGuard::new(VENDOR, "the conversation listing (GraphQL `conversations`)");
        stream::try_unfold(Some((None::<String>, guard)), move |state| {
            let client = client.clone();
            async move {
                let Some((after, mut guard)) = state else { return Ok(None) };
                guard.position("endCursor", after.as_deref().unwrap_or(""))?;
                let data = client
                    .request(
                        "AlliConversations",
                        CONVERSATIONS,
                        json!({"filter": client.filter, "first": client.page_size, "after": after, "chats": MAX_PAGE}),
                    )
                    .await?;
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
                let next = match (
                    conn.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool),
                    conn.pointer("/pageInfo/endCursor").and_then(Value::as_str),
                ) {
                    (Some(true), Some(c)) if !nodes.is_empty() => Some((Some(c.to_string()), guard)),
                    _ => None,
                };
                Ok(Some((nodes, next)))
            }
        })
        .boxed()
    }

    /// Every chat of a listed conversation node: its nested page, then `node(id:)` pages while
    /// `hasNextPage`.
    ///
    /// Errors: [`PluginError::ListingCut`] when an `endCursor` or a page of chats repeats (the
    /// listing would loop), besides the request errors.
    pub async fn bundle(&self, mut node: Value) -> Result<Bundle> {
        let first = node.get_mut("chats").map(Value::take).unwrap_or(Value::Null);
        if let Some(o) = node.as_object_mut() {
            o.remove("chats");
        }
        let mut chats = Vec::new();
        let mut page = first;
        let mut incomplete = None;
        let id = node.get("id").and_then(Value::as_str).map(str::to_string);
        let mut guard =
            PageGuard::new(VENDOR, format!("the chats of conversation `{}`", id.as_deref().unwrap_or_default()));
        loop {
            if let Some(Value::Array(edges)) = page.get("edges") {
                guard.page(edges)?;
                chats.extend(edges.iter().filter_map(|e| e.get("node")).filter(|n| n.is_object()).cloned());
            }
            let has_next = page.pointer("/pageInfo/hasNextPage").and_then(Value::as_bool) == Some(true);
            let end = page.pointer("/pageInfo/endCursor").and_then(Value::as_str).map(str::to_string);
            let (Some(id), true, Some(after)) = (id.as_deref(), has_next, end) else { break };
            guard.position("endCursor", &after)?;
            let data = self
                .request(
                    "AlliConversationChats",
                    CONVERSATION_CHATS,
                    json!({"id": id, "first": MAX_PAGE, "after": after}),
                )
                .await?;
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
