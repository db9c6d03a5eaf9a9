//! An allowed verification, queued compactly: built on the caller's thread without allocating
//! (for requests and sources that fit inline), and made into its [`AuditEvent`] on the writer's
//! thread — so the event's allocations are made and freed by one thread, where the allocator's
//! thread cache serves them, instead of allocated by every caller and freed by the writer.

use std::fmt;

use chrono::{DateTime, Utc};
use token_core::{Grant, PrincipalId, Request, TokenId};

use crate::event::{Action, Actor, AuditEvent};

const INLINE: usize = 112;
/// A source (an address and port: IPv6 in brackets with a port is at most 47 bytes).
const SOURCE_INLINE: usize = 48;

/// Short text kept inline (up to `N` bytes), longer text on the heap.
#[derive(Clone)]
enum Text<const N: usize = INLINE> {
    Inline { len: u8, bytes: [u8; N] },
    Heap(Box<str>),
}

impl<const N: usize> Text<N> {
    fn as_str(&self) -> &str {
        match self {
            // Only ever filled from `&str`s at char boundaries, so this cannot fail.
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or(""),
            Text::Heap(s) => s,
        }
    }

    fn of_str(s: &str) -> Self {
        if s.len() <= N {
            let mut bytes = [0u8; N];
            bytes[..s.len()].copy_from_slice(s.as_bytes());
            Text::Inline { len: s.len() as u8, bytes }
        } else {
            Text::Heap(s.into())
        }
    }
}

/// An allowed verification: who (the grant's principal), which token, the request and its
/// source, when. [`AllowedVerification::to_event`] is exactly the `verify_allowed` event the
/// audited verifier records.
#[derive(Clone)]
pub struct AllowedVerification {
    /// Milliseconds since the Unix epoch (made a calendar time on the writer's thread).
    time_ms: i64,
    principal: PrincipalId,
    token: TokenId,
    request: Text,
    source: Option<Text<SOURCE_INLINE>>,
}

impl fmt::Debug for AllowedVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedVerification")
            .field("time", &self.time())
            .field("principal", &self.principal.as_str())
            .field("token", &self.token)
            .field("request", &self.request.as_str())
            .field("source", &self.source.as_ref().map(Text::as_str))
            .finish()
    }
}

impl AllowedVerification {
    /// `grant` allowed `request` from `source` at `time`.
    pub fn new(time: DateTime<Utc>, grant: &Grant, request: &Request, source: Option<&str>) -> Self {
        Self::at_millis(time.timestamp_millis(), grant, request, source)
    }

    /// [`AllowedVerification::new`] at `time_ms` milliseconds since the Unix epoch.
    pub(crate) fn at_millis(time_ms: i64, grant: &Grant, request: &Request, source: Option<&str>) -> Self {
        Self {
            time_ms,
            principal: grant.principal().clone(),
            token: grant.id(),
            request: Text::of_str(request.as_str()),
            source: source.map(Text::of_str),
        }
    }

    fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.time_ms).unwrap_or_default()
    }

    /// The event: `verify_allowed` by the principal, about the token, with the request (and
    /// source).
    pub fn to_event(&self) -> AuditEvent {
        let mut e = AuditEvent::new(
            self.time(),
            Actor::Principal(self.principal.as_str().to_owned()),
            Action::VerifyAllowed,
        )
        .token(self.token)
        .attr("request", self.request.as_str());
        if let Some(s) = &self.source {
            e = e.source(s.as_str());
        }
        e
    }
}

impl AllowedVerification {
    /// Makes `e` this verification's event ([`AllowedVerification::to_event`]), reusing the
    /// strings `e` already holds: the writer keeps its batch's events and refills them, so a steady
    /// stream of allowed verifications allocates nothing once the strings have grown.
    pub(crate) fn fill(&self, e: &mut AuditEvent) {
        fn set(dst: &mut String, src: &str) {
            dst.clear();
            dst.push_str(src);
        }
        e.schema = crate::event::SCHEMA_VERSION;
        e.time = self.time();
        match &mut e.actor {
            Actor::Principal(p) => set(p, self.principal.as_str()),
            other => *other = Actor::Principal(self.principal.as_str().to_owned()),
        }
        e.action = Action::VerifyAllowed;
        e.token = Some(self.token);
        e.subject_hmac = None;
        e.outcome = crate::event::Outcome::Success;
        match (&mut e.source, &self.source) {
            (Some(dst), Some(src)) => set(dst, src.as_str()),
            (dst, src) => *dst = src.as_ref().map(|s| s.as_str().to_owned()),
        }
        let request = self.request.as_str();
        if e.attrs.len() == 1
            && let Some(v) = e.attrs.get_mut("request")
        {
            set(v, request);
            return;
        }
        e.attrs.clear();
        e.attrs.insert("request".to_owned(), request.to_owned());
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_and_long_texts_round_trip() {
        type T = Text<INLINE>;
        let short = T::of_str("s3:bucket/a:read");
        assert!(matches!(short, Text::Inline { .. }));
        assert_eq!(short.as_str(), "s3:bucket/a:read");
        let long = "x".repeat(INLINE - 3) + "éé";
        let t = T::of_str(&long);
        assert!(matches!(t, Text::Heap(_)));
        assert_eq!(t.as_str(), long);
        let exact = "y".repeat(INLINE);
        assert_eq!(T::of_str(&exact).as_str(), exact);
        let source = Text::<SOURCE_INLINE>::of_str("[2001:db8::ffff:ffff:ffff:ffff:ffff]:65535");
        assert!(matches!(source, Text::Inline { .. }));
    }

    #[test]
    fn a_refilled_event_is_the_event() {
        use crate::event::Outcome;
        use token_core::chrono::TimeDelta;
        use token_core::{
            IssueRequest, Issuer, Policy, Principal, digest::DigestKey, digest::DigestKeyring,
            lookup::InMemoryLookup,
        };
        use token_core::{Role, TokenFormat, TokenPrefix, Verifier};
        let policy = Policy::builder()
            .role(Role::parse("reader", "s3:bucket/**:read", TimeDelta::days(1)).unwrap())
            .build()
            .unwrap();
        let format = TokenFormat::new(TokenPrefix::new("acme").unwrap());
        let keys = DigestKeyring::new(DigestKey::generate(1).unwrap());
        let issuer = Issuer::new(format.clone(), keys.clone(), policy);
        let now = Utc::now();
        let req = IssueRequest::parse("p", "s3:bucket/**:read", TimeDelta::hours(1)).unwrap();
        let (token, record) =
            issuer.issue_at(&Principal::parse("billing-api", ["reader"]).unwrap(), &req, &[], now).unwrap();
        let lookup = std::sync::Arc::new(InMemoryLookup::new());
        lookup.insert(record);
        let verifier = Verifier::new(format, keys, lookup);
        let request = Request::parse("s3:bucket/a/b.log:read").unwrap();
        let token_core::Decision::Allowed(grant) = verifier.verify_at(token.expose_secret(), &request, now)
        else {
            panic!("allowed")
        };
        let with_source = AllowedVerification::new(now, &grant, &request, Some("10.0.0.7"));
        let without = AllowedVerification::new(now, &grant, &request, None);
        // Every shape an earlier event in the batch may have had.
        let mut shapes = vec![
            AuditEvent::new(now, Actor::Operator("root".into()), Action::VerifyDenied("bad_secret".into()))
                .outcome(Outcome::Failure("bad secret".into()))
                .source("elsewhere")
                .attr("request", "x")
                .attr("other", "y"),
            AuditEvent::new(now, Actor::System, Action::VerifyAllowed),
            with_source.to_event(),
            without.to_event(),
        ];
        shapes[1].subject_hmac = Some("00ff".into());
        for v in [&with_source, &without] {
            for shape in &shapes {
                let mut e = shape.clone();
                v.fill(&mut e);
                assert_eq!(e, v.to_event());
                assert_eq!(e.canonical(), v.to_event().canonical());
            }
        }
    }
}
