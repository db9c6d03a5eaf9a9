//! What a call can fail with: never a header value, never a body.

/// A failed HTTP call. Its text names the host and what went wrong, never a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The client cannot be built as asked (a bad URL, a CA or identity that does not parse,
    /// plain HTTP to a remote host).
    #[error("HTTP client configuration: {0}")]
    Config(String),
    /// The server could not be reached, or TLS failed (an untrusted certificate, a refused
    /// client certificate).
    #[error("{url}: {what}")]
    Transport {
        /// Where (scheme, host, port and path; no query).
        url: String,
        /// What failed.
        what: String,
        /// The cause.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// No connection, or no answer, within the timeout: the text says which, and how long was
    /// waited in all (several attempts of an idempotent call).
    #[error("{url}: {}", waited_text(*connecting, *timeout, *attempts, *waited))]
    Timeout {
        /// Where.
        url: String,
        /// The timeout that ran out: the connect timeout if `connecting`, else the request's.
        timeout: std::time::Duration,
        /// Whether the connection itself was not made in time.
        connecting: bool,
        /// Attempts made (more than one for a retried idempotent call).
        attempts: u32,
        /// How long all attempts took.
        waited: std::time::Duration,
    },
    /// The answer was a redirect (never followed: a token header must not travel on).
    #[error("{url}: answered with a redirect ({status}), which is never followed")]
    Redirect {
        /// Where.
        url: String,
        /// The status.
        status: u16,
    },
    /// The answer's body is larger than the client accepts.
    #[error("{url}: the answer is over {max} bytes")]
    TooLarge {
        /// Where.
        url: String,
        /// The bound.
        max: usize,
    },
}

impl HttpError {
    /// A configuration error from anything displayable (a file read, say).
    pub fn config(e: impl std::fmt::Display) -> Self {
        Self::Config(e.to_string())
    }

    /// Whether trying again may succeed (a transport failure or a timeout).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport { .. } | Self::Timeout { .. })
    }
}

fn waited_text(
    connecting: bool,
    timeout: std::time::Duration,
    attempts: u32,
    waited: std::time::Duration,
) -> String {
    let what = if connecting {
        format!("could not connect within {timeout:?}")
    } else {
        format!("no answer within {timeout:?}")
    };
    if attempts > 1 {
        let secs = (waited.as_millis() as f64 / 100.0).round() / 10.0;
        format!("{what} ({attempts} attempts, {secs}s in all)")
    } else {
        what
    }
}
