//! What an OpenBao call can fail with: never a token, a secret id or a secret's value (OpenBao's
//! own error messages, which never echo them, and the transport's).

use crate::HttpError;

/// A failed OpenBao call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenBaoError {
    /// The client was built with neither a token nor AppRole.
    #[error("OpenBao: no token or AppRole given")]
    NoAuth,
    /// The HTTP client cannot be built as asked (its cause: a bad address, CA or identity).
    #[error("OpenBao client")]
    Client(#[source] HttpError),
    /// No answer (its cause: unreachable, TLS refused, a timeout, …).
    #[error("OpenBao call failed")]
    Call(#[source] HttpError),
    /// An answer whose body is not JSON.
    #[error("OpenBao answered {status} with a body that is not JSON")]
    NotJson {
        /// The status.
        status: u16,
        /// The parse error (it never quotes the body).
        #[source]
        source: serde_json::Error,
    },
    /// OpenBao refused the call.
    #[error("OpenBao answered {status}: {errors}")]
    Api {
        /// The status.
        status: u16,
        /// OpenBao's `errors` (JSON), or `no detail`.
        errors: String,
    },
    /// The acting token's policy lacks a capability on `path` (see the minimum policies in
    /// `docs/rotation.md`).
    #[error(
        "OpenBao denied {path} (403): the acting token's policy lacks a capability on that path: {errors}"
    )]
    Denied {
        /// The API path (`secret/metadata/app`), without `/v1/` and the query.
        path: String,
        /// OpenBao's `errors`.
        errors: String,
    },
    /// The AppRole login was refused (a wrong role or secret id, an expired secret id).
    #[error("OpenBao AppRole login answered {status}: {errors}")]
    Login {
        /// The status.
        status: u16,
        /// OpenBao's `errors`.
        errors: String,
    },
    /// A success whose answer lacks what it should hold: the sentence says what.
    #[error("{0}")]
    Malformed(&'static str),
}

/// OpenBao's own error messages from an answer (they never echo tokens).
pub(crate) fn errors(v: &serde_json::Value) -> String {
    v.get("errors").map(|e| e.to_string()).unwrap_or_else(|| "no detail".into())
}

/// An answer other than the expected one as [`OpenBaoError::Api`].
pub(crate) fn refused(status: u16, v: &serde_json::Value) -> OpenBaoError {
    OpenBaoError::Api { status, errors: errors(v) }
}
