//! `pipe validate --check` for Aimylogic: the assumptions of docs/vendors/aimylogic.md about the
//! Chat API history tested against the live channel with a few read-only requests
//! ([`probe`]): the history's shape and fields, whether it honours the page size (`limit`) and
//! `offset` (two overlapping pages must overlap by exactly one item), and what the times look
//! like (epoch numbers, or ISO strings with or without a zone offset).
//!
//! In `mode = "webhook"` nothing is requested (the vendor calls `pipe`): the report says so.

use std::sync::Arc;

use pipe_plugin_sdk::contract::{Check, ContractFuture, ContractReport, Status, json_kind, keys_of};
use pipe_plugin_sdk::http::HttpClient;
use pipe_plugin_sdk::{Metrics, PluginError, Result};
use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde_json::Value;

use crate::client::encode_segment;
use crate::mapping::history_items;
use crate::{AimylogicConfig, Mode};

/// Items per page of the paging checks (small, so a client with a short history still shows
/// whether `offset` is honoured).
const PROBE_PAGE: usize = 3;

/// Clients tried for one with enough history.
const CLIENTS_TRIED: usize = 5;

/// The contract probe of the `aimylogic` source (a [`pipe_plugin_sdk::contract::ContractProbe`]).
///
/// Errors: the config refused, the token refused (`Auth`), the vendor unreachable.
pub fn probe(config: Value) -> ContractFuture {
    Box::pin(async move {
        let cfg: AimylogicConfig = pipe_plugin_sdk::config::parse(config)?;
        let mut r = ContractReport::new("aimylogic");
        if cfg.mode == Mode::Webhook {
            r.push(Check::optional("aimylogic.webhook", "the vendor POSTs events to the listener").unchecked(
                "mode = \"webhook\": nothing to request from the vendor; the listener's own checks run at `pipe run`",
            ));
            return Ok(r);
        }
        let token = cfg.token.expose().trim().to_string();
        if token.is_empty() {
            return Err(PluginError::Config { path: "token".into(), message: "must not be empty".into() });
        }
        let encoded = encode_segment(&token);
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
        let http = HttpClient::new(cfg.http.settings(), headers, Arc::new(Metrics::default()))?
            .redact(token)
            .redact(encoded.clone());
        let root = format!("{}/chatapi/{encoded}", cfg.http.base_url()?);
        let clients = cfg.all_client_ids()?;
        history(&http, &root, &clients, cfg.page_size.max(1) as usize, &mut r).await?;
        Ok(r)
    })
}

fn page_url(root: &str, client: &str, limit: usize, offset: usize) -> String {
    format!("{root}/client/{}/history?limit={limit}&offset={offset}", encode_segment(client))
}

/// A stable identity of a history item for comparing pages: its `questionId`, else the item.
fn identity(item: &Value) -> String {
    match item.get("questionId") {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Number(_)) => v.to_string(),
        _ => item.to_string(),
    }
}

/// `Ok(Some(items))`, `Ok(None)` for an unknown client (404), or the body's shape when it is
/// not a history.
async fn page(http: &HttpClient, url: &str) -> Result<std::result::Result<Option<Vec<Value>>, String>> {
    match http.get_json(url).await {
        Ok(body) => Ok(match history_items(&body) {
            Some(items) => Ok(Some(items)),
            None => Err(format!("a {} with keys {}", json_kind(&body), keys_of(&body))),
        }),
        Err(PluginError::NotFound { .. }) => Ok(Ok(None)),
        Err(e) => Err(e),
    }
}

async fn history(
    http: &HttpClient,
    root: &str,
    clients: &[String],
    page_size: usize,
    r: &mut ContractReport,
) -> Result<()> {
    let shape = Check::required(
        "aimylogic.history",
        "GET /chatapi/{token}/client/{clientId}/history answers the items (an array, or under messages/history/items/events)",
    );
    // The first configured client with a history, preferring one longer than two probe pages.
    let mut chosen: Option<(String, Vec<Value>)> = None;
    let mut unknown = 0;
    for client in clients.iter().take(CLIENTS_TRIED) {
        match page(http, &page_url(root, client, page_size, 0)).await? {
            Err(why) => {
                r.push(shape.absent(
                    http.scrub(&format!("client {}: {why}", clients.iter().position(|c| c == client).unwrap_or(0) + 1)),
                ));
                return Ok(());
            }
            Ok(None) => unknown += 1,
            Ok(Some(items)) => {
                let long = items.len() > 2 * PROBE_PAGE;
                if chosen.as_ref().is_none_or(|(_, best)| items.len() > best.len()) {
                    chosen = Some((client.clone(), items));
                }
                if long {
                    break;
                }
            }
        }
    }
    let Some((client, items)) = chosen else {
        r.push(shape.unchecked(format!(
            "none of the first {} configured client(s) is known to the channel (HTTP 404)",
            unknown
        )));
        return Ok(());
    };
    let which = clients.iter().position(|c| *c == client).map_or(0, |i| i + 1);
    r.push(shape.confirmed(format!("configured client #{which}: {} item(s) with limit={page_size}", items.len())));
    r.push(pipe_plugin_sdk::contract::fields_check(
        Check::required("aimylogic.history.fields", "items carry questionId and timestamp"),
        &items,
        &["questionId", "timestamp"],
    ));
    r.push(zone(&items));

    // Page size: a page asked for PROBE_PAGE items.
    let size = Check::required(
        "aimylogic.history.limit",
        format!("limit=k answers k items while there are more (k = {PROBE_PAGE})"),
    );
    let first = match page(http, &page_url(root, &client, PROBE_PAGE, 0)).await? {
        Ok(Some(p)) => p,
        _ => {
            r.push(size.different("the client's history disappeared between two requests"));
            return Ok(());
        }
    };
    let offset = Check::required(
        "aimylogic.history.offset",
        format!(
            "offset=k-1 starts at the k-th item: pages at offset 0 and {} overlap by exactly one item",
            PROBE_PAGE - 1
        ),
    );
    // A short page: the history's end, or a cap below `limit` (then more follow it).
    let after_short = if first.len() < PROBE_PAGE {
        match page(http, &page_url(root, &client, PROBE_PAGE, first.len())).await? {
            Ok(Some(p)) => p.len(),
            _ => 0,
        }
    } else {
        0
    };
    if first.len() < PROBE_PAGE && after_short == 0 {
        r.push(size.unchecked(format!("configured client #{which} has only {} item(s)", first.len())));
        r.push(offset.unchecked("too short a history to compare pages"));
        return Ok(());
    }
    r.push(size.confirmed_if(
        first.len() == PROBE_PAGE,
        Status::Different,
        format!(
            "limit={PROBE_PAGE} answered {} item(s){}",
            first.len(),
            match first.len().cmp(&PROBE_PAGE) {
                std::cmp::Ordering::Less => format!(
                    " (the server caps the page below what was asked: offset={} answered {after_short} more)",
                    first.len()
                ),
                std::cmp::Ordering::Greater => " (the server ignores limit)".into(),
                std::cmp::Ordering::Equal => String::new(),
            }
        ),
    ));
    let second = match page(http, &page_url(root, &client, PROBE_PAGE, PROBE_PAGE - 1)).await? {
        Ok(Some(p)) => p,
        _ => Vec::new(),
    };
    let a: Vec<String> = first.iter().map(identity).collect();
    let b: Vec<String> = second.iter().map(identity).collect();
    let overlap = b.iter().filter(|x| a.contains(x)).count();
    let seen = format!(
        "offset 0: {} item(s), offset {}: {} item(s), {overlap} in common{}",
        a.len(),
        PROBE_PAGE - 1,
        b.len(),
        if !a.is_empty() && a == b { " (the same page: offset ignored)" } else { "" }
    );
    let honoured = a.len() >= PROBE_PAGE && b.first() == a.last() && overlap == 1;
    r.push(offset.confirmed_if(honoured, Status::Different, seen));
    Ok(())
}

/// What the items' times look like: epoch numbers are zone-free; ISO strings with an offset
/// say their zone; ISO strings without one are read in the configured zone (UTC by default).
fn zone(items: &[Value]) -> Check {
    let check = Check::optional(
        "aimylogic.history.time_zone",
        "timestamp is epoch milliseconds, or an ISO-8601 string with a zone offset (zone-less strings are read as UTC unless configured)",
    );
    let times: Vec<&Value> = items.iter().filter_map(|i| i.get("timestamp")).filter(|t| !t.is_null()).collect();
    let Some(t) = times.first() else { return check.unchecked("no item with a timestamp") };
    let describe = |t: &Value| -> (&'static str, String) {
        match t {
            Value::Number(n) => ("epoch", format!("epoch number {n} (zone-free)")),
            Value::String(s) => {
                let tail = s.rsplit_once(['T', ' ']).map_or(s.as_str(), |(_, tail)| tail);
                let zoned = tail.ends_with('Z') || tail.ends_with('z') || tail.contains('+') || tail.contains('-');
                if zoned {
                    ("zoned", format!("ISO string with a zone, e.g. `{s}`"))
                } else if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
                    ("epoch", format!("numeric string `{s}` (zone-free)"))
                } else {
                    ("zone-less", format!("ISO string without a zone, e.g. `{s}`"))
                }
            }
            other => ("other", format!("a {}", json_kind(other))),
        }
    };
    let (kind, seen) = describe(t);
    let mixed = times.iter().any(|x| describe(x).0 != kind);
    let seen = format!("{} item time(s): {seen}{}", times.len(), if mixed { "; mixed forms" } else { "" });
    match kind {
        "epoch" | "zoned" if !mixed => check.confirmed(seen),
        "zone-less" => check.different(format!("{seen}; the zone is the `timezone` key's (default UTC)")),
        _ => check.different(seen),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn time_forms() {
        assert_eq!(zone(&[json!({"timestamp": 1717243200000_i64})]).status, Status::Confirmed);
        assert_eq!(zone(&[json!({"timestamp": "2024-06-01T12:00:00+03:00"})]).status, Status::Confirmed);
        assert_eq!(zone(&[json!({"timestamp": "2024-06-01T12:00:00Z"})]).status, Status::Confirmed);
        let naive = zone(&[json!({"timestamp": "2024-06-01T12:00:00"})]);
        assert_eq!(naive.status, Status::Different, "{}", naive.seen);
        assert_eq!(zone(&[json!({"x": 1})]).status, Status::Unchecked);
    }
}
