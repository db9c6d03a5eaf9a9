//! Property tests: scope attenuation is sound, parsers round-trip and never panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::lookup::ParsedToken;
use token_core::*;

// Small alphabets so that patterns and requests collide often; `zz` stands for "any other name".
fn part() -> impl Strategy<Value = String> {
    prop_oneof![Just("a".to_string()), Just("b".to_string()), Just("*".to_string())]
}

fn pattern() -> impl Strategy<Value = String> {
    (prop::collection::vec(prop_oneof![Just("x"), Just("y"), Just("*")], 0..4), any::<bool>()).prop_map(
        |(segs, rest)| {
            let mut segs: Vec<&str> = segs;
            if rest || segs.is_empty() {
                segs.push("**");
            }
            segs.join("/")
        },
    )
}

fn scope() -> impl Strategy<Value = Scope> {
    (part(), pattern(), part())
        .prop_map(|(s, r, a)| Scope::parse(&format!("{s}:{r}:{a}")).expect("generated scope"))
}

/// Every concrete request over the names {a, b, zz} × paths of 1..=5 segments over {x, y, zz}.
fn all_requests() -> Vec<Request> {
    let names = ["a", "b", "zz"];
    let segs = ["x", "y", "zz"];
    let mut paths: Vec<String> = segs.iter().map(|s| s.to_string()).collect();
    let mut frontier = paths.clone();
    for _ in 1..5 {
        frontier = frontier.iter().flat_map(|p| segs.iter().map(move |s| format!("{p}/{s}"))).collect();
        paths.extend(frontier.iter().cloned());
    }
    let mut out = Vec::new();
    for s in names {
        for a in names {
            for p in &paths {
                out.push(Request::parse(&format!("{s}:{p}:{a}")).expect("request"));
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Soundness: whenever A ⊆ B is claimed, every request A allows, B allows.
    #[test]
    fn subset_is_sound(a in scope(), b in scope()) {
        if a.is_subset(&b) {
            for r in all_requests() {
                prop_assert!(!a.allows(&r) || b.allows(&r), "{a} ⊆ {b} claimed, but {r} breaks it");
            }
        }
    }

    /// Sets: A ⊆ B claimed ⇒ every request allowed by A is allowed by B.
    #[test]
    fn set_subset_is_sound(a in prop::collection::vec(scope(), 0..4), b in prop::collection::vec(scope(), 0..4)) {
        let (a, b) = (ScopeSet::new(a).expect("set"), ScopeSet::new(b).expect("set"));
        if a.is_subset(&b) {
            for r in all_requests() {
                prop_assert!(!a.allows(&r) || b.allows(&r), "{a} ⊆ {b} claimed, but {r} breaks it");
            }
        }
    }

    /// Reflexive, and a scope is within the wildcard-everything scope.
    #[test]
    fn subset_is_reflexive(a in scope()) {
        prop_assert!(a.is_subset(&a));
        prop_assert!(a.is_subset(&Scope::parse("*:**:*").expect("top")));
    }

    #[test]
    fn scope_display_round_trips(a in scope()) {
        prop_assert_eq!(Scope::parse(&a.to_string()).expect("reparse"), a);
    }

    #[test]
    fn scope_parser_never_panics(s in "\\PC{0,80}") {
        let _ = Scope::parse(&s);
        let _ = Request::parse(&s);
        let _ = ScopeSet::parse(&s);
    }

    #[test]
    fn scope_parser_never_panics_on_near_misses(s in "[a-z*:/._-]{0,40}") {
        if let Ok(sc) = Scope::parse(&s) {
            prop_assert_eq!(Scope::parse(&sc.to_string()).expect("reparse"), sc);
        }
    }

    #[test]
    fn token_parser_never_panics(s in "\\PC{0,120}") {
        let _ = ParsedToken::parse(&s);
    }

    #[test]
    fn token_parser_never_panics_on_near_misses(s in "[a-z_]{1,10}_[0-9A-Za-z]{60,70}") {
        let _ = ParsedToken::parse(&s);
    }

    /// Issue → text → parse gives the same id, and any single-character change is refused.
    #[test]
    fn format_round_trip(prefix in "[a-z][a-z0-9]{0,10}(_[a-z0-9]{1,5}){0,2}", pos in 0usize..200, c in "[0-9A-Za-z_-]") {
        let format = TokenFormat::new(TokenPrefix::new(&prefix).expect("prefix"));
        let policy = Policy::builder().role(Role::parse("r", "s:a:b", chrono::TimeDelta::hours(1)).expect("role")).build().expect("policy");
        let issuer = Issuer::new(format.clone(), DigestKeyring::new(DigestKey::generate(1).expect("key")), policy);
        let principal = Principal::parse("p", ["r"]).expect("principal");
        let req = IssueRequest::parse("u", "s:a:b", chrono::TimeDelta::minutes(1)).expect("req");
        let (token, record) = issuer.issue_at(&principal, &req, &[], chrono::Utc::now()).expect("issue");
        let text = token.expose_secret();
        let parsed = format.parse(text).expect("parse");
        prop_assert_eq!(parsed.id(), token.id());
        prop_assert_eq!(parsed.id(), record.id);
        prop_assert!(bool::from(issuer.keys().current().digest_token(&parsed).ct_eq(&record.digest)));
        let pos = pos % text.len();
        let mut bytes = text.as_bytes().to_vec();
        let ch = c.as_bytes()[0];
        if bytes[pos] != ch {
            bytes[pos] = ch;
            let changed = String::from_utf8(bytes).expect("ascii");
            prop_assert!(format.parse(&changed).is_err(), "accepted a changed token at {}", pos);
        }
    }
}
