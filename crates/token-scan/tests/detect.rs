//! Recall and precision per rule on a generated corpus of planted secrets and near-miss decoys;
//! GitHub checksums against vectors from an independent implementation; Tokenward tokens of any
//! prefix; chunk boundaries; allow comments and baselines; no output ever holds a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use token_core::secrecy::ExposeSecret;
use token_scan::*;
use tokenward_test_support::corpus::{Rng, decoys, github, planted};

fn scanner(generic: bool) -> Scanner {
    Scanner::builder().rules(RuleSet::builtin().with_generic(generic)).build().unwrap()
}

#[test]
fn every_rule_finds_its_planted_secrets_and_no_decoy() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let planted = planted(&mut rng);
    let decoys = decoys(&mut rng);
    let mut text = String::from("// generated corpus\nfn main() {}\n");
    for (_, line, _) in &planted {
        text.push_str(line);
        text.push_str("\n# filler line with words and numbers 1234\n");
    }
    for d in &decoys {
        text.push_str(d);
        // Far enough apart that no rule's window around one reaches the next.
        text.push_str(
            &"\n# ........................................................................".repeat(6),
        );
        text.push('\n');
    }
    let report = Scanner::new().unwrap().scan_bytes("corpus.txt", text.as_bytes());
    let mut per_rule: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (rule, _, secret) in &planted {
        let found =
            report.findings.iter().any(|f| f.rule == *rule && f.secret().expose_secret() == secret.as_str());
        let e = per_rule.entry(rule).or_default();
        e.0 += 1;
        e.1 += usize::from(found);
    }
    for (rule, (want, got)) in &per_rule {
        assert_eq!(want, got, "recall of {rule}: {got}/{want}; findings: {:#?}", report.findings);
    }
    // Precision in default mode: at most 5% of the decoys reported (by the generic detector: a
    // few rules' negatives are wrong-shaped values under a secret's name).
    let on_decoys = report.findings.len() - planted.len();
    assert!(
        on_decoys * 20 <= decoys.len(),
        "{on_decoys} of {} decoys reported: {:#?}",
        decoys.len(),
        report.findings.iter().filter(|f| f.rule == GENERIC_RULE).collect::<Vec<_>>()
    );
    let strict = scanner(false).scan_bytes("corpus.txt", text.as_bytes());
    let generic = planted.iter().filter(|p| p.0 == GENERIC_RULE).count();
    assert_eq!(strict.findings.len(), planted.len() - generic, "generic off: no decoy reported");
    for why in [
        "checksum fails",
        "documented example value",
        "access key id without a secret nearby",
        "template variable",
    ] {
        assert!(
            report.suppressed.get(why).is_some_and(|n| *n > 0),
            "suppressed as {why}: {:?}",
            report.suppressed
        );
    }
    let checksum_fails = report.suppressed["checksum fails"];
    assert!(checksum_fails >= 6, "five GitHub and one Tokenward bad checksums: {checksum_fails}");
}

#[test]
fn github_checksums_agree_with_an_independent_implementation() {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/github-tokens.json")).unwrap();
    let s = scanner(false);
    for t in v["valid"].as_array().unwrap() {
        let t = t.as_str().unwrap();
        let r = s.scan_bytes("v", format!("x = {t}\n").as_bytes());
        assert_eq!(r.findings.len(), 1, "{t:.8}… is valid");
        assert_eq!(r.findings[0].confidence, Confidence::Certain);
    }
    for t in v["invalid_checksum"].as_array().unwrap() {
        let r = s.scan_bytes("v", format!("x = {}\n", t.as_str().unwrap()).as_bytes());
        assert!(r.findings.is_empty());
        assert_eq!(r.suppressed["checksum fails"], 1);
    }
}

#[test]
fn generic_assignments_are_low_confidence_on_by_default_and_located_at_their_value() {
    let text = "api_key = \"q8Zr2LmXw9Tb4KpV7nYcA1\"\npassword = \"aaaaaaaaaaaaaaaaaaaa\"\nAPI_TOKEN=q8Zr2LmXw9Tb4KpV7nYcB2\n";
    assert!(scanner(false).scan_bytes("a", text.as_bytes()).findings.is_empty());
    let r = Scanner::new().unwrap().scan_bytes("a", text.as_bytes());
    assert_eq!(r.findings.len(), 2, "{:?}", r.findings);
    assert_eq!(
        (r.findings[0].rule.as_str(), r.findings[0].confidence),
        ("generic-assignment", Confidence::Low)
    );
    assert_eq!(r.findings[0].location.to_string(), "a:1:12");
    assert_eq!(r.findings[1].location.to_string(), "a:3:11");
}

#[test]
fn allow_comments_and_baselines_suppress_known_findings() {
    let mut rng = Rng(7);
    let a = github(&mut rng, "ghp_");
    let b = github(&mut rng, "ghs_");
    let text = format!("one = {a} # tokenward:allow\ntwo = {b}\n");
    let s = scanner(false);
    let first = s.scan_bytes("f", text.as_bytes());
    assert_eq!(first.findings.len(), 1);
    assert_eq!(first.suppressed["allow comment"], 1);
    let baseline = Baseline::parse(&Baseline::from_report(&first).to_json()).unwrap();
    let again = Scanner::builder().baseline(baseline.fingerprints().cloned()).build().unwrap();
    let second = again.scan_bytes("f", text.as_bytes());
    assert!(second.findings.is_empty());
    assert_eq!(second.suppressed["baseline"], 1);
    assert!(Baseline::parse("{\"version\":2,\"fingerprints\":[]}").is_err());
    assert!(Baseline::parse("{\"version\":1,\"fingerprints\":[\"md5:abc\"]}").is_err());
}

#[test]
fn a_secret_across_a_chunk_boundary_is_found_once_with_its_line() {
    let mut rng = Rng(11);
    let t = github(&mut rng, "ghp_");
    for shift in [0usize, 1, 20, 39, 40, 41] {
        let chunk = 4 << 20;
        let lines_before = (chunk - 30 + shift) / 100;
        let mut data = Vec::with_capacity(chunk * 2);
        for _ in 0..lines_before {
            data.extend_from_slice(&[b'x'; 99]);
            data.push(b'\n');
        }
        while data.len() < chunk - 30 + shift {
            data.push(b'y');
        }
        data.push(b' ');
        data.extend_from_slice(t.as_bytes());
        data.extend_from_slice(b"\nafter\n");
        data.resize(data.len() + (1 << 20), b'z');
        let r = scanner(false).scan_reader("big", &data[..]).unwrap();
        assert_eq!(r.findings.len(), 1, "shift {shift}");
        assert_eq!(r.findings[0].location.line(), lines_before as u64 + 1, "shift {shift}");
        assert_eq!(r.bytes, data.len() as u64);
    }
}

#[test]
fn binary_streams_are_skipped_and_reported() {
    let mut data = vec![0u8, 1, 2, 3];
    data.extend_from_slice(b"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");
    let r = scanner(false).scan_reader("blob.bin", &data[..]).unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(r.skipped.len(), 1);
    assert_eq!(r.skipped[0].reason, "binary");
}

#[test]
fn user_rules_load_from_toml_and_bad_ones_are_typed_errors() {
    let rules = RuleSet::builtin()
        .with_toml(
            r#"
[[rule]]
id = "acme-key"
description = "ACME API key"
anchors = ["acme-"]
regex = 'acme-[0-9a-f]{32}'
confidence = "high"
"#,
        )
        .unwrap();
    let s = Scanner::builder().rules(rules).build().unwrap();
    let r = s.scan_bytes("x", b"key: acme-0123456789abcdef0123456789abcdef\n");
    assert_eq!(r.findings.len(), 1);
    assert_eq!(r.findings[0].rule, "acme-key");
    assert!(matches!(RuleSet::builtin().with_toml("[[rule]]\nid = 1"), Err(ScanError::Rules(_))));
    let bad = RuleSet::empty()
        .with_toml("[[rule]]\nid='x'\ndescription='d'\nanchors=['a']\nregex='('\nconfidence='low'\n")
        .unwrap();
    let e = Scanner::builder().rules(bad).build().unwrap_err();
    assert!(e.to_string().contains("rule x"), "{e}");
    // A window wider than the overlap between chunks could split a match: refused at build.
    let wide = RuleSet::empty()
        .with_toml(
            "[[rule]]\nid='w'\ndescription='d'\nanchors=['a']\nregex='a'\nconfidence='low'\nafter=17000\n",
        )
        .unwrap();
    let e = Scanner::builder().rules(wide).build().unwrap_err();
    assert!(e.to_string().contains("rule w") && e.to_string().contains("overlap"), "{e}");
}

#[test]
fn no_output_holds_a_found_secret() {
    let mut rng = Rng(99);
    let planted = planted(&mut rng);
    let text: String = planted.iter().map(|(_, l, _)| format!("{l}\n")).collect();
    let report = scanner(true).scan_bytes("all.txt", text.as_bytes());
    assert_eq!(report.findings.len(), planted.len());
    let mut outputs = Vec::new();
    report.write_text(&mut outputs, true).unwrap();
    report.write_jsonl(&mut outputs).unwrap();
    report.write_sarif(&mut outputs, &RuleSet::builtin(), std::path::Path::new(".")).unwrap();
    outputs.extend_from_slice(format!("{report:?}").as_bytes());
    let outputs = String::from_utf8(outputs).unwrap();
    let rules = RuleSet::builtin();
    for (rule, _, secret) in &planted {
        // Every 8-character piece of the secret beyond its public prefix stays out: the rule's
        // anchor it starts with (`AGE-SECRET-KEY-1`, `sk-ant-api03-`), else up to its first
        // separator, 12 characters at most; or up to the end of an anchor it holds further on.
        let s = secret.trim();
        let anchor =
            rules.rules().iter().filter(|r| r.id == *rule).flat_map(|r| &r.anchors).fold(0, |n, a| {
                if s.len() > a.len() && s.as_bytes()[..a.len()].eq_ignore_ascii_case(a.as_bytes()) {
                    n.max(a.len())
                } else {
                    n
                }
            });
        // A secret holding its anchor past a scheme (a webhook URL: `https://` then
        // `hooks.slack.com/workflows/`) is public up to the anchor's end.
        let lower = s.to_ascii_lowercase();
        let held = rules
            .rules()
            .iter()
            .filter(|r| r.id == *rule)
            .flat_map(|r| &r.anchors)
            .filter_map(|a| lower.find(&a.to_ascii_lowercase()).filter(|&i| i > 0).map(|i| i + a.len()))
            .max();
        let start = match held {
            Some(end) => end,
            None => if anchor > 0 { anchor } else { s.find(['_', '-', '.']).map_or(0, |i| i + 1) }.min(12),
        };
        let end = s.len().saturating_sub(4);
        for w in s.as_bytes()[start.min(end)..end].windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            if w.trim().len() == 8 && !w.contains('\n') {
                assert!(!outputs.contains(w), "{rule}: a piece of its secret is in the output");
            }
        }
    }
}

#[test]
fn a_generated_corpus_is_found_whole_with_no_decoy() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = tokenward_test_support::corpus::write_corpus(dir.path(), 42, 3 << 20, 24 << 10).unwrap();
    assert!(manifest.planted.len() >= 100, "{} planted", manifest.planted.len());
    let report = Scanner::new().unwrap().scan_tree(dir.path(), &TreeOptions::default()).unwrap();
    let found: std::collections::HashSet<(String, u64, String)> = report
        .findings
        .iter()
        .map(|f| (f.location.path().to_owned(), f.location.line(), f.rule.clone()))
        .collect();
    let mut missed: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &manifest.planted {
        // A planted AWS pair is reported at its secret key, on the next line.
        let at = if p.2 == "aws-access-key" { (p.0.clone(), p.1 + 1, p.2.clone()) } else { p.clone() };
        if !found.contains(&at) {
            *missed.entry(p.2.as_str()).or_default() += 1;
        }
    }
    assert!(missed.is_empty(), "recall: missed {missed:?}");
    let decoys: std::collections::HashSet<(String, u64)> = manifest.decoys.iter().cloned().collect();
    let on_decoys = report
        .findings
        .iter()
        .filter(|f| decoys.contains(&(f.location.path().to_owned(), f.location.line())))
        .count();
    // Default mode (the generic detector on): at most 5% of the decoys reported.
    assert!(on_decoys * 20 <= decoys.len(), "{on_decoys} of {} decoys reported", decoys.len());
    assert_eq!(report.findings.len(), manifest.planted.len() + on_decoys, "nothing else reported");
}

#[test]
fn two_key_ids_then_their_two_secrets_pair_each_with_its_own() {
    let (id_a, id_b) = ("AKIAZ7QFAKE4LV2XM3PQ", "AKIAZ7QFAKE4LV2XM3PR");
    let (secret_a, secret_b) =
        ("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", "Wq7Lr2Xw9Tb4KpN8mYcZ3hQwE5rT6yU1iO0pAsDg");
    let text = format!("id_a = {id_a}\nid_b = {id_b}\nsecret_a = {secret_a}\nsecret_b = {secret_b}\n");
    let r = scanner(false).scan_bytes("keys.txt", text.as_bytes());
    let pairs: Vec<(Option<&str>, &str)> = r
        .findings
        .iter()
        .filter(|f| f.rule == "aws-access-key")
        .map(|f| (f.public_id.as_deref(), f.secret().expose_secret()))
        .collect();
    assert_eq!(pairs, [(Some(id_a), secret_a), (Some(id_b), secret_b)], "{:?}", r.findings);
}
