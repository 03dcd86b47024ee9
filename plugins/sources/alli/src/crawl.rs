//! The Alli crawl (docs/vendors/alli.md §2.4): conversations newest last chat first, down to
//! the watermark cursor's floor, each completed with every chat (bounded concurrency, list
//! order kept).
//!
//! Both APIs list conversations newest **last chat time** first (REST's default order;
//! GraphQL's `LAST_CHAT_TIME_DESC`). A new chat moves a conversation's last chat time up, so a
//! run only needs the conversations whose last chat is at or above the **watermark** (the
//! newest last chat time of the last complete scan) minus `lookback_hours` (late writes,
//! clock skew). Neither API gets a time filter: REST's `startedAt` takes a number in a unit no
//! public page states (alli.md §1), and a wrong unit would filter everything out and end the
//! run with success; GraphQL's date filters are as loosely documented. The scan stops
//! client-side, after a whole page below the floor — and only while the listing is seen in
//! order: a conversation listed with a later last chat time than one before it turns the early
//! stop off for the rest of the run (every conversation is read, none is lost). Without
//! `Conversation.lastChatTime` (GraphQL), a conversation's time is its newest chat's when the
//! nested page holds them all, else unknown (always fetched).
//!
//! The cursor is the SDK's [`WatermarkCursor`] keyed by last chat time (an entry is a bare
//! time), plus the unit of the API's numeric timestamps: [`AlliState`], layout version 1, as
//! saved by earlier versions of this plugin.

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::source_kit::{
    Crawl, CrawlSource, CrawlSpec, Emitter, Mark, WatermarkCursor, cut_listed_conversation, load_state,
};
use pipe_plugin_sdk::time::{now_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{Result, SourceContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::client::Client;
use crate::mapping::{TimeUnit, map_conversation, unit_of};
use crate::{AlliConfig, VENDOR};

/// Layout version of the saved state (a state of another version is refused).
pub const STATE_VERSION: u32 = 1;

/// The saved state: `{"version", "watermark", "unit", "seen": {id: last chat time µs}, "scan"}`
/// (`unit` is informational since no filter is sent in it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlliState {
    /// Watermark, lookback window and interrupted scan, by last chat time.
    #[serde(flatten)]
    pub cursor: WatermarkCursor<i64>,
    /// The unit the API's numeric timestamps were seen in (`ms` or `s`).
    pub unit: Option<TimeUnit>,
}

impl AlliState {
    /// The state from the engine's saved state; a first run (`None`) starts empty.
    ///
    /// Errors: a state of another layout or version: reset it with `pipe state reset`.
    pub fn from_state(state: Option<&Value>) -> Result<Self> {
        Ok(load_state(state, VENDOR, |s: &AlliState| s.cursor.version == STATE_VERSION)?
            .unwrap_or_else(|| AlliState { cursor: WatermarkCursor::new(STATE_VERSION), unit: None }))
    }

    /// As checkpoint JSON.
    pub fn to_state(&self) -> Value {
        serde_json::to_value(self).expect("the state serializes")
    }
}

/// Starts the crawl on the current tokio runtime. The config must have passed
/// [`AlliConfig::validate`].
///
/// Errors: a saved state of another layout.
pub fn open(cfg: AlliConfig, ctx: SourceContext) -> Result<CrawlSource> {
    let state = AlliState::from_state(ctx.state.as_ref())?;
    let spec = CrawlSpec {
        vendor: VENDOR,
        account_id: cfg.account_id(),
        checkpoint_every: u64::from(cfg.checkpoint_every.max(1)),
        unit: "conversations",
        metrics: ctx.metrics.clone(),
    };
    let crawl = AlliCrawl {
        account_id: cfg.account_id(),
        concurrency: cfg.http.concurrency(),
        limit: ctx.limit,
        metrics: ctx.metrics.clone(),
        // Saturating: `lookback_hours = 4294967295` overflows i64 microseconds.
        lookback_us: i64::from(cfg.lookback_hours).saturating_mul(3_600_000_000),
        start_us: cfg.start.as_deref().and_then(parse_timestamp_micros),
        state,
        cfg,
    };
    Ok(CrawlSource::spawn(spec, crawl))
}

struct AlliCrawl {
    cfg: AlliConfig,
    account_id: String,
    concurrency: usize,
    limit: Option<u64>,
    metrics: std::sync::Arc<pipe_plugin_sdk::Metrics>,
    lookback_us: i64,
    start_us: Option<i64>,
    state: AlliState,
}

#[pipe_plugin_sdk::reexports::async_trait]
impl Crawl for AlliCrawl {
    async fn run(&mut self, out: &mut Emitter) -> Result<()> {
        let client = Client::connect(&self.cfg, self.metrics.clone()).await?;
        let mut state = self.state.clone();
        let result = self.scan(&client, out, &mut state).await;
        self.state = state;
        result
    }

    fn state(&self) -> Value {
        self.state.to_state()
    }
}

impl AlliCrawl {
    /// Newest last chat first down to the floor; ends with a checkpoint.
    async fn scan(&self, client: &Client, out: &mut Emitter, state: &mut AlliState) -> Result<()> {
        let floor = state.cursor.floor(self.lookback_us, self.start_us);
        // No server-side time filter: REST's `startedAt` unit is undocumented and a wrong guess
        // would filter everything out (alli.md §1). The scan stops client-side instead, and
        // only while the listing is seen sorted newest first.
        let mut listing = client.listing();
        let mut sorted = client.ordered();
        if floor.is_some() && !sorted {
            tracing::warn!(
                vendor = VENDOR,
                "the conversation listing has no newest-first order: every run reads all of it"
            );
        }
        let mut lowest_seen: Option<i64> = None;
        let mut newest: Option<i64> = None;
        let mut window_floor = i64::MIN;
        let mut pending: Vec<(Value, Option<i64>)> = Vec::new();
        let mut complete = true;
        // A listing that loops (or answers too much) ends here; the conversations read before
        // it are still emitted, then the error ends the run partial (the driver checkpoints).
        let mut cut = None;
        loop {
            let page = match listing.try_next().await {
                Ok(Some(page)) => page,
                Ok(None) => break,
                Err(e @ pipe_plugin_sdk::PluginError::ListingCut { .. }) => {
                    cut = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            let mut any_above = page.is_empty();
            for conv in page {
                let t = client.listing_time(&conv);
                if let Some(t) = t {
                    // A time above one listed earlier: the order is not what the early stop
                    // relies on, so this scan reads the whole listing.
                    if sorted && lowest_seen.is_some_and(|low| t > low) {
                        tracing::warn!(
                            vendor = VENDOR,
                            "the conversation listing is not sorted newest last chat first: this run reads all of it"
                        );
                        sorted = false;
                    }
                    lowest_seen = Some(lowest_seen.map_or(t, |low| low.min(t)));
                }
                if let (Some(f), Some(t)) = (floor, t)
                    && t < f
                {
                    continue;
                }
                any_above = true;
                if state.unit.is_none()
                    && let Some(unit) =
                        conv.get("lastChatTime").and_then(unit_of).or_else(|| conv.get("createdAt").and_then(unit_of))
                {
                    tracing::info!(vendor = VENDOR, unit = ?unit, "numeric timestamps are epoch {}", unit.label());
                    state.unit = Some(unit);
                }
                if let (None, Some(top)) = (newest, t) {
                    state.cursor.begin_scan(top, None);
                    window_floor = state.cursor.window_floor(top, self.lookback_us);
                }
                if let Some(t) = t {
                    newest = Some(newest.map_or(t, |n| n.max(t)));
                }
                let id = conv.get("id").and_then(Value::as_str).unwrap_or_default();
                if state.cursor.needs_emit(id, t.map(Mark::at)) {
                    pending.push((conv, t));
                }
            }
            if pending.len() >= self.concurrency * 8
                && !self.emit(client, std::mem::take(&mut pending), state, out, window_floor).await?
            {
                complete = false;
                break;
            }
            // Sorted newest first: a page entirely below the floor ends the scan.
            if floor.is_some() && !any_above && sorted {
                break;
            }
        }
        if complete && !self.emit(client, std::mem::take(&mut pending), state, out, window_floor).await? {
            complete = false;
        }
        if let Some(e) = cut {
            return Err(e);
        }
        if complete {
            state.cursor.complete_scan(newest, self.lookback_us);
        }
        out.checkpoint(state.to_state()).await
    }

    /// Fetches and emits `convs` (bounded concurrency, list order kept); the driver
    /// checkpoints every `checkpoint_every` conversations. Returns false when `--limit`
    /// stopped it.
    async fn emit(
        &self,
        client: &Client,
        convs: Vec<(Value, Option<i64>)>,
        state: &mut AlliState,
        out: &mut Emitter,
        window_floor: i64,
    ) -> Result<bool> {
        if self.limit.is_some_and(|l| out.emitted() >= l) {
            return Ok(false);
        }
        let mut bundles = stream::iter(convs)
            .map(|(conv, t)| {
                let client = client.clone();
                let account_id = self.account_id.clone();
                async move {
                    let id = conv.get("id").and_then(Value::as_str).unwrap_or_default().to_string();
                    // A conversation whose chats loop or are too large is its own dead letter.
                    let bundle = cut_listed_conversation(client.bundle(conv).await, VENDOR, &account_id, &id)?;
                    Ok::<_, pipe_plugin_sdk::PluginError>((bundle, t))
                }
            })
            .buffered(self.concurrency);
        while let Some((fetched, t)) = bundles.try_next().await? {
            if self.limit.is_some_and(|l| out.emitted() >= l) {
                return Ok(false);
            }
            // Not recorded in the cursor: a later run that still lists it tries it again.
            let bundle = match fetched {
                Ok(bundle) => bundle,
                Err(cut) => {
                    out.dead_letter(cut).await?;
                    continue;
                }
            };
            let mapped = map_conversation(&self.account_id, &bundle, now_micros());
            for dl in mapped.dead_letters {
                out.dead_letter(dl).await?;
            }
            out.append(&mapped.messages, mapped.conversation.as_ref());
            if let Some(c) = &mapped.conversation {
                state.cursor.record(&c.conversation_id, t.map(Mark::at), window_floor, true);
            }
            out.advance(u64::from(mapped.conversation.is_some()), || state.to_state()).await?;
        }
        Ok(self.limit.is_none_or(|l| out.emitted() < l))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn needs_emit(s: &AlliState, id: &str, t: Option<i64>) -> bool {
        s.cursor.needs_emit(id, t.map(Mark::at))
    }

    fn record(s: &mut AlliState, id: &str, t: Option<i64>, window_floor: i64) {
        s.cursor.record(id, t.map(Mark::at), window_floor, true);
    }

    #[test]
    fn unchanged_conversations_are_skipped_and_moved_ones_emitted() {
        let mut c = AlliState::from_state(None).unwrap();
        assert!(needs_emit(&c, "a", Some(100 * HOUR)));
        record(&mut c, "a", Some(100 * HOUR), 0);
        assert!(!needs_emit(&c, "a", Some(100 * HOUR)));
        assert!(needs_emit(&c, "a", Some(101 * HOUR)), "a new chat moved it");
        assert!(needs_emit(&c, "b", None), "no time: always");
    }

    #[test]
    fn interrupted_scan_resumes_and_watermark_advances_only_when_complete() {
        let mut c = AlliState::from_state(None).unwrap();
        c.cursor.begin_scan(500 * HOUR, None);
        for t in [500, 450, 400] {
            record(&mut c, &format!("c{t}"), Some(t * HOUR), 500 * HOUR - 48 * HOUR);
        }
        let resumed = AlliState::from_state(Some(&c.to_state())).unwrap();
        assert!(resumed.cursor.watermark.is_none());
        assert!(!needs_emit(&resumed, "c450", Some(450 * HOUR)));
        assert!(needs_emit(&resumed, "c400", Some(400 * HOUR)), "a tie at the done floor is emitted again");
        assert!(needs_emit(&resumed, "c300", Some(300 * HOUR)), "below the done floor: not done yet");
        assert!(needs_emit(&resumed, "c450", Some(501 * HOUR)), "changed since: above top");
        let mut done = resumed.clone();
        done.cursor.complete_scan(Some(500 * HOUR), 48 * HOUR);
        assert_eq!(done.cursor.floor(48 * HOUR, None), Some(452 * HOUR));
        assert!(done.cursor.scan.is_none());
        assert_eq!(done.cursor.seen.keys().collect::<Vec<_>>(), vec!["c500"], "only the window is remembered");
        assert_eq!(AlliState::from_state(Some(&done.to_state())).unwrap(), done);
    }

    #[test]
    fn start_bounds_the_first_floor() {
        let c = AlliState::from_state(None).unwrap();
        assert_eq!(c.cursor.floor(HOUR, Some(7)), Some(7));
        assert_eq!(c.cursor.floor(HOUR, None), None);
        assert!(
            AlliState::from_state(Some(&json!({"version": 9}))).unwrap_err().to_string().contains("pipe state reset")
        );
    }

    #[test]
    fn a_state_saved_by_the_previous_cursor_reads_and_writes_the_same() {
        let saved = json!({
            "version": 1,
            "watermark": "2026-01-10T00:00:00.000000Z",
            "unit": "ms",
            "seen": {"c1": 1767916800000000i64},
            "scan": {"top": 1768003200000000i64, "done_floor": 1767916800000000i64}
        });
        let s = AlliState::from_state(Some(&saved)).unwrap();
        assert_eq!((s.unit, s.cursor.seen["c1"]), (Some(TimeUnit::Ms), 1767916800000000));
        assert_eq!(s.to_state(), saved);
        let first_run = json!({"version": 1, "watermark": null, "unit": null, "seen": {}, "scan": null});
        assert_eq!(AlliState::from_state(Some(&first_run)).unwrap().to_state(), first_run);
    }
}
