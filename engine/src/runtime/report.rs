//! What a run did ([`RunReport`]), how it ended ([`Outcome`], derived from the typed
//! dead-letter kinds) and why it did not finish ([`RunError`]).

use std::collections::BTreeMap;
use std::time::Duration;

use pipe_plugin_sdk::{DeadLetter, DeadLetterKind, SinkStats};

/// What a run did: the end-of-run summary and `pipe run --report FILE`.
#[derive(Debug, Default)]
pub struct RunReport {
    /// Rows per stream (`messages`, `conversations`) that reached the sinks.
    pub rows: BTreeMap<String, u64>,
    /// Per sink (`sinks[0] parquet`): files, bytes and rows committed.
    pub sinks: Vec<(String, SinkStats)>,
    /// HTTP requests the source made to the vendor, retries included.
    pub requests: u64,
    /// Of those, the retries.
    pub retries: u64,
    /// Of the answers, those with HTTP 429 (Too Many Requests).
    pub throttled_responses: u64,
    /// The source's concurrency limit (requests in flight): what it settled on.
    pub concurrency: ConcurrencyReport,
    /// Conversations the source emitted (to divide the requests by).
    pub conversations: u64,
    /// Dead letters written to `[dead_letter] path` in this run.
    pub dead_letters: u64,
    /// Checkpoints committed (every sink committed, state saved).
    pub checkpoints: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Conversations the source found incomplete (dead letter [`DeadLetterKind::Incomplete`],
    /// or a conversation's own listing cut by [`DeadLetterKind::PagingLoop`] /
    /// [`DeadLetterKind::ResponseTooLarge`], by `conversation_id`): the run is partial.
    pub incomplete: Vec<String>,
    /// Records (or values of them) not in the output as the vendor sent them (dead letters
    /// [`DeadLetterKind::Rejected`]), as `<stream> <key> (<reason>)`: the run is partial.
    pub rejected: Vec<String>,
    /// Why the source stopped early (dead letters [`DeadLetterKind::RetryBudgetExhausted`],
    /// [`DeadLetterKind::AccountFailed`], and a conversation listing cut by
    /// [`DeadLetterKind::PagingLoop`] or [`DeadLetterKind::ResponseTooLarge`]; their messages):
    /// the run is partial.
    pub stopped_early: Vec<String>,
    /// Records of a shape the source's mapping does not know (dead letters
    /// [`DeadLetterKind::UnexpectedShape`]: a missing field, an unknown enum value), exported
    /// with a documented fallback, as `<stream> <key>`: counted and shown, not partial.
    pub unexpected_shape: Vec<String>,
    /// Source state at the start (`None`: first run or `--full-refresh`) and after the last commit.
    pub state_before: Option<serde_json::Value>,
    /// The state saved by the last commit of this run (`None`: nothing committed).
    pub state_after: Option<serde_json::Value>,
    /// The signal (`SIGINT`, `SIGTERM`) that stopped a batch run before its end; what its
    /// last checkpoint covers is committed.
    pub interrupted: Option<&'static str>,
}

/// The concurrency limit of the source's requests over the run (from its metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct ConcurrencyReport {
    /// True when the limit adapted (no fixed `concurrency`).
    pub adaptive: bool,
    /// The limit at the end of the run.
    pub last: u64,
    /// The limit averaged over the run's time (time-weighted).
    pub mean: f64,
    /// The rate cap learned from HTTP 429 answers, in requests per second, if one was needed.
    pub learned_rate: Option<f64>,
}

/// How a run that reached its end turned out; a run that stopped on an error is a
/// [`RunError`] instead. Maps to exit codes 0, 3, 4 and 130 (`crate::exit::Exit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything extracted and committed (dead letters allowed unless
    /// `fail_on_dead_letters`).
    Success,
    /// Committed, but incomplete: a conversation arrived incomplete, the retry budget ran out,
    /// or an account failed.
    Partial,
    /// Complete, but there are dead letters and the pipeline says `fail_on_dead_letters = true`.
    DeadLetters,
    /// Stopped by SIGINT/SIGTERM: committed up to the newest checkpoint, the rest is left for
    /// the next run.
    Interrupted,
}

impl Outcome {
    /// `success`, `partial`, `dead_letters` or `interrupted`: the `outcome` of the report JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Partial => "partial",
            Outcome::DeadLetters => "dead_letters",
            Outcome::Interrupted => "interrupted",
        }
    }
}

impl RunReport {
    /// Counts what `dl` means for the outcome, by its kind: an incomplete conversation, or a
    /// source (or one account) that stopped early. Other kinds only count as dead letters.
    pub fn note_dead_letter(&mut self, dl: &DeadLetter) {
        match dl.kind() {
            DeadLetterKind::Incomplete => {
                let id = dl.key.get("conversation_id").and_then(|v| v.as_str()).unwrap_or("?");
                self.incomplete.push(id.to_string());
            }
            DeadLetterKind::RetryBudgetExhausted | DeadLetterKind::AccountFailed => {
                self.stopped_early.push(dl.message.clone())
            }
            DeadLetterKind::Rejected(reason) => {
                self.rejected.push(format!("{} {} ({reason})", dl.stream, record_key(dl)))
            }
            DeadLetterKind::UnexpectedShape => self.unexpected_shape.push(format!("{} {}", dl.stream, record_key(dl))),
            // A listing cut short: a conversation's own listing names the conversation, the
            // conversation listing itself stops the source early.
            DeadLetterKind::PagingLoop | DeadLetterKind::ResponseTooLarge => {
                match dl.key.get("conversation_id").and_then(|v| v.as_str()) {
                    Some(id) => self.incomplete.push(id.to_string()),
                    None => self.stopped_early.push(dl.message.clone()),
                }
            }
            DeadLetterKind::Other(_) => {}
        }
    }

    /// True when nothing is missing: no incomplete conversation, no rejected record, nothing
    /// stopped early.
    pub fn is_complete(&self) -> bool {
        self.incomplete.is_empty() && self.rejected.is_empty() && self.stopped_early.is_empty()
    }

    /// The outcome: interrupted when a signal stopped the run, else partial when incomplete
    /// (that wins over dead letters), else dead letters when there are some and
    /// `fail_on_dead_letters`, else success.
    pub fn outcome(&self, fail_on_dead_letters: bool) -> Outcome {
        if self.interrupted.is_some() {
            Outcome::Interrupted
        } else if !self.is_complete() {
            Outcome::Partial
        } else if self.dead_letters > 0 && fail_on_dead_letters {
            Outcome::DeadLetters
        } else {
            Outcome::Success
        }
    }

    /// Requests per conversation emitted, retries included (`None` without a conversation).
    pub fn requests_per_conversation(&self) -> Option<f64> {
        (self.conversations > 0).then(|| (self.requests as f64 / self.conversations as f64 * 100.0).round() / 100.0)
    }

    /// The report as JSON (`pipe run --report FILE`), with `outcome` from [`Outcome::as_str`].
    pub fn to_json(&self, pipeline: &str, outcome: Outcome) -> serde_json::Value {
        serde_json::json!({
            "pipeline": pipeline,
            "outcome": outcome.as_str(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "rows": self.rows,
            "sinks": self.sinks.iter().map(|(name, s)| serde_json::json!({"sink": name, "files": s.files, "bytes": s.bytes, "rows": s.rows})).collect::<Vec<_>>(),
            "requests": self.requests,
            "retries": self.retries,
            "throttled_responses": self.throttled_responses,
            "requests_per_conversation": self.requests_per_conversation(),
            "concurrency": {
                "adaptive": self.concurrency.adaptive,
                "last": self.concurrency.last,
                "mean": (self.concurrency.mean * 100.0).round() / 100.0,
                "learned_rate_per_s": self.concurrency.learned_rate,
            },
            "checkpoints": self.checkpoints,
            "dead_letters": self.dead_letters,
            "unexpected_shape": {"count": self.unexpected_shape.len(), "records": self.unexpected_shape},
            "completeness": {"ok": self.is_complete(), "incomplete_conversations": self.incomplete, "rejected_records": self.rejected, "stopped_early": self.stopped_early},
            "state_before": self.state_before,
            "state_after": self.state_after,
            "interrupted": self.interrupted,
        })
    }
}

/// `conversation_id/message_id` of a dead letter's key (what of them it has), or `?`.
fn record_key(dl: &DeadLetter) -> String {
    let key = ["conversation_id", "message_id"]
        .iter()
        .filter_map(|k| dl.key.get(*k).and_then(|v| v.as_str()))
        .collect::<Vec<_>>()
        .join("/");
    if key.is_empty() { "?".to_string() } else { key }
}

/// Why a run did not reach its end.
#[derive(Debug)]
pub enum RunError {
    /// A plugin refused its configuration when opened, or `--shard`/`--window` do not apply
    /// to the pipeline (exit 2). The message names the key (`sinks[0].path: ...`).
    Config(String),
    /// The run stopped on an error; every sink was aborted and nothing after the last
    /// checkpoint is committed (exit 1).
    Failed(anyhow::Error),
    /// Another run of the same pipeline (or of one of its accounts) holds the run lock of the
    /// local state; this run did nothing (exit 1). The message names the holder.
    Busy(String),
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Failed(e)
    }
}

#[cfg(test)]
mod tests {
    use pipe_plugin_sdk::{
        REASON_ACCOUNT_FAILED, REASON_INCOMPLETE, REASON_PAGING_LOOP, REASON_RESPONSE_TOO_LARGE, REASON_RETRY_BUDGET,
    };
    use serde_json::json;

    use super::*;

    fn dead_letter(reason: &str, key: serde_json::Value, message: &str) -> DeadLetter {
        DeadLetter {
            stream: "conversations".into(),
            key,
            stage: "giosg".into(),
            reason: reason.into(),
            message: message.into(),
            raw: serde_json::Value::Null,
        }
    }

    /// A report after the dead letters `reasons`, all written.
    fn after(reasons: &[&str]) -> RunReport {
        let mut report = RunReport::default();
        for (i, reason) in reasons.iter().enumerate() {
            report.note_dead_letter(&dead_letter(reason, json!({"conversation_id": format!("c{i}")}), reason));
            report.dead_letters += 1;
        }
        report
    }

    #[test]
    fn no_dead_letters_is_success_either_way() {
        assert_eq!(after(&[]).outcome(false), Outcome::Success);
        assert_eq!(after(&[]).outcome(true), Outcome::Success);
    }

    #[test]
    fn rejected_records_make_it_partial_and_are_named() {
        let r = after(&["hmac_mismatch", "time_in_future", "unparsable_message"]);
        assert_eq!(r.rejected, ["conversations c1 (time_in_future)", "conversations c2 (unparsable_message)"]);
        assert_eq!(r.outcome(true), Outcome::Partial);
        assert_eq!(r.to_json("p", Outcome::Partial)["completeness"]["rejected_records"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn plugin_reasons_fail_the_run_only_when_configured() {
        let r = after(&["hmac_mismatch", "bad_ciphertext"]);
        assert!(r.is_complete());
        assert_eq!(r.outcome(false), Outcome::Success);
        assert_eq!(r.outcome(true), Outcome::DeadLetters);
    }

    #[test]
    fn unexpected_shapes_are_counted_and_named_but_not_partial() {
        let mut r = RunReport::default();
        let mut dl = dead_letter(
            pipe_plugin_sdk::REASON_UNEXPECTED_SHAPE,
            json!({"conversation_id": "c1", "message_id": "m1"}),
            "sender_type `bot` unknown",
        );
        dl.stream = "messages".into();
        r.note_dead_letter(&dl);
        r.dead_letters += 1;
        assert_eq!(r.unexpected_shape, ["messages c1/m1"]);
        assert!(r.is_complete());
        assert_eq!(r.outcome(false), Outcome::Success);
        assert_eq!(r.outcome(true), Outcome::DeadLetters);
        let json = r.to_json("p", Outcome::Success);
        assert_eq!(json["unexpected_shape"], json!({"count": 1, "records": ["messages c1/m1"]}));
    }

    #[test]
    fn incomplete_conversations_make_it_partial_and_are_named() {
        let r = after(&["hmac_mismatch", REASON_INCOMPLETE]);
        assert_eq!(r.incomplete, ["c1"]);
        assert!(r.stopped_early.is_empty());
        // Partial wins over fail_on_dead_letters: exit 3, not 4.
        assert_eq!(r.outcome(true), Outcome::Partial);
        assert_eq!(r.outcome(false), Outcome::Partial);
    }

    #[test]
    fn a_spent_retry_budget_or_a_failed_account_makes_it_partial() {
        for reason in [REASON_RETRY_BUDGET, REASON_ACCOUNT_FAILED] {
            let r = after(&[reason]);
            assert_eq!(r.stopped_early, [reason]);
            assert_eq!(r.outcome(false), Outcome::Partial);
        }
    }

    #[test]
    fn a_cut_listing_makes_it_partial_naming_the_conversation_or_the_listing() {
        for reason in [REASON_PAGING_LOOP, REASON_RESPONSE_TOO_LARGE] {
            let r = after(&[reason]);
            assert_eq!((r.incomplete.as_slice(), r.stopped_early.len()), (["c0".to_string()].as_slice(), 0));
            assert_eq!(r.outcome(false), Outcome::Partial);
            let mut listing = RunReport::default();
            listing.note_dead_letter(&dead_letter(reason, json!({"vendor": "giosg"}), "owned_chats repeated"));
            assert_eq!(listing.stopped_early, ["owned_chats repeated"]);
            assert_eq!(listing.outcome(false), Outcome::Partial);
        }
    }

    #[test]
    fn an_incomplete_record_without_a_conversation_id_is_still_counted() {
        let mut r = RunReport::default();
        r.note_dead_letter(&dead_letter(REASON_INCOMPLETE, json!({}), "?"));
        assert_eq!(r.incomplete, ["?"]);
    }

    #[test]
    fn report_json_carries_outcome_and_completeness() {
        let r = after(&[REASON_INCOMPLETE]);
        let json = r.to_json("p", r.outcome(false));
        assert_eq!(json["outcome"], "partial");
        assert_eq!(json["completeness"]["ok"], false);
        assert_eq!(json["completeness"]["incomplete_conversations"], json!(["c0"]));
        assert_eq!(after(&[]).to_json("p", Outcome::Success)["outcome"], "success");
        assert_eq!(Outcome::DeadLetters.as_str(), "dead_letters");
    }
}
