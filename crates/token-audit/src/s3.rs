//! [`S3Witness`]: tree heads kept in an S3 bucket with object lock, through the workspace's one
//! HTTP client (`token-http`, SigV4).

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use token_core::{clocks::Clock, clocks::SystemClock};
use token_http::Method;
use token_http::aws::{AwsClient, xml};

use crate::witness::{MAX_RECORD, Witness, WitnessError, WitnessedHead, parse_record_name, record_name};

/// How S3 holds a locked record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockMode {
    /// Nobody — not the bucket's owner, not the root account — can delete or overwrite the
    /// record before its retention ends (the default).
    Compliance,
    /// Only a principal allowed `s3:BypassGovernanceRetention` can (for trials).
    Governance,
}

impl LockMode {
    fn header(self) -> &'static str {
        match self {
            LockMode::Compliance => "COMPLIANCE",
            LockMode::Governance => "GOVERNANCE",
        }
    }
}

/// A witness in an S3 bucket created with object lock: each record is an object written once
/// (`If-None-Match: *`) with a retention (`x-amz-object-lock-mode`,
/// `x-amz-object-lock-retain-until-date`) that no credential — the store writer's included — can
/// shorten or delete in compliance mode. Records are named so that the newest sorts first: one
/// `ListObjectsV2` of one key finds it. The prefix must hold nothing but records.
///
/// [`S3Witness::connect`] refuses a bucket whose object lock is not enabled.
#[derive(Clone)]
pub struct S3Witness {
    client: AwsClient,
    bucket: String,
    prefix: String,
    retain_days: u32,
    mode: LockMode,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for S3Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Witness")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("retain_days", &self.retain_days)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

fn valid_prefix(p: &str) -> bool {
    p.len() <= 512
        && p.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'/' | b'-' | b'_' | b'.'))
        && !p.split('/').any(|s| s == "..")
}

impl S3Witness {
    /// The witness under `prefix` (empty, or ending in `/`) in `bucket`, keeping each record
    /// `retain_days` (at least 1) in compliance mode; checks that the bucket's object lock is
    /// enabled (a bucket without it is no witness: its objects can be overwritten and deleted).
    pub async fn connect(
        client: AwsClient,
        bucket: &str,
        prefix: &str,
        retain_days: u32,
    ) -> Result<Self, WitnessError> {
        let location = format!("s3://{bucket}/{prefix}");
        let bad =
            |detail: &str| WitnessError::Unavailable { location: location.clone(), detail: detail.into() };
        if !valid_bucket(bucket) {
            return Err(bad("not a bucket name (3-63 lowercase letters, digits, '.', '-')"));
        }
        if !valid_prefix(prefix) || !(prefix.is_empty() || prefix.ends_with('/')) {
            return Err(bad("a prefix is empty or ends with '/', in letters, digits, '/', '-', '_', '.'"));
        }
        if retain_days == 0 || retain_days > 36_500 {
            return Err(bad("the retention is 1 to 36,500 days"));
        }
        let w = Self {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            retain_days,
            mode: LockMode::Compliance,
            clock: Arc::new(SystemClock),
        };
        let r = w
            .call(Method::Get, &format!("/{bucket}"), &[("object-lock", String::new())], &[], Vec::new())
            .await?;
        let text = String::from_utf8_lossy(&r.body);
        if !r.is_success() {
            return Err(w.api_error("reading the bucket's object lock configuration", r.status, &text));
        }
        if xml::tag(&text, "ObjectLockEnabled").as_deref() != Some("Enabled") {
            return Err(bad("the bucket's object lock is not enabled (create it with object lock)"));
        }
        Ok(w)
    }

    /// Governance mode instead of compliance (a principal with `s3:BypassGovernanceRetention`
    /// can then remove records: for trials only).
    #[must_use]
    pub fn lock_mode(mut self, mode: LockMode) -> Self {
        self.mode = mode;
        self
    }

    /// The clock retention dates are computed from.
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<token_http::Response, WitnessError> {
        self.client
            .rest("s3", method, path, query, headers, body)
            .await
            .map_err(|e| WitnessError::Unavailable { location: self.location(), detail: e.to_string() })
    }

    fn api_error(&self, what: &str, status: u16, body: &str) -> WitnessError {
        let code = xml::tag(body, "Code").unwrap_or_else(|| "Unknown".into());
        let message = xml::tag(body, "Message").unwrap_or_default();
        WitnessError::Unavailable {
            location: self.location(),
            detail: format!("{what}: {code} ({status}) {message}"),
        }
    }

    fn key_path(&self, name: &str) -> String {
        format!("/{}/{}{name}", self.bucket, self.prefix)
    }

    async fn get(&self, name: &str) -> Result<Option<String>, WitnessError> {
        let r = self.call(Method::Get, &self.key_path(name), &[], &[], Vec::new()).await?;
        if r.status == 404 {
            return Ok(None);
        }
        if !r.is_success() {
            return Err(self.api_error("reading a record", r.status, &String::from_utf8_lossy(&r.body)));
        }
        if r.body.len() > MAX_RECORD {
            return Err(WitnessError::BadRecord {
                location: format!("{}{name}", self.location()),
                detail: format!("larger than {MAX_RECORD} bytes"),
            });
        }
        String::from_utf8(r.body).map(Some).map_err(|_| WitnessError::BadRecord {
            location: format!("{}{name}", self.location()),
            detail: "not UTF-8".into(),
        })
    }
}

#[async_trait]
impl Witness for S3Witness {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn push(&self, head: &WitnessedHead) -> Result<(), WitnessError> {
        let name = record_name(head.epoch, head.size);
        let body = head.note.as_bytes().to_vec();
        let checksum = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(&body));
        let until = (self.clock.now() + chrono::TimeDelta::days(i64::from(self.retain_days)))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        let headers = [
            ("content-type", "text/plain; charset=utf-8"),
            ("if-none-match", "*"),
            ("x-amz-checksum-sha256", checksum.as_str()),
            // What S3 requires of a PUT with a retention (Content-MD5 or this).
            ("x-amz-sdk-checksum-algorithm", "SHA256"),
            ("x-amz-object-lock-mode", self.mode.header()),
            ("x-amz-object-lock-retain-until-date", until.as_str()),
        ];
        let r = self.call(Method::Put, &self.key_path(&name), &[], &headers, body).await?;
        if r.is_success() {
            return Ok(());
        }
        // Already held (412 from a store that honours If-None-Match, 409 from a concurrent one):
        // the same record is fine, another is a conflict.
        if matches!(r.status, 409 | 412) {
            return match self.get(&name).await? {
                Some(held) if held == head.note => Ok(()),
                _ => Err(WitnessError::Conflict { epoch: head.epoch, size: head.size }),
            };
        }
        Err(self.api_error("writing a record", r.status, &String::from_utf8_lossy(&r.body)))
    }

    async fn newest(&self) -> Result<Option<WitnessedHead>, WitnessError> {
        let query =
            [("list-type", "2".to_owned()), ("max-keys", "1".to_owned()), ("prefix", self.prefix.clone())];
        let r = self.call(Method::Get, &format!("/{}", self.bucket), &query, &[], Vec::new()).await?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if !r.is_success() {
            return Err(self.api_error("listing records", r.status, &text));
        }
        let Some(first) = xml::blocks(&text, "Contents").first().and_then(|c| xml::tag(c, "Key")) else {
            return Ok(None);
        };
        let key = first;
        let name = key.strip_prefix(&self.prefix).unwrap_or(&key);
        let Some((epoch, size)) = parse_record_name(name) else {
            return Err(WitnessError::BadRecord {
                location: format!("s3://{}/{key}", self.bucket),
                detail: "not a record's name (the prefix must hold only records)".into(),
            });
        };
        let note = self.get(name).await?.ok_or_else(|| WitnessError::Unavailable {
            location: self.location(),
            detail: format!("{key} was listed but cannot be read"),
        })?;
        Ok(Some(WitnessedHead { epoch, size, note }))
    }
}
