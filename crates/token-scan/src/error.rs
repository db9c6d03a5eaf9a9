//! The crate's error type. No variant ever holds a found secret.

/// A scan could not run (as opposed to a file it skipped, which the report lists).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// A rule (built-in, or from a rules file) does not compile.
    #[error("rules: {0}")]
    Rules(String),
    /// Reading failed where nothing else could be scanned.
    #[error("reading {what}: {source}")]
    Io {
        /// What was being read.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The path to scan does not exist or is not a directory or file.
    #[error("nothing to scan at {0}")]
    NotFound(String),
    /// A git repository could not be read (not a repository, `git` missing, a broken object).
    #[error("git: {0}")]
    Git(String),
    /// A container image could not be read (not an image archive or layout, a missing manifest).
    #[error("image: {0}")]
    Image(String),
    /// An S3 bucket could not be listed: missing, credentials refused, endpoint unreachable.
    #[error("s3: {0}")]
    S3(String),
    /// A baseline file does not parse.
    #[error("baseline: {0}")]
    Baseline(String),
}
