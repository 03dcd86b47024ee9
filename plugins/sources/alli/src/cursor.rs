//! The incremental cursor of the Alli source (docs/vendors/alli.md §2.4).
//!
//! Both APIs list conversations newest **last chat time** first (REST's default order;
//! GraphQL's `LAST_CHAT_TIME_DESC`). A new chat moves a conversation's last chat time up, so a
//! run only needs the conversations whose last chat is at or above the **watermark** (the
//! newest last chat time of the last complete scan) minus a **lookback** (late writes, clock
//! skew). REST also sends that floor as `startedAt` ("last chat time after"), in the unit the
//! API was seen to use; GraphQL's date filters are too loosely documented to rely on, so its
//! scan stops client-side, after a whole page below the floor.
//!
//! Conversations emitted inside the lookback window are remembered with their last chat time
//! (`seen`), so an unchanged one is not fetched again. A scan cut short (crash, `--limit`) is
//! one range, [`Scan`]: every conversation with a last chat time in `(done_floor, top]` was
//! emitted and committed; a resumed run skips them (one that changed since has moved above
//! `top`). Only a scan that reached its floor advances the watermark.

use std::collections::BTreeMap;

use pipe_plugin_sdk::time::{format_micros, parse_timestamp_micros};
use pipe_plugin_sdk::{PluginError, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mapping::TimeUnit;

/// A scan that has not reached its floor yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// Last chat time (µs) of the newest conversation the scan saw.
    pub top: i64,
    /// Last chat time (µs) of the oldest conversation emitted so far; all newer ones are done.
    pub done_floor: i64,
}

/// The source state, stored by the engine as the checkpoint JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// State layout version.
    pub version: u32,
    /// Newest last chat time of the last complete scan (RFC 3339), none before the first.
    pub watermark: Option<String>,
    /// The unit the API's numeric timestamps were seen in (`ms` or `s`).
    pub unit: Option<TimeUnit>,
    /// Conversations emitted inside the lookback window: id → last chat time (µs).
    pub seen: BTreeMap<String, i64>,
    /// The scan in progress, if the last run did not finish it.
    pub scan: Option<Scan>,
}

const VERSION: u32 = 1;

impl Cursor {
    /// The cursor from the engine's saved state (`None` on a first run or `--full-refresh`).
    ///
    /// Errors: a state of another layout: reset it with `pipe state reset`.
    pub fn from_state(state: Option<&Value>) -> Result<Self> {
        let Some(state) = state.filter(|s| !s.is_null()) else {
            return Ok(Cursor { version: VERSION, ..Default::default() });
        };
        match serde_json::from_value::<Cursor>(state.clone()) {
            Ok(c) if c.version == VERSION => Ok(c),
            _ => Err(PluginError::other(
                "the saved alli state has another layout; run `pipe state reset FILE` (or `pipe run --full-refresh`) to start over",
            )),
        }
    }

    /// Watermark in microseconds.
    pub fn watermark_micros(&self) -> Option<i64> {
        self.watermark.as_deref().and_then(parse_timestamp_micros)
    }

    /// The last chat time below which a scan stops: watermark − lookback, else the configured
    /// `start`, else nothing (all history).
    pub fn floor(&self, lookback_us: i64, start_us: Option<i64>) -> Option<i64> {
        match self.watermark_micros() {
            Some(w) => Some(start_us.map_or(w - lookback_us, |s| (w - lookback_us).max(s))),
            None => start_us,
        }
    }

    /// Starts (or keeps resuming) a scan whose newest conversation's last chat is at `top`.
    pub fn begin_scan(&mut self, top: i64) {
        if self.scan.is_none() {
            self.scan = Some(Scan { top, done_floor: top + 1 });
        }
    }

    /// Whether a listed conversation must be fetched and emitted: new to us, or its last chat
    /// time moved since we emitted it. Without a time it always is.
    pub fn needs_emit(&self, id: &str, last_chat: Option<i64>) -> bool {
        let Some(t) = last_chat else { return true };
        if let Some(s) = &self.scan
            && t > s.done_floor
            && t <= s.top
        {
            return false;
        }
        self.seen.get(id) != Some(&t)
    }

    /// Records an emitted conversation; it is remembered while inside the window (`window_floor`
    /// = newest − lookback).
    pub fn record(&mut self, id: &str, last_chat: Option<i64>, window_floor: i64) {
        let Some(t) = last_chat else { return };
        if t >= window_floor {
            self.seen.insert(id.to_string(), t);
        } else {
            self.seen.remove(id);
        }
        if let Some(s) = &mut self.scan {
            s.done_floor = s.done_floor.min(t);
        }
    }

    /// After a complete scan: advance the watermark to `newest`, forget what fell out of the
    /// lookback window, close the scan.
    pub fn complete_scan(&mut self, newest: Option<i64>, lookback_us: i64) {
        let w = match (self.watermark_micros(), newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(w) = w {
            self.watermark = Some(format_micros(w));
            self.seen.retain(|_, t| *t >= w - lookback_us);
        }
        self.scan = None;
    }

    /// As checkpoint JSON.
    pub fn to_state(&self) -> Value {
        serde_json::to_value(self).expect("cursor serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000_000;

    #[test]
    fn unchanged_conversations_are_skipped_and_moved_ones_emitted() {
        let mut c = Cursor::from_state(None).unwrap();
        assert!(c.needs_emit("a", Some(100 * HOUR)));
        c.record("a", Some(100 * HOUR), 0);
        assert!(!c.needs_emit("a", Some(100 * HOUR)));
        assert!(c.needs_emit("a", Some(101 * HOUR)), "a new chat moved it");
        assert!(c.needs_emit("b", None), "no time: always");
    }

    #[test]
    fn interrupted_scan_resumes_and_watermark_advances_only_when_complete() {
        let mut c = Cursor::from_state(None).unwrap();
        c.begin_scan(500 * HOUR);
        for t in [500, 450, 400] {
            c.record(&format!("c{t}"), Some(t * HOUR), 500 * HOUR - 48 * HOUR);
        }
        let resumed = Cursor::from_state(Some(&c.to_state())).unwrap();
        assert!(resumed.watermark.is_none());
        assert!(!resumed.needs_emit("c450", Some(450 * HOUR)));
        assert!(resumed.needs_emit("c400", Some(400 * HOUR)), "a tie at the done floor is emitted again");
        assert!(resumed.needs_emit("c300", Some(300 * HOUR)), "below the done floor: not done yet");
        assert!(resumed.needs_emit("c450", Some(501 * HOUR)), "changed since: above top");
        let mut done = resumed.clone();
        done.complete_scan(Some(500 * HOUR), 48 * HOUR);
        assert_eq!(done.floor(48 * HOUR, None), Some(452 * HOUR));
        assert!(done.scan.is_none());
        assert_eq!(done.seen.keys().collect::<Vec<_>>(), vec!["c500"], "only the window is remembered");
        assert_eq!(Cursor::from_state(Some(&done.to_state())).unwrap(), done);
    }

    #[test]
    fn start_bounds_the_first_floor() {
        let c = Cursor::from_state(None).unwrap();
        assert_eq!(c.floor(HOUR, Some(7)), Some(7));
        assert_eq!(c.floor(HOUR, None), None);
        assert!(
            Cursor::from_state(Some(&serde_json::json!({"version": 9})))
                .unwrap_err()
                .to_string()
                .contains("pipe state reset")
        );
    }
}
