//! Reading and rewriting the Arrow columns the tags transform works on.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, ListArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use pipe_plugin_sdk::schema::list_utf8_type;
use pipe_plugin_sdk::{PluginError, Result};

/// Checks that `schema` has the `columns` (name, type) needed; returns what is wrong.
pub fn check(schema: &Schema, columns: &[(&str, DataType)]) -> std::result::Result<(), String> {
    for (name, ty) in columns {
        match schema.field_with_name(name) {
            Ok(f) if f.data_type() == ty => {}
            Ok(f) => return Err(format!("column `{name}` is {}, expected {ty}", f.data_type())),
            Err(_) => return Err(format!("no column `{name}`")),
        }
    }
    Ok(())
}

/// The columns every touched stream needs.
pub fn common_columns() -> Vec<(&'static str, DataType)> {
    vec![("conversation_id", DataType::Utf8), ("tags", list_utf8_type())]
}

/// The extra columns the `messages` stream needs.
pub fn message_columns() -> Vec<(&'static str, DataType)> {
    vec![("text", DataType::Utf8), ("sender_role", DataType::Utf8), ("message_type", DataType::Utf8)]
}

/// A Utf8 column by name, if the batch has one.
pub fn string<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a StringArray> {
    batch.column_by_name(name).and_then(|c| c.as_string_opt::<i32>())
}

/// A Utf8 column the schema check guaranteed.
pub fn required_string<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    string(batch, name).ok_or_else(|| PluginError::other(format!("tags: batch has no utf8 column `{name}`")))
}

/// The value of a nullable string column at `row`.
pub fn value(col: &StringArray, row: usize) -> Option<&str> {
    col.is_valid(row).then(|| col.value(row))
}

/// The `tags` list column.
pub fn tags(batch: &RecordBatch) -> Result<&ListArray> {
    batch
        .column_by_name("tags")
        .and_then(|c| c.as_list_opt::<i32>())
        .ok_or_else(|| PluginError::other("tags: batch has no list<utf8> column `tags`"))
}

/// The (non-null) items of one row of a `list<utf8>` column.
pub fn items(list: &ListArray, row: usize) -> Vec<&str> {
    let offsets = list.value_offsets();
    let values = list.values().as_string::<i32>();
    (offsets[row] as usize..offsets[row + 1] as usize)
        .filter(|&i| values.is_valid(i))
        .map(|i| values.value(i))
        .collect()
}

/// The batch with its `tags` column replaced: rows with `Some(tags)` get those, rows with
/// `None` keep theirs exactly. Returns the input itself when no row changed.
pub fn replace_tags(batch: &RecordBatch, new: &[Option<Vec<String>>]) -> Result<RecordBatch> {
    if new.iter().all(Option::is_none) {
        return Ok(batch.clone());
    }
    let old = tags(batch)?;
    // Same construction as the SDK's builders, so the list type (child name) is identical.
    let mut b = ListBuilder::new(StringBuilder::new());
    let old_values = old.values().as_string::<i32>();
    let offsets = old.value_offsets();
    for (row, replacement) in new.iter().enumerate() {
        match replacement {
            Some(tags) => {
                for t in tags {
                    b.values().append_value(t);
                }
            }
            None => {
                for i in offsets[row] as usize..offsets[row + 1] as usize {
                    b.values().append_option(old_values.is_valid(i).then(|| old_values.value(i)));
                }
            }
        }
        b.append(old.is_valid(row));
    }
    let schema = batch.schema();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns[schema.index_of("tags")?] = Arc::new(b.finish());
    Ok(RecordBatch::try_new(schema, columns)?)
}
