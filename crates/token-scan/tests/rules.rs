//! Every built-in rule against its vectors (`vectors/rules.json`, made by `vectors/rules.py`
//! independently of token-scan): the positive is found by that rule and by no other, the expected
//! secret with it (in default mode, the generic detector on, and with it off); the negative by
//! none (the rule's own judgement: the generic detector off; `tests/generic.rs` has its own
//! vectors); a rule without vectors fails. A value whose checksum fails is counted and reported
//! by no rule, the generic detector included.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use token_core::secrecy::ExposeSecret;
use token_scan::*;

struct Vector {
    rule: String,
    positive: String,
    secret: String,
    negative: String,
}

fn vectors() -> Vec<Vector> {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/rules.json")).unwrap();
    v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            rule: v["rule"].as_str().unwrap().to_owned(),
            positive: v["positive"].as_str().unwrap().to_owned(),
            secret: v["secret"].as_str().unwrap().to_owned(),
            negative: v["negative"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn scanner(generic: bool) -> Scanner {
    Scanner::builder().rules(RuleSet::builtin().with_generic(generic)).build().unwrap()
}

fn describe(r: &Report) -> String {
    format!(
        "{:?} (suppressed {:?})",
        r.findings.iter().map(|f| (&f.rule, &f.redacted)).collect::<Vec<_>>(),
        r.suppressed
    )
}

#[test]
fn every_builtin_rule_has_vectors() {
    let rules: BTreeSet<String> = RuleSet::builtin().rules().iter().map(|r| r.id.clone()).collect();
    let covered: BTreeSet<String> = vectors().into_iter().map(|v| v.rule).collect();
    let missing: Vec<_> = rules.difference(&covered).collect();
    assert!(missing.is_empty(), "built-in rules without vectors: {missing:?}");
    let unknown: Vec<_> = covered.difference(&rules).collect();
    assert!(unknown.is_empty(), "vectors of no built-in rule: {unknown:?}");
    assert!(rules.len() >= 120, "{} built-in rules", rules.len());
}

#[test]
fn each_positive_is_found_by_its_rule_alone_and_each_negative_by_none() {
    let (plain, generic) = (scanner(false), scanner(true));
    let mut failures = Vec::new();
    for v in vectors() {
        for (what, s) in [("generic off", &plain), ("default", &generic)] {
            let r = s.scan_bytes("v", format!("{}\n", v.positive).as_bytes());
            let ok = !r.findings.is_empty()
                && r.findings.iter().all(|f| f.rule == v.rule)
                && r.findings.iter().any(|f| f.secret().expose_secret() == v.secret);
            if !ok {
                failures.push(format!("{} positive ({what}): {}", v.rule, describe(&r)));
            }
        }
        let r = plain.scan_bytes("v", format!("{}\n", v.negative).as_bytes());
        if !r.findings.is_empty() {
            failures.push(format!("{} negative: {}", v.rule, describe(&r)));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn a_failed_checksum_is_counted_and_reported_by_no_rule() {
    let checksummed: BTreeSet<String> = RuleSet::builtin()
        .rules()
        .iter()
        .filter(|r| !matches!(r.validator, Validator::None | Validator::Entropy { .. }))
        .map(|r| r.id.clone())
        .collect();
    assert!(checksummed.len() >= 4, "{checksummed:?}");
    for v in vectors().into_iter().filter(|v| checksummed.contains(&v.rule)) {
        // The negatives are quoted assignments to a token-named variable: what the generic rule
        // would report, were the value not vetoed.
        let r = scanner(true).scan_bytes("v", format!("{}\n", v.negative).as_bytes());
        assert!(r.findings.is_empty(), "{}: {}", v.rule, describe(&r));
        assert_eq!(r.suppressed.get("checksum fails"), Some(&1), "{}: {:?}", v.rule, r.suppressed);
    }
}

#[test]
fn a_paired_rule_without_its_partner_is_counted_not_reported() {
    for rule in RuleSet::builtin().rules().iter().filter(|r| r.pair.is_some()) {
        let v = vectors().into_iter().find(|v| v.rule == rule.id).unwrap();
        let r = scanner(false).scan_bytes("v", format!("{}\n", v.negative).as_bytes());
        let why = &rule.pair.as_ref().unwrap().unpaired;
        assert!(
            r.findings.is_empty() && r.suppressed.get(why).is_some_and(|n| *n > 0),
            "{}: {}",
            rule.id,
            describe(&r)
        );
    }
}

#[test]
fn parsing_the_builtin_table_is_cheap() {
    // The table is parsed once per process; compiling it is what Scanner::new costs.
    let start = std::time::Instant::now();
    let s = Scanner::new().unwrap();
    let elapsed = start.elapsed();
    assert!(s.rule_set().rules().len() >= 120);
    eprintln!("Scanner::new with {} rules: {elapsed:?}", s.rule_set().rules().len());
}
