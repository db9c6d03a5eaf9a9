//! AWS APIs over [`crate::HttpClient`], signed with SigV4 ([`sigv4`]): the query protocol (IAM,
//! STS), the JSON protocol (Secrets Manager, KMS) and REST reads (S3), against AWS's own
//! endpoints or one given endpoint for every service (a local API such as moto).

pub mod sigv4;
pub mod xml;

use std::time::Duration;

use secrecy::SecretString;

use crate::{HttpClient, HttpError, Method, Request};

/// An access key: its id (public) and secret, and a session token for temporary credentials.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (`AKIA…`, `ASIA…`): public, safe to log.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: SecretString,
    /// The session token of temporary credentials.
    pub session_token: Option<SecretString>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field("session_token", &self.session_token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl AwsCredentials {
    /// A long-term access key.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: SecretString) -> Self {
        Self { access_key_id: access_key_id.into(), secret_access_key, session_token: None }
    }

    /// From the standard environment the AWS CLI reads: `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and, for temporary credentials, `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Result<Self, MissingEnv> {
        let id = env("AWS_ACCESS_KEY_ID").ok_or(MissingEnv("AWS_ACCESS_KEY_ID"))?;
        let secret = env("AWS_SECRET_ACCESS_KEY").ok_or(MissingEnv("AWS_SECRET_ACCESS_KEY"))?;
        let mut creds = Self::new(id, SecretString::from(secret));
        creds.session_token = env("AWS_SESSION_TOKEN").map(SecretString::from);
        Ok(creds)
    }
}

/// A variable of the standard AWS environment is not set (or empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not set")]
pub struct MissingEnv(pub &'static str);

/// `name` from the environment, trimmed; unset and blank are the same.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The region of the standard environment: `AWS_REGION`, else `AWS_DEFAULT_REGION`.
pub fn env_region() -> Option<String> {
    env("AWS_REGION").or_else(|| env("AWS_DEFAULT_REGION"))
}

/// The endpoint the standard environment gives `service` (`s3`, `kms`, …):
/// `AWS_ENDPOINT_URL_<SERVICE>`, else `AWS_ENDPOINT_URL`.
pub fn env_endpoint(service: &str) -> Option<String> {
    env(&format!("AWS_ENDPOINT_URL_{}", service.to_ascii_uppercase())).or_else(|| env("AWS_ENDPOINT_URL"))
}

/// What an AWS call can fail with. Never holds a secret: AWS's own error code and message, or
/// the transport's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// The call did not get an answer.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// AWS answered with an error.
    #[error("{service}: {code} ({status}): {message}")]
    Api {
        /// The service.
        service: String,
        /// AWS's error code (`InvalidClientTokenId`, `NoSuchEntity`, `LimitExceeded`, …).
        code: String,
        /// Its message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer did not hold what it should.
    #[error("{service}: unexpected answer: {detail}")]
    Malformed {
        /// The service.
        service: String,
        /// What was missing.
        detail: String,
    },
}

impl AwsError {
    /// AWS's error code, if AWS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            AwsError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where each service is.
#[derive(Clone, Debug)]
enum Endpoints {
    /// AWS's own, per service and region.
    Aws,
    /// One endpoint for every service (a local API).
    One(String),
}

/// A signed AWS API client for one region and one set of credentials (cheap to clone: the
/// connection pools are shared).
#[derive(Clone, Debug)]
pub struct AwsClient {
    region: String,
    creds: AwsCredentials,
    endpoints: Endpoints,
    timeout: Duration,
    clients: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, HttpClient>>>,
}

impl AwsClient {
    /// AWS's endpoints in `region`.
    pub fn new(region: impl Into<String>, creds: AwsCredentials) -> Self {
        Self {
            region: region.into(),
            creds,
            endpoints: Endpoints::Aws,
            timeout: Duration::from_secs(30),
            clients: Default::default(),
        }
    }

    /// Every service at `endpoint` (`http://127.0.0.1:5000` for moto; plain HTTP only to loopback).
    #[must_use]
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints = Endpoints::One(endpoint.into().trim_end_matches('/').to_owned());
        self
    }

    /// Each call's timeout (default 30 s; a connection is given at most 10 s of it). A call that
    /// times out may still be carried out by AWS: callers treat it as unknown, not as refused.
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self.clients = Default::default();
        self
    }

    /// The same endpoints and region with other credentials.
    #[must_use]
    pub fn with_credentials(&self, creds: AwsCredentials) -> Self {
        Self { creds, ..self.clone() }
    }

    /// The credentials' access key id.
    pub fn access_key_id(&self) -> &str {
        &self.creds.access_key_id
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    fn base(&self, service: &str) -> String {
        match &self.endpoints {
            Endpoints::One(e) => e.clone(),
            Endpoints::Aws => match service {
                "iam" => "https://iam.amazonaws.com".to_owned(),
                s => format!("https://{s}.{}.amazonaws.com", self.region),
            },
        }
    }

    /// IAM is global: signed for us-east-1 whatever the client's region.
    fn signing_region<'a>(&'a self, service: &str) -> &'a str {
        if service == "iam" { "us-east-1" } else { &self.region }
    }

    async fn send(
        &self,
        service: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<crate::Response, AwsError> {
        let base = self.base(service);
        let client = {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            match clients.get(&base) {
                Some(c) => c.clone(),
                None => {
                    let c = HttpClient::builder(base.clone())
                        .timeout(self.timeout)
                        .max_response(8 << 20)
                        .build()?;
                    clients.insert(base.clone(), c.clone());
                    c
                }
            }
        };
        let host =
            base.split("://").nth(1).unwrap_or_default().split('/').next().unwrap_or_default().to_owned();
        let body_sha = sigv4::sha256_hex(&body);
        let method_text = match method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Head => "HEAD",
            _ => "GET",
        };
        let signed = sigv4::sign(
            &self.creds,
            &sigv4::Signing {
                region: self.signing_region(service),
                service,
                method: method_text,
                host: &host,
                path,
                query,
                headers,
                body_sha256: &body_sha,
                now: chrono::Utc::now(),
            },
        );
        let q = sigv4::canonical_query(query);
        let full = if q.is_empty() {
            sigv4::encode(path, true)
        } else {
            format!("{}?{q}", sigv4::encode(path, true))
        };
        let mut req = Request::new(method, full);
        for (k, v) in headers {
            req = req.header(k, *v);
        }
        for (k, v) in signed {
            req = if k == "authorization" || k == "x-amz-security-token" {
                req.secret_header(&k, &SecretString::from(v))
            } else {
                req.header(&k, v)
            };
        }
        if !body.is_empty() {
            req = req.body(body);
        }
        Ok(client.send(req).await?)
    }

    /// A query-protocol call (IAM, STS): `Action` with `params`, form-encoded in a POST. Returns
    /// the answer's XML; an error answer is [`AwsError::Api`] with AWS's code and message.
    pub async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, String)],
    ) -> Result<String, AwsError> {
        let mut form: Vec<(&str, String)> =
            vec![("Action", action.to_owned()), ("Version", version.to_owned())];
        form.extend(params.iter().cloned());
        let body = sigv4::canonical_query(&form).into_bytes();
        let r = self
            .send(
                service,
                Method::Post,
                "/",
                &[],
                &[("content-type", "application/x-www-form-urlencoded; charset=utf-8")],
                body,
            )
            .await?;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if !r.is_success() {
            return Err(AwsError::Api {
                service: service.to_owned(),
                code: xml::tag(&text, "Code").unwrap_or_else(|| "Unknown".into()),
                message: xml::tag(&text, "Message").unwrap_or_default(),
                status: r.status,
            });
        }
        Ok(text)
    }

    /// A JSON-protocol call (Secrets Manager, KMS): `target` (`secretsmanager.PutSecretValue`)
    /// with a JSON body.
    pub async fn json(
        &self,
        service: &str,
        target: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, AwsError> {
        let r = self
            .send(
                service,
                Method::Post,
                "/",
                &[],
                &[("content-type", "application/x-amz-json-1.1"), ("x-amz-target", target)],
                body.to_string().into_bytes(),
            )
            .await?;
        let v: serde_json::Value = match r.json() {
            Ok(v) => v,
            // An error in the query protocol's XML (an authorisation refusal before the service):
            // its code still names it.
            Err(_) if !r.is_success() => {
                let text = String::from_utf8_lossy(&r.body).into_owned();
                return Err(AwsError::Api {
                    service: service.to_owned(),
                    code: xml::tag(&text, "Code").unwrap_or_else(|| format!("HTTP {}", r.status)),
                    message: xml::tag(&text, "Message").unwrap_or_default(),
                    status: r.status,
                });
            }
            Err(e) => {
                return Err(AwsError::Malformed {
                    service: service.to_owned(),
                    detail: format!("not JSON ({}): {e}", r.status),
                });
            }
        };
        if !r.is_success() {
            let code = v["__type"].as_str().or(v["code"].as_str()).unwrap_or("Unknown");
            return Err(AwsError::Api {
                service: service.to_owned(),
                code: code.rsplit('#').next().unwrap_or(code).to_owned(),
                message: v["message"].as_str().or(v["Message"].as_str()).unwrap_or_default().to_owned(),
                status: r.status,
            });
        }
        Ok(v)
    }

    /// A REST GET (S3): path-style `path` with `query`; returns the status and body text.
    pub async fn rest_get(
        &self,
        service: &str,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(u16, String), AwsError> {
        let r = self.send(service, Method::Get, path, query, &[], Vec::new()).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// A REST PUT (S3: make a bucket, put an object): path-style `path`, `body`; returns the
    /// status and body text.
    pub async fn rest_put(
        &self,
        service: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(u16, String), AwsError> {
        let r = self.send(service, Method::Put, path, &[], &[], body).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// Any REST call (S3 with headers of its own: object lock, conditional writes): path-style
    /// `path` with `query`, `headers` (all signed) and `body`; returns the answer whatever its
    /// status.
    pub async fn rest(
        &self,
        service: &str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<crate::Response, AwsError> {
        self.send(service, method, path, query, headers, body).await
    }

    /// A REST DELETE (S3: remove an object): path-style `path`; returns the status and body text.
    pub async fn rest_delete(&self, service: &str, path: &str) -> Result<(u16, String), AwsError> {
        let r = self.send(service, Method::Delete, path, &[], &[], Vec::new()).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// IAM `GetAccessKeyLastUsed`, read strictly: a date that parses, or no date with the service
    /// `N/A` (never used). Any other answer is [`AwsError::Malformed`], never taken for "never
    /// used" (callers decide retirements and orphans on it).
    pub async fn access_key_last_used(&self, key_id: &str) -> Result<KeyLastUse, AwsError> {
        let x = self
            .query("iam", "2010-05-08", "GetAccessKeyLastUsed", &[("AccessKeyId", key_id.to_owned())])
            .await?;
        let malformed = |detail: &str| AwsError::Malformed { service: "iam".into(), detail: detail.into() };
        let known = |v: Option<String>| v.filter(|s| !s.is_empty() && s != "N/A");
        match xml::tag(&x, "LastUsedDate").filter(|t| !t.trim().is_empty()) {
            Some(t) => {
                let at = chrono::DateTime::parse_from_rfc3339(t.trim())
                    .map_err(|_| malformed("GetAccessKeyLastUsed: a LastUsedDate that does not parse"))?
                    .with_timezone(&chrono::Utc);
                Ok(KeyLastUse::At {
                    at,
                    service: known(xml::tag(&x, "ServiceName")),
                    region: known(xml::tag(&x, "Region")),
                })
            }
            None if xml::tag(&x, "ServiceName").as_deref() == Some("N/A") => Ok(KeyLastUse::Never),
            None => Err(malformed("GetAccessKeyLastUsed: neither a LastUsedDate nor N/A")),
        }
    }

    /// STS `GetCallerIdentity`: the ARN these credentials act as.
    pub async fn caller_arn(&self) -> Result<String, AwsError> {
        let xml = self.query("sts", "2011-06-15", "GetCallerIdentity", &[]).await?;
        xml::tag(&xml, "Arn")
            .ok_or_else(|| AwsError::Malformed { service: "sts".into(), detail: "no Arn".into() })
    }
}

/// An access key's last use, as IAM reports it ([`AwsClient::access_key_last_used`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLastUse {
    /// Never used (IAM's `N/A`).
    Never,
    /// Last used then, with the service and region of that request when IAM says.
    At {
        /// When.
        at: chrono::DateTime<chrono::Utc>,
        /// The service (`s3`, `sts`, …).
        service: Option<String>,
        /// The region.
        region: Option<String>,
    },
}
