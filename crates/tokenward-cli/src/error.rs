//! The command's error: a message for stderr (never a secret) and an exit status.

use std::fmt;

/// An error with the exit status it ends the command with (2 unless said).
#[derive(Debug)]
pub(crate) struct CliError {
    msg: String,
    code: u8,
    /// The audit log is not the store's (binding) or is behind its witness.
    log_mismatch: bool,
}

impl CliError {
    /// A failure (exit 2).
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        Self { msg: msg.into(), code: 2, log_mismatch: false }
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
        Self { msg: msg.into(), code: 1, log_mismatch: false }
    }

    pub(crate) fn code(&self) -> u8 {
        self.code
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        // The library's errors keep their cause as a source: show the chain.
        Ok(())
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
    std::io::Error,
    serde_json::Error,
);

pub(crate) type Result<T, E = CliError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::CliError;

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
