//! The store's key-encryption key held by a KMS, named by a short spec.
//!
//! An operator names a KMS key the way the KEK id names it in the store:
//!
//! - `transit:MOUNT/KEY` — an OpenBao (or Vault) Transit key (feature `vault`). The server and
//!   the token come from the environment OpenBao's own CLI reads: `BAO_ADDR` (or `VAULT_ADDR`),
//!   `BAO_TOKEN` (or `VAULT_TOKEN`), and optionally `BAO_CACERT` (or `VAULT_CACERT`), a PEM file
//!   of the CA to trust. Plain `http://` is accepted only for loopback addresses.
//! - `aws-kms:KEY` — an AWS KMS key id, ARN or `alias/…` (feature `aws`). Region and credentials
//!   come from the environment the AWS CLI reads: `AWS_REGION` (or `AWS_DEFAULT_REGION`),
//!   `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optionally `AWS_SESSION_TOKEN`, and
//!   `AWS_ENDPOINT_URL_KMS` (or `AWS_ENDPOINT_URL`) for a non-default endpoint.
//!
//! The KEK never leaves the KMS: the store sends it data keys to wrap and unwrap. A KMS that
//! refuses or cannot be reached is a typed error naming it ([`crate::Error::Store`]), and nothing
//! is written. The tokens and secrets read from the environment are held as secrets and never
//! appear in errors or Debug output.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use token_store::KeyProvider;

use crate::error::{Error, Result};

/// A KMS key, by the spec an operator writes (`transit:MOUNT/KEY`, `aws-kms:KEY`).
///
/// ```
/// use tokenward::KmsKey;
///
/// let key: KmsKey = "transit:transit/tokenward".parse()?;
/// assert_eq!(key.to_string(), "transit:transit/tokenward");
/// assert!("rot13:nope".parse::<KmsKey>().is_err());
/// # Ok::<(), tokenward::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KmsKey {
    /// An OpenBao / Vault Transit key: the engine's mount and the key's name.
    Transit {
        /// The mount of the Transit engine (`transit`).
        mount: String,
        /// The key's name.
        key: String,
    },
    /// An AWS KMS key: an id, an ARN or an `alias/…`.
    AwsKms {
        /// The key id, ARN or alias.
        key_id: String,
    },
}

impl FromStr for KmsKey {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad =
            |why: &str| Error::Config(format!("KMS key {s:?}: {why} (transit:MOUNT/KEY or aws-kms:KEY)"));
        let s = s.trim();
        if let Some(rest) = s.strip_prefix("transit:") {
            let (mount, key) = rest.rsplit_once('/').ok_or_else(|| bad("no MOUNT/KEY"))?;
            let mount = mount.trim_matches('/');
            let plain = |p: &str| {
                !p.is_empty()
                    && p.split('/').all(|seg| {
                        !seg.is_empty()
                            && seg != "."
                            && seg != ".."
                            && seg.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    })
            };
            if !plain(mount) || !plain(key) || key.contains('/') {
                return Err(bad("mount and key are letters, digits, '-', '_' and '.'"));
            }
            return Ok(Self::Transit { mount: mount.to_owned(), key: key.to_owned() });
        }
        if let Some(key_id) = s.strip_prefix("aws-kms:") {
            if key_id.is_empty() || key_id.len() > 2048 || !key_id.chars().all(|c| c.is_ascii_graphic()) {
                return Err(bad("the key id is empty or not printable ASCII"));
            }
            return Ok(Self::AwsKms { key_id: key_id.to_owned() });
        }
        Err(bad("unknown kind"))
    }
}

impl fmt::Display for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transit { mount, key } => write!(f, "transit:{mount}/{key}"),
            Self::AwsKms { key_id } => write!(f, "aws-kms:{key_id}"),
        }
    }
}

/// The first of `names` that is set and not empty.
#[cfg_attr(not(feature = "vault"), allow(dead_code))]
fn env_any(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

#[cfg_attr(not(feature = "vault"), allow(dead_code))]
fn env_required(names: &[&str], key: &KmsKey) -> Result<String> {
    env_any(names).ok_or_else(|| Error::Config(format!("KMS key {key}: set {}", names.join(" or "))))
}

impl KmsKey {
    /// Connects to the KMS with settings and credentials from the environment (see the module
    /// docs), and returns the key provider the store opens with.
    pub async fn connect_from_env(&self) -> Result<Arc<dyn KeyProvider>> {
        match self {
            #[cfg(feature = "vault")]
            Self::Transit { mount, key } => {
                use token_core::secrecy::SecretString;
                let addr = env_required(&["BAO_ADDR", "VAULT_ADDR"], self)?;
                let token =
                    SecretString::from(env_required(&["BAO_TOKEN", "VAULT_TOKEN"], self)?.trim().to_owned());
                let mut http = token_http::HttpClient::builder(&addr);
                if let Some(ca) = env_any(&["BAO_CACERT", "VAULT_CACERT"]) {
                    let pem = std::fs::read(&ca)
                        .map_err(|e| Error::Config(format!("KMS key {self}: CA file {ca}: {e}")))?;
                    http = http.ca_pem(pem);
                }
                let http = http.build().map_err(|e| Error::Config(format!("KMS key {self}: {e}")))?;
                let provider =
                    token_store::keys::TransitKeyProvider::connect(http, token, mount, key).await?;
                Ok(Arc::new(provider))
            }
            #[cfg(not(feature = "vault"))]
            Self::Transit { .. } => Err(Error::Config(format!(
                "KMS key {self}: this build has no OpenBao support (feature `vault`)"
            ))),
            #[cfg(feature = "aws")]
            Self::AwsKms { key_id } => {
                use token_http::aws::{AwsClient, AwsCredentials, env_endpoint, env_region};
                let missing = |e: &dyn std::fmt::Display| Error::Config(format!("KMS key {self}: {e}"));
                let region = env_region().ok_or_else(|| missing(&"set AWS_REGION or AWS_DEFAULT_REGION"))?;
                let creds = AwsCredentials::from_env().map_err(|e| missing(&e))?;
                let mut client = AwsClient::new(region, creds);
                if let Some(endpoint) = env_endpoint("kms") {
                    client = client.endpoint(endpoint);
                }
                Ok(Arc::new(token_store::keys::AwsKmsKeyProvider::new(client, key_id)))
            }
            #[cfg(not(feature = "aws"))]
            Self::AwsKms { .. } => {
                Err(Error::Config(format!("KMS key {self}: this build has no AWS support (feature `aws`)")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn specs_parse_print_and_refuse() {
        let t: KmsKey = "transit:transit/tokenward".parse().unwrap();
        assert_eq!(t, KmsKey::Transit { mount: "transit".into(), key: "tokenward".into() });
        let nested: KmsKey = "transit:team/a/transit/k-1".parse().unwrap();
        assert_eq!(nested.to_string(), "transit:team/a/transit/k-1");
        let a: KmsKey = "aws-kms:alias/tokenward".parse().unwrap();
        assert_eq!(a, KmsKey::AwsKms { key_id: "alias/tokenward".into() });
        assert_eq!(a.to_string(), "aws-kms:alias/tokenward");
        for bad in [
            "",
            "transit:",
            "transit:key",
            "transit:/key",
            "transit:mount/",
            "transit:../x/key",
            "transit:mount/k?x=1",
            "aws-kms:",
            "aws-kms:a b",
            "kms:key",
        ] {
            let e = bad.parse::<KmsKey>().unwrap_err();
            assert!(e.to_string().contains("transit:MOUNT/KEY"), "{bad}: {e}");
        }
    }
}
