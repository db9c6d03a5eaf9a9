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
    /// The store's KEK is being moved (a move was interrupted): it opens only with the move
    /// itself, which finishes it (`tokenward rekey --to <to>`; [`crate::keys::KekMove`]).
    #[error(
        "the store is being moved to KEK {to} and the move is unfinished: run it again to finish it (`tokenward rekey --to {to}`)"
    )]
    KekMoveUnfinished {
        /// The KEK it is moving to.
        to: String,
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
    /// An existing store lacks something every store holds from its creation (its key check, KDF
    /// parameters, record key, digest key or an integrity marker): rows were deleted outside
    /// Tokenward. Nothing is created, re-tagged or migrated in its place; the store does not open.
    #[error("tampered store: {what} is missing{hint}")]
    Missing {
        /// What is missing.
        what: String,
        /// What the operator may do about it (empty, or starting with `; `).
        hint: &'static str,
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
    /// The key provider failed (file, environment, KMS); the cause is its [`source`](std::error::Error::source).
    #[error(transparent)]
    KeyProvider(KeyProviderError),
    /// The backend failed (I/O, database); the cause is its [`source`](std::error::Error::source).
    #[error(transparent)]
    Backend(BackendError),
    /// This backend cannot announce other instances' changes
    /// ([`Backend::listen_revocations`](crate::Backend::listen_revocations)): they arrive through
    /// the periodic catch-up alone.
    #[error("this backend cannot follow other instances' revocations: they arrive through the catch-up")]
    NoRevocationFeed,
    /// A bounded cache could not read a missing token's record: the lookup budget is spent, or the
    /// backend failed or did not answer in time (the cause, if any, is its
    /// [`source`](std::error::Error::source)).
    #[error("token lookup unavailable: {reason}")]
    LookupUnavailable {
        /// Why (never the token).
        reason: &'static str,
        /// The backend's error, when it failed.
        #[source]
        source: Option<Box<StoreError>>,
    },
}

/// An underlying error, boxed.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

macro_rules! failure {
    ($(#[$doc:meta])* $name:ident, $label:literal) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name {
            context: String,
            source: Option<Cause>,
        }

        impl $name {
            /// A failure with what was being done and the error that caused it.
            pub fn new(context: impl Into<String>, source: impl Into<Cause>) -> Self {
                Self { context: context.into(), source: Some(source.into()) }
            }

            /// A failure with no underlying error.
            pub fn msg(context: impl Into<String>) -> Self {
                Self { context: context.into(), source: None }
            }

            /// What was being done.
            pub fn context(&self) -> &str {
                &self.context
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!($label, ": {}"), self.context)
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
            }
        }

        impl From<String> for $name {
            fn from(context: String) -> Self {
                Self::msg(context)
            }
        }

        impl From<&str> for $name {
            fn from(context: &str) -> Self {
                Self::msg(context)
            }
        }
    };
}

failure!(
    /// A backend's failure: what it was doing (`"sqlite"`, `"postgres pool"`, …) and, as its
    /// source, the database's or the OS's own error.
    BackendError,
    "backend"
);
failure!(
    /// A key provider's failure: what it was doing (`"reading key file …"`) and, as its source,
    /// the underlying error when there is one.
    KeyProviderError,
    "key provider"
);

/// Shorthand.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
