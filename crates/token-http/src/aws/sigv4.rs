//! AWS Signature Version 4: the canonical request, the string to sign, the derived key, the
//! `Authorization` header — written once, for every AWS call Tokenward makes (S3 scans, IAM, STS,
//! Secrets Manager, KMS).

use hmac::{KeyInit, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::AwsCredentials;
use chrono::{DateTime, Utc};

/// SHA-256 of the empty body, hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// RFC 3986 percent-encoding as SigV4 wants it (`/` kept in paths when `keep_slash`).
pub fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// SHA-256 of `body`, hex (the `x-amz-content-sha256` a signed request carries).
pub fn sha256_hex(body: &[u8]) -> String {
    token_core::hex::encode(&Sha256::digest(body))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // HMAC accepts a key of any length: this cannot fail.
    let Ok(mut m) = <hmac::Hmac<Sha256> as KeyInit>::new_from_slice(key) else { return Vec::new() };
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The query string, encoded and sorted as SigV4 signs it (and as the request must send it).
pub fn canonical_query(query: &[(&str, String)]) -> String {
    let mut q: Vec<(String, String)> =
        query.iter().map(|(k, v)| (encode(k, false), encode(v, false))).collect();
    q.sort();
    q.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&")
}

/// What to sign.
#[derive(Debug)]
pub struct Signing<'a> {
    /// The region (`us-east-1`).
    pub region: &'a str,
    /// The service (`s3`, `iam`, `sts`, `secretsmanager`, `kms`).
    pub service: &'a str,
    /// The method (`GET`, `POST`).
    pub method: &'a str,
    /// The `Host` header's value.
    pub host: &'a str,
    /// The path (not yet encoded).
    pub path: &'a str,
    /// The query parameters.
    pub query: &'a [(&'a str, String)],
    /// Other headers the request sends (all are signed).
    pub headers: &'a [(&'a str, &'a str)],
    /// SHA-256 of the body, hex ([`EMPTY_SHA256`] for none).
    pub body_sha256: &'a str,
    /// The signing time.
    pub now: DateTime<Utc>,
}

/// The headers a signed request carries besides its own (`x-amz-date`, `x-amz-content-sha256`,
/// `x-amz-security-token` with a session token, and `authorization`), SigV4 over every header.
pub fn sign(creds: &AwsCredentials, s: &Signing<'_>) -> Vec<(String, String)> {
    let amz_date = s.now.format("%Y%m%dT%H%M%SZ").to_string();
    let date = &amz_date[..8];
    let canonical_query = canonical_query(s.query);
    let mut headers: Vec<(String, String)> =
        s.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), (*v).trim().to_owned())).collect();
    headers.push(("host".to_owned(), s.host.to_owned()));
    headers.push(("x-amz-content-sha256".to_owned(), s.body_sha256.to_owned()));
    headers.push(("x-amz-date".to_owned(), amz_date.clone()));
    if let Some(t) = &creds.session_token {
        headers.push(("x-amz-security-token".to_owned(), t.expose_secret().to_owned()));
    }
    headers.sort();
    let signed = headers.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(";");
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "{}\n{}\n{canonical_query}\n{canonical_headers}\n{signed}\n{}",
        s.method,
        encode(s.path, true),
        s.body_sha256
    );
    let scope = format!("{date}/{}/{}/aws4_request", s.region, s.service);
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
    let mut k =
        zeroize::Zeroizing::new(format!("AWS4{}", creds.secret_access_key.expose_secret()).into_bytes());
    for part in [date, s.region, s.service, "aws4_request"] {
        k = zeroize::Zeroizing::new(hmac(&k, part.as_bytes()));
    }
    let signature = token_core::hex::encode(&hmac(&k, to_sign.as_bytes()));
    headers.push((
        "authorization".to_owned(),
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
            creds.access_key_id
        ),
    ));
    // The caller sends its own headers and `host`; these are the ones to add.
    let own: Vec<String> = s.headers.iter().map(|(k, _)| k.to_ascii_lowercase()).collect();
    headers.retain(|(k, _)| k != "host" && !own.contains(k));
    headers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use secrecy::SecretString;

    use super::*;

    fn example_creds() -> AwsCredentials {
        AwsCredentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        )
    }

    /// AWS's documented S3 example ("GET Bucket (List Objects)", signing host,
    /// x-amz-content-sha256 and x-amz-date): the same signature.
    #[test]
    fn the_s3_documented_example_signs_the_same() {
        let now = DateTime::parse_from_rfc3339("2013-05-24T00:00:00Z").unwrap().with_timezone(&Utc);
        let h = sign(
            &example_creds(),
            &Signing {
                region: "us-east-1",
                service: "s3",
                method: "GET",
                host: "examplebucket.s3.amazonaws.com",
                path: "/",
                query: &[("max-keys", "2".into()), ("prefix", "J".into())],
                headers: &[],
                body_sha256: EMPTY_SHA256,
                now,
            },
        );
        let auth = h.iter().find(|(k, _)| k == "authorization").map(|(_, v)| v.clone()).unwrap();
        assert!(
            auth.ends_with("Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"),
            "{auth}"
        );
        assert!(!h.iter().any(|(k, _)| k == "host"));
    }

    #[test]
    fn encoding_and_query_order_follow_sigv4() {
        assert_eq!(encode("a b/c~d*", false), "a%20b%2Fc~d%2A");
        assert_eq!(encode("a b/c", true), "a%20b/c");
        assert_eq!(canonical_query(&[("b", "2".into()), ("a", "x y".into())]), "a=x%20y&b=2");
    }
}
