//! What reading an inventory source can fail with.

/// A source could not be read. Never holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// An AWS call failed (AWS's code and message, or the transport's).
    #[cfg(feature = "aws")]
    #[error("aws-iam inventory: {0}")]
    Aws(#[from] token_http::aws::AwsError),
    /// An OpenBao call failed.
    #[cfg(feature = "vault")]
    #[error("openbao inventory: {0}")]
    OpenBao(#[from] token_http::openbao::OpenBaoError),
    /// A source answered with something unreadable.
    #[error("{source_name} inventory: {detail}")]
    Malformed {
        /// The source.
        source_name: &'static str,
        /// What was wrong.
        detail: String,
    },
}
