//! Durations for people: every message that shows a length of time shows it with these (`2h`,
//! `15m`, `1h30m`), never as a count of seconds.

use std::fmt::Write as _;

use chrono::TimeDelta;

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, i64); 5] = [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)];

/// A duration exactly, in the form durations are written in (`1h30m`, `7d`, `250ms`; `0s` for
/// zero or less): parsing it gives `d` back.
#[must_use]
pub fn format(d: TimeDelta) -> String {
    let mut ms = d.num_milliseconds();
    if ms <= 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in UNITS {
        if ms >= per {
            let _ = write!(out, "{}{unit}", ms / per);
            ms %= per;
        }
    }
    out
}

/// A duration to read at a glance: its two largest units (`3d4h`, `15m`, `42s`), with a `-` when
/// it is negative.
#[must_use]
pub fn approx(d: TimeDelta) -> String {
    let mut ms = d.num_milliseconds().unsigned_abs();
    let mut out = String::new();
    let mut units = 0;
    for (unit, per) in UNITS {
        let per = per.unsigned_abs();
        if ms >= per {
            let _ = write!(out, "{}{unit}", ms / per);
            ms %= per;
            units += 1;
            if units == 2 {
                break;
            }
        }
    }
    if out.is_empty() {
        return "0s".into();
    }
    if d < TimeDelta::zero() { format!("-{out}") } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_durations() {
        assert_eq!(format(TimeDelta::hours(2)), "2h");
        assert_eq!(format(TimeDelta::minutes(90)), "1h30m");
        assert_eq!(format(TimeDelta::milliseconds(250)), "250ms");
        assert_eq!(format(TimeDelta::zero()), "0s");
        assert_eq!(approx(TimeDelta::seconds(3 * 86_400 + 4 * 3600 + 5)), "3d4h");
        assert_eq!(approx(TimeDelta::minutes(15)), "15m");
        assert_eq!(approx(-TimeDelta::seconds(42)), "-42s");
        assert_eq!(approx(TimeDelta::zero()), "0s");
    }
}
