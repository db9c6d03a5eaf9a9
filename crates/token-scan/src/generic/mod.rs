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
//!
//! This module finds the candidate around an anchor hit; `names` says which names mean a secret,
//! `syntax` where a value begins and ends in each syntax, `judge` whether a value is one.

mod judge;
mod names;
mod syntax;

use self::judge::{Strictness, judged};
use self::names::{secret_name, trim_name};
use self::syntax::{curl_user, operator, strip_scheme, url_password, value};

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
