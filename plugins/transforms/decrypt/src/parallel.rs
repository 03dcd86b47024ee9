//! Order-keeping parallel map over a slice on scoped OS threads.
//!
//! RSA private-key operations dominate decryption (about a millisecond each for 2048-bit keys,
//! against microseconds per AES message), so a batch's distinct chat keys are unwrapped on
//! every core. Scoped threads need no async runtime (the plugin may also run behind the C ABI
//! with its own runtime) and borrow the inputs without copying; spawning a handful of threads
//! per batch costs tens of microseconds, nothing next to the RSA work.

/// `items.iter().map(f).collect()`, split into at most `threads` contiguous chunks that run in
/// parallel; results keep the input order. Runs inline for one thread or fewer than
/// `min_per_thread * 2` items, where a thread would cost more than it saves.
pub fn map<T, R, F>(items: &[T], threads: usize, min_per_thread: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads.min(items.len() / min_per_thread.max(1)).max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let chunk = items.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            items.chunks(chunk).map(|part| s.spawn(|| part.iter().map(&f).collect::<Vec<R>>())).collect();
        // A panic in `f` is re-raised here, on the caller's thread, like the inline path would.
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    })
}

/// Worker threads to use: the machine's available parallelism.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_uses_threads() {
        let items: Vec<u32> = (0..1000).collect();
        let ids = std::sync::Mutex::new(std::collections::HashSet::new());
        let out = super::map(&items, 4, 1, |x| {
            ids.lock().unwrap().insert(std::thread::current().id());
            x * 2
        });
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(ids.lock().unwrap().len(), 4);
    }

    #[test]
    fn small_inputs_run_inline() {
        let caller = std::thread::current().id();
        let out = super::map(&[1, 2, 3], 8, 2, |x| {
            assert_eq!(std::thread::current().id(), caller);
            x + 1
        });
        assert_eq!(out, vec![2, 3, 4]);
        assert!(super::map(&[] as &[u8], 4, 1, |x| *x).is_empty());
    }
}
