//! Output helpers: token rows as text and JSON (never a secret), times, colour.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::{Value, json};
use tokenward::core::chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use tokenward::core::duration::format as format_duration;
use tokenward::core::lookup::TokenStatus;
use tokenward::policy::parse_duration;
use tokenward::store::TokenRow;

use crate::cli::{Color, Global};
use crate::error::{CliError, Result};

/// A duration argument (`7d`, `1h30m`).
pub(crate) fn duration(text: &str, what: &str) -> Result<TimeDelta> {
    parse_duration(text).map_err(|e| CliError::new(format!("{what}: {e}")))
}

/// A point in time: RFC 3339, or a duration ago (`1h` → an hour ago).
pub(crate) fn since(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    Ok(now - duration(text, "--since (an RFC 3339 time or a duration ago)")?)
}

pub(crate) fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A token status's name (`active`, `expired`, `revoked`, `not_yet_valid`).
pub(crate) use tokenward::posture::status_name;

/// Whether to colour stdout.
pub(crate) fn color(g: &Global) -> bool {
    match g.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}

/// A token row as JSON: every field of its record except the digest, plus usage and status.
pub(crate) fn row_json(row: &TokenRow, now: DateTime<Utc>) -> Value {
    let r = &row.record;
    json!({
        "id": r.id.to_string(),
        "principal": r.principal.as_str(),
        "purpose": r.purpose.as_str(),
        "scopes": r.scopes.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "status": status_name(r.status_at(now)),
        "created_at": time(r.created_at),
        "not_before": time(r.not_before),
        "expires_at": time(r.expires_at),
        "revoked_at": r.revoked_at.map(time),
        "parent": r.parent.map(|p| p.to_string()),
        "replaces": r.replaces.map(|p| p.to_string()),
        "max_uses": r.limits.max_uses,
        "idle_timeout": r.limits.idle_timeout.map(format_duration),
        "last_used": row.last_used.map(time),
        "uses": row.uses,
    })
}

/// A listed token as JSON: a tampered record says only its id, `"status": "tampered"` and why.
pub(crate) fn listed_json(t: &tokenward::store::ListedToken, now: DateTime<Utc>) -> Value {
    match &t.tampered {
        Some(why) => json!({"id": t.row.record.id.to_string(), "status": "tampered", "tampered": why}),
        None => row_json(&t.row, now),
    }
}

/// A listed token as one text line (a tampered record: its id, `tampered` and why).
pub(crate) fn listed_line(t: &tokenward::store::ListedToken, now: DateTime<Utc>) -> String {
    match &t.tampered {
        Some(why) => format!("{}  tampered  {why}", t.row.record.id),
        None => row_line(&t.row, now),
    }
}

/// A token row as one text line.
pub(crate) fn row_line(row: &TokenRow, now: DateTime<Utc>) -> String {
    let r = &row.record;
    let status = r.status_at(now);
    let when = match status {
        TokenStatus::Revoked => format!("revoked {}", r.revoked_at.map(time).unwrap_or_default()),
        TokenStatus::Expired => format!("expired {}", time(r.expires_at)),
        _ => format!("expires in {}", fmt_delta(r.expires_at - now)),
    };
    let used = match row.last_used {
        Some(t) => format!("last used {}", time(t)),
        None => "never used".into(),
    };
    format!(
        "{}  {}  {}  {}  {}  {}  {}",
        r.id,
        status_name(status),
        r.principal.as_str(),
        r.purpose.as_str(),
        r.scopes.as_str(),
        when,
        used
    )
}

/// A duration for people: its two largest units (`3d4h`, `15m`, `42s`).
pub(crate) use tokenward::core::duration::approx as fmt_delta;

/// Whether standard output's reader has gone (`tokenward … | head`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Standard output, for everything the command prints: a reader that has gone away (a closed
/// pipe) is the end of its interest, not an error — what is left is discarded, with no panic, no
/// message and the command's own exit status (the command still finishes: its audit entries and
/// the store's shutdown are not cut short). Any other write error is one.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Stdout;

impl Stdout {
    fn quiet(r: std::io::Result<usize>, len: usize) -> std::io::Result<usize> {
        match r {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                STDOUT_CLOSED.store(true, Ordering::Relaxed);
                Ok(len)
            }
            r => r,
        }
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(buf.len());
        }
        Self::quiet(std::io::stdout().lock().write(buf), buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Ok(());
        }
        Self::quiet(std::io::stdout().lock().flush().map(|()| 0), 0).map(|_| ())
    }
}

/// Writes to [`Stdout`]: `println!` that a closed pipe does not panic. Another write error
/// (a full disk behind `>`) ends the command with it, as `println!`'s panic did, but as an error.
pub(crate) fn print(args: std::fmt::Arguments<'_>) {
    if let Err(e) = Stdout.write_fmt(args) {
        eprintln!("tokenward: writing to stdout: {e}");
        std::process::exit(2);
    }
}
