//! The chat-key cache: one RSA unwrap per chat, however many batches its messages span.
//!
//! Keyed by the wrapped key itself (whitespace removed) rather than by conversation id: the
//! wrapped key is what the RSA step consumes, so two rows with the same wrapped key can never
//! need different results, whatever their ids. Failures are cached too, so a wrong private
//! key costs one RSA operation per chat, not one per message.
//!
//! Bounded (oldest entry out first) so memory stays flat on accounts with millions of chats;
//! a source emits a chat's messages together, so an evicted chat is rarely seen again.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::scheme::{ChatKey, Failure};

/// The outcome of unwrapping one chat key, shared by every row of the chat.
pub type Unwrapped = Arc<Result<ChatKey, Failure>>;

/// Default number of chat keys kept (a few hundred bytes each).
pub const DEFAULT_CAPACITY: usize = 16_384;

/// Bounded FIFO map from normalized wrapped key to its unwrap outcome.
pub struct KeyCache {
    map: HashMap<String, Unwrapped>,
    order: VecDeque<String>,
    capacity: usize,
}

impl KeyCache {
    /// An empty cache holding at most `capacity` (≥ 1) keys.
    pub fn new(capacity: usize) -> Self {
        KeyCache { map: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1) }
    }

    /// The cached outcome for a normalized wrapped key.
    pub fn get(&self, wrapped: &str) -> Option<Unwrapped> {
        self.map.get(wrapped).cloned()
    }

    /// Stores an outcome, evicting the oldest entry when full.
    pub fn insert(&mut self, wrapped: String, outcome: Unwrapped) {
        if self.map.contains_key(&wrapped) {
            return;
        }
        while self.map.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            self.map.remove(&oldest);
        }
        self.order.push_back(wrapped.clone());
        self.map.insert(wrapped, outcome);
    }

    /// Number of keys cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The cache key of a wrapped key as it appears in a row: all whitespace removed, so the MIME
/// and the single-line forms of one key are one entry.
pub fn normalize(wrapped: &str) -> String {
    wrapped.split_ascii_whitespace().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::Reason;

    fn failed() -> Unwrapped {
        Arc::new(Err(Failure { reason: Reason::KeyUnwrapFailed, message: String::new() }))
    }

    #[test]
    fn evicts_oldest_first() {
        let mut c = KeyCache::new(2);
        c.insert("a".into(), failed());
        c.insert("b".into(), failed());
        c.insert("a".into(), failed()); // already there: no reordering, no growth
        c.insert("c".into(), failed());
        assert!(c.get("a").is_none());
        assert!(c.get("b").is_some() && c.get("c").is_some());
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn normalizes_line_breaks() {
        assert_eq!(normalize("ab\ncd\r\n ef\n"), "abcdef");
    }
}
