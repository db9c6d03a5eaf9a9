//! The generic detector: a value assigned to a name that means a secret, in the syntaxes
//! configuration is written in — `.env` and shell `export` (`API_KEY=…`), YAML (`api_key: …`,
//! block scalars), JSON (`"client_secret": "…"`), TOML and INI/properties (`password = …`),
//! Dockerfile `ENV`/`ARG` (`ENV API_TOKEN …`), Terraform variables (`variable "db_password" {
//! default = "…" }`), HTTP `Authorization:` headers (`Bearer …`, `Basic …`) — unquoted, quoted or
//! as a block; a URL's password (`https://user:pass@host`); base64 of text (a Kubernetes
//! `Secret`'s `data:`) decoded, then judged; curl's `-u user:password`.
//!
//! Found from the prefilter's anchor hits (`key`, `token`, `secret`, `pass`, `pwd`, `auth`,
//! `cred`, `://`, ` -u `, `--user `), parsed by hand around each hit (no regex per line), then judged: the name's
//! last word must mean a secret (`db_password`, `apiKey`; not `password_hash`, `token_count`,
//! `key_id`), and the value must pass the placeholder filters and carry entropy.

use crate::validate;

/// The literal anchors, for the scanner's Aho-Corasick prefilter.
pub(crate) const ANCHORS: &[&str] =
    &["key", "token", "secret", "pass", "pwd", "auth", "cred", "://", " -u ", "--user "];

/// The longest name looked at (bytes).
const MAX_NAME: usize = 64;
/// The longest value judged (bytes).
const MAX_VALUE: usize = 256;

/// A value found: where it is, and, when it is base64 of text, the decoded text (the secret).
pub(crate) struct Candidate {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) decoded: Option<String>,
}

/// What came of an anchor hit: nothing worth counting, a value judged no secret (why), or a
/// candidate.
pub(crate) enum Outcome {
    Nothing,
    Suppressed(&'static str),
    Found(Candidate),
}

fn is_name(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The candidate around an anchor hit at `at`. `done` is the end of the last name looked at: a
/// hit inside it (`secret` in `client_secret_key`) was looked at already.
pub(crate) fn candidate(data: &[u8], at: usize, done: &mut usize) -> Outcome {
    if data[at..].starts_with(b"://") {
        return url_password(data, at);
    }
    if data[at..].starts_with(b" -u ") || data[at..].starts_with(b"--user ") {
        return curl_user(data, at);
    }
    if at < *done {
        return Outcome::Nothing;
    }
    let mut s = at;
    while s > 0 && at - s <= MAX_NAME && is_name(data[s - 1]) {
        s -= 1;
    }
    let mut e = at;
    while e < data.len() && e - at <= MAX_NAME && is_name(data[e]) {
        e += 1;
    }
    *done = e;
    if e - s > MAX_NAME {
        return Outcome::Nothing;
    }
    let name = trim_name(&data[s..e]);
    if !secret_name(name) {
        return Outcome::Nothing;
    }
    let Some(p) = operator(data, s, e) else { return Outcome::Nothing };
    let Some((vs, ve)) = value(data, p) else { return Outcome::Nothing };
    let (vs, ve) = strip_scheme(data, vs, ve);
    judged(data, vs, ve, Strictness::Named)
}

/// A name without leading or trailing punctuation (`--api-key` → `api-key`).
fn trim_name(name: &[u8]) -> &[u8] {
    let start = name.iter().position(u8::is_ascii_alphanumeric).unwrap_or(name.len());
    let end = name.iter().rposition(u8::is_ascii_alphanumeric).map_or(start, |i| i + 1);
    &name[start..end.max(start)]
}

/// A name's words, lowercase: split at `_`, `-`, `.` and lower-to-upper case changes
/// (`apiKey`, `API_KEY`, `api-key` → `api`, `key`).
fn words(name: &[u8]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for &c in name {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_ascii_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        cur.push(char::from(c.to_ascii_lowercase()));
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Last words that mean the value is a secret.
const SECRET_WORDS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "pwd",
    "pass",
    "passphrase",
    "apikey",
    "auth",
    "authorization",
    "credential",
    "credentials",
    "creds",
    "authtoken",
    "accesstoken",
    "secretkey",
    "accesskey",
    "privatekey",
    "clientsecret",
    "authkey",
];

/// Words before `key` that make it no secret (a database's key, a map's, a public one).
const NOT_SECRET_KEYS: &[&str] = &[
    "public",
    "primary",
    "foreign",
    "sort",
    "partition",
    "cache",
    "map",
    "hash",
    "dict",
    "lookup",
    "idempotency",
    "row",
    "object",
    "group",
    "routing",
    "unique",
    "index",
    "composite",
    "translation",
    "message",
    "label",
    "field",
    "column",
    "table",
    "entry",
    "item",
    "config",
    "setting",
    "state",
    "registry",
    "file",
    "path",
    "s3",
    "bucket",
    "redis",
    "i18n",
    "react",
    "list",
    "sign",
    "ssh",
    "gpg",
];

/// Words anywhere in a name that make it no secret.
const NOT_SECRET_ANYWHERE: &[&str] = &["public", "hashed", "example", "sample", "dummy", "placeholder"];

/// Whether a name means a secret: its last word does (`db_password`, `authToken`, `api-key`), a
/// bare `key` is too vague, and `key` after a word that names a non-secret key is not.
fn secret_name(name: &[u8]) -> bool {
    let w = words(name);
    let Some(last) = w.last() else { return false };
    if w.iter().any(|x| NOT_SECRET_ANYWHERE.contains(&x.as_str())) {
        return false;
    }
    if last == "key" {
        return w.len() >= 2 && !NOT_SECRET_KEYS.contains(&w[w.len() - 2].as_str());
    }
    SECRET_WORDS.contains(&last.as_str())
}

/// Where the value begins after a name at `s..e`: past an assignment operator (`=`, `:=`, `=>`,
/// a YAML or JSON `:`), or a Dockerfile `ENV`/`ARG` name's spaces, or a Terraform variable's
/// `default =`.
fn operator(data: &[u8], s: usize, e: usize) -> Option<usize> {
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

fn skip_blanks(data: &[u8], mut p: usize) -> usize {
    while p < data.len() && matches!(data[p], b' ' | b'\t') {
        p += 1;
    }
    p
}

/// Whether the name at `s` is the first word after a Dockerfile `ENV` or `ARG`.
fn dockerfile_env(data: &[u8], s: usize) -> bool {
    let line = memchr::memrchr(b'\n', &data[..s]).map_or(0, |i| i + 1);
    let head = &data[line..s];
    let head = &head[head.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(head.len())..];
    head.len() >= 4
        && (head[..4].eq_ignore_ascii_case(b"ENV ") || head[..4].eq_ignore_ascii_case(b"ARG "))
        && head[4..].iter().all(|c| *c == b' ' || *c == b'\t')
}

/// A Terraform `variable "name" { … default = "…" … }`: where the default's value begins.
fn terraform_default(data: &[u8], s: usize, after: usize) -> Option<usize> {
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
fn value(data: &[u8], p: usize) -> Option<(usize, usize)> {
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
const SCHEMES: [&[u8]; 6] = [b"Bearer", b"Basic", b"Token", b"Bot", b"Api-Token", b"SSWS"];

/// An `Authorization` value's credentials: past its scheme (`Bearer`, `Basic`, `Token`, …).
fn strip_scheme(data: &[u8], vs: usize, ve: usize) -> (usize, usize) {
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
fn url_password(data: &[u8], at: usize) -> Outcome {
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
fn curl_user(data: &[u8], at: usize) -> Outcome {
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

#[derive(Clone, Copy, PartialEq)]
enum Strictness {
    /// A value named a secret.
    Named,
    /// A URL's password (its place says it is one).
    Url,
}

/// The value at `s..e` judged, base64 of text decoded first.
fn judged(data: &[u8], s: usize, e: usize, strictness: Strictness) -> Outcome {
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
fn base64_text(v: &[u8]) -> Option<String> {
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
const PLACEHOLDER_WORDS: &[&[u8]] = &[
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
fn judge(v: &[u8], strictness: Strictness) -> Result<(), Option<&'static str>> {
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
fn file_path(v: &[u8]) -> bool {
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
fn code_reference(v: &[u8]) -> bool {
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
fn uuid(v: &[u8]) -> bool {
    v.len() == 36
        && v.iter()
            .enumerate()
            .all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Option<String> {
        let data = text.as_bytes();
        let mut done = 0;
        for a in ANCHORS {
            let mut from = 0;
            while let Some(i) = text.to_ascii_lowercase()[from..].find(a) {
                if let Outcome::Found(c) = candidate(data, from + i, &mut done) {
                    return Some(c.decoded.unwrap_or_else(|| text[c.start..c.end].to_owned()));
                }
                from += i + 1;
            }
            done = 0;
        }
        None
    }

    #[test]
    fn names_mean_a_secret_by_their_last_word() {
        for yes in
            ["API_KEY", "apiKey", "db_password", "GITHUB_TOKEN", "client-secret", "Authorization", "pwd"]
        {
            assert!(secret_name(yes.as_bytes()), "{yes}");
        }
        for no in
            ["key", "password_hash", "token_count", "key_id", "primary_key", "MAPBOX_PUBLIC_TOKEN", "author"]
        {
            assert!(!secret_name(no.as_bytes()), "{no}");
        }
    }

    #[test]
    fn values_in_each_syntax() {
        let s = "q8Zr2LmXw9Tb4KpV7nYcA1";
        for text in [
            format!("API_KEY={s}\n"),
            format!("export API_KEY={s} # comment\n"),
            format!("api_key: {s}\n"),
            format!("{{\"api_key\": \"{s}\"}}\n"),
            format!("password = '{s}'\n"),
            format!("ENV API_TOKEN {s}\n"),
            format!("secret: |\n  {s}\n"),
            format!("variable \"db_password\" {{\n  default = \"{s}\"\n}}\n"),
            format!("curl -H 'Authorization: Bearer {s}' https://x\n"),
            format!("curl -H \"Authorization: Api-Token {s}\" https://x\n"),
            format!("Authorization: SSWS {s}\n"),
            format!("Authorization: bearer {s}\n"),
            format!("url = https://admin:{s}@db.internal/x\n"),
        ] {
            assert_eq!(found(&text).as_deref(), Some(s), "{text}");
        }
        // base64 of text, decoded.
        assert_eq!(found("  password: cTh6cjJMbVh3OVRiNGtQdg==\n").as_deref(), Some("q8zr2LmXw9Tb4kPv"));
        for no in [
            "API_KEY=changeme\n",
            "API_KEY=${API_KEY}\n",
            "api_key: <your-key>\n",
            "TOKEN=xxxxxxxxxxxxxxxx\n",
            "password = get_password()\n",
            "token = self.auth_token\n",
            "key_file: /etc/ssl/private/server.key\n",
            "token_count = 12345678901\n",
            "password_hash = 5f4dcc3b5aa765d61d8327deb882cf99\n",
            "if password == other_password_value {\n",
            "SESSION_KEY=2c9d3f4e-8a1b-4c2d-9e3f-4a5b6c7d8e9f\n",
        ] {
            assert_eq!(found(no), None, "{no}");
        }
    }
}
