//! An AWS access key pair, asked with STS `GetCallerIdentity` signed by the pair itself: the
//! secret key never leaves the process (only a SigV4 signature does), and the call needs no
//! permission, changes nothing and is what AWS documents for "whose key is this".

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use token_http::aws::{AwsClient, AwsCredentials, AwsError};

use super::Validation;
use super::validator::LiveCheck;
use crate::finding::Finding;

/// The rule whose findings are an AWS key pair's secret, with the key id as the public id.
const RULE: &str = "aws-access-key";
/// Its name in a [`Validation`].
const NAME: &str = "aws-sts";

/// Asks STS who an AWS access key pair is (see the [module](super)).
#[derive(Clone, Debug)]
pub struct AwsCallerIdentity {
    region: String,
    endpoint: Option<String>,
    timeout: Duration,
}

impl AwsCallerIdentity {
    /// AWS's own STS in `region` (`us-east-1` reaches the global endpoint's partition).
    pub fn new(region: impl Into<String>) -> Self {
        Self { region: region.into(), endpoint: None, timeout: Duration::from_secs(5) }
    }

    /// Another STS endpoint (a local AWS API, a VPC endpoint): HTTPS, or plain HTTP to loopback.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }

    /// Each call's timeout (5 s by default).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
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
        let creds =
            AwsCredentials::new(id.clone(), SecretString::from(finding.secret().expose_secret().to_owned()));
        let mut client = AwsClient::new(self.region.clone(), creds).timeout(self.timeout);
        if let Some(e) = &self.endpoint {
            client = client.endpoint(e.clone());
        }
        match client.caller_arn().await {
            Ok(arn) => Validation::valid(NAME, arn),
            Err(e @ AwsError::Api { .. }) => {
                let code = e.code().unwrap_or_default().to_owned();
                if REFUSED.contains(&code.as_str()) {
                    Validation::invalid(NAME, code)
                } else {
                    Validation::unknown(NAME, format!("STS answered {code}"))
                }
            }
            Err(e) => Validation::unknown(NAME, format!("no clear answer: {e}")),
        }
    }
}

/// STS's codes for credentials it does not accept: an unknown or deleted key id, a wrong secret,
/// an expired or inactive key.
const REFUSED: &[&str] = &[
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "AuthFailure",
    "UnrecognizedClientException",
];
