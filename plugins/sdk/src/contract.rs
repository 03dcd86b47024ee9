//! The vendor contract report of `pipe validate --check`: what a source assumes about its
//! vendor's API, tested against the live account with a few read-only requests.
//!
//! A built-in source's probe ([`ContractProbe`]) returns a [`ContractReport`]: one [`Check`] per
//! assumption (a stable dotted name such as `alli.rest.started_at_unit`, what was assumed, the
//! [`Status`] and what was seen), each marked required or not. The engine prints one aligned line
//! per check and a summary, and exits 1 when a required check is [`Status::Absent`] or
//! [`Status::Different`].
//!
//! What a check says it saw never holds a secret (probes scrub it with
//! [`crate::http::HttpClient::scrub`]) and never a conversation's content: field names, types,
//! counts, units and times only.
//!
//! ```
//! use pipe_plugin_sdk::contract::{Check, ContractReport, Status};
//!
//! let mut report = ContractReport::new("acme");
//! report.push(Check::required("acme.listing", "GET /chats answers {results, next}").confirmed("50 chats, next set"));
//! report.push(Check::optional("acme.order", "newest first").different("ascending created_at"));
//! assert!(report.passed());
//! report.push(Check::required("acme.messages", "GET /chats/{id}/messages").absent("HTTP 404"));
//! assert!(!report.passed());
//! assert_eq!(report.failed_required().len(), 1);
//! assert!(report.render().contains("✗ absent"));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::Result;

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The vendor behaves as assumed.
    Confirmed,
    /// What was assumed is not there (an endpoint answering 404, a field or type missing).
    Absent,
    /// It is there but behaves otherwise (another unit, shape, order or page size).
    Different,
    /// Could not be tested on this account (e.g. no conversation to look at).
    Unchecked,
}

impl Status {
    /// `✓ confirmed`, `✗ absent`, `≠ different`, `? unchecked`.
    pub fn label(self) -> &'static str {
        match self {
            Status::Confirmed => "✓ confirmed",
            Status::Absent => "✗ absent",
            Status::Different => "≠ different",
            Status::Unchecked => "? unchecked",
        }
    }

    /// True for [`Status::Absent`] and [`Status::Different`].
    pub fn is_failure(self) -> bool {
        matches!(self, Status::Absent | Status::Different)
    }
}

/// One assumption of a source, tested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Stable dotted name, vendor first (`giosg.chat.get`, `alli.graphql.Conversation.lastChatTime`).
    pub name: String,
    /// What the source assumes (`GET …/owned_chats/{id} answers the chat object`).
    pub assumed: String,
    /// The outcome.
    pub status: Status,
    /// What was seen (shapes, counts, units; never a secret or message content).
    pub seen: String,
    /// True when the source cannot export correctly without it: a failed required check makes
    /// `pipe validate --check` exit 1. Checks the source adapts to are not required.
    pub required: bool,
}

impl Check {
    /// A required check, not yet decided (status [`Status::Unchecked`], nothing seen).
    pub fn required(name: impl Into<String>, assumed: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            assumed: assumed.into(),
            status: Status::Unchecked,
            seen: String::new(),
            required: true,
        }
    }

    /// A check the source adapts to (its failure is reported, not fatal).
    pub fn optional(name: impl Into<String>, assumed: impl Into<String>) -> Self {
        Check { required: false, ..Check::required(name, assumed) }
    }

    /// This check with `status` and what was `seen`.
    pub fn with(mut self, status: Status, seen: impl Into<String>) -> Self {
        self.status = status;
        self.seen = seen.into();
        self
    }

    /// [`Status::Confirmed`], having seen `seen`.
    pub fn confirmed(self, seen: impl Into<String>) -> Self {
        self.with(Status::Confirmed, seen)
    }

    /// [`Status::Absent`], having seen `seen`.
    pub fn absent(self, seen: impl Into<String>) -> Self {
        self.with(Status::Absent, seen)
    }

    /// [`Status::Different`], having seen `seen`.
    pub fn different(self, seen: impl Into<String>) -> Self {
        self.with(Status::Different, seen)
    }

    /// [`Status::Unchecked`], with why.
    pub fn unchecked(self, why: impl Into<String>) -> Self {
        self.with(Status::Unchecked, why)
    }

    /// [`Status::Confirmed`] when `ok`, else `otherwise`; `seen` either way.
    pub fn confirmed_if(self, ok: bool, otherwise: Status, seen: impl Into<String>) -> Self {
        self.with(if ok { Status::Confirmed } else { otherwise }, seen)
    }

    /// True when this check is required and failed.
    pub fn fails_run(&self) -> bool {
        self.required && self.status.is_failure()
    }
}

/// Every check of one source's probe, in the order they were made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractReport {
    /// The source plugin (`giosg`, `alli`, `aimylogic`).
    pub source: String,
    /// The checks.
    pub checks: Vec<Check>,
}

impl ContractReport {
    /// An empty report for `source`.
    pub fn new(source: impl Into<String>) -> Self {
        ContractReport { source: source.into(), checks: Vec::new() }
    }

    /// Appends one check.
    pub fn push(&mut self, check: Check) {
        self.checks.push(check);
    }

    /// The check called `name`, if made.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }

    /// The required checks that failed.
    pub fn failed_required(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.fails_run()).collect()
    }

    /// True when no required check failed.
    pub fn passed(&self) -> bool {
        self.failed_required().is_empty()
    }

    /// Checks per status: (confirmed, absent, different, unchecked).
    pub fn counts(&self) -> (usize, usize, usize, usize) {
        let n = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        (n(Status::Confirmed), n(Status::Absent), n(Status::Different), n(Status::Unchecked))
    }

    /// One aligned line per check (`✓ confirmed  giosg.chats.listing  …`: status, name,
    /// `required` or `optional`, what was seen, and what was assumed when it was not
    /// confirmed), then a summary line.
    pub fn render(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            let kind = if c.required { "required" } else { "optional" };
            out.push_str(&format!("{:<12} {:<width$}  {kind}  {}\n", c.status.label(), c.name, c.seen));
            if c.status != Status::Confirmed {
                out.push_str(&format!("{:<12} {:<width$}  assumed: {}\n", "", "", c.assumed));
            }
        }
        let (ok, absent, different, unchecked) = self.counts();
        let failed = self.failed_required().len();
        out.push_str(&format!(
            "source `{}`: {} checks: {ok} confirmed, {absent} absent, {different} different, {unchecked} unchecked; {}\n",
            self.source,
            self.checks.len(),
            if failed == 0 {
                "every required check passed".to_string()
            } else {
                format!("{failed} required check(s) failed")
            }
        ));
        out
    }

    /// The report as JSON: `{"source", "passed", "checks": [{"name", "assumed", "status",
    /// "seen", "required"}]}`.
    pub fn to_json(&self) -> Value {
        let mut v = serde_json::to_value(self).expect("the report serializes");
        v["passed"] = Value::Bool(self.passed());
        v
    }
}

/// A boxed future of a contract probe.
pub type ContractFuture = Pin<Box<dyn Future<Output = Result<ContractReport>> + Send>>;

/// A built-in source's contract probe: from the source's JSON config (as the engine hands it to
/// the source factory), a few read-only requests against the live account, returning the report.
///
/// Errors: [`crate::PluginError::Config`] for a config the source refuses, `Auth` for refused
/// credentials, `Http` for an unreachable endpoint: the probe could not start at all.
pub type ContractProbe = Arc<dyn Fn(Value) -> ContractFuture + Send + Sync>;

/// The top-level keys of a JSON object, sorted, for a check's `seen` (`{a, b, c}`); `-` for a
/// value that is not an object.
pub fn keys_of(v: &Value) -> String {
    match v.as_object() {
        Some(o) => {
            let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
            keys.sort_unstable();
            format!("{{{}}}", keys.join(", "))
        }
        None => format!("not an object ({})", json_kind(v)),
    }
}

/// The fields of `want` that `v` does not have (absent or JSON `null` both count as missing
/// when `null_is_missing`).
pub fn missing_fields<'a>(v: &Value, want: &[&'a str], null_is_missing: bool) -> Vec<&'a str> {
    want.iter()
        .copied()
        .filter(|k| match v.get(*k) {
            None => true,
            Some(Value::Null) => null_is_missing,
            Some(_) => false,
        })
        .collect()
}

/// `null`, `boolean`, `number`, `string`, `array` or `object`.
pub fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A check of the fields a record needs: confirmed when every one of `needed` is present in
/// every record of `records`, else absent naming the missing ones and how many records lack
/// them. With no records, unchecked.
pub fn fields_check(check: Check, records: &[Value], needed: &[&str]) -> Check {
    if records.is_empty() {
        return check.unchecked("no record to look at");
    }
    let mut missing: Vec<(&str, usize)> = Vec::new();
    for field in needed {
        let n = records.iter().filter(|r| r.get(*field).is_none()).count();
        if n > 0 {
            missing.push((field, n));
        }
    }
    if missing.is_empty() {
        check.confirmed(format!("{} record(s) with {}", records.len(), needed.join(", ")))
    } else {
        let list: Vec<String> = missing.iter().map(|(f, n)| format!("`{f}` missing in {n}")).collect();
        check.absent(format!(
            "{} of {} record(s): {}; fields seen: {}",
            list.len(),
            records.len(),
            list.join(", "),
            keys_of(&records[0])
        ))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn render_aligns_and_summarises() {
        let mut r = ContractReport::new("x");
        r.push(Check::required("x.a", "a").confirmed("seen a"));
        r.push(Check::optional("x.longer_name", "b is ms").different("b is s"));
        let text = r.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "✓ confirmed  x.a            required  seen a");
        assert_eq!(lines[1], "≠ different  x.longer_name  optional  b is s");
        assert_eq!(lines[2], format!("{:28}assumed: b is ms", ""));
        assert!(lines[3].starts_with("source `x`: 2 checks: 1 confirmed, 0 absent, 1 different, 0 unchecked; every"));
        assert_eq!(r.to_json()["passed"], true);
        assert_eq!(r.to_json()["checks"][1]["status"], "different");
    }

    #[test]
    fn fields_are_checked_on_every_record() {
        let recs = vec![json!({"id": 1, "t": 2}), json!({"id": 2})];
        let c = fields_check(Check::required("f", "id, t"), &recs, &["id", "t"]);
        assert_eq!(c.status, Status::Absent);
        assert!(c.seen.contains("`t` missing in 1"), "{}", c.seen);
        assert_eq!(fields_check(Check::required("f", ""), &recs, &["id"]).status, Status::Confirmed);
        assert_eq!(fields_check(Check::required("f", ""), &[], &["id"]).status, Status::Unchecked);
        assert_eq!(missing_fields(&json!({"a": null}), &["a", "b"], true), vec!["a", "b"]);
        assert_eq!(keys_of(&json!({"b": 1, "a": 2})), "{a, b}");
    }
}
