//! Recall and precision per rule on a generated corpus of planted secrets and near-miss decoys;
//! GitHub checksums against vectors from an independent implementation; Tokenward tokens of any
//! prefix; chunk boundaries; allow comments and baselines; no output ever holds a secret.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use token_core::chrono::{TimeDelta, Utc};
use token_core::secrecy::ExposeSecret;
use token_core::{IssueRequest, Issuer, Policy, Principal, Role, TokenFormat, TokenPrefix};
use token_scan::*;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize])).collect()
    }
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

fn github(rng: &mut Rng, prefix: &str) -> String {
    // GitHub's checksum, written here independently of token-scan (vectors check both).
    let random = rng.pick(ALNUM, 30);
    let mut v = crc32fast::hash(random.as_bytes());
    let mut sum = [b'0'; 6];
    for s in sum.iter_mut().rev() {
        *s = ALNUM[(v % 62) as usize];
        v /= 62;
    }
    format!("{prefix}{random}{}", String::from_utf8(sum.to_vec()).unwrap())
}

fn tokenward(prefix: &str) -> String {
    let policy = Policy::builder()
        .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new(prefix).unwrap()),
        token_core::digest::DigestKeyring::new(token_core::digest::DigestKey::generate(1).unwrap()),
        policy,
    );
    let principal = Principal::parse("svc", ["r"]).unwrap();
    let req = IssueRequest::parse("p", "svc:data/x:read", TimeDelta::hours(1)).unwrap();
    let (t, _) = issuer.issue_at(&principal, &req, &[], Utc::now()).unwrap();
    t.expose_secret().to_owned()
}

/// (rule, line of text holding one planted secret, the secret itself).
fn planted(rng: &mut Rng) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        let t = github(rng, p);
        out.push(("github-classic", format!("GITHUB_TOKEN={t}"), t));
    }
    for prefix in ["tw", "acme_prod", "a1_b2_c3"] {
        let t = tokenward(prefix);
        out.push(("tokenward", format!("let token = \"{t}\";"), t));
    }
    let t = format!("github_pat_{}_{}", rng.pick(ALNUM, 22), rng.pick(ALNUM, 59));
    out.push(("github-fine-grained", format!("token: {t}"), t));
    let t = format!("glpat-{}", rng.pick(ALNUM, 20));
    out.push(("gitlab-pat", format!("CI_TOKEN='{t}'"), t));
    let t = format!(
        "xoxb-{}-{}-{}",
        rng.pick(b"0123456789", 12),
        rng.pick(b"0123456789", 13),
        rng.pick(ALNUM, 24)
    );
    out.push(("slack-token", format!("slack = \"{t}\""), t));
    let t = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        rng.pick(UPPER_NUM, 8),
        rng.pick(UPPER_NUM, 10),
        rng.pick(ALNUM, 24)
    );
    out.push(("slack-webhook", format!("webhook: {t}"), t));
    let t = format!("sk_live_{}", rng.pick(ALNUM, 24));
    out.push(("stripe-live-key", format!("Stripe.api_key = '{t}'"), t));
    let t = format!("rk_live_{}", rng.pick(ALNUM, 32));
    out.push(("stripe-live-key", format!("STRIPE={t}"), t));
    let t = format!("hvs.{}", rng.pick(ALNUM, 24));
    out.push(("vault-token", format!("export VAULT_TOKEN={t}"), t));
    let id = format!("AKIA{}", rng.pick(UPPER_NUM, 16));
    let secret = format!("{}/{}+{}", rng.pick(ALNUM, 20), rng.pick(ALNUM, 9), rng.pick(ALNUM, 9));
    out.push((
        "aws-access-key",
        format!("aws_access_key_id = {id}\naws_secret_access_key = {secret}"),
        secret,
    ));
    let t = rng.pick(HEX, 40);
    out.push((
        "gcp-service-account",
        format!("{{\"type\": \"service_account\", \"project_id\": \"p\", \"private_key_id\": \"{t}\"}}"),
        t,
    ));
    let t = format!("{}==", rng.pick(B64, 86));
    out.push((
        "azure-storage-connection-string",
        format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={t};EndpointSuffix=core.windows.net"
        ),
        t,
    ));
    let t = format!("{}==", rng.pick(B64, 86));
    out.push(("azure-storage-key", format!("AZURE_STORAGE_KEY=\"{t}\""), t));
    let body: Vec<String> = (0..12).map(|_| rng.pick(B64, 64)).collect();
    let body = format!("{}\n", body.join("\n"));
    out.push((
        "private-key",
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----"),
        body,
    ));
    let pw = rng.pick(ALNUM, 18);
    out.push(("database-url", format!("DATABASE_URL=postgres://app:{pw}@db.internal:5432/app"), pw));
    let pw = rng.pick(ALNUM, 14);
    out.push(("database-url", format!("url: \"mongodb+srv://svc:{pw}@cluster0.example.net/db\""), pw));
    out
}

/// Near misses: none is a finding.
fn decoys(rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..5 {
        let t = github(rng, "ghp_");
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        out.push(format!("GITHUB_TOKEN={}{last}", &t[..t.len() - 1]));
    }
    let t = tokenward("tw");
    let last = if t.ends_with('A') { 'B' } else { 'A' };
    out.push(format!("token = \"{}{last}\"", &t[..t.len() - 1]));
    out.push("aws_access_key_id = AKIAIOSFODNN7EXAMPLE".into());
    out.push("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into());
    out.push(format!("key_id = AKIA{} (no secret here)", rng.pick(UPPER_NUM, 16)));
    out.push("DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app".into());
    out.push("DATABASE_URL=postgres://app:changeme@db:5432/app".into());
    out.push("DATABASE_URL=postgres://db.internal:5432/app".into());
    out.push("stripe_key = sk_test_4eC39HqLyjWDarjtT1zdp7dc".into());
    out.push("VAULT_TOKEN=hvs.xxxxxxxxxxxxxxxxxxxxxxxxxxxx".into());
    out.push("slack = \"xoxb-your-token-here\"".into());
    out.push(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"
            .into(),
    );
    out.push("password = \"<your-password>\"".into());
    out.push("api_key = \"aaaaaaaaaaaaaaaaaaaa\"".into());
    out.push(format!("sha = \"{}\"", rng.pick(HEX, 40)));
    out.push(format!("let ident_{} = 1;", rng.pick(ALNUM, 66)));
    out
}

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
    let report = scanner(false).scan_bytes("corpus.txt", text.as_bytes());
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
    assert_eq!(report.findings.len(), planted.len(), "no decoy reported: {:#?}", report.findings);
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
fn generic_assignments_are_low_confidence_and_off_by_default() {
    let text = "api_key = \"q8Zr2LmXw9Tb4KpV7nYcA1\"\npassword = \"aaaaaaaaaaaaaaaaaaaa\"\n";
    assert!(scanner(false).scan_bytes("a", text.as_bytes()).findings.is_empty());
    let r = scanner(true).scan_bytes("a", text.as_bytes());
    assert_eq!(r.findings.len(), 1, "{:?}", r.findings);
    assert_eq!(
        (r.findings[0].rule.as_str(), r.findings[0].confidence),
        ("generic-assignment", Confidence::Low)
    );
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
    report.write_sarif(&mut outputs, &RuleSet::builtin()).unwrap();
    outputs.extend_from_slice(format!("{report:?}").as_bytes());
    let outputs = String::from_utf8(outputs).unwrap();
    for (rule, _, secret) in &planted {
        // Every 8-character piece of the secret beyond its public prefix stays out.
        let s = secret.trim();
        let start = s.find(['_', '-', '.']).map_or(0, |i| i + 1).min(12);
        for w in s.as_bytes()[start..s.len().saturating_sub(4)].windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            if w.trim().len() == 8 && !w.contains('\n') {
                assert!(!outputs.contains(w), "{rule}: a piece of its secret is in the output");
            }
        }
    }
}
