//! An allowed verification, queued compactly: built on the caller's thread without allocating
//! (for requests and sources that fit inline), and made into its [`AuditEvent`] on the writer's
//! thread — so the event's allocations are made and freed by one thread, where the allocator's
//! thread cache serves them, instead of allocated by every caller and freed by the writer.

use std::fmt::{self, Write as _};

use chrono::{DateTime, Utc};
use token_core::{Grant, PrincipalId, Request, TokenId};

use crate::event::{Action, Actor, AuditEvent};

const INLINE: usize = 120;

/// Short text kept inline, longer text on the heap.
#[derive(Clone)]
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    fn as_str(&self) -> &str {
        match self {
            // Only ever filled from `&str`s at char boundaries, so this cannot fail.
            Text::Inline { len, bytes } => std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or(""),
            Text::Heap(s) => s,
        }
    }

    fn display(d: &dyn fmt::Display) -> Self {
        let mut w = InlineWriter { len: 0, bytes: [0; INLINE], overflow: None };
        let _ = write!(w, "{d}");
        match w.overflow {
            Some(s) => Text::Heap(s.into_boxed_str()),
            None => Text::Inline { len: w.len as u8, bytes: w.bytes },
        }
    }

    fn of_str(s: &str) -> Self {
        Self::display(&s)
    }
}

struct InlineWriter {
    len: usize,
    bytes: [u8; INLINE],
    overflow: Option<String>,
}

impl fmt::Write for InlineWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(o) = &mut self.overflow {
            o.push_str(s);
        } else if self.len + s.len() <= INLINE {
            self.bytes[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut o = String::with_capacity(self.len + s.len() + 32);
            o.push_str(std::str::from_utf8(&self.bytes[..self.len]).unwrap_or(""));
            o.push_str(s);
            self.overflow = Some(o);
        }
        Ok(())
    }
}

/// An allowed verification: who (the grant's principal), which token, the request and its
/// source, when. [`AllowedVerification::to_event`] is exactly the `verify_allowed` event the
/// audited verifier records.
#[derive(Clone)]
pub struct AllowedVerification {
    time: DateTime<Utc>,
    principal: PrincipalId,
    token: TokenId,
    request: Text,
    source: Option<Text>,
}

impl fmt::Debug for AllowedVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllowedVerification")
            .field("time", &self.time)
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
        Self {
            time,
            principal: grant.principal().clone(),
            token: grant.id(),
            request: Text::display(request),
            source: source.map(Text::of_str),
        }
    }

    /// The event: `verify_allowed` by the principal, about the token, with the request (and
    /// source).
    pub fn to_event(&self) -> AuditEvent {
        let mut e = AuditEvent::new(
            self.time,
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn short_and_long_texts_round_trip() {
        let short = Text::of_str("s3:bucket/a:read");
        assert!(matches!(short, Text::Inline { .. }));
        assert_eq!(short.as_str(), "s3:bucket/a:read");
        let long = "x".repeat(INLINE - 3) + "éé";
        let t = Text::of_str(&long);
        assert!(matches!(t, Text::Heap(_)));
        assert_eq!(t.as_str(), long);
        let exact = "y".repeat(INLINE);
        assert_eq!(Text::of_str(&exact).as_str(), exact);
    }
}
