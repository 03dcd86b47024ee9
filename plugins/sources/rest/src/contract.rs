//! `pipe validate --check` for a vendor spec: every assumption the spec writes down tested
//! against the live API with the requests a first run starts with (read-only, nothing
//! exported): the listing's first page and its records, an id for each, a second page when
//! the spec pages, the incremental time and its order (newest first), the first
//! conversation's messages, its completeness count, and the mapping of what came back onto
//! the canonical columns.
//!
//! What a check says it saw is shapes and counts: field names, numbers of records and rows,
//! dead-letter reasons; never a value, never a secret.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipe_plugin_sdk::contract::{Check, ContractFuture, ContractReport, Status, keys_of};
use pipe_plugin_sdk::time::vendor_time;
use pipe_plugin_sdk::{Metrics, PluginError};
use serde_json::Value;

use crate::client::Client;
use crate::config::parse_config;
use crate::configured::Listing;
use crate::mapping::{MapCtx, map_conversation};

/// The contract probe of the `rest` source (a [`pipe_plugin_sdk::contract::ContractProbe`]),
/// named after the spec's vendor (`rest (intercom)`).
///
/// Errors: the config or spec refused, the credentials refused (`Auth`, also by a login
/// request), the vendor unreachable: the probe could not start.
pub fn probe(config: Value) -> ContractFuture {
    Box::pin(async move {
        let loaded = parse_config(config)?;
        let spec = &loaded.spec;
        let vendor = spec.file.vendor.clone();
        let client = Client::connect(&loaded, &vendor, Arc::new(Metrics::default())).await?;
        let vars = loaded.vars()?;
        let mut r = ContractReport::new(format!("rest ({vendor})"));

        // The listing's first page.
        let mut listing = Listing::open(&client, spec, None)?;
        let configured = listing.is_configured();
        let records = match listing.next_page().await {
            Ok(page) => page.map(|p| p.records).unwrap_or_default(),
            Err(e @ (PluginError::Auth { .. } | PluginError::Config { .. })) => return Err(e),
            Err(e) => {
                let seen = client.http().scrub(&e.to_string());
                r.push(Check::required("rest.conversations", "the listing answers").different(seen));
                return Ok(r);
            }
        };
        let what = if configured { "`conversations.records` over `$vars`" } else { "a listing page" };
        let listed = Check::required(
            "rest.conversations.records",
            format!("`conversations.records` gives the conversations of {what}"),
        );
        r.push(match records.first() {
            Some(first) => {
                listed.confirmed(format!("{} records, the first with keys {}", records.len(), keys_of(first)))
            }
            None => listed.unchecked("no conversation on the first page (an empty account?): nothing more to check"),
        });
        if records.is_empty() {
            return Ok(r);
        }
        let ids: Vec<Option<String>> =
            records.iter().map(|c| id_of(spec.programs.conversation_id.first(c, &[&Value::Null]))).collect();
        let with_id = ids.iter().flatten().count();
        r.push(
            Check::required("rest.conversations.id", "`conversations.id` gives a string or number id for every record")
                .confirmed_if(
                    with_id == records.len(),
                    Status::Different,
                    format!("{with_id} of {} records have one", records.len()),
                ),
        );

        // Paging: a second page, when the spec pages and the first one was full enough to have one.
        if !configured && !matches!(spec.file.conversations.paging, crate::spec::PagingSpec::None) {
            let paging =
                Check::optional("rest.conversations.paging", "the listing pages as `conversations.paging` says");
            r.push(match listing.next_page().await {
                Ok(Some(page)) => paging.confirmed(format!("a second page of {} records", page.records.len())),
                Ok(None) => paging.unchecked("the account fits on one page: the next position was not tried"),
                Err(e) => paging.different(client.http().scrub(&e.to_string())),
            });
        }

        // Incremental: a readable time on every record, newest first.
        if let Some(p) = &spec.programs.time {
            let (unit, zone) = (spec.file.time_unit.epoch_unit(), spec.file.zone());
            let times: Vec<Option<i64>> = records
                .iter()
                .map(|c| {
                    p.first(c, &[&Value::Null])
                        .ok()
                        .and_then(|v| vendor_time(Some(&v), unit, zone, i64::MAX).ok().flatten())
                })
                .collect();
            let readable: Vec<i64> = times.iter().flatten().copied().collect();
            r.push(
                Check::required(
                    "rest.incremental.time",
                    "`incremental.time` gives a readable time for every conversation",
                )
                .confirmed_if(
                    readable.len() == records.len(),
                    Status::Different,
                    format!("{} of {} records have one", readable.len(), records.len()),
                ),
            );
            let newest_first = readable.windows(2).all(|w| w[0] >= w[1]);
            r.push(
                Check::required("rest.incremental.order", "the listing is ordered by that time, newest first")
                    .confirmed_if(
                        newest_first,
                        Status::Different,
                        if newest_first {
                            format!("{} times, descending", readable.len())
                        } else {
                            "not descending: an incremental scan would stop early".to_string()
                        },
                    ),
            );
        }

        // The first conversation with an id: its messages, completeness and mapping.
        let Some((id, record)) = ids.iter().zip(&records).find_map(|(id, c)| Some((id.clone()?, c.clone()))) else {
            return Ok(r);
        };
        let bundle = match client.bundle(id, record).await {
            Ok(b) => b,
            Err(e @ PluginError::Auth { .. }) => return Err(e),
            Err(e) => {
                let seen = client.http().scrub(&e.to_string());
                r.push(Check::required("rest.messages", "the first conversation's messages answer").different(seen));
                return Ok(r);
            }
        };
        let messages =
            Check::required("rest.messages.records", "`messages.records` gives the messages of a conversation");
        r.push(match bundle.records.first() {
            Some(first) => {
                messages.confirmed(format!("{} records, the first with keys {}", bundle.records.len(), keys_of(first)))
            }
            None => messages.unchecked("the first conversation has no message"),
        });
        if spec.programs.count.is_some() {
            let count = Check::optional(
                "rest.completeness.count",
                "`completeness.count` equals the message records that arrived",
            );
            r.push(match bundle.count {
                Some(n) => count.confirmed_if(
                    n == bundle.records.len() as u64,
                    Status::Different,
                    format!("count {n}, records {}", bundle.records.len()),
                ),
                None => count.absent("the vendor gave no count"),
            });
        }
        let http = client.http().clone();
        let scrub = move |s: &str| http.scrub(s);
        let ctx = MapCtx::of_spec(&spec.file, &vendor, "contract-check", &vars, &scrub);
        let mapped = map_conversation(&ctx, &spec.programs, &bundle);
        r.push(Check::required("rest.map.conversation", "`map.conversation` gives the conversation row").confirmed_if(
            mapped.conversation.is_some(),
            Status::Different,
            if mapped.conversation.is_some() { "one row".to_string() } else { "no row".to_string() },
        ));
        let rows = mapped.messages.len();
        r.push(
            Check::required("rest.map.message", "`map.message` gives message rows with `message_id` and `sent_at`")
                .confirmed_if(
                    rows > 0 || bundle.records.is_empty(),
                    Status::Different,
                    format!("{rows} rows from {} records", bundle.records.len()),
                ),
        );
        let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
        for dl in &mapped.dead_letters {
            *reasons.entry(dl.reason.as_str()).or_default() += 1;
        }
        let listed: Vec<String> = reasons.iter().map(|(k, n)| format!("{k} ({n})")).collect();
        r.push(
            Check::optional(
                "rest.map.dead_letters",
                "every record of the first conversation maps without a dead letter",
            )
            .confirmed_if(
                reasons.is_empty(),
                Status::Different,
                if reasons.is_empty() { "none".to_string() } else { listed.join(", ") },
            ),
        );
        Ok(r)
    })
}

/// A conversation id as the crawl reads it: a non-empty string or a number.
fn id_of(v: Result<Value, String>) -> Option<String> {
    match v {
        Ok(Value::String(s)) if !s.is_empty() => Some(s),
        Ok(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}
