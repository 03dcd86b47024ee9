//! Planning a run: what `pipe run`'s options make of the pipeline before anything opens.
//!
//! * `--window FROM..TO` ([`Window`], [`apply_window`]): a bounded backfill. The source exports
//!   only conversations created in `[FROM, TO)`, and the window keeps its own state (pipeline
//!   name `<name>@<FROM>..<TO>`), so a long history can be split over many tasks, each
//!   resumable, without touching the state of the regular incremental runs. It works with
//!   every source whose config has `start` and `end` keys (RFC 3339 instants): the window sets
//!   both, for every account.
//! * `--shard K/N`: of the pipeline's `[[source.accounts]]`, only those whose stable hash of
//!   `id` falls in shard K of N (`crate::config::accounts::shard_of`).
//!
//! [`Plan::new`] applies both and is the pipeline the rest of the run sees.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::Value;

use crate::config::Pipeline;
use crate::config::accounts::{Account, shard_of};
use crate::runtime::report::RunError;

/// Options of one run (`pipe run` flags).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// `--limit N`: stop after this many conversations.
    pub limit: Option<u64>,
    /// `--full-refresh`: ignore the saved state and start as on a first run (the state is
    /// replaced at the first commit).
    pub full_refresh: bool,
    /// `--shard K/N` as `(K, N)`: run only the accounts whose stable hash falls in shard K of N.
    pub shard: Option<(u32, u32)>,
    /// `--window FROM..TO`: only conversations created in the window, with its own state.
    pub window: Option<Window>,
}

/// The pipeline as this run sees it.
pub struct Plan<'p> {
    /// The loaded pipeline, or with `--window` a copy with `start`/`end` set and its own name
    /// (hence its own state).
    pub pipeline: Cow<'p, Pipeline>,
    /// The accounts this run covers: all of `[[source.accounts]]`, or those of its shard.
    /// `None`: a single-account pipeline.
    pub accounts: Option<Vec<Account>>,
}

impl<'p> Plan<'p> {
    /// Applies `opts.window` and `opts.shard` to `p`.
    ///
    /// Errors ([`RunError::Config`], exit 2): the source cannot be windowed (no `start` and
    /// `end` keys); `--shard` on a pipeline without `[[source.accounts]]`.
    pub fn new(p: &'p Pipeline, opts: &RunOptions) -> Result<Self, RunError> {
        let pipeline = match opts.window {
            None => Cow::Borrowed(p),
            Some(w) => {
                let windowed = apply_window(p, w).map_err(RunError::Config)?;
                tracing::info!(pipeline = %windowed.name, "backfill window: its state is kept apart from the regular runs'");
                Cow::Owned(windowed)
            }
        };
        let accounts = match (&pipeline.accounts, opts.shard) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(RunError::Config(
                    "--shard splits the accounts of a pipeline, and this one has a single account (add [[source.accounts]])"
                        .into(),
                ));
            }
            (Some(a), None) => Some(a.list.clone()),
            (Some(a), Some((k, n))) => {
                let mine: Vec<_> = a.list.iter().filter(|acc| shard_of(&acc.id, n) == k).cloned().collect();
                tracing::info!(pipeline = %pipeline.name, "shard {k}/{n}: {} of {} accounts ({})", mine.len(), a.list.len(),
                    mine.iter().map(|a| a.id.as_str()).collect::<Vec<_>>().join(", "));
                Some(mine)
            }
        };
        Ok(Plan { pipeline, accounts })
    }

    /// The ids of [`Self::accounts`]: each names its own state document.
    pub fn account_ids(&self) -> Option<Vec<String>> {
        self.accounts.as_ref().map(|list| list.iter().map(|a| a.id.clone()).collect())
    }
}

/// `--window FROM..TO`: a half-open time range `[from, to)`, UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First instant inside the window.
    pub from: DateTime<Utc>,
    /// First instant after the window.
    pub to: DateTime<Utc>,
}

impl std::str::FromStr for Window {
    type Err = String;

    /// `FROM..TO`, each an RFC 3339 instant (`2025-01-01T00:00:00Z`) or a date (`2025-01-01`,
    /// midnight UTC).
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once("..").ok_or("expected FROM..TO, e.g. 2025-01-01..2025-07-01")?;
        let from = instant(a.trim())?;
        let to = instant(b.trim())?;
        if to <= from {
            return Err(format!("the window {a}..{b} is empty: TO must be after FROM"));
        }
        Ok(Window { from, to })
    }
}

fn instant(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc())
        .map_err(|_| format!("`{s}` is neither an RFC 3339 instant nor a YYYY-MM-DD date"))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The pipeline restricted to `w`: `start`/`end` set in the source config (of every account)
/// and the state under `<name>@<from>..<to>`.
///
/// Errors: the source's config has no `start` and `end` keys (it cannot bound its export).
pub fn apply_window(p: &Pipeline, w: Window) -> Result<Pipeline, String> {
    let schema = (p.source.descriptor.config_schema)();
    let props = schema.get("properties").and_then(Value::as_object);
    if !props.is_some_and(|m| m.contains_key("start") && m.contains_key("end")) {
        return Err(format!(
            "source `{}` does not support --window (its config has no `start` and `end` keys)",
            p.source.descriptor.name
        ));
    }
    let mut out = p.clone();
    let set = |config: &mut Value| {
        if let Value::Object(m) = config {
            m.insert("start".into(), Value::String(rfc3339(w.from)));
            m.insert("end".into(), Value::String(rfc3339(w.to)));
        }
    };
    set(&mut out.source.config);
    if let Some(accounts) = &mut out.accounts {
        for a in &mut accounts.list {
            set(&mut a.spec.config);
        }
    }
    let stamp = |t: DateTime<Utc>| t.format("%Y%m%dT%H%M%SZ").to_string();
    out.name = format!("{}@{}..{}", p.name, stamp(w.from), stamp(w.to));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dates_and_instants_and_refuses_empty_windows() {
        let w: Window = "2025-01-01..2025-07-01T12:00:00+02:00".parse().unwrap();
        assert_eq!(rfc3339(w.from), "2025-01-01T00:00:00Z");
        assert_eq!(rfc3339(w.to), "2025-07-01T10:00:00Z");
        assert!("2025-07-01..2025-01-01".parse::<Window>().is_err());
        assert!("2025-07-01".parse::<Window>().is_err());
        assert!("yesterday..today".parse::<Window>().is_err());
    }
}
