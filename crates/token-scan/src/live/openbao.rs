//! An OpenBao / Vault token, asked with `auth/token/lookup-self` acting as the token, at the one
//! address configured: the only place the token is sent (HTTPS with the platform's roots or a
//! given CA, or plain HTTP to loopback only; no redirects, no retries). The lookup changes
//! nothing but needs the token's `default` policy (or another allowing `lookup-self`), and
//! consumes one use of a use-limited token, as any request made with it does.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use token_http::HttpClient;
use token_http::openbao::{OpenBao, OpenBaoError};

use super::validator::LiveCheck;
use super::{Validation, printable};
use crate::error::ScanError;
use crate::finding::Finding;

/// The rules whose findings are OpenBao / Vault tokens.
const RULES: &[&str] = &["vault-token", "vault-token-legacy"];
/// Its name in a [`Validation`].
const NAME: &str = "openbao";

/// Asks one OpenBao server about found tokens (see the [module](super)).
#[derive(Clone)]
pub struct OpenBaoLookupSelf {
    /// The server's client, built once: never retries (each lookup consumes a use of a
    /// use-limited token), follows no redirect.
    http: HttpClient,
    /// Its address as shown: scheme, host and port, never credentials in it.
    shown: String,
}

impl std::fmt::Debug for OpenBaoLookupSelf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoLookupSelf").field("addr", &self.shown).finish_non_exhaustive()
    }
}

impl OpenBaoLookupSelf {
    /// The server at `addr` (`https://bao.internal:8200` with the platform's roots, or with
    /// `ca_pem`'s CA (PEM) instead; or `http://127.0.0.1:8200`). [`ScanError::Validation`], with
    /// the cause, for an address or CA its client refuses (plain HTTP to another host than
    /// loopback, say); neither it nor a detail ever shows credentials written in the address.
    pub fn new(addr: &str, ca_pem: Option<Vec<u8>>) -> Result<Self, ScanError> {
        let shown = shown(addr);
        let mut builder = HttpClient::builder(addr.trim_end_matches('/'))
            .secret_path(true)
            .retries(0, Duration::ZERO)
            .max_response(1 << 20);
        if let Some(pem) = ca_pem {
            builder = builder.ca_pem(pem);
        }
        let http = builder.build().map_err(|e| ScanError::Validation(format!("OpenBao at {shown}: {e}")))?;
        Ok(Self { http, shown })
    }
}

/// `addr` as a detail shows it: its scheme and authority without any `user:password@`.
fn shown(addr: &str) -> String {
    let (scheme, rest) = addr.split_once("://").unwrap_or(("", addr));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    printable(&format!("{scheme}://{host}"), 200)
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
        let client = OpenBao::with_token(self.http.clone(), token);
        match client.lookup_self().await {
            Ok(data) => {
                let name = printable(data["display_name"].as_str().unwrap_or("?"), 100);
                let ttl = data["ttl"].as_u64().map_or_else(|| "?".to_owned(), |t| t.to_string());
                Validation::valid(NAME, format!("{name}, ttl {ttl} s, at {}", self.shown))
            }
            // A 403 does not prove the token dead: OpenBao answers it alike for a token it does
            // not know (revoked, expired, never issued — or live on another server) and, but for
            // the wording, for a live token whose policies do not allow lookup-self; a gateway
            // in front may answer it too.
            Err(OpenBaoError::Api { status: 403, .. } | OpenBaoError::Denied { .. }) => Validation::unknown(
                NAME,
                format!(
                    "refused by {}: revoked or expired, another server's, or lookup-self not allowed",
                    self.shown
                ),
            ),
            Err(OpenBaoError::Api { status, .. }) => {
                Validation::unknown(NAME, format!("{} answered {status}", self.shown))
            }
            // The transport's own text (the address as shown, what failed), not its cause's.
            Err(OpenBaoError::Call(e)) => {
                Validation::unknown(NAME, format!("no answer: {}", printable(&e.to_string(), 200)))
            }
            Err(e) => Validation::unknown(NAME, format!("no clear answer from {}: {e}", self.shown)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_shown_without_its_credentials_and_a_refused_one_is_an_error() {
        assert_eq!(shown("https://ops:hunter2@bao.internal:8200/v1"), "https://bao.internal:8200");
        assert_eq!(shown("http://127.0.0.1:8200"), "http://127.0.0.1:8200");
        let e = OpenBaoLookupSelf::new("http://ops:hunter2@bao.internal:8200", None).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("plain HTTP") && !text.contains("hunter2"), "{text}");
        assert!(OpenBaoLookupSelf::new("https://bao.internal:8200", Some(b"not a PEM".to_vec())).is_err());
        let ok = OpenBaoLookupSelf::new("https://ops:hunter2@bao.internal:8200", None).unwrap();
        assert!(!format!("{ok:?}").contains("hunter2"));
    }
}
