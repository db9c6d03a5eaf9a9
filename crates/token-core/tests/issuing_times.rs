//! Property test: issuing on any caller-given times never panics. Any TTL, `not_before`, clock
//! value (the whole calendar, its ends included), use limits and child request gives either an
//! approval or a typed refusal; every approved token — issued or a child — expires after it
//! starts, lives at most `limits::MAX_TTL_CEILING` (and at most its role's and its policy's cap),
//! and a child starts no earlier and ends no later than its parent. The same property is the
//! `issue_times` fuzz target (`fuzz/fuzz_targets/issue_times.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::errors::PolicyError;
use token_core::limits::{MAX_NOT_BEFORE_AHEAD, MAX_TTL_CEILING};
use token_core::*;

/// What one issue and one child request are made of.
#[derive(Clone, Debug)]
struct Times {
    now: DateTime<Utc>,
    ttl: TimeDelta,
    not_before: Option<DateTime<Utc>>,
    role_ttl: TimeDelta,
    policy_ttl: TimeDelta,
    max_uses: Option<u64>,
    idle: Option<TimeDelta>,
    child_now: DateTime<Utc>,
    child_ttl: TimeDelta,
    child_narrow: bool,
}

fn whole_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// An approved window: it ends after it starts, and lives at most the ceiling.
fn assert_window(not_before: DateTime<Utc>, expires_at: DateTime<Utc>, what: &str) -> TimeDelta {
    assert!(expires_at > not_before, "{what}: expires at {expires_at}, not after its start {not_before}");
    let life = expires_at.signed_duration_since(not_before);
    assert!(life <= MAX_TTL_CEILING, "{what}: lives {life}, above the ceiling");
    life
}

/// Checks one case; returns what was approved: (the token, its child).
fn check(t: &Times) -> (bool, bool) {
    let Ok(role) = Role::parse("r", "svc:data/**:read svc:data/**:write", t.role_ttl) else {
        return (false, false);
    };
    let policy = match Policy::builder().role(role).max_ttl(t.policy_ttl).build() {
        Ok(p) => p,
        // Out-of-range caps are typed errors at build time, and only for out-of-range caps.
        Err(PolicyError::NotPositive { .. } | PolicyError::AboveCeiling { .. }) => {
            let ok = |d: TimeDelta| d > TimeDelta::zero() && d <= MAX_TTL_CEILING;
            assert!(!ok(t.role_ttl) || !ok(t.policy_ttl), "{t:?}: valid caps refused");
            return (false, false);
        }
        Err(e) => panic!("{t:?}: {e}"),
    };
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("fz").unwrap()),
        DigestKeyring::new(DigestKey::from_bytes(1, &secrecy::SecretBox::new(Box::new([7u8; 32])))),
        policy,
    );
    let principal = Principal::parse("p", ["r"]).unwrap();
    let mut request = IssueRequest::parse("svc", "svc:data/x/**:read svc:data/x/**:write", t.ttl).unwrap();
    if let Some(nb) = t.not_before {
        request = request.not_before(nb);
    }
    if let Some(n) = t.max_uses {
        request = request.max_uses(n);
    }
    if let Some(d) = t.idle {
        request = request.idle_timeout(d);
    }
    // The policy alone, at the time the issuer decides at (whole milliseconds).
    let now = whole_millis(t.now);
    let approval = issuer.policy().check_issue(&principal, &request, &[], now);
    let (token, parent) = match issuer.issue_at(&principal, &request, &[], t.now) {
        Ok(issued) => issued,
        Err(IssueError::Policy(v)) => {
            assert_eq!(approval, Err(v), "{t:?}: the issuer and its policy disagree");
            return (false, false);
        }
        Err(e) => panic!("{t:?}: {e}"),
    };
    let approval = approval.unwrap_or_else(|v| panic!("{t:?}: issued, but the policy refuses: {v}"));
    assert_eq!((approval.not_before, approval.expires_at), (parent.not_before, parent.expires_at));
    assert_eq!(token.expires_at(), parent.expires_at);
    let life = assert_window(parent.not_before, parent.expires_at, &format!("{t:?}: issued"));
    assert!(life <= t.ttl && life <= t.role_ttl && life <= t.policy_ttl, "{t:?}: lives {life}");
    assert!(parent.not_before >= now, "{t:?}: starts before it was issued");
    let latest = now.checked_add_signed(MAX_NOT_BEFORE_AHEAD);
    assert!(latest.is_some_and(|l| parent.not_before <= l), "{t:?}: starts too far ahead");
    assert_eq!(parent.created_at, now);

    // A child of it, at another time.
    let scopes = if t.child_narrow { "svc:data/x/y:read" } else { "svc:data/**:write" };
    let child = ChildRequest::parse("child", scopes, t.child_ttl).unwrap();
    let child_now = whole_millis(t.child_now);
    let approval = issuer.policy().check_child(&parent, &child, child_now);
    match issuer.issue_child_at(token.expose_secret(), &parent, &child, t.child_now) {
        Ok((_, record)) => {
            let approval = approval.unwrap_or_else(|v| panic!("{t:?}: child issued, but refused: {v}"));
            assert_eq!((approval.not_before, approval.expires_at), (record.not_before, record.expires_at));
            let life = assert_window(record.not_before, record.expires_at, &format!("{t:?}: child"));
            assert!(life <= t.child_ttl, "{t:?}: the child lives {life}");
            assert!(record.not_before >= parent.not_before, "{t:?}: the child starts before its parent");
            assert!(record.expires_at <= parent.expires_at, "{t:?}: the child outlives its parent");
            assert_eq!(record.parent, Some(parent.id));
            assert!(t.child_narrow, "{t:?}: a child wider than its parent was issued");
            (true, true)
        }
        Err(IssueError::Policy(v)) => {
            assert_eq!(approval, Err(v), "{t:?}: child: issuer and policy disagree");
            (true, false)
        }
        Err(e) => panic!("{t:?}: child: {e}"),
    }
}

/// Times a clock may show: this century, anywhere in the calendar, or at its ends.
fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    let max = DateTime::<Utc>::MAX_UTC;
    let min = DateTime::<Utc>::MIN_UTC;
    prop_oneof![
        (1_600_000_000i64..2_000_000_000, 0u32..1_000_000_000)
            .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap()),
        (min.timestamp()..=max.timestamp(), 0u32..1_000_000_000)
            .prop_map(move |(s, n)| DateTime::from_timestamp(s, n).unwrap_or(max)),
        (0i64..200 * 86_400_000).prop_map(move |ms| max - TimeDelta::milliseconds(ms)),
        (0i64..200 * 86_400_000).prop_map(move |ms| min + TimeDelta::milliseconds(ms)),
        Just(max),
        Just(min),
    ]
}

/// Durations a caller may give: around zero, around the ceiling, or anything TimeDelta holds.
fn duration() -> impl Strategy<Value = TimeDelta> {
    let ceiling = MAX_TTL_CEILING.num_milliseconds();
    prop_oneof![
        (-2_000i64..2_000).prop_map(TimeDelta::milliseconds),
        (-1_000_000i64..1_000_000).prop_map(TimeDelta::nanoseconds),
        (1i64..=ceiling).prop_map(TimeDelta::milliseconds),
        (-5_000i64..5_000).prop_map(move |ms| TimeDelta::milliseconds(ceiling + ms)),
        (-1_000i64..1_000).prop_map(|ns| MAX_TTL_CEILING + TimeDelta::nanoseconds(ns)),
        any::<i64>().prop_map(TimeDelta::nanoseconds),
        any::<i64>().prop_map(|ms| TimeDelta::try_milliseconds(ms).unwrap_or(TimeDelta::MAX)),
        Just(TimeDelta::MAX),
        Just(TimeDelta::MIN),
    ]
}

/// A time relative to `base` (checked), or anywhere.
fn relative(base: DateTime<Utc>) -> impl Strategy<Value = DateTime<Utc>> {
    prop_oneof![
        3 => duration().prop_map(move |d| base.checked_add_signed(d).unwrap_or(base)),
        1 => instant(),
    ]
}

fn times() -> impl Strategy<Value = Times> {
    instant().prop_flat_map(|now| {
        (
            duration(),
            prop::option::of(relative(now)),
            prop_oneof![Just(MAX_TTL_CEILING), duration()],
            prop_oneof![Just(MAX_TTL_CEILING), duration()],
            prop::option::of(prop_oneof![Just(0u64), Just(1), any::<u64>()]),
            prop::option::of(duration()),
            relative(now),
            duration(),
            any::<bool>(),
        )
            .prop_map(
                move |(
                    ttl,
                    not_before,
                    role_ttl,
                    policy_ttl,
                    max_uses,
                    idle,
                    child_now,
                    child_ttl,
                    child_narrow,
                )| {
                    Times {
                        now,
                        ttl,
                        not_before,
                        role_ttl,
                        policy_ttl,
                        max_uses,
                        idle,
                        child_now,
                        child_ttl,
                        child_narrow,
                    }
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// No panic; every approval is a window that ends after it starts and within the ceiling.
    #[test]
    fn issuing_at_any_time_is_an_approval_within_the_ceiling_or_a_typed_refusal(t in times()) {
        check(&t);
    }
}

/// The property's checks can fail: a window that ends at its start, or lives past the ceiling, is
/// caught.
#[test]
#[should_panic(expected = "not after its start")]
fn an_empty_window_is_caught() {
    let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    assert_window(t, t, "empty");
}

#[test]
#[should_panic(expected = "above the ceiling")]
fn a_window_past_the_ceiling_is_caught() {
    let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    assert_window(t, t + MAX_TTL_CEILING + TimeDelta::nanoseconds(1), "long");
}

/// Issuing approves something at all (so the property is not vacuous): a plain request now, and
/// a narrower child of it.
#[test]
fn the_property_sees_approvals() {
    let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    let approved = check(&Times {
        now,
        ttl: TimeDelta::hours(1),
        not_before: Some(now + TimeDelta::minutes(5)),
        role_ttl: TimeDelta::days(1),
        policy_ttl: MAX_TTL_CEILING,
        max_uses: Some(3),
        idle: None,
        child_now: now + TimeDelta::minutes(10),
        child_ttl: TimeDelta::minutes(20),
        child_narrow: true,
    });
    assert_eq!(approved, (true, true));
}
