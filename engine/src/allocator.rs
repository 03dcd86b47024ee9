//! Keeping the memory allocator from holding on to what a long run has freed.
//!
//! glibc's `malloc` serves a large request (at least `M_MMAP_THRESHOLD`, 128 KiB at start) with
//! its own mapping and returns it to the system on `free`, but raises that threshold to the
//! size of every such block freed, up to 32 MiB. A run frees large blocks all the time (Parquet
//! page buffers, Arrow builders, response bodies), so after the first few the threshold sits
//! at megabytes and those buffers come from the heap arenas instead, one per thread, where
//! freed space is kept for reuse and fragments: the resident memory of a run crept up with its
//! length while its live heap stayed flat (heaptrack, 30,000 simulated giosg chats: 37 MB live
//! at the peak, 76 MB resident).
//!
//! Fixing the threshold at its starting value keeps large buffers in their own mappings
//! (measured with `benches/memory_cpu.sh`-style runs, default settings: 3,000 chats 61-66 MB
//! → 49 MB, 30,000 chats 76 MB → 56 MB, at about 5 % more CPU time for the extra mappings).
//! Other allocators are left as they are: this only adjusts glibc's, where it is the one in
//! use (Linux with the GNU C library).

/// The fixed `M_MMAP_THRESHOLD`: glibc's own starting value.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 128 * 1024;

/// Fixes glibc's mmap threshold (module docs). Call once, before the runtime starts threads.
/// Does nothing on other platforms, or when `MALLOC_MMAP_THRESHOLD_` is set in the
/// environment (the user's own tuning wins).
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some() {
            return;
        }
        // SAFETY: mallopt only changes the allocator's parameters; it is called before any
        // other thread exists, and M_MMAP_THRESHOLD with a value below the 32 MiB maximum is
        // a documented, valid setting (it also stops the dynamic adjustment of the threshold).
        let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
        if ok != 1 {
            tracing::debug!("glibc rejected M_MMAP_THRESHOLD; large blocks may stay in the heap");
        }
    }
}
