//! A [`Request`]: the concrete operation a verification authorises (no wildcards), parsed in one
//! pass on the common path.

#![allow(clippy::wildcard_imports)]

use super::*;

/// A concrete operation to authorise: service, resource path, action; no wildcards.
///
/// Held as its text in one allocation (`service:resource/path:action`) and the two separators'
/// positions.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Request {
    text: Box<str>,
    /// The first `:` (the service is `text[..service_end]`).
    service_end: u16,
    /// Just after the last `:` (the action is `text[action_start..]`).
    action_start: u16,
}

impl Request {
    /// Parses a concrete `service:resource:action`; wildcards are refused.
    pub fn parse(s: &str) -> Result<Self, ScopeError> {
        let (service_end, action_start) = Self::check(s)?;
        Ok(Self::from_checked(s.into(), service_end, action_start))
    }

    /// [`Request::parse`], keeping `s`'s buffer (no copy when it has no spare capacity).
    pub fn parse_owned(s: String) -> Result<Self, ScopeError> {
        let (service_end, action_start) = Self::check(&s)?;
        Ok(Self::from_checked(s.into_boxed_str(), service_end, action_start))
    }

    /// Checks `s` as a request; returns where its service ends and its action starts.
    fn check(s: &str) -> Result<(u16, u16), ScopeError> {
        // One pass accepts the well-formed; anything else gets the precise error below.
        match check_fast(s.as_bytes()) {
            Some(at) => Ok(at),
            None => Self::check_precisely(s),
        }
    }

    pub(super) fn check_precisely(s: &str) -> Result<(u16, u16), ScopeError> {
        let [svc, res, act] = split(s)?;
        // Without wildcards, `check_part` never answers `None` and `check_resource` hands out literals only.
        check_part(svc, "service", is_service_char, |c| c.is_ascii_lowercase() || c.is_ascii_digit(), false)?;
        check_part(act, "action", is_action_char, is_action_char, false)?;
        check_resource(res, false, |_| {})?;
        // MAX_SCOPE_LEN (512) bounds both.
        let service_end =
            u16::try_from(svc.1.len()).map_err(|_| ScopeError::TooLong { max: MAX_SCOPE_LEN })?;
        let action_start = u16::try_from(act.0).map_err(|_| ScopeError::TooLong { max: MAX_SCOPE_LEN })?;
        Ok((service_end, action_start))
    }

    fn from_checked(text: Box<str>, service_end: u16, action_start: u16) -> Self {
        Self { text, service_end, action_start }
    }

    /// The request's text, `service:resource/path:action` (what `Display` writes).
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The service.
    #[must_use]
    #[inline]
    pub fn service(&self) -> &str {
        self.text.get(..usize::from(self.service_end)).unwrap_or("")
    }

    /// The resource path (segments separated by `/`).
    #[must_use]
    #[inline]
    pub fn resource(&self) -> &str {
        self.text.get(usize::from(self.service_end) + 1..usize::from(self.action_start) - 1).unwrap_or("")
    }

    /// The action.
    #[must_use]
    #[inline]
    pub fn action(&self) -> &str {
        self.text.get(usize::from(self.action_start)..).unwrap_or("")
    }
}

const SERVICE_FIRST: u8 = 1;
const SERVICE: u8 = 2;
const SEGMENT: u8 = 4;
const ACTION: u8 = 8;

/// Each byte's classes (the `is_*_char` rules as one table).
const CLASSES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        let mut v = 0;
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            v |= SERVICE_FIRST;
        }
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            v |= SERVICE;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'+' | b'=' | b'-') {
            v |= SEGMENT;
        }
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            v |= ACTION;
        }
        t[c] = v;
        c += 1;
    }
    t
};

/// Accepts exactly the well-formed requests, in one pass (`None`: not well-formed, or not sure).
/// Property-tested against [`Request::check_precisely`].
#[inline]
pub(super) fn check_fast(s: &[u8]) -> Option<(u16, u16)> {
    if s.len() > MAX_SCOPE_LEN {
        return None;
    }
    let class = |b: u8| CLASSES[usize::from(b)];
    let service_end = s.iter().position(|&b| b == b':')?;
    let action_start = s.iter().rposition(|&b| b == b':')? + 1;
    let (service, resource, action) =
        (&s[..service_end], s.get(service_end + 1..action_start.checked_sub(1)?)?, &s[action_start..]);
    let (&first, rest) = service.split_first()?;
    if class(first) & SERVICE_FIRST == 0 || rest.iter().any(|&b| class(b) & SERVICE == 0) {
        return None;
    }
    if action.is_empty() || action.iter().any(|&b| class(b) & ACTION == 0) {
        return None;
    }
    // Segments: none empty, none `.` or `..`, at most MAX_SEGMENTS, each of segment characters
    // (which exclude `:`, so the resource holds no third colon).
    let (mut segments, mut len, mut dots) = (1usize, 0usize, 0usize);
    for &b in resource {
        if b == b'/' {
            if len == 0 || dots == len && len <= 2 {
                return None;
            }
            segments += 1;
            (len, dots) = (0, 0);
        } else if class(b) & SEGMENT != 0 {
            len += 1;
            dots += usize::from(b == b'.');
        } else {
            return None;
        }
    }
    if len == 0 || dots == len && len <= 2 || segments > MAX_SEGMENTS {
        return None;
    }
    Some((u16::try_from(service_end).ok()?, u16::try_from(action_start).ok()?))
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Request({self})")
    }
}

impl FromStr for Request {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}
