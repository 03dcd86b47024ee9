//! `${VAR}` references inside string values. `$$` is a literal `$`. An unset variable is an
//! error naming it; values are never echoed back (they are often secrets).

use serde_json::Value;

/// Resolves every `${VAR}` in `s`. Errors: the unset variable's name, or a malformed reference.
pub fn resolve(s: &str, vars: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| "unclosed `${` (write `$$` for a literal `$`)".to_string())?;
            let name = &body[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("`${{{name}}}` is not a valid variable reference"));
            }
            let value = vars(name).ok_or_else(|| format!("environment variable {name} is not set"))?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
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
}
