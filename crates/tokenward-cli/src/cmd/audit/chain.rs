//! The chain, the store's binding to it and the witness: verified, pushed, or started anew.

use std::path::PathBuf;

use tokenward::audit::chains::{ChainHead, ChainVerifier};

use super::signed::{read_checkpoint, trusted_key};
use super::{LOG_NAME, entries};
use crate::cli::{Global, Output};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

/// `audit verify`: the hash chain, the store's binding, the witness and a signed checkpoint.
pub(super) async fn verify(
    g: &Global,
    checkpoint: Option<PathBuf>,
    log_only: bool,
    output: Output,
) -> Result<u8> {
    let mut heads: Vec<ChainHead> = Vec::new();
    if !log_only {
        // The store's binding and the witness: a read-only open checks both (exit 1 here,
        // where they are the answer to the question asked).
        let tw = open::open(g, Need::ReadOnly).await.map_err(CliError::denied_if_log_mismatch)?;
        let key = match &checkpoint {
            Some(_) => Some(trusted_key(&tw).await),
            None => None,
        };
        tw.shutdown().await?;
        if let (Some(path), Some(key)) = (&checkpoint, key) {
            let signed = read_checkpoint(path)?;
            let c = key?
                .verify_for(&signed, LOG_NAME)
                .map_err(|e| CliError::denied(format!("checkpoint {}: {e}", path.display())))?;
            heads.push(c.chain_head());
        }
    }
    let mut v = ChainVerifier::new(ChainHead::EMPTY).with_checkpoints(heads.iter().copied());
    for e in entries(g).await? {
        let e = e.map_err(|e| CliError::denied(format!("audit log: {e}")))?;
        v.push(&e).map_err(|e| CliError::denied(format!("audit log: {e}")))?;
    }
    let head = v.finish().map_err(|e| CliError::denied(format!("audit log: {e}")))?;
    if output.json() {
        println!(
            "{}",
            serde_json::json!({
                "verified": true,
                "entries": head.len,
                "head": head.head.to_string(),
                "bound_to_store": (!log_only).then_some(true),
                "witness": if log_only { None } else { g.witness.as_deref() },
                "checkpoint_entries": heads.first().map(|h| h.len),
            })
        );
        return Ok(0);
    }
    println!("audit log verified: {} entries, head {}", head.len, head.head);
    if !log_only {
        println!("it is the log the store is bound to");
        if let Some(w) = &g.witness {
            println!("consistent with the newest head the witness ({w}) holds");
        }
    }
    if let Some(h) = heads.first() {
        println!("the signed checkpoint of {} entries holds: the log still contains it", h.len);
    }
    Ok(0)
}

/// `audit witness`: bind the store to its log's head now and push it to the witness.
pub(super) async fn witness(g: &Global, output: Output) -> Result<u8> {
    if g.witness.is_none() {
        return Err(CliError::new(
            "no witness: give --witness dir:PATH or s3://BUCKET/PREFIX/ (or TOKENWARD_WITNESS)",
        ));
    }
    let tw = open::open(g, Need::Audited).await?;
    let pushed = tw.witness_now().await;
    let location = tw.witness_location().unwrap_or_default();
    tw.shutdown().await?;
    let head = pushed?.ok_or_else(|| CliError::new("no audit log attached"))?;
    if output.json() {
        println!(
            "{}",
            serde_json::json!({"entries": head.len, "head": head.head.to_string(), "witness": location})
        );
        return Ok(0);
    }
    eprintln!(
        "bound the store to the log's {} entries and pushed its signed tree head to {location}",
        head.len
    );
    Ok(0)
}

/// `audit rebind`: a new log, bound in a new epoch, its reason recorded (and in the old log).
pub(super) async fn rebind(
    g: &Global,
    reason: String,
    old_log: Option<PathBuf>,
    output: Output,
) -> Result<u8> {
    if reason.trim().is_empty() {
        return Err(CliError::new("--reason: say why a new log is started"));
    }
    if let Some(old) = &old_log
        && std::fs::canonicalize(old).ok() == std::fs::canonicalize(g.audit_path()).ok()
    {
        return Err(CliError::new("--old-log is the log being bound: move the old one away first"));
    }
    let b = open::builder(g, false)?.new_audit_log(reason.clone());
    let tw = open::open_with(g, Need::Audited, b).await?;
    let head = tw.audit_writer().map(|w| w.head());
    let actor = tw.actor().clone();
    let now = tw.clock().now();
    tw.shutdown().await?;
    let head = head.ok_or_else(|| CliError::new("no audit log attached"))?;
    if let Some(old) = &old_log {
        use tokenward::audit::{Action, AuditEvent, FileLog, file::FileSync};
        let log = FileLog::open_shared(old, FileSync::Data)?;
        let event = AuditEvent::new(now, actor, Action::Store("new-log".into()))
            .attr("reason", reason.as_str())
            .attr("continued_in", g.audit_path().display().to_string())
            .attr("new_log_entries", head.len.to_string())
            .attr("new_log_head", head.head.to_string());
        log.append_now(&[event])?;
        if !output.json() {
            eprintln!("recorded the new log in {}", old.display());
        }
    }
    if output.json() {
        println!(
            "{}",
            serde_json::json!({
                "audit_log": g.audit_path().display().to_string(),
                "entries": head.len,
                "head": head.head.to_string(),
                "old_log": old_log.as_ref().map(|p| p.display().to_string()),
            })
        );
        return Ok(0);
    }
    eprintln!(
        "the store is bound to a new audit log, {} ({} entries, head {}); the reason is recorded in it",
        g.audit_path().display(),
        head.len,
        head.head
    );
    Ok(0)
}
