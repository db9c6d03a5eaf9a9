//! Whether a value is a secret: base64 of text decoded first, then placeholders, paths, code
//! references, UUIDs and entropy ruled out.

use super::{Candidate, MAX_VALUE, Outcome};
use crate::validate;

#[derive(Clone, Copy, PartialEq)]
pub(super) enum Strictness {
    /// A value named a secret.
    Named,
    /// A URL's password (its place says it is one).
    Url,
}

/// The value at `s..e` judged, base64 of text decoded first.
pub(super) fn judged(data: &[u8], s: usize, e: usize, strictness: Strictness) -> Outcome {
    let v = &data[s..e];
    if v.len() > MAX_VALUE {
        return Outcome::Nothing;
    }
    let decoded = base64_text(v);
    let judged = decoded.as_deref().map_or(v, str::as_bytes);
    match judge(judged, strictness) {
        Ok(()) => Outcome::Found(Candidate { start: s, end: e, decoded }),
        Err(Some(why)) => Outcome::Suppressed(why),
        Err(None) => Outcome::Nothing,
    }
}

/// Base64 (of at least 12 characters) whose bytes are printable text of at least 6: that text.
pub(super) fn base64_text(v: &[u8]) -> Option<String> {
    if v.len() < 12
        || !v.len().is_multiple_of(4)
        || !v.iter().all(|c| c.is_ascii_alphanumeric() || b"+/=".contains(c))
    {
        return None;
    }
    let bytes = validate::base64_decode(v)?;
    (bytes.len() >= 6 && bytes.iter().all(|c| (0x20..0x7f).contains(c)))
        .then(|| String::from_utf8(bytes).ok())
        .flatten()
}

/// Words that make a value a placeholder or a demonstration when the value holds them.
pub(super) const PLACEHOLDER_WORDS: &[&[u8]] = &[
    b"fake",
    b"_test_",
    b"password",
    b"secret",
    b"token",
    b"changeit",
    b"qwerty",
    b"letmein",
    b"todo",
    b"fixme",
    b"insert",
    b"replace",
    b"localhost",
    b"abcdef",
    b"123456",
];

/// Why a value is no secret: `Err(Some(reason))` counted, `Err(None)` not worth counting (code, a
/// word, a path).
pub(super) fn judge(v: &[u8], strictness: Strictness) -> Result<(), Option<&'static str>> {
    let min_len = if strictness == Strictness::Url { 6 } else { 10 };
    if v.len() < min_len {
        return Err(None);
    }
    if let Some(why) = validate::placeholder(v) {
        return Err(Some(why));
    }
    let lower: Vec<u8> = v.to_ascii_lowercase();
    if matches!(v[0], b'$' | b'%' | b'{' | b'<' | b'[' | b'(' | b'@' | b'&' | b'*') {
        return Err(Some("template variable"));
    }
    if PLACEHOLDER_WORDS.iter().any(|w| memchr::memmem::find(&lower, w).is_some()) {
        return Err(Some("example or placeholder value"));
    }
    if memchr::memmem::find(v, b"://").is_some() || file_path(v) {
        return Err(None);
    }
    if code_reference(v) {
        return Err(None);
    }
    if uuid(v) {
        return Err(Some("uuid"));
    }
    let (mut lo, mut up, mut digit, mut other) = (0usize, 0usize, 0usize, 0usize);
    for &c in v {
        match c {
            b'a'..=b'z' => lo += 1,
            b'A'..=b'Z' => up += 1,
            b'0'..=b'9' => digit += 1,
            _ => other += 1,
        }
    }
    let classes = [lo, up, digit, other].iter().filter(|n| **n > 0).count();
    let bits = validate::entropy(v);
    let enough = match strictness {
        Strictness::Url => classes >= 2 && bits >= 2.5,
        Strictness::Named => {
            classes >= 2 && bits >= 3.0 && (digit + other >= 2 || (lo > 0 && up > 0 && bits >= 3.7))
        }
    };
    if enough { Ok(()) } else { Err(Some("low entropy")) }
}

/// A file path: absolute, relative to `.`, `..` or `~`, a Windows drive, or ending in an
/// extension after a `/`.
pub(super) fn file_path(v: &[u8]) -> bool {
    if v.starts_with(b"/") || v.starts_with(b"./") || v.starts_with(b"../") || v.starts_with(b"~/") {
        return true;
    }
    if v.len() > 2 && v[0].is_ascii_alphabetic() && v[1] == b':' && v[2] == b'\\' {
        return true;
    }
    let ext = v.iter().rposition(|c| *c == b'.').map(|i| &v[i + 1..]);
    v.contains(&b'/')
        && ext.is_some_and(|x| (1..=5).contains(&x.len()) && x.iter().all(u8::is_ascii_alphanumeric))
}

/// A dotted reference in code (`self.password`, `process.env.API_KEY`, `config.auth.token`).
pub(super) fn code_reference(v: &[u8]) -> bool {
    let mut parts = v.split(|c| *c == b'.');
    let Some(first) = parts.next() else { return false };
    // A long member name with digits and both cases is a token's body (OpenBao's `s.` + 24), not
    // a field.
    let random = |p: &[u8]| {
        p.len() >= 20
            && p.iter().any(u8::is_ascii_digit)
            && p.iter().any(u8::is_ascii_uppercase)
            && p.iter().any(u8::is_ascii_lowercase)
    };
    v.contains(&b'.')
        && !parts.any(random)
        && !first.is_empty()
        && first.iter().all(|c| c.is_ascii_lowercase() || *c == b'_')
        && v.split(|c| *c == b'.').all(|p| {
            p.first().is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
                && p.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        })
}

/// A UUID (8-4-4-4-12 hex digits).
pub(super) fn uuid(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}
