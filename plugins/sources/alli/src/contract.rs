//! `pipe validate --check` for Alli: the assumptions of docs/vendors/alli.md tested against
//! the live project with a few read-only requests ([`probe`]).
//!
//! * REST (`api = "rest"`): the listing and its cursor (two pages of 2), the fields the
//!   mapping and the incremental scan read, the newest-first order, the unit of the times, the
//!   unit `startedAt` is interpreted in (a filter at a known conversation's time, sent in
//!   milliseconds and in seconds), and one conversation's chats with their paging and
//!   `totalCount`.
//! * GraphQL (`api = "graphql"`): the login, an introspection of every type and field the
//!   queries use — one check per field — what the source will do about those it lacks, and
//!   one live listing query as built.
//!
//! Nothing here writes to the vendor; what a check saw is field names, counts and times,
//! scrubbed of the credentials.

use std::collections::HashSet;
use std::sync::Arc;

use pipe_plugin_sdk::contract::{Check, ContractFuture, ContractReport, Status, fields_check, keys_of};
use pipe_plugin_sdk::time::format_micros;
use pipe_plugin_sdk::{Metrics, Result};
use serde_json::{Value, json};

use crate::client::graphql::{GraphqlClient, MAX_PAGE};
use crate::client::rest::RestClient;
use crate::client::schema::{CAMPAIGN_FIELDS, CHAT_KINDS, CONVERSATION_FIELDS, Paging, Plan, Schema, USER_FIELDS};
use crate::mapping::{TimeUnit, epoch_micros, unit_of};
use crate::{Api, parse_config};

/// The contract probe of the `alli` source (a [`pipe_plugin_sdk::contract::ContractProbe`]).
///
/// Errors: the config refused, the credentials refused (`Auth`), the vendor unreachable.
pub fn probe(config: Value) -> ContractFuture {
    Box::pin(async move {
        let cfg = parse_config(config)?;
        let metrics = Arc::new(Metrics::default());
        match cfg.api {
            Api::Rest => rest(&RestClient::new(&cfg, metrics)?).await,
            Api::Graphql => graphql(GraphqlClient::login(&cfg, metrics).await?).await,
        }
    })
}

/// The conversations of a listing body.
fn conversations(body: &Value) -> Option<Vec<Value>> {
    body.get("conversations").and_then(Value::as_array).cloned()
}

fn ids(items: &[Value]) -> Vec<String> {
    items.iter().filter_map(|c| c.get("id").and_then(Value::as_str)).map(str::to_string).collect()
}

/// The REST checks.
async fn rest(client: &RestClient) -> Result<ContractReport> {
    let mut r = ContractReport::new("alli");
    let http = client.http();
    let scrub = |s: String| http.scrub(&s);

    // The listing and its cursor, two small pages.
    let first_url = client.list_url(&[("pageSize", "2".into())]);
    let body = http.get_json(&first_url).await?;
    let listing =
        Check::required("alli.rest.listing", "GET /webapi/v2/conversations answers {conversations: [...], cursor}");
    let Some(page1) = conversations(&body) else {
        r.push(listing.absent(scrub(format!("no `conversations` array; body keys {}", keys_of(&body)))));
        return Ok(r);
    };
    let cursor = body.get("cursor").cloned();
    r.push(listing.confirmed_if(
        cursor.is_some(),
        Status::Different,
        format!(
            "{} conversation(s), cursor {}",
            page1.len(),
            match &cursor {
                None => "key absent".to_string(),
                Some(Value::Null) => "null".into(),
                Some(Value::String(c)) if c.is_empty() => "empty".into(),
                Some(_) => "set".into(),
            }
        ),
    ));
    let cursor_check =
        Check::required("alli.rest.listing.cursor", "`cursor` of a full page fetches the next page, disjoint");
    let mut listed = page1.clone();
    match cursor.as_ref().and_then(Value::as_str).filter(|c| !c.is_empty()) {
        Some(c) if page1.len() == 2 => {
            let body2 = http.get_json(&client.list_url(&[("pageSize", "2".into()), ("cursor", c.to_string())])).await?;
            let page2 = conversations(&body2).unwrap_or_default();
            let first: HashSet<String> = ids(&page1).into_iter().collect();
            let overlap = ids(&page2).iter().filter(|id| first.contains(*id)).count();
            r.push(cursor_check.confirmed_if(
                overlap == 0 && !page2.is_empty(),
                Status::Different,
                format!("page 2: {} conversation(s), {overlap} already on page 1", page2.len()),
            ));
            listed.extend(page2);
        }
        _ if page1.len() < 2 => r.push(cursor_check.unchecked("fewer than 2 conversations in the project")),
        _ => r.push(cursor_check.different("a full page of 2 came with no cursor")),
    }

    // One larger page for the field, order and unit checks and to pick a long conversation.
    let body50 = http.get_json(&client.list_url(&[("pageSize", "50".into())])).await?;
    let listed = match conversations(&body50) {
        Some(page) if page.len() >= listed.len() => page,
        _ => listed,
    };
    r.push(fields_check(
        Check::required("alli.rest.conversation.fields", "conversations carry id, createdAt, lastChatTime"),
        &listed,
        &["id", "createdAt", "lastChatTime"],
    ));
    r.push(fields_check(
        Check::optional(
            "alli.rest.conversation.mapped_fields",
            "conversations carry title, user, isEnd, categories, chatCount, llmApp, variables",
        ),
        &listed,
        &["title", "user", "isEnd", "categories", "chatCount", "llmApp", "variables"],
    ));

    // Order and units of the listed times.
    let times: Vec<(String, Value)> = listed
        .iter()
        .filter_map(|c| {
            Some((c.get("id")?.as_str()?.to_string(), c.get("lastChatTime").filter(|t| !t.is_null())?.clone()))
        })
        .collect();
    let micros: Vec<i64> = times.iter().filter_map(|(_, t)| epoch_micros(t).ok().flatten()).collect();
    let order = Check::optional("alli.rest.listing.order", "newest last chat first (the default order)");
    r.push(if micros.len() < 2 {
        order.unchecked("fewer than 2 listed conversations with a lastChatTime")
    } else {
        let sorted = micros.windows(2).all(|w| w[0] >= w[1]);
        order.confirmed_if(
            sorted,
            Status::Different,
            format!(
                "lastChatTime of {} conversations: {}",
                micros.len(),
                micros.iter().map(|t| format_micros(*t)).collect::<Vec<_>>().join(", ")
            ),
        )
    });
    let unit = times.first().and_then(|(_, t)| unit_of(t));
    let unit_check = Check::optional("alli.rest.time_unit", "numeric times are epoch milliseconds");
    r.push(match unit {
        None => unit_check.unchecked("no numeric lastChatTime listed"),
        Some(u) => unit_check.confirmed_if(
            u == TimeUnit::Ms,
            Status::Different,
            format!("epoch {} ({})", u.label(), times[0].1),
        ),
    });
    r.push(started_at_unit(client, times.first(), unit).await?);

    // One conversation's chats: the one with the most chats among those listed.
    let pick = listed.iter().max_by_key(|c| c.get("chatCount").and_then(Value::as_u64).unwrap_or(0));
    match pick.and_then(|c| c.get("id")?.as_str().map(|id| (id.to_string(), c))) {
        None => {
            for (name, assumed) in [
                ("alli.rest.chats", "GET …/conversations/{id}/chats answers {chats, pageNo, totalCount}"),
                ("alli.rest.chats.fields", "chats carry id, sender, message, timestamp"),
            ] {
                r.push(Check::required(name, assumed).unchecked("no conversation to look at"));
            }
        }
        Some((id, conv)) => chats(client, &mut r, &id, conv).await?,
    }
    Ok(r)
}

/// `startedAt`'s unit: the newest listed conversation's own time, minus and plus one unit, in
/// milliseconds and in seconds; which filter keeps it says the unit (none: the filter is
/// ignored).
async fn started_at_unit(
    client: &RestClient,
    newest: Option<&(String, Value)>,
    unit: Option<TimeUnit>,
) -> Result<Check> {
    let check = Check::optional(
        "alli.rest.started_at_unit",
        "`startedAt` (last chat time after) is in the unit of the responses; the source sends no time filter and does not depend on it",
    );
    let (Some((id, t)), Some(unit)) = (newest, unit) else {
        return Ok(check.unchecked("no listed conversation with a numeric lastChatTime"));
    };
    let Some(us) = epoch_micros(t).ok().flatten() else { return Ok(check.unchecked("lastChatTime is not a time")) };
    let (ms, s) = (us.div_euclid(1_000), us.div_euclid(1_000_000));
    let mut kept = Vec::new();
    for at in [ms - 1, ms + 1_000, s - 1, s + 1] {
        let body = client
            .http()
            .get_json(&client.list_url(&[("pageSize", "50".into()), ("startedAt", at.to_string())]))
            .await?;
        kept.push(conversations(&body).is_some_and(|c| ids(&c).contains(id)));
    }
    let seen = format!(
        "a conversation at {}: startedAt {}-1 ms {}, +1 s in ms {}, {}-1 s {}, +1 s {}",
        format_micros(us),
        ms,
        if kept[0] { "keeps it" } else { "drops it" },
        if kept[1] { "keeps it" } else { "drops it" },
        s,
        if kept[2] { "keeps it" } else { "drops it" },
        if kept[3] { "keeps it" } else { "drops it" },
    );
    let filter_unit = match kept.as_slice() {
        [true, false, _, _] => Some(TimeUnit::Ms),
        [false, _, true, false] => Some(TimeUnit::S),
        _ => None,
    };
    Ok(match filter_unit {
        Some(f) if f == unit => check.confirmed(format!("epoch {} like the responses; {seen}", f.label())),
        Some(f) => check.different(format!("epoch {} while the responses carry {}; {seen}", f.label(), unit.label())),
        None => check.different(format!("the filter keeps or drops it either way (ignored?); {seen}")),
    })
}

/// The chats checks on conversation `id`.
async fn chats(client: &RestClient, r: &mut ContractReport, id: &str, conv: &Value) -> Result<()> {
    let http = client.http();
    let body = http.get_json(&client.chats_url(id, 1)).await?;
    let check =
        Check::required("alli.rest.chats", "GET …/conversations/{id}/chats answers {chats, pageNo, totalCount}");
    let Some(page1) = body.get("chats").and_then(Value::as_array).cloned() else {
        r.push(check.absent(http.scrub(&format!("no `chats` array; body keys {}", keys_of(&body)))));
        return Ok(());
    };
    let total = body.get("totalCount").and_then(Value::as_u64);
    r.push(check.confirmed_if(
        total.is_some(),
        Status::Different,
        format!("{} chat(s) on page 1, totalCount {}", page1.len(), total.map_or("absent".into(), |t| t.to_string())),
    ));
    r.push(fields_check(
        Check::required("alli.rest.chats.fields", "chats carry id, sender, message, timestamp"),
        &page1,
        &["id", "sender", "message", "timestamp"],
    ));
    let senders: Vec<String> = {
        let mut s: Vec<String> = page1
            .iter()
            .filter_map(|c| c.get("sender")?.as_str().map(str::to_string))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        s.sort();
        s
    };
    let unknown: Vec<&String> = senders.iter().filter(|s| !["USER", "BOT", "AGENT"].contains(&s.as_str())).collect();
    r.push(Check::optional("alli.rest.chats.sender", "sender is USER, BOT or AGENT").confirmed_if(
        unknown.is_empty(),
        Status::Different,
        format!("senders seen: {}", if senders.is_empty() { "none".into() } else { senders.join(", ") }),
    ));
    let paging = Check::required("alli.rest.chats.paging", "100 chats per page, pageNo=2 continues without overlap");
    let mut all = ids(&page1);
    match total {
        Some(t) if t > page1.len() as u64 => {
            let body2 = http.get_json(&client.chats_url(id, 2)).await?;
            let page2 = body2.get("chats").and_then(Value::as_array).cloned().unwrap_or_default();
            let first: HashSet<String> = all.iter().cloned().collect();
            let overlap = ids(&page2).iter().filter(|i| first.contains(*i)).count();
            r.push(paging.confirmed_if(
                page1.len() == MAX_PAGE as usize && overlap == 0 && !page2.is_empty(),
                Status::Different,
                format!(
                    "page 1: {} chats, page 2: {} chats, {overlap} repeated (totalCount {t})",
                    page1.len(),
                    page2.len()
                ),
            ));
            all.extend(ids(&page2));
        }
        _ => r.push(paging.unchecked(format!(
            "the conversation with the most chats listed has {} (one page); paging is checked on a longer one",
            page1.len()
        ))),
    }
    let chat_count = conv.get("chatCount").and_then(Value::as_u64);
    let fetched: HashSet<&String> = all.iter().collect();
    let complete = total.is_none_or(|t| t <= MAX_PAGE as u64 * 2);
    r.push(Check::optional("alli.rest.chats.total", "totalCount = the listing's chatCount = the chats served").with(
        match (complete, total == chat_count) {
            (false, _) => Status::Unchecked,
            (true, true) if total.is_none_or(|t| t == fetched.len() as u64) => Status::Confirmed,
            _ => Status::Different,
        },
        format!(
            "totalCount {}, chatCount {}, {} distinct chat(s) read{}",
            total.map_or("absent".into(), |t| t.to_string()),
            chat_count.map_or("absent".into(), |t| t.to_string()),
            fetched.len(),
            if complete { "" } else { " (of the first 2 pages)" }
        ),
    ));
    Ok(())
}

/// The GraphQL checks.
async fn graphql(client: GraphqlClient) -> Result<ContractReport> {
    let mut r = ContractReport::new("alli");
    r.push(
        Check::required("alli.graphql.login", "the login mutation (or the given token) authenticates")
            .confirmed("authenticated"),
    );
    let intro = Check::optional("alli.graphql.introspection", "the server answers __type(name:) introspection");
    let Some(schema) = client.introspect().await? else {
        r.push(intro.different("refused (GraphQL errors): the source sends the queries of the assumed schema"));
        live_query(&client, &mut r).await?;
        return Ok(r);
    };
    r.push(intro.confirmed("answered"));
    let plan = Plan::new(&schema);
    field_checks(&schema, &plan, &mut r);
    let client = client.with_plan(plan);
    live_query(&client, &mut r).await?;
    Ok(r)
}

/// One check per type name and field the documents use.
fn field_checks(schema: &Schema, plan: &Plan, r: &mut ContractReport) {
    let names = &plan.names;
    let assumed = Plan::assumed().names;
    for (found, want) in [
        (&names.connection, &assumed.connection),
        (&names.edge, &assumed.edge),
        (&names.conversation, &assumed.conversation),
        (&names.chat_connection, &assumed.chat_connection),
        (&names.chat_edge, &assumed.chat_edge),
        (&names.chat, &assumed.chat),
    ] {
        let want = want.as_deref().unwrap_or_default();
        let c = Check::optional(format!("alli.graphql.type.{want}"), format!("the type is called {want}"));
        r.push(match found.as_deref() {
            Some(f) if f == want => {
                c.confirmed(format!("{f} ({})", schema.get(f).map_or("not introspected", |t| t.kind.as_str())))
            }
            Some(f) => c.different(format!("called {f}; the queries use the server's name")),
            None => c.absent("not reachable from Query.conversations"),
        });
    }
    let required_fields = plan.missing_required.clone();
    let mut field = |ty: Option<&str>, default: &str, f: &str, required: bool| {
        let t = ty.unwrap_or(default);
        let name = format!("alli.graphql.{default}.{f}");
        let c = if required {
            Check::required(name, format!("{default}.{f} exists"))
        } else {
            Check::optional(name, format!("{default}.{f} exists"))
        };
        r.push(match schema.field(t, f) {
            Some(def) => c.confirmed(format!(
                "{t}.{f}: {}{}",
                def.ty.as_ref().map_or("?", |x| x.sdl.as_str()),
                if def.args.is_empty() {
                    String::new()
                } else {
                    format!(
                        " ({})",
                        def.args.iter().map(|(k, v)| format!("{k}: {}", v.sdl)).collect::<Vec<_>>().join(", ")
                    )
                }
            )),
            None => c.absent(format!(
                "{t} has no `{f}`{}",
                if required_fields.iter().any(|m| m.ends_with(&format!(".{f}"))) { "" } else { "; not selected" }
            )),
        });
    };
    field(Some("Query"), "Query", "conversations", true);
    field(Some("Query"), "Query", "node", false);
    field(names.connection.as_deref(), "ConversationConnection", "edges", true);
    field(names.connection.as_deref(), "ConversationConnection", "pageInfo", false);
    field(names.edge.as_deref(), "ConversationEdge", "node", true);
    for f in CONVERSATION_FIELDS {
        field(names.conversation.as_deref(), "Conversation", f, f == "id");
    }
    for f in ["campaign", "user"] {
        field(names.conversation.as_deref(), "Conversation", f, false);
    }
    field(names.conversation.as_deref(), "Conversation", "chats", true);
    for f in CAMPAIGN_FIELDS {
        field(names.campaign.as_deref(), "Campaign", f, false);
    }
    for f in USER_FIELDS {
        field(names.user.as_deref(), "User", f, false);
    }
    field(names.chat_connection.as_deref(), "ChatConnection", "edges", true);
    field(names.chat_connection.as_deref(), "ChatConnection", "pageInfo", false);
    field(names.chat_edge.as_deref(), "ChatEdge", "node", true);
    for pi in ["hasNextPage", "endCursor"] {
        field(names.page_info.as_deref(), "PageInfo", pi, false);
    }
    for kind in CHAT_KINDS {
        for f in ["id", "message", "createdAt"] {
            field(Some(kind), kind, f, f != "message");
        }
    }
    field(Some("AgentChat"), "AgentChat", "agent", false);
    field(Some("BotChat"), "BotChat", "chatOptions", false);
    field(names.agent.as_deref(), "Agent", "name", false);
    let members = names.chat.as_deref().and_then(|c| schema.get(c)).map(|t| t.possible.clone()).unwrap_or_default();
    r.push(
        Check::required("alli.graphql.Chat.members", "the chat union has UserChat, AgentChat, BotChat").confirmed_if(
            CHAT_KINDS.iter().all(|k| members.iter().any(|m| m == k)),
            Status::Different,
            format!("members: {}", if members.is_empty() { "none".into() } else { members.join(", ") }),
        ),
    );
    let args = |ty: Option<&str>, f: &str| -> String {
        ty.and_then(|t| schema.field(t, f))
            .map(|d| d.args.iter().map(|(k, v)| format!("{k}: {}", v.sdl)).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    r.push(
        Check::required(
            "alli.graphql.conversations.paging",
            "conversations(after:) pages the listing (pageInfo.endCursor)",
        )
        .with(
            match plan.list_paging {
                Paging::Cursor => Status::Confirmed,
                Paging::LastId => Status::Different,
                Paging::None => Status::Absent,
            },
            format!(
                "{}; arguments ({})",
                match plan.list_paging {
                    Paging::Cursor => "by pageInfo.endCursor",
                    Paging::LastId => "no pageInfo: the source pages with after = the last conversation's id",
                    Paging::None => "no `after`: the listing cannot be paged",
                },
                args(Some("Query"), "conversations")
            ),
        ),
    );
    r.push(
        Check::optional(
            "alli.graphql.conversations.order",
            "order: LAST_CHAT_TIME_DESC (incremental runs stop below the watermark)",
        )
        .confirmed_if(
            plan.ordered,
            Status::Absent,
            if plan.ordered { "accepted".to_string() } else { "not offered: every run reads the whole listing".into() },
        ),
    );
    r.push(
        Check::optional(
            "alli.graphql.chats.paging",
            "a conversation's chats page past the first 100 by pageInfo.endCursor and node(id:)",
        )
        .with(
            match plan.chat_paging {
                Paging::Cursor => Status::Confirmed,
                Paging::LastId => Status::Different,
                Paging::None => Status::Absent,
            },
            format!(
                "{}; chats({})",
                match plan.chat_paging {
                    Paging::Cursor => "by pageInfo.endCursor".to_string(),
                    Paging::LastId => "no pageInfo: the source pages with after = the last chat's id".into(),
                    Paging::None => format!(
                        "no way to page: conversations with {} or more chats are exported as far as read and dead-lettered `incomplete`",
                        MAX_PAGE
                    ),
                },
                args(names.conversation.as_deref(), "chats")
            ),
        ),
    );
    let columns = plan.absent_columns();
    r.push(Check::optional("alli.graphql.columns", "every mapped column has its source field").confirmed_if(
        columns.is_empty(),
        Status::Absent,
        if columns.is_empty() { "all present".to_string() } else { columns.join("; ") },
    ));
}

/// The listing document as the source will send it, for one conversation.
async fn live_query(client: &GraphqlClient, r: &mut ContractReport) -> Result<()> {
    let plan = client.plan();
    let check = Check::required("alli.graphql.conversations.query", "the listing query the source builds is accepted");
    if !plan.missing_required.is_empty() {
        r.push(check.absent(format!("not sent: the schema lacks {}", plan.missing_required.join(", "))));
        return Ok(());
    }
    let mut vars = serde_json::Map::new();
    for (name, value) in [("filter", json!({})), ("first", json!(1))] {
        if plan.list_args.contains_key(name) {
            vars.insert(name.into(), value);
        }
    }
    if plan.chat_args.contains_key("first") {
        vars.insert("chats".into(), json!(MAX_PAGE));
    }
    match client.request("AlliConversations", client.conversations_document(), Value::Object(vars)).await {
        Ok(data) => {
            let nodes: Vec<Value> = data
                .pointer("/conversations/edges")
                .and_then(Value::as_array)
                .map(|e| e.iter().filter_map(|e| e.get("node")).cloned().collect())
                .unwrap_or_default();
            r.push(check.confirmed(format!(
                "{} conversation(s); fields {}",
                nodes.len(),
                nodes.first().map_or("-".into(), keys_of)
            )));
            let unit = nodes
                .first()
                .and_then(|n| n.get("createdAt").or_else(|| n.pointer("/chats/edges/0/node/createdAt")))
                .and_then(unit_of);
            let c = Check::optional("alli.graphql.time_unit", "times are epoch milliseconds");
            r.push(match unit {
                Some(u) => c.confirmed_if(u == TimeUnit::Ms, Status::Different, format!("epoch {}", u.label())),
                None => c.unchecked("no numeric time in the first conversation (ISO strings are read too)"),
            });
        }
        Err(pipe_plugin_sdk::PluginError::Protocol { message, .. }) => r.push(check.absent(client.scrub(&message))),
        Err(e) => return Err(e),
    }
    Ok(())
}
