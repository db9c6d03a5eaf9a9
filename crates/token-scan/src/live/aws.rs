//! An AWS access key pair, asked with STS `GetCallerIdentity` signed by the pair itself: the
//! secret key never leaves the process (only a SigV4 signature does), and the call needs no
//! permission, changes nothing and is what AWS documents for "whose key is this".

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use token_http::HttpClient;
use token_http::aws::{AwsClient, AwsCredentials, AwsError};

use super::validator::LiveCheck;
use super::{Validation, printable};
use crate::error::ScanError;
use crate::finding::Finding;

/// The rule whose findings are an AWS key pair's secret, with the key id as the public id.
const RULE: &str = "aws-access-key";
/// Its name in a [`Validation`].
const NAME: &str = "aws-sts";
/// The most characters of STS's message a detail keeps.
const MESSAGE_MAX: usize = 200;

/// Asks STS who an AWS access key pair is (see the [module](super)).
#[derive(Clone, Debug)]
pub struct AwsCallerIdentity {
    /// STS's client, with no key of its own: each check signs with the found pair (its
    /// connections are shared by every check).
    client: AwsClient,
    endpoint: Option<String>,
    timeout: Duration,
}

impl AwsCallerIdentity {
    /// AWS's own STS in `region` (`us-east-1` reaches the global endpoint's partition).
    pub fn new(region: impl Into<String>) -> Self {
        Self::with(region.into(), None, Duration::from_secs(5))
    }

    fn with(region: String, endpoint: Option<String>, timeout: Duration) -> Self {
        // No key: every call is signed with the found pair (`AwsClient::with_credentials`).
        let none = AwsCredentials::new(String::new(), SecretString::from(String::new()));
        let mut client = AwsClient::new(region, none).timeout(timeout);
        if let Some(e) = &endpoint {
            client = client.endpoint(e.clone());
        }
        Self { client, endpoint, timeout }
    }

    /// Another STS endpoint (a regional one, a VPC endpoint, a local AWS API): HTTPS, or plain
    /// HTTP to loopback. Requests are signed for the endpoint's region when it is
    /// `https://sts.REGION.amazonaws.com` (or `….amazonaws.com.cn`), else for the region given to
    /// [`AwsCallerIdentity::new`]. [`ScanError::Validation`] for an endpoint its client refuses
    /// (or one holding credentials, which STS does not use).
    pub fn endpoint(self, endpoint: &str) -> Result<Self, ScanError> {
        let endpoint = endpoint.trim_end_matches('/');
        let authority = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
        if authority.split(['/', '?', '#']).next().is_some_and(|a| a.contains('@')) {
            return Err(ScanError::Validation(
                "the STS endpoint holds credentials (user@): remove them".into(),
            ));
        }
        HttpClient::builder(endpoint)
            .secret_path(true)
            .build()
            .map_err(|e| ScanError::Validation(format!("the STS endpoint: {e}")))?;
        let region = sts_region(endpoint).unwrap_or(self.client.region()).to_owned();
        Ok(Self::with(region, Some(endpoint.to_owned()), self.timeout))
    }

    /// Each call's timeout (5 s by default).
    pub fn timeout(self, d: Duration) -> Self {
        Self::with(self.client.region().to_owned(), self.endpoint, d)
    }
}

/// The region of an endpoint named `sts.REGION.amazonaws.com` (or `.amazonaws.com.cn`).
fn sts_region(endpoint: &str) -> Option<&str> {
    let rest = endpoint.strip_prefix("https://").or_else(|| endpoint.strip_prefix("http://"))?;
    let host = rest.split(['/', ':', '?', '#']).next()?;
    let region = host.strip_prefix("sts.")?;
    let region =
        region.strip_suffix(".amazonaws.com").or_else(|| region.strip_suffix(".amazonaws.com.cn"))?;
    let shaped = !region.is_empty()
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    shaped.then_some(region)
}

#[async_trait::async_trait]
impl LiveCheck for AwsCallerIdentity {
    fn name(&self) -> &str {
        NAME
    }

    fn judges(&self, finding: &Finding) -> bool {
        finding.rule == RULE && finding.public_id.is_some()
    }

    async fn check(&self, finding: &Finding) -> Validation {
        let Some(id) = &finding.public_id else {
            return Validation::unknown(NAME, "no access key id beside it");
        };
        if id.starts_with("ASIA") {
            // A temporary key is signed with its session token, which the finding does not hold.
            return Validation::unknown(NAME, "a temporary key (ASIA): its session token is needed to ask");
        }
        let secret = finding.secret().expose_secret();
        let creds = AwsCredentials::new(id.clone(), SecretString::from(secret.to_owned()));
        match self.client.with_credentials(creds).caller_arn().await {
            Ok(arn) => Validation::valid(NAME, printable(&arn, MESSAGE_MAX)),
            Err(AwsError::Api { code, message, .. }) => {
                // STS's message never holds the secret (it never had it); kept only if so.
                let said =
                    if message.contains(secret) { String::new() } else { printable(&message, MESSAGE_MAX) };
                refused(&printable(&code, 64), &said, self.client.region())
            }
            Err(e) => Validation::unknown(
                NAME,
                format!("no clear answer: {}", printable(&e.to_string(), MESSAGE_MAX)),
            ),
        }
    }
}

/// STS's refusal `code` (with its message `said`) as a verdict: only a key id STS does not know
/// (or a key it no longer accepts) is invalid; a signature that does not match proves nothing.
fn refused(code: &str, said: &str, region: &str) -> Validation {
    match code {
        // Asked of the commercial partition's STS (or `region`'s), a GovCloud or China key is
        // unknown all the same: the detail says so.
        "InvalidClientTokenId" => Validation::invalid(
            NAME,
            format!(
                "InvalidClientTokenId: STS ({region}) knows no such key id (a key of another partition — \
                 GovCloud, China — is unknown to it): {said}"
            ),
        ),
        // The key id exists; the secret beside it may be the wrong one (a mixed-up pair in the
        // file), or the request's time or region did not suit STS.
        "SignatureDoesNotMatch" => Validation::unknown(
            NAME,
            format!(
                "SignatureDoesNotMatch: the key id exists; this secret does not sign for it, or the \
                 clock/region is off: {said}"
            ),
        ),
        "ExpiredToken" | "AuthFailure" | "UnrecognizedClientException" => {
            Validation::invalid(NAME, format!("{code}: {said}"))
        }
        _ => Validation::unknown(NAME, format!("STS answered {code}: {said}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_region_follows_a_regional_sts_endpoint() {
        assert_eq!(sts_region("https://sts.eu-west-3.amazonaws.com"), Some("eu-west-3"));
        assert_eq!(sts_region("https://sts.cn-north-1.amazonaws.com.cn/"), Some("cn-north-1"));
        assert_eq!(sts_region("https://sts.us-gov-west-1.amazonaws.com:443"), Some("us-gov-west-1"));
        for other in [
            "https://sts.amazonaws.com",
            "http://127.0.0.1:5000",
            "https://vpce-1.sts.us-east-1.vpce.amazonaws.com",
            "https://sts.eu-west-3.amazonaws.com.evil.example",
        ] {
            assert_eq!(sts_region(other), None, "{other}");
        }
        let sts =
            AwsCallerIdentity::new("us-east-1").endpoint("https://sts.eu-west-3.amazonaws.com").unwrap();
        assert_eq!(sts.client.region(), "eu-west-3");
        let local = AwsCallerIdentity::new("eu-north-1").endpoint("http://127.0.0.1:5000").unwrap();
        assert_eq!(local.client.region(), "eu-north-1");
    }

    #[test]
    fn an_endpoint_its_client_refuses_is_an_error_and_never_echoes_credentials() {
        let e = AwsCallerIdentity::new("us-east-1").endpoint("http://sts.example.com").unwrap_err();
        assert!(e.to_string().contains("plain HTTP"), "{e}");
        let e =
            AwsCallerIdentity::new("us-east-1").endpoint("https://me:hunter2@sts.example.com").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn only_an_unknown_key_id_is_invalid() {
        let v = refused(
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match",
            "us-east-1",
        );
        assert_eq!(v.validity, super::super::Validity::Unknown);
        assert!(v.detail.contains("does not match"), "{}", v.detail);
        let v = refused(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
            "us-east-1",
        );
        assert_eq!(v.validity, super::super::Validity::Invalid);
        assert!(v.detail.contains("GovCloud"), "{}", v.detail);
        assert_eq!(refused("Throttling", "", "us-east-1").validity, super::super::Validity::Unknown);
    }
}
