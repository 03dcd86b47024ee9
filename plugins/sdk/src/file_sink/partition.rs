//! Hive partitioning: which directory below `<path>/<stream>/` each row goes to.
//!
//! A row's directory is `<key>=<value>/...` over the configured `partition_by` columns, with
//! values formatted as text and escaped like Hive and Spark do, so those readers (and DuckDB,
//! pyarrow, polars) decode the same values back. Partition columns stay in the rows: only
//! the directory is added.

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
                    escape_into(&value, &mut dir);
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
