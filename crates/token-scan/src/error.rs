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
    /// A container image directory names a path it does not hold: absolute, with `..`, through a
    /// symlink leading out of the directory, or not a regular file (a FIFO, a device, a
    /// directory). Nothing outside the image is read, and nothing blocks.
    #[error("image: {path:?} {why}")]
    ImagePath {
        /// The path as the image names it (cut at 200 characters).
        path: String,
        /// Why it is refused.
        why: &'static str,
    },
    /// A container image's JSON documents (manifests, indexes, configs), held in memory while the
    /// archive is read, exceed [`crate::ImageOptions::max_metadata`].
    #[error("image: its JSON documents exceed {limit} bytes (ImageOptions::max_metadata)")]
    ImageMetadataTooLarge {
        /// The limit.
        limit: u64,
    },
    /// An S3 bucket could not be listed: missing, credentials refused, endpoint unreachable.
    #[error("s3: {0}")]
    S3(String),
    /// A PostgreSQL database could not be scanned: a connection string that does not parse, a
    /// server unreachable, a login refused, a catalog that cannot be read. Never holds the password.
    #[error("postgres: {0}")]
    Postgres(String),
    /// Live validation was set up wrongly: a bound out of its range, a provider's address its
    /// client refuses (the cause named; never credentials written in the address).
    #[error("validation: {0}")]
    Validation(String),
    /// A baseline file does not parse.
    #[error("baseline: {0}")]
    Baseline(String),
}
