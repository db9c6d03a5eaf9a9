//! The scope grammar and matching, tested.

use super::request::check_fast;
use super::*;

fn s(x: &str) -> Scope {
    Scope::parse(x).unwrap_or_else(|e| panic!("{x}: {e}"))
}
fn r(x: &str) -> Request {
    Request::parse(x).unwrap_or_else(|e| panic!("{x}: {e}"))
}

#[test]
fn the_documented_examples_hold() {
    let one = s("s3:bucket/prod-logs/*:read");
    assert!(one.allows(&r("s3:bucket/prod-logs/app.log:read")));
    assert!(!one.allows(&r("s3:bucket/prod-logs/2026/app.log:read")));
    assert!(!one.allows(&r("s3:bucket/prod-logs:read")));
    assert!(!one.allows(&r("s3:bucket/prod-logs/app.log:write")));
    assert!(!one.allows(&r("ec2:bucket/prod-logs/app.log:read")));
    let rest = s("s3:bucket/prod-logs/**:read");
    assert!(rest.allows(&r("s3:bucket/prod-logs/app.log:read")));
    assert!(rest.allows(&r("s3:bucket/prod-logs/2026/app.log:read")));
    assert!(!rest.allows(&r("s3:bucket/prod-logs:read")));
    assert!(one.is_subset(&rest));
    assert!(!rest.is_subset(&one));
}

#[test]
fn a_request_is_its_text_and_its_parts() {
    let q = r("s3:bucket/prod-logs/app.log:read");
    assert_eq!((q.service(), q.resource(), q.action()), ("s3", "bucket/prod-logs/app.log", "read"));
    assert_eq!(q.as_str(), "s3:bucket/prod-logs/app.log:read");
    assert_eq!(q.to_string(), q.as_str());
    let owned =
        Request::parse_owned("s3:bucket/prod-logs/app.log:read".to_owned()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(owned, q);
    assert_ne!(r("s3:bucket/prod-logs/app.log:write"), q);
    assert_eq!(Request::parse_owned("s3:a/*:read".to_owned()), Err(ScopeError::WildcardInRequest));
    let one = r("a:b:c");
    assert_eq!((one.service(), one.resource(), one.action()), ("a", "b", "c"));
    // A resource ending where a scope's `**` needs one more segment, and a literal prefix.
    assert!(!s("s3:bucket/**:read").allows(&r("s3:bucket:read")));
    assert!(!s("s3:bucket/x:read").allows(&r("s3:bucket/xy:read")));
    assert!(!s("s3:bucket/x:read").allows(&r("s3:bucket/x/y:read")));
}

proptest::proptest! {
    #[test]
    fn the_fast_check_agrees_with_the_precise_one(s in "[a-z0-9*:./@+=_-]{0,40}|[a-z]{1,4}:[a-z.]{1,3}(/[a-z.]{1,3}){0,3}:[a-z.*]{1,3}") {
        let fast = check_fast(s.as_bytes());
        let precise = Request::check_precisely(&s).ok();
        proptest::prop_assert_eq!(fast, precise, "{}", s);
    }
}

#[test]
fn the_fast_check_refuses_what_the_precise_one_refuses() {
    for bad in [
        "", ":", "a::b", "a:b", "A:b:c", "-a:b:c", "a:b/:c", "a:/b:c", "a:./b:c", "a:b/..:c", "a:b:c:d",
        "a:b:*", "*:b:c", "a:*:c", "a:b/*:c", "a:b c:d", "a:b:",
    ] {
        assert_eq!(check_fast(bad.as_bytes()), None, "{bad}");
        assert!(Request::check_precisely(bad).is_err(), "{bad}");
    }
    let deep = format!("a:{}:c", vec!["x"; MAX_SEGMENTS + 1].join("/"));
    assert_eq!(check_fast(deep.as_bytes()), None);
    let ok = format!("a:{}:c", vec!["x"; MAX_SEGMENTS].join("/"));
    assert!(check_fast(ok.as_bytes()).is_some());
    assert_eq!(check_fast(b"s3:a/.../..x/.b:r"), Request::check_precisely("s3:a/.../..x/.b:r").ok());
}

#[test]
fn display_round_trips() {
    for x in ["s3:bucket/prod-logs/*:read", "*:**:*", "kms:key/k-1@eu=1+x:Decrypt", "svc-2:a/b/c/**:write"] {
        assert_eq!(s(x).to_string(), x);
    }
    let set = ScopeSet::parse("b:x:r  a:y:w\na:y:w").expect("set");
    assert_eq!(set.to_string(), "a:y:w b:x:r");
}

#[test]
fn malformed_scopes_are_typed_errors() {
    type Check = fn(&ScopeError) -> bool;
    let cases: &[(&str, Check)] = &[
        ("s3:bucket", |e| matches!(e, ScopeError::WrongShape { .. })),
        ("s3:a:b:c", |e| matches!(e, ScopeError::WrongShape { .. })),
        (":a:r", |e| matches!(e, ScopeError::Empty { part: "service" })),
        ("s3::r", |e| matches!(e, ScopeError::Empty { part: "resource" })),
        ("s3:a:", |e| matches!(e, ScopeError::Empty { part: "action" })),
        ("S3:a:r", |e| matches!(e, ScopeError::BadCharacter { part: "service", position: 0 })),
        ("s3:a b:r", |e| matches!(e, ScopeError::BadCharacter { part: "resource", position: 4 })),
        ("s3:a/../b:r", |e| matches!(e, ScopeError::BadSegment { index: 1 })),
        ("s3:a//b:r", |e| matches!(e, ScopeError::BadSegment { index: 1 })),
        ("s3:prod-*:r", |e| matches!(e, ScopeError::MisplacedWildcard { .. })),
        ("s3:**/a:r", |e| matches!(e, ScopeError::MisplacedWildcard { wildcard: "**", .. })),
        ("s*:a:r", |e| matches!(e, ScopeError::MisplacedWildcard { .. })),
        ("s3:a:re*d", |e| matches!(e, ScopeError::MisplacedWildcard { .. })),
        ("s3:é:r", |e| matches!(e, ScopeError::BadCharacter { .. })),
    ];
    for (input, check) in cases {
        let e = Scope::parse(input).expect_err(input);
        assert!(check(&e), "{input}: {e:?}");
    }
    let deep = format!("s3:{}:r", vec!["a"; 33].join("/"));
    assert!(matches!(Scope::parse(&deep), Err(ScopeError::TooDeep { .. })));
    let long = format!("s3:{}:r", "a".repeat(600));
    assert!(matches!(Scope::parse(&long), Err(ScopeError::TooLong { .. })));
    for wild in ["*:a:r", "s3:*:r", "s3:a/**:r", "s3:a:*"] {
        assert_eq!(Request::parse(wild), Err(ScopeError::WildcardInRequest), "{wild}");
    }
}

#[test]
fn bare_wildcards_are_recognised() {
    for bare in ["*:a:r", "s3:*:r", "s3:**:r", "s3:*/**:r", "s3:a:*"] {
        assert!(s(bare).has_bare_wildcard(), "{bare}");
    }
    for narrow in ["s3:a/*:r", "s3:a/**:r", "s3:*/a:r"] {
        assert!(!s(narrow).has_bare_wildcard(), "{narrow}");
    }
}

#[test]
fn scope_set_limits() {
    let many = (0..65).map(|i| format!("s:r{i}:a")).collect::<Vec<_>>().join(" ");
    assert!(matches!(ScopeSet::parse(&many), Err(ScopeError::TooMany { .. })));
}
