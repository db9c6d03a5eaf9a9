//! The conformance kit: the behaviour every [`Backend`] must have, as one async suite a backend's
//! own tests call. It panics with a message naming the broken rule.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use token_store::{Backend, MemoryBackend, testing};
//! testing::run_backend_suite(async || Arc::new(MemoryBackend::new()) as Arc<dyn Backend>).await;
//! # }
//! ```

// A test kit reports failures by panicking, as `assert!` does.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use token_core::{
    IssueRequest, Issuer, Policy, Principal, Role, TokenFormat, TokenId, TokenPrefix, digest::DigestKey,
    digest::DigestKeyring, lookup::TokenRecord,
};

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::StoreError;
use crate::keys::{KdfParams, KeyProvider, LocalKek, LocalKeyring};
use crate::model::{Label, LabelChange, SecretName, SecretVersion, TokenQuery};
use crate::store::SecretStore;

/// The record key the kit's backend calls tag records under.
fn kit_key() -> crate::backend::RecordKey {
    crate::backend::RecordKey::from_bytes(&[42; 32])
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").expect("time").with_timezone(&Utc)
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

/// Runs every check, each on a fresh backend from `make`.
pub async fn run_backend_suite<F>(mut make: F)
where
    F: AsyncFnMut() -> Arc<dyn Backend>,
{
    tokens_round_trip(make().await.as_ref()).await;
    one_active_per_purpose(make().await.as_ref()).await;
    token_queries(make().await.as_ref()).await;
    revoke_tree(make().await.as_ref()).await;
    record_uses(make().await.as_ref()).await;
    records_keep_their_tags(make().await.as_ref()).await;
    versions_and_labels(make().await.as_ref()).await;
    rewrap_and_meta(make().await.as_ref()).await;
    envelope_through_store(make().await).await;
    wrong_keys_and_tampering(make().await, make().await).await;
    kek_rotation(make().await).await;
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

fn sealed_version(name: &SecretName, version: u64, kek: &str) -> SecretVersion {
    SecretVersion {
        name: name.clone(),
        version,
        kek_id: kek.into(),
        wrapped_key: Sealed(vec![version as u8; 60]),
        ciphertext: Sealed(vec![7; 40]),
        created_at: t0(),
    }
}

/// Versions are dense from 1; labels move all-or-nothing by compare-and-swap.
pub async fn versions_and_labels(b: &dyn Backend) {
    let name = SecretName::new("svc/api-key").expect("name");
    assert_eq!(b.latest_version(&name).await.expect("latest"), None);
    assert!(matches!(b.insert_version(&sealed_version(&name, 2, "k")).await, Err(StoreError::Conflict(_))));
    b.insert_version(&sealed_version(&name, 1, "k")).await.expect("v1");
    assert!(matches!(b.insert_version(&sealed_version(&name, 1, "k")).await, Err(StoreError::Conflict(_))));
    b.insert_version(&sealed_version(&name, 2, "k")).await.expect("v2");
    assert_eq!(b.latest_version(&name).await.expect("latest"), Some(2));
    assert_eq!(b.version(&name, 1).await.expect("read"), Some(sealed_version(&name, 1, "k")));
    let other = SecretName::new("svc/other").expect("name");
    assert_eq!(b.latest_version(&other).await.expect("latest"), None, "names are separate");
    let before = SecretName::new("svc/a-first").expect("name");
    b.insert_version(&sealed_version(&before, 1, "k")).await.expect("v1 of another");
    let names: Vec<(String, u64)> =
        b.secret_names().await.expect("names").into_iter().map(|(n, v)| (n.as_str().to_owned(), v)).collect();
    let ours: Vec<&(String, u64)> = names.iter().filter(|(n, _)| n.starts_with("svc/")).collect();
    assert_eq!(
        ours,
        [&("svc/a-first".to_owned(), 1), &("svc/api-key".to_owned(), 2)],
        "every secret once, with its latest version, in name order"
    );

    let set = |label, expect, set| LabelChange { label, expect, set };
    b.update_labels(&name, &[set(Label::Current, None, Some(1))]).await.expect("current = 1");
    // Promote 2: pending must be nowhere, so this all-or-nothing change must fail entirely.
    let bad = [set(Label::Current, Some(1), Some(2)), set(Label::Pending, Some(2), None)];
    assert!(matches!(b.update_labels(&name, &bad).await, Err(StoreError::Conflict(_))));
    assert_eq!(
        b.labels(&name).await.expect("labels").get(&Label::Current),
        Some(&1),
        "nothing was half-applied"
    );
    b.update_labels(&name, &[set(Label::Pending, None, Some(2))]).await.expect("pending = 2");
    let promote = [
        set(Label::Current, Some(1), Some(2)),
        set(Label::Previous, None, Some(1)),
        set(Label::Pending, Some(2), None),
    ];
    b.update_labels(&name, &promote).await.expect("promote");
    let labels = b.labels(&name).await.expect("labels");
    assert_eq!(
        (labels.get(&Label::Current), labels.get(&Label::Previous), labels.get(&Label::Pending)),
        (Some(&2), Some(&1), None)
    );
    assert!(
        matches!(b.update_labels(&name, &promote).await, Err(StoreError::Conflict(_))),
        "a retried promote is refused"
    );
    assert!(
        matches!(
            b.update_labels(&name, &[set(Label::Pending, None, Some(9))]).await,
            Err(StoreError::Conflict(_))
        ),
        "a label may not point at a missing version"
    );
}

/// KEK bookkeeping and metadata compare-and-swap.
pub async fn rewrap_and_meta(b: &dyn Backend) {
    let name = SecretName::new("svc/k").expect("name");
    for v in 1..=3 {
        b.insert_version(&sealed_version(&name, v, if v == 2 { "new" } else { "old" }))
            .await
            .expect("insert");
    }
    let mut todo = b.versions_not_under("new", 10).await.expect("list");
    todo.sort();
    assert_eq!(todo, vec![(name.clone(), 1), (name.clone(), 3)]);
    assert_eq!(b.versions_not_under("new", 1).await.expect("list").len(), 1, "limit respected");
    let w = Sealed(vec![9; 60]);
    b.rewrap_version(&name, 1, "old", "new", &w).await.expect("rewrap");
    assert!(matches!(b.rewrap_version(&name, 1, "old", "new", &w).await, Err(StoreError::Conflict(_))));
    let v1 = b.version(&name, 1).await.expect("read").expect("there");
    assert_eq!((v1.kek_id.as_str(), &v1.wrapped_key, &v1.ciphertext), ("new", &w, &Sealed(vec![7; 40])));

    assert_eq!(b.meta("m").await.expect("meta"), None);
    b.set_meta("m", None, b"one").await.expect("create");
    assert!(matches!(b.set_meta("m", None, b"two").await, Err(StoreError::Conflict(_))));
    b.set_meta("m", Some(b"one"), b"two").await.expect("swap");
    assert_eq!(b.meta("m").await.expect("meta").as_deref(), Some(&b"two"[..]));
}

fn fast_kdf() -> KdfParams {
    KdfParams::generate_with(64, 1, 1).expect("params")
}

/// Sealing and opening through [`SecretStore`] on this backend.
pub async fn envelope_through_store(b: Arc<dyn Backend>) {
    let pass = secrecy::SecretString::from("correct horse battery staple");
    let store =
        SecretStore::open_with_passphrase(Arc::clone(&b), &pass, Some(fast_kdf())).await.expect("open");
    let name = SecretName::new("svc/aws").expect("name");
    let v1 = store.put(&name, b"AKIA-first").await.expect("put");
    let v2 = store.put(&name, b"AKIA-second").await.expect("put");
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(store.get(&name, 1).await.expect("get").expose_secret().as_slice(), b"AKIA-first");
    store
        .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(2) }])
        .await
        .expect("label");
    let (v, s) = store.get_labeled(&name, Label::Current).await.expect("get").expect("labelled");
    assert_eq!((v, s.expose_secret().as_slice()), (2, &b"AKIA-second"[..]));
    // Reopening with the passphrase alone finds the parameters in the store.
    let again = SecretStore::open_with_passphrase(b, &pass, None).await.expect("reopen");
    assert_eq!(again.get(&name, 2).await.expect("get").expose_secret().as_slice(), b"AKIA-second");
}

/// Wrong passphrase, wrong key, moved and flipped ciphertexts are distinct typed errors.
pub async fn wrong_keys_and_tampering(b: Arc<dyn Backend>, b2: Arc<dyn Backend>) {
    let pass = secrecy::SecretString::from("right");
    let store =
        SecretStore::open_with_passphrase(Arc::clone(&b), &pass, Some(fast_kdf())).await.expect("open");
    let wrong =
        SecretStore::open_with_passphrase(Arc::clone(&b), &secrecy::SecretString::from("wrong"), None).await;
    assert!(matches!(wrong, Err(StoreError::WrongPassphrase)), "{wrong:?}");

    let key = LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([1u8; 32]))).expect("kek");
    let _raw = SecretStore::open(Arc::clone(&b2), Arc::new(key)).await.expect("raw key store");
    let other = LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([2u8; 32]))).expect("kek");
    assert!(matches!(
        SecretStore::open(Arc::clone(&b2), Arc::new(other)).await,
        Err(StoreError::WrongKey { .. })
    ));

    let a = SecretName::new("svc/a").expect("name");
    let c = SecretName::new("svc/c").expect("name");
    store.put(&a, b"alpha-secret").await.expect("put");
    store.put(&c, b"gamma-secret").await.expect("put");
    // Flip every byte of the wrapped key in place (through the backend's re-wrap), one at a time.
    let good = b.version(&a, 1).await.expect("read").expect("there");
    let kek = good.kek_id.clone();
    for i in 0..good.wrapped_key.0.len() {
        let mut flipped = good.wrapped_key.clone();
        flipped.0[i] ^= 0x01;
        b.rewrap_version(&a, 1, &kek, &kek, &flipped).await.expect("replace in place");
        let r = store.get(&a, 1).await;
        assert!(matches!(r, Err(StoreError::Corrupted { .. })), "wrapped key byte {i}: {r:?}");
    }
    b.rewrap_version(&a, 1, &kek, &kek, &good.wrapped_key).await.expect("restore");
    // Every flipped ciphertext byte, in a copy at the next version of the same secret: fails.
    for i in 0..good.ciphertext.0.len() {
        let mut v = good.clone();
        v.version = b.latest_version(&a).await.expect("latest").unwrap_or(0) + 1;
        v.ciphertext.0[i] ^= 0x01;
        b.insert_version(&v).await.expect("insert tampered copy");
        let r = store.get(&a, v.version).await;
        assert!(matches!(r, Err(StoreError::Corrupted { .. })), "ciphertext byte {i}: {r:?}");
    }
    // An untouched ciphertext moved to another secret fails too.
    let mut moved = b.version(&c, 1).await.expect("read").expect("there");
    moved.name = a.clone();
    moved.version = b.latest_version(&a).await.expect("latest").unwrap_or(0) + 1;
    b.insert_version(&moved).await.expect("insert moved");
    assert!(
        matches!(store.get(&a, moved.version).await, Err(StoreError::Corrupted { .. })),
        "moved ciphertext opened"
    );
    assert_eq!(store.get(&a, 1).await.expect("still fine").expose_secret().as_slice(), b"alpha-secret");
}

/// Rotating the KEK re-wraps every data key, resumably, and leaves plaintext unchanged.
pub async fn kek_rotation(b: Arc<dyn Backend>) {
    let k1 = || LocalKek::from_key("k1", secrecy::SecretBox::new(Box::new([1u8; 32]))).expect("kek");
    let k2 = || LocalKek::from_key("k2", secrecy::SecretBox::new(Box::new([2u8; 32]))).expect("kek");
    let s1 = SecretStore::open(Arc::clone(&b), Arc::new(k1())).await.expect("open");
    let names: Vec<SecretName> =
        (0..5).map(|i| SecretName::new(&format!("svc/s{i}")).expect("name")).collect();
    for (i, n) in names.iter().enumerate() {
        s1.put(n, format!("value-{i}").as_bytes()).await.expect("put");
    }
    let before: Vec<Sealed> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(b.version(n, 1).await.expect("read").expect("there").ciphertext);
        }
        v
    };
    let both = || Arc::new(LocalKeyring::new(k2()).with_older(k1()));
    // The five secrets, and the store's own sealed keys (its record key).
    let total = b.versions_not_under("k2", 100).await.expect("list").len();
    assert!(total >= 5, "every version starts under k1");
    // Interrupt the rotation after two re-wraps: the error surfaces, two versions are done.
    let flaky = Arc::new(FailAfter { inner: Arc::clone(&b), rewraps_left: std::sync::Mutex::new(2) });
    let interrupted = SecretStore::open(flaky, both()).await.expect("open with both");
    assert!(
        matches!(interrupted.rotate_kek(1).await, Err(StoreError::Backend(_))),
        "the interruption surfaces"
    );
    assert_eq!(b.versions_not_under("k2", 100).await.expect("list").len(), total - 2, "two re-wrapped");
    // Resuming finishes the others.
    let s2 = SecretStore::open(Arc::clone(&b), both()).await.expect("open with both");
    let report = s2.rotate_kek(2).await.expect("rotate");
    assert_eq!(report.rewrapped, total - 2);
    assert_eq!(
        s2.rotate_kek(2).await.expect("again").rewrapped,
        0,
        "resuming a finished rotation does nothing"
    );
    for (i, n) in names.iter().enumerate() {
        let v = b.version(n, 1).await.expect("read").expect("there");
        assert_eq!(v.kek_id, "k2");
        assert_eq!(v.ciphertext, before[i], "ciphertext untouched");
    }
    // The new key alone now opens the store and every secret; the old one alone does not.
    let only_new = SecretStore::open(Arc::clone(&b), Arc::new(k2())).await.expect("new key alone");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            only_new.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
    assert!(SecretStore::open(b, Arc::new(k1())).await.is_err(), "the old KEK no longer opens the store");
}

/// A backend that fails every re-wrap after the first `rewraps_left`: an interrupted rotation.
struct FailAfter {
    inner: Arc<dyn Backend>,
    rewraps_left: std::sync::Mutex<usize>,
}

#[async_trait::async_trait]
impl Backend for FailAfter {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &crate::backend::RecordKey,
        expected_active: &[TokenId],
    ) -> crate::Result<()> {
        self.inner.insert_token(record, key, expected_active).await
    }
    async fn token(&self, id: TokenId) -> crate::Result<Option<crate::TokenRow>> {
        self.inner.token(id).await
    }
    async fn tokens(&self, query: &TokenQuery) -> crate::Result<Vec<crate::TokenRow>> {
        self.inner.tokens(query).await
    }
    async fn revoke_tree(
        &self,
        id: TokenId,
        at: DateTime<Utc>,
        key: &crate::backend::RecordKey,
    ) -> crate::Result<Vec<TokenId>> {
        self.inner.revoke_tree(id, at, key).await
    }
    async fn upgrade_token_records(&self, key: &crate::backend::RecordKey) -> crate::Result<usize> {
        self.inner.upgrade_token_records(key).await
    }
    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> crate::Result<()> {
        self.inner.record_uses(uses).await
    }
    async fn insert_version(&self, version: &SecretVersion) -> crate::Result<()> {
        self.inner.insert_version(version).await
    }
    async fn version(&self, name: &SecretName, version: u64) -> crate::Result<Option<SecretVersion>> {
        self.inner.version(name, version).await
    }
    async fn latest_version(&self, name: &SecretName) -> crate::Result<Option<u64>> {
        self.inner.latest_version(name).await
    }
    async fn secret_names(&self) -> crate::Result<Vec<(SecretName, u64)>> {
        self.inner.secret_names().await
    }
    async fn labels(&self, name: &SecretName) -> crate::Result<crate::Labels> {
        self.inner.labels(name).await
    }
    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> crate::Result<()> {
        self.inner.update_labels(name, changes).await
    }
    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> crate::Result<Vec<(SecretName, u64)>> {
        self.inner.versions_not_under(kek_id, limit).await
    }
    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> crate::Result<()> {
        {
            let mut left = self.rewraps_left.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if *left == 0 {
                return Err(StoreError::Backend("injected failure: the process died mid-rotation".into()));
            }
            *left -= 1;
        }
        self.inner.rewrap_version(name, version, expect_kek, new_kek, wrapped_key).await
    }
    async fn meta(&self, key: &str) -> crate::Result<Option<Vec<u8>>> {
        self.inner.meta(key).await
    }
    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> crate::Result<()> {
        self.inner.set_meta(key, expect, value).await
    }
}

/// The key-provider conformance kit: what every [`KeyProvider`] must do, for a tool author's
/// provider and for ours. `before` is the provider as it is; `after` the same KEK source after a
/// key rotation (a keyring with the new key and the old, a KMS key rotated and reconnected), whose
/// `current_kek` differs and which still unwraps what `before` wrapped.
///
/// Checks: a wrap round-trips; the wrap is bound to its aad (another aad is refused) and to its KEK
/// id (an unknown id is [`StoreError::UnknownKey`] or refused); tampered bytes are refused; a store
/// opened with `before` holds secrets that `after` opens; `rotate_kek` under `after` rewraps every
/// version, resumes after an interruption, and leaves the ciphertexts untouched.
pub async fn run_key_provider_suite(before: Arc<dyn KeyProvider>, after: Arc<dyn KeyProvider>) {
    use crate::envelope::SecretKey;
    assert_ne!(before.current_kek(), after.current_kek(), "the rotated provider has a new current KEK");
    let dek = SecretKey::generate().expect("a key");
    let wrapped = before.wrap(&dek, b"svc/a@1").await.expect("wrap");
    assert!(!format!("{wrapped:?}").contains(&format!("{:?}", dek.expose_secret())), "Debug shows no key");
    let back = before.unwrap(before.current_kek(), &wrapped, b"svc/a@1").await.expect("unwrap");
    assert_eq!(back.expose_secret(), dek.expose_secret(), "a wrap round-trips");
    assert!(before.unwrap(before.current_kek(), &wrapped, b"svc/b@1").await.is_err(), "bound to its aad");
    assert!(
        before.unwrap("no-such-kek", &wrapped, b"svc/a@1").await.is_err(),
        "an unknown KEK id is refused"
    );
    // A byte in the middle (the ends of a text ciphertext can be padding or unused base64 bits).
    let mut tampered = wrapped.clone();
    let mid = tampered.0.len() / 2;
    tampered.0[mid] ^= 0x01;
    assert!(
        before.unwrap(before.current_kek(), &tampered, b"svc/a@1").await.is_err(),
        "tampering is refused"
    );
    // The rotated provider still opens what the old one wrapped.
    let again =
        after.unwrap(before.current_kek(), &wrapped, b"svc/a@1").await.expect("after unwraps before's wrap");
    assert_eq!(again.expose_secret(), dek.expose_secret());

    // Through a store: secrets under `before`, read and rewrapped under `after`, resumably.
    let b: Arc<dyn Backend> = Arc::new(crate::MemoryBackend::new());
    let s1 = SecretStore::open(Arc::clone(&b), Arc::clone(&before)).await.expect("open under before");
    let names: Vec<SecretName> =
        (0..4).map(|i| SecretName::new(&format!("svc/k{i}")).expect("name")).collect();
    for (i, n) in names.iter().enumerate() {
        s1.put(n, format!("value-{i}").as_bytes()).await.expect("put");
    }
    let before_ct: Vec<Sealed> = {
        let mut v = Vec::new();
        for n in &names {
            v.push(b.version(n, 1).await.expect("read").expect("there").ciphertext);
        }
        v
    };
    let total = b.versions_not_under(after.current_kek(), 100).await.expect("list").len();
    assert!(total >= names.len());
    let flaky = Arc::new(FailAfter { inner: Arc::clone(&b), rewraps_left: std::sync::Mutex::new(1) });
    let interrupted = SecretStore::open(flaky, Arc::clone(&after)).await.expect("open under after");
    assert!(interrupted.rotate_kek(1).await.is_err(), "the interruption surfaces");
    let s2 = SecretStore::open(Arc::clone(&b), Arc::clone(&after)).await.expect("reopen under after");
    for (i, n) in names.iter().enumerate() {
        assert_eq!(
            s2.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
    let report = s2.rotate_kek(2).await.expect("resume");
    assert_eq!(report.rewrapped, total - 1, "the rest rewrapped");
    assert_eq!(b.versions_not_under(after.current_kek(), 100).await.expect("list").len(), 0);
    for (i, n) in names.iter().enumerate() {
        let v = b.version(n, 1).await.expect("read").expect("there");
        assert_eq!(v.kek_id, after.current_kek());
        assert_eq!(v.ciphertext, before_ct[i], "ciphertext untouched by a rewrap");
        assert_eq!(
            s2.get(n, 1).await.expect("get").expose_secret().as_slice(),
            format!("value-{i}").as_bytes()
        );
    }
}
