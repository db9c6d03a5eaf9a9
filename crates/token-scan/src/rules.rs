//! The built-in rule table: `rules/builtin.toml`, embedded in the binary and parsed once with the
//! deserializer users' rule files go through. Adding a rule is one `[[rule]]` entry there (and its
//! vectors in `tests/vectors/rules.json`). Tokenward tokens are found by their own detector (any
//! prefix, CRC-32 validated), generic assignments by theirs (`generic.rs`), not by a rule here.

use std::sync::OnceLock;

use crate::rule::Rule;

/// The table's text.
const BUILTIN: &str = include_str!("../rules/builtin.toml");

/// The built-in rules, parsed on first use.
pub(crate) fn builtin() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(|| {
        // The table ships in the binary and a test parses and compiles it: it cannot fail here.
        #[allow(clippy::expect_used)]
        crate::rule::parse_rules(BUILTIN).expect("the built-in rule table parses")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_parses_with_unique_ids_all_enabled() {
        let rules = builtin();
        let mut ids: Vec<&str> = rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), rules.len(), "rule ids are unique");
        assert!(rules.iter().all(|r| r.enabled && r.id != crate::rule::GENERIC_RULE));
    }
}
