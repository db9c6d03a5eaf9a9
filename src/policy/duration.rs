//! Durations in a policy file: `90d`, `1h30m`, `500ms`, read and written back the same way.

use std::fmt::Write as _;

use token_core::chrono::TimeDelta;

use super::error::PolicyFileError;

/// [`parse_duration`], with zero allowed (`0s`, `0m`, `0`).
pub(crate) fn parse_duration_or_zero(text: &str) -> Result<TimeDelta, PolicyFileError> {
    let t = text.trim();
    let unit = t.trim_start_matches('0');
    if unit.len() < t.len() && ["", "ms", "s", "m", "h", "d", "w"].contains(&unit) {
        return Ok(TimeDelta::zero());
    }
    parse_duration(text)
}

/// Parses a duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`
/// (`90d`, `1h30m`, `500ms`). Zero and more than 100 years are refused (so that a time plus or
/// minus any parsed duration stays inside the calendar).
pub fn parse_duration(text: &str) -> Result<TimeDelta, PolicyFileError> {
    let bad = || PolicyFileError::new(format!("duration {text:?}: expected e.g. 30d, 1h30m, 90s"));
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

/// Writes a duration the way [`parse_duration`] reads it (`1d2h`, `15m`, `500ms`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut ms = d.num_milliseconds();
    if ms <= 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= per {
            let _ = write!(out, "{}{unit}", ms / per);
            ms %= per;
        }
    }
    out
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
}
