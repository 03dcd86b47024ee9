//! The incremental watermark cursor of a source that lists items newest first.
//!
//! Many vendor APIs have no server-side "changed since" filter but can list items newest
//! first by some time (giosg chats by `created_at`, Alli conversations by last chat time).
//! A run then scans down to a **floor**: the **watermark** (the newest time of the last
//! complete scan) minus a **lookback** (late writes, clock skew), or the configured `start` on
//! a first run. Each item has a [`Mark`]: its time in the listing order (`at`), when it last
//! changed (`changed`, the same when the listing is ordered by change), and whether it is
//! still open (an open item keeps changing long after `at`).
//!
//! * **Skip what is unchanged.** Items emitted inside the lookback window, and open items
//!   whatever their age, are remembered (`seen`: id → mark), so an unchanged one is not fetched
//!   again; everything else is forgotten, so the state stays small however large the account.
//! * **Resumable scans.** A scan in progress is one range, [`Scan`]: every item with `at` in
//!   `(done_floor, top]` was emitted and committed (and, when the scan records `started_at`,
//!   had not changed since then). A run resumed after a crash or `--limit` skips those.
//! * **Only a scan that reached its floor advances the watermark** ([`WatermarkCursor::complete_scan`]),
//!   and **never past now + [`MAX_CLOCK_SKEW_US`]**: one item dated in the far future (a vendor
//!   bug, a typo'd date) would otherwise become the watermark, and every item created before
//!   that date would fall below the next floor and never be exported.
//!
//! Times are microseconds since the Unix epoch, UTC; the watermark is stored as RFC 3339.
//! The state document is `{"version", "watermark", "seen", "scan"}`; the shape of a `seen`
//! entry is the source's ([`SeenEntry`]: a bare time, or `[at, changed, open]`), so states
//! saved before the cursor moved into the SDK read unchanged.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::time::{format_micros, now_micros, parse_timestamp_micros};

/// How far ahead of this machine's clock a vendor's times may be and still move the
/// watermark: 10 minutes, in microseconds. Newer times are exported as they are, but the
/// watermark stops at now + this skew.
pub const MAX_CLOCK_SKEW_US: i64 = 10 * 60 * 1_000_000;
use crate::{PluginError, Result};

/// Where an item stands for the cursor. Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The item's time in the listing order (newest first).
    pub at: i64,
    /// When the item last changed (equal to `at` when the listing is ordered by change).
    pub changed: i64,
    /// Still open: remembered whatever its age, and re-checked below the floor.
    pub open: bool,
}

impl Mark {
    /// An item of a listing ordered by change time: `at` = `changed`, never open.
    pub fn at(t: i64) -> Self {
        Mark { at: t, changed: t, open: false }
    }
}

/// How a source stores a remembered item in `seen` (the shape of its saved state).
pub trait SeenEntry: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug {
    /// The entry for an emitted item.
    fn from_mark(mark: Mark) -> Self;
    /// The mark the entry keeps.
    fn mark(&self) -> Mark;
}

/// A bare time: for listings ordered by change time ([`Mark::at`]); `"id": 1767225600000000`.
impl SeenEntry for i64 {
    fn from_mark(mark: Mark) -> Self {
        mark.at
    }
    fn mark(&self) -> Mark {
        Mark::at(*self)
    }
}

/// The whole mark, stored as `[at, changed, open]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenMark(pub i64, pub i64, pub bool);

impl SeenEntry for SeenMark {
    fn from_mark(m: Mark) -> Self {
        SeenMark(m.at, m.changed, m.open)
    }
    fn mark(&self) -> Mark {
        Mark { at: self.0, changed: self.1, open: self.2 }
    }
}

/// A scan that has not reached its floor yet (the run was cut by a crash or `--limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// When the scan started (µs), for listings not ordered by change: an item changed after
    /// it may have changed since it was read, so it is not skipped. Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// `at` of the newest item the scan saw (µs).
    pub top: i64,
    /// `at` of the oldest item emitted so far, all newer ones being done (µs).
    pub done_floor: i64,
}

/// The cursor, as saved in the checkpoint state. `S` is the shape of a `seen` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound = "S: SeenEntry")]
pub struct WatermarkCursor<S: SeenEntry> {
    /// State layout version (the source's own number; another one is refused).
    pub version: u32,
    /// Newest `at` of the last complete scan (RFC 3339), or none before the first.
    pub watermark: Option<String>,
    /// Items emitted inside the lookback window, and every item still open when emitted.
    pub seen: BTreeMap<String, S>,
    /// The scan in progress, if the last run did not finish it.
    pub scan: Option<Scan>,
}

/// Reads a saved state of type `T` (`None` on a first run or `--full-refresh`).
///
/// Errors: [`PluginError::Other`] with `pipe state reset` advice when the state does not
/// parse as `T` or `accept` refuses it (another layout or version: an older `pipe`).
pub fn load_state<T: DeserializeOwned>(
    state: Option<&Value>,
    vendor: &str,
    accept: impl FnOnce(&T) -> bool,
) -> Result<Option<T>> {
    let Some(state) = state.filter(|s| !s.is_null()) else { return Ok(None) };
    match serde_json::from_value::<T>(state.clone()) {
        Ok(t) if accept(&t) => Ok(Some(t)),
        _ => Err(PluginError::other(format!(
            "the saved {vendor} state has another layout; run `pipe state reset FILE` (or `pipe run --full-refresh`) to start over"
        ))),
    }
}

impl<S: SeenEntry> WatermarkCursor<S> {
    /// An empty cursor of layout `version`: no watermark, nothing seen.
    pub fn new(version: u32) -> Self {
        WatermarkCursor { version, watermark: None, seen: BTreeMap::new(), scan: None }
    }

    /// The cursor from the engine's saved state, or [`Self::new`] when there is none.
    ///
    /// Errors: as [`load_state`], also for a state of another `version`.
    pub fn from_state(state: Option<&Value>, version: u32, vendor: &str) -> Result<Self> {
        Ok(load_state(state, vendor, |c: &Self| c.version == version)?.unwrap_or_else(|| Self::new(version)))
    }

    /// As checkpoint JSON.
    pub fn to_state(&self) -> Value {
        serde_json::to_value(self).expect("a cursor serializes")
    }

    /// The watermark in microseconds.
    pub fn watermark_micros(&self) -> Option<i64> {
        self.watermark.as_deref().and_then(parse_timestamp_micros)
    }

    /// The `at` below which the newest-first scan stops: watermark − lookback (not below
    /// `start`), else `start`, else nothing (scan all history).
    pub fn floor(&self, lookback_us: i64, start_us: Option<i64>) -> Option<i64> {
        match self.watermark_micros() {
            // Saturating: a lookback longer than all of time means "scan everything", never a
            // wrapped floor in the future that would skip every item.
            Some(w) => {
                let floor = w.saturating_sub(lookback_us);
                Some(start_us.map_or(floor, |s| floor.max(s)))
            }
            None => start_us,
        }
    }

    /// The `at` from which emitted items are remembered in a scan whose newest item is at
    /// `top`: the newest time known (watermark or `top`) − lookback.
    pub fn window_floor(&self, top: i64, lookback_us: i64) -> i64 {
        self.watermark_micros().map_or(top, |w| w.max(top)).saturating_sub(lookback_us)
    }

    /// Starts a scan whose newest item is at `top`, or keeps resuming the saved one.
    /// `started_at`: now, for listings not ordered by change ([`Scan::started_at`]).
    pub fn begin_scan(&mut self, top: i64, started_at: Option<i64>) {
        if self.scan.is_none() {
            self.scan = Some(Scan { started_at, top, done_floor: top + 1 });
        }
    }

    /// Whether an item must be emitted: new to us, or changed since we emitted it, and not
    /// done by the interrupted scan. Without a mark it always is.
    pub fn needs_emit(&self, id: &str, mark: Option<Mark>) -> bool {
        let Some(m) = mark else { return true };
        if let Some(s) = &self.scan
            && m.at > s.done_floor
            && m.at <= s.top
            && s.started_at.is_none_or(|started| m.changed < started)
        {
            return false; // emitted by the interrupted scan, unchanged since
        }
        self.seen.get(id).is_none_or(|e| e.mark().changed != m.changed)
    }

    /// Records an emitted item: remembered while open or at or above `window_floor`
    /// ([`Self::window_floor`]), forgotten otherwise. `in_scan`: it came from the newest-first
    /// scan (not a re-check below the floor), so the scan's done range grows down to it.
    pub fn record(&mut self, id: &str, mark: Option<Mark>, window_floor: i64, in_scan: bool) {
        let Some(m) = mark else { return };
        if m.open || m.at >= window_floor {
            self.seen.insert(id.to_string(), S::from_mark(m));
        } else {
            self.seen.remove(id);
        }
        if in_scan && let Some(s) = &mut self.scan {
            s.done_floor = s.done_floor.min(m.at);
        }
    }

    /// Ids of items that were open when emitted and lie below `floor` (to re-check).
    pub fn open_below(&self, floor: i64) -> Vec<String> {
        self.seen
            .iter()
            .filter(|(_, e)| {
                let m = e.mark();
                m.open && m.at < floor
            })
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// After a scan that reached its floor: advance the watermark to `newest`, forget ended
    /// items that fell out of the lookback window, and close the scan.
    pub fn complete_scan(&mut self, newest: Option<i64>, lookback_us: i64) {
        let ceiling = now_micros().saturating_add(MAX_CLOCK_SKEW_US);
        let newest = newest.map(|n| n.min(ceiling));
        let w = match (self.watermark_micros(), newest) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(w) = w {
            self.watermark = Some(format_micros(w));
            self.seen.retain(|_, e| {
                let m = e.mark();
                m.open || m.at >= w.saturating_sub(lookback_us)
            });
        }
        self.scan = None;
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;

    const HOUR: i64 = 3_600_000_000;
    const LOOKBACK: i64 = 48 * HOUR;

    fn changed(at: i64, changed: i64, open: bool) -> Option<Mark> {
        Some(Mark { at, changed, open })
    }

    #[test]
    fn lookback_sets_the_floor_and_start_bounds_it() {
        let mut c = WatermarkCursor::<i64>::new(1);
        assert_eq!(c.floor(LOOKBACK, None), None, "first run: all history");
        assert_eq!(c.floor(LOOKBACK, Some(7)), Some(7), "first run: from start");
        c.complete_scan(Some(500 * HOUR), LOOKBACK);
        assert_eq!(c.floor(LOOKBACK, None), Some(452 * HOUR));
        assert_eq!(c.floor(LOOKBACK, Some(480 * HOUR)), Some(480 * HOUR), "never below start");
        assert_eq!(c.window_floor(400 * HOUR, LOOKBACK), 452 * HOUR, "the watermark is newer");
        assert_eq!(c.window_floor(600 * HOUR, LOOKBACK), 552 * HOUR);
    }

    #[test]
    fn a_far_future_item_does_not_move_the_watermark_past_now() {
        let mut c = WatermarkCursor::<i64>::new(1);
        let year_2099 = parse_timestamp_micros("2099-01-01T00:00:00Z").unwrap();
        let before = now_micros();
        c.complete_scan(Some(year_2099), LOOKBACK);
        let w = c.watermark_micros().expect("a watermark");
        assert!(w <= now_micros() + MAX_CLOCK_SKEW_US && w >= before, "watermark {w}");
        // A chat created a second from now, before the next run, is above the next floor.
        let next_chat = now_micros() + 1_000_000;
        assert!(c.floor(LOOKBACK, None).unwrap() < next_chat);
        // Saturated vendor times (`1e30` seconds clamped to i64::MAX) give a parsable watermark.
        c.complete_scan(Some(i64::MAX), LOOKBACK);
        assert!(c.watermark.as_deref().and_then(parse_timestamp_micros).is_some(), "{:?}", c.watermark);
    }

    #[test]
    fn a_lookback_longer_than_all_of_time_scans_everything_instead_of_wrapping() {
        let mut c = WatermarkCursor::<i64>::new(1);
        c.complete_scan(Some(500 * HOUR), LOOKBACK);
        // `lookback_hours = 4294967295` is about 1.5e19 µs: saturated to i64::MAX by the
        // sources; the floor must fall to the beginning of time, never wrap into the future.
        let huge = i64::MAX;
        let floor = c.floor(huge, None).expect("a watermark gives a floor");
        assert!(floor < 0, "the floor {floor} is not before the epoch: a wrapped lookback would skip everything");
        assert_eq!(c.floor(huge, Some(7)), Some(7), "start still bounds it");
        assert!(c.window_floor(600 * HOUR, huge) < 0);
    }

    #[test]
    fn unchanged_items_are_skipped_and_changed_ones_emitted() {
        let mut c = WatermarkCursor::<SeenMark>::new(3);
        assert!(c.needs_emit("a", changed(10 * HOUR, 11 * HOUR, false)));
        c.record("a", changed(10 * HOUR, 11 * HOUR, false), i64::MIN, false);
        assert!(!c.needs_emit("a", changed(10 * HOUR, 11 * HOUR, false)));
        assert!(c.needs_emit("a", changed(10 * HOUR, 12 * HOUR, true)), "changed since");
        assert!(c.needs_emit("b", None), "no mark: always");
    }

    #[test]
    fn an_interrupted_scan_resumes_without_emitting_again() {
        // Ordered by change (no started_at): a changed item moves above `top`.
        let mut c = WatermarkCursor::<i64>::new(1);
        c.begin_scan(500 * HOUR, None);
        for t in [500, 450, 400] {
            c.record(&format!("c{t}"), Some(Mark::at(t * HOUR)), 452 * HOUR, true);
        }
        let resumed = WatermarkCursor::<i64>::from_state(Some(&c.to_state()), 1, "v").unwrap();
        assert!(resumed.watermark.is_none(), "an unfinished scan does not advance the watermark");
        assert!(!resumed.needs_emit("c450", Some(Mark::at(450 * HOUR))));
        assert!(resumed.needs_emit("c400", Some(Mark::at(400 * HOUR))), "a tie at the done floor: again");
        assert!(resumed.needs_emit("c300", Some(Mark::at(300 * HOUR))), "below the done floor: not done");
        assert!(resumed.needs_emit("c450", Some(Mark::at(501 * HOUR))), "changed since: above top");

        // Ordered by creation: an item changed after the scan started is emitted again.
        let mut c = WatermarkCursor::<SeenMark>::new(3);
        c.begin_scan(500 * HOUR, Some(600 * HOUR));
        c.begin_scan(900 * HOUR, Some(900 * HOUR));
        assert_eq!(c.scan.unwrap().top, 500 * HOUR, "a saved scan is resumed, not restarted");
        c.record("x", changed(480 * HOUR, 490 * HOUR, false), 452 * HOUR, true);
        c.record("y", changed(470 * HOUR, 470 * HOUR, false), 452 * HOUR, true);
        assert!(!c.needs_emit("x", changed(480 * HOUR, 490 * HOUR, false)));
        assert!(c.needs_emit("x", changed(480 * HOUR, 601 * HOUR, false)), "changed after the scan began");
    }

    #[test]
    fn state_stays_bounded_and_open_items_are_kept() {
        let mut c = WatermarkCursor::<SeenMark>::new(3);
        c.begin_scan(500 * HOUR, Some(501 * HOUR));
        let window = c.window_floor(500 * HOUR, LOOKBACK);
        c.record("new", changed(500 * HOUR, 500 * HOUR, false), window, true);
        c.record("old", changed(100 * HOUR, 100 * HOUR, false), window, true);
        c.record("open", changed(90 * HOUR, 95 * HOUR, true), window, true);
        assert_eq!(c.seen.keys().collect::<Vec<_>>(), ["new", "open"], "old ended items are not remembered");
        assert_eq!(c.scan.unwrap().done_floor, 90 * HOUR);
        c.complete_scan(Some(500 * HOUR), LOOKBACK);
        assert!(c.scan.is_none());
        assert_eq!(c.watermark.as_deref(), Some(format_micros(500 * HOUR).as_str()));
        assert_eq!(c.open_below(c.floor(LOOKBACK, None).unwrap()), ["open"]);
        // A later complete scan forgets what fell out of the window, but not open items.
        c.complete_scan(Some(600 * HOUR), LOOKBACK);
        assert_eq!(c.seen.keys().collect::<Vec<_>>(), ["open"]);
        c.record("open", changed(90 * HOUR, 96 * HOUR, false), c.window_floor(600 * HOUR, LOOKBACK), false);
        assert!(c.seen.is_empty(), "an item that ended below the window is forgotten");
    }

    #[test]
    fn saved_shapes_round_trip_and_foreign_ones_are_refused() {
        let triple = json!({
            "version": 3, "watermark": "2026-01-10T00:00:00.000000Z",
            "seen": {"a": [1, 2, true]}, "scan": {"started_at": 5, "top": 4, "done_floor": 3}
        });
        let c = WatermarkCursor::<SeenMark>::from_state(Some(&triple), 3, "giosg").unwrap();
        assert_eq!(c.seen["a"], SeenMark(1, 2, true));
        assert_eq!(c.to_state(), triple);
        let bare = json!({"version": 1, "watermark": null, "seen": {"a": 7}, "scan": {"top": 4, "done_floor": 3}});
        let c = WatermarkCursor::<i64>::from_state(Some(&bare), 1, "alli").unwrap();
        assert_eq!((c.seen["a"], c.scan.unwrap().started_at), (7, None));
        assert_eq!(c.to_state(), bare);
        assert_eq!(WatermarkCursor::<i64>::from_state(None, 1, "v").unwrap(), WatermarkCursor::new(1));
        assert_eq!(WatermarkCursor::<i64>::from_state(Some(&Value::Null), 1, "v").unwrap(), WatermarkCursor::new(1));
        for bad in [json!({"version": 2, "seen": {}}), json!({"version": 1}), json!([1])] {
            let e = WatermarkCursor::<i64>::from_state(Some(&bad), 1, "alli").unwrap_err().to_string();
            assert!(e.contains("saved alli state") && e.contains("pipe state reset"), "{bad}: {e}");
        }
    }
}
