//! `${VAR}` references inside string values. `$$` is a literal `$`. An unset variable is an
//! error naming it; values are never echoed back (they are often secrets).

use std::cell::RefCell;

use serde_json::Value;

/// The values `${VAR}` references resolved to, recorded so that error messages can name the
/// variable instead of quoting its value (a plugin's type error quotes what it was given:
/// `invalid type: string "<the secret>", expected u32`).
#[derive(Default)]
pub struct Substitutions(RefCell<Vec<(String, String)>>);

impl Substitutions {
    /// `vars`, recording every value it returns.
    pub fn recording<'a>(&'a self, vars: &'a dyn Fn(&str) -> Option<String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            let value = vars(name);
            if let Some(v) = value.as_ref().filter(|v| !v.is_empty()) {
                let mut seen = self.0.borrow_mut();
                if !seen.iter().any(|(n, _)| n == name) {
                    seen.push((name.to_string(), v.clone()));
                }
            }
            value
        }
    }

    /// `message` with every recorded value, as written or as Rust/JSON escapes it inside
    /// quotes, replaced by `${NAME}` (longest values first, so a value containing another is
    /// replaced whole).
    pub fn hide(&self, message: &str) -> String {
        let mut spelled: Vec<(String, String)> = Vec::new();
        for (name, value) in self.0.borrow().iter() {
            let debug = format!("{value:?}");
            let json = serde_json::to_string(value).unwrap_or_default();
            for s in [value.clone(), debug[1..debug.len() - 1].to_string(), json[1..json.len() - 1].to_string()] {
                spelled.push((s, format!("${{{name}}}")));
            }
        }
        spelled.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let mut out = message.to_string();
        for (value, reference) in spelled {
            out = out.replace(&value, &reference);
        }
        out
    }
}

/// Resolves every `${VAR}` in `s` (the SDK's [`pipe_plugin_sdk::config::resolve_vars`], which
/// the `rest` source also applies to its vendor spec). Errors: the unset variable's name, or a
/// malformed reference.
pub fn resolve(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    pipe_plugin_sdk::config::resolve_vars(s, vars)
}

/// [`resolve`] on every string inside a JSON value; errors carry the key path.
pub fn resolve_value(v: &Value, path: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<Value, (String, String)> {
    Ok(match v {
        Value::String(s) => Value::String(resolve(s, vars).map_err(|m| (path.to_string(), m))?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| resolve_value(x, &format!("{path}[{i}]"), vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| Ok::<_, (String, String)>((k.clone(), resolve_value(x, &format!("{path}.{k}"), vars)?)))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        (n == "TOKEN").then(|| "s3cret".to_string())
    }

    #[test]
    fn resolves_and_escapes() {
        assert_eq!(resolve("Token ${TOKEN}!", &vars).unwrap(), "Token s3cret!");
        assert_eq!(resolve("cost $$5 $x", &vars).unwrap(), "cost $5 $x");
    }

    #[test]
    fn unset_is_named_and_value_never_echoed() {
        let e = resolve("${NOPE}", &vars).unwrap_err();
        assert!(e.contains("NOPE"));
        assert!(resolve("${", &vars).is_err());
    }

    #[test]
    fn substituted_values_are_named_not_quoted() {
        let env = |n: &str| match n {
            "TOKEN" => Some("s3cret\"x".to_string()),
            "SHORT" => Some("s3".to_string()),
            _ => None,
        };
        let subs = Substitutions::default();
        let rec = subs.recording(&env);
        assert_eq!(resolve("${SHORT}-${TOKEN}", &rec).unwrap(), "s3-s3cret\"x");
        let message = r#"invalid type: string "s3-s3cret\"x", expected u32"#;
        assert_eq!(subs.hide(message), r#"invalid type: string "${SHORT}-${TOKEN}", expected u32"#);
        assert_eq!(subs.hide("s3cret\"x"), "${TOKEN}");
    }
}
