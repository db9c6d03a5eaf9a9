//! S3 buckets (feature `s3`): list a bucket (ListObjectsV2, paginated) and stream each object
//! through the scanner, over the S3 REST API with AWS Signature Version 4, TLS by rustls with
//! ring, path-style addressing so any endpoint (AWS, MinIO, a local S3 API) works.
//!
//! SigV4 is token-http's (`token_http::aws::sigv4`, written once for every AWS call, checked
//! against AWS's documented example and by moto with signature checks on) rather than
//! `aws-sigv4` or the AWS SDK, which bring the aws-smithy stack; the ListObjectsV2 fields are
//! read from its XML by hand (`Key`, `Size`, `IsTruncated`, `NextContinuationToken`, entities
//! decoded). Every call goes through token-http, the one HTTP client, with its rules: TLS by
//! rustls with ring, plain HTTP only to loopback, bounded answers (a listing page at most 16 MiB,
//! an object at most `max_object_size`, read in chunks), timeouts, no redirects, and a loopback
//! endpoint never reached through a proxy.

use std::io::Read;

use secrecy::SecretString;
use token_core::chrono::{DateTime, Utc};

use crate::error::ScanError;
use crate::finding::{Location, Report, Skipped};
use crate::scanner::Scanner;

/// Where and how to reach a bucket. `Debug` hides the secret key and the session token.
#[derive(Clone)]
#[non_exhaustive]
pub struct S3Options {
    /// The API's base URL (`https://s3.us-east-1.amazonaws.com`, `http://127.0.0.1:9000`).
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// A session token (temporary credentials).
    pub session_token: Option<SecretString>,
    /// Only keys under this prefix.
    pub prefix: Option<String>,
    /// Objects larger than this are skipped and reported (default 256 MiB).
    pub max_object_size: u64,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3Options {
    /// Options for `endpoint` and `region` with these credentials.
    pub fn new(endpoint: &str, region: &str, access_key_id: &str, secret_access_key: SecretString) -> Self {
        Self {
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key,
            session_token: None,
            prefix: None,
            max_object_size: 256 << 20,
        }
    }

    /// From the standard environment: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, `AWS_REGION` (default `us-east-1`), `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL` (default AWS's regional endpoint).
    pub fn from_env() -> Result<Self, ScanError> {
        use token_http::aws::{AwsCredentials, env_endpoint, env_region};
        let creds = AwsCredentials::from_env().map_err(|e| ScanError::S3(e.to_string()))?;
        let region = env_region().unwrap_or_else(|| "us-east-1".into());
        let endpoint = env_endpoint("s3").unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let mut o = Self::new(&endpoint, &region, &creds.access_key_id, creds.secret_access_key);
        o.session_token = creds.session_token;
        Ok(o)
    }

    /// Only keys under `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = Some(prefix.to_owned());
        self
    }
}

use token_http::aws::sigv4;

/// The headers of a signed request (SigV4 from token-http, written once for every AWS call):
/// over method, path, query, `host`, `x-amz-content-sha256`, `x-amz-date` (and
/// `x-amz-security-token`), for an empty body.
pub(crate) fn sign(
    o: &S3Options,
    method: &str,
    host: &str,
    path: &str,
    query: &[(&str, String)],
    extra: &[(&str, &str)],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let creds = token_http::aws::AwsCredentials {
        access_key_id: o.access_key_id.clone(),
        secret_access_key: o.secret_access_key.clone(),
        session_token: o.session_token.clone(),
    };
    let mut headers = sigv4::sign(
        &creds,
        &sigv4::Signing {
            region: &o.region,
            service: "s3",
            method,
            host,
            path,
            query,
            headers: extra,
            body_sha256: sigv4::EMPTY_SHA256,
            now,
        },
    );
    headers.extend(extra.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())));
    headers
}

/// The largest listing page read (S3 sends at most 1,000 keys a page: well under this).
const MAX_LISTING: usize = 16 << 20;

/// The client for `endpoint`: token-http's, with a timeout for objects as large as allowed.
fn client(endpoint: &str) -> Result<token_http::HttpClient, ScanError> {
    token_http::HttpClient::builder(endpoint)
        .timeout(std::time::Duration::from_secs(300))
        .max_response(MAX_LISTING)
        .build()
        .map_err(|e| ScanError::S3(e.to_string()))
}

/// An object's body as a blocking reader, its chunks read on the scan's runtime.
struct Body<'a> {
    runtime: &'a tokio::runtime::Runtime,
    stream: token_http::BodyStream,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Body<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.runtime.block_on(self.stream.chunk()) {
                Ok(Some(chunk)) => (self.chunk, self.at) = (chunk, 0),
                Ok(None) => return Ok(0),
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The text of the first `<tag>` in `xml`, entities decoded.
fn tag<'a>(xml: &'a str, tag: &str) -> Option<std::borrow::Cow<'a, str>> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(unescape(&xml[start..end]))
}

fn unescape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.contains('&') {
        return s.into();
    }
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
        .into()
}

/// An S3 error response as a clear error: status, code and message (never the credentials).
fn api_error(status: u16, body: &str, bucket: &str) -> ScanError {
    let code = tag(body, "Code").map(|c| c.into_owned()).unwrap_or_default();
    let message = tag(body, "Message").map(|c| c.into_owned()).unwrap_or_default();
    let what = match code.as_str() {
        "NoSuchBucket" => format!("bucket {bucket} does not exist"),
        "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AccessDenied" | "ExpiredToken" | "InvalidToken" => {
            format!("the credentials are refused for bucket {bucket}")
        }
        _ => format!("bucket {bucket}: request failed"),
    };
    ScanError::S3(format!(
        "{what} ({status}{}{})",
        if code.is_empty() { String::new() } else { format!(" {code}") },
        if message.is_empty() { String::new() } else { format!(": {message:.200}") }
    ))
}

impl Scanner {
    /// Scans every object of `bucket` (under the options' prefix). A missing bucket, refused
    /// credentials or an unreachable endpoint is [`ScanError::S3`], with S3's error code; an
    /// object that cannot be read is skipped and reported. Blocking: call it off an async
    /// runtime's worker threads (`spawn_blocking`).
    pub fn scan_s3(&self, bucket: &str, options: &S3Options) -> Result<Report, ScanError> {
        super::logged("s3", &bucket, self.scan_s3_unlogged(bucket, options))
    }

    fn scan_s3_unlogged(&self, bucket: &str, options: &S3Options) -> Result<Report, ScanError> {
        let http = client(&options.endpoint)?;
        // The signed `host`: the endpoint's authority, as the request will carry it.
        let host = options
            .endpoint
            .split_once("://")
            .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(rest))
            .filter(|h| !h.is_empty() && !h.contains('@'))
            .ok_or_else(|| ScanError::S3("endpoint has no host".into()))?
            .to_owned();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ScanError::S3(format!("runtime: {e}")))?;
        let request = |path: &str, query: &[(&str, String)]| {
            // reqwest sends `accept: */*`: signed like the rest.
            let headers = sign(options, "GET", &host, path, query, &[("accept", "*/*")], Utc::now());
            let mut target = sigv4::encode(path, true);
            if !query.is_empty() {
                target.push('?');
                target.push_str(&sigv4::canonical_query(query));
            }
            headers.into_iter().fold(token_http::Request::get(target), |r, (k, v)| r.header(&k, v))
        };
        let s3_error = |e: token_http::HttpError| ScanError::S3(format!("bucket {bucket}: {e}"));
        let mut report = Report::default();
        let mut buf = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2".to_owned())];
            if let Some(p) = &options.prefix {
                query.push(("prefix", p.clone()));
            }
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let resp =
                runtime.block_on(http.send(request(&format!("/{bucket}"), &query))).map_err(s3_error)?;
            let body = String::from_utf8_lossy(&resp.body).into_owned();
            if !resp.is_success() {
                return Err(api_error(resp.status, &body, bucket));
            }
            for item in body.split("<Contents>").skip(1) {
                let Some(key) = tag(item, "Key") else { continue };
                let size: u64 = tag(item, "Size").and_then(|s| s.parse().ok()).unwrap_or(0);
                let what = format!("s3://{bucket}/{key}");
                if size > options.max_object_size {
                    report.skipped.push(Skipped {
                        what,
                        reason: format!("larger than {} bytes", options.max_object_size),
                    });
                    continue;
                }
                let get = request(&format!("/{bucket}/{key}"), &[]);
                let object = match runtime.block_on(http.send_streaming(get, options.max_object_size)) {
                    Ok(r) if (200..300).contains(&r.status) => r,
                    Ok(mut r) => {
                        // The error document, a few KiB at most.
                        let mut body = Vec::new();
                        while body.len() < 64 << 10
                            && let Ok(Some(c)) = runtime.block_on(r.chunk())
                        {
                            body.extend_from_slice(&c);
                        }
                        let body = String::from_utf8_lossy(&body);
                        report
                            .skipped
                            .push(Skipped { what, reason: api_error(r.status, &body, bucket).to_string() });
                        continue;
                    }
                    Err(e) => {
                        report.skipped.push(Skipped { what, reason: s3_error(e).to_string() });
                        continue;
                    }
                };
                let locate = |line, column| Location::S3 {
                    bucket: bucket.to_owned(),
                    key: key.to_string(),
                    line,
                    column,
                };
                let object = Body { runtime: &runtime, stream: object, chunk: Vec::new(), at: 0 };
                if let Err(e) = self.scan_stream(object, &mut buf, &mut report, &what, &locate) {
                    report.skipped.push(Skipped { what, reason: format!("read failed: {e}") });
                }
            }
            if tag(&body, "IsTruncated").as_deref() == Some("true") {
                token = tag(&body, "NextContinuationToken").map(|t| t.into_owned());
                if token.is_none() {
                    return Err(ScanError::S3(format!(
                        "bucket {bucket}: a truncated listing without a continuation token"
                    )));
                }
            } else {
                break;
            }
        }
        report.sort();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's documented example (S3 docs, "Example: GET Object"): the same signature.
    #[test]
    fn signature_matches_aws_documented_example() {
        let o = S3Options::new(
            "https://examplebucket.s3.amazonaws.com",
            "us-east-1",
            "AKIAIOSFODNN7EXAMPLE",
            SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        );
        let now = DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        // The documented GET Object example signs a Range header too; the list example signs
        // exactly host, x-amz-content-sha256 and x-amz-date: GET /?max-keys=2&prefix=J.
        let h = sign(
            &o,
            "GET",
            "examplebucket.s3.amazonaws.com",
            "/",
            &[("max-keys", "2".into()), ("prefix", "J".into())],
            &[],
            now,
        );
        let auth = &h.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap_or_default();
        assert!(
            auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
            "{auth}"
        );
    }
}
