//! The policy file's error: what does not parse or does not make sense, and where. A leaf: the
//! front door's [`crate::Error`] wraps it without importing the rest of the policy.

/// A policy file that does not parse or does not make sense, with what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy file: {0}")]
pub struct PolicyFileError(pub(crate) String);

impl PolicyFileError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

impl From<token_rotate::declare::DurationError> for PolicyFileError {
    fn from(e: token_rotate::declare::DurationError) -> Self {
        Self(e.to_string())
    }
}

impl From<token_rotate::declare::DeclareError> for PolicyFileError {
    fn from(e: token_rotate::declare::DeclareError) -> Self {
        Self(e.to_string())
    }
}
