//! What a scan reports: findings (rule, location, confidence, a redacted value, a fingerprint;
//! never the secret in any output), suppressed matches by reason, and what was skipped.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::live::Validation;
use crate::rule::Confidence;

/// Where a finding is.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Location {
    /// A file in a tree (or a named byte stream).
    File {
        /// The path (or the stream's name).
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (bytes).
        column: u64,
    },
    /// A blob in git history: the commit that introduced it (none for an unreachable blob).
    Git {
        /// The commit that first added the blob.
        commit: Option<String>,
        /// The path it was added under.
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (bytes).
        column: u64,
    },
    /// An object in an S3 bucket.
    S3 {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (bytes).
        column: u64,
    },
    /// A file in a container image's layer.
    Image {
        /// The image (its tag, or its manifest's digest or config).
        image: String,
        /// The layer (its path in the archive or layout).
        layer: String,
        /// The layer's position, 0 the lowest.
        layer_index: u32,
        /// The file's path in the layer.
        path: String,
        /// 1-based line.
        line: u64,
        /// 1-based column (bytes).
        column: u64,
        /// The later layer whose whiteout deletes the file (it is still in the image).
        deleted_in_layer: Option<u32>,
    },
    /// A value in a PostgreSQL table.
    Postgres {
        /// The table's schema.
        schema: String,
        /// The table.
        table: String,
        /// The table's column.
        field: String,
        /// The row: its primary key (`id=42`, `a=1,b=x`) or, without one, `ctid=(PAGE,ITEM)`.
        row: String,
        /// 1-based line in the value.
        line: u64,
        /// 1-based column (bytes) in the value.
        column: u64,
    },
}

impl Location {
    /// The path (or stream name, path in the commit, object key, table).
    pub fn path(&self) -> &str {
        match self {
            Location::File { path, .. } | Location::Git { path, .. } | Location::Image { path, .. } => path,
            Location::S3 { key, .. } => key,
            Location::Postgres { table, .. } => table,
        }
    }

    /// The 1-based line.
    pub fn line(&self) -> u64 {
        match self {
            Location::File { line, .. }
            | Location::Git { line, .. }
            | Location::Image { line, .. }
            | Location::S3 { line, .. }
            | Location::Postgres { line, .. } => *line,
        }
    }

    /// The 1-based column.
    pub fn column(&self) -> u64 {
        match self {
            Location::File { column, .. }
            | Location::Git { column, .. }
            | Location::Image { column, .. }
            | Location::S3 { column, .. }
            | Location::Postgres { column, .. } => *column,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => write!(f, "{path}:{line}:{column}"),
            Location::Git { commit: Some(c), path, line, column } => {
                write!(f, "{}:{path}:{line}:{column}", &c[..c.len().min(12)])
            }
            Location::Git { commit: None, path, line, column } => {
                write!(f, "(unreachable):{path}:{line}:{column}")
            }
            Location::S3 { bucket, key, line, column } => write!(f, "s3://{bucket}/{key}:{line}:{column}"),
            Location::Image { image, layer_index, path, line, column, deleted_in_layer, .. } => {
                write!(f, "{image}[layer {layer_index}]:{path}:{line}:{column}")?;
                match deleted_in_layer {
                    Some(l) => write!(f, " (deleted in layer {l})"),
                    None => Ok(()),
                }
            }
            Location::Postgres { schema, table, field, row, .. } => {
                write!(f, "postgres:{schema}.{table}:{field}:{row}")
            }
        }
    }
}

/// A finding's fingerprint: SHA-256 of the secret, or HMAC-SHA256 under a key (so that a
/// report does not let anyone test guesses of a low-entropy secret). For baselines and
/// de-duplication; not secret.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Fingerprint(String);

impl Fingerprint {
    pub(crate) fn of(secret: &[u8], key: Option<&[u8; 32]>) -> Self {
        match key {
            None => Self(format!("sha256:{}", token_core::hex::encode(&Sha256::digest(secret)))),
            Some(k) => {
                use hmac::{KeyInit, Mac};
                #[allow(clippy::expect_used)]
                let mut m = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(k).expect("HMAC takes any key");
                m.update(secret);
                Self(format!("hmac-sha256:{}", token_core::hex::encode(&m.finalize().into_bytes())))
            }
        }
    }

    /// The plain SHA-256 fingerprint of a secret (what a scan without a fingerprint key reports).
    pub fn sha256(secret: &[u8]) -> Self {
        Self::of(secret, None)
    }

    /// From its text (`sha256:…` or `hmac-sha256:…`), as a baseline stores it.
    pub fn parse(s: &str) -> Option<Self> {
        let hex_part = s.strip_prefix("sha256:").or_else(|| s.strip_prefix("hmac-sha256:"))?;
        (hex_part.len() == 64 && hex_part.bytes().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()))
            .then(|| Self(s.to_owned()))
    }

    /// Its text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({})", self.0)
    }
}

/// A secret's redacted form: its public prefix (at most 12 characters: `ghp_`, an issuer prefix),
/// then `…`, then its last four characters only when it is at least 16 long.
pub(crate) fn redact(secret: &str, public_prefix: usize) -> String {
    let prefix = &secret[..public_prefix.min(12).min(secret.len())];
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() >= 16 {
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("{prefix}…{tail}")
    } else {
        format!("{prefix}…")
    }
}

/// One leaked credential found.
#[derive(Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// The rule that found it.
    pub rule: String,
    /// Where.
    pub location: Location,
    /// How sure.
    pub confidence: Confidence,
    /// The value, redacted (never the secret).
    pub redacted: String,
    /// The fingerprint.
    pub fingerprint: Fingerprint,
    /// Why it is not reported (`allow comment`, `baseline`), for a Tokenward token in
    /// [`Report::suppressed_tokens`]; `None` for a finding.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppressed: Option<String>,
    /// The public half of a pair whose secret this is (an AWS access key id), which a provider
    /// needs beside the secret to be asked about it. Not secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_id: Option<String>,
    /// What the provider said of it, when the report was validated
    /// ([`live::LiveValidator`](crate::live)); `None` when it was not asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
    /// The secret itself, for a response that must act on it (revoke it). Never serialised,
    /// never shown by `Debug`.
    #[serde(skip)]
    secret: SecretString,
}

impl Finding {
    pub(crate) fn new(
        rule: &str,
        location: Location,
        confidence: Confidence,
        secret: &str,
        public_prefix: usize,
        key: Option<&[u8; 32]>,
    ) -> Self {
        Self {
            rule: rule.to_owned(),
            location,
            confidence,
            redacted: redact(secret, public_prefix),
            fingerprint: Fingerprint::of(secret.as_bytes(), key),
            suppressed: None,
            public_id: None,
            validation: None,
            secret: SecretString::from(secret.to_owned()),
        }
    }

    /// The secret found. Handle with care: it is the leaked credential.
    pub fn secret(&self) -> &SecretString {
        &self.secret
    }
}

impl fmt::Debug for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finding")
            .field("rule", &self.rule)
            .field("location", &self.location)
            .field("confidence", &self.confidence)
            .field("redacted", &self.redacted)
            .field("fingerprint", &self.fingerprint)
            .field("suppressed", &self.suppressed)
            .field("public_id", &self.public_id)
            .field("validation", &self.validation)
            .finish_non_exhaustive()
    }
}

/// Something the scan could not read, and why (reported, never silently skipped).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Skipped {
    /// The path, object or stream.
    pub what: String,
    /// Why.
    pub reason: String,
}

/// What a scan found, suppressed and skipped.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Findings, ordered by location.
    pub findings: Vec<Finding>,
    /// Matches that are not findings, counted by reason (`checksum fails`, `documented example
    /// value`, `baseline`, `allow comment`, …).
    pub suppressed: BTreeMap<String, u64>,
    /// Tokenward-format tokens an allow comment or the baseline suppressed (counted in
    /// `suppressed`, not reported): kept for the leak response, which answers them as it answers
    /// findings — a suppression may quiet a report, it never keeps one of a deployment's live
    /// tokens alive. Never serialised.
    #[serde(skip)]
    pub suppressed_tokens: Vec<Finding>,
    /// What could not be scanned.
    pub skipped: Vec<Skipped>,
    /// Files (or blobs, objects) scanned.
    pub files: u64,
    /// Bytes scanned.
    pub bytes: u64,
}

impl Report {
    /// Adds another report's content to this one.
    pub fn merge(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.suppressed_tokens.extend(other.suppressed_tokens);
        for (k, v) in other.suppressed {
            *self.suppressed.entry(k).or_default() += v;
        }
        self.skipped.extend(other.skipped);
        self.files += other.files;
        self.bytes += other.bytes;
    }

    pub(crate) fn suppress(&mut self, reason: &str) {
        *self.suppressed.entry(reason.to_owned()).or_default() += 1;
    }

    pub(crate) fn sort(&mut self) {
        self.findings.sort_by(|a, b| a.location.cmp(&b.location).then_with(|| a.rule.cmp(&b.rule)));
        self.suppressed_tokens.sort_by(|a, b| a.location.cmp(&b.location));
    }

    /// The exit code a CI gate uses: 0 clean, 1 findings (2, for an error, is the caller's).
    pub fn exit_code(&self) -> i32 {
        i32::from(!self.findings.is_empty())
    }
}
