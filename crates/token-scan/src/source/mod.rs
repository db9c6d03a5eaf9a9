//! Where scans read from: byte streams (on [`crate::Scanner`] itself), directory trees, git history,
//! container images, S3 buckets, PostgreSQL databases.

use std::sync::Arc;

pub(crate) mod git;
#[cfg(feature = "images")]
pub(crate) mod image;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
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

/// Logs how a scan of `place` went (at debug: a scan's report is its caller's to show): what it
/// scanned and found, what it could not read, or why it failed. Never a matched value.
pub(crate) fn logged(
    source: &'static str,
    place: &dyn std::fmt::Display,
    result: Result<crate::Report, crate::ScanError>,
) -> Result<crate::Report, crate::ScanError> {
    match &result {
        Ok(r) => {
            for s in &r.skipped {
                tracing::debug!(source, what = %s.what, reason = %s.reason, "skipped");
            }
            tracing::debug!(
                source,
                place = %place,
                files = r.files,
                bytes = r.bytes,
                findings = r.findings.len(),
                skipped = r.skipped.len(),
                "scanned"
            );
        }
        Err(e) => tracing::debug!(source, place = %place, error = %e, "the scan failed"),
    }
    result
}
