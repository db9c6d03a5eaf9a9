//! Entries out of the log: shown as lines or JSON, or exported as verified JSON lines.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;

use tokenward::audit::AuditQuery;
use tokenward::audit::chains::{ChainHead, ChainVerifier, Entry};
use tokenward::core::chrono::Utc;
use tokenward::core::private_fs;

use super::entries;
use crate::cli::{Global, Output};
use crate::cmd::tokens::token_id;
use crate::error::{CliError, Result};
use crate::out;

/// One entry as a line of text: when, who, what, which token, how it ended, its attributes.
fn entry_line(e: &Entry) -> String {
    let ev = &e.event;
    let action = match ev.action.detail() {
        Some(d) => format!("{}({d})", ev.action.name()),
        None => ev.action.name().to_owned(),
    };
    let actor = match &ev.actor {
        tokenward::audit::Actor::Principal(p) => format!("principal:{p}"),
        tokenward::audit::Actor::Operator(o) => format!("operator:{o}"),
        tokenward::audit::Actor::System => "system".into(),
        tokenward::audit::Actor::Anonymous => "anonymous".into(),
        other => format!("{other:?}"),
    };
    let outcome = match &ev.outcome {
        tokenward::audit::Outcome::Success => "ok".to_owned(),
        tokenward::audit::Outcome::Failure(r) => format!("failed: {r}"),
    };
    let attrs: Vec<String> = ev.attrs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!(
        "{:>6}  {}  {actor}  {action}  {}  {outcome}{}{}",
        e.seq,
        out::time(ev.time),
        ev.token.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        ev.source.as_deref().map(|s| format!("  from {s}")).unwrap_or_default(),
        if attrs.is_empty() { String::new() } else { format!("  {}", attrs.join(" ")) }
    )
}

/// `audit show`: the entries a query selects, the newest `limit` of them.
pub(super) async fn show(
    g: &Global,
    token: Option<String>,
    since: Option<String>,
    action: Option<String>,
    limit: Option<usize>,
    output: Output,
) -> Result<u8> {
    let mut q = AuditQuery::new();
    if let Some(t) = &token {
        q = q.token(token_id(t)?);
    }
    if let Some(a) = &action {
        q = q.action(a.clone());
    }
    if let Some(s) = &since {
        let now = Utc::now();
        q = q.between(out::since(s, now)?, now + tokenward::core::chrono::TimeDelta::days(36_500));
    }
    let mut kept: VecDeque<Entry> = VecDeque::new();
    for e in entries(g).await? {
        let e = e?;
        if q.matches(&e) {
            kept.push_back(e);
            if limit.is_some_and(|l| kept.len() > l) {
                kept.pop_front();
            }
        }
    }
    let mut stdout = crate::out::Stdout;
    for e in &kept {
        let line = if output.json() { serde_json::to_string(e)? } else { entry_line(e) };
        writeln!(stdout, "{line}").map_err(CliError::output(None))?;
    }
    Ok(0)
}

/// `audit export`: every entry as a JSON line, each link checked as it goes out.
pub(super) async fn export(g: &Global, dest: Option<PathBuf>) -> Result<u8> {
    // Every entry, checked link by link as it goes out: an export is of a verified log.
    let mut v = ChainVerifier::new(ChainHead::EMPTY);
    let mut sink: Box<dyn Write> = match &dest {
        Some(p) => Box::new(std::io::BufWriter::new(private_fs::create(p).map_err(CliError::create(p))?)),
        None => Box::new(std::io::BufWriter::new(crate::out::Stdout)),
    };
    let mut line = Vec::with_capacity(512);
    for e in entries(g).await? {
        let e = e?;
        v.push(&e).map_err(|e| CliError::new(format!("audit log: {e}; export stopped")))?;
        line.clear();
        e.json_line_into(&mut line);
        sink.write_all(&line).map_err(CliError::output(dest.as_deref()))?;
    }
    sink.flush().map_err(CliError::output(dest.as_deref()))?;
    let head = v.finish().map_err(|e| CliError::new(format!("audit log: {e}")))?;
    eprintln!("exported {} verified entries, head {}", head.len, head.head);
    Ok(0)
}
