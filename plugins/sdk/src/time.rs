//! Vendor timestamps to canonical microseconds since the Unix epoch, UTC.

use chrono::{DateTime, NaiveDateTime, Utc};

/// Parses an ISO-8601 / RFC 3339 timestamp to microseconds since the Unix epoch, UTC.
///
/// Accepts an explicit offset or `Z` (`2023-06-14T10:49:34.406Z`, `...+02:00`) and naive
/// timestamps without a zone (`2015-02-13T11:31:36.042`), which are taken as UTC (giosg's
/// older documents and Aimylogic send those). Fractional seconds of any length are allowed;
/// precision finer than a microsecond is truncated. Returns `None` for anything else.
pub fn parse_timestamp_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.with_timezone(&Utc).timestamp_micros());
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(naive.and_utc().timestamp_micros());
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

    #[test]
    fn format_round_trips() {
        let us = parse_timestamp_micros("2015-02-13T11:31:36.042").unwrap();
        assert_eq!(format_micros(us), "2015-02-13T11:31:36.042000Z");
    }
}
