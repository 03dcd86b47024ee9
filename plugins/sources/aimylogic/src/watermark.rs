//! The saved state of history mode: one watermark per client (docs/vendors/aimylogic.md §4).
//!
//! Layout (the engine stores it as the pipeline's `source_state`):
//!
//! ```json
//! {"mode": "history", "version": 2,
//!  "clients": {"client-42": {"ms": 1715677923517, "ids": ["4b0a"]}},
//!  "done": ["client-42"], "watermark": "2024-05-14T09:12:03.517000Z"}
//! ```
//!
//! * `clients`: per client id, `ms` = the largest item `timestamp` exported so far, epoch
//!   milliseconds UTC, and `ids` = the `questionId`s exported with exactly that timestamp
//!   (items may share a millisecond, so "newer" is `timestamp > ms`, or `= ms` with a
//!   `questionId` not in `ids`). Only configured client ids are kept, so the state is bounded
//!   by the client list. A bare number (`"client-42": 1715677923517`) is accepted as `ms` with
//!   no `ids`.
//! * `watermark`: the newest of the clients' `ms`, as RFC 3339: the source's newest committed
//!   watermark, which `pipe run`'s metrics report (`pipe_watermark_timestamp_seconds`). Written
//!   for them only; never read back (the per-client `ms` are the cursor).
//! * `done`: present only in the checkpoints of a run that has not finished: the clients that
//!   run has already exported, skipped when the run is resumed. A finished run drops it.
//!
//! The layout of older versions, `{"mode": "history", "clients_done": n}`, carried no
//! watermark: it is migrated to "no watermark", so the next run exports every client once
//! more (a loader dedupes by the primary key) and from then on runs are incremental.

use std::collections::{BTreeMap, BTreeSet};

use pipe_plugin_sdk::source_kit::MAX_CLOCK_SKEW_US;
use pipe_plugin_sdk::time::{format_micros, now_micros};
use pipe_plugin_sdk::{PluginError, Result};
use serde_json::{Map, Value, json};

/// The layout version written in `version`.
pub const VERSION: u64 = 2;

/// What has been exported of one client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watermark {
    /// The largest item `timestamp` exported, epoch milliseconds UTC.
    pub ms: i64,
    /// The `questionId`s exported whose timestamp is exactly `ms`.
    pub ids: BTreeSet<String>,
}

impl Watermark {
    /// Whether an item at `ms` (epoch milliseconds) with `question_id` is not covered yet.
    pub fn is_new(&self, ms: i64, question_id: &str) -> bool {
        ms > self.ms || (ms == self.ms && !self.ids.contains(question_id))
    }

    /// Records the item at `ms` with `question_id` as exported. The watermark never moves
    /// past now + the SDK cursor's clock skew ([`MAX_CLOCK_SKEW_US`]): an item a few hours
    /// ahead (a vendor clock running fast) is exported, but items arriving later with earlier
    /// times must still count as new; the item itself is exported again on later runs until
    /// its time has passed (at-least-once, deduplicated by key downstream).
    pub fn advance(&mut self, ms: i64, question_id: &str) {
        let ceiling = now_micros().saturating_add(MAX_CLOCK_SKEW_US).div_euclid(1000);
        if ms > ceiling {
            if ceiling > self.ms {
                self.ms = ceiling;
                self.ids.clear();
            }
            return;
        }
        if ms > self.ms {
            self.ms = ms;
            self.ids.clear();
        }
        if ms == self.ms {
            self.ids.insert(question_id.to_string());
        }
    }

    fn to_json(&self) -> Value {
        json!({"ms": self.ms, "ids": self.ids})
    }

    fn from_json(v: &Value) -> Option<Watermark> {
        match v {
            Value::Number(n) => Some(Watermark { ms: n.as_i64()?, ids: BTreeSet::new() }),
            Value::Object(o) => {
                let ms = o.get("ms")?.as_i64()?;
                let ids = match o.get("ids") {
                    None | Some(Value::Null) => BTreeSet::new(),
                    Some(Value::Array(a)) => a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<_>>()?,
                    Some(_) => return None,
                };
                Some(Watermark { ms, ids })
            }
            _ => None,
        }
    }
}

/// The history-mode state: per-client watermarks and, for an unfinished run, the clients it
/// has done.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryState {
    /// Watermark per client id.
    pub clients: BTreeMap<String, Watermark>,
    /// `Some` while a run is under way (or was interrupted): the client ids it has exported.
    pub done: Option<BTreeSet<String>>,
    /// True when the saved state had the old `clients_done` layout (migrated to no watermark).
    pub migrated: bool,
}

fn layout_error(what: &str) -> PluginError {
    PluginError::Config {
        path: String::new(),
        message: format!(
            "the saved aimylogic state {what}; run `pipe state reset FILE` (or `pipe run --full-refresh`) to export everything again"
        ),
    }
}

impl HistoryState {
    /// The state from the engine's saved state (`None`/`null` on a first run or with
    /// `--full-refresh`: no watermark, everything is exported).
    ///
    /// Errors: [`PluginError::Config`] (with a `pipe state reset` hint) for a webhook-mode
    /// state, a state of an unknown layout or version, or malformed watermarks.
    pub fn from_state(state: Option<&Value>) -> Result<HistoryState> {
        let Some(state) = state.filter(|s| !s.is_null()) else { return Ok(HistoryState::default()) };
        let Some(obj) = state.as_object() else { return Err(layout_error("is not a JSON object")) };
        match obj.get("mode").and_then(Value::as_str) {
            Some("history") => {}
            Some("webhook") => return Err(layout_error("belongs to webhook mode, not history mode")),
            _ => return Err(layout_error("has no `mode`: another layout")),
        }
        let Some(clients) = obj.get("clients") else {
            if obj.contains_key("clients_done") {
                return Ok(HistoryState { migrated: true, ..HistoryState::default() });
            }
            return Err(layout_error("has neither `clients` nor `clients_done`: another layout"));
        };
        if let Some(v) = obj.get("version").filter(|v| v.as_u64() != Some(VERSION)) {
            return Err(layout_error(&format!("has layout version {v}, this plugin reads {VERSION}")));
        }
        let Some(clients) = clients.as_object() else {
            return Err(layout_error("has a `clients` that is not an object"));
        };
        let mut out = HistoryState::default();
        for (id, v) in clients {
            let w = Watermark::from_json(v)
                .ok_or_else(|| layout_error(&format!("has a malformed watermark for client `{id}`")))?;
            out.clients.insert(id.clone(), w);
        }
        out.done = match obj.get("done") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| layout_error("has a malformed `done` list"))?,
            ),
            Some(_) => return Err(layout_error("has a malformed `done` list")),
        };
        Ok(out)
    }

    /// Drops the watermarks (and `done` entries) of clients not in `configured`, so the state
    /// stays bounded by the client list.
    pub fn retain(&mut self, configured: &[String]) {
        let keep: BTreeSet<&str> = configured.iter().map(String::as_str).collect();
        self.clients.retain(|id, _| keep.contains(id.as_str()));
        if let Some(done) = &mut self.done {
            done.retain(|id| keep.contains(id.as_str()));
        }
    }

    /// The JSON of the state, with `done` only when `finished` is false, and `watermark`: the
    /// newest client watermark as RFC 3339 (what the engine's metrics report; not read back).
    pub fn to_json(&self, finished: bool) -> Value {
        let clients: Map<String, Value> = self.clients.iter().map(|(id, w)| (id.clone(), w.to_json())).collect();
        let mut v = json!({"mode": "history", "version": VERSION, "clients": clients});
        if let Some(newest) = self.clients.values().map(|w| w.ms).max() {
            v["watermark"] = json!(format_micros(newest.saturating_mul(1000)));
        }
        if !finished {
            v["done"] = json!(self.done.clone().unwrap_or_default());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watermark_never_moves_past_now_plus_the_skew() {
        let now_ms = now_micros().div_euclid(1000);
        let far = now_ms + 24 * 3_600_000;
        let mut w = Watermark::default();
        w.advance(far, "z");
        assert!(w.ms < far && w.ms >= now_ms && w.ids.is_empty(), "clamped to now + skew: {w:?}");
        assert!(w.is_new(far, "z"), "the item ahead of the clock is exported again later");
        // An item that arrives later with an earlier (true) time still counts as new.
        assert!(w.is_new(now_ms + 11 * 60_000, "late"));
        assert!(!w.is_new(now_ms - 1, "old"));
    }

    #[test]
    fn round_trip_and_bounded() {
        let mut s = HistoryState::default();
        let mut w = Watermark::default();
        w.advance(10, "a");
        w.advance(12, "b");
        w.advance(12, "c");
        w.advance(11, "x");
        assert_eq!(w, Watermark { ms: 12, ids: ["b", "c"].iter().map(|s| s.to_string()).collect() });
        assert!(!w.is_new(12, "b") && w.is_new(12, "d") && !w.is_new(11, "z") && w.is_new(13, "b"));
        s.clients.insert("c1".into(), w.clone());
        s.clients.insert("gone".into(), w.clone());
        s.done = Some(["c1".to_string(), "gone".to_string()].into());
        s.retain(&["c1".to_string(), "c2".to_string()]);
        let v = s.to_json(false);
        assert_eq!(
            v,
            json!({"mode": "history", "version": 2, "clients": {"c1": {"ms": 12, "ids": ["b", "c"]}}, "done": ["c1"],
                   "watermark": "1970-01-01T00:00:00.012000Z"})
        );
        let back = HistoryState::from_state(Some(&v)).unwrap();
        assert_eq!((back.clients, back.done), (s.clients.clone(), s.done.clone()));
        let fin = s.to_json(true);
        assert!(fin.get("done").is_none());
        assert_eq!(HistoryState::from_state(Some(&fin)).unwrap().done, None);
    }

    #[test]
    fn old_layout_migrates_and_others_are_rejected() {
        assert_eq!(HistoryState::from_state(None).unwrap(), HistoryState::default());
        assert_eq!(HistoryState::from_state(Some(&Value::Null)).unwrap(), HistoryState::default());
        let old = HistoryState::from_state(Some(&json!({"mode": "history", "clients_done": 137}))).unwrap();
        assert!(old.migrated && old.clients.is_empty() && old.done.is_none());
        let bare = HistoryState::from_state(Some(&json!({"mode": "history", "clients": {"c": 5}}))).unwrap();
        assert_eq!(bare.clients["c"], Watermark { ms: 5, ids: BTreeSet::new() });
        for bad in [
            json!({"mode": "webhook", "seq": 3}),
            json!({"seq": 3}),
            json!({"mode": "history"}),
            json!({"mode": "history", "version": 9, "clients": {}}),
            json!({"mode": "history", "clients": {"c": "soon"}}),
            json!({"mode": "history", "clients": {}, "done": 3}),
            json!([1]),
        ] {
            let e = HistoryState::from_state(Some(&bad)).unwrap_err().to_string();
            assert!(e.contains("pipe state reset"), "{bad}: {e}");
        }
    }
}
