//! TOML → JSON with the source position of every key and value, so any error about a key path
//! (`sinks[0].path`) can name its file and line.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::{Map, Number, Value};
use toml::de::{DeTable, DeValue};

/// Byte range of a key in the source text (for array items: of the item).
#[derive(Debug, Clone)]
pub struct Span {
    pub key: Range<usize>,
}

/// A parsed document: its JSON and `path → span` (paths like `source.token`, `sinks[1].path`).
#[derive(Debug)]
pub struct Located {
    pub json: Value,
    pub spans: HashMap<String, Span>,
}

/// Parses TOML. Errors: the parser's message and the byte offset it points at.
pub fn parse(text: &str) -> Result<Located, (String, usize)> {
    let doc = DeTable::parse(text).map_err(|e| {
        let at = e.span().map(|s| s.start).unwrap_or(0);
        (e.message().trim().to_string(), at)
    })?;
    let mut spans = HashMap::new();
    let json = table(doc.get_ref(), "", &mut spans)?;
    Ok(Located { json, spans })
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") }
}

fn table(t: &DeTable<'_>, prefix: &str, spans: &mut HashMap<String, Span>) -> Result<Value, (String, usize)> {
    let mut map = Map::new();
    for (k, v) in t.iter() {
        let path = join(prefix, k.get_ref());
        spans.insert(path.clone(), Span { key: k.span() });
        map.insert(k.get_ref().to_string(), value(v.get_ref(), v.span(), &path, spans)?);
    }
    Ok(Value::Object(map))
}

fn value(
    v: &DeValue<'_>,
    span: Range<usize>,
    path: &str,
    spans: &mut HashMap<String, Span>,
) -> Result<Value, (String, usize)> {
    Ok(match v {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            let n = i64::from_str_radix(&digits, i.radix())
                .map_err(|e| (format!("{path}: integer out of range: {e}"), span.start))?;
            Value::Number(n.into())
        }
        DeValue::Float(f) => {
            let digits: String = f.as_str().chars().filter(|c| *c != '_').collect();
            let x: f64 = digits.parse().map_err(|_| (format!("{path}: invalid float"), span.start))?;
            Value::Number(Number::from_f64(x).ok_or((format!("{path}: inf/nan are not supported"), span.start))?)
        }
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::String(d.to_string()),
        DeValue::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                spans.insert(p.clone(), Span { key: item.span() });
                out.push(value(item.get_ref(), item.span(), &p, spans)?);
            }
            Value::Array(out)
        }
        DeValue::Table(t) => table(t, path, spans)?,
    })
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_lines() {
        let text = "name = \"x\"\n[source]\nplugin = \"giosg\"\npage_size = 1_000\n\n[[sinks]]\nplugin = \"json\"\ntags = [\"a\"]\n";
        let doc = parse(text).unwrap();
        assert_eq!(doc.json["source"]["page_size"], 1000);
        assert_eq!(doc.json["sinks"][0]["tags"][0], "a");
        assert_eq!(line_of(text, doc.spans["source.page_size"].key.start), 4);
        assert_eq!(line_of(text, doc.spans["sinks[0].plugin"].key.start), 7);
        assert_eq!(line_of(text, doc.spans["source"].key.start), 2);
    }

    #[test]
    fn syntax_error_has_position() {
        let (msg, at) = parse("a = 1\nb = \n").unwrap_err();
        assert!(!msg.is_empty());
        assert_eq!(line_of("a = 1\nb = \n", at), 2);
    }
}
