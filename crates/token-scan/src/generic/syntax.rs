//! Where a value begins and ends, in each syntax configuration is written in: assignment
//! operators, Dockerfile `ENV`/`ARG`, Terraform defaults, quoted and block values, `Authorization`
//! schemes, a URL's password, curl's `-u`.

use super::judge::{Strictness, judged};
use super::{MAX_VALUE, Outcome};

/// Where the value begins after a name at `s..e`: past an assignment operator (`=`, `:=`, `=>`,
/// a YAML or JSON `:`), or a Dockerfile `ENV`/`ARG` name's spaces, or a Terraform variable's
/// `default =`.
pub(super) fn operator(data: &[u8], s: usize, e: usize) -> Option<usize> {
    let mut p = e;
    let quoted_name = s > 0 && matches!(data[s - 1], b'"' | b'\'');
    if quoted_name && data.get(p) == Some(&data[s - 1]) {
        p += 1;
        if let Some(v) = terraform_default(data, s, p) {
            return Some(v);
        }
    }
    let spaces = skip_blanks(data, p);
    let q = spaces;
    match (data.get(q), data.get(q + 1)) {
        (Some(b':'), Some(b'=')) | (Some(b'='), Some(b'>')) => Some(skip_blanks(data, q + 2)),
        (Some(b'='), next) if !matches!(next, Some(b'=' | b'~')) => Some(skip_blanks(data, q + 1)),
        (Some(b':'), None | Some(b' ' | b'\t' | b'"' | b'\'' | b'\n' | b'\r')) => {
            Some(skip_blanks(data, q + 1))
        }
        _ if spaces > p && dockerfile_env(data, s) => Some(spaces),
        _ => None,
    }
}

pub(super) fn skip_blanks(data: &[u8], mut p: usize) -> usize {
    while p < data.len() && matches!(data[p], b' ' | b'\t') {
        p += 1;
    }
    p
}

/// Whether the name at `s` is the first word after a Dockerfile `ENV` or `ARG`.
pub(super) fn dockerfile_env(data: &[u8], s: usize) -> bool {
    let line = memchr::memrchr(b'\n', &data[..s]).map_or(0, |i| i + 1);
    let head = &data[line..s];
    let head = &head[head.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(head.len())..];
    head.len() >= 4
        && (head[..4].eq_ignore_ascii_case(b"ENV ") || head[..4].eq_ignore_ascii_case(b"ARG "))
        && head[4..].iter().all(|c| *c == b' ' || *c == b'\t')
}

/// A Terraform `variable "name" { … default = "…" … }`: where the default's value begins.
pub(super) fn terraform_default(data: &[u8], s: usize, after: usize) -> Option<usize> {
    let before = data[..s - 1].trim_ascii_end();
    if !before.ends_with(b"variable") {
        return None;
    }
    let p = skip_blanks(data, after);
    if data.get(p) != Some(&b'{') {
        return None;
    }
    let block = &data[p..data.len().min(p + 512)];
    let end = memchr::memchr(b'}', block).unwrap_or(block.len());
    let at = memchr::memmem::find(&block[..end], b"default")?;
    let q = skip_blanks(data, p + at + "default".len());
    (data.get(q) == Some(&b'=')).then(|| skip_blanks(data, q + 1))
}

/// The value starting at `p`: quoted (to its closing quote on the line), a YAML block scalar
/// (`|` or `>`: its first line), or unquoted (to a blank or a delimiter; a value followed by `(`
/// or `[` is code, not a value).
pub(super) fn value(data: &[u8], p: usize) -> Option<(usize, usize)> {
    let &c = data.get(p)?;
    if matches!(c, b'"' | b'\'' | b'`') {
        let rest = &data[p + 1..data.len().min(p + 1 + MAX_VALUE + 1)];
        let close = rest.iter().position(|x| *x == c || *x == b'\n')?;
        return (rest[close] == c && close > 0).then_some((p + 1, p + 1 + close));
    }
    if matches!(c, b'|' | b'>') {
        let eol = memchr::memchr(b'\n', &data[p..]).map(|i| p + i)?;
        if !data[p + 1..eol].iter().all(|x| matches!(x, b'-' | b'+' | b' ' | b'\t' | b'\r' | b'0'..=b'9')) {
            return None;
        }
        let s = skip_blanks(data, eol + 1);
        let line_end = memchr::memchr(b'\n', &data[s..]).map_or(data.len(), |i| s + i);
        let line = data[s..line_end].trim_ascii_end();
        return (!line.is_empty() && !line.iter().any(u8::is_ascii_whitespace))
            .then_some((s, s + line.len()));
    }
    let mut e = p;
    while e < data.len()
        && e - p <= MAX_VALUE
        && !data[e].is_ascii_whitespace()
        && !matches!(data[e], b'"' | b'\'' | b'`' | b',' | b';' | b'(' | b')' | b'[' | b']' | b'{' | b'}')
    {
        e += 1;
    }
    if e == p || matches!(data.get(e), Some(b'(' | b'[')) {
        return None;
    }
    Some((p, e))
}

/// `Authorization` schemes, any case: HTTP's, Discord's `Bot`, Dynatrace's `Api-Token`, Okta's
/// `SSWS`.
pub(super) const SCHEMES: [&[u8]; 6] = [b"Bearer", b"Basic", b"Token", b"Bot", b"Api-Token", b"SSWS"];

/// An `Authorization` value's credentials: past its scheme (`Bearer`, `Basic`, `Token`, …).
pub(super) fn strip_scheme(data: &[u8], vs: usize, ve: usize) -> (usize, usize) {
    for scheme in SCHEMES {
        let v = &data[vs..ve];
        if v.len() > scheme.len() + 1
            && v[..scheme.len()].eq_ignore_ascii_case(scheme)
            && matches!(v[scheme.len()], b' ' | b'\t')
        {
            let s = skip_blanks(data, vs + scheme.len());
            let mut e = s;
            while e < ve && !data[e].is_ascii_whitespace() {
                e += 1;
            }
            return (s, e);
        }
    }
    // An unquoted value stops at its first blank: `Authorization: Bearer abc` stopped at `Bearer`.
    let v = &data[vs..ve];
    if SCHEMES.iter().any(|scheme| v.eq_ignore_ascii_case(scheme)) {
        let s = skip_blanks(data, ve);
        if s > ve {
            let mut e = s;
            while e < data.len()
                && e - s <= MAX_VALUE
                && !data[e].is_ascii_whitespace()
                && !matches!(data[e], b'"' | b'\'' | b'`')
            {
                e += 1;
            }
            return (s, e);
        }
    }
    (vs, ve)
}

/// A URL's password (`scheme://user:password@host`), the hit at its `://`.
pub(super) fn url_password(data: &[u8], at: usize) -> Outcome {
    if at == 0 || !data[at - 1].is_ascii_alphabetic() {
        return Outcome::Nothing;
    }
    let start = at + 3;
    let mut colon = None;
    let mut p = start;
    while p < data.len() && p - start <= MAX_VALUE {
        match data[p] {
            b'@' => break,
            b':' if colon.is_none() => colon = Some(p),
            b'/' | b'?' | b'#' | b'"' | b'\'' | b'`' | b'<' | b'>' | b'\\' => return Outcome::Nothing,
            c if c.is_ascii_whitespace() => return Outcome::Nothing,
            _ => {}
        }
        p += 1;
    }
    let Some(colon) = colon else { return Outcome::Nothing };
    if data.get(p) != Some(&b'@') || colon == start || colon + 1 == p {
        return Outcome::Nothing;
    }
    judged(data, colon + 1, p, Strictness::Url)
}

/// A curl `-u user:password` (or `--user`): the password, on a line that runs curl.
pub(super) fn curl_user(data: &[u8], at: usize) -> Outcome {
    let line = memchr::memrchr(b'\n', &data[..at]).map_or(0, |i| i + 1);
    if memchr::memmem::find(&data[line..at], b"curl").is_none() {
        return Outcome::Nothing;
    }
    let flag = if data[at..].starts_with(b" -u ") { 4 } else { 7 };
    let Some((vs, ve)) = value(data, skip_blanks(data, at + flag)) else { return Outcome::Nothing };
    match memchr::memchr(b':', &data[vs..ve]) {
        Some(c) if vs + c + 1 < ve => judged(data, vs + c + 1, ve, Strictness::Url),
        _ => Outcome::Nothing,
    }
}
