//! jq programs over vendor JSON, through jaq (a maintained pure-Rust jq: `jaq-core`,
//! `jaq-std`, `jaq-json`; the plugin README says why jq rather than JMESPath).
//!
//! A spec names records, ids, times, cursors and the canonical mapping as jq programs. Each is
//! compiled once when the spec is loaded ([`Program::compile`]: a syntax error or an unknown
//! filter is a spec error naming the key), then run on `serde_json` values ([`Program::run`]).
//! Programs may read the global variables they were compiled with (`$conversation`,
//! `$records`, `$count`, `$vars`), each given a value at every run.
//!
//! `halt` and `input`/`inputs` are not available: a mapping cannot end the process or read
//! other input.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;
use serde_json::Value;

type Filter = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled jq program with its source text and its global variable names.
#[derive(Clone)]
pub struct Program {
    code: String,
    globals: Vec<&'static str>,
    filter: std::sync::Arc<Filter>,
}

impl std::fmt::Debug for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "jq `{}`", self.code)
    }
}

/// The global variables a program may use, by where it runs (module docs).
pub mod globals {
    /// Record selection, ids, times, cursors, paging totals: only `$vars`.
    pub const PLAIN: &[&str] = &["$vars"];
    /// A message mapping: the record is the input; `$conversation` is the conversation object.
    pub const MESSAGE: &[&str] = &["$vars", "$conversation"];
    /// A conversation mapping: the conversation is the input; `$records` are its message
    /// records, `$count` the completeness count (or null), `$messages` its exported message
    /// rows (`{message_id, seq, sent_at, sender_role}`, `sent_at` RFC 3339 UTC), `$account_id`
    /// the `account_id` of the rows.
    pub const CONVERSATION: &[&str] = &["$vars", "$records", "$count", "$messages", "$account_id"];
}

impl Program {
    /// Compiles `code` with the global variables `globals` (names with `$`).
    ///
    /// Errors: the parse or compile errors, one line, quoting the failing part of the program.
    pub fn compile(code: &str, globals: &[&'static str]) -> Result<Self, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader.load(&arena, File { path: (), code }).map_err(|errs| {
            let parts: Vec<String> = errs.into_iter().map(|(_, e)| describe_load(&e)).collect();
            format!("not a jq program: {}", parts.join("; "))
        })?;
        let filter =
            Compiler::default().with_funs(funs).with_global_vars(globals.iter().copied()).compile(modules).map_err(
                |errs| {
                    let parts: Vec<String> = errs
                        .into_iter()
                        .flat_map(|(_, es)| es.into_iter().map(|(name, undefined)| format!("{undefined:?} `{name}`")))
                        .collect();
                    format!("jq program does not compile: {}", parts.join("; "))
                },
            )?;
        Ok(Program { code: code.to_string(), globals: globals.to_vec(), filter: std::sync::Arc::new(filter) })
    }

    /// The program's text, as the spec wrote it.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Every output of the program on `input`; `vars` gives the globals' values in the order
    /// they were compiled with (missing ones are null).
    ///
    /// Errors: the first runtime error (`halt` counts as one), as text.
    pub fn run(&self, input: &Value, vars: &[&Value]) -> Result<Vec<Value>, String> {
        let values: Vec<Val> =
            (0..self.globals.len()).map(|i| to_val(vars.get(i).copied().unwrap_or(&Value::Null))).collect();
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new(values));
        let mut out = Vec::new();
        for item in self.filter.id.run((ctx, to_val(input))) {
            match item {
                Ok(v) => out.push(from_val(&v)?),
                Err(exn) => {
                    return Err(match exn.get_err() {
                        Ok(e) => format!("jq `{}` failed: {e}", self.code),
                        Err(_) => format!("jq `{}` called halt", self.code),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The first output, or null when there is none.
    ///
    /// Errors: as [`Self::run`].
    pub fn first(&self, input: &Value, vars: &[&Value]) -> Result<Value, String> {
        Ok(self.run(input, vars)?.into_iter().next().unwrap_or(Value::Null))
    }

    /// The outputs as one list: an array output is spread, null dropped, anything else kept.
    ///
    /// Errors: as [`Self::run`].
    pub fn list(&self, input: &Value, vars: &[&Value]) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for v in self.run(input, vars)? {
            match v {
                Value::Array(items) => out.extend(items),
                Value::Null => {}
                other => out.push(other),
            }
        }
        Ok(out)
    }
}

/// A lex or parse error as a person reads it: what jaq expected and what it found.
fn describe_load(e: &jaq_core::load::Error<&str>) -> String {
    use jaq_core::load::Error;
    let found =
        |s: &str| if s.is_empty() { "the end of the program".to_string() } else { format!("`{}`", first_chars(s)) };
    match e {
        Error::Io(errs) => errs.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>().join(", "),
        Error::Lex(errs) => errs
            .iter()
            .map(|(exp, at)| format!("expected {} at {}", exp.as_str(), found(at)))
            .collect::<Vec<_>>()
            .join(", "),
        Error::Parse(errs) => errs
            .iter()
            .map(|(exp, at)| format!("expected {} at {}", exp.as_str(), found(at)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// At most the first 20 characters of `s` (where an error is, not the rest of the program).
fn first_chars(s: &str) -> String {
    let head: String = s.chars().take(20).collect();
    if head.len() < s.len() { format!("{head}…") } else { head }
}

fn to_val(v: &Value) -> Val {
    // jaq-json's serde support reads any JSON value.
    serde::Deserialize::deserialize(v).unwrap_or(Val::Null)
}

fn from_val(v: &Val) -> Result<Value, String> {
    let text = v.to_string();
    serde_json::from_str(&text)
        .map_err(|_| format!("a jq result is not JSON: {}", text.chars().take(80).collect::<String>()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn programs_select_and_map() {
        let p = Program::compile(".conversations", globals::PLAIN).unwrap();
        assert_eq!(p.list(&json!({"conversations": [1, 2]}), &[]).unwrap(), vec![json!(1), json!(2)]);
        assert!(p.list(&json!({}), &[]).unwrap().is_empty());
        let m = Program::compile("{id: .id, c: $conversation.id, text: (.message | fromjson? | .blocks | map(.text) | join(\"\\n\")) // .message}", globals::MESSAGE).unwrap();
        let out = m
            .first(
                &json!({"id": 7, "message": "{\"blocks\":[{\"text\":\"a\"},{\"text\":\"b\"}]}"}),
                &[&Value::Null, &json!({"id": "c"})],
            )
            .unwrap();
        assert_eq!(out, json!({"id": 7, "c": "c", "text": "a\nb"}));
        let big = Program::compile(".t", globals::PLAIN).unwrap();
        assert_eq!(
            big.first(&json!({"t": 1717243200000_i64}), &[]).unwrap(),
            json!(1717243200000_i64),
            "integers stay exact"
        );
    }

    #[test]
    fn bad_programs_are_refused_at_compile_time() {
        let e = Program::compile(".a | (", globals::PLAIN).unwrap_err();
        assert_eq!(e, "not a jq program: expected closing parenthesis at the end of the program");
        let e = Program::compile(".chats[[", globals::PLAIN).unwrap_err();
        assert!(e.contains("expected closing bracket"), "{e}");
        let e = Program::compile(".a | )", globals::PLAIN).unwrap_err();
        assert!(e.contains("at `)`"), "{e}");
        assert!(Program::compile("nosuchfilter", globals::PLAIN).unwrap_err().contains("nosuchfilter"));
        assert!(Program::compile("$records", globals::PLAIN).unwrap_err().contains("records"));
        assert!(Program::compile("$records | length", globals::CONVERSATION).is_ok());
    }

    #[test]
    fn runtime_errors_and_halt_are_errors_not_exits() {
        let p = Program::compile("error(\"boom\")", globals::PLAIN).unwrap();
        assert!(p.run(&Value::Null, &[]).unwrap_err().contains("boom"));
        let h = Program::compile("halt", globals::PLAIN);
        if let Ok(h) = h {
            assert!(h.run(&Value::Null, &[]).is_err());
        }
    }
}
