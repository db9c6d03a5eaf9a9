//! Durations in a policy file: `90d`, `1h30m`, `500ms`. The rule is written once, in
//! [`token_rotate::declare`] (a target's declaration has durations too); a duration field is a
//! [`Duration`], parsed once when the file is read and written back as given.

use token_core::chrono::TimeDelta;
pub use token_rotate::declare::{Duration, format_duration};

use super::error::PolicyFileError;

/// Parses a duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`
/// (`90d`, `1h30m`, `500ms`). Zero and more than 100 years are refused (so that a time plus or
/// minus any parsed duration stays inside the calendar).
pub fn parse_duration(text: &str) -> Result<TimeDelta, PolicyFileError> {
    Ok(token_rotate::declare::parse_duration(text)?)
}
