//! `tokenward report`: the posture report — what an auditor asks about a store's tokens and
//! credentials ([`tokenward::posture`], the analysis), read here from the store, the stored policy
//! and the audit log, and rendered as a table, stable JSON (`docs/cli.md`) or a self-contained HTML
//! page with inline SVG charts (no network).

pub(crate) mod html;
mod svg;

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use tokenward::Tokenward;
use tokenward::core::chrono::{DateTime, TimeDelta, Utc};
use tokenward::core::private_fs;
use tokenward::policy::PolicyFile;
use tokenward::posture::inventory::InventoryThresholds;
use tokenward::posture::{self, CredentialState, Inputs, Posture, Thresholds};
use tokenward::store::TokenQuery;

pub(crate) use html::html;

use crate::cli::{Global, Output};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Write HTML here (otherwise text to stdout).
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: Output,
    /// A token expiring within this long is "close to expiry".
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// A token unused this long is "unused".
    #[arg(long, default_value = "30d")]
    pub(crate) unused_for: String,
    /// Add the inventory (`tokenward inventory`, default thresholds): every credential the
    /// declared credentials' accounts and servers show (reads their admin secrets, audited).
    #[arg(long)]
    pub(crate) inventory: bool,
}

/// Reads the store's tokens, the audit log `g` names (its chain checked) and each declared
/// credential's rotation state, and analyses them.
pub(crate) async fn build_with(
    tw: &Tokenward,
    file: &PolicyFile,
    policy_version: u64,
    g: &Global,
    t: &Thresholds,
) -> Result<Posture> {
    let now = tw.clock().now();
    let tokens = tw.tokens().tokens(&TokenQuery::Unexpired { at: DateTime::<Utc>::MIN_UTC }).await?;
    let source = crate::cmd::audit::entries(g).await;
    let spinner = crate::progress::spinner(g, "reading the audit log");
    let (entries, audit_status) = posture::read_audit(source, |n| {
        spinner.set_message(format!("reading the audit log: {n} entries"));
    });
    spinner.finish_and_clear();
    let bar = crate::progress::bar(g, file.credentials.len() as u64, "reading rotations");
    let mut credentials = Vec::with_capacity(file.credentials.len());
    for c in &file.credentials {
        bar.inc(1);
        let record = tw.rotator().record(&c.secret_name()?).await?;
        credentials.push(CredentialState::new(
            c.name.clone(),
            record.promoted_at_ms.and_then(DateTime::from_timestamp_millis),
            c.schedule.as_ref().and_then(|s| s.get().ok()),
        ));
    }
    bar.finish_and_clear();
    let inputs = Inputs {
        now,
        policy_version,
        tokens: &tokens,
        audit: &entries,
        audit_status: &audit_status,
        credentials: &credentials,
    };
    Ok(posture::analyze(inputs, t))
}

/// Builds the report for an open handle, reading the audit log `g` names.
pub(crate) async fn build(tw: &Tokenward, g: &Global, t: &Thresholds) -> Result<Posture> {
    let (file, version) = stored(tw).await?;
    build_with(tw, &file, version, g, t).await
}

/// A number of days (the report's JSON keeps them as numbers) as a duration for people, through
/// the one formatter: `7d`, `3d4h`, `15m`.
pub(crate) fn days(d: f64) -> String {
    out::fmt_delta(days_delta(d))
}

/// How long ago a number of days was, for people: `just now` under a minute, else `3d4h ago`.
pub(crate) fn days_ago(d: f64) -> String {
    let delta = days_delta(d);
    if delta < TimeDelta::minutes(1) {
        "just now".to_owned()
    } else {
        format!("{} ago", out::fmt_delta(delta))
    }
}

/// `d` days, to the millisecond.
fn days_delta(d: f64) -> TimeDelta {
    // Bounded to ±100 years before the cast (a report's ages and periods are far shorter).
    TimeDelta::milliseconds((d.clamp(-36_500.0, 36_500.0) * 86_400_000.0).round() as i64)
}

/// A token id with who holds it and what for, when the report knows.
pub(crate) fn token_label(p: &Posture, id: &str) -> String {
    match p.named_tokens.get(id) {
        Some(l) => format!("{id} ({}, {})", l.principal, l.purpose),
        None => id.to_owned(),
    }
}

pub(crate) fn text(p: &Posture) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "tokenward posture report, {} (policy version {})",
        out::time(p.generated_at),
        p.policy_version
    );
    let counts: Vec<String> = p.tokens.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let _ = writeln!(s, "tokens: {}", if counts.is_empty() { "none".into() } else { counts.join(", ") });
    let _ =
        writeln!(s, "active tokens: {} bound to a key (DPoP), {} bearer", p.binding.bound, p.binding.bearer);
    let _ = writeln!(
        s,
        "audit log: {} ({} entries)",
        if p.audit.verified {
            "verified".to_owned()
        } else {
            format!("FAILS: {}", p.audit.error.clone().unwrap_or_default())
        },
        p.audit.entries
    );
    if p.findings.is_empty() {
        let _ = writeln!(s, "no findings");
    }
    for f in &p.findings {
        let _ = writeln!(s, "{:<6}  {:<27}  {}", f.severity.as_str(), f.kind.as_str(), f.summary);
        for t in &f.tokens {
            let _ = writeln!(s, "        token {}", token_label(p, t));
        }
        if let Some(c) = &f.credential {
            let _ = writeln!(s, "        credential {c}");
        }
    }
    // Each credential's last revocation proof: how long its provider took to refuse the old one.
    for c in &p.rotation {
        if let Some(proof) = c.history.iter().rev().find(|h| h.step == "revocation_confirmed") {
            let _ = writeln!(
                s,
                "credential {}: last revocation ({}) confirmed {} ms after it, at {}",
                c.name,
                proof.handle.as_deref().unwrap_or("?"),
                proof.after_ms.unwrap_or_default(),
                out::time(proof.at)
            );
        }
    }
    if let Some(inv) = &p.inventory {
        let _ = write!(s, "\ninventory\n{}", crate::cmd::inventory::text(inv));
    }
    s
}

pub(crate) async fn run(g: &Global, a: ReportArgs) -> Result<u8> {
    let t = Thresholds {
        expiring_within: out::duration(&a.expiring_within, "--expiring-within")?,
        unused_for: out::duration(&a.unused_for, "--unused-for")?,
    };
    // The inventory reads the declared admin secrets: audited.
    let tw = open::open(g, if a.inventory { Need::Audited } else { Need::ReadOnly }).await?;
    let posture = async {
        let (file, version) = stored(&tw).await?;
        let mut posture = build_with(&tw, &file, version, g, &t).await?;
        if a.inventory {
            posture.inventory = Some(crate::cmd::inventory::read(&tw, InventoryThresholds::default()).await?);
        }
        Ok::<_, CliError>(posture)
    }
    .await;
    tw.shutdown().await?;
    let posture = posture?;
    if let Some(path) = &a.html {
        private_fs::write(path, html(&posture)).map_err(CliError::write(path))?;
        eprintln!("wrote the report to {}", path.display());
    }
    if a.output.json() {
        println!("{}", serde_json::to_string_pretty(&posture)?);
    } else if a.html.is_none() {
        print!("{}", text(&posture));
    }
    let inventory_findings =
        posture.inventory.as_ref().is_some_and(|i| i.entries.iter().any(|e| !e.findings.is_empty()));
    Ok(if posture.findings.is_empty() && !inventory_findings { 0 } else { 1 })
}
