//! Decrypting the visitor variables of one `conversations` batch (docs/vendors/giosg.md §5.5).
//!
//! In an encrypted room giosg encrypts visitor variable values with a key of their own, stored
//! RSA-wrapped (in the chat key's JSON format, §5.2) as the variable `_encrypted_aes_key`; each
//! other value is a ciphertext in the message format (§5.4). The giosg source passes them on as
//! they arrive, in the `variables` map column (and leaves `visitor_name` null rather than take
//! it from an encrypted `username`). For each row with that variable this stage:
//!
//! * unwraps the key (cached with the chat keys: one RSA operation per distinct key);
//! * replaces every other value by its plaintext; a value that cannot be decrypted is
//!   **removed** (never exported as ciphertext) and becomes a dead letter with the message
//!   reasons (`key_unwrap_failed`, `hmac_mismatch`, `bad_ciphertext`, `bad_utf8`), keyed by the
//!   conversation, naming the variable, `raw` the whole row as it arrived;
//! * drops `_encrypted_aes_key` itself;
//! * fills a null `visitor_name` from the decrypted `username`, as the source does for plain
//!   rooms.
//!
//! Rows without `_encrypted_aes_key` pass unchanged; the other columns are the same buffers.

use std::sync::Arc;

use arrow_array::builder::{MapBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, MapArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use pipe_plugin_sdk::schema::{CONVERSATIONS, map_utf8_type, primary_key};
use pipe_plugin_sdk::{DeadLetter, PluginError, Result, TransformOutput};
use serde_json::{Map, Value};

use crate::batch::Decryptor;
use crate::scheme::{Failure, decrypt_message};

/// The visitor variable holding the RSA-wrapped key of a room's encrypted variables.
pub const VAR_ENCRYPTED_KEY: &str = "_encrypted_aes_key";

/// The visitor variable whose plaintext fills a null `visitor_name`.
const VAR_USERNAME: &str = "username";

/// Checks that `schema` has the `conversations` columns this stage reads and rewrites, with
/// the canonical types. Returns what is wrong, if anything.
pub fn check_conversations_schema(schema: &Schema) -> std::result::Result<(), String> {
    for (name, ty) in
        [("conversation_id", DataType::Utf8), ("visitor_name", DataType::Utf8), ("variables", map_utf8_type())]
    {
        match schema.field_with_name(name) {
            Ok(f) if *f.data_type() == ty => {}
            Ok(f) => return Err(format!("column `{name}` is {}, expected {ty}", f.data_type())),
            Err(_) => return Err(format!("no column `{name}`")),
        }
    }
    Ok(())
}

/// The value of `name` among the entries of `row` of `map`.
fn entry<'a>(map: &'a MapArray, row: usize, name: &str) -> Option<&'a str> {
    let (keys, values) = (map.keys().as_string::<i32>(), map.values().as_string::<i32>());
    let offsets = map.value_offsets();
    (offsets[row] as usize..offsets[row + 1] as usize)
        .find(|&e| keys.value(e) == name)
        .filter(|&e| values.is_valid(e))
        .map(|e| values.value(e))
}

impl Decryptor {
    /// Decrypts the visitor variables of a `conversations` batch (module docs). Returns the
    /// batch (same schema, rows and order) followed by one dead letter per value that could
    /// not be decrypted (and so was removed).
    ///
    /// Errors: the batch lacks the canonical columns ([`check_conversations_schema`]).
    pub fn decrypt_variables(&mut self, batch: &RecordBatch) -> Result<Vec<TransformOutput>> {
        check_conversations_schema(&batch.schema())
            .map_err(|e| PluginError::other(format!("decrypt: conversations batch: {e}")))?;
        let col = |name: &str| batch.column_by_name(name).expect("checked above");
        let (ids, names, vars) = (
            col("conversation_id").as_string::<i32>(),
            col("visitor_name").as_string::<i32>(),
            col("variables").as_map(),
        );
        let wrapped: Vec<Option<&str>> = (0..batch.num_rows())
            .map(|r| vars.is_valid(r).then(|| entry(vars, r, VAR_ENCRYPTED_KEY)).flatten())
            .collect();
        if wrapped.iter().all(Option::is_none) {
            return Ok(vec![TransformOutput::Batch(batch.clone())]);
        }
        let keys = self.unwrap_keys(wrapped.iter().flatten().copied());

        let (map_keys, map_values) = (vars.keys().as_string::<i32>(), vars.values().as_string::<i32>());
        let offsets = vars.value_offsets();
        let mut variables = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        let mut visitor_name = StringBuilder::with_capacity(batch.num_rows(), names.value_data().len());
        let mut failures: Vec<(usize, String, Failure)> = Vec::new();
        for r in 0..batch.num_rows() {
            let mut username: Option<String> = None;
            for e in offsets[r] as usize..offsets[r + 1] as usize {
                let (name, value) = (map_keys.value(e), map_values.is_valid(e).then(|| map_values.value(e)));
                let Some(w) = wrapped[r] else {
                    variables.keys().append_value(name);
                    variables.values().append_option(value);
                    continue;
                };
                if name == VAR_ENCRYPTED_KEY {
                    continue; // of no use once the values are plain, and never exported
                }
                let Some(ciphertext) = value else {
                    variables.keys().append_value(name);
                    variables.values().append_null();
                    continue;
                };
                let plain = match keys[w].as_ref() {
                    Ok(key) => decrypt_message(key, ciphertext),
                    Err(f) => Err(f.clone()),
                };
                match plain {
                    Ok(p) => {
                        if name == VAR_USERNAME {
                            username = Some(p.clone());
                        }
                        variables.keys().append_value(name);
                        variables.values().append_value(p);
                    }
                    Err(f) => failures.push((r, name.to_string(), f)),
                }
            }
            variables.append(vars.is_valid(r))?;
            let name = names.is_valid(r).then(|| names.value(r).to_string()).or(username);
            visitor_name.append_option(name);
        }
        let schema = batch.schema();
        let mut columns = batch.columns().to_vec();
        let replaced: [(&str, ArrayRef); 2] =
            [("variables", Arc::new(variables.finish())), ("visitor_name", Arc::new(visitor_name.finish()))];
        for (name, array) in replaced {
            columns[schema.index_of(name)?] = array;
        }
        let mut out = vec![TransformOutput::Batch(RecordBatch::try_new(schema, columns)?)];
        for (r, name, f) in failures {
            out.push(TransformOutput::DeadLetter(dead_letter(batch, r, ids, &name, &f)?));
        }
        Ok(out)
    }
}

/// The dead letter of visitor variable `name` of row `r`: key = the conversation's primary
/// key, raw = the whole row as received (still encrypted), as in `crate::batch`.
fn dead_letter(batch: &RecordBatch, r: usize, ids: &StringArray, name: &str, f: &Failure) -> Result<DeadLetter> {
    let mut line = Vec::new();
    pipe_plugin_sdk::json_rows::encode_rows(&batch.slice(r, 1), &mut line)?;
    let raw: Value =
        serde_json::from_slice(&line).map_err(|e| PluginError::other(format!("decrypt: row to JSON: {e}")))?;
    let key: Map<String, Value> =
        primary_key(CONVERSATIONS).iter().filter_map(|k| raw.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
    Ok(DeadLetter {
        stream: CONVERSATIONS.into(),
        key: Value::Object(key),
        stage: String::new(),
        reason: f.reason.code().into(),
        message: format!(
            "conversation {}: visitor variable `{name}` not decrypted, left out of `variables`: {}",
            ids.value(r),
            f.message
        ),
        raw,
    })
}
