//! Issue → verify → deny, through the public API, on a manual clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use token_core::clocks::Clock;
use token_core::clocks::ManualClock;
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::errors::{PolicyError, PolicyViolation, ScopeError, TokenFormatError};
use token_core::limits::{CHECKSUM_LEN, ID_LEN, SECRET_LEN};
use token_core::lookup::{InMemoryLookup, ParsedToken};
use token_core::names::Purpose;
use token_core::*;

struct World {
    issuer: Issuer,
    tokens: Arc<InMemoryLookup>,
    verifier: Verifier<Arc<InMemoryLookup>>,
    clock: Arc<ManualClock>,
    reader: Principal,
}

fn start() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").expect("time").with_timezone(&Utc)
}

fn world() -> World {
    let policy = Policy::builder()
        .role(
            Role::parse(
                "log-reader",
                "s3:bucket/prod-logs/**:read s3:bucket/audit/*:list",
                TimeDelta::hours(1),
            )
            .unwrap(),
        )
        .role(Role::parse("log-writer", "s3:bucket/prod-logs/**:write", TimeDelta::minutes(10)).unwrap())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let format = TokenFormat::new(TokenPrefix::new("acme_prod").unwrap());
    let keys = DigestKeyring::new(DigestKey::generate(1).unwrap());
    let tokens = Arc::new(InMemoryLookup::new());
    let clock = Arc::new(ManualClock::new(start()));
    let verifier = Verifier::new(format.clone(), keys.clone(), Arc::clone(&tokens)).with_clock(clock.clone());
    World {
        issuer: Issuer::new(format, keys, policy),
        tokens,
        verifier,
        clock,
        reader: Principal::parse("billing-api", ["log-reader", "log-writer"]).unwrap(),
    }
}

fn req(s: &str) -> Request {
    Request::parse(s).unwrap()
}

impl World {
    fn issue(&self, purpose: &str, scopes: &str, ttl: TimeDelta) -> Result<IssuedToken, IssueError> {
        let r = IssueRequest::parse(purpose, scopes, ttl).unwrap();
        self.tokens.issue_at(&self.issuer, &self.reader, &r, self.clock.now())
    }
}

#[test]
fn role_definitions_are_checked() {
    // A grant must be a full scope; "s3:bucket/prod-logs/**" lacks an action.
    assert!(matches!(
        Role::parse("bad", "s3:bucket/prod-logs/**", TimeDelta::hours(1)),
        Err(PolicyError::Scope(ScopeError::WrongShape { .. }))
    ));
}

#[test]
fn least_privilege_token_allows_only_its_scope() {
    let w = world();
    let t = w.issue("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15)).unwrap();
    let d = w.verifier.verify(t.expose_secret(), &req("s3:bucket/prod-logs/app.log:read"));
    assert!(d.is_allowed(), "{d}");
    assert_eq!(d.grant().map(|g| g.principal().as_str()), Some("billing-api"));
    for out in
        ["s3:bucket/prod-logs/app.log:write", "s3:bucket/prod-logs/2026/app.log:read", "s3:bucket/other:read"]
    {
        assert_eq!(
            w.verifier.verify(t.expose_secret(), &req(out)),
            Decision::Denied(DenyReason::OutOfScope),
            "{out}"
        );
    }
}

#[test]
fn expiry_and_not_before_follow_the_clock() {
    let w = world();
    let t = w.issue("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15)).unwrap();
    let r = req("s3:bucket/prod-logs/a:read");
    w.clock.advance(TimeDelta::minutes(15) - TimeDelta::milliseconds(1));
    assert!(w.verifier.verify(t.expose_secret(), &r).is_allowed());
    w.clock.advance(TimeDelta::milliseconds(1));
    assert_eq!(
        w.verifier.verify(t.expose_secret(), &r),
        Decision::Denied(DenyReason::Expired { at: start() + TimeDelta::minutes(15) })
    );

    let later = IssueRequest::parse("deferred", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(5))
        .unwrap()
        .not_before(w.clock.now() + TimeDelta::minutes(1));
    let t2 = w.tokens.issue_at(&w.issuer, &w.reader, &later, w.clock.now()).unwrap();
    assert!(matches!(
        w.verifier.verify(t2.expose_secret(), &r).reason(),
        Some(DenyReason::NotYetValid { .. })
    ));
    w.clock.advance(TimeDelta::minutes(1));
    assert!(w.verifier.verify(t2.expose_secret(), &r).is_allowed());
    assert_eq!(t2.expires_at(), w.clock.now() + TimeDelta::minutes(5));
}

#[test]
fn wrong_secret_unknown_id_and_malformed_are_told_apart() {
    let w = world();
    let t = w.issue("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15)).unwrap();
    let r = req("s3:bucket/prod-logs/a:read");
    let text = t.expose_secret();
    let prefix_len = "acme_prod_".len();
    // Same id, another secret, with a valid checksum: only the digest can catch it.
    let forged = {
        let body = &text[prefix_len..];
        let mut secret: Vec<u8> = body.as_bytes()[ID_LEN..ID_LEN + SECRET_LEN].to_vec();
        secret[0] = if secret[0] == b'a' { b'b' } else { b'a' };
        let head = format!("acme_prod_{}{}", &body[..ID_LEN], String::from_utf8(secret).unwrap());
        with_checksum(&head)
    };
    assert_eq!(w.verifier.verify(&forged, &r), Decision::Denied(DenyReason::BadSecret));
    let unknown = with_checksum(&format!(
        "acme_prod_{}{}",
        "0".repeat(ID_LEN),
        &text[prefix_len + ID_LEN..text.len() - 6]
    ));
    assert_eq!(w.verifier.verify(&unknown, &r), Decision::Denied(DenyReason::UnknownToken));
    assert!(matches!(
        w.verifier.verify(&text[..text.len() - 1], &r).reason(),
        Some(DenyReason::Malformed(TokenFormatError::BadLength { .. }))
    ));
    let other_issuer = with_checksum(&format!("other_{}", &text[prefix_len..text.len() - 6]));
    assert!(matches!(
        w.verifier.verify(&other_issuer, &r).reason(),
        Some(DenyReason::Malformed(TokenFormatError::WrongPrefix { .. }))
    ));
}

/// CRC-32 + base62, written out here independently of the crate.
fn with_checksum(head: &str) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut v = u64::from(crc32(head.as_bytes()));
    let mut sum = [0u8; 6];
    for slot in sum.iter_mut().rev() {
        *slot = A[(v % 62) as usize];
        v /= 62;
    }
    format!("{head}{}", std::str::from_utf8(&sum).unwrap())
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn rbac_rules_refuse_with_the_rule_and_why() {
    let w = world();
    let ttl = TimeDelta::minutes(5);
    let e = w.issue("p1", "s3:bucket/secrets/*:read", ttl).unwrap_err();
    assert!(matches!(e, IssueError::Policy(PolicyViolation::ScopeNotGranted { .. })), "{e}");
    assert!(
        e.to_string().contains("no role of principal `billing-api` grants `s3:bucket/secrets/*:read`"),
        "{e}"
    );

    let e = w.issue("p2", "s3:bucket/prod-logs/*:read", TimeDelta::hours(2)).unwrap_err();
    assert_eq!(
        e,
        IssueError::Policy(PolicyViolation::TtlTooLong {
            requested_secs: 7200,
            max_secs: 3600,
            limited_by: "role `log-reader`".into()
        })
    );
    // Mixing scopes caps the TTL at the shortest justification: writes only for 10 minutes.
    let e = w
        .issue("p3", "s3:bucket/prod-logs/*:read s3:bucket/prod-logs/a:write", TimeDelta::minutes(30))
        .unwrap_err();
    assert!(matches!(e, IssueError::Policy(PolicyViolation::TtlTooLong { max_secs: 600, .. })), "{e}");

    assert_eq!(
        w.issue("p4", "s3:bucket/prod-logs/*:read", TimeDelta::zero()).unwrap_err(),
        IssueError::Policy(PolicyViolation::TtlNotPositive)
    );
    assert_eq!(w.issue("p5", "", ttl).unwrap_err(), IssueError::Policy(PolicyViolation::NoScopes));
    assert!(matches!(
        w.issue("p6", "s3:bucket/prod-logs/a:*", ttl).unwrap_err(),
        IssueError::Policy(PolicyViolation::BareWildcard { .. })
    ));

    let ghost = Principal::parse("ghost", ["no-such-role"]).unwrap();
    let r = IssueRequest::parse("p7", "s3:bucket/prod-logs/*:read", ttl).unwrap();
    assert!(matches!(
        w.tokens.issue_at(&w.issuer, &ghost, &r, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::UnknownRole(_)))
    ));
    let r0 = IssueRequest::parse("p8", "s3:bucket/prod-logs/*:read", ttl).unwrap().max_uses(0);
    assert!(matches!(
        w.tokens.issue_at(&w.issuer, &w.reader, &r0, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::BadLimit(_)))
    ));
}

#[test]
fn policy_construction_is_checked() {
    let bare = Policy::builder().role(Role::parse("admin", "*:**:*", TimeDelta::hours(1)).unwrap()).build();
    assert!(matches!(bare, Err(PolicyError::RoleGrantsBareWildcard { .. })));
    let allowed = Policy::builder()
        .allow_bare_wildcards(true)
        .role(Role::parse("admin", "*:**:*", TimeDelta::hours(1)).unwrap())
        .build();
    assert!(allowed.is_ok());
    let dup = Policy::builder()
        .role(Role::parse("r", "s:a:b", TimeDelta::hours(1)).unwrap())
        .role(Role::parse("r", "s:a:c", TimeDelta::hours(1)).unwrap())
        .build();
    assert!(matches!(dup, Err(PolicyError::DuplicateRole(_))));
    assert!(matches!(
        Policy::builder().max_ttl(TimeDelta::zero()).build(),
        Err(PolicyError::NotPositive { .. })
    ));
}

#[test]
fn one_active_token_per_purpose_except_during_rotation() {
    let w = world();
    let scopes = "s3:bucket/prod-logs/*:read";
    let first = w.issue("read-logs", scopes, TimeDelta::minutes(15)).unwrap();
    let e = w.issue("read-logs", scopes, TimeDelta::minutes(15)).unwrap_err();
    assert_eq!(
        e,
        IssueError::Policy(PolicyViolation::ActiveTokenExists {
            purpose: Purpose::new("read-logs").unwrap(),
            existing: first.id()
        })
    );
    // Rotation overlap: the replacement may coexist with the one it replaces...
    let rotate =
        IssueRequest::parse("read-logs", scopes, TimeDelta::minutes(15)).unwrap().replacing(first.id());
    let second = w.tokens.issue_at(&w.issuer, &w.reader, &rotate, w.clock.now()).unwrap();
    let r = req("s3:bucket/prod-logs/a:read");
    assert!(w.verifier.verify(first.expose_secret(), &r).is_allowed());
    assert!(w.verifier.verify(second.expose_secret(), &r).is_allowed());
    // ...but no third while two are active, even replacing one of them.
    let third =
        IssueRequest::parse("read-logs", scopes, TimeDelta::minutes(15)).unwrap().replacing(second.id());
    assert!(matches!(
        w.tokens.issue_at(&w.issuer, &w.reader, &third, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::ActiveTokenExists { .. }))
    ));
    // Once the old one is revoked, the purpose has one active token again.
    assert_eq!(w.tokens.revoke_at(first.id(), w.clock.now()), vec![first.id()]);
    assert!(matches!(
        w.verifier.verify(first.expose_secret(), &r).reason(),
        Some(DenyReason::Revoked { .. })
    ));
    assert!(w.issue("read-logs", scopes, TimeDelta::minutes(15)).is_err());
    // An expired token does not count.
    w.clock.advance(TimeDelta::minutes(16));
    assert!(w.issue("read-logs", scopes, TimeDelta::minutes(15)).is_ok());
}

#[test]
fn max_uses_and_idle_timeout() {
    let w = world();
    let r = req("s3:bucket/prod-logs/a:read");
    let limited = IssueRequest::parse("thrice", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))
        .unwrap()
        .max_uses(3);
    let t = w.tokens.issue_at(&w.issuer, &w.reader, &limited, w.clock.now()).unwrap();
    for _ in 0..3 {
        assert!(w.verifier.verify(t.expose_secret(), &r).is_allowed());
    }
    assert_eq!(
        w.verifier.verify(t.expose_secret(), &r),
        Decision::Denied(DenyReason::UsesExhausted { max_uses: 3 })
    );
    // Out-of-scope attempts do not spend uses.
    let limited = IssueRequest::parse("once", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))
        .unwrap()
        .max_uses(1);
    let t = w.tokens.issue_at(&w.issuer, &w.reader, &limited, w.clock.now()).unwrap();
    let _ = w.verifier.verify(t.expose_secret(), &req("s3:bucket/x:read"));
    assert!(w.verifier.verify(t.expose_secret(), &r).is_allowed());

    let idle = IssueRequest::parse("idle", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(50))
        .unwrap()
        .idle_timeout(TimeDelta::minutes(10));
    let t = w.tokens.issue_at(&w.issuer, &w.reader, &idle, w.clock.now()).unwrap();
    w.clock.advance(TimeDelta::minutes(9));
    assert!(w.verifier.verify(t.expose_secret(), &r).is_allowed());
    w.clock.advance(TimeDelta::minutes(9));
    assert!(w.verifier.verify(t.expose_secret(), &r).is_allowed(), "use resets the idle timer");
    w.clock.advance(TimeDelta::minutes(11));
    let since = w.clock.now() - TimeDelta::minutes(11);
    assert_eq!(w.verifier.verify(t.expose_secret(), &r), Decision::Denied(DenyReason::IdleTimeout { since }));
    // A refused idle attempt does not revive the token.
    assert!(!w.verifier.verify(t.expose_secret(), &r).is_allowed());
}

#[test]
fn children_narrow_and_die_with_their_parent() {
    let w = world();
    let parent = w.issue("read-logs", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(30)).unwrap();
    let child_req =
        ChildRequest::parse("one-file", "s3:bucket/prod-logs/2026/*:read", TimeDelta::minutes(5)).unwrap();
    let child =
        w.tokens.issue_child_at(&w.issuer, parent.expose_secret(), &child_req, w.clock.now()).unwrap();
    let grandchild_req =
        ChildRequest::parse("one-more", "s3:bucket/prod-logs/2026/a.log:read", TimeDelta::minutes(1))
            .unwrap();
    let grandchild =
        w.tokens.issue_child_at(&w.issuer, child.expose_secret(), &grandchild_req, w.clock.now()).unwrap();
    let r = req("s3:bucket/prod-logs/2026/a.log:read");
    assert!(w.verifier.verify(child.expose_secret(), &r).is_allowed());
    assert!(w.verifier.verify(grandchild.expose_secret(), &r).is_allowed());
    assert_eq!(w.tokens.get(child.id()).unwrap().parent, Some(parent.id()));

    // Attenuation only.
    let wider = ChildRequest::parse("wider", "s3:bucket/**:read", TimeDelta::minutes(5)).unwrap();
    assert!(matches!(
        w.tokens.issue_child_at(&w.issuer, parent.expose_secret(), &wider, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::ChildScopeNotSubset { .. }))
    ));
    let longer = ChildRequest::parse("longer", "s3:bucket/prod-logs/x:read", TimeDelta::minutes(31)).unwrap();
    assert!(matches!(
        w.tokens.issue_child_at(&w.issuer, parent.expose_secret(), &longer, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::ChildOutlivesParent { .. }))
    ));

    // Revoking the parent revokes the whole tree.
    let revoked = w.tokens.revoke_at(parent.id(), w.clock.now());
    assert_eq!(revoked.len(), 3);
    for t in [&parent, &child, &grandchild] {
        assert!(matches!(
            w.verifier.verify(t.expose_secret(), &r).reason(),
            Some(DenyReason::Revoked { .. })
        ));
    }
    // A revoked parent mints nothing.
    assert!(matches!(
        w.tokens.issue_child_at(&w.issuer, parent.expose_secret(), &child_req, w.clock.now()),
        Err(IssueError::Policy(PolicyViolation::ParentNotUsable(_)))
    ));
}

#[test]
fn digest_key_rotation_keeps_old_tokens_verifiable() {
    let w = world();
    let old = w.issue("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15)).unwrap();
    let new_keys = DigestKeyring::new(DigestKey::generate(2).unwrap());
    let r = req("s3:bucket/prod-logs/a:read");
    let strict = Verifier::new(w.issuer.format().clone(), new_keys.clone(), Arc::clone(&w.tokens))
        .with_clock(w.clock.clone());
    assert_eq!(
        strict.verify(old.expose_secret(), &r),
        Decision::Denied(DenyReason::UnknownDigestKey { key_id: 1 })
    );
    let both = new_keys.with_older(w.issuer.keys().current().clone());
    let v = Verifier::new(w.issuer.format().clone(), both, Arc::clone(&w.tokens)).with_clock(w.clock.clone());
    assert!(v.verify(old.expose_secret(), &r).is_allowed());
}

#[test]
fn a_planted_secret_never_reaches_debug_display_or_errors() {
    let w = world();
    let t = w.issue("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15)).unwrap();
    let text = t.expose_secret().to_owned();
    let secret_part = &text["acme_prod_".len() + ID_LEN..text.len() - CHECKSUM_LEN];
    let r = req("s3:bucket/prod-logs/a:read");
    let mut outputs = vec![
        format!("{t:?}"),
        format!("{:?}", w.tokens.get(t.id()).unwrap()),
        format!("{:?}", w.issuer),
        format!("{:?}", w.verifier),
        format!("{:?}", w.issuer.format().parse(&text).unwrap()),
        serde_json::to_string(&w.tokens.get(t.id()).unwrap()).unwrap(),
    ];
    let d = w.verifier.verify(&text, &r);
    outputs.push(format!("{d} {d:?}"));
    // Every failure path, fed the real secret.
    let attempts = [
        text[..text.len() - 1].to_owned(),
        format!("{text}x"),
        text.replace("acme_prod", "acme_dev"),
        text.replacen('A', "-", 1),
        secret_part.to_owned(),
        format!("{text}{text}"),
    ];
    for bad in &attempts {
        let d = w.verifier.verify(bad, &r);
        outputs.push(format!("{d} {d:?}"));
        if let Err(e) = ParsedToken::parse(bad) {
            outputs.push(format!("{e} {e:?}"));
        }
    }
    w.clock.advance(TimeDelta::hours(1));
    let d = w.verifier.verify(&text, &r);
    outputs.push(format!("{d} {d:?}"));
    let child = ChildRequest::parse("c", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(1)).unwrap();
    if let Err(e) = w.tokens.issue_child_at(&w.issuer, &text, &child, w.clock.now()) {
        outputs.push(format!("{e} {e:?}"));
    }
    for out in &outputs {
        assert!(!out.contains(secret_part), "secret leaked into: {out}");
        assert!(!out.contains(&secret_part[..16]), "part of the secret leaked into: {out}");
    }
}

#[test]
fn a_bound_token_needs_a_proof_by_its_key_and_mints_no_children() {
    let w = world();
    let key = Thumbprint::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
    let other = Thumbprint::from_bytes([7; 32]);
    let r = IssueRequest::parse("bound", "s3:bucket/prod-logs/*:read", TimeDelta::hours(1))
        .unwrap()
        .bound_to(key);
    let t = w.tokens.issue_at(&w.issuer, &w.reader, &r, w.clock.now()).unwrap();
    let read = req("s3:bucket/prod-logs/a:read");
    let now = w.clock.now();
    // As a bearer token: refused, whoever holds it.
    assert_eq!(
        w.verifier.verify_at(t.expose_secret(), &read, now),
        Decision::Denied(DenyReason::ProofRequired)
    );
    assert_eq!(w.verifier.verify(t.expose_secret(), &read).reason(), Some(&DenyReason::ProofRequired));
    // With a proof by its key: allowed, and the grant says which key.
    let ok = w.verifier.verify_with_proof_at(t.expose_secret(), &key, &read, now);
    assert!(ok.is_allowed(), "{ok:?}");
    assert_eq!(ok.grant().unwrap().bound_to(), Some(&key));
    // With a proof by another key: refused.
    assert_eq!(
        w.verifier.verify_with_proof_at(t.expose_secret(), &other, &read, now),
        Decision::Denied(DenyReason::WrongProofKey)
    );
    // The secret is checked first: a wrong secret with the right proof is still a bad secret.
    let mut forged = t.expose_secret().to_owned();
    forged.replace_range(forged.len() - 12..forged.len() - 11, if forged.ends_with('A') { "B" } else { "A" });
    assert!(!w.verifier.verify_with_proof_at(&forged, &key, &read, now).is_allowed());
    // Out of scope with the right proof: out of scope.
    assert_eq!(
        w.verifier.verify_with_proof_at(t.expose_secret(), &key, &req("s3:bucket/audit/a:read"), now),
        Decision::Denied(DenyReason::OutOfScope)
    );
    // Without the key, nothing of the token's state is told: revoked or not, a copy presented as
    // a bearer is `ProofRequired` (checked right after the secret).
    let other_bound = IssueRequest::parse("bound-2", "s3:bucket/prod-logs/*:read", TimeDelta::hours(1))
        .unwrap()
        .bound_to(key);
    let revoked = w.tokens.issue_at(&w.issuer, &w.reader, &other_bound, now).unwrap();
    w.tokens.revoke_at(revoked.id(), now);
    assert_eq!(
        w.verifier.verify_at(revoked.expose_secret(), &read, now).reason(),
        Some(&DenyReason::ProofRequired)
    );
    assert!(matches!(
        w.verifier.verify_with_proof_at(revoked.expose_secret(), &key, &read, now).reason(),
        Some(DenyReason::Revoked { .. })
    ));
    // Authentication (is it alive?) does not ask for the proof.
    assert!(w.verifier.authenticate_at(t.expose_secret(), now).is_allowed());
    // A bearer token presented with a proof is refused: it is bound to no key.
    let plain = w.issue("plain", "s3:bucket/prod-logs/*:read", TimeDelta::hours(1)).unwrap();
    assert!(w.verifier.verify_at(plain.expose_secret(), &read, now).is_allowed());
    assert_eq!(
        w.verifier.verify_with_proof_at(plain.expose_secret(), &key, &read, now),
        Decision::Denied(DenyReason::WrongProofKey)
    );
    // A bound token mints no children: its text alone (a thief's copy) proves no possession.
    let child_req =
        ChildRequest::parse("child", "s3:bucket/prod-logs/a:read", TimeDelta::minutes(5)).unwrap();
    assert!(matches!(
        w.tokens.issue_child_at(&w.issuer, t.expose_secret(), &child_req, now),
        Err(IssueError::Policy(PolicyViolation::ParentNotUsable(_)))
    ));
    assert_eq!(DenyReason::ProofRequired.code(), "proof_required");
    assert_eq!(DenyReason::WrongProofKey.code(), "wrong_proof_key");
}
