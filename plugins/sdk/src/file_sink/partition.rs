//! Hive partitioning: which directory below `<path>/<stream>/` each row goes to.
//!
//! A row's directory is `<key>=<value>/...` over the configured `partition_by` columns, with
//! values formatted as text and escaped like Hive and Spark do, so those readers (and DuckDB,
//! pyarrow, polars) decode the same values back. Partition columns stay in the rows: only
//! the directory is added.
//!
//! Any value can be written: `/`, `..`, control characters and the rest of Hive's list are
//! percent-encoded, so a value is always inside one directory name, and a `key=value` name
//! that would be longer than [`MAX_SEGMENT_BYTES`] (255: the longest file name Linux and macOS
//! file systems allow) is shortened deterministically ([`shorten_segment`]): the start of the
//! escaped value, `~`, and 32 hex digits of the SHA-256 of the value. Shorter values keep the
//! exact directory they always had.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::schema::{CONVERSATIONS, MESSAGES};
use crate::{PluginError, Result};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use arrow_array::{Array, RecordBatch, UInt32Array};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::{DataType, Schema, TimeUnit};
use chrono::NaiveDate;

/// The special partition key: the UTC date of the stream's main timestamp.
pub const DATE_PARTITION: &str = "date";

/// The directory value of a null or empty partition value (Hive's and Spark's convention).
pub const HIVE_DEFAULT_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// Splits one stream's batches by partition directory. Built once per stream from its schema.
#[derive(Debug, Clone)]
pub struct Partitioner {
    keys: Vec<PartitionKey>,
}

#[derive(Debug, Clone)]
struct PartitionKey {
    /// `<key>=`, escaped.
    prefix: String,
    column: usize,
    kind: KeyKind,
}

#[derive(Debug, Clone, Copy)]
enum KeyKind {
    /// The column's own value, as text.
    Value,
    /// The UTC date of a timestamp column.
    DateOf(TimeUnit),
}

impl Partitioner {
    /// The partitioner of `stream` for `partition_by`.
    ///
    /// `date` is a real column of that name if the stream has one; otherwise the UTC date of
    /// `sent_at` (messages), `created_at` (conversations), or for another stream whichever of
    /// the two it has.
    ///
    /// Errors: [`PluginError::Config`] at `partition_by[i]` for a column the stream lacks or
    /// whose type cannot name a directory (timestamps, lists, maps, floats, binary).
    pub fn new(stream: &str, schema: &Schema, partition_by: &[String]) -> Result<Self> {
        let mut keys = Vec::with_capacity(partition_by.len());
        for (i, name) in partition_by.iter().enumerate() {
            let error = |message: String| PluginError::Config {
                path: format!("partition_by[{i}]"),
                message: format!("stream `{stream}`: {message}"),
            };
            let (column, kind) = match schema.index_of(name) {
                Ok(column) => {
                    let data_type = schema.field(column).data_type();
                    if !is_partition_type(data_type) {
                        let hint = if matches!(data_type, DataType::Timestamp(..)) {
                            "; partition by `date` instead"
                        } else {
                            ""
                        };
                        return Err(error(format!(
                            "column `{name}` has type {data_type}, which cannot be a partition value{hint}"
                        )));
                    }
                    (column, KeyKind::Value)
                }
                Err(_) if name == DATE_PARTITION => {
                    let candidates: &[&str] = match stream {
                        MESSAGES => &["sent_at"],
                        CONVERSATIONS => &["created_at"],
                        _ => &["sent_at", "created_at"],
                    };
                    let found = candidates.iter().find_map(|c| {
                        let column = schema.index_of(c).ok()?;
                        match schema.field(column).data_type() {
                            DataType::Timestamp(unit, _) => Some((column, KeyKind::DateOf(*unit))),
                            _ => None,
                        }
                    });
                    found
                        .ok_or_else(|| error(format!("`date` needs a timestamp column {}", candidates.join(" or "))))?
                }
                Err(_) => return Err(error(format!("no column `{name}`"))),
            };
            let mut prefix = String::new();
            escape_into(name, &mut prefix);
            prefix.push('=');
            keys.push(PartitionKey { prefix, column, kind });
        }
        Ok(Partitioner { keys })
    }

    /// Splits `batch` into `(relative directory, rows)` groups, in order of each directory's
    /// first row; rows keep their order within a group. Unpartitioned: one group, `""`.
    ///
    /// Errors: an Arrow error if a column cannot be formatted or taken (not expected for the
    /// types [`Partitioner::new`] accepts).
    pub fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>> {
        if self.keys.is_empty() {
            return Ok(vec![(String::new(), batch.clone())]);
        }
        let options = FormatOptions::default();
        let formatters = self
            .keys
            .iter()
            .map(|k| {
                let array = batch.column(k.column).as_ref();
                Ok(match k.kind {
                    KeyKind::Value => Some(ArrayFormatter::try_new(array, &options)?),
                    KeyKind::DateOf(_) => None,
                })
            })
            .collect::<Result<Vec<_>>>()?;

        let mut groups: Vec<(String, Vec<u32>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut dir = String::new();
        let mut value = String::new();
        let mut escaped = String::new();
        for row in 0..batch.num_rows() {
            dir.clear();
            for (key, formatter) in self.keys.iter().zip(&formatters) {
                let array = batch.column(key.column);
                value.clear();
                if array.is_valid(row) {
                    match (key.kind, formatter) {
                        (KeyKind::DateOf(unit), _) => utc_date(array.as_ref(), unit, row, &mut value),
                        (KeyKind::Value, Some(f)) => {
                            let _ = write!(value, "{}", f.value(row));
                        }
                        (KeyKind::Value, None) => unreachable!("value keys have a formatter"),
                    }
                }
                if !dir.is_empty() {
                    dir.push('/');
                }
                dir.push_str(&key.prefix);
                if value.is_empty() {
                    dir.push_str(HIVE_DEFAULT_PARTITION);
                } else {
                    escaped.clear();
                    escape_into(&value, &mut escaped);
                    shorten_segment(key.prefix.len(), &value, &mut escaped);
                    dir.push_str(&escaped);
                }
            }
            let at = *index.entry(dir.clone()).or_insert_with(|| {
                groups.push((dir.clone(), Vec::new()));
                groups.len() - 1
            });
            groups[at].1.push(row as u32);
        }

        if groups.len() == 1 {
            let (dir, _) = groups.pop().expect("one group");
            return Ok(vec![(dir, batch.clone())]);
        }
        groups
            .into_iter()
            .map(|(dir, rows)| {
                let rows = UInt32Array::from(rows);
                Ok((dir, arrow_select::take::take_record_batch(batch, &rows)?))
            })
            .collect()
    }
}

fn is_partition_type(t: &DataType) -> bool {
    t.is_integer()
        || matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean | DataType::Date32)
}

/// Appends the UTC date (`YYYY-MM-DD`) of timestamp `row` of `array`. The stored value is an
/// instant since the epoch, so the column's zone does not change the UTC date.
fn utc_date(array: &dyn Array, unit: TimeUnit, row: usize, out: &mut String) {
    let (value, per_day) = match unit {
        TimeUnit::Second => (array.as_primitive::<TimestampSecondType>().value(row), 86_400),
        TimeUnit::Millisecond => (array.as_primitive::<TimestampMillisecondType>().value(row), 86_400_000),
        TimeUnit::Microsecond => (array.as_primitive::<TimestampMicrosecondType>().value(row), 86_400_000_000),
        TimeUnit::Nanosecond => (array.as_primitive::<TimestampNanosecondType>().value(row), 86_400_000_000_000),
    };
    // 719_163 days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
    let days = value.div_euclid(per_day) + 719_163;
    if let Some(date) = i32::try_from(days).ok().and_then(NaiveDate::from_num_days_from_ce_opt) {
        let _ = write!(out, "{}", date.format("%Y-%m-%d"));
    }
    // Out of chrono's range: left empty, which lands in the default partition.
}

/// Longest directory name written, in bytes (`NAME_MAX` of Linux and macOS file systems).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Hex digits of the SHA-256 that end a shortened partition value (128 bits).
const HASH_HEX_DIGITS: usize = 32;

/// Shortens `escaped` (the escaped text of `value`) in place when `<key>=` (`prefix_len` bytes)
/// followed by it would be longer than [`MAX_SEGMENT_BYTES`]: it becomes the longest start of
/// `escaped` that fits (cut between characters, never inside a `%XX` escape), then `~`, then
/// the first 32 lower-case hex digits of the SHA-256 of `value` (UTF-8). The same value always
/// gives the same directory, and two long values differ unless their hashes collide.
pub fn shorten_segment(prefix_len: usize, value: &str, escaped: &mut String) {
    if prefix_len + escaped.len() <= MAX_SEGMENT_BYTES {
        return;
    }
    let room = MAX_SEGMENT_BYTES.saturating_sub(prefix_len + 1 + HASH_HEX_DIGITS);
    let mut cut = room.min(escaped.len());
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    // A `%` in the last two bytes kept starts an escape that would be split.
    if let Some(i) = escaped[cut.saturating_sub(2)..cut].rfind('%') {
        cut = cut.saturating_sub(2) + i;
    }
    escaped.truncate(cut);
    escaped.push('~');
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, value.as_bytes());
    for b in &digest.as_ref()[..HASH_HEX_DIGITS / 2] {
        let _ = write!(escaped, "{b:02x}");
    }
}

/// Appends `s` escaped as Hive escapes path names (`FileUtils.escapePathName`): control
/// characters and `"#%'*/:=?\{[]^` plus DEL become `%XX`; everything else, non-ASCII included,
/// is kept.
fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        if c < ' ' || c == '\u{7f}' || "\"#%'*/:=?\\{[]^".contains(c) {
            let _ = write!(out, "%{:02X}", c as u32);
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::{StringArray, TimestampMicrosecondArray};
    use arrow_schema::Field;

    #[test]
    fn escapes_like_hive() {
        let mut s = String::new();
        escape_into("a/b=c:d%ä", &mut s);
        assert_eq!(s, "a%2Fb%3Dc%3Ad%25ä");
    }

    #[test]
    fn long_values_are_shortened_deterministically_and_short_ones_kept() {
        let short = "a/b";
        let mut s = String::new();
        escape_into(short, &mut s);
        shorten_segment("vendor_id=".len(), short, &mut s);
        assert_eq!(s, "a%2Fb", "a value that fits is as before");

        // 300 bytes with `/` and `..`: escaped, cut to fit and hashed.
        let long = format!("../{}/..", "x".repeat(294));
        let dir = |v: &str| {
            let mut e = String::new();
            escape_into(v, &mut e);
            shorten_segment("k=".len(), v, &mut e);
            e
        };
        let d = dir(&long);
        assert_eq!(d.len() + "k=".len(), MAX_SEGMENT_BYTES);
        assert!(d.starts_with("..%2Fxxx") && !d.contains('/'), "{d}");
        let (_, hash) = d.rsplit_once('~').unwrap();
        // The first 32 hex digits of SHA-256(value): stable across runs and releases.
        assert_eq!(hash, "8669d6353078d184a9e2c0dabd12d718");
        assert_eq!(dir(&long), d, "deterministic");
        assert_ne!(dir(&format!("{long}y")), d, "another value, another directory");

        // Never a split escape or character: a value made of escapes and multi-byte letters.
        for v in ["/".repeat(200), "ä".repeat(200), format!("a{}", "%".repeat(150))] {
            let d = dir(&v);
            assert!(d.len() + 2 <= MAX_SEGMENT_BYTES, "{}", d.len());
            let (start, _) = d.rsplit_once('~').unwrap();
            let bytes = start.as_bytes();
            for (i, b) in bytes.iter().enumerate() {
                if *b == b'%' {
                    assert!(i + 3 <= bytes.len(), "split escape in {start}");
                }
            }
        }
    }

    #[test]
    fn groups_by_value_and_date_with_defaults() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("vendor", DataType::Utf8, true),
            Field::new("sent_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        ]));
        let day = 86_400_000_000i64;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("a"), None, Some("a"), Some(""), Some("a/b")])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(0), Some(day), Some(1), None, Some(-1)])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let p = Partitioner::new(MESSAGES, &schema, &["vendor".into(), "date".into()]).unwrap();
        let groups: Vec<(String, usize)> =
            p.split(&batch).unwrap().into_iter().map(|(d, b)| (d, b.num_rows())).collect();
        assert_eq!(
            groups,
            vec![
                ("vendor=a/date=1970-01-01".into(), 2),
                ("vendor=__HIVE_DEFAULT_PARTITION__/date=1970-01-02".into(), 1),
                ("vendor=__HIVE_DEFAULT_PARTITION__/date=__HIVE_DEFAULT_PARTITION__".into(), 1),
                ("vendor=a%2Fb/date=1969-12-31".into(), 1),
            ]
        );
    }

    #[test]
    fn unknown_and_unsuitable_columns_are_config_errors() {
        let schema = crate::schema::messages_schema();
        for bad in ["nope", "sent_at", "tags", "attributes"] {
            let err = Partitioner::new(MESSAGES, &schema, &["vendor".into(), bad.into()]).unwrap_err();
            assert!(matches!(err, PluginError::Config { ref path, .. } if path == "partition_by[1]"), "{bad}: {err}");
        }
        let conversations = crate::schema::conversations_schema();
        assert!(Partitioner::new(CONVERSATIONS, &conversations, &["date".into(), "is_ended".into()]).is_ok());
    }
}
