//! JSON Lines encoding of Arrow batches, as docs/design.md §3 defines it for every JSON output.
//!
//! One JSON object per row, one row per line, keys in schema order, and every column present
//! on every line (a null is written as `null`, not left out, so a loader sees a fixed set of
//! keys). Timestamps with a time zone are RFC 3339 strings in UTC with a `Z` suffix and the
//! column's own precision (`2023-06-14T10:49:34.406000Z` for microseconds); lists are JSON
//! arrays; maps with string keys are JSON objects.
//!
//! arrow-json does most of the work. Its own timestamp formatting cannot be used: it parses
//! the zone name through arrow's `Tz`, which without the `chrono-tz` feature only knows
//! offsets (`+00:00`) and fails on our canonical `"UTC"`. [`Rfc3339Timestamps`] replaces it.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::Result;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, ArrowPrimitiveType, PrimitiveArray, RecordBatch};
use arrow_json::WriterBuilder;
use arrow_json::writer::{Encoder, EncoderFactory, EncoderOptions, LineDelimited, NullableEncoder};
use arrow_schema::{ArrowError, DataType, FieldRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};

/// Appends the rows of `batch` to `out` as JSON Lines: one object per row, each ending in `\n`.
///
/// Errors: an Arrow error for a column type JSON cannot represent (a union, a map with
/// non-string keys). Every timestamp can be written ([`format_timestamp`]).
pub fn encode_rows(batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .with_encoder_factory(Arc::new(Rfc3339Timestamps))
        .build::<_, LineDelimited>(out);
    writer.write(batch)?;
    writer.finish()?;
    Ok(())
}

/// Like [`encode_rows`], but every object starts with a `"stream"` key naming `stream`
/// (`{"stream":"messages","vendor":"giosg",...}`), for outputs that mix streams (stdout).
///
/// Errors: as [`encode_rows`].
pub fn encode_rows_with_stream(stream: &str, batch: &RecordBatch, out: &mut Vec<u8>) -> Result<()> {
    let mut rows = Vec::new();
    encode_rows(batch, &mut rows)?;
    let prefix = format!("{{\"stream\":{}", serde_json::Value::from(stream));
    // Splitting on b'\n' is safe: JSON escapes a newline inside a string, so a raw newline
    // byte only ever ends a row.
    for line in rows.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        out.extend_from_slice(prefix.as_bytes());
        // `line` is `{...}`; splice its members in after the stream key.
        if line.len() > 2 {
            out.push(b',');
        }
        out.extend_from_slice(&line[1..]);
        out.push(b'\n');
    }
    Ok(())
}

/// An arrow-json [`EncoderFactory`] that writes every time-zone-aware timestamp, at any nesting
/// depth, as an RFC 3339 string in UTC with a `Z` suffix, keeping the column's precision
/// (seconds, milliseconds, microseconds or nanoseconds). The stored value is an instant, so
/// whatever zone the column names, the UTC rendering is the same instant. Timestamps without a
/// zone keep arrow-json's own format.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rfc3339Timestamps;

impl EncoderFactory for Rfc3339Timestamps {
    fn make_default_encoder<'a>(
        &self,
        _field: &'a FieldRef,
        array: &'a dyn Array,
        _options: &'a EncoderOptions,
    ) -> Result<Option<NullableEncoder<'a>>, ArrowError> {
        let DataType::Timestamp(unit, Some(_)) = array.data_type() else {
            return Ok(None);
        };
        let nulls = array.nulls().cloned();
        let encoder: Box<dyn Encoder + 'a> = match unit {
            TimeUnit::Second => Box::new(TimestampEncoder::new(
                array.as_primitive::<TimestampSecondType>(),
                SecondsFormat::Secs,
                DateTime::from_timestamp_secs,
            )?),
            TimeUnit::Millisecond => Box::new(TimestampEncoder::new(
                array.as_primitive::<TimestampMillisecondType>(),
                SecondsFormat::Millis,
                DateTime::from_timestamp_millis,
            )?),
            TimeUnit::Microsecond => Box::new(TimestampEncoder::new(
                array.as_primitive::<TimestampMicrosecondType>(),
                SecondsFormat::Micros,
                DateTime::from_timestamp_micros,
            )?),
            TimeUnit::Nanosecond => Box::new(TimestampEncoder::new(
                array.as_primitive::<TimestampNanosecondType>(),
                SecondsFormat::Nanos,
                |v| Some(DateTime::from_timestamp_nanos(v)),
            )?),
        };
        Ok(Some(NullableEncoder::new(encoder, nulls)))
    }
}

/// Encodes one timestamp array. Every `i64` is encoded, even one outside chrono's range
/// (years beyond ±262143, which microseconds reach): see [`format_timestamp`].
struct TimestampEncoder<'a, T: ArrowPrimitiveType<Native = i64>> {
    array: &'a PrimitiveArray<T>,
    format: SecondsFormat,
    to_datetime: fn(i64) -> Option<DateTime<Utc>>,
    /// Units of the column per second (1, 1 000, 1 000 000, 1 000 000 000).
    per_second: i64,
    text: String,
}

impl<'a, T: ArrowPrimitiveType<Native = i64>> TimestampEncoder<'a, T> {
    fn new(
        array: &'a PrimitiveArray<T>,
        format: SecondsFormat,
        to_datetime: fn(i64) -> Option<DateTime<Utc>>,
    ) -> Result<Self, ArrowError> {
        let per_second = match format {
            SecondsFormat::Secs => 1,
            SecondsFormat::Millis => 1_000,
            SecondsFormat::Micros => 1_000_000,
            _ => 1_000_000_000,
        };
        Ok(TimestampEncoder { array, format, to_datetime, per_second, text: String::new() })
    }
}

/// Seconds in 400 Gregorian years: the calendar repeats itself exactly after them.
const GREGORIAN_CYCLE_SECONDS: i128 = 146_097 * 86_400;

/// `value` (in units of `1 / per_second` s since the epoch, UTC) as RFC 3339 with `format`'s
/// precision and a `Z`. Within chrono's range this is chrono's own text. Outside it (years
/// beyond ±262143) the instant is formatted losslessly the same way ISO 8601 writes expanded
/// years, and as chrono writes years past 9999: a signed year of five or more digits
/// (`+270000-01-01T00:00:00.000000Z`). It is computed by moving the instant by whole 400-year
/// cycles into chrono's range (month, day and time repeat exactly), formatting it, and putting
/// back the years moved.
pub fn format_timestamp(
    value: i64,
    per_second: i64,
    format: SecondsFormat,
    to_datetime: fn(i64) -> Option<DateTime<Utc>>,
) -> String {
    if let Some(dt) = to_datetime(value) {
        return dt.to_rfc3339_opts(format, true);
    }
    let cycle = GREGORIAN_CYCLE_SECONDS * i128::from(per_second);
    let cycles = i128::from(value).div_euclid(cycle);
    // In [0, cycle): 1970-01-01 up to 2370, always in range.
    let within = i64::try_from(i128::from(value).rem_euclid(cycle)).expect("less than one cycle");
    let dt = to_datetime(within).expect("400 years after 1970 are in chrono's range");
    let text = dt.to_rfc3339_opts(format, true);
    let year = i128::from(chrono::Datelike::year(&dt)) + 400 * cycles;
    // `text` starts with the four-digit year of `dt`.
    format!("{year:+05}{}", &text[4..])
}

impl<T: ArrowPrimitiveType<Native = i64>> Encoder for TimestampEncoder<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        self.text.clear();
        let text = format_timestamp(self.array.value(idx), self.per_second, self.format, self.to_datetime);
        let _ = write!(self.text, "{text}");
        // RFC 3339 text needs no JSON escaping.
        out.push(b'"');
        out.extend_from_slice(self.text.as_bytes());
        out.push(b'"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::TimestampMillisecondArray;
    use arrow_schema::{Field, Schema};

    #[test]
    fn millisecond_precision_and_nulls() {
        let ts = TimestampMillisecondArray::from(vec![Some(1_686_739_774_406), None]).with_timezone("+02:00");
        let schema = Schema::new(vec![Field::new("t", ts.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ts)]).unwrap();
        let mut out = Vec::new();
        encode_rows(&batch, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"t\":\"2023-06-14T10:49:34.406Z\"}\n{\"t\":null}\n");
    }

    #[test]
    fn times_beyond_chronos_range_are_written_losslessly() {
        use arrow_array::TimestampMicrosecondArray;
        let micros = |v: i64| format_timestamp(v, 1_000_000, SecondsFormat::Micros, DateTime::from_timestamp_micros);
        // In range: chrono's own text, unchanged.
        assert_eq!(micros(1_686_739_774_406_000), "2023-06-14T10:49:34.406000Z");
        assert_eq!(micros(0), "1970-01-01T00:00:00.000000Z");
        // The extremes of i64 microseconds, beyond chrono's ±262143 years.
        assert_eq!(micros(i64::MAX), "+294247-01-10T04:00:54.775807Z");
        assert_eq!(micros(i64::MIN), "-290308-12-21T19:59:05.224192Z");
        // One 400-year cycle moves only the year: the day and the time are exact.
        let cycle = 146_097 * 86_400 * 1_000_000i64;
        let far = 1_686_739_774_406_001 + 700 * cycle;
        assert_eq!(micros(far), "+282023-06-14T10:49:34.406001Z");
        assert_eq!(micros(far - 700 * cycle), "2023-06-14T10:49:34.406001Z");
        // A whole batch with one such value encodes, every row.
        let ts = TimestampMicrosecondArray::from(vec![Some(0), Some(i64::MAX), None]).with_timezone("UTC");
        let schema = Schema::new(vec![Field::new("t", ts.data_type().clone(), true)]);
        let batch = RecordBatch::try_new(Arc::new(schema), vec![Arc::new(ts)]).unwrap();
        let mut out = Vec::new();
        encode_rows(&batch, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"t\":\"1970-01-01T00:00:00.000000Z\"}\n{\"t\":\"+294247-01-10T04:00:54.775807Z\"}\n{\"t\":null}\n"
        );
        let secs = |v: i64| format_timestamp(v, 1, SecondsFormat::Secs, DateTime::from_timestamp_secs);
        assert!(secs(i64::MAX).starts_with('+') && secs(i64::MIN).starts_with('-'));
    }

    #[test]
    fn stream_key_comes_first_even_without_columns() {
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &arrow_array::RecordBatchOptions::new().with_row_count(Some(1)),
        )
        .unwrap();
        let mut out = Vec::new();
        encode_rows_with_stream("s\"x", &batch, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"stream\":\"s\\\"x\"}\n");
    }
}
