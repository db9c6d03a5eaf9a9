//! The generic detector against its vectors (`vectors/generic.json`: a positive and negatives per
//! syntax — `.env`, `export`, YAML, JSON, TOML, INI/properties, Dockerfile, Kubernetes `Secret`
//! data, Terraform, URLs, curl headers): each positive is found, in default mode, by the generic
//! rule at the value's line and column with the expected secret; no negative is reported; a value
//! a specific rule reports or whose checksum fails is not reported again; `with_generic(false)`
//! turns it off; no output holds a generic secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use token_core::secrecy::ExposeSecret;
use token_scan::*;

fn vectors() -> serde_json::Value {
    serde_json::from_str(include_str!("vectors/generic.json")).unwrap()
}

fn describe(r: &Report) -> String {
    format!(
        "{:?} (suppressed {:?})",
        r.findings.iter().map(|f| (&f.rule, &f.redacted, f.location.to_string())).collect::<Vec<_>>(),
        r.suppressed
    )
}

#[test]
fn each_positive_is_found_at_its_value_and_no_negative() {
    let scanner = Scanner::new().unwrap();
    let v = vectors();
    let mut failures = Vec::new();
    for p in v["positive"].as_array().unwrap() {
        let (format, text) = (p["format"].as_str().unwrap(), p["text"].as_str().unwrap());
        let r = scanner.scan_bytes("v", text.as_bytes());
        let ok = r.findings.len() == 1 && {
            let f = &r.findings[0];
            f.rule == GENERIC_RULE
                && f.confidence == Confidence::Low
                && f.secret().expose_secret() == p["secret"].as_str().unwrap()
                && f.location.line() == p["line"].as_u64().unwrap()
                && f.location.column() == p["column"].as_u64().unwrap()
        };
        if !ok {
            failures.push(format!("positive {format}: {}", describe(&r)));
        }
    }
    for n in v["negative"].as_array().unwrap() {
        let r = scanner.scan_bytes("v", n["text"].as_str().unwrap().as_bytes());
        if !r.findings.is_empty() {
            failures.push(format!("negative {}: {}", n["format"].as_str().unwrap(), describe(&r)));
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn generic_detection_is_on_by_default_and_can_be_turned_off() {
    let text = b"API_KEY=Vq7Lr2Xw9Tb4KpN8mYcZ3h\n";
    assert!(RuleSet::builtin().generic());
    assert_eq!(Scanner::new().unwrap().scan_bytes("a", text).findings.len(), 1);
    for off in [RuleSet::builtin().with_generic(false), RuleSet::builtin().without(&[GENERIC_RULE])] {
        assert!(!off.generic());
        let s = Scanner::builder().rules(off).build().unwrap();
        assert!(s.scan_bytes("a", text).findings.is_empty());
    }
    assert!(!RuleSet::empty().generic());
}

#[test]
fn what_a_rule_reports_or_vetoes_is_not_reported_again() {
    let scanner = Scanner::new().unwrap();
    let mut rng = tokenward_test_support::corpus::Rng(5);
    let good = tokenward_test_support::corpus::github(&mut rng, "ghp_");
    let bad = format!("{}{}", &good[..good.len() - 1], if good.ends_with('A') { 'B' } else { 'A' });
    // Reported by its own rule, once.
    let r = scanner.scan_bytes("a", format!("GITHUB_TOKEN={good}\n").as_bytes());
    assert_eq!(r.findings.len(), 1, "{}", describe(&r));
    assert_eq!(r.findings[0].rule, "github-classic");
    // A failed checksum: counted, reported by no rule, the generic one included.
    let r = scanner.scan_bytes("a", format!("GITHUB_TOKEN={bad}\nexport API_TOKEN={bad}\n").as_bytes());
    assert!(r.findings.is_empty(), "{}", describe(&r));
    assert_eq!(r.suppressed["checksum fails"], 2);
    // A database URL's password: the database rule's finding, not a second generic one.
    let r = scanner.scan_bytes("a", b"DATABASE_URL=postgres://app:Vq7Lr2Xw9Tb4KpN8mYcZ3h@db:5432/app\n");
    assert_eq!(r.findings.len(), 1, "{}", describe(&r));
    assert_eq!(r.findings[0].rule, "database-url");
}

#[test]
fn no_output_holds_a_generic_secret() {
    let scanner = Scanner::new().unwrap();
    let v = vectors();
    let mut text = String::new();
    for p in v["positive"].as_array().unwrap() {
        text.push_str(p["text"].as_str().unwrap());
    }
    let report = scanner.scan_bytes("all.txt", text.as_bytes());
    assert_eq!(report.findings.len(), v["positive"].as_array().unwrap().len(), "{}", describe(&report));
    let mut outputs = Vec::new();
    report.write_text(&mut outputs, true).unwrap();
    report.write_jsonl(&mut outputs).unwrap();
    report.write_sarif(&mut outputs, scanner.rule_set(), std::path::Path::new(".")).unwrap();
    outputs.extend_from_slice(format!("{report:?}").as_bytes());
    let outputs = String::from_utf8(outputs).unwrap();
    for p in v["positive"].as_array().unwrap() {
        let secret = p["secret"].as_str().unwrap();
        for w in secret.as_bytes()[..secret.len() - 4].windows(6) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(!outputs.contains(w), "{}: a piece of its secret is in the output", p["format"]);
        }
    }
}
