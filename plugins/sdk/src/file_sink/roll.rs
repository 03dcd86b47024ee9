//! Rolling: when a file is full, and which open file to close when too many are open.
//!
//! A file sink keeps one open file per (stream, partition directory). Each file holds at most
//! `max_file_rows` rows (exactly: a batch is split at the limit) and is closed once its size
//! reaches `max_file_bytes` (checked after each write, so a file may pass it by up to one
//! batch). At most `max_open_files` files are open at once; opening one more closes the least
//! recently written one early, which bounds memory however many partitions a batch touches.

use std::collections::HashMap;
use std::hash::Hash;

/// The row and size limits of one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollPolicy {
    /// Most rows in one file (at least 1).
    pub max_file_rows: u64,
    /// A file is closed once its size, as its writer estimates it, reaches this many bytes
    /// (at least 1).
    pub max_file_bytes: u64,
}

impl RollPolicy {
    /// How many of `remaining` rows still fit in a file holding `rows_in_file` rows.
    pub fn rows_to_take(&self, rows_in_file: u64, remaining: usize) -> usize {
        self.max_file_rows.saturating_sub(rows_in_file).min(remaining as u64) as usize
    }

    /// True when a file of `rows` rows and `bytes` bytes must be closed.
    pub fn is_full(&self, rows: u64, bytes: u64) -> bool {
        rows >= self.max_file_rows || bytes >= self.max_file_bytes
    }
}

/// Open files by key, with the order in which they were last written.
#[derive(Debug)]
pub struct OpenFiles<K, F> {
    files: HashMap<K, (F, u64)>,
    /// Counts writes, so the least recently written file is the one with the smallest stamp.
    clock: u64,
}

impl<K: Hash + Eq + Clone, F> Default for OpenFiles<K, F> {
    fn default() -> Self {
        OpenFiles { files: HashMap::new(), clock: 0 }
    }
}

impl<K: Hash + Eq + Clone, F> OpenFiles<K, F> {
    /// Number of open files.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// True when no file is open.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// True when a file is open for `key`.
    pub fn contains(&self, key: &K) -> bool {
        self.files.contains_key(key)
    }

    /// Adds the open file of `key`, as the most recently written one.
    pub fn insert(&mut self, key: K, file: F) {
        self.clock += 1;
        self.files.insert(key, (file, self.clock));
    }

    /// The open file of `key`, marked as the most recently written one.
    pub fn touch(&mut self, key: &K) -> Option<&mut F> {
        self.clock += 1;
        let clock = self.clock;
        self.files.get_mut(key).map(|(file, stamp)| {
            *stamp = clock;
            file
        })
    }

    /// Removes and returns the open file of `key`.
    pub fn remove(&mut self, key: &K) -> Option<F> {
        self.files.remove(key).map(|(file, _)| file)
    }

    /// The key of the least recently written file, if any is open.
    pub fn least_recent(&self) -> Option<K> {
        self.files.iter().min_by_key(|(_, (_, stamp))| *stamp).map(|(k, _)| k.clone())
    }

    /// The key of the open file for which `measure` is largest, with that measure.
    pub fn largest_by(&self, measure: impl Fn(&F) -> usize) -> Option<(K, usize)> {
        self.files.iter().map(|(k, (f, _))| (k, measure(f))).max_by_key(|(_, m)| *m).map(|(k, m)| (k.clone(), m))
    }

    /// The sum of `measure` over the open files.
    pub fn sum_by(&self, measure: impl Fn(&F) -> usize) -> usize {
        self.files.values().map(|(f, _)| measure(f)).sum()
    }

    /// The open file of `key`, leaving the order of writes as it is.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut F> {
        self.files.get_mut(key).map(|(f, _)| f)
    }

    /// Every open key, in no particular order.
    pub fn keys(&self) -> Vec<K> {
        self.files.keys().cloned().collect()
    }

    /// Drops every open file (without finishing it).
    pub fn clear(&mut self) {
        self.files.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_split_exactly_at_the_limit() {
        let p = RollPolicy { max_file_rows: 4, max_file_bytes: 100 };
        assert_eq!(p.rows_to_take(0, 3), 3);
        assert_eq!(p.rows_to_take(3, 7), 1);
        assert_eq!(p.rows_to_take(4, 7), 0);
        assert!(p.is_full(4, 0));
        assert!(p.is_full(1, 100));
        assert!(!p.is_full(3, 99));
    }

    #[test]
    fn least_recent_is_the_one_written_longest_ago() {
        let mut open = OpenFiles::default();
        open.insert("a", 1);
        open.insert("b", 2);
        open.insert("c", 3);
        assert_eq!(open.least_recent(), Some("a"));
        *open.touch(&"a").unwrap() += 10;
        assert_eq!(open.least_recent(), Some("b"));
        assert_eq!(open.remove(&"b"), Some(2));
        assert_eq!(open.least_recent(), Some("c"));
        assert_eq!(open.remove(&"a"), Some(11));
        assert!(open.touch(&"a").is_none());
        assert_eq!(open.len(), 1);
    }
}
