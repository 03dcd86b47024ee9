//! Decrypting one `messages` batch: find the encrypted rows, unwrap their chat keys (cached,
//! in parallel), decrypt, and rebuild the four columns that change. Everything else in the
//! batch is passed on untouched (the same Arrow buffers).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, MapBuilder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BooleanArray, MapArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema};
use aws_lc_rs::rsa::OaepPrivateDecryptingKey;
use pipe_plugin_sdk::schema::{MESSAGES, map_utf8_type, primary_key};
use pipe_plugin_sdk::{DeadLetter, PluginError, Result, TransformOutput};
use serde_json::{Map, Value};

use crate::cache::{KeyCache, Unwrapped, normalize};
use crate::parallel;
use crate::scheme::{Failure, Reason, decrypt_message, unwrap_chat_key};

/// Attribute carrying the chat's RSA-wrapped key on encrypted giosg rows (set by the giosg
/// source, docs/vendors/giosg.md §5.8); removed once the row is decrypted.
pub const ATTR_ENCRYPTED_KEY: &str = "giosg.encrypted_symmetric_key";

/// AES rows per thread below which a batch is decrypted inline (AES is microseconds a row).
const MIN_ROWS_PER_THREAD: usize = 256;

/// What the decrypt stage has done so far, for logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    /// Encrypted rows seen.
    pub encrypted: u64,
    /// Rows decrypted.
    pub decrypted: u64,
    /// Rows sent to the dead letters.
    pub failed: u64,
    /// RSA private-key operations performed (one per distinct uncached chat key).
    pub unwraps: u64,
}

/// The state that decrypts batches: the RSA key, the chat-key cache and the thread count.
/// Owned by one transform and moved onto a blocking thread for each batch.
pub struct Decryptor {
    rsa: OaepPrivateDecryptingKey,
    cache: KeyCache,
    threads: usize,
    /// Counters, for the log line at the end.
    pub stats: Stats,
}

/// Checks that `schema` has the columns decryption reads and rewrites, with the canonical
/// types. Returns what is wrong, if anything.
pub fn check_schema(schema: &Schema) -> std::result::Result<(), String> {
    let want = [
        ("conversation_id", DataType::Utf8),
        ("text", DataType::Utf8),
        ("is_encrypted", DataType::Boolean),
        ("ciphertext", DataType::Utf8),
        ("attributes", map_utf8_type()),
    ];
    for (name, ty) in want {
        match schema.field_with_name(name) {
            Ok(f) if *f.data_type() == ty => {}
            Ok(f) => return Err(format!("column `{name}` is {}, expected {ty}", f.data_type())),
            Err(_) => return Err(format!("no column `{name}`")),
        }
    }
    Ok(())
}

/// The columns of one batch that decryption reads.
struct Columns<'a> {
    conversation_id: &'a StringArray,
    text: &'a StringArray,
    is_encrypted: &'a BooleanArray,
    ciphertext: &'a StringArray,
    attributes: &'a MapArray,
}

impl<'a> Columns<'a> {
    fn of(batch: &'a RecordBatch) -> Result<Self> {
        check_schema(&batch.schema()).map_err(|e| PluginError::other(format!("decrypt: messages batch: {e}")))?;
        let col = |name: &str| batch.column_by_name(name).expect("checked above");
        Ok(Columns {
            conversation_id: col("conversation_id").as_string::<i32>(),
            text: col("text").as_string::<i32>(),
            is_encrypted: col("is_encrypted").as_boolean(),
            ciphertext: col("ciphertext").as_string::<i32>(),
            attributes: col("attributes").as_map(),
        })
    }

    fn encrypted(&self, row: usize) -> bool {
        self.is_encrypted.is_valid(row) && self.is_encrypted.value(row)
    }

    fn ciphertext(&self, row: usize) -> Option<&'a str> {
        self.ciphertext.is_valid(row).then(|| self.ciphertext.value(row))
    }

    /// The value of attribute `name` of `row`.
    fn attribute(&self, row: usize, name: &str) -> Option<&'a str> {
        let offsets = self.attributes.value_offsets();
        let (keys, values) = (self.attributes.keys().as_string::<i32>(), self.attributes.values().as_string::<i32>());
        (offsets[row] as usize..offsets[row + 1] as usize)
            .find(|&e| keys.value(e) == name)
            .filter(|&e| values.is_valid(e))
            .map(|e| values.value(e))
    }
}

/// What became of one encrypted row: its plaintext, or why not.
type Outcome = std::result::Result<String, Failure>;

/// One encrypted row's inputs.
struct Job<'a> {
    key: Option<Unwrapped>,
    ciphertext: Option<&'a str>,
}

impl Decryptor {
    /// A decryptor with an empty cache that uses `threads` threads per batch.
    pub fn new(rsa: OaepPrivateDecryptingKey, cache_capacity: usize, threads: usize) -> Self {
        Decryptor { rsa, cache: KeyCache::new(cache_capacity), threads: threads.max(1), stats: Stats::default() }
    }

    /// Decrypts every encrypted row of a `messages` batch. Returns the batch (same schema,
    /// same rows in the same order) followed by one dead letter per row that could not be
    /// decrypted; such rows stay in the batch unchanged, still encrypted.
    ///
    /// Errors: the batch lacks the canonical columns (see [`check_schema`]).
    pub fn decrypt_batch(&mut self, batch: &RecordBatch) -> Result<Vec<TransformOutput>> {
        let cols = Columns::of(batch)?;
        let rows: Vec<usize> = (0..batch.num_rows()).filter(|&r| cols.encrypted(r)).collect();
        if rows.is_empty() {
            return Ok(vec![TransformOutput::Batch(batch.clone())]);
        }
        // The wrapped key as the row carries it. A chat's rows share one string, so
        // normalizing it and consulting the cache happen once per chat, not once per row.
        let wrapped: Vec<Option<&str>> = rows.iter().map(|&r| cols.attribute(r, ATTR_ENCRYPTED_KEY)).collect();
        let keys = self.unwrap_keys(wrapped.iter().flatten().copied());
        let jobs: Vec<Job<'_>> = rows
            .iter()
            .zip(&wrapped)
            .map(|(&r, w)| Job { key: w.map(|w| keys[w].clone()), ciphertext: cols.ciphertext(r) })
            .collect();
        let results = parallel::map(&jobs, self.threads, MIN_ROWS_PER_THREAD, |job| decrypt_row(job));

        // Per row of the batch: `None` for rows that were not encrypted.
        let mut outcome: Vec<Option<Outcome>> = (0..batch.num_rows()).map(|_| None).collect();
        for (&r, res) in rows.iter().zip(results) {
            outcome[r] = Some(res);
        }
        let new_batch = rebuild(batch, &cols, &outcome)?;
        let mut out = vec![TransformOutput::Batch(new_batch)];
        for &r in &rows {
            if let Some(Err(f)) = &outcome[r] {
                out.push(TransformOutput::DeadLetter(dead_letter(batch, r, cols.conversation_id.value(r), f)?));
            }
        }
        let failed = out.len() as u64 - 1;
        self.stats.encrypted += rows.len() as u64;
        self.stats.failed += failed;
        self.stats.decrypted += rows.len() as u64 - failed;
        pipe_plugin_sdk::metrics::record_decrypt(rows.len() as u64 - failed, failed);
        Ok(out)
    }

    /// The unwrap outcome of every distinct wrapped key in `wrapped` (as the rows carry
    /// them): cached ones from the cache, the rest unwrapped now, in parallel, and cached.
    pub(crate) fn unwrap_keys<'w>(&mut self, wrapped: impl Iterator<Item = &'w str>) -> HashMap<&'w str, Unwrapped> {
        let mut found: HashMap<&'w str, Unwrapped> = HashMap::new();
        let mut seen: HashSet<&'w str> = HashSet::new();
        // Normalized keys to unwrap, each once even if rows spell it differently (with and
        // without line breaks), and which row spelling waits for which of them.
        let mut todo: Vec<String> = Vec::new();
        let mut todo_index: HashMap<String, usize> = HashMap::new();
        let mut waiting: Vec<(&'w str, usize)> = Vec::new();
        for w in wrapped {
            if !seen.insert(w) {
                continue;
            }
            let normalized = normalize(w);
            if let Some(hit) = self.cache.get(&normalized) {
                found.insert(w, hit);
                continue;
            }
            let i = *todo_index.entry(normalized).or_insert_with_key(|n| {
                todo.push(n.clone());
                todo.len() - 1
            });
            waiting.push((w, i));
        }
        let rsa = &self.rsa;
        let unwrapped = parallel::map(&todo, self.threads, 1, |n| Arc::new(unwrap_chat_key(rsa, n)));
        self.stats.unwraps += todo.len() as u64;
        for (w, i) in waiting {
            found.insert(w, unwrapped[i].clone());
        }
        for (normalized, u) in todo.into_iter().zip(unwrapped) {
            self.cache.insert(normalized, u);
        }
        found
    }
}

fn decrypt_row(job: &Job<'_>) -> Outcome {
    let Some(key) = &job.key else {
        return Err(Failure {
            reason: Reason::MissingChatKey,
            message: format!(
                "the row is encrypted but has no `{ATTR_ENCRYPTED_KEY}` attribute (the chat came without encrypted_symmetric_key)"
            ),
        });
    };
    let Some(ct) = job.ciphertext else {
        return Err(Failure {
            reason: Reason::BadCiphertext,
            message: "the row is encrypted but its ciphertext is null".into(),
        });
    };
    match key.as_ref() {
        Ok(k) => decrypt_message(k, ct),
        Err(f) => Err(f.clone()),
    }
}

/// The batch with `text`, `is_encrypted`, `ciphertext` and `attributes` rewritten for the rows
/// decrypted successfully; other rows keep their values.
fn rebuild(batch: &RecordBatch, cols: &Columns<'_>, outcome: &[Option<Outcome>]) -> Result<RecordBatch> {
    let n = batch.num_rows();
    let mut text = StringBuilder::with_capacity(n, cols.text.value_data().len());
    let mut is_encrypted = BooleanBuilder::with_capacity(n);
    let mut ciphertext = StringBuilder::new();
    // Same construction as the SDK's builder, so the map type (child names) is identical.
    let mut attributes = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
    let (keys, values) = (cols.attributes.keys().as_string::<i32>(), cols.attributes.values().as_string::<i32>());
    let offsets = cols.attributes.value_offsets();
    for r in 0..n {
        let plain = match &outcome[r] {
            Some(Ok(p)) => Some(p.as_str()),
            _ => None,
        };
        match plain {
            Some(p) => {
                text.append_value(p);
                is_encrypted.append_value(false);
                ciphertext.append_null();
            }
            None => {
                text.append_option(cols.text.is_valid(r).then(|| cols.text.value(r)));
                is_encrypted.append_option(cols.is_encrypted.is_valid(r).then(|| cols.is_encrypted.value(r)));
                ciphertext.append_option(cols.ciphertext(r));
            }
        }
        for e in offsets[r] as usize..offsets[r + 1] as usize {
            if plain.is_some() && keys.value(e) == ATTR_ENCRYPTED_KEY {
                continue; // the wrapped key is of no use once the text is plain
            }
            attributes.keys().append_value(keys.value(e));
            attributes.values().append_option(values.is_valid(e).then(|| values.value(e)));
        }
        attributes.append(cols.attributes.is_valid(r))?;
    }
    let schema = batch.schema();
    let replaced: [(&str, ArrayRef); 4] = [
        ("text", Arc::new(text.finish())),
        ("is_encrypted", Arc::new(is_encrypted.finish())),
        ("ciphertext", Arc::new(ciphertext.finish())),
        ("attributes", Arc::new(attributes.finish())),
    ];
    let mut columns = batch.columns().to_vec();
    for (name, array) in replaced {
        let i = schema.index_of(name)?;
        columns[i] = array;
    }
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The dead letter of row `r`: key = the primary-key columns, raw = the whole row as received
/// (still encrypted), in the JSON form of docs/design.md §3.
fn dead_letter(batch: &RecordBatch, r: usize, conversation_id: &str, f: &Failure) -> Result<DeadLetter> {
    let mut line = Vec::new();
    pipe_plugin_sdk::json_rows::encode_rows(&batch.slice(r, 1), &mut line)?;
    let raw: Value =
        serde_json::from_slice(&line).map_err(|e| PluginError::other(format!("decrypt: row to JSON: {e}")))?;
    let key: Map<String, Value> =
        primary_key(MESSAGES).iter().filter_map(|k| raw.get(*k).map(|v| (k.to_string(), v.clone()))).collect();
    let message = match f.reason {
        Reason::KeyUnwrapFailed | Reason::MissingChatKey => format!("conversation {conversation_id}: {}", f.message),
        _ => f.message.clone(),
    };
    Ok(DeadLetter {
        stream: MESSAGES.into(),
        key: Value::Object(key),
        stage: String::new(),
        reason: f.reason.code().into(),
        message,
        raw,
    })
}
