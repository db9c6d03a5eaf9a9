//! Typed store errors. None carries secret material.

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The passphrase does not open this store (its key check failed).
    #[error("wrong passphrase: it does not open this store")]
    WrongPassphrase,
    /// The key does not open this store or record (its key check failed).
    #[error("wrong key: key `{kek_id}` does not open this store")]
    WrongKey {
        /// The key-encryption key's id.
        kek_id: String,
    },
    /// A record is bound to a key this keyring does not hold.
    #[error("no key `{kek_id}` in the keyring for this record")]
    UnknownKey {
        /// The key-encryption key's id.
        kek_id: String,
    },
    /// Stored bytes fail authentication or do not parse: tampering or corruption. The record is
    /// refused — never used, never read as something else.
    #[error("corrupted or tampered {what}{}: {detail}", id.as_deref().map(|i| format!(" {i}")).unwrap_or_default())]
    Corrupted {
        /// Which record, when it is known (a token id, a metadata key, a secret name and version).
        id: Option<String>,
        /// What failed.
        what: &'static str,
        /// Why (never the data).
        detail: String,
    },
    /// The operation's audit entry could not be recorded, and auditing fails closed. For an issue,
    /// the token was withdrawn (revoked) and never returned; a revocation has happened all the same.
    #[error("audit: {0}")]
    Audit(#[from] token_audit::AuditError),
    /// A compare-and-swap found another value than expected; nothing was written.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A record that must exist does not.
    #[error("not found: {0}")]
    NotFound(String),
    /// A token insert broke the one-active-per-purpose rule or reused an id.
    #[error("token rejected: {0}")]
    TokenRejected(String),
    /// The issuing policy refused, or a token was malformed.
    #[error(transparent)]
    Issue(#[from] token_core::IssueError),
    /// Bad input or parameters.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The key provider failed (file, environment, KMS).
    #[error("key provider: {0}")]
    KeyProvider(String),
    /// The backend failed (I/O, database).
    #[error("backend: {0}")]
    Backend(String),
}

/// Shorthand.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
