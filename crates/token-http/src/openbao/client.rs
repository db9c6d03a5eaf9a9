//! [`OpenBao`]: an address, how to trust it, how to authenticate (a token, or an AppRole session
//! logged in, renewed and logged out here), and the one way every call is sent.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde_json::{Value, json};

use super::error::{OpenBaoError, errors, refused};
use crate::{HttpClient, HttpClientBuilder, Request};

/// How the client proves itself to OpenBao.
enum Auth {
    Token(SecretString),
    AppRole(AppRole),
}

struct AppRole {
    mount: String,
    role_id: String,
    secret_id: SecretString,
    session: tokio::sync::Mutex<Option<Session>>,
}

/// An AppRole login's token and when to renew it (at two thirds of its lease).
struct Session {
    token: SecretString,
    renew_at: Instant,
    renewable: bool,
}

/// An OpenBao HTTP API client, acting with a token or through AppRole (see the module docs).
pub struct OpenBao {
    http: HttpClient,
    auth: Auth,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let auth = match &self.auth {
            Auth::Token(_) => "token",
            Auth::AppRole(_) => "approle",
        };
        f.debug_struct("OpenBao")
            .field("addr", &self.http.base())
            .field("auth", &auth)
            .finish_non_exhaustive()
    }
}

/// Builds an [`OpenBao`] client: an address, how to trust it, how to authenticate.
#[must_use = "a builder does nothing until `build`"]
pub struct OpenBaoBuilder {
    http: HttpClientBuilder,
    auth: Option<Auth>,
}

impl std::fmt::Debug for OpenBaoBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBaoBuilder").field("http", &self.http).finish_non_exhaustive()
    }
}

impl OpenBaoBuilder {
    /// Trust only this CA (PEM) for the server's certificate.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.http = self.http.ca_pem(pem);
        self
    }

    /// Present this client certificate (PEM chain and key) — OpenBao's TLS certificate auth, or a
    /// listener that requires client certificates.
    pub fn client_identity_pem(mut self, cert_chain: Vec<u8>, key: SecretBox<Vec<u8>>) -> Self {
        self.http = self.http.client_identity_pem(cert_chain, key);
        self
    }

    /// Allow plain HTTP to a non-loopback address (tokens in the clear: a trusted network only).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.http = self.http.allow_plain_http(allow);
        self
    }

    /// Each call's timeout (default 10 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.http = self.http.timeout(d);
        self
    }

    /// Act with this token.
    pub fn token(mut self, token: SecretString) -> Self {
        self.auth = Some(Auth::Token(token));
        self
    }

    /// Act through AppRole at `auth/approle`: log in with `role_id` and `secret_id`, renew before
    /// the lease ends, log in again when renewal is refused.
    pub fn approle(self, role_id: &str, secret_id: SecretString) -> Self {
        self.approle_at("approle", role_id, secret_id)
    }

    /// [`OpenBaoBuilder::approle`] with the auth method mounted at `auth/<mount>`.
    pub fn approle_at(mut self, mount: &str, role_id: &str, secret_id: SecretString) -> Self {
        self.auth = Some(Auth::AppRole(AppRole {
            mount: mount.trim_matches('/').to_owned(),
            role_id: role_id.to_owned(),
            secret_id,
            session: tokio::sync::Mutex::new(None),
        }));
        self
    }

    /// Checks the address and the TLS material and builds the client.
    pub fn build(self) -> Result<OpenBao, OpenBaoError> {
        let auth = self.auth.ok_or(OpenBaoError::NoAuth)?;
        let http = self.http.build().map_err(OpenBaoError::Client)?;
        Ok(OpenBao { http, auth })
    }
}

impl OpenBao {
    /// A client of the server at `addr` (`https://bao.internal:8200` with the platform's roots,
    /// or plain `http://` to a loopback address), acting with `token`. [`OpenBao::builder`] sets
    /// a custom CA, a client certificate or AppRole.
    pub fn new(addr: &str, token: SecretString) -> Result<Self, OpenBaoError> {
        Self::builder(addr).token(token).build()
    }

    /// A builder for the server at `addr` (10 s per call, answers up to 1 MiB).
    pub fn builder(addr: &str) -> OpenBaoBuilder {
        OpenBaoBuilder {
            http: HttpClient::builder(addr.trim_end_matches('/'))
                .timeout(Duration::from_secs(10))
                .max_response(1 << 20),
            auth: None,
        }
    }

    /// A client over an [`HttpClient`] already built for the server (its TLS, CA and timeouts),
    /// acting with `token`.
    pub fn with_token(http: HttpClient, token: SecretString) -> Self {
        Self { http, auth: Auth::Token(token) }
    }

    /// The server's address.
    pub fn addr(&self) -> &str {
        self.http.base()
    }

    /// The token to act with now: the configured one, or the AppRole session's (logging in or
    /// renewing first when due).
    async fn acting_token(&self) -> Result<SecretString, OpenBaoError> {
        let approle = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::AppRole(a) => a,
        };
        let mut session = approle.session.lock().await;
        if let Some(s) = session.as_ref()
            && Instant::now() < s.renew_at
        {
            return Ok(s.token.clone());
        }
        if let Some(s) = session.as_ref().filter(|s| s.renewable) {
            let token = s.token.clone();
            // Refused or unreachable: log in afresh below.
            let renew = Request::post("/v1/auth/token/renew-self").json(&json!({}));
            if let Ok((200, v)) = self.send(renew, Some(&token)).await {
                let lease = v["auth"]["lease_duration"].as_u64().unwrap_or(0);
                if lease > 0 {
                    *session = Some(Session {
                        token: token.clone(),
                        renew_at: Instant::now() + Duration::from_secs(lease * 2 / 3),
                        renewable: v["auth"]["renewable"].as_bool().unwrap_or(false),
                    });
                    tracing::debug!(lease, "OpenBao AppRole token renewed");
                    return Ok(token);
                }
            }
        }
        // A login replaces the session: the old token (renewal refused or unreachable) is revoked
        // if it still works, not left alive until its TTL.
        if let Some(old) = session.take() {
            let _ = self.send(Request::post("/v1/auth/token/revoke-self"), Some(&old.token)).await;
        }
        let body = json!({ "role_id": approle.role_id, "secret_id": approle.secret_id.expose_secret() });
        let login = Request::post(format!("/v1/auth/{}/login", approle.mount)).json(&body);
        let (status, v) = self.send(login, None).await?;
        if status != 200 {
            *session = None;
            return Err(OpenBaoError::Login { status, errors: errors(&v) });
        }
        let auth = &v["auth"];
        let (Some(token), Some(lease)) = (auth["client_token"].as_str(), auth["lease_duration"].as_u64())
        else {
            return Err(OpenBaoError::Malformed("OpenBao's AppRole login answer lacks the token or lease"));
        };
        let token = SecretString::from(token.to_owned());
        *session = Some(Session {
            token: token.clone(),
            renew_at: Instant::now() + Duration::from_secs(lease.max(1) * 2 / 3),
            renewable: auth["renewable"].as_bool().unwrap_or(false),
        });
        tracing::debug!(lease, "OpenBao AppRole login");
        Ok(token)
    }

    /// Sends one request, with `token` if any (a login has none); returns the status and the JSON
    /// body (`null` when empty).
    pub(super) async fn send(
        &self,
        request: Request,
        token: Option<&SecretString>,
    ) -> Result<(u16, Value), OpenBaoError> {
        let request = match token {
            Some(token) => request.secret_header("X-Vault-Token", token),
            None => request,
        };
        let r = self.http.send(request).await.map_err(OpenBaoError::Call)?;
        let value = r.json().map_err(|source| OpenBaoError::NotJson { status: r.status, source })?;
        Ok((r.status, value))
    }

    /// Sends one request with the client's own (acting) token. A 403 is
    /// [`OpenBaoError::Denied`], naming the path whose capability the token's policy lacks.
    pub(super) async fn call(&self, request: Request) -> Result<(u16, Value), OpenBaoError> {
        let token = self.acting_token().await?;
        let api_path =
            request.path.trim_start_matches("/v1/").split('?').next().unwrap_or_default().to_owned();
        let (status, v) = self.send(request, Some(&token)).await?;
        if status == 403 {
            return Err(OpenBaoError::Denied { path: api_path, errors: errors(&v) });
        }
        Ok((status, v))
    }

    /// Ends the AppRole session: revokes its login token (`auth/token/revoke-self`) so it does not
    /// outlive the command or daemon that logged in. Returns whether a token was revoked. A
    /// client acting with a configured token does nothing (the token is the operator's). The next
    /// call logs in again.
    pub async fn logout(&self) -> Result<bool, OpenBaoError> {
        let Auth::AppRole(approle) = &self.auth else { return Ok(false) };
        let Some(s) = approle.session.lock().await.take() else { return Ok(false) };
        let (status, v) = self.send(Request::post("/v1/auth/token/revoke-self"), Some(&s.token)).await?;
        match status {
            200 | 204 => {
                tracing::debug!("OpenBao AppRole token revoked");
                Ok(true)
            }
            // Expired or revoked already.
            403 => Ok(false),
            _ => Err(refused(status, &v)),
        }
    }
}
