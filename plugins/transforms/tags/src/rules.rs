//! Compiled tag rules and renames: what tags a message earns, what a vendor tag is called.

use std::collections::HashMap;

use regex::RegexSet;

use crate::config::{Role, TagsConfig};

/// The rules of one transform, compiled into a single [`RegexSet`] so a message's text is
/// scanned once however many rules there are.
pub struct Rules {
    set: RegexSet,
    /// Per rule, in config order: its tag and the roles it is limited to (`None`: any).
    meta: Vec<(String, Option<Vec<Role>>)>,
    rename: HashMap<String, String>,
}

impl Rules {
    /// Compiles a validated config.
    ///
    /// Panics never for a config that passed [`TagsConfig::validate`]; returns the regex error
    /// otherwise.
    pub fn compile(cfg: &TagsConfig) -> Result<Self, regex::Error> {
        let set = RegexSet::new(cfg.rules.iter().map(|r| r.pattern.as_str()))?;
        let meta = cfg.rules.iter().map(|r| (r.tag.clone(), r.roles.clone())).collect();
        let rename = cfg.rename.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Rules { set, meta, rename })
    }

    /// True when there are no rules and no renames: vendor tags pass unchanged.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty() && self.rename.is_empty()
    }

    /// The tags the rules give a message with this text and sender role, in rule order
    /// (duplicates possible when two rules give the same tag).
    pub fn tags_for<'a>(&'a self, text: &str, role: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let matches = if self.meta.is_empty() { Vec::new() } else { self.set.matches(text).into_iter().collect() };
        matches.into_iter().filter_map(move |i| {
            let (tag, roles) = &self.meta[i];
            let allowed = roles.as_ref().is_none_or(|rs| rs.iter().any(|r| r.as_str() == role));
            allowed.then_some(tag.as_str())
        })
    }

    /// The normalized name of a vendor tag, and whether a rename applied.
    pub fn rename<'a>(&'a self, vendor_tag: &'a str) -> (&'a str, bool) {
        match self.rename.get(vendor_tag) {
            Some(new) => (new.as_str(), true),
            None => (vendor_tag, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use serde_json::json;

    #[test]
    fn matching_roles_and_renames() {
        let cfg = parse(json!({
            "rules": [
                {"tag": "billing", "pattern": "(?i)refund|invoice"},
                {"tag": "angry", "pattern": "(?i)terrible|😡", "roles": ["visitor"]},
                {"tag": "billing", "pattern": "(?i)lasku"},
            ],
            "rename": {"Billing": "billing", "Lead: hot 🔥": "lead"},
        }))
        .unwrap();
        let r = Rules::compile(&cfg).unwrap();
        let tags = |text: &str, role: &str| r.tags_for(text, role).map(String::from).collect::<Vec<String>>();
        assert_eq!(tags("My INVOICE is wrong", "visitor"), ["billing"]);
        assert_eq!(tags("terrible invoice, laskuni!", "visitor"), ["billing", "angry", "billing"]);
        assert!(tags("terrible weather", "agent").is_empty(), "roles filter");
        assert!(tags("hello", "visitor").is_empty());
        assert_eq!(r.rename("Billing"), ("billing", true));
        assert_eq!(r.rename("Lead: hot 🔥"), ("lead", true));
        assert_eq!(r.rename("Sales"), ("Sales", false));
        assert!(!r.is_empty());
        assert!(Rules::compile(&parse(json!({})).unwrap()).unwrap().is_empty());
    }
}
