//! Process exit codes: the contract with schedulers and scripts (docs/design.md, "Exit codes").

/// Success: everything extracted and committed.
pub const EXIT_OK: u8 = 0;
/// Failure: the run stopped on an error (nothing after the last checkpoint is committed).
pub const EXIT_FAILED: u8 = 1;
/// Usage or configuration error (bad flags, bad pipeline file, unknown plugin, ABI mismatch).
pub const EXIT_CONFIG: u8 = 2;
/// Partial: committed, but incomplete (completeness check failed, retry budget exhausted).
pub const EXIT_PARTIAL: u8 = 3;
/// Dead letters present and `fail_on_dead_letters = true`.
pub const EXIT_DEAD_LETTERS: u8 = 4;
