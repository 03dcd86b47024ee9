//! Vendor timestamps to canonical microseconds since the Unix epoch, UTC.
//!
//! Every vendor time goes through one checked conversion ([`vendor_time`], or [`checked`] for a
//! time already in microseconds): it never wraps, saturates or panics. A time that cannot be
//! read, cannot be represented, or lies implausibly far in the future is a [`TimeProblem`],
//! whose [`TimeProblem::reason`] is the dead-letter reason the source records; the row is then
//! left out (a required time) or its column left null (an optional one), and the engine ends
//! the run partial naming it ([`crate::DeadLetterKind::Rejected`]).
//!
//! A time written without a zone (`2022-09-28T12:32:13.262`) is read in the vendor's [`Zone`]:
//! UTC unless the source is told otherwise (Aimylogic's `timezone` key).

use chrono::{DateTime, NaiveDateTime, Offset as _, TimeZone as _, Utc};
use serde_json::Value;

/// The zone a vendor's zone-less times are written in: UTC ([`Zone::UTC`], the default) or an
/// IANA zone (`Europe/Moscow`) from the `chrono-tz` database. Times that carry an offset or
/// `Z` are never affected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Zone(Option<chrono_tz::Tz>);

impl Zone {
    /// Coordinated Universal Time.
    pub const UTC: Zone = Zone(None);

    /// The IANA zone `name` (`Europe/Moscow`, `UTC`, `Etc/GMT-3`); case as in the database.
    ///
    /// Errors: a message naming `name` when the database has no such zone.
    pub fn named(name: &str) -> std::result::Result<Zone, String> {
        let tz: chrono_tz::Tz = name
            .trim()
            .parse()
            .map_err(|_| format!("`{name}` is not an IANA time zone name (e.g. Europe/Moscow, UTC)"))?;
        Ok(if tz == chrono_tz::UTC { Zone::UTC } else { Zone(Some(tz)) })
    }

    /// The zone's IANA name (`UTC` for the default).
    pub fn name(&self) -> &'static str {
        self.0.map_or("UTC", |tz| tz.name())
    }

    /// The wall-clock time of this zone at `us` (microseconds since the epoch, UTC), without
    /// zone: the inverse of [`Zone::local_to_micros`]. `None` when out of range.
    pub fn wall_clock(&self, us: i64) -> Option<NaiveDateTime> {
        let utc = DateTime::<Utc>::from_timestamp_micros(us)?;
        Some(match self.0 {
            None => utc.naive_utc(),
            Some(tz) => utc.with_timezone(&tz).naive_local(),
        })
    }

    /// A wall-clock time of this zone as microseconds since the epoch, UTC. A time that occurs
    /// twice (clocks set back) is the earlier; one that does not occur (clocks set forward) is
    /// read with the offset in force just before the gap. `None` only when out of range.
    pub fn local_to_micros(&self, naive: NaiveDateTime) -> Option<i64> {
        let Some(tz) = self.0 else { return Some(naive.and_utc().timestamp_micros()) };
        let utc = match tz.from_local_datetime(&naive).earliest() {
            Some(t) => t.with_timezone(&Utc),
            None => {
                // In a gap: the offset of an instant a day before, when the old offset held.
                let before = naive.checked_sub_signed(chrono::Duration::days(1))?;
                let offset = tz.offset_from_utc_datetime(&before).fix();
                naive.checked_sub_signed(chrono::Duration::seconds(i64::from(offset.local_minus_utc())))?.and_utc()
            }
        };
        Some(utc.timestamp_micros())
    }
}

/// How far after now a vendor time may lie and still be taken as true: 24 hours, in
/// microseconds. A vendor clock running ahead, or a zone-less time read as UTC (at most 14
/// hours off), stays inside it; a chat "created" in 2099 does not.
pub const MAX_FUTURE_US: i64 = 24 * 3600 * 1_000_000;

/// Why a vendor time cannot be a canonical timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeProblem {
    /// Not a time in any accepted form (dead-letter reason `unparsable_timestamp`).
    Unparsable,
    /// Outside what a canonical timestamp holds: microseconds in an `i64` that every reader
    /// can format (chrono's range, years −262143 to 262142), or not a finite number (reason
    /// `time_out_of_range`).
    OutOfRange,
    /// More than [`MAX_FUTURE_US`] after now (reason `time_in_future`).
    InFuture,
}

impl TimeProblem {
    /// The dead-letter reason: `unparsable_timestamp`, `time_out_of_range` or `time_in_future`.
    pub fn reason(self) -> &'static str {
        match self {
            TimeProblem::Unparsable => "unparsable_timestamp",
            TimeProblem::OutOfRange => "time_out_of_range",
            TimeProblem::InFuture => "time_in_future",
        }
    }

    /// What is wrong, for a dead letter's message.
    pub fn describe(self) -> &'static str {
        match self {
            TimeProblem::Unparsable => "is not a time pipe can read",
            TimeProblem::OutOfRange => "is outside the range of a timestamp",
            TimeProblem::InFuture => "lies more than 24 hours in the future",
        }
    }
}

/// The unit of a vendor's numeric (epoch) times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochUnit {
    /// Seconds since the Unix epoch.
    Seconds,
    /// Milliseconds since the Unix epoch.
    Millis,
    /// Microseconds since the Unix epoch.
    Micros,
    /// Guessed from the magnitude, for a vendor that does not document its unit: below 10¹²
    /// seconds (until the year 33658), below 10¹⁵ milliseconds, else microseconds.
    ByMagnitude,
}

impl EpochUnit {
    /// The unit of `n`: itself, or for [`EpochUnit::ByMagnitude`] the one its magnitude says.
    pub fn of(self, n: f64) -> EpochUnit {
        match self {
            EpochUnit::ByMagnitude if n.abs() >= 1e15 => EpochUnit::Micros,
            EpochUnit::ByMagnitude if n.abs() >= 1e12 => EpochUnit::Millis,
            EpochUnit::ByMagnitude => EpochUnit::Seconds,
            unit => unit,
        }
    }

    /// `n` of this unit in microseconds, rounded; [`TimeProblem::OutOfRange`] when `n` is not
    /// finite or the result is outside [`checked`]'s range (never saturated, never wrapped).
    pub fn to_micros(self, n: f64) -> Result<i64, TimeProblem> {
        let us = match self.of(n) {
            EpochUnit::Seconds => n * 1e6,
            EpochUnit::Millis => n * 1e3,
            _ => n,
        }
        .round();
        // `i64::MAX as f64` rounds up to exactly 2^63: anything at or beyond it does not fit.
        let limit = i64::MAX as f64;
        if !(-limit..limit).contains(&us) {
            return Err(TimeProblem::OutOfRange);
        }
        in_range(us as i64)
    }
}

/// `us` if a reader can format it (chrono's range), else [`TimeProblem::OutOfRange`].
fn in_range(us: i64) -> Result<i64, TimeProblem> {
    DateTime::<Utc>::from_timestamp_micros(us).map(|_| us).ok_or(TimeProblem::OutOfRange)
}

/// Checks a time in microseconds against `now_us`: representable, and at most
/// [`MAX_FUTURE_US`] after now.
pub fn checked(us: i64, now_us: i64) -> Result<i64, TimeProblem> {
    let us = in_range(us)?;
    if us > now_us.saturating_add(MAX_FUTURE_US) { Err(TimeProblem::InFuture) } else { Ok(us) }
}

/// One vendor time, checked: `Ok(None)` when absent or JSON `null`; a string is parsed by
/// [`parse_timestamp_in`] (a time without zone is a wall-clock time of `zone`; a plain number
/// is read as an epoch number); a number is an epoch time in `unit`. Errors: [`TimeProblem`],
/// by the rules of [`checked`].
pub fn vendor_time(v: Option<&Value>, unit: EpochUnit, zone: Zone, now_us: i64) -> Result<Option<i64>, TimeProblem> {
    let us = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => match parse_timestamp_in(s, zone) {
            Some(us) => us,
            None => match s.trim().parse::<f64>() {
                Ok(n) => unit.to_micros(n)?,
                Err(_) => return Err(TimeProblem::Unparsable),
            },
        },
        Some(Value::Number(n)) => match (n.as_i64(), n.as_f64()) {
            // Integers exactly (f64 would round epoch microseconds).
            (Some(i), _) => match unit.of(i as f64) {
                EpochUnit::Seconds => i.checked_mul(1_000_000).ok_or(TimeProblem::OutOfRange)?,
                EpochUnit::Millis => i.checked_mul(1_000).ok_or(TimeProblem::OutOfRange)?,
                _ => i,
            },
            (None, Some(f)) => unit.to_micros(f)?,
            (None, None) => return Err(TimeProblem::OutOfRange),
        },
        Some(_) => return Err(TimeProblem::Unparsable),
    };
    checked(us, now_us).map(Some)
}

/// A vendor time a record carried that could not be used ([`RecordTimes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BadTime {
    /// The vendor's field name (`created_at`, `lastChatTime`).
    pub field: String,
    /// The value as the vendor sent it.
    pub raw: Value,
    /// What is wrong with it; [`TimeProblem::reason`] is the dead-letter reason.
    pub problem: TimeProblem,
}

impl BadTime {
    /// `what`, the field in backquotes, the raw value and what is wrong with it, for a dead
    /// letter's message: ``chat 7: `ended_at` "soon" is not a time pipe can read``.
    pub fn message(&self, what: &str) -> String {
        format!("{what}: `{}` {} {}", self.field, self.raw, self.problem.describe())
    }
}

/// Reads the times of the records of one mapping through [`vendor_time`], remembering every
/// problem, so a mapping reads a time in one call and turns what went wrong into dead letters
/// afterwards ([`RecordTimes::take`]).
#[derive(Debug)]
pub struct RecordTimes {
    now_us: i64,
    unit: EpochUnit,
    zone: Zone,
    bad: Vec<BadTime>,
}

impl RecordTimes {
    /// Checks against `now_us` (microseconds UTC, e.g. the rows' `extracted_at`); numbers are
    /// epoch times in `unit`.
    pub fn new(now_us: i64, unit: EpochUnit) -> Self {
        RecordTimes { now_us, unit, zone: Zone::UTC, bad: Vec::new() }
    }

    /// The same, reading times written without a zone in `zone` instead of UTC.
    pub fn in_zone(mut self, zone: Zone) -> Self {
        self.zone = zone;
        self
    }

    /// `record[field]` in microseconds UTC; `None` when absent, null or bad (then remembered).
    pub fn read(&mut self, record: &Value, field: &str) -> Option<i64> {
        match vendor_time(record.get(field), self.unit, self.zone, self.now_us) {
            Ok(t) => t,
            Err(problem) => {
                self.bad.push(BadTime { field: field.to_string(), raw: record[field].clone(), problem });
                None
            }
        }
    }

    /// The problems met since the last call, oldest first.
    pub fn take(&mut self) -> Vec<BadTime> {
        std::mem::take(&mut self.bad)
    }
}

/// Parses an ISO-8601 / RFC 3339 timestamp to microseconds since the Unix epoch, UTC.
///
/// Accepts an explicit offset or `Z` (`2023-06-14T10:49:34.406Z`, `...+02:00`) and naive
/// timestamps without a zone (`2015-02-13T11:31:36.042`), which are taken as UTC (giosg's
/// older documents send those; [`parse_timestamp_in`] reads them in another zone). Fractional
/// seconds of any length are allowed; precision finer than a microsecond is truncated.
/// Returns `None` for anything else.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    parse_timestamp_in(s, Zone::UTC)
}

/// [`parse_timestamp_micros`], reading a timestamp without zone as a wall-clock time of `zone`
/// ([`Zone::local_to_micros`]); one with an offset or `Z` is read as written.
pub fn parse_timestamp_in(s: &str, zone: Zone) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return zone.local_to_micros(naive);
        }
    }
    // A space before the offset (`2023-06-14 10:49:34+00:00`) is common in exports.
    DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%:z").ok().map(|dt| dt.with_timezone(&Utc).timestamp_micros())
}

/// Now, in microseconds since the Unix epoch, UTC (for `extracted_at`).
pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds (`...T10:49:34.406000Z`).
pub fn format_micros(us: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_else(|| us.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn zulu_naive_and_offset_agree() {
        let z = parse_timestamp_micros("2023-06-14T10:49:34.406Z").unwrap();
        let naive = parse_timestamp_micros("2023-06-14T10:49:34.406").unwrap();
        let offset = parse_timestamp_micros("2023-06-14T12:49:34.406+02:00").unwrap();
        assert_eq!(z, naive);
        assert_eq!(z, offset);
        assert_eq!(z, 1_686_739_774_406_000);
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(parse_timestamp_micros("yesterday"), None);
        assert_eq!(parse_timestamp_micros(""), None);
    }

    const NOW: i64 = 1_764_633_600_000_000; // 2025-12-02T00:00:00Z

    #[test]
    fn vendor_times_in_every_form_agree() {
        let want = Ok(Some(1_717_243_200_000_000));
        assert_eq!(vendor_time(Some(&json!("2024-06-01T12:00:00Z")), EpochUnit::Millis, Zone::UTC, NOW), want);
        assert_eq!(vendor_time(Some(&json!(1_717_243_200_000_i64)), EpochUnit::Millis, Zone::UTC, NOW), want);
        assert_eq!(vendor_time(Some(&json!("1717243200000")), EpochUnit::Millis, Zone::UTC, NOW), want);
        assert_eq!(vendor_time(Some(&json!(1_717_243_200)), EpochUnit::Seconds, Zone::UTC, NOW), want);
        assert_eq!(vendor_time(Some(&json!(1_717_243_200.0)), EpochUnit::Seconds, Zone::UTC, NOW), want);
        assert_eq!(vendor_time(Some(&json!(1_717_243_200_000_000_i64)), EpochUnit::Micros, Zone::UTC, NOW), want);
        for by_magnitude in [json!(1_717_243_200), json!(1_717_243_200_000_i64), json!(1_717_243_200_000_000_i64)] {
            assert_eq!(
                vendor_time(Some(&by_magnitude), EpochUnit::ByMagnitude, Zone::UTC, NOW),
                want,
                "{by_magnitude}"
            );
        }
        assert_eq!(vendor_time(None, EpochUnit::Millis, Zone::UTC, NOW), Ok(None));
        assert_eq!(vendor_time(Some(&Value::Null), EpochUnit::Millis, Zone::UTC, NOW), Ok(None));
    }

    #[test]
    fn huge_epochs_are_out_of_range_never_saturated_or_wrapped() {
        for v in [json!(1e30), json!(i64::MAX), json!(u64::MAX), json!(-1e300), json!("1e30"), json!(9.3e18)] {
            assert_eq!(vendor_time(Some(&v), EpochUnit::Millis, Zone::UTC, NOW), Err(TimeProblem::OutOfRange), "{v}");
        }
        // i64::MAX microseconds is an i64, but no reader formats year 294247.
        assert_eq!(
            vendor_time(Some(&json!(i64::MAX)), EpochUnit::Micros, Zone::UTC, NOW),
            Err(TimeProblem::OutOfRange)
        );
        assert_eq!(EpochUnit::Seconds.to_micros(f64::NAN), Err(TimeProblem::OutOfRange));
        assert_eq!(EpochUnit::Seconds.to_micros(f64::INFINITY), Err(TimeProblem::OutOfRange));
    }

    #[test]
    fn far_future_times_are_refused_near_future_ones_kept() {
        let in_an_hour = NOW + 3_600_000_000;
        assert_eq!(checked(in_an_hour, NOW), Ok(in_an_hour));
        assert_eq!(checked(NOW + MAX_FUTURE_US, NOW), Ok(NOW + MAX_FUTURE_US));
        assert_eq!(checked(NOW + MAX_FUTURE_US + 1, NOW), Err(TimeProblem::InFuture));
        assert_eq!(
            vendor_time(Some(&json!("2099-01-01T00:00:00Z")), EpochUnit::Millis, Zone::UTC, NOW),
            Err(TimeProblem::InFuture)
        );
        // Long ago is odd but true: kept.
        assert_eq!(
            vendor_time(Some(&json!("1901-01-01T00:00:00Z")), EpochUnit::Millis, Zone::UTC, NOW).map(|t| t.is_some()),
            Ok(true)
        );
    }

    #[test]
    fn non_times_are_unparsable() {
        for v in [json!("yesterday"), json!(""), json!(true), json!({"t": 1}), json!([1])] {
            assert_eq!(vendor_time(Some(&v), EpochUnit::Millis, Zone::UTC, NOW), Err(TimeProblem::Unparsable), "{v}");
        }
        assert_eq!(TimeProblem::InFuture.reason(), "time_in_future");
    }

    #[test]
    fn record_times_remember_what_was_wrong() {
        let chat =
            json!({"created_at": "2099-01-01T00:00:00Z", "updated_at": "2024-06-01T12:00:00Z", "ended_at": "soon"});
        let mut times = RecordTimes::new(NOW, EpochUnit::Millis);
        assert_eq!(times.read(&chat, "created_at"), None);
        assert_eq!(times.read(&chat, "updated_at"), Some(1_717_243_200_000_000));
        assert_eq!(times.read(&chat, "ended_at"), None);
        assert_eq!(times.read(&chat, "missing"), None);
        let bad = times.take();
        let reasons: Vec<_> = bad.iter().map(|b| (b.field.as_str(), b.problem.reason())).collect();
        assert_eq!(reasons, [("created_at", "time_in_future"), ("ended_at", "unparsable_timestamp")]);
        assert_eq!(bad[1].message("chat 7"), "chat 7: `ended_at` \"soon\" is not a time pipe can read");
        assert!(times.take().is_empty());
    }

    #[test]
    fn zone_less_times_are_read_in_the_vendor_zone_and_zoned_ones_as_written() {
        let moscow = Zone::named("Europe/Moscow").unwrap();
        assert_eq!(moscow.name(), "Europe/Moscow");
        // docs/vendors/aimylogic.md §1's literal timestamp: 12:32 in Moscow (UTC+3) is 09:32 UTC.
        let seed = json!("2022-09-28T12:32:13.262");
        let utc = vendor_time(Some(&seed), EpochUnit::Millis, Zone::UTC, NOW).unwrap().unwrap();
        let msk = vendor_time(Some(&seed), EpochUnit::Millis, moscow, NOW).unwrap().unwrap();
        assert_eq!(format_micros(utc), "2022-09-28T12:32:13.262000Z");
        assert_eq!(format_micros(msk), "2022-09-28T09:32:13.262000Z");
        // An explicit offset, `Z` or an epoch number is not moved by the zone.
        for v in [json!("2022-09-28T12:32:13.262Z"), json!(1_664_368_333_262_i64)] {
            assert_eq!(vendor_time(Some(&v), EpochUnit::Millis, moscow, NOW), Ok(Some(utc)), "{v}");
        }
        assert_eq!(Zone::named("UTC").unwrap(), Zone::UTC);
        assert!(Zone::named("Mars/Olympus").unwrap_err().contains("Mars/Olympus"));
        // Daylight saving: Berlin's 02:30 on 2024-03-31 does not exist (read at +01:00), its
        // 02:30 on 2024-10-27 happens twice (the earlier, +02:00).
        let berlin = Zone::named("Europe/Berlin").unwrap();
        assert_eq!(
            format_micros(parse_timestamp_in("2024-03-31T02:30:00", berlin).unwrap()),
            "2024-03-31T01:30:00.000000Z"
        );
        assert_eq!(
            format_micros(parse_timestamp_in("2024-10-27T02:30:00", berlin).unwrap()),
            "2024-10-27T00:30:00.000000Z"
        );
        assert_eq!(moscow.wall_clock(msk).unwrap().to_string(), "2022-09-28 12:32:13.262");
        let mut times = RecordTimes::new(NOW, EpochUnit::Millis).in_zone(moscow);
        assert_eq!(times.read(&json!({"t": "2022-09-28T12:32:13.262"}), "t"), Some(msk));
    }

    #[test]
    fn format_round_trips() {
        let us = parse_timestamp_micros("2015-02-13T11:31:36.042").unwrap();
        assert_eq!(format_micros(us), "2015-02-13T11:31:36.042000Z");
    }
}
