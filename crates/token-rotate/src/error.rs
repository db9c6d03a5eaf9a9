//! The crate's error types. None carries a secret.

/// A rotation target's failure, with what it was doing, and the underlying error as its source
/// when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed at the target: {detail}")]
pub struct TargetError {
    /// The protocol step.
    pub step: &'static str,
    /// Why (never the credential).
    pub detail: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl TargetError {
    /// A failure of `step`.
    pub fn new(step: &'static str, detail: impl Into<String>) -> Self {
        Self { step, detail: detail.into(), source: None }
    }

    /// A failure of `step` caused by `source` (an I/O or protocol error).
    pub fn with_source(
        step: &'static str,
        detail: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Self { step, detail: detail.into(), source: Some(source.into()) }
    }
}

#[cfg(feature = "vault")]
impl TargetError {
    /// An OpenBao call's failure in `step`: OpenBao's own text, or "OpenBao call failed" with
    /// the transport's error as the source.
    pub(crate) fn openbao(step: &'static str, e: token_http::openbao::OpenBaoError) -> Self {
        use token_http::openbao::OpenBaoError as E;
        match e {
            E::Call(cause) => Self::with_source(step, "OpenBao call failed", cause),
            E::Client(cause) => Self::with_source(step, "OpenBao client", cause),
            other => Self::new(step, other.to_string()),
        }
    }
}

/// An OpenBao client that cannot be built: a failure at `connect`.
#[cfg(feature = "vault")]
impl From<token_http::openbao::OpenBaoError> for TargetError {
    fn from(e: token_http::openbao::OpenBaoError) -> Self {
        Self::openbao("connect", e)
    }
}

/// An OpenBao client that cannot be built: a target's failure at `connect`.
#[cfg(feature = "vault")]
impl From<token_http::openbao::OpenBaoError> for RotateError {
    fn from(e: token_http::openbao::OpenBaoError) -> Self {
        Self::Target(e.into())
    }
}

/// A rotation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RotateError {
    /// The store failed (or a compare-and-swap lost to another instance: see [`RotateError::Busy`]).
    #[error("store: {0}")]
    Store(#[from] token_store::StoreError),
    /// The target failed outside a step that rolls back.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Its audit entry could not be written, and auditing fails closed.
    #[error("audit: {0}")]
    Audit(#[from] token_audit::AuditError),
    /// Another instance (or call) is rotating this credential now.
    #[error("credential {0} is being rotated elsewhere")]
    Busy(String),
    /// A stored rotation record or credential does not parse.
    #[error("corrupted rotation record for {name}: {detail}")]
    Corrupted {
        /// The credential.
        name: String,
        /// What is wrong.
        detail: String,
    },
    /// An emergency's replacement failed and was rolled back; the emergency stays recorded and the
    /// next call (or the scheduler) tries again.
    #[error("emergency replacement of {name} rolled back: {reason}")]
    EmergencyIncomplete {
        /// The credential.
        name: String,
        /// Why the replacement failed.
        reason: String,
    },
    /// The credential has no current version (never rotated in).
    #[error("credential {0} has no current version")]
    NoCurrent(String),
    /// Adoption of a credential that already has a version under Tokenward: it is managed
    /// already (rotate it instead), and adoption never replaces what the store holds.
    #[error("credential {0} already has a version in the store: it is managed already (rotate it instead)")]
    AlreadyManaged(String),
}

/// Results of this crate.
pub type Result<T, E = RotateError> = std::result::Result<T, E>;
