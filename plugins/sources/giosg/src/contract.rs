//! `pipe validate --check` for giosg: the assumptions of docs/vendors/giosg.md tested against
//! the live organization with a few read-only requests ([`probe`]): the chat listing (newest
//! first, `{next, results}`), one chat's messages, memberships, tags and visitor variables
//! (the fields the mapping reads), and the single-chat GET the incremental runs use to
//! re-check chats that were open.

use std::sync::Arc;

use futures::TryStreamExt;
use pipe_plugin_sdk::contract::{Check, ContractFuture, ContractReport, Status, fields_check, keys_of};
use pipe_plugin_sdk::time::{EpochUnit, Zone, format_micros, now_micros, vendor_time};
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use serde_json::Value;

use crate::GiosgConfig;
use crate::client::GiosgClient;

/// The contract probe of the `giosg` source (a [`pipe_plugin_sdk::contract::ContractProbe`]).
///
/// Errors: the config refused, the token refused (`Auth`), the vendor unreachable.
pub fn probe(config: Value) -> ContractFuture {
    Box::pin(async move {
        let cfg: GiosgConfig = pipe_plugin_sdk::config::parse(config)?;
        let client = GiosgClient::new(&cfg, Arc::new(Metrics::default()))?;
        run(&client).await
    })
}

/// `Ok(Some(items))`, `Ok(None)` for a 404 (the path does not exist), other errors as they are.
async fn collection(client: &GiosgClient, what: Result<Vec<Value>>) -> Result<std::result::Result<Vec<Value>, String>> {
    match what {
        Ok(items) => Ok(Ok(items)),
        Err(PluginError::NotFound { message, .. }) => Ok(Err(client.scrub(&message))),
        Err(PluginError::Http(message)) | Err(PluginError::Protocol { message, .. }) => Ok(Err(client.scrub(&message))),
        Err(e) => Err(e),
    }
}

async fn run(client: &GiosgClient) -> Result<ContractReport> {
    let mut r = ContractReport::new("giosg");
    let listing = Check::required(
        "giosg.chats.listing",
        "GET /api/v5/orgs/{org}/owned_chats?ordering=-created_at answers {next, previous, results}",
    );
    let mut pages = Box::pin(client.pages(client.owned_chats_url()));
    let chats = match pages.try_next().await {
        Ok(Some(items)) => items,
        Ok(None) => Vec::new(),
        Err(PluginError::NotFound { message, .. }) => {
            r.push(listing.absent(client.scrub(&message)));
            return Ok(r);
        }
        Err(e) => return Err(e),
    };
    drop(pages);
    r.push(listing.confirmed(format!("{} chat(s) on the first page", chats.len())));
    r.push(fields_check(
        Check::required(
            "giosg.chats.fields",
            "chats carry id, created_at, updated_at, is_ended, room_id, message_count",
        ),
        &chats,
        &["id", "created_at", "updated_at", "is_ended", "room_id", "message_count"],
    ));
    let times: Vec<i64> = chats
        .iter()
        .filter_map(|c| {
            vendor_time(c.get("created_at"), EpochUnit::ByMagnitude, Zone::UTC, now_micros()).ok().flatten()
        })
        .collect();
    let order = Check::required(
        "giosg.chats.order",
        "ordering=-created_at lists newest first (the scan stops below the watermark)",
    );
    r.push(if times.len() < 2 {
        order.unchecked("fewer than 2 chats with a created_at")
    } else {
        order.confirmed_if(
            times.windows(2).all(|w| w[0] >= w[1]),
            Status::Different,
            format!(
                "created_at of the first page from {} to {}",
                format_micros(times[0]),
                format_micros(times[times.len() - 1])
            ),
        )
    });

    let Some(chat) = chats.iter().find(|c| c.get("id").and_then(Value::as_str).is_some()) else {
        for (name, assumed) in [
            ("giosg.chat.get", "GET …/owned_chats/{id} answers the chat object"),
            ("giosg.messages", "GET …/owned_chats/{id}/messages answers {next, results}"),
            ("giosg.memberships", "GET …/owned_chats/{id}/memberships"),
            ("giosg.tags", "GET …/owned_chats/{id}/tags"),
            ("giosg.variables", "GET …/owned_chats/{id}/visitors/{visitor}/variables"),
        ] {
            r.push(Check::required(name, assumed).unchecked("no chat to look at"));
        }
        return Ok(r);
    };
    let id = chat.get("id").and_then(Value::as_str).unwrap_or_default().to_string();

    let get = Check::required(
        "giosg.chat.get",
        "GET …/owned_chats/{id} answers the chat object (used to re-check chats that were open; giosg.md §2.3 assumes the path)",
    );
    r.push(match client.chat(&id).await {
        Ok(one) => get.confirmed_if(
            one.get("id").and_then(Value::as_str) == Some(id.as_str()),
            Status::Different,
            format!("the listed chat's object: fields {}", keys_of(&one)),
        ),
        Err(PluginError::NotFound { message, .. }) => {
            get.absent(format!("a listed chat answers {}", client.scrub(&message)))
        }
        Err(PluginError::Http(message)) => get.different(client.scrub(&message)),
        Err(e) => return Err(e),
    });

    let messages = Check::required("giosg.messages", "GET …/owned_chats/{id}/messages answers {next, results}");
    match collection(client, client.messages(&id).await).await? {
        Ok(items) => {
            r.push(messages.confirmed(format!("{} message(s)", items.len())));
            r.push(fields_check(
                Check::required("giosg.messages.fields", "messages carry id, created_at, type, sender_type, message"),
                &items,
                &["id", "created_at", "type", "sender_type", "message"],
            ));
            let mut kinds: Vec<String> = items
                .iter()
                .filter_map(|m| m.get("sender_type").and_then(Value::as_str).map(str::to_string))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            kinds.sort();
            let unknown = kinds.iter().any(|k| !["visitor", "user", "rule"].contains(&k.as_str()));
            r.push(Check::optional("giosg.messages.sender_type", "sender_type is visitor, user or rule").confirmed_if(
                !unknown,
                Status::Different,
                format!("seen: {}", if kinds.is_empty() { "none".into() } else { kinds.join(", ") }),
            ));
        }
        Err(why) => r.push(messages.absent(why)),
    }

    let memberships = Check::required("giosg.memberships", "GET …/owned_chats/{id}/memberships");
    let members = match collection(client, client.memberships(&id).await).await? {
        Ok(items) => {
            r.push(memberships.confirmed(format!("{} membership(s)", items.len())));
            r.push(fields_check(
                Check::required("giosg.memberships.fields", "memberships carry member_type, member_id"),
                &items,
                &["member_type", "member_id"],
            ));
            items
        }
        Err(why) => {
            r.push(memberships.absent(why));
            Vec::new()
        }
    };

    let tags = Check::required("giosg.tags", "GET …/owned_chats/{id}/tags");
    match collection(client, client.tags(&id).await).await? {
        Ok(items) => {
            r.push(tags.confirmed(format!("{} tag(s)", items.len())));
            r.push(fields_check(Check::optional("giosg.tags.fields", "tags carry id, name"), &items, &["id", "name"]));
        }
        Err(why) => r.push(tags.absent(why)),
    }

    let variables = Check::required("giosg.variables", "GET …/owned_chats/{id}/visitors/{visitor}/variables");
    match crate::mapping::visitor_id(&members) {
        None => r.push(variables.unchecked("the chat has no visitor membership")),
        Some(visitor) => match collection(client, client.variables(&id, &visitor).await).await? {
            Ok(items) => {
                r.push(variables.confirmed(format!("{} variable(s)", items.len())));
                r.push(fields_check(
                    Check::optional("giosg.variables.fields", "variables carry key, value"),
                    &items,
                    &["key", "value"],
                ));
            }
            Err(why) => r.push(variables.absent(why)),
        },
    }
    Ok(r)
}
