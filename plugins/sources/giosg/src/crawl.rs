//! The giosg crawl (docs/vendors/giosg.md §4): a newest-first scan of `owned_chats` down to the
//! watermark cursor's floor, then a re-check of chats that were open, each chat fetched with
//! its messages, memberships, tags and visitor variables.
//!
//! giosg documents no server-side `updated_at` filter, so a run scans `owned_chats` newest
//! first (by `created_at`) and stops below the **watermark** (newest `created_at` of the last
//! complete scan) minus `lookback_hours`. A chat is emitted when it is new or its `updated_at`
//! moved since we last emitted it. Chats that were still open and now lie below the floor are
//! re-checked separately (the `is_ended=false` listing, and a single-chat GET for those that
//! ended since), because open chats keep changing long after they were created. The cursor is
//! the SDK's [`WatermarkCursor`] with `[created_at, updated_at, is_open]` entries and a scan
//! start time (layout version 3, as saved by earlier versions of this plugin).

use std::collections::HashSet;

use futures::stream::{self, StreamExt, TryStreamExt};
use pipe_plugin_sdk::source_kit::{
    Crawl, CrawlSource, CrawlSpec, Emitter, Mark, SeenMark, WatermarkCursor, cut_listed_conversation,
};
use pipe_plugin_sdk::time::now_micros;
use pipe_plugin_sdk::{PluginError, REASON_CONVERSATION_GONE, Result, SourceContext};
use serde_json::Value;

use crate::client::GiosgClient;
use crate::mapping::{ChatBundle, chat_mark, map_chat, visitor_id};
use crate::{GiosgConfig, VENDOR};

/// The saved state: a watermark cursor keeping `[created_at, updated_at, is_open]` per chat.
pub type Cursor = WatermarkCursor<SeenMark>;

/// Layout version of the saved state (a state of another version is refused).
pub const STATE_VERSION: u32 = 3;

/// Checks the config, reads the saved state and starts the crawl on the current tokio runtime.
///
/// Errors: [`PluginError::Config`] for an empty `organization_id`, a bad `start`/`end`, a
/// `base_url` that is not http(s) or a token that cannot be sent in a header; a saved state of
/// another layout (the message says to run `pipe state reset`).
pub fn open(cfg: GiosgConfig, ctx: SourceContext) -> Result<CrawlSource> {
    let (start_us, end_us) = cfg.window()?;
    let client = GiosgClient::new(&cfg, ctx.metrics.clone())?;
    let cursor = Cursor::from_state(ctx.state.as_ref(), STATE_VERSION, VENDOR)?;
    let spec = CrawlSpec {
        vendor: VENDOR,
        account_id: cfg.organization_id.clone(),
        checkpoint_every: u64::from(cfg.checkpoint_every.max(1)),
        unit: "conversations",
        metrics: ctx.metrics.clone(),
    };
    let crawl = GiosgCrawl {
        client,
        organization_id: cfg.organization_id.clone(),
        concurrency: cfg.http.concurrency(),
        limit: ctx.limit,
        cursor,
        lookback_us: cfg.lookback_us(),
        start_us,
        end_us,
    };
    Ok(CrawlSource::spawn(spec, crawl))
}

struct GiosgCrawl {
    client: GiosgClient,
    organization_id: String,
    concurrency: usize,
    limit: Option<u64>,
    cursor: Cursor,
    lookback_us: i64,
    start_us: Option<i64>,
    /// Chats created at or after this instant are skipped (`end`, a backfill window).
    end_us: Option<i64>,
}

fn chat_id(chat: &Value) -> Option<&str> {
    chat.get("id").and_then(Value::as_str)
}

/// Whether `chat` must be emitted (a chat without an id always is: mapping dead-letters it).
fn needs_emit(cursor: &Cursor, chat: &Value) -> bool {
    chat_id(chat).is_none_or(|id| cursor.needs_emit(id, chat_mark(chat)))
}

#[pipe_plugin_sdk::reexports::async_trait]
impl Crawl for GiosgCrawl {
    async fn run(&mut self, out: &mut Emitter) -> Result<()> {
        let mut cursor = std::mem::replace(&mut self.cursor, Cursor::new(STATE_VERSION));
        let result = self.scan(out, &mut cursor).await;
        self.cursor = cursor;
        result
    }

    fn state(&self) -> Value {
        self.cursor.to_state()
    }
}

impl GiosgCrawl {
    /// The newest-first scan and the open-chat re-check; ends with a checkpoint.
    async fn scan(&self, out: &mut Emitter, cursor: &mut Cursor) -> Result<()> {
        let floor = cursor.floor(self.lookback_us, self.start_us);
        let mut newest: Option<i64> = None;
        // Chats created from here on are remembered in the cursor (newest − lookback).
        let mut window_floor = i64::MAX;

        // 1. Newest first, down to the floor: new chats and chats that changed.
        let listing = self
            .client
            .pages(self.client.owned_chats_url())
            .map_ok(|page| stream::iter(page.into_iter().map(Ok::<Value, PluginError>)))
            .try_flatten();
        let mut listing = std::pin::pin!(listing);
        let mut pending = Vec::new();
        let mut reached_floor = true;
        // A listing that loops (or answers too much) ends here; the chats read before it are
        // still emitted, then the error ends the run partial (the driver checkpoints them).
        let mut cut = None;
        loop {
            let chat = match listing.try_next().await {
                Ok(Some(chat)) => chat,
                Ok(None) => break,
                Err(e @ PluginError::ListingCut { .. }) => {
                    cut = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            };
            let created = chat_mark(&chat).map(|m| m.at);
            if let (Some(f), Some(c)) = (floor, created)
                && c < f
            {
                break;
            }
            // Newer than the window: page past it (the listing is newest first).
            if let (Some(e), Some(c)) = (self.end_us, created)
                && c >= e
            {
                continue;
            }
            if newest.is_none() {
                newest = created;
                if let Some(top) = created {
                    cursor.begin_scan(top, Some(now_micros()));
                    window_floor = cursor.window_floor(top, self.lookback_us);
                }
            }
            if needs_emit(cursor, &chat) {
                pending.push(chat);
            }
            if pending.len() >= self.concurrency * 8
                && !self.emit(std::mem::take(&mut pending), cursor, out, window_floor, true).await?
            {
                reached_floor = false;
                break;
            }
        }
        if reached_floor && !self.emit(std::mem::take(&mut pending), cursor, out, window_floor, true).await? {
            reached_floor = false;
        }
        if let Some(e) = cut {
            return Err(e);
        }

        // 2. Chats that were open when we emitted them and are now below the floor.
        if reached_floor && let Some(f) = floor {
            let open_now = self.client.all(self.client.open_chats_url()).await?;
            let still_open: HashSet<&str> = open_now.iter().filter_map(chat_id).collect();
            let mut recheck: Vec<Value> = open_now
                .iter()
                // Below the floor, but inside the configured `start`/`end`: an open chat
                // created before `start` was never ours to export.
                .filter(|c| {
                    chat_mark(c).is_some_and(|m| {
                        m.at < f && self.start_us.is_none_or(|s| m.at >= s) && self.end_us.is_none_or(|e| m.at < e)
                    }) && needs_emit(cursor, c)
                })
                .cloned()
                .collect();
            for id in cursor.open_below(f) {
                if !still_open.contains(id.as_str()) {
                    match cut_listed_conversation(self.client.chat(&id).await, VENDOR, &self.organization_id, &id)? {
                        Ok(chat) if needs_emit(cursor, &chat) => recheck.push(chat),
                        Ok(_) => {}
                        Err(cut) => {
                            // Deleted: it leaves the state (reported once); otherwise it stays
                            // remembered as open and the next run asks again.
                            if cut.reason == REASON_CONVERSATION_GONE {
                                cursor.seen.remove(&id);
                            }
                            out.dead_letter(cut).await?
                        }
                    }
                }
            }
            if !self.emit(recheck, cursor, out, window_floor, false).await? {
                reached_floor = false;
            }
        }

        // 3. Only a scan that reached its floor (no --limit cut) advances the watermark.
        if reached_floor {
            cursor.complete_scan(newest, self.lookback_us);
        }
        out.checkpoint(cursor.to_state()).await
    }

    /// Fetches and emits `chats` (bounded concurrency, list order kept); the driver
    /// checkpoints every `checkpoint_every` conversations. Returns false when `--limit`
    /// stopped it.
    async fn emit(
        &self,
        chats: Vec<Value>,
        cursor: &mut Cursor,
        out: &mut Emitter,
        window_floor: i64,
        in_scan: bool,
    ) -> Result<bool> {
        let mut bundles = stream::iter(chats)
            .map(|chat| {
                let client = self.client.clone();
                let org = self.organization_id.clone();
                async move {
                    let id = chat_id(&chat).unwrap_or_default().to_string();
                    let mark = chat_mark(&chat);
                    // One chat whose messages (or tags, ...) loop or are too large is that
                    // chat's dead letter; the others go on.
                    let fetched = cut_listed_conversation(fetch_bundle(&client, chat).await, VENDOR, &org, &id)?;
                    Ok::<_, PluginError>((id, mark, fetched))
                }
            })
            .buffered(self.concurrency);
        while let Some((id, mark, fetched)) = bundles.try_next().await? {
            if self.limit.is_some_and(|l| out.emitted() >= l) {
                return Ok(false);
            }
            let bundle = match fetched {
                Ok(bundle) => bundle,
                Err(cut) => {
                    // Remembered as open and never emitted: every later run re-checks it,
                    // however old, until it is exported (the open-chat re-check below the
                    // floor), unless it was deleted: then there is nothing left to fetch.
                    if cut.reason != REASON_CONVERSATION_GONE {
                        let retry = mark.map(|m| Mark { changed: i64::MIN, open: true, ..m });
                        cursor.record(&id, retry, window_floor, in_scan);
                    }
                    out.dead_letter(cut).await?;
                    continue;
                }
            };
            let mapped = map_chat(&self.organization_id, &bundle, now_micros());
            for dl in mapped.dead_letters {
                out.dead_letter(dl).await?;
            }
            out.append(&mapped.messages, mapped.conversation.as_ref());
            if let Some(id) = chat_id(&bundle.chat) {
                cursor.record(id, chat_mark(&bundle.chat), window_floor, in_scan);
            }
            out.advance(u64::from(mapped.conversation.is_some()), || cursor.to_state()).await?;
        }
        Ok(self.limit.is_none_or(|l| out.emitted() < l))
    }
}

async fn fetch_bundle(client: &GiosgClient, chat: Value) -> Result<ChatBundle> {
    let Some(id) = chat_id(&chat).map(str::to_string) else {
        // Mapping turns it into a dead letter.
        return Ok(ChatBundle { chat, ..Default::default() });
    };
    let (messages, memberships, tags) =
        tokio::try_join!(client.messages(&id), client.memberships(&id), client.tags(&id))?;
    let variables = match visitor_id(&memberships) {
        Some(visitor) => client.variables(&id, &visitor).await?,
        None => Vec::new(),
    };
    Ok(ChatBundle { chat, messages, memberships, tags, variables })
}

#[cfg(test)]
mod tests {
    use pipe_plugin_sdk::time::parse_timestamp_micros;
    use serde_json::json;

    use super::*;

    const HOUR: i64 = 3_600_000_000;

    fn chat(id: &str, created: &str, updated: &str, ended: bool) -> Value {
        json!({"id": id, "created_at": created, "updated_at": updated, "is_ended": ended})
    }

    fn at(s: &str) -> i64 {
        parse_timestamp_micros(s).unwrap()
    }

    fn record(c: &mut Cursor, chat: &Value, window_floor: i64, in_scan: bool) {
        c.record(chat_id(chat).unwrap(), chat_mark(chat), window_floor, in_scan);
    }

    fn from_state(state: Option<&Value>) -> Result<Cursor> {
        Cursor::from_state(state, STATE_VERSION, VENDOR)
    }

    #[test]
    fn new_and_changed_chats_are_emitted_once() {
        let mut c = from_state(None).unwrap();
        let a = chat("a", "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", false);
        assert!(needs_emit(&c, &a));
        record(&mut c, &a, i64::MIN, false);
        assert!(!needs_emit(&c, &a), "unchanged chat is skipped");
        let a2 = chat("a", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", true);
        assert!(needs_emit(&c, &a2), "a moved updated_at re-emits");
    }

    #[test]
    fn interrupted_scan_resumes_without_re_emitting_and_state_stays_small() {
        let mut c = from_state(None).unwrap();
        let start = at("2026-02-01T00:00:00Z");
        let newest = at("2026-01-31T00:00:00Z");
        c.begin_scan(newest, Some(start));
        let window = newest - 48 * HOUR;
        let done = chat("done", "2026-01-25T00:00:00Z", "2026-01-25T01:00:00Z", true);
        let last = chat("last", "2026-01-20T00:00:00Z", "2026-01-20T01:00:00Z", true);
        record(&mut c, &done, window, true);
        record(&mut c, &last, window, true);
        assert!(c.seen.is_empty(), "ended chats below the window are not remembered");
        // After a crash, emitted chats are skipped, except one changed after the scan started,
        // and the one exactly at the done floor (a harmless duplicate, as ties are possible).
        let resumed = from_state(Some(&c.to_state())).unwrap();
        assert!(!needs_emit(&resumed, &done));
        assert!(needs_emit(&resumed, &last));
        let changed = chat("done", "2026-01-25T00:00:00Z", "2026-02-01T00:00:01Z", true);
        assert!(needs_emit(&resumed, &changed));
        let older = chat("older", "2026-01-10T00:00:00Z", "2026-01-10T01:00:00Z", true);
        assert!(needs_emit(&resumed, &older), "below the done floor: not yet emitted");
    }

    #[test]
    fn watermark_advances_only_on_complete_scans_and_prunes() {
        let mut c = from_state(None).unwrap();
        assert_eq!(c.floor(48 * HOUR, None), None);
        let open = chat("open", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", false);
        let new = chat("new", "2026-01-10T00:00:00Z", "2026-01-10T00:10:00Z", true);
        c.begin_scan(at("2026-01-10T00:00:00Z"), Some(at("2026-01-11T00:00:00Z")));
        for ch in [&new, &open] {
            record(&mut c, ch, at("2026-01-08T00:00:00Z"), true);
        }
        c.complete_scan(chat_mark(&new).map(|m| m.at), 48 * HOUR);
        assert_eq!(c.watermark.as_deref(), Some("2026-01-10T00:00:00.000000Z"));
        assert!(c.scan.is_none());
        let floor = c.floor(48 * HOUR, None).unwrap();
        assert_eq!(c.open_below(floor), vec!["open".to_string()]);
        assert_eq!(from_state(Some(&c.to_state())).unwrap(), c);
    }

    #[test]
    fn foreign_state_is_refused_with_advice() {
        let err = from_state(Some(&json!({"version": 1}))).unwrap_err();
        assert!(err.to_string().contains("pipe state reset"));
    }

    #[test]
    fn a_state_saved_by_the_previous_cursor_reads_and_writes_the_same() {
        let saved = json!({
            "version": 3,
            "watermark": "2026-01-10T00:00:00.000000Z",
            "seen": {"open": [1767225600000000i64, 1767226200000000i64, true]},
            "scan": {"started_at": 1768089600000000i64, "top": 1768003200000000i64, "done_floor": 1767916800000000i64}
        });
        let c = from_state(Some(&saved)).unwrap();
        assert_eq!(c.seen["open"], SeenMark(1767225600000000, 1767226200000000, true));
        assert_eq!(c.to_state(), saved);
    }
}
