//! Process exit codes: the contract with schedulers and scripts (docs/design.md §7). Every verb
//! returns an [`Exit`]; `main` turns it into a [`std::process::ExitCode`] at the very end.

use std::process::ExitCode;

use crate::runtime::report::Outcome;

/// How `pipe` ends, as its process exit code (docs/design.md §7). The discriminant is the
/// code a scheduler sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// 0 — success: everything extracted and committed.
    Ok = 0,
    /// 1 — failure: the run stopped on an error (nothing after the last checkpoint is
    /// committed; the next run resumes from it). Also a failed `plugin check`, `validate
    /// --check` or `state` command.
    Failed = 1,
    /// 2 — usage or configuration error: bad flags, bad pipeline file, unknown plugin, ABI
    /// mismatch, a plugin refusing its config when opened.
    Config = 2,
    /// 3 — partial: committed, but incomplete (completeness check failed, retry budget
    /// exhausted, an account of `[[source.accounts]]` failed).
    Partial = 3,
    /// 4 — dead letters present and `fail_on_dead_letters = true`.
    DeadLetters = 4,
    /// 130 — interrupted by SIGINT or SIGTERM (128 + SIGINT, the shell's convention): a batch
    /// run committed up to the newest checkpoint its source emitted, and the next run resumes
    /// from there.
    Interrupted = 130,
}

impl Exit {
    /// The numeric exit code (0–4, 130).
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

/// A finished run's exit code: success 0, partial 3, dead letters 4, interrupted 130.
impl From<Outcome> for Exit {
    fn from(outcome: Outcome) -> Exit {
        match outcome {
            Outcome::Success => Exit::Ok,
            Outcome::Partial => Exit::Partial,
            Outcome::DeadLetters => Exit::DeadLetters,
            Outcome::Interrupted => Exit::Interrupted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> =
            [Exit::Ok, Exit::Failed, Exit::Config, Exit::Partial, Exit::DeadLetters, Exit::Interrupted]
                .map(Exit::code)
                .to_vec();
        assert_eq!(codes, [0, 1, 2, 3, 4, 130]);
        assert_eq!(ExitCode::from(Exit::Partial), ExitCode::from(3));
    }

    #[test]
    fn a_finished_run_exits_by_its_outcome() {
        assert_eq!(Exit::from(Outcome::Success), Exit::Ok);
        assert_eq!(Exit::from(Outcome::Partial), Exit::Partial);
        assert_eq!(Exit::from(Outcome::DeadLetters), Exit::DeadLetters);
        assert_eq!(Exit::from(Outcome::Interrupted), Exit::Interrupted);
    }
}
