//! Compiling a rule set into a [`Scanner`]: regexes, the anchors' automaton, the checks that keep
//! every match within a chunk's overlap.

use std::collections::HashSet;

use aho_corasick::{AhoCorasickBuilder, AhoCorasickKind, MatchKind};

use super::{Compiled, OVERLAP, Scanner};
use crate::error::ScanError;
use crate::finding::Fingerprint;
use crate::generic;
use crate::rule::RuleSet;

/// Builds a [`Scanner`].
#[derive(Debug)]
#[must_use]
pub struct ScannerBuilder {
    pub(super) rules: RuleSet,
    pub(super) baseline: HashSet<Fingerprint>,
    pub(super) key: Option<[u8; 32]>,
}

impl ScannerBuilder {
    /// The rules to run (the built-in set by default).
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = rules;
        self
    }

    /// Findings whose fingerprint is in `baseline` are suppressed (counted as `baseline`).
    pub fn baseline(mut self, baseline: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.baseline.extend(baseline);
        self
    }

    /// Fingerprints become HMAC-SHA256 under `key` instead of plain SHA-256.
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(key);
        self
    }

    /// Compiles the rules: a bad regex, an anchor-less rule or a window wider than the overlap
    /// between chunks (`before + after + anchor` over 16 KiB: a match that long could be split
    /// between two chunks and missed) is [`ScanError::Rules`], naming the rule.
    pub fn build(self) -> Result<Scanner, ScanError> {
        let set = self.rules.clone();
        let mut rules = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut anchor_rules: Vec<Vec<usize>> = Vec::new();
        for rule in self.rules.rules.into_iter().filter(|r| r.enabled) {
            if rule.anchors.is_empty() || rule.anchors.iter().any(|a| a.is_empty() || !a.is_ascii()) {
                return Err(ScanError::Rules(format!(
                    "rule {}: anchors must be non-empty ASCII strings",
                    rule.id
                )));
            }
            let longest = rule.anchors.iter().map(String::len).max().unwrap_or(0);
            if rule.before.saturating_add(rule.after).saturating_add(longest) > OVERLAP {
                return Err(ScanError::Rules(format!(
                    "rule {}: before + after + anchor is {} bytes, more than the {OVERLAP}-byte overlap \
                     between chunks (a match that long could be split and missed)",
                    rule.id,
                    rule.before.saturating_add(rule.after).saturating_add(longest)
                )));
            }
            let regex = regex::bytes::RegexBuilder::new(&rule.regex)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| ScanError::Rules(format!("rule {}: {e}", rule.id)))?;
            if rule.secret_group >= regex.captures_len() {
                return Err(ScanError::Rules(format!(
                    "rule {}: no capture group {}",
                    rule.id, rule.secret_group
                )));
            }
            let pair = match &rule.pair {
                None => None,
                Some(p) => {
                    let re = regex::bytes::RegexBuilder::new(&p.regex)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| ScanError::Rules(format!("rule {}: pair: {e}", rule.id)))?;
                    if p.group >= re.captures_len() {
                        return Err(ScanError::Rules(format!(
                            "rule {}: pair: no capture group {}",
                            rule.id, p.group
                        )));
                    }
                    Some(re)
                }
            };
            let index = rules.len();
            for anchor in &rule.anchors {
                let lower = anchor.to_ascii_lowercase();
                match patterns.iter().position(|p| *p == lower) {
                    Some(p) => anchor_rules[p].push(index),
                    None => {
                        patterns.push(lower);
                        anchor_rules.push(vec![index]);
                    }
                }
            }
            rules.push(Compiled { rule, regex, pair, longest_anchor: longest });
        }
        let vendor: Vec<Vec<u8>> = patterns.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut anchor_generic = vec![false; patterns.len()];
        if set.generic {
            for anchor in generic::ANCHORS {
                match patterns.iter().position(|p| p == anchor) {
                    Some(p) => anchor_generic[p] = true,
                    None => {
                        patterns.push((*anchor).to_owned());
                        anchor_rules.push(Vec::new());
                        anchor_generic.push(true);
                    }
                }
            }
        }
        // The search reports one anchor per start (leftmost-first), so where one anchor is a prefix
        // of another (`azure` and `azure_devops_pat`, `-----BEGIN ` and `-----BEGIN PGP …`), a hit
        // on either stands for both: each carries the other's rules (their regexes decide).
        let own = anchor_rules.clone();
        let own_generic = anchor_generic.clone();
        for (i, p) in patterns.iter().enumerate() {
            for (j, q) in patterns.iter().enumerate() {
                if i != j && (q.starts_with(p.as_str()) || p.starts_with(q.as_str())) {
                    anchor_generic[i] |= own_generic[j];
                    for &r in &own[j] {
                        if !anchor_rules[i].contains(&r) {
                            anchor_rules[i].push(r);
                        }
                    }
                }
            }
            anchor_rules[i].sort_unstable();
        }
        let anchors = if patterns.is_empty() {
            None
        } else {
            Some(
                // A DFA whatever the number of anchors (left to itself the crate picks an NFA past
                // about a hundred, at two thirds of the speed): a few hundred KiB for ~200 anchors.
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostFirst)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .map_err(|e| ScanError::Rules(format!("anchors: {e}")))?,
            )
        };
        Ok(Scanner {
            rules,
            anchors,
            anchor_rules,
            anchor_generic,
            tokenward: self.rules.tokenward,
            vendor,
            baseline: self.baseline,
            key: self.key,
            set,
        })
    }
}
