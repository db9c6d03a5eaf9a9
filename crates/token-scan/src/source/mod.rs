//! Where scans read from: byte streams (on [`crate::Scanner`] itself), directory trees, git history.

use std::sync::Arc;

pub(crate) mod git;
#[cfg(feature = "images")]
pub(crate) mod image;
#[cfg(feature = "s3")]
pub(crate) mod s3;
#[cfg(feature = "tree")]
pub(crate) mod tree;

/// Running totals a scan reports to a progress callback.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Progress {
    /// Files (blobs) scanned so far.
    pub files: u64,
    /// Bytes scanned so far.
    pub bytes: u64,
}

/// A progress callback (called from scanning threads).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;
