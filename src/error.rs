//! The front door's error: whichever crate failed, with its error as the source.

/// What a [`crate::Tokenward`] call can fail with. Never carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The builder was given something it cannot open (a bad prefix, no key, no runtime).
    #[error("configuration: {0}")]
    Config(String),
    /// The store failed, refused, or found a record corrupted.
    #[error(transparent)]
    Store(#[from] token_store::StoreError),
    /// The audit log failed (with fail-closed auditing, the operation was refused).
    #[error(transparent)]
    Audit(#[from] token_audit::AuditError),
    /// A rotation or emergency failed.
    #[error(transparent)]
    Rotate(#[from] token_rotate::RotateError),
    /// A token could not be issued (policy, format).
    #[error(transparent)]
    Issue(#[from] token_core::IssueError),
    /// A partner alert was refused (bad signature, replay, oversized, malformed).
    #[cfg(feature = "github-alerts")]
    #[error(transparent)]
    Alert(#[from] token_scan::alerts::AlertError),
}

/// Results of the front door.
pub type Result<T, E = Error> = std::result::Result<T, E>;
