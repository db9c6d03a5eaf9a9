//! Token records: insert and read back, the one-active rule, queries, revoked trees, integrity
//! tags, recorded uses.

use chrono::{DateTime, TimeDelta, Utc};
use token_core::{
    IssueRequest, Issuer, Policy, Principal, Role, TokenFormat, TokenId, TokenPrefix, digest::DigestKey,
    digest::DigestKeyring, lookup::TokenRecord,
};

use super::t0;
use crate::backend::Backend;
use crate::error::StoreError;
use crate::model::TokenQuery;

/// The record key the kit's backend calls tag records under.
fn kit_key() -> crate::backend::RecordKey {
    crate::backend::RecordKey::from_bytes(&[42; 32])
}

struct Fixture {
    issuer: Issuer,
    principal: Principal,
}

fn fixture() -> Fixture {
    let policy = Policy::builder()
        .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(10)).expect("role"))
        .build()
        .expect("policy");
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("kit").expect("prefix")),
        DigestKeyring::new(DigestKey::generate(1).expect("key")),
        policy,
    );
    Fixture { issuer, principal: Principal::parse("kit-principal", ["r"]).expect("principal") }
}

fn record(
    f: &Fixture,
    purpose: &str,
    ttl: TimeDelta,
    at: DateTime<Utc>,
    replacing: Option<TokenId>,
) -> TokenRecord {
    let mut req = IssueRequest::parse(purpose, "svc:data/x:read", ttl).expect("request");
    if let Some(old) = replacing {
        req = req.replacing(old);
    }
    // The kit checks the store's rule, not the policy's: pass the policy an empty active list.
    f.issuer.issue_at(&f.principal, &req, &[], at).expect("issue").1
}

/// Insert, read back, reject a reused id.
pub async fn tokens_round_trip(b: &dyn Backend) {
    let f = fixture();
    let r = record(&f, "p", TimeDelta::hours(1), t0(), None);
    b.insert_token(&r, &kit_key(), &[]).await.expect("insert");
    let got = b.token(r.id).await.expect("read").expect("the token is there");
    assert_eq!(got.record.id, r.id);
    assert_eq!(got.record.principal, r.principal);
    assert_eq!(got.record.scopes, r.scopes);
    assert_eq!(got.record.expires_at, r.expires_at, "times survive to the millisecond");
    assert!(bool::from(got.record.digest.ct_eq(&r.digest)), "digest survives");
    assert_eq!((got.uses, got.last_used), (0, None));
    assert!(
        matches!(b.insert_token(&r, &kit_key(), &[]).await, Err(StoreError::TokenRejected(_))),
        "a reused id is rejected"
    );
    let other = record(&f, "q", TimeDelta::hours(1), t0(), None);
    assert!(b.token(other.id).await.expect("read").is_none());
}

/// The one-active-per-purpose rule is checked atomically with the insert.
pub async fn one_active_per_purpose(b: &dyn Backend) {
    let f = fixture();
    let first = record(&f, "p", TimeDelta::hours(1), t0(), None);
    b.insert_token(&first, &kit_key(), &[]).await.expect("first");
    let second = record(&f, "p", TimeDelta::hours(1), t0(), None);
    assert!(
        matches!(b.insert_token(&second, &kit_key(), &[]).await, Err(StoreError::TokenRejected(_))),
        "a second active token for the purpose must be rejected when the caller saw none"
    );
    let replacement = record(&f, "p", TimeDelta::hours(1), t0(), Some(first.id));
    b.insert_token(&replacement, &kit_key(), &[first.id]).await.expect("the replacement, seeing the first");
    let third = record(&f, "p", TimeDelta::hours(1), t0(), None);
    assert!(matches!(
        b.insert_token(&third, &kit_key(), &[first.id]).await,
        Err(StoreError::TokenRejected(_))
    ));
    // Another purpose is independent; an expired token does not count.
    b.insert_token(&record(&f, "other", TimeDelta::hours(1), t0(), None), &kit_key(), &[])
        .await
        .expect("other purpose");
    let later = t0() + TimeDelta::hours(2);
    b.insert_token(&record(&f, "p", TimeDelta::hours(1), later, None), &kit_key(), &[])
        .await
        .expect("after expiry");
}

/// Queries by principal, active, expiry window, unused-since, revoked.
pub async fn token_queries(b: &dyn Backend) {
    let f = fixture();
    let short = record(&f, "a", TimeDelta::minutes(10), t0(), None);
    let long = record(&f, "b", TimeDelta::days(3), t0(), None);
    b.insert_token(&short, &kit_key(), &[]).await.expect("insert");
    b.insert_token(&long, &kit_key(), &[]).await.expect("insert");
    let ids = |v: Vec<crate::TokenRow>| {
        let mut ids: Vec<TokenId> = v.into_iter().map(|t| t.record.id).collect();
        ids.sort();
        ids
    };
    let mut both = vec![short.id, long.id];
    both.sort();
    assert_eq!(ids(b.tokens(&TokenQuery::Principal(f.principal.id().clone())).await.expect("q")), both);
    let soon = TokenQuery::ExpiringBetween { from: t0(), until: t0() + TimeDelta::hours(1) };
    assert_eq!(ids(b.tokens(&soon).await.expect("q")), vec![short.id], "expiring within an hour");
    let active =
        TokenQuery::Active { principal: f.principal.id().clone(), purpose: short.purpose.clone(), at: t0() };
    assert_eq!(ids(b.tokens(&active).await.expect("q")), vec![short.id]);
    b.record_uses(&[(long.id, t0() + TimeDelta::minutes(5), 1)]).await.expect("uses");
    let unused = TokenQuery::UnusedSince { since: t0() + TimeDelta::minutes(1) };
    assert_eq!(ids(b.tokens(&unused).await.expect("q")), vec![short.id], "never used counts as unused");
    assert!(b.tokens(&TokenQuery::Revoked).await.expect("q").is_empty());
    assert_eq!(ids(b.tokens(&TokenQuery::Unexpired { at: t0() }).await.expect("q")), both);
    assert_eq!(
        ids(b.tokens(&TokenQuery::Unexpired { at: t0() + TimeDelta::hours(1) }).await.expect("q")),
        vec![long.id],
        "expired tokens are left out"
    );
    b.revoke_tree(short.id, t0(), &kit_key()).await.expect("revoke");
    assert_eq!(ids(b.tokens(&TokenQuery::Revoked).await.expect("q")), vec![short.id]);
    assert_eq!(ids(b.tokens(&TokenQuery::RevokedSince { since: t0() }).await.expect("q")), vec![short.id]);
    assert!(
        b.tokens(&TokenQuery::RevokedSince { since: t0() + TimeDelta::milliseconds(1) })
            .await
            .expect("q")
            .is_empty(),
        "revoked before `since`"
    );
    assert_eq!(
        ids(b.tokens(&TokenQuery::Unexpired { at: t0() }).await.expect("q")),
        both,
        "revoked but unexpired tokens are listed, so caches can say revoked"
    );
}

/// Revoking a parent revokes its descendants in one step; revoking twice keeps the first time.
pub async fn revoke_tree(b: &dyn Backend) {
    let f = fixture();
    let root = record(&f, "root", TimeDelta::hours(1), t0(), None);
    let mut child = record(&f, "child", TimeDelta::minutes(30), t0(), None);
    child.parent = Some(root.id);
    let mut grandchild = record(&f, "grandchild", TimeDelta::minutes(10), t0(), None);
    grandchild.parent = Some(child.id);
    let bystander = record(&f, "bystander", TimeDelta::hours(1), t0(), None);
    for r in [&root, &child, &grandchild, &bystander] {
        b.insert_token(r, &kit_key(), &[]).await.expect("insert");
    }
    let at = t0() + TimeDelta::minutes(1);
    let mut revoked = b.revoke_tree(root.id, at, &kit_key()).await.expect("revoke");
    revoked.sort();
    let mut want = vec![root.id, child.id, grandchild.id];
    want.sort();
    assert_eq!(revoked, want, "the whole tree, nothing else");
    for id in [root.id, child.id, grandchild.id] {
        assert_eq!(b.token(id).await.expect("read").expect("there").record.revoked_at, Some(at));
    }
    assert_eq!(b.token(bystander.id).await.expect("read").expect("there").record.revoked_at, None);
    assert!(b.revoke_tree(root.id, at + TimeDelta::minutes(1), &kit_key()).await.expect("again").is_empty());
    assert_eq!(
        b.token(root.id).await.expect("read").expect("there").record.revoked_at,
        Some(at),
        "first time kept"
    );
    let stranger = record(&f, "stranger", TimeDelta::hours(1), t0(), None);
    assert!(matches!(b.revoke_tree(stranger.id, at, &kit_key()).await, Err(StoreError::NotFound(_))));
}

/// Every record the backend returns carries the integrity tag of what it says, under the key it
/// was written with — after an insert, a tree revocation and use counting — and the unexpired
/// query (what a cache loads) returns revoked tokens too.
pub async fn records_keep_their_tags(b: &dyn Backend) {
    let f = fixture();
    let key = kit_key();
    let live = record(&f, "live", TimeDelta::hours(1), t0(), None);
    let mut limited = record(&f, "limited", TimeDelta::hours(1), t0(), None);
    limited.limits =
        token_core::lookup::UseLimits { max_uses: Some(3), idle_timeout: Some(TimeDelta::minutes(5)) };
    // A token bound to a key keeps its binding (and its tag covers it).
    limited.bound_to = Some(token_core::Thumbprint::from_bytes([0x5a; 32]));
    let revoked = record(&f, "revoked", TimeDelta::hours(1), t0(), None);
    let expired = record(&f, "expired", TimeDelta::minutes(1), t0(), None);
    for r in [&live, &limited, &revoked, &expired] {
        b.insert_token(r, &key, &[]).await.expect("insert");
    }
    b.revoke_tree(revoked.id, t0(), &key).await.expect("revoke");
    b.record_uses(&[(live.id, t0() + TimeDelta::seconds(1), 2)]).await.expect("uses");
    let loaded =
        b.tokens(&TokenQuery::Unexpired { at: t0() + TimeDelta::minutes(2) }).await.expect("unexpired");
    let mut ids: Vec<TokenId> = loaded.iter().map(|t| t.record.id).collect();
    ids.sort();
    let mut want = vec![live.id, limited.id, revoked.id];
    want.sort();
    assert_eq!(ids, want, "unexpired tokens, revoked included");
    for t in &loaded {
        key.check_token(t).expect("the stored tag checks");
        assert!(
            crate::backend::RecordKey::from_bytes(&[7; 32]).check_token(t).is_err(),
            "not under another key"
        );
        if t.record.id == revoked.id {
            assert!(t.record.revoked_at.is_some(), "the revoked record says so, under a fresh tag");
        }
        if t.record.id == limited.id {
            assert_eq!(t.record.limits, limited.limits, "limits");
            assert_eq!(t.record.bound_to, limited.bound_to, "the key binding");
        }
    }
    // A streamed load sees the same records (each tagged), and a count, if given, agrees.
    let query = TokenQuery::Unexpired { at: t0() + TimeDelta::minutes(2) };
    let mut streamed = Vec::new();
    b.visit_tokens(&query, &mut |chunk| {
        streamed.extend(chunk.into_iter().map(|t| (t.record.id, key.check_token(&t).is_ok())));
        Ok(())
    })
    .await
    .expect("visit");
    streamed.sort();
    assert_eq!(
        streamed,
        want.iter().map(|id| (*id, true)).collect::<Vec<_>>(),
        "visit_tokens agrees with tokens"
    );
    if let Some(n) = b.count_tokens(&query).await.expect("count") {
        assert_eq!(n, want.len(), "count_tokens agrees with tokens");
    }
    let stop = b.visit_tokens(&query, &mut |_| Err(StoreError::Invalid("stop".into()))).await;
    assert!(matches!(stop, Err(StoreError::Invalid(_))), "a visitor's error ends the visit: {stop:?}");
    assert_eq!(b.upgrade_token_records(&key).await.expect("upgrade"), 0, "nothing written in an older form");
}

/// Recorded uses add up; last use only moves forward; in one batch, a token given twice counts
/// both, others are untouched, and an unknown id is ignored.
pub async fn record_uses(b: &dyn Backend) {
    let f = fixture();
    let r = record(&f, "p", TimeDelta::hours(1), t0(), None);
    b.insert_token(&r, &kit_key(), &[]).await.expect("insert");
    let (t1, t2) = (t0() + TimeDelta::minutes(2), t0() + TimeDelta::minutes(1));
    b.record_uses(&[(r.id, t1, 3)]).await.expect("uses");
    b.record_uses(&[(r.id, t2, 2)]).await.expect("older uses");
    let got = b.token(r.id).await.expect("read").expect("there");
    assert_eq!((got.uses, got.last_used), (5, Some(t1)));

    let other = record(&f, "q", TimeDelta::hours(1), t0(), None);
    b.insert_token(&other, &kit_key(), &[]).await.expect("insert");
    let untouched = record(&f, "u", TimeDelta::hours(1), t0(), None);
    b.insert_token(&untouched, &kit_key(), &[]).await.expect("insert");
    let unknown = record(&f, "x", TimeDelta::hours(1), t0(), None);
    let t3 = t0() + TimeDelta::minutes(3);
    b.record_uses(&[(r.id, t2, 1), (other.id, t1, 7), (unknown.id, t3, 9), (r.id, t3, 4)])
        .await
        .expect("a batch");
    let got = b.token(r.id).await.expect("read").expect("there");
    assert_eq!((got.uses, got.last_used), (10, Some(t3)), "a token given twice in one batch counts both");
    let got = b.token(other.id).await.expect("read").expect("there");
    assert_eq!((got.uses, got.last_used), (7, Some(t1)));
    let got = b.token(untouched.id).await.expect("read").expect("there");
    assert_eq!((got.uses, got.last_used), (0, None), "a token not in the batch is untouched");
    assert!(b.token(unknown.id).await.expect("read").is_none(), "an unknown id is not created");
    b.record_uses(&[]).await.expect("an empty batch");
}
