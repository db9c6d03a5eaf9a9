//! Issuing on caller-given times never panics: any TTL, `not_before`, clock value (the whole
//! calendar, its ends included), use limits and child request is either approved or refused with a
//! typed error; an approved token — issued or a child — expires after it starts and lives at most
//! `token_core::limits::MAX_TTL_CEILING` (and at most its role's, its policy's and its own TTL),
//! and a child lies within its parent's window. The issuer agrees with its policy's
//! `check_issue` / `check_child`. (The same property runs in the normal suite as
//! crates/token-core/tests/issuing_times.rs.)
#![no_main]

use libfuzzer_sys::fuzz_target;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::digest::{DigestKey, DigestKeyring};
use token_core::errors::PolicyError;
use token_core::limits::{MAX_NOT_BEFORE_AHEAD, MAX_TTL_CEILING};
use token_core::{
    ChildRequest, IssueError, IssueRequest, Issuer, Policy, Principal, Role, TokenFormat, TokenPrefix,
};

/// Reads the input as a sequence of values; past its end, zeros.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn i64(&mut self) -> i64 {
        i64::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }

    /// A duration: small (milliseconds or nanoseconds), near the ceiling, or anything.
    fn duration(&mut self) -> TimeDelta {
        let (tag, v) = (self.u8(), self.i64());
        match tag % 6 {
            0 => TimeDelta::milliseconds(v % 10_000_000),
            1 => TimeDelta::nanoseconds(v),
            2 => MAX_TTL_CEILING + TimeDelta::nanoseconds(v % 10_000_000_000),
            3 => TimeDelta::try_milliseconds(v).unwrap_or(TimeDelta::MAX),
            4 => TimeDelta::new(v, self.u32() % 1_000_000_000).unwrap_or(TimeDelta::MIN),
            _ => MAX_TTL_CEILING,
        }
    }

    /// An instant: this century, anywhere in the calendar, or near its ends.
    fn instant(&mut self) -> DateTime<Utc> {
        let (tag, v, n) = (self.u8(), self.i64(), self.u32() % 1_000_000_000);
        let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
        let span = max.timestamp() - min.timestamp() + 1;
        match tag % 4 {
            0 => DateTime::from_timestamp(1_700_000_000 + v % 1_000_000_000, n).unwrap_or(max),
            1 => DateTime::from_timestamp(min.timestamp() + v.rem_euclid(span), n).unwrap_or(max),
            2 => max.checked_sub_signed(TimeDelta::milliseconds(v.rem_euclid(1 << 34))).unwrap_or(max),
            _ => min.checked_add_signed(TimeDelta::milliseconds(v.rem_euclid(1 << 34))).unwrap_or(min),
        }
    }

    /// An instant relative to `base` (checked), or anywhere.
    fn relative(&mut self, base: DateTime<Utc>) -> DateTime<Utc> {
        if self.u8().is_multiple_of(4) {
            self.instant()
        } else {
            base.checked_add_signed(self.duration()).unwrap_or(base)
        }
    }
}

fn whole_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// An approved window ends after it starts and lives at most the ceiling; returns its length.
fn window(not_before: DateTime<Utc>, expires_at: DateTime<Utc>) -> TimeDelta {
    assert!(expires_at > not_before, "expires at {expires_at}, not after its start {not_before}");
    let life = expires_at.signed_duration_since(not_before);
    assert!(life <= MAX_TTL_CEILING, "lives {life}, above the ceiling");
    life
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let now = input.instant();
    let ttl = input.duration();
    let not_before = input.u8().is_multiple_of(2).then(|| input.relative(now));
    let role_ttl = input.duration();
    let policy_ttl = input.duration();
    let max_uses = match input.u8() % 4 {
        0 => None,
        1 => Some(0),
        _ => Some(u64::from_le_bytes(input.bytes())),
    };
    let idle = input.u8().is_multiple_of(2).then(|| input.duration());
    let child_now = input.relative(now);
    let child_ttl = input.duration();
    let child_narrow = input.u8().is_multiple_of(2);

    let role = Role::parse("r", "svc:data/**:read svc:data/**:write", role_ttl).expect("a fixed role");
    let policy = match Policy::builder().role(role).max_ttl(policy_ttl).build() {
        Ok(p) => p,
        Err(PolicyError::NotPositive { .. } | PolicyError::AboveCeiling { .. }) => {
            let ok = |d: TimeDelta| d > TimeDelta::zero() && d <= MAX_TTL_CEILING;
            assert!(!ok(role_ttl) || !ok(policy_ttl), "valid caps refused");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new("fz").expect("prefix")),
        DigestKeyring::new(DigestKey::from_bytes(1, &secrecy::SecretBox::new(Box::new([7u8; 32])))),
        policy,
    );
    let principal = Principal::parse("p", ["r"]).expect("principal");
    let mut request =
        IssueRequest::parse("svc", "svc:data/x/**:read svc:data/x/**:write", ttl).expect("a fixed request");
    if let Some(nb) = not_before {
        request = request.not_before(nb);
    }
    if let Some(n) = max_uses {
        request = request.max_uses(n);
    }
    if let Some(d) = idle {
        request = request.idle_timeout(d);
    }

    let decided_at = whole_millis(now);
    let approval = issuer.policy().check_issue(&principal, &request, &[], decided_at);
    let (token, parent) = match issuer.issue_at(&principal, &request, &[], now) {
        Ok(issued) => issued,
        Err(IssueError::Policy(v)) => {
            assert_eq!(approval, Err(v), "the issuer and its policy disagree");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let approval = approval.expect("issued, so the policy approves");
    assert_eq!((approval.not_before, approval.expires_at), (parent.not_before, parent.expires_at));
    assert_eq!(token.expires_at(), parent.expires_at);
    let life = window(parent.not_before, parent.expires_at);
    assert!(life <= ttl && life <= role_ttl && life <= policy_ttl, "lives {life}");
    assert!(parent.not_before >= decided_at, "starts before it was issued");
    let latest = decided_at.checked_add_signed(MAX_NOT_BEFORE_AHEAD);
    assert!(latest.is_some_and(|l| parent.not_before <= l), "starts too far ahead");

    let scopes = if child_narrow { "svc:data/x/y:read" } else { "svc:data/**:write" };
    let child = ChildRequest::parse("child", scopes, child_ttl).expect("a fixed child request");
    let approval = issuer.policy().check_child(&parent, &child, whole_millis(child_now));
    match issuer.issue_child_at(token.expose_secret(), &parent, &child, child_now) {
        Ok((_, record)) => {
            let approval = approval.expect("child issued, so the policy approves");
            assert_eq!((approval.not_before, approval.expires_at), (record.not_before, record.expires_at));
            let life = window(record.not_before, record.expires_at);
            assert!(life <= child_ttl, "the child lives {life}");
            assert!(record.not_before >= parent.not_before, "the child starts before its parent");
            assert!(record.expires_at <= parent.expires_at, "the child outlives its parent");
            assert_eq!(record.parent, Some(parent.id));
            assert!(child_narrow, "a child wider than its parent was issued");
        }
        Err(IssueError::Policy(v)) => {
            assert_eq!(approval, Err(v), "child: the issuer and its policy disagree")
        }
        Err(e) => panic!("child: {e}"),
    }
});
