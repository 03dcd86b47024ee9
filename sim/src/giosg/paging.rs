//! Cursor pagination: opaque cursors and deterministic short pages.
//!
//! A listing is identified by its *scope* (endpoint + canonical filters + ordering); a position
//! in it is an offset. Cursors are opaque 32-hex tokens (a keyed hash of scope and offset, so
//! they look random and can't be forged or reused across listings) that the server maps back to
//! the offset. The dataset never changes while served, so offset positions are stable and every
//! item is returned exactly once whatever the page boundaries.

use aws_lc_rs::hmac;
use std::collections::HashMap;
use std::sync::Mutex;

/// Issues and resolves opaque cursors.
pub(crate) struct Cursors {
    key: hmac::Key,
    /// cursor → (scope, offset)
    issued: Mutex<HashMap<String, (String, usize)>>,
}

impl Cursors {
    /// A registry with a fresh random key, so cursors differ between server instances.
    pub(crate) fn new() -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("system randomness");
        Self { key, issued: Mutex::new(HashMap::new()) }
    }

    /// The cursor for `offset` in `scope` (the same one every time it is asked for).
    pub(crate) fn issue(&self, scope: &str, offset: usize) -> String {
        let tag = hmac::sign(&self.key, format!("{scope}\0{offset}").as_bytes());
        let cursor: String = tag.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.issued.lock().expect("cursor map").insert(cursor.clone(), (scope.to_owned(), offset));
        cursor
    }

    /// The offset a cursor stands for, if it was issued for this very scope.
    pub(crate) fn resolve(&self, cursor: &str, scope: &str) -> Option<usize> {
        let issued = self.issued.lock().expect("cursor map");
        issued.get(cursor).filter(|(s, _)| s == scope).map(|&(_, offset)| offset)
    }
}

/// How many items the page starting at `offset` holds, given `remaining` items from there.
///
/// About a third of pages are 1–3 items short (never empty while items remain), decided by a
/// hash of scope and offset so a re-fetched page has the same boundaries. The first page of a
/// listing that needs more than one page is always short, so that even a three-page listing
/// shows the behaviour. Clients that stop at the first short page, or compute offsets
/// themselves, lose data — which the tests must catch.
pub(crate) fn page_len(scope: &str, offset: usize, page_size: usize, remaining: usize) -> usize {
    let full = page_size.min(remaining);
    let h = fnv1a(format!("{scope}\0{offset}").as_bytes());
    let first_of_many = offset == 0 && remaining > page_size;
    if full < 2 || !(first_of_many || h.is_multiple_of(3)) {
        return full;
    }
    let drop = 1 + (h / 3 % 3) as usize;
    full - drop.min(full - 1)
}

/// FNV-1a: a fixed, seedless hash, so short-page positions are reproducible across runs.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_everything_once_and_some_are_short() {
        for total in [0usize, 1, 2, 3, 25, 26, 99, 300] {
            for size in [1usize, 2, 3, 10, 25, 100] {
                let (mut offset, mut pages, mut short) = (0, 0, 0);
                while offset < total {
                    let n = page_len("chats|x", offset, size, total - offset);
                    assert!(n >= 1 && n <= size, "total {total} size {size} offset {offset}: {n}");
                    if n < size.min(total - offset) {
                        short += 1;
                    }
                    offset += n;
                    pages += 1;
                }
                assert_eq!(offset, total);
                if total > size && size >= 2 {
                    assert!(short > 0, "total {total} size {size}: {pages} pages, none short");
                }
            }
        }
    }

    #[test]
    fn cursors_are_opaque_stable_and_scoped() {
        let c = Cursors::new();
        let a = c.issue("chats|a", 25);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|ch| ch.is_ascii_hexdigit() && !ch.is_ascii_uppercase()));
        assert_eq!(c.issue("chats|a", 25), a);
        assert_ne!(c.issue("chats|a", 26), a);
        assert_eq!(c.resolve(&a, "chats|a"), Some(25));
        assert_eq!(c.resolve(&a, "chats|b"), None);
        assert_eq!(c.resolve("00000000000000000000000000000000", "chats|a"), None);
    }
}
