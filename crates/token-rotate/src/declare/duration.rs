//! Durations as a policy file writes them: `90d`, `1h30m`, `500ms`. A [`Duration`] is parsed once,
//! when its file is read, and written back as it was given.

use std::fmt;

use chrono::TimeDelta;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration that does not parse (or is zero where zero is not allowed, or over 100 years).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("duration {0:?}: expected e.g. 30d, 1h30m, 90s")]
pub struct DurationError(String);

/// Parses a duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`
/// (`90d`, `1h30m`, `500ms`). Zero and more than 100 years are refused (so that a time plus or
/// minus any parsed duration stays inside the calendar).
pub fn parse_duration(text: &str) -> Result<TimeDelta, DurationError> {
    let bad = || DurationError(text.to_owned());
    let mut total = TimeDelta::zero();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms_per: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(ms_per).ok_or_else(bad)?;
        total = total.checked_add(&TimeDelta::try_milliseconds(ms).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if total <= TimeDelta::zero() || total > TimeDelta::days(36_500) {
        return Err(bad());
    }
    Ok(total)
}

/// [`parse_duration`], with zero allowed (`0s`, `0m`, `0`).
pub fn parse_duration_or_zero(text: &str) -> Result<TimeDelta, DurationError> {
    let t = text.trim();
    let unit = t.trim_start_matches('0');
    if unit.len() < t.len() && ["", "ms", "s", "m", "h", "d", "w"].contains(&unit) {
        return Ok(TimeDelta::zero());
    }
    parse_duration(text)
}

/// Writes a duration the way [`parse_duration`] reads it (`1d2h`, `15m`, `500ms`): the one
/// formatter every message uses, [`token_core::duration::format`].
pub fn format_duration(d: TimeDelta) -> String {
    token_core::duration::format(d)
}

/// A duration field of a policy file: its text, parsed once when the file is read, written back
/// as given. A text that does not parse is kept, and refused by [`Duration::get`] (so that the
/// file's check can say which field of which credential it is).
#[derive(Clone, PartialEq, Eq)]
pub struct Duration {
    text: String,
    /// Zero allowed here; [`Duration::get`] refuses it.
    parsed: Result<TimeDelta, DurationError>,
}

impl Duration {
    /// Parses `text` (kept, with the error, if it does not parse).
    pub fn new(text: impl Into<String>) -> Self {
        let text = text.into();
        let parsed = parse_duration_or_zero(&text);
        Self { text, parsed }
    }

    /// The duration, which must not be zero ([`parse_duration`]).
    pub fn get(&self) -> Result<TimeDelta, DurationError> {
        match &self.parsed {
            Ok(d) if *d > TimeDelta::zero() => Ok(*d),
            Ok(_) => Err(DurationError(self.text.clone())),
            Err(e) => Err(e.clone()),
        }
    }

    /// The duration, zero allowed ([`parse_duration_or_zero`]).
    pub fn get_or_zero(&self) -> Result<TimeDelta, DurationError> {
        self.parsed.clone()
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Debug for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl From<&str> for Duration {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for Duration {
    fn from(text: String) -> Self {
        Self::new(text)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::new(String::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print_back() {
        for (t, ms) in [("90d", 90 * 86_400_000), ("1h30m", 5_400_000), ("500ms", 500), ("2w", 1_209_600_000)]
        {
            let d = parse_duration(t).unwrap();
            assert_eq!(d.num_milliseconds(), ms, "{t}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for bad in ["", "0s", "h", "1", "1y", "-1h", "1h-", "99999999999999999999d", " 1 h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_duration_field_is_parsed_once_and_written_back_as_given() {
        let d = Duration::new("1h30m");
        assert_eq!((d.get(), d.as_str()), (Ok(TimeDelta::minutes(90)), "1h30m"));
        assert_eq!(Duration::new("0s").get_or_zero(), Ok(TimeDelta::zero()));
        assert!(Duration::new("0s").get().is_err() && Duration::new("soon").get_or_zero().is_err());
    }
}
