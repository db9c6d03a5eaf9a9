//! Which names mean a secret: the last word of the name does (`db_password`, `apiKey`), unless
//! the words before it say otherwise (`password_hash`, `key_id`, a public key).

/// A name without leading or trailing punctuation (`--api-key` → `api-key`).
pub(super) fn trim_name(name: &[u8]) -> &[u8] {
    let start = name.iter().position(u8::is_ascii_alphanumeric).unwrap_or(name.len());
    let end = name.iter().rposition(u8::is_ascii_alphanumeric).map_or(start, |i| i + 1);
    &name[start..end.max(start)]
}

/// A name's words, lowercase: split at `_`, `-`, `.` and lower-to-upper case changes
/// (`apiKey`, `API_KEY`, `api-key` → `api`, `key`).
pub(super) fn words(name: &[u8]) -> Vec<String> {
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
pub(super) const SECRET_WORDS: &[&str] = &[
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
pub(super) const NOT_SECRET_KEYS: &[&str] = &[
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
pub(super) const NOT_SECRET_ANYWHERE: &[&str] =
    &["public", "hashed", "example", "sample", "dummy", "placeholder"];

/// Whether a name means a secret: its last word does (`db_password`, `authToken`, `api-key`), a
/// bare `key` is too vague, and `key` after a word that names a non-secret key is not.
pub(super) fn secret_name(name: &[u8]) -> bool {
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
