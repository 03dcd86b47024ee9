//! The `tags` [`Transform`]: rule tags and renames on `messages`, and everything a
//! conversation's messages taught us carried onto its `conversations` row.
//!
//! State: a source emits a conversation's messages no later than the conversation row
//! (docs/design.md §3.1), so tags learned from messages wait in [`TagsTransform::pending`] under
//! the conversation's key until its row passes, and are dropped then.

use std::collections::{BTreeSet, HashMap};

use arrow_array::RecordBatch;
use pipe_plugin_sdk::schema::{CONVERSATIONS, MESSAGES};
use pipe_plugin_sdk::{Result, StreamDecl, Transform, TransformOutput};

use crate::columns::{self, items, value};
use crate::rules::Rules;

/// The message type whose text names a tag added to the conversation (giosg).
pub const TAG_CREATED: &str = "tag_created";

/// (vendor, account_id, conversation_id): a conversation's primary key.
type ConversationKey = (String, String, String);

/// Adds and normalizes tags; see the [crate docs](crate).
pub struct TagsTransform {
    rules: Rules,
    tag_created_messages: bool,
    /// Tags learned from messages (rule tags, `tag_created` texts) per conversation whose row
    /// has not passed yet.
    pending: HashMap<ConversationKey, BTreeSet<String>>,
}

/// The sorted, unique union of the (renamed) vendor tags and `extra`, if that differs from
/// the vendor's list as a set or a rename applied; `None` when the vendor's list stands as it
/// is, so rows the transform has nothing to say about keep the vendor's tags exactly.
fn merge<'a>(rules: &Rules, vendor: &[&str], extra: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut changed = false;
    let mut set = BTreeSet::new();
    for t in vendor {
        let (name, renamed) = rules.rename(t);
        changed |= renamed;
        set.insert(name.to_string());
    }
    for t in extra {
        if !set.contains(t) {
            changed = true;
            set.insert(t.to_string());
        }
    }
    changed.then(|| set.into_iter().collect())
}

impl TagsTransform {
    /// A transform with compiled rules and no pending state.
    pub fn new(rules: Rules, tag_created_messages: bool) -> Self {
        TagsTransform { rules, tag_created_messages, pending: HashMap::new() }
    }

    /// Conversations whose messages passed but whose row has not yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn key(batch: &RecordBatch, row: usize, conversation_id: &str) -> ConversationKey {
        let col = |name: &str| columns::string(batch, name).and_then(|c| value(c, row)).unwrap_or_default().to_string();
        (col("vendor"), col("account_id"), conversation_id.to_string())
    }

    fn messages(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let conversation = columns::required_string(batch, "conversation_id")?;
        let text = columns::required_string(batch, "text")?;
        let role = columns::required_string(batch, "sender_role")?;
        let kind = columns::required_string(batch, "message_type")?;
        let tags = columns::tags(batch)?;
        let mut new = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let text = value(text, row);
            let rule_tags: Vec<&str> = match text {
                Some(t) => self.rules.tags_for(t, value(role, row).unwrap_or_default()).collect(),
                None => Vec::new(),
            };
            // A decrypted (or plain) `tag_created` message names a tag of its conversation.
            let announced = text
                .filter(|_| self.tag_created_messages && value(kind, row) == Some(TAG_CREATED))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| self.rules.rename(t).0);
            if !rule_tags.is_empty() || announced.is_some() {
                let key = Self::key(batch, row, value(conversation, row).unwrap_or_default());
                let entry = self.pending.entry(key).or_default();
                entry.extend(rule_tags.iter().chain(announced.as_ref()).map(|t| t.to_string()));
            }
            new.push(merge(&self.rules, &items(tags, row), rule_tags));
        }
        columns::replace_tags(batch, &new)
    }

    fn conversations(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let conversation = columns::required_string(batch, "conversation_id")?;
        let tags = columns::tags(batch)?;
        let mut new = Vec::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let key = Self::key(batch, row, value(conversation, row).unwrap_or_default());
            // The row has passed: what its messages taught us is used now and then forgotten.
            let learned = self.pending.remove(&key).unwrap_or_default();
            new.push(merge(&self.rules, &items(tags, row), learned.iter().map(String::as_str)));
        }
        columns::replace_tags(batch, &new)
    }
}

#[async_trait::async_trait]
impl Transform for TagsTransform {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        let mut needed = columns::common_columns();
        match input.name.as_str() {
            MESSAGES => needed.extend(columns::message_columns()),
            CONVERSATIONS => {}
            _ => return None,
        }
        match columns::check(&input.schema, &needed) {
            Ok(()) => Some(input.clone()),
            Err(e) => {
                tracing::warn!("tags: leaving stream `{}` alone: {e}", input.name);
                None
            }
        }
    }

    async fn transform(&mut self, stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        let out = match stream {
            MESSAGES => self.messages(&batch)?,
            CONVERSATIONS => self.conversations(&batch)?,
            _ => batch,
        };
        Ok(vec![TransformOutput::Batch(out)])
    }
}

impl Drop for TagsTransform {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            // The source ended (or the run stopped) before these conversations' rows came.
            tracing::debug!("tags: {} conversation(s) had messages but no conversation row", self.pending.len());
        }
    }
}
