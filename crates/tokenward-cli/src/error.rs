//! The command's error: a message for stderr (never a secret) and an exit status.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error with the exit status it ends the command with (2 unless said).
#[derive(Debug)]
pub(crate) struct CliError {
    what: What,
    code: u8,
    /// The audit log is not the store's (binding) or is behind its witness.
    log_mismatch: bool,
}

/// What went wrong.
#[derive(Debug)]
enum What {
    /// Said in a message.
    Message(String),
    /// An I/O call on a file: `cannot read PATH: …`. There is no `From<io::Error>`: every I/O
    /// call says which file it was about.
    Io { op: IoOp, path: PathBuf, error: std::io::Error },
}

/// What an I/O call was doing with a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum IoOp {
    Read,
    Write,
    Create,
}

impl IoOp {
    fn verb(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Create => "create",
        }
    }
}

impl CliError {
    /// A failure (exit 2).
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self { what: What::Message(msg.into()), code: 2, log_mismatch: false }
    }

    /// An I/O error on `path` (exit 2): `cannot read PATH: …` (`write`, `create`).
    fn io(op: IoOp, path: &Path, error: std::io::Error) -> Self {
        Self { what: What::Io { op, path: path.to_path_buf(), error }, code: 2, log_mismatch: false }
    }

    /// `map_err(CliError::read(path))`: reading `path` failed.
    pub(crate) fn read(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Self::io(IoOp::Read, path, e)
    }

    /// `map_err(CliError::write(path))`: writing `path` failed.
    pub(crate) fn write(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Self::io(IoOp::Write, path, e)
    }

    /// Writing a command's output to `out` (a file) or, when it is `None`, to stdout failed.
    pub(crate) fn output(out: Option<&Path>) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| match out {
            Some(p) => Self::io(IoOp::Write, p, e),
            None => Self::new(format!("cannot write to stdout: {e}")),
        }
    }

    /// `map_err(CliError::create(path))`: creating `path` (a file or a directory) failed.
    pub(crate) fn create(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |e| Self::io(IoOp::Create, path, e)
    }

    /// The audit log is not the one the store is bound to, or is behind its witness.
    pub(crate) fn log_mismatch(mut self) -> Self {
        self.log_mismatch = true;
        self
    }

    /// Exit 1 instead of 2 if the log did not match (where that is the answer asked for).
    pub(crate) fn denied_if_log_mismatch(mut self) -> Self {
        if self.log_mismatch {
            self.code = 1;
        }
        self
    }

    /// A refusal the caller asked about (exit 1): denied, findings.
    pub(crate) fn denied(msg: impl Into<String>) -> Self {
        Self { what: What::Message(msg.into()), code: 1, log_mismatch: false }
    }

    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.what {
            What::Message(msg) => f.write_str(msg),
            What::Io { op, path, error } => write!(f, "cannot {} {}: {error}", op.verb(), path.display()),
        }
    }
}

/// Every library error becomes a message with its whole source chain.
macro_rules! from_error {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for CliError {
            fn from(e: $t) -> Self {
                let mut msg = e.to_string();
                let mut last = msg.clone();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    let s_text = s.to_string();
                    // A cause that says nothing new is left out: one already in the message, or
                    // one that only repeats the cause before it behind a prefix (SQLite's
                    // "Error code 11: database disk image is malformed" under rusqlite's
                    // "database disk image is malformed").
                    if !msg.contains(&s_text) && !s_text.to_lowercase().ends_with(&last.to_lowercase()) {
                        msg.push_str(": ");
                        msg.push_str(&s_text);
                    }
                    last = s_text;
                    source = s.source();
                }
                CliError::new(msg)
            }
        }
    )*};
}

from_error!(
    tokenward::Error,
    tokenward::store::StoreError,
    tokenward::audit::AuditError,
    tokenward::audit::witnesses::WitnessError,
    tokenward::rotate::RotateError,
    tokenward::core::IssueError,
    tokenward::core::errors::PolicyError,
    tokenward::core::errors::ScopeError,
    tokenward::core::errors::NameError,
    tokenward::core::errors::TokenFormatError,
    tokenward::policy::PolicyFileError,
    tokenward::scan::ScanError,
    serde_json::Error,
);

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::CliError;

    #[test]
    fn an_io_error_names_its_file() {
        let path = std::path::Path::new("/no/such/dir/policy.toml");
        let e = std::fs::read_to_string(path).map_err(CliError::read(path)).unwrap_err();
        assert!(matches!(&e.what, super::What::Io { op: super::IoOp::Read, path: p, .. } if p == path));
        assert!(e.to_string().starts_with("cannot read /no/such/dir/policy.toml: "), "{e}");
        let e = std::fs::write(path, "x").map_err(CliError::write(path)).unwrap_err();
        assert!(e.to_string().starts_with("cannot write /no/such/dir/policy.toml: "), "{e}");
    }

    #[test]
    fn a_cause_that_repeats_the_one_before_it_is_said_once() {
        let sqlite = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(11),
            Some("database disk image is malformed".into()),
        );
        let e = tokenward::store::StoreError::Backend(tokenward::store::BackendError::new("sqlite", sqlite));
        let msg = CliError::from(e).to_string();
        assert_eq!(msg.matches("malformed").count(), 1, "{msg}");
        assert!(msg.contains("sqlite") && msg.contains("database disk image is malformed"), "{msg}");
    }
}
