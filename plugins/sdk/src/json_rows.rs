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
/// non-string keys, a timestamp outside chrono's range).
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

/// Encodes one timestamp array. Values are checked when the encoder is made, because
/// [`Encoder::encode`] cannot fail.
struct TimestampEncoder<'a, T: ArrowPrimitiveType<Native = i64>> {
    array: &'a PrimitiveArray<T>,
    format: SecondsFormat,
    to_datetime: fn(i64) -> Option<DateTime<Utc>>,
    text: String,
}

impl<'a, T: ArrowPrimitiveType<Native = i64>> TimestampEncoder<'a, T> {
    fn new(
        array: &'a PrimitiveArray<T>,
        format: SecondsFormat,
        to_datetime: fn(i64) -> Option<DateTime<Utc>>,
    ) -> Result<Self, ArrowError> {
        for (i, v) in array.values().iter().enumerate() {
            if array.is_valid(i) && to_datetime(*v).is_none() {
                return Err(ArrowError::JsonError(format!(
                    "timestamp {v} is outside the range JSON output can represent"
                )));
            }
        }
        Ok(TimestampEncoder { array, format, to_datetime, text: String::new() })
    }
}

impl<T: ArrowPrimitiveType<Native = i64>> Encoder for TimestampEncoder<'_, T> {
    fn encode(&mut self, idx: usize, out: &mut Vec<u8>) {
        // Checked in `new`; a null slot's value may be anything but is never asked for.
        let Some(dt) = (self.to_datetime)(self.array.value(idx)) else {
            return;
        };
        self.text.clear();
        let _ = write!(self.text, "{}", dt.to_rfc3339_opts(self.format, true));
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
