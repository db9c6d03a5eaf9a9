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
    /// The audit log is not the one the store is bound to (missing, shorter, another, a fork), or
    /// the store has no binding: fail closed.
    #[error(transparent)]
    Binding(#[from] token_audit::witnesses::BindingError),
    /// The witness holds a newer signed tree head than the log (a rollback of store and log), or
    /// a record that does not verify, or could not be reached.
    #[error(transparent)]
    Witness(#[from] token_audit::witnesses::WitnessError),
    /// A rotation or emergency failed.
    #[error(transparent)]
    Rotate(#[from] token_rotate::RotateError),
    /// A token could not be issued (policy, format).
    #[error(transparent)]
    Issue(#[from] token_core::IssueError),
    /// A policy file does not parse or does not make sense.
    #[error(transparent)]
    Policy(#[from] crate::policy::error::PolicyFileError),
    /// The stored policy is not the version the caller expected (someone applied another first).
    #[error("policy conflict: expected stored version {expected}, found {found}")]
    PolicyConflict {
        /// The version the caller expected.
        expected: u64,
        /// The version stored.
        found: u64,
    },
    /// The policy would orphan these active tokens (their principal or scopes are gone); revoke
    /// them first or apply with `allow_orphans`.
    #[error("the policy would orphan {} active token(s): {}", .0.len(), ids(.0))]
    PolicyOrphans(Vec<token_core::TokenId>),
    /// An exchange of an OIDC subject token was refused (and audited as such).
    #[cfg(feature = "federation")]
    #[error(transparent)]
    Exchange(#[from] crate::federation::refusal::ExchangeError),
    /// An inventory source could not be read.
    #[error(transparent)]
    Inventory(#[from] crate::posture::inventory::error::InventoryError),
    /// A partner alert was refused (bad signature, replay, oversized, malformed).
    #[cfg(feature = "github-alerts")]
    #[error(transparent)]
    Alert(#[from] token_scan::alerts::AlertError),
}

impl From<token_rotate::TargetError> for Error {
    fn from(e: token_rotate::TargetError) -> Self {
        Self::Rotate(e.into())
    }
}

impl From<token_rotate::declare::DurationError> for Error {
    fn from(e: token_rotate::declare::DurationError) -> Self {
        Self::Policy(e.into())
    }
}

fn ids(ids: &[token_core::TokenId]) -> String {
    let shown: Vec<String> = ids.iter().take(10).map(ToString::to_string).collect();
    let more = if ids.len() > 10 { format!(" and {} more", ids.len() - 10) } else { String::new() };
    format!("{}{more}", shown.join(", "))
}

/// Results of the front door.
pub type Result<T, E = Error> = std::result::Result<T, E>;
