//! The incremental cursor of the giosg source (docs/vendors/giosg.md §4).
//!
//! giosg documents no server-side `updated_at` filter, so a run scans `owned_chats` newest
//! first and stops below the **watermark** (newest `created_at` of the last complete scan) minus
//! a **lookback**. A chat is emitted when it is new or its `updated_at` moved since we last
//! emitted it. Chats that were still open and now lie below the scan floor are re-checked
//! separately (the `is_ended=false` listing, and a single-chat GET for those that ended since),
//! because open chats keep changing long after they were created.
//!
//! The state stays small however large the account: `seen` holds only chats inside the
//! lookback window and chats still open. A scan in progress is one range, [`Scan`]: every chat
//! created in `(done_floor, top]` whose `updated_at` is older than the scan's start has been
//! emitted and committed, so a run resumed after a crash skips them. Only a scan that reached
//! its floor advances the watermark.

use std::collections::BTreeMap;

use pipe_plugin_sdk::time::{format_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{PluginError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What we know of a chat we emitted: `[created_at, updated_at, is_open]`, microseconds UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen(pub i64, pub i64, pub bool);

/// A scan that has not reached its floor yet (the run was cut by a crash or `--limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// When the scan started (µs): a chat updated after it may have changed since we read it.
    pub started_at: i64,
    /// `created_at` of the newest chat the scan saw (µs).
    pub top: i64,
    /// `created_at` of the oldest chat emitted so far, all newer ones being done (µs).
    pub done_floor: i64,
}

/// The source state, stored by the engine as the checkpoint JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// State layout version.
    pub version: u32,
    /// Newest `created_at` of the last complete scan (RFC 3339), or none before the first.
    pub watermark: Option<String>,
    /// Chats emitted inside the lookback window, and every chat still open when emitted.
    pub seen: BTreeMap<String, Seen>,
    /// The scan in progress, if the last run did not finish it.
    pub scan: Option<Scan>,
}

const VERSION: u32 = 3;

impl Cursor {
    /// The cursor from the engine's saved state (`None` on a first run or `--full-refresh`).
    ///
    /// Errors: a state of another layout (older `pipe`): reset it with `pipe state reset`.
    pub fn from_state(state: Option<&Value>) -> Result<Self> {
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(Cursor { version: VERSION, ..Default::default() });
        };
        match serde_json::from_value::<Cursor>(state.clone()) {
            Ok(c) if c.version == VERSION => Ok(c),
            _ => Err(PluginError::other(
                "the saved giosg state has another layout; run `pipe state reset FILE` (or `pipe run --full-refresh`) to start over",
            )),
        }
    }

    /// Watermark in microseconds.
    pub fn watermark_micros(&self) -> Option<i64> {
        self.watermark.as_deref().and_then(parse_timestamp_micros)
    }

    /// The `created_at` below which the newest-first scan stops: watermark − lookback, else the
    /// configured `start`, else nothing (scan all history).
    pub fn floor(&self, lookback_us: i64, start_us: Option<i64>) -> Option<i64> {
        match self.watermark_micros() {
            Some(w) => Some(start_us.map_or(w - lookback_us, |s| (w - lookback_us).max(s))),
            None => start_us,
        }
    }

    /// Starts (or resumes) a scan whose newest chat was created at `top`.
    pub fn begin_scan(&mut self, now: i64, top: i64) {
        if self.scan.is_none() {
            self.scan = Some(Scan { started_at: now, top, done_floor: top + 1 });
        }
    }

    /// Whether `chat` must be emitted: new to us, or changed since we emitted it.
    pub fn needs_emit(&self, chat: &Value) -> bool {
        let (Some(id), Some((created, updated))) = (chat.get("id").and_then(Value::as_str), chat_times(chat)) else {
            return true;
        };
        if let Some(s) = &self.scan {
            if created > s.done_floor && created <= s.top && updated < s.started_at {
                return false; // emitted by the interrupted scan, unchanged since
            }
        }
        match self.seen.get(id) {
            None => true,
            Some(Seen(_, seen_updated, _)) => updated != *seen_updated,
        }
    }

    /// Records an emitted chat. `window_floor` is the `created_at` from which chats are kept in
    /// `seen` (newest − lookback); older ended chats need no memory.
    pub fn record(&mut self, chat: &Value, window_floor: i64, in_scan: bool) {
        let (Some(id), Some((created, updated))) = (chat.get("id").and_then(Value::as_str), chat_times(chat)) else {
            return;
        };
        let open = chat.get("is_ended").and_then(Value::as_bool) != Some(true);
        if open || created >= window_floor {
            self.seen.insert(id.to_string(), Seen(created, updated, open));
        } else {
            self.seen.remove(id);
        }
        if in_scan {
            if let Some(s) = &mut self.scan {
                s.done_floor = s.done_floor.min(created);
            }
        }
    }

    /// Ids of chats that were open when emitted and were created before `floor`.
    pub fn open_below(&self, floor: i64) -> Vec<String> {
        self.seen.iter().filter(|(_, s)| s.2 && s.0 < floor).map(|(id, _)| id.clone()).collect()
    }

    /// After a complete scan: advance the watermark to `newest`, forget ended chats that fell
    /// out of the lookback window, and close the scan.
    pub fn complete_scan(&mut self, newest: Option<i64>, lookback_us: i64) {
        let w = match (self.watermark_micros(), newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(w) = w {
            self.watermark = Some(format_micros(w));
            self.seen.retain(|_, s| s.2 || s.0 >= w - lookback_us);
        }
        self.scan = None;
    }

    /// As checkpoint JSON.
    pub fn to_state(&self) -> Value {
        serde_json::to_value(self).expect("cursor serializes")
    }
}

/// `(created_at, updated_at)` of a chat object in microseconds; `updated_at` falls back to
/// `created_at` when absent.
pub fn chat_times(chat: &Value) -> Option<(i64, i64)> {
    let created = chat.get("created_at").and_then(Value::as_str).and_then(parse_timestamp_micros)?;
    let updated = chat.get("updated_at").and_then(Value::as_str).and_then(parse_timestamp_micros).unwrap_or(created);
    Some((created, updated))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const HOUR: i64 = 3_600_000_000;

    fn chat(id: &str, created: &str, updated: &str, ended: bool) -> Value {
        json!({"id": id, "created_at": created, "updated_at": updated, "is_ended": ended})
    }

    fn at(s: &str) -> i64 {
        parse_timestamp_micros(s).unwrap()
    }

    #[test]
    fn new_and_changed_chats_are_emitted_once() {
        let mut c = Cursor::from_state(None).unwrap();
        let a = chat("a", "2026-01-01T10:00:00Z", "2026-01-01T10:05:00Z", false);
        assert!(c.needs_emit(&a));
        c.record(&a, i64::MIN, false);
        assert!(!c.needs_emit(&a), "unchanged chat is skipped");
        let a2 = chat("a", "2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", true);
        assert!(c.needs_emit(&a2), "a moved updated_at re-emits");
    }

    #[test]
    fn interrupted_scan_resumes_without_re_emitting_and_state_stays_small() {
        let mut c = Cursor::from_state(None).unwrap();
        let start = at("2026-02-01T00:00:00Z");
        let newest = at("2026-01-31T00:00:00Z");
        c.begin_scan(start, newest);
        let window = newest - 48 * HOUR;
        let done = chat("done", "2026-01-25T00:00:00Z", "2026-01-25T01:00:00Z", true);
        let last = chat("last", "2026-01-20T00:00:00Z", "2026-01-20T01:00:00Z", true);
        c.record(&done, window, true);
        c.record(&last, window, true);
        assert!(c.seen.is_empty(), "ended chats below the window are not remembered");
        // After a crash, emitted chats are skipped, except one changed after the scan started,
        // and the one exactly at the done floor (a harmless duplicate, as ties are possible).
        let resumed = Cursor::from_state(Some(&c.to_state())).unwrap();
        assert!(!resumed.needs_emit(&done));
        assert!(resumed.needs_emit(&last));
        let changed = chat("done", "2026-01-25T00:00:00Z", "2026-02-01T00:00:01Z", true);
        assert!(resumed.needs_emit(&changed));
        let older = chat("older", "2026-01-10T00:00:00Z", "2026-01-10T01:00:00Z", true);
        assert!(resumed.needs_emit(&older), "below the done floor: not yet emitted");
    }

    #[test]
    fn watermark_advances_only_on_complete_scans_and_prunes() {
        let mut c = Cursor::from_state(None).unwrap();
        assert_eq!(c.floor(48 * HOUR, None), None);
        let open = chat("open", "2026-01-01T00:00:00Z", "2026-01-01T00:10:00Z", false);
        let new = chat("new", "2026-01-10T00:00:00Z", "2026-01-10T00:10:00Z", true);
        c.begin_scan(at("2026-01-11T00:00:00Z"), at("2026-01-10T00:00:00Z"));
        for ch in [&new, &open] {
            c.record(ch, at("2026-01-08T00:00:00Z"), true);
        }
        c.complete_scan(chat_times(&new).map(|t| t.0), 48 * HOUR);
        assert_eq!(c.watermark.as_deref(), Some("2026-01-10T00:00:00.000000Z"));
        assert!(c.scan.is_none());
        let floor = c.floor(48 * HOUR, None).unwrap();
        assert_eq!(c.open_below(floor), vec!["open".to_string()]);
        assert_eq!(Cursor::from_state(Some(&c.to_state())).unwrap(), c);
    }

    #[test]
    fn foreign_state_is_refused_with_advice() {
        let err = Cursor::from_state(Some(&json!({"version": 1}))).unwrap_err();
        assert!(err.to_string().contains("pipe state reset"));
    }
}
