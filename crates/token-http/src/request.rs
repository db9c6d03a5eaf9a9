//! A request (method, path, headers — some of them secret —, body) and its response.

use secrecy::{ExposeSecret, SecretString};

/// The methods the clients here use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// GET (idempotent).
    Get,
    /// HEAD (idempotent).
    Head,
    /// PUT (idempotent).
    Put,
    /// DELETE (idempotent).
    Delete,
    /// POST (not idempotent unless the caller says so: [`Request::idempotent`]).
    Post,
    /// LIST, OpenBao's listing verb (idempotent).
    List,
}

impl Method {
    pub(crate) fn as_reqwest(self) -> reqwest::Method {
        match self {
            Method::Get => reqwest::Method::GET,
            Method::Head => reqwest::Method::HEAD,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Post => reqwest::Method::POST,
            Method::List => reqwest::Method::from_bytes(b"LIST").unwrap_or(reqwest::Method::GET),
        }
    }

    fn idempotent(self) -> bool {
        !matches!(self, Method::Post)
    }
}

/// A header value: plain, or a secret (marked sensitive, redacted in `Debug`).
pub(crate) enum HeaderValue {
    Plain(String),
    Secret(SecretString),
}

/// One request. Build with [`Request::get`], [`Request::post`], ….
pub struct Request {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) headers: Vec<(String, HeaderValue)>,
    pub(crate) body: Option<Vec<u8>>,
    pub(crate) idempotent: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| match v {
                HeaderValue::Plain(v) => format!("{k}: {v}"),
                HeaderValue::Secret(_) => format!("{k}: [redacted]"),
            })
            .collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("headers", &headers)
            .field("body_len", &self.body.as_ref().map(Vec::len))
            .finish()
    }
}

impl Request {
    /// A request of `method` for `path` (with its query, if any) under the client's base URL.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self { method, path: path.into(), headers: Vec::new(), body: None, idempotent: method.idempotent() }
    }

    /// GET `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self::new(Method::Get, path)
    }

    /// POST `path`.
    pub fn post(path: impl Into<String>) -> Self {
        Self::new(Method::Post, path)
    }

    /// PUT `path`.
    pub fn put(path: impl Into<String>) -> Self {
        Self::new(Method::Put, path)
    }

    /// DELETE `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self::new(Method::Delete, path)
    }

    /// A header.
    #[must_use]
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), HeaderValue::Plain(value.into())));
        self
    }

    /// A header carrying a secret (a token): marked sensitive, redacted in `Debug`.
    #[must_use]
    pub fn secret_header(mut self, name: &str, value: &SecretString) -> Self {
        self.headers.push((
            name.to_owned(),
            HeaderValue::Secret(SecretString::from(value.expose_secret().to_owned())),
        ));
        self
    }

    /// A JSON body (and its content type).
    #[must_use]
    pub fn json(self, body: &serde_json::Value) -> Self {
        self.header("Content-Type", "application/json").body(body.to_string().into_bytes())
    }

    /// A raw body.
    #[must_use]
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = Some(body);
        self
    }

    /// Whether the call may be retried when it fails in transit: set for a POST the server
    /// treats as idempotent (a read over POST, a check-and-set write). GET, PUT, DELETE and
    /// LIST are by default.
    #[must_use]
    pub fn idempotent(mut self, on: bool) -> Self {
        self.idempotent = on;
        self
    }
}

/// An answer: its status and body (bounded by the client's limit). Redirects are errors, never
/// responses.
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A body may hold a token (OpenBao's create answers do): only its size.
        f.debug_struct("Response").field("status", &self.status).field("body_len", &self.body.len()).finish()
    }
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body)
    }
}
