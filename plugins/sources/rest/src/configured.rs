//! Conversations that are not listed by the vendor but configured (a spec without
//! `conversations.path`): `conversations.records` runs once on `$vars`, and each record it
//! gives is a conversation, read as if a listing had returned it. For APIs with no listing
//! endpoint, where the integrator knows the ids (Aimylogic's Chat API: one conversation per
//! `clientId`).
//!
//! Also the checks such a spec needs at load time ([`spec_problems`]).

use std::collections::HashSet;

use pipe_plugin_sdk::{PluginError, Result};
use serde_json::Value;

use crate::client::Client;
use crate::pager::{Page, Pager};
use crate::spec::{AuthSpec, PagingSpec, Spec, SpecFile};

/// The conversation listing: the vendor's (pages over HTTP) or the configured one (one page).
pub enum Listing {
    /// `conversations.path` read page by page (boxed: one listing per run).
    Http(Box<Pager>),
    /// The configured conversations, until taken.
    Configured(Option<Vec<Value>>),
}

impl Listing {
    /// The listing of `spec`: over HTTP when it has a `conversations.path` (with the
    /// incremental `floor` parameter), else the configured conversations.
    ///
    /// Errors: as [`Client::listing`]; a failing `conversations.records` program over `$vars`
    /// is [`PluginError::Config`] at `vars`.
    pub fn open(client: &Client, spec: &Spec, floor: Option<(String, String)>) -> Result<Listing> {
        if spec.file.conversations.path.is_some() {
            return Ok(Listing::Http(Box::new(client.listing(floor)?)));
        }
        Ok(Listing::Configured(Some(configured(spec, client.vars())?)))
    }

    /// The next page (the configured listing has one), or `None` after the last.
    ///
    /// Errors: as [`Pager::next_page`].
    pub async fn next_page(&mut self) -> Result<Option<Page>> {
        match self {
            Listing::Http(pager) => pager.next_page().await,
            Listing::Configured(records) => Ok(records.take().map(|records| Page { records, body: Value::Null })),
        }
    }

    /// True for a configured listing: its ids come from the pipeline, so an HTTP 403 on a
    /// conversation's endpoints means refused credentials, not a conversation of its own.
    pub fn is_configured(&self) -> bool {
        matches!(self, Listing::Configured(_))
    }
}

/// The configured conversations: `conversations.records` over `vars`, a conversation whose
/// id (`conversations.id`) was given before dropped (the first kept, in order).
///
/// Errors: [`PluginError::Config`] at `vars` when the program fails.
pub fn configured(spec: &Spec, vars: &Value) -> Result<Vec<Value>> {
    let records = spec.programs.conversations.records.list(vars, &[vars]).map_err(|m| PluginError::Config {
        path: "vars".into(),
        message: format!("conversations.records (the configured conversations) failed on `vars`: {m}"),
    })?;
    let mut seen = HashSet::new();
    Ok(records
        .into_iter()
        .filter(|r| match spec.programs.conversation_id.first(r, &[vars]) {
            Ok(id @ (Value::String(_) | Value::Number(_))) => seen.insert(id.to_string()),
            // No id: the crawl dead-letters it.
            _ => true,
        })
        .collect())
}

/// The problems of a spec's configured listing, per-conversation watermarks, path secret and
/// `messages.gone_reason`, as (key, message).
pub fn spec_problems(file: &SpecFile) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if file.conversations.path.is_none() {
        if !matches!(file.conversations.paging, PagingSpec::None) {
            out.push((
                "conversations.paging".into(),
                "configured conversations (no `conversations.path`) are not paged".into(),
            ));
        }
        if file.incremental.is_some() {
            out.push((
                "incremental".into(),
                "configured conversations (no `conversations.path`) are not listed by time: use \
                 `conversation_watermarks = true`"
                    .into(),
            ));
        }
        if file.messages.path.is_none() {
            out.push((
                "messages.path".into(),
                "configured conversations (no `conversations.path`) need a messages path".into(),
            ));
        }
    }
    if file.conversation_watermarks && file.incremental.is_some() {
        out.push((
            "conversation_watermarks".into(),
            "is not used with `[incremental]`: choose one watermark per listing or one per conversation".into(),
        ));
    }
    if matches!(file.auth, AuthSpec::Path { .. }) {
        let paths =
            file.conversations.path.iter().chain(&file.messages.path).chain(file.extras.iter().map(|e| &e.path));
        if !paths.into_iter().any(|p| p.contains("{auth}")) {
            out.push(("auth".into(), "a path secret, but no path has `{auth}`: it would never be sent".into()));
        }
    }
    if let Some(r) = &file.messages.gone_reason
        && (r.is_empty() || !r.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    {
        out.push(("messages.gone_reason".into(), format!("`{r}` is not a reason (lower case letters and `_`)")));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const SPEC: &str = r#"
vendor = "chat"
base_url = "https://chat.example"
auth = { type = "path", value = "${CHAT_TOKEN}" }
conversation_watermarks = true

[conversations]
records = ".clients | map({clientId: .})"
id = ".clientId"

[messages]
path = "/api/{auth}/client/{clientId}/history"
records = ".messages"
gone_reason = "unknown_client"
paging = { type = "offset", limit = 50, end = "empty_page" }

[map]
conversation = "{visitor_id: .clientId}"
message = "{message_id: .id, sent_at: .t, sender_role: \"visitor\"}"
"#;

    #[test]
    fn configured_conversations_come_from_vars_once_each() {
        let spec = Spec::parse(SPEC).unwrap_or_else(|e| panic!("{e:?}"));
        let vars = json!({"clients": ["a", "b c", "a", "42"]});
        let got = configured(&spec, &vars).unwrap();
        assert_eq!(got, vec![json!({"clientId": "a"}), json!({"clientId": "b c"}), json!({"clientId": "42"})]);
        let err = configured(&spec, &json!({"clients": 3})).unwrap_err().to_string();
        assert!(err.contains("vars"), "{err}");
    }

    #[test]
    fn a_configured_listing_refuses_what_it_cannot_do() {
        let keys = |text: &str| match Spec::parse(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.key).collect::<Vec<_>>(),
        };
        assert!(keys(SPEC).is_empty());
        let paged = SPEC.replace("id = \".clientId\"", "id = \".clientId\"\npaging = { type = \"link_header\" }");
        assert_eq!(keys(&paged), ["conversations.paging"]);
        let both = SPEC.replace("[conversations]", "[incremental]\ntime = \".t\"\n\n[conversations]");
        assert_eq!(keys(&both), ["incremental", "conversation_watermarks"]);
        let bad = SPEC.replace("gone_reason = \"unknown_client\"", "gone_reason = \"Unknown client\"");
        assert_eq!(keys(&bad), ["messages.gone_reason"]);
        let unsent = SPEC.replace("/api/{auth}/client", "/api/client");
        assert_eq!(keys(&unsent), ["auth"]);
    }
}
