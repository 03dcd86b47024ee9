//! The crawl of a spec'd vendor, on the SDK's source kit: the conversation listing page by
//! page, each conversation completed with its messages and extras (bounded concurrency,
//! listing order kept), mapped and emitted through the crawl driver (checkpoints, batch cuts,
//! the retry-budget and listing-cut endings).
//!
//! With `[incremental]` the listing is taken to be ordered newest first by `incremental.time`
//! and read down to the floor of the SDK's [`WatermarkCursor`] (watermark minus lookback, or
//! `start` on a first run): the same scan as the native Alli source, so a spec of a vendor
//! behaves like a native source across runs (unchanged conversations skipped, interrupted
//! scans resumed, the watermark never past now). The floor is also sent as
//! `incremental.param` when the spec names one. Without `[incremental]` every run reads the
//! whole listing.
//!
//! State (layout version 1): `{"version", "watermark", "seen": {id: time µs}, "scan", "unit"}`
//! (`unit`: `s`, `ms` or `us`, the unit the listing's numeric times were seen in, for
//! `format = "auto"`).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::schema::CONVERSATIONS;
use pipe_plugin_sdk::source_kit::{
    Crawl, CrawlSource, CrawlSpec, Emitter, MAX_CLOCK_SKEW_US, Mark, WatermarkCursor, cut_conversation,
    cut_listed_conversation, load_state,
};
use pipe_plugin_sdk::time::{EpochUnit, format_micros, now_micros, parse_timestamp_micros, vendor_time};
use pipe_plugin_sdk::{DeadLetter, Metrics, PluginError, Result, SourceContext};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::client::Client;
use crate::config::Loaded;
use crate::configured::Listing;
use crate::conversation_watermark::{self, ConversationMark};
use crate::mapping::{MapCtx, map_conversation};
use crate::spec::ParamFormat;

/// Layout version of the saved state.
pub const STATE_VERSION: u32 = 1;

/// The saved state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestState {
    /// Watermark, lookback window and interrupted scan, by listing time.
    #[serde(flatten)]
    pub cursor: WatermarkCursor<i64>,
    /// The unit the listing's numeric times were seen in (`s`, `ms`, `us`).
    pub unit: Option<String>,
    /// With `conversation_watermarks`: the watermark of each conversation
    /// ([`crate::conversation_watermark`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conversations: BTreeMap<String, ConversationMark>,
}

impl RestState {
    fn from_state(state: Option<&Value>, vendor: &str) -> Result<Self> {
        Ok(load_state(state, vendor, |s: &RestState| s.cursor.version == STATE_VERSION)?.unwrap_or_else(|| RestState {
            cursor: WatermarkCursor::new(STATE_VERSION),
            unit: None,
            conversations: BTreeMap::new(),
        }))
    }

    fn to_state(&self) -> Value {
        serde_json::to_value(self).expect("the state serializes")
    }
}

/// Starts the crawl on the current tokio runtime.
///
/// Errors: a saved state of another layout; a bad `account_id`.
pub fn open(loaded: Loaded, ctx: SourceContext) -> Result<CrawlSource> {
    let vendor = interned(&loaded.spec.file.vendor);
    let state = RestState::from_state(ctx.state.as_ref(), vendor)?;
    let account_id = loaded.account_id()?;
    let spec = CrawlSpec {
        vendor,
        account_id: account_id.clone(),
        checkpoint_every: u64::from(loaded.config.checkpoint_every.max(1)),
        unit: "conversations",
        metrics: ctx.metrics.clone(),
    };
    let crawl = RestCrawl {
        vendor,
        account_id,
        concurrency: loaded.config.http.concurrency(),
        limit: ctx.limit,
        metrics: ctx.metrics.clone(),
        lookback_us: loaded.lookback_us(),
        start_us: loaded.config.start.as_deref().and_then(parse_timestamp_micros),
        state,
        loaded,
    };
    Ok(CrawlSource::spawn(spec, crawl))
}

/// `dead_letter` with the spec's `messages.gone_reason` when it is a `conversation_gone` one.
fn gone_reason(mut dead_letter: DeadLetter, reason: Option<&str>) -> DeadLetter {
    if let Some(r) = reason
        && dead_letter.reason == pipe_plugin_sdk::REASON_CONVERSATION_GONE
    {
        dead_letter.reason = r.to_string();
    }
    dead_letter
}

/// The crawl driver names the vendor with a `&'static str`: each distinct vendor name is kept
/// once for the life of the process (not once per source opened).
fn interned(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let n: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(n);
    n
}

struct RestCrawl {
    vendor: &'static str,
    loaded: Loaded,
    account_id: String,
    concurrency: usize,
    limit: Option<u64>,
    metrics: Arc<Metrics>,
    lookback_us: i64,
    start_us: Option<i64>,
    state: RestState,
}

#[async_trait::async_trait]
impl Crawl for RestCrawl {
    async fn run(&mut self, out: &mut Emitter) -> Result<()> {
        let client = Client::connect(&self.loaded, self.vendor, self.metrics.clone()).await?;
        let mut state = self.state.clone();
        let result = self.scan(&client, out, &mut state).await;
        self.state = state;
        result
    }

    fn state(&self) -> Value {
        self.state.to_state()
    }
}

/// The unit name of an epoch number, by magnitude.
fn unit_name(n: f64) -> &'static str {
    match EpochUnit::ByMagnitude.of(n) {
        EpochUnit::Seconds => "s",
        EpochUnit::Millis => "ms",
        _ => "us",
    }
}

fn from_micros(us: i64, unit: &str) -> i64 {
    match unit {
        "s" => us.div_euclid(1_000_000),
        "ms" => us.div_euclid(1_000),
        _ => us,
    }
}

impl RestCrawl {
    /// The listing time of a conversation record (µs): bad ones are `None`, future ones count
    /// as now + the cursor's clock skew (one record dated 2099 does not move the scan's top).
    /// Also the unit of the raw value, when it is a number.
    fn listing_time(&self, record: &Value) -> (Option<i64>, Option<&'static str>) {
        let Some(p) = &self.loaded.spec.programs.time else { return (None, None) };
        let Ok(v) = p.first(record, &[&Value::Null]) else { return (None, None) };
        let unit = match &v {
            Value::Number(n) => n.as_f64().map(unit_name),
            Value::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()).map(unit_name),
            _ => None,
        };
        let t =
            vendor_time(Some(&v), self.loaded.spec.file.time_unit.epoch_unit(), self.loaded.spec.file.zone(), i64::MAX)
                .ok()
                .flatten();
        (t.map(|t| t.min(now_micros().saturating_add(MAX_CLOCK_SKEW_US))), unit)
    }

    /// The listing's incremental query parameter for `floor`, if the spec sends one.
    fn floor_param(&self, floor: Option<i64>, unit: Option<&str>) -> Option<(String, String)> {
        let inc = self.loaded.spec.file.incremental.as_ref()?;
        let (param, floor) = (inc.param.clone()?, floor?);
        let value = match inc.format {
            // On a first run the unit is unknown, and a wrong guess would filter everything out.
            ParamFormat::Auto => from_micros(floor, unit?).to_string(),
            ParamFormat::EpochS => from_micros(floor, "s").to_string(),
            ParamFormat::EpochMs => from_micros(floor, "ms").to_string(),
            ParamFormat::EpochUs => floor.to_string(),
            ParamFormat::Rfc3339 => format_micros(floor),
        };
        Some((param, value))
    }

    /// Newest first down to the floor; ends with a checkpoint.
    async fn scan(&self, client: &Client, out: &mut Emitter, state: &mut RestState) -> Result<()> {
        let incremental = self.loaded.spec.file.incremental.is_some();
        let floor = if incremental { state.cursor.floor(self.lookback_us, self.start_us) } else { None };
        let mut listing = Listing::open(client, &self.loaded.spec, self.floor_param(floor, state.unit.as_deref()))?;
        let configured = listing.is_configured();
        let mut listed: Vec<String> = Vec::new();
        let mut newest: Option<i64> = None;
        let mut window_floor = i64::MIN;
        let mut pending: Vec<(String, Value, Option<i64>)> = Vec::new();
        let mut complete = true;
        let mut cut = None;
        loop {
            let page = match listing.next_page().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                // The conversations read before it are still emitted, then the driver ends
                // the run partial with the cut's reason.
                Err(e @ PluginError::ListingCut { .. }) => {
                    cut = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut any_above = page.records.is_empty();
            for record in page.records {
                let (t, unit) = if incremental { self.listing_time(&record) } else { (None, None) };
                if let (Some(f), Some(t)) = (floor, t)
                    && t < f
                {
                    continue;
                }
                any_above = true;
                if state.unit.is_none()
                    && let Some(unit) = unit
                {
                    state.unit = Some(unit.to_string());
                }
                if incremental && let (None, Some(top)) = (newest, t) {
                    state.cursor.begin_scan(top, None);
                    window_floor = state.cursor.window_floor(top, self.lookback_us);
                }
                if let Some(t) = t {
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
                let id = match self.loaded.spec.programs.conversation_id.first(&record, &[&Value::Null]) {
                    Ok(Value::String(s)) if !s.is_empty() => s,
                    Ok(Value::Number(n)) => n.to_string(),
                    _ => {
                        let dl = DeadLetter {
                            stream: CONVERSATIONS.into(),
                            key: json!({"vendor": self.vendor, "account_id": self.account_id}),
                            stage: self.vendor.into(),
                            reason: "unparsable_conversation".into(),
                            message: "conversation has no string or number id (conversations.id)".into(),
                            raw: serde_json::from_str(&client.http().scrub(&record.to_string())).unwrap_or(Value::Null),
                        };
                        out.dead_letter(dl).await?;
                        continue;
                    }
                };
                listed.push(id.clone());
                if !incremental || state.cursor.needs_emit(&id, t.map(Mark::at)) {
                    pending.push((id, record, t));
                }
            }
            if pending.len() >= self.concurrency * 8
                && !self.emit(client, std::mem::take(&mut pending), state, out, window_floor, configured).await?
            {
                complete = false;
                break;
            }
            // Sorted newest first: a page wholly below the floor ends the scan.
            if floor.is_some() && !any_above {
                break;
            }
        }
        if complete && !self.emit(client, std::mem::take(&mut pending), state, out, window_floor, configured).await? {
            complete = false;
        }
        if let Some(e) = cut {
            return Err(e);
        }
        if complete && incremental {
            state.cursor.complete_scan(newest, self.lookback_us);
        }
        if complete {
            // Bounded by the listing: conversations no longer listed are forgotten.
            let listed: std::collections::HashSet<String> = listed.into_iter().collect();
            state.conversations.retain(|id, _| listed.contains(id));
        }
        out.checkpoint(state.to_state()).await
    }

    /// Fetches and emits `convs` (bounded concurrency, listing order kept). Returns false when
    /// `--limit` stopped it.
    async fn emit(
        &self,
        client: &Client,
        convs: Vec<(String, Value, Option<i64>)>,
        state: &mut RestState,
        out: &mut Emitter,
        window_floor: i64,
        configured: bool,
    ) -> Result<bool> {
        if self.limit.is_some_and(|l| out.emitted() >= l) {
            return Ok(false);
        }
        let incremental = self.loaded.spec.file.incremental.is_some();
        let mut bundles = stream::iter(convs)
            .map(|(id, record, t)| {
                let client = client.clone();
                let account_id = self.account_id.clone();
                let vendor = self.vendor;
                async move {
                    let fetched = client.bundle(id.clone(), record).await;
                    // Gone, forbidden, looping or too large: this conversation's dead letter
                    // (a configured one's 403 is refused credentials: the run stops).
                    let bundle = if configured {
                        cut_conversation(fetched, vendor, &account_id, &id)?
                    } else {
                        cut_listed_conversation(fetched, vendor, &account_id, &id)?
                    };
                    Ok::<_, PluginError>((bundle, t))
                }
            })
            .buffered(self.concurrency);
        let spec = &self.loaded.spec;
        let vars = self.loaded.vars()?;
        let http = client.http().clone();
        let scrub = move |s: &str| http.scrub(s);
        while let Some((fetched, t)) = bundles.try_next().await? {
            if self.limit.is_some_and(|l| out.emitted() >= l) {
                return Ok(false);
            }
            // Not recorded in the cursor: a later run that still lists it tries it again.
            let bundle = match fetched {
                Ok(bundle) => bundle,
                Err(cut) => {
                    out.dead_letter(gone_reason(cut, spec.file.messages.gone_reason.as_deref())).await?;
                    continue;
                }
            };
            let ctx = MapCtx::of_spec(&spec.file, self.vendor, &self.account_id, &vars, &scrub);
            let mut mapped = map_conversation(&ctx, &spec.programs, &bundle);
            if spec.file.conversation_watermarks {
                mapped = conversation_watermark::select_new(state.conversations.get(&bundle.id), mapped);
                conversation_watermark::record(&mut state.conversations, &bundle.id, &mapped.messages);
            }
            for dl in mapped.dead_letters {
                out.dead_letter(dl).await?;
            }
            out.append(&mapped.messages, mapped.conversation.as_ref());
            if incremental && let Some(c) = &mapped.conversation {
                state.cursor.record(&c.conversation_id, t.map(Mark::at), window_floor, true);
            }
            out.advance(u64::from(mapped.conversation.is_some()), || state.to_state()).await?;
        }
        Ok(self.limit.is_none_or(|l| out.emitted() < l))
    }
}
