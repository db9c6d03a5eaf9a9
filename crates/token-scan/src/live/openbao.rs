//! An OpenBao / Vault token, asked with `auth/token/lookup-self` acting as the token, at the one
//! address configured: the only place the token is sent (TLS with the platform's roots or a
//! given CA, or plain HTTP to loopback only; no redirects). The lookup changes nothing and needs
//! no policy beyond `default`.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use token_http::openbao::{OpenBao, OpenBaoError};

use super::Validation;
use super::validator::LiveCheck;
use crate::finding::Finding;

/// The rules whose findings are OpenBao / Vault tokens.
const RULES: &[&str] = &["vault-token", "vault-token-legacy"];
/// Its name in a [`Validation`].
const NAME: &str = "openbao";

/// Asks one OpenBao server about found tokens (see the [module](super)).
#[derive(Clone)]
pub struct OpenBaoLookupSelf {
    addr: String,
    ca_pem: Option<Vec<u8>>,
    timeout: Duration,
}

impl std::fmt::Debug for OpenBaoLookupSelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoLookupSelf")
            .field("addr", &self.addr)
            .field("ca_pem", &self.ca_pem.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl OpenBaoLookupSelf {
    /// The server at `addr` (`https://bao.internal:8200`, or `http://127.0.0.1:8200`).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into(), ca_pem: None, timeout: Duration::from_secs(5) }
    }

    /// Trusts this CA (PEM) for the server's certificate instead of the platform's roots.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Each call's timeout (5 s by default).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }
}

#[async_trait::async_trait]
impl LiveCheck for OpenBaoLookupSelf {
    fn name(&self) -> &str {
        NAME
    }

    fn judges(&self, finding: &Finding) -> bool {
        RULES.contains(&finding.rule.as_str())
    }

    async fn check(&self, finding: &Finding) -> Validation {
        let token = SecretString::from(finding.secret().expose_secret().to_owned());
        let mut builder = OpenBao::builder(&self.addr).timeout(self.timeout).token(token);
        if let Some(pem) = &self.ca_pem {
            builder = builder.ca_pem(pem.clone());
        }
        let client = match builder.build() {
            Ok(c) => c,
            Err(e) => return Validation::unknown(NAME, format!("no client for {}: {e}", self.addr)),
        };
        match client.lookup_self().await {
            Ok(data) => {
                let name = data["display_name"].as_str().unwrap_or("?");
                let ttl = data["ttl"].as_u64().map_or_else(|| "?".to_owned(), |t| t.to_string());
                Validation::valid(NAME, format!("{name}, ttl {ttl} s"))
            }
            // OpenBao answers 403 "permission denied" for a token it does not know (revoked,
            // expired, never issued) — and for nothing else on lookup-self.
            Err(OpenBaoError::Api { status: 403, .. } | OpenBaoError::Denied { .. }) => {
                Validation::invalid(NAME, "permission denied (403)")
            }
            Err(OpenBaoError::Api { status, .. }) => {
                Validation::unknown(NAME, format!("OpenBao answered {status}"))
            }
            Err(e) => Validation::unknown(NAME, format!("no clear answer: {e}")),
        }
    }
}
