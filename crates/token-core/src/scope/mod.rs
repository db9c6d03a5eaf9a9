//! Least-privilege scopes: `<service>:<resource path>:<action>`, with explicit wildcards.
//!
//! - **service**: `[a-z0-9][a-z0-9-]*` or `*`.
//! - **resource path**: segments separated by `/`, each of `[A-Za-z0-9._@+=-]` (not `.` or `..`),
//!   or a wildcard that is a whole segment: `*` matches exactly one segment; `**`, only as the last
//!   segment, matches one or more segments.
//! - **action**: `[A-Za-z0-9._-]` or `*`.
//!
//! `s3:bucket/prod-logs/*:read` allows reading `bucket/prod-logs/app.log` but not
//! `bucket/prod-logs/2026/app.log` (one segment) nor `bucket/prod-logs` itself;
//! `s3:bucket/prod-logs/**:read` allows both of the first two.
//!
//! A [`Request`] names a concrete service, resource and action: no wildcards.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::ScopeError;

mod request;
mod set;

pub use request::Request;
pub use set::ScopeSet;

/// Longest scope or request string accepted.
pub const MAX_SCOPE_LEN: usize = 512;
/// Most resource path segments.
pub const MAX_SEGMENTS: usize = 32;
/// Most scopes in one set.
pub const MAX_SCOPES: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Part {
    Literal(Box<str>),
    Any,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Segment {
    Literal(Box<str>),
    /// `*`: exactly one segment.
    One,
    /// `**`: one or more segments; last only.
    Rest,
}

/// One grant of least privilege: a service, a resource pattern, an action.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope {
    service: Part,
    resource: Vec<Segment>,
    action: Part,
}

fn is_service_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}
fn is_segment_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'@' | b'+' | b'=' | b'-')
}
fn is_action_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-')
}

/// Splits and checks the common shape; returns the three parts with their byte offsets.
fn split(s: &str) -> Result<[(usize, &str); 3], ScopeError> {
    if s.len() > MAX_SCOPE_LEN {
        return Err(ScopeError::TooLong { max: MAX_SCOPE_LEN });
    }
    let mut parts = s.splitn(4, ':');
    let (Some(a), Some(b), Some(c), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(ScopeError::WrongShape { found: s.split(':').count().min(MAX_SCOPE_LEN) });
    };
    Ok([(0, a), (a.len() + 1, b), (a.len() + b.len() + 2, c)])
}

fn parse_part(
    at: (usize, &str),
    part: &'static str,
    allowed: fn(u8) -> bool,
    first_allowed: fn(u8) -> bool,
    wildcards: bool,
) -> Result<Part, ScopeError> {
    Ok(check_part(at, part, allowed, first_allowed, wildcards)?
        .map_or(Part::Any, |l| Part::Literal(l.into())))
}

/// Checks a service or action: `None` for `*` (when wildcards are allowed), else the literal.
fn check_part<'a>(
    (offset, text): (usize, &'a str),
    part: &'static str,
    allowed: fn(u8) -> bool,
    first_allowed: fn(u8) -> bool,
    wildcards: bool,
) -> Result<Option<&'a str>, ScopeError> {
    if text.is_empty() {
        return Err(ScopeError::Empty { part });
    }
    if text == "*" {
        return if wildcards { Ok(None) } else { Err(ScopeError::WildcardInRequest) };
    }
    for (i, &c) in text.as_bytes().iter().enumerate() {
        if c == b'*' {
            return Err(if wildcards {
                ScopeError::MisplacedWildcard { wildcard: "*", why: "a wildcard must stand alone" }
            } else {
                ScopeError::WildcardInRequest
            });
        }
        let ok = if i == 0 { first_allowed(c) } else { allowed(c) };
        if !ok {
            return Err(ScopeError::BadCharacter { part, position: offset + i });
        }
    }
    Ok(Some(text))
}

/// A checked resource path segment, borrowed.
enum SegmentRef<'a> {
    Literal(&'a str),
    One,
    Rest,
}

fn parse_resource(at: (usize, &str), wildcards: bool) -> Result<Vec<Segment>, ScopeError> {
    let mut out = Vec::with_capacity(at.1.split('/').count().min(MAX_SEGMENTS));
    check_resource(at, wildcards, |s| {
        out.push(match s {
            SegmentRef::Literal(l) => Segment::Literal(l.into()),
            SegmentRef::One => Segment::One,
            SegmentRef::Rest => Segment::Rest,
        });
    })?;
    Ok(out)
}

/// Checks a resource path, handing each segment to `each` in order.
fn check_resource<'a>(
    (offset, text): (usize, &'a str),
    wildcards: bool,
    mut each: impl FnMut(SegmentRef<'a>),
) -> Result<(), ScopeError> {
    if text.is_empty() {
        return Err(ScopeError::Empty { part: "resource" });
    }
    let count = text.split('/').count();
    if count > MAX_SEGMENTS {
        return Err(ScopeError::TooDeep { max: MAX_SEGMENTS });
    }
    let mut pos = offset;
    for (index, seg) in text.split('/').enumerate() {
        let parsed = match seg {
            "" | "." | ".." => return Err(ScopeError::BadSegment { index }),
            "*" | "**" if !wildcards => return Err(ScopeError::WildcardInRequest),
            "*" => SegmentRef::One,
            "**" if index + 1 == count => SegmentRef::Rest,
            "**" => {
                return Err(ScopeError::MisplacedWildcard {
                    wildcard: "**",
                    why: "`**` may only be the last path segment",
                });
            }
            _ => {
                for (i, &c) in seg.as_bytes().iter().enumerate() {
                    if c == b'*' {
                        return Err(if wildcards {
                            ScopeError::MisplacedWildcard {
                                wildcard: "*",
                                why: "a wildcard must be a whole path segment",
                            }
                        } else {
                            ScopeError::WildcardInRequest
                        });
                    }
                    if !is_segment_char(c) {
                        return Err(ScopeError::BadCharacter { part: "resource", position: pos + i });
                    }
                }
                SegmentRef::Literal(seg)
            }
        };
        each(parsed);
        pos += seg.len() + 1;
    }
    Ok(())
}

impl Scope {
    /// Parses `service:resource:action`.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let [svc, res, act] = split(s)?;
        Ok(Self {
            service: parse_part(
                svc,
                "service",
                is_service_char,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                true,
            )?,
            resource: parse_resource(res, true)?,
            action: parse_part(act, "action", is_action_char, is_action_char, true)?,
        })
    }

    /// Whether this scope allows `request`.
    #[must_use]
    #[inline]
    pub fn allows(&self, request: &Request) -> bool {
        part_allows(&self.service, request.service())
            && part_allows(&self.action, request.action())
            && resource_allows(&self.resource, request.resource())
    }

    /// Whether every request this scope allows is also allowed by `other` (attenuation).
    ///
    /// Sound: it never claims a subset that is not one (property-tested).
    #[must_use]
    pub fn is_subset(&self, other: &Scope) -> bool {
        part_subset(&self.service, &other.service)
            && part_subset(&self.action, &other.action)
            && resource_subset(&self.resource, &other.resource)
    }

    /// Whether a wildcard stands alone in a position: a `*` service or action, or a resource path
    /// made only of wildcards. Policies refuse these unless told otherwise.
    #[must_use]
    pub fn has_bare_wildcard(&self) -> bool {
        self.service == Part::Any
            || self.action == Part::Any
            || self.resource.iter().all(|s| !matches!(s, Segment::Literal(_)))
    }
}

/// Equality of short names without a call to `memcmp` (names here are a few bytes long, and a
/// call costs more than the comparison).
#[inline]
fn eq_short(a: &str, b: &str) -> bool {
    eq_short_bytes(a.as_bytes(), b.as_bytes())
}

#[inline]
fn eq_short_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[inline]
fn part_allows(p: &Part, v: &str) -> bool {
    match p {
        Part::Any => true,
        Part::Literal(l) => eq_short(l, v),
    }
}

fn part_subset(a: &Part, b: &Part) -> bool {
    match (a, b) {
        (_, Part::Any) => true,
        (Part::Literal(x), Part::Literal(y)) => x == y,
        (Part::Any, Part::Literal(_)) => false,
    }
}

/// The segments of a request's resource path (`/`-separated, none empty).
#[derive(Clone)]
struct Segments<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];

    #[inline]
    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match rest.iter().position(|&b| b == b'/') {
            Some(i) => {
                self.rest = Some(&rest[i + 1..]);
                Some(&rest[..i])
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }
}

#[inline]
fn resource_allows(pattern: &[Segment], path: &str) -> bool {
    let mut path = Segments { rest: Some(path.as_bytes()) };
    for seg in pattern {
        match seg {
            Segment::Rest => return path.next().is_some(),
            Segment::One => {
                if path.next().is_none() {
                    return false;
                }
            }
            Segment::Literal(l) => match path.next() {
                Some(p) if eq_short_bytes(p, l.as_bytes()) => {}
                _ => return false,
            },
        }
    }
    path.next().is_none()
}

fn segment_subset(a: &Segment, b: &Segment) -> bool {
    match (a, b) {
        (Segment::Literal(x), Segment::Literal(y)) => x == y,
        (Segment::Literal(_) | Segment::One, Segment::One) => true,
        _ => false,
    }
}

fn resource_subset(a: &[Segment], b: &[Segment]) -> bool {
    let a_rest = matches!(a.last(), Some(Segment::Rest));
    let b_rest = matches!(b.last(), Some(Segment::Rest));
    match (a_rest, b_rest) {
        // Both fixed length: same length, segment by segment.
        (false, false) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| segment_subset(x, y)),
        // `a` is unbounded, `b` is not.
        (true, false) => false,
        // `b` = prefix ‖ `**`: `a` must fix at least prefix.len() + 1 segments (its own `**`
        // counts as one or more), the first prefix.len() of them within the prefix.
        (_, true) => {
            let prefix = &b[..b.len() - 1];
            a.len() > prefix.len() && a.iter().zip(prefix).all(|(x, y)| segment_subset(x, y))
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Any => f.write_str("*"),
            Part::Literal(l) => f.write_str(l),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.service)?;
        for (i, seg) in self.resource.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            match seg {
                Segment::Literal(l) => f.write_str(l)?,
                Segment::One => f.write_str("*")?,
                Segment::Rest => f.write_str("**")?,
            }
        }
        write!(f, ":{}", self.action)
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Scope({self})")
    }
}

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Scope {
    type Error = ScopeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Scope> for String {
    fn from(s: Scope) -> String {
        s.to_string()
    }
}

#[cfg(test)]
mod tests;
