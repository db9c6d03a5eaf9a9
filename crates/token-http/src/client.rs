//! [`HttpClient`]: a base URL and the rules every call follows.

use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::{ExposeSecret, SecretBox};

use crate::error::HttpError;
use crate::request::{HeaderValue, Request, Response};

/// Builds an [`HttpClient`]. Defaults: the platform's roots, no client certificate, plain HTTP
/// only to loopback, 10 s connect and 30 s request timeouts, 1 MiB responses, 3 retries of
/// idempotent calls starting at 100 ms.
#[must_use = "a builder does nothing until `build`"]
pub struct HttpClientBuilder {
    base: String,
    ca_pem: Option<Vec<u8>>,
    identity: Option<(Vec<u8>, SecretBox<Vec<u8>>)>,
    allow_plain_http: bool,
    secret_path: bool,
    connect_timeout: Duration,
    timeout: Duration,
    max_response: usize,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for HttpClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClientBuilder")
            .field("base", &if self.secret_path { redacted(&self.base) } else { self.base.clone() })
            .field("custom_ca", &self.ca_pem.is_some())
            .field("client_identity", &self.identity.is_some())
            .finish_non_exhaustive()
    }
}

impl HttpClientBuilder {
    /// Trust only the CA certificates in this PEM (not the platform's roots).
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Present this client certificate chain (PEM) with its private key (PEM, PKCS#8, PKCS#1 or
    /// SEC1; kept in a zeroized box).
    pub fn client_identity_pem(mut self, cert_chain: Vec<u8>, key: SecretBox<Vec<u8>>) -> Self {
        self.identity = Some((cert_chain, key));
        self
    }

    /// Allow plain HTTP to a host that is not loopback (traffic and tokens in the clear: only
    /// inside a network you trust).
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    /// The URL's path and query carry a secret (a Slack-style webhook, whose path is its key):
    /// errors, logs and `Debug` show only `scheme://host:port/…`.
    pub fn secret_path(mut self, on: bool) -> Self {
        self.secret_path = on;
        self
    }

    /// The whole request's timeout (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The connect timeout (default 10 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// The largest body accepted (default 1 MiB).
    pub fn max_response(mut self, bytes: usize) -> Self {
        self.max_response = bytes;
        self
    }

    /// Retries of an idempotent call after a transient failure, and the first backoff (doubled
    /// each time, with jitter). Default 3 and 100 ms.
    pub fn retries(mut self, n: u32, first_backoff: Duration) -> Self {
        self.retries = n;
        self.backoff = first_backoff;
        self
    }

    /// Checks the URL and the TLS material and builds the client.
    pub fn build(self) -> Result<HttpClient, HttpError> {
        let shown_base = if self.secret_path { redacted(&self.base) } else { self.base.clone() };
        let base = url::Url::parse(&self.base)
            .map_err(|e| HttpError::Config(format!("base URL {shown_base:?}: {e}")))?;
        match base.scheme() {
            "https" => {}
            "http" if self.allow_plain_http || is_loopback(&base) => {}
            "http" => {
                return Err(HttpError::Config(format!(
                    "refusing plain HTTP to {}: not a loopback address (use https, or allow plain HTTP explicitly)",
                    base.host_str().unwrap_or_default()
                )));
            }
            other => return Err(HttpError::Config(format!("base URL scheme {other:?}: http or https only"))),
        }
        if base.host_str().is_none() {
            return Err(HttpError::Config(format!("base URL {shown_base:?} has no host")));
        }
        let tls = tls_config(self.ca_pem.as_deref(), self.identity.as_ref())?;
        let mut inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.connect_timeout)
            .timeout(self.timeout);
        // A client talks to its base's host only. A remote one goes through the proxy the
        // environment names (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus `NO_PROXY`), as
        // networks that need one expect; a loopback one never does, whatever the environment
        // says: a proxy variable must not carry a local OpenBao's token off the machine.
        if is_loopback(&base) {
            inner = inner.no_proxy();
        }
        let inner = inner.build().map_err(|e| HttpError::Config(format!("HTTP client: {e}")))?;
        let mut base_text = base.as_str().trim_end_matches('/').to_owned();
        if base_text.ends_with(':') {
            base_text.push('/');
        }
        Ok(HttpClient {
            inner,
            secret_path: self.secret_path.then(|| format!("{}/…", base.origin().ascii_serialization())),
            base: base_text,
            host: base.host_str().unwrap_or_default().to_owned(),
            timeout: self.timeout,
            connect_timeout: self.connect_timeout,
            max_response: self.max_response,
            retries: self.retries,
            backoff: self.backoff,
        })
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn tls_config(
    ca_pem: Option<&[u8]>,
    identity: Option<&(Vec<u8>, SecretBox<Vec<u8>>)>,
) -> Result<rustls::ClientConfig, HttpError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| HttpError::Config(format!("TLS: {e}")))?;
    let builder = match ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            let mut n = 0;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| HttpError::Config(format!("CA certificate PEM: {e}")))?;
                roots.add(cert).map_err(|e| HttpError::Config(format!("CA certificate: {e}")))?;
                n += 1;
            }
            if n == 0 {
                return Err(HttpError::Config("the CA PEM holds no certificate".into()));
            }
            builder.with_root_certificates(roots)
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| HttpError::Config(format!("TLS platform verifier: {e}")))?
        }
    };
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((chain, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain)
                .collect::<Result<_, _>>()
                .map_err(|e| HttpError::Config(format!("client certificate PEM: {e}")))?;
            if certs.is_empty() {
                return Err(HttpError::Config("the client certificate PEM holds no certificate".into()));
            }
            // The key's error never quotes the key.
            let key = PrivateKeyDer::from_pem_slice(key.expose_secret())
                .map_err(|_| HttpError::Config("client key PEM: no private key it can read".into()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| HttpError::Config(format!("client certificate: {e}")))
        }
    }
}

/// An HTTP client for one API: a base URL and the rules every call follows (see the crate docs).
/// Cheap to clone (one connection pool).
#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    /// With [`HttpClientBuilder::secret_path`]: the URL as shown (`scheme://host:port/…`).
    secret_path: Option<String>,
    base: String,
    host: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_response: usize,
    retries: u32,
    backoff: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("base", self.secret_path.as_ref().unwrap_or(&self.base))
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A builder for the API at `base` (`https://bao.internal:8200`).
    pub fn builder(base: impl Into<String>) -> HttpClientBuilder {
        HttpClientBuilder {
            base: base.into(),
            ca_pem: None,
            identity: None,
            allow_plain_http: false,
            secret_path: false,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(30),
            max_response: 1 << 20,
            retries: 3,
            backoff: Duration::from_millis(100),
        }
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The host it talks to.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends `request`; an idempotent one is retried after a transport failure, a timeout, a 429
    /// or a 5xx answer (the last answer is returned when retries run out).
    pub async fn send(&self, request: Request) -> Result<Response, HttpError> {
        let mut wait = self.backoff;
        let attempts = if request.idempotent { self.retries + 1 } else { 1 };
        let mut attempt = 0;
        let started = std::time::Instant::now();
        loop {
            attempt += 1;
            let result = self.send_once(&request).await;
            let retry = match &result {
                Ok(r) => r.status == 429 || r.status >= 500,
                Err(e) => e.is_transient(),
            };
            if !retry || attempt >= attempts {
                // A timeout says what was waited in all, not one attempt's bound.
                return result.map_err(|e| match e {
                    HttpError::Timeout { url, timeout, connecting, .. } => HttpError::Timeout {
                        url,
                        timeout,
                        connecting,
                        attempts: attempt,
                        waited: started.elapsed(),
                    },
                    other => other,
                });
            }
            let path = if self.secret_path.is_some() { "/…" } else { strip_query(&request.path) };
            tracing::debug!(host = %self.host, path = %path, attempt, "retrying an idempotent call");
            tokio::time::sleep(jitter(wait)).await;
            wait = wait.saturating_mul(2);
        }
    }

    async fn send_once(&self, request: &Request) -> Result<Response, HttpError> {
        let mut body = Vec::new();
        let mut stream = self.answer(request, self.max_response as u64).await?;
        while let Some(chunk) = stream.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(Response { status: stream.status, body, content_type: stream.content_type })
    }

    /// Sends `request` once (never retried) and returns the answer with its body left to read in
    /// chunks, at most `max` bytes of it: for bodies too large to hold whole (an object to
    /// scan). The client's other rules hold as for [`HttpClient::send`]; the whole-request
    /// timeout runs until the body is read.
    pub async fn send_streaming(&self, request: Request, max: u64) -> Result<BodyStream, HttpError> {
        self.answer(&request, max).await
    }

    /// The answer's head, checked (no redirect, no declared length over `max`), and its body.
    async fn answer(&self, request: &Request, max: u64) -> Result<BodyStream, HttpError> {
        // The path follows the base's authority: `@elsewhere/…` would make it another host's.
        if !(request.path.is_empty() || request.path.starts_with(['/', '?'])) {
            return Err(HttpError::Config("a request path starts with / or ?".into()));
        }
        let url = format!("{}{}", self.base, request.path);
        let shown = match &self.secret_path {
            Some(shown) => shown.clone(),
            None => strip_query(&url).to_owned(),
        };
        let mut b = self.inner.request(request.method.as_reqwest(), &url);
        for (name, value) in &request.headers {
            let mut v = match value {
                HeaderValue::Plain(v) => reqwest::header::HeaderValue::from_str(v),
                HeaderValue::Secret(s) => reqwest::header::HeaderValue::from_str(s.expose_secret()),
            }
            .map_err(|_| HttpError::Config(format!("header {name}: not a valid header value")))?;
            if matches!(value, HeaderValue::Secret(_)) {
                v.set_sensitive(true);
            }
            b = b.header(name.as_str(), v);
        }
        if let Some(body) = &request.body {
            b = b.body(body.clone());
        }
        let response = b.send().await.map_err(|e| self.transport(&shown, e))?;
        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(HttpError::Redirect { url: shown, status });
        }
        let too_large =
            || HttpError::TooLarge { url: shown.clone(), max: usize::try_from(max).unwrap_or(usize::MAX) };
        if response.content_length().is_some_and(|n| n > max) {
            return Err(too_large());
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok(BodyStream { status, content_type, response, read: 0, max, url: shown, timeout: self.timeout })
    }

    fn transport(&self, url: &str, e: reqwest::Error) -> HttpError {
        if e.is_timeout() && e.is_connect() {
            return HttpError::Timeout {
                url: url.to_owned(),
                timeout: self.connect_timeout,
                connecting: true,
                attempts: 1,
                waited: self.connect_timeout,
            };
        }
        transport(self.timeout, url, e)
    }
}

/// A transport failure as an error naming `url` and the cause (a timeout after `timeout`).
fn transport(timeout: Duration, url: &str, e: reqwest::Error) -> HttpError {
    if e.is_timeout() {
        return HttpError::Timeout {
            url: url.to_owned(),
            timeout,
            connecting: false,
            attempts: 1,
            waited: timeout,
        };
    }
    // The chain's texts name the cause (refused, an unknown issuer, a bad certificate);
    // reqwest's errors carry the URL, which is ours, never a header.
    let mut what = String::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = source {
        what = s.to_string();
        source = s.source();
    }
    if what.is_empty() {
        what = if e.is_connect() { "cannot connect".into() } else { "the call failed".into() };
    }
    HttpError::Transport { url: url.to_owned(), what, source: Some(Box::new(e.without_url())) }
}

/// An answer whose body is read in chunks ([`HttpClient::send_streaming`]), at most its bound.
pub struct BodyStream {
    /// The status code.
    pub status: u16,
    /// The `content-type`, if any.
    pub content_type: Option<String>,
    response: reqwest::Response,
    read: u64,
    max: u64,
    url: String,
    timeout: Duration,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream")
            .field("status", &self.status)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl BodyStream {
    /// The next chunk of the body (`None`: the end). More than the bound is
    /// [`HttpError::TooLarge`], a stall past the timeout [`HttpError::Timeout`].
    pub async fn chunk(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        let Some(chunk) = self.response.chunk().await.map_err(|e| transport(self.timeout, &self.url, e))?
        else {
            return Ok(None);
        };
        self.read = self.read.saturating_add(chunk.len() as u64);
        if self.read > self.max {
            return Err(HttpError::TooLarge {
                url: self.url.clone(),
                max: usize::try_from(self.max).unwrap_or(usize::MAX),
            });
        }
        Ok(Some(chunk.to_vec()))
    }
}

/// `url` as `scheme://host:port/…` (or `…` if it does not parse): for a URL whose path is a secret.
fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) if u.has_host() => format!("{}/…", u.origin().ascii_serialization()),
        _ => "…".to_owned(),
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// `d` scaled by a random factor in [0.5, 1.5).
fn jitter(d: Duration) -> Duration {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |t| t.subsec_nanos());
    let f = 0.5 + f64::from(nanos % 1000) / 1000.0;
    d.mul_f64(f)
}
