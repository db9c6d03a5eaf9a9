//! `rotate NAME`, `rotate --due`, `daemon`: the declared credentials under rotation.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::json;
use tokenward::Tokenward;
use tokenward::core::chrono::{DateTime, Utc};
use tokenward::core::private_fs;
use tokenward::policy::PolicyFile;
use tokenward::rotate::retire::Usage;
use tokenward::rotate::{Rotation, Scheduler};

use crate::cli::{Global, Output};
use crate::cmd::alerts::AlertSinks;
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct AdoptArgs {
    /// A credential declared in the stored policy (`aws-iam-access-key`, `openbao-token`).
    pub(crate) name: String,
    /// The credential's public id when its secret does not name it: an access key id (`AKIA…`).
    /// For an OpenBao token, its accessor (optional: checked when given).
    #[arg(long)]
    pub(crate) handle: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// A credential declared in the policy.
    #[arg(required_unless_present = "due", conflicts_with = "due")]
    pub(crate) name: Option<String>,
    /// Rotate every declared credential whose schedule is due (one scheduler pass).
    #[arg(long)]
    pub(crate) due: bool,
    /// Emergency: revoke and replace now, in the declared order.
    #[arg(long, conflicts_with = "due")]
    pub(crate) emergency: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// How often to print what the scheduler did.
    #[arg(long, default_value = "10s")]
    pub(crate) tick: String,
    /// Write the posture report (HTML) here every `--report-every`.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    #[arg(long, default_value = "1h")]
    pub(crate) report_every: String,
    /// Check for alerts this often (each alert is sent once while it lasts).
    #[arg(long, default_value = "5m")]
    pub(crate) alerts_every: String,
    /// A token expiring within this long is an alert.
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// Also read the inventory at every alert check (`alerts check --inventory`).
    #[arg(long)]
    pub(crate) inventory: bool,
    /// Also scan these trees at every alert check.
    #[arg(long)]
    pub(crate) scan: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) sinks: AlertSinks,
}

/// Exit statuses of `rotate NAME` beyond 0 (promoted everywhere), 1 (rolled back cleanly) and 2
/// (an error): nothing started (the previous credential's overlap runs, or the target has no
/// room yet: an IAM key in its deletion grace holds the second slot), promoted in the store
/// but not at every destination, rolled back with the withdrawal not finished.
pub(crate) const EXIT_NOTHING_STARTED: u8 = 3;
pub(crate) const EXIT_PARTIAL: u8 = 4;
pub(crate) const EXIT_ROLLBACK_INCOMPLETE: u8 = 5;

/// What a rotation ended with: the line for people, the exit status, the JSON `status`, and what
/// is left to do (partial outcomes).
fn rotation_text(name: &str, r: &Rotation) -> (String, u8, &'static str, Option<String>) {
    match r {
        Rotation::Promoted { rotation, version } => {
            (format!("{name}: rotation {rotation} promoted version {version}"), 0, "promoted", None)
        }
        Rotation::RolledBack { rotation, reason } => {
            (format!("{name}: rotation {rotation} rolled back: {reason}"), 1, "rolled_back", None)
        }
        Rotation::InOverlap { until } => (
            format!(
                "{name}: the previous credential's overlap runs until {}; nothing started",
                out::time(*until)
            ),
            EXIT_NOTHING_STARTED,
            "nothing_started",
            None,
        ),
        Rotation::Waiting { until, reason } => (
            format!(
                "{name}: nothing started: the target has no room for a new credential until {}: {reason}",
                out::time(*until)
            ),
            EXIT_NOTHING_STARTED,
            "waiting",
            None,
        ),
        Rotation::Partial { rotation, version, left } => (
            format!(
                "{name}: rotation {rotation}: version {version} is current in the store but NOT at every destination \
                 (the previous credential is kept until it is; the next run retries): {left}"
            ),
            EXIT_PARTIAL,
            "partial",
            Some(left.clone()),
        ),
        Rotation::RollbackIncomplete { rotation, reason, left } => (
            format!(
                "{name}: rotation {rotation} failed ({reason}) and its rollback is NOT finished (the current \
                 credential is untouched; the next run carries on withdrawing): {left}"
            ),
            EXIT_ROLLBACK_INCOMPLETE,
            "rollback_incomplete",
            Some(left.clone()),
        ),
        other => (format!("{name}: {other:?}"), 2, "unknown", None),
    }
}

/// Where the audit log saw token `handle` presented (allowed), by source, with the last time:
/// the consumers still on a previous token. Empty for a handle that is not a token id, or a log
/// that cannot be read (this is a hint for the operator, not a decision).
async fn presented_by(g: &Global, handle: &str) -> Vec<(String, DateTime<Utc>)> {
    let Ok(id) = handle.parse::<tokenward::core::TokenId>() else { return Vec::new() };
    let Ok(entries) = crate::cmd::audit::entries(g).await else { return Vec::new() };
    let mut seen: std::collections::BTreeMap<String, DateTime<Utc>> = std::collections::BTreeMap::new();
    for e in entries.map_while(std::result::Result::ok) {
        let ev = &e.event;
        if ev.token == Some(id)
            && matches!(ev.action, tokenward::audit::Action::VerifyAllowed)
            && let Some(source) = &ev.source
        {
            let last = seen.entry(source.clone()).or_insert(ev.time);
            *last = (*last).max(ev.time);
        }
    }
    let mut out: Vec<(String, DateTime<Utc>)> = seen.into_iter().collect();
    out.sort_by_key(|(_, last)| std::cmp::Reverse(*last));
    out
}

async fn one(
    g: &Global,
    tw: &Tokenward,
    file: &PolicyFile,
    name: &str,
    emergency: bool,
    json: bool,
) -> Result<u8> {
    let spec = file
        .credential(name)
        .ok_or_else(|| CliError::new(format!("no credential {name} is declared in the stored policy")))?;
    let secret = spec.secret_name()?;
    let target = tw.declared_target(file, spec).await?;
    if emergency {
        let order = spec.emergency_order()?;
        let r = tw.revoke_and_replace(&secret, target, order).await?;
        if json {
            println!(
                "{}",
                json!({"credential": name, "emergency": true, "revoked": r.revoked, "version": r.version,
                       "revoked_after_ms": r.revoked_after.as_secs_f64() * 1e3,
                       "confirmed_after_ms": r.confirmed_after.map(|d| d.as_secs_f64() * 1e3),
                       "replaced_after_ms": r.replaced_after.as_secs_f64() * 1e3})
            );
        } else {
            println!(
                "{name}: emergency ({:?}): revoked {} after {:.1} ms, version {} current after {:.1} ms",
                r.order,
                r.revoked,
                r.revoked_after.as_secs_f64() * 1e3,
                r.version,
                r.replaced_after.as_secs_f64() * 1e3
            );
        }
        return Ok(0);
    }
    let r = tw.rotate(&secret, target.clone()).await?;
    let (text, code, status, left) = rotation_text(name, &r);
    let until = match &r {
        Rotation::InOverlap { until } | Rotation::Waiting { until, .. } => Some(out::time(*until)),
        _ => None,
    };
    // In its overlap: who still uses the previous credential, as its provider reports.
    let previous = match &r {
        // A hint: a provider that does not answer changes nothing about the rotation's result.
        Rotation::InOverlap { .. } => {
            tw.rotator().previous_usage(&secret, target.as_ref()).await.ok().flatten()
        }
        _ => None,
    };
    let now = tw.clock().now();
    let sources = match &previous {
        Some((handle, _)) => presented_by(g, handle).await,
        None => Vec::new(),
    };
    let (last_used, by) = match previous.as_ref().map(|(_, u)| u) {
        Some(Usage::At { at, by }) => (Some(out::time(*at)), by.clone()),
        Some(Usage::Never) => (Some("never".to_owned()), None),
        _ => (None, None),
    };
    if json {
        println!(
            "{}",
            json!({"credential": name, "result": text, "ok": code == 0, "status": status,
                   "started": code != EXIT_NOTHING_STARTED, "left": left, "until": until,
                   "previous": previous.as_ref().map(|(h, _)| json!({"handle": h, "last_used": last_used, "by": by,
                       "presented_by": sources.iter().map(|(s, t)| json!({"source": s, "last": out::time(*t)})).collect::<Vec<_>>()}))})
        );
    } else {
        println!("{text}");
        if let Some((handle, usage)) = &previous {
            let seen = match usage {
                Usage::At { at, by } => format!(
                    "last used {} ago{}",
                    out::fmt_delta((now - *at).max(tokenward::core::chrono::TimeDelta::zero())),
                    by.as_ref().map(|b| format!(" ({b})")).unwrap_or_default()
                ),
                Usage::Never => "never used".into(),
                _ => "its provider does not report its use".into(),
            };
            println!("  previous {handle}: {seen}");
            for (source, last) in &sources {
                println!(
                    "    presented from {source}, last {} ago",
                    out::fmt_delta((now - *last).max(tokenward::core::chrono::TimeDelta::zero()))
                );
            }
        }
    }
    Ok(code)
}

/// `tokenward adopt`: the secret from stdin, proven at the declared credential's target, sealed
/// as its current version.
pub(crate) async fn adopt(g: &Global, a: AdoptArgs) -> Result<u8> {
    let value = crate::cmd::secrets::value_from_stdin()?;
    let secret = std::str::from_utf8(&value)
        .map_err(|_| CliError::new("the credential's secret is not UTF-8 text"))?
        .trim();
    let secret = tokenward::secrecy::SecretString::from(secret.to_owned());
    let tw = open::open(g, Need::Audited).await?;
    let result = async {
        let (file, _) = stored(&tw).await?;
        let spec = file.credential(&a.name).ok_or_else(|| {
            CliError::new(format!("no credential {} is declared in the stored policy", a.name))
        })?;
        let name = spec.secret_name()?;
        let target = tw.declared_target(&file, spec).await?;
        let version = tw.adopt(&name, target, a.handle.as_deref(), secret).await?;
        let handle = tw.current_credential(&name).await?.map(|c| c.handle).unwrap_or_default();
        Ok::<_, CliError>((version, handle))
    }
    .await;
    tw.shutdown().await?;
    let (version, handle) = result?;
    if a.output.json() {
        println!("{}", json!({"credential": a.name, "adopted": handle, "version": version}));
    } else {
        println!(
            "{}: adopted {handle} as version {version} (current); the next rotation replaces it",
            a.name
        );
    }
    Ok(0)
}

pub(crate) async fn rotate(g: &Global, a: RotateArgs) -> Result<u8> {
    let tw = open::open(g, Need::Audited).await?;
    if a.due {
        // One scheduler pass over every declared, scheduled credential (a second pass picks up
        // work the first found due: a credential never rotated before). The handle's own
        // scheduler may take some of it meanwhile; shutdown waits for that too, so the counts
        // are read after it.
        let passes = async {
            let (file, _) = stored(&tw).await?;
            tw.manage_declared(&file, true).await?;
            let bar = crate::progress::bar(g, 3, "rotating due credentials: scheduler pass");
            let mut failed = 0;
            for _ in 0..3 {
                failed += tw.scheduler().tick().await?.failed_or_skipped;
                bar.inc(1);
                let (promoted, rolled_back) = tw.scheduler().counts();
                bar.set_message(format!(
                    "rotating due credentials: {promoted} promoted, {rolled_back} rolled back; scheduler pass"
                ));
            }
            bar.finish_and_clear();
            Ok::<_, CliError>(failed)
        }
        .await;
        tw.shutdown().await?;
        let failed = passes?;
        let (promoted, rolled_back) = tw.scheduler().counts();
        let unfinished = tw.scheduler().unfinished();
        if a.output.json() {
            println!(
                "{}",
                json!({"promoted": promoted, "rolled_back": rolled_back, "unfinished": unfinished, "failed_or_skipped": failed})
            );
        } else {
            println!(
                "{promoted} promoted, {rolled_back} rolled back, {unfinished} unfinished (partial promotion or rollback), \
             {failed} failed or skipped"
            );
        }
        return Ok(if rolled_back + failed > 0 {
            1
        } else if unfinished > 0 {
            EXIT_PARTIAL
        } else {
            0
        });
    }
    let result = async {
        let (file, _) = stored(&tw).await?;
        let name = a.name.as_deref().unwrap_or_default();
        tw.manage_declared(&file, false).await?;
        one(g, &tw, &file, name, a.emergency, a.output.json()).await
    }
    .await;
    tw.shutdown().await?;
    result
}

pub(crate) async fn daemon(g: &Global, a: DaemonArgs) -> Result<u8> {
    let mut signals = crate::signals::Signals::catch()?;
    let tick = out::duration(&a.tick, "--tick")?.to_std().unwrap_or(Duration::from_secs(1));
    let report_every =
        out::duration(&a.report_every, "--report-every")?.to_std().unwrap_or(Duration::from_secs(3600));
    // One daemon per store: a lock file beside it, held while this one runs.
    let lock_path = g.daemon_lock_path();
    let lock = private_fs::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| CliError::new(format!("opening {}: {e}", lock_path.display())))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(CliError::new(format!(
                "another tokenward daemon runs on {} (it holds {})",
                g.store_name(),
                lock_path.display()
            )));
        }
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(CliError::new(format!("locking {}: {e}", lock_path.display())));
        }
    }
    let tw = open::open(g, Need::Audited).await?;
    let (file, version) = stored(&tw).await?;
    let names = tw.manage_declared(&file, true).await?;
    eprintln!(
        "tokenward daemon: policy version {version}, {} credential(s) under rotation; SIGTERM or Ctrl-C drains and stops",
        names.len()
    );
    let alerts_every =
        out::duration(&a.alerts_every, "--alerts-every")?.to_std().unwrap_or(Duration::from_secs(300));
    let thresholds = tokenward::posture::Thresholds {
        expiring_within: out::duration(&a.expiring_within, "--expiring-within")?,
        ..Default::default()
    };
    let sinks = crate::cmd::alerts::Sinks::resolve(&tw, &a.sinks).await?;
    let mut sent = std::collections::BTreeSet::new();
    let mut ticker = tokio::time::interval(tick);
    let mut reporter = tokio::time::interval(report_every);
    let mut alerter = tokio::time::interval(alerts_every);
    let mut last = (0, 0);
    let mut last_failed = (0, 0, 0);
    loop {
        tokio::select! {
            _ = signals.recv() => break,
            _ = ticker.tick() => {
                // The handle's scheduler runs the rotations; this reports what it did.
                let counts = tw.scheduler().counts();
                if counts != last {
                    eprintln!("rotations so far: {} promoted, {} rolled back", counts.0, counts.1);
                    last = counts;
                }
                // A rotation rolled back or left unfinished, a record refused for failing its
                // integrity check: the alert goes out now, not at the next check.
                let failed = (counts.1, tw.scheduler().unfinished(), tw.tokens().refused_records());
                if failed != last_failed {
                    last_failed = failed;
                    alerter.reset_immediately();
                }
            }
            _ = alerter.tick() => {
                match crate::cmd::alerts::current(&tw, g, &thresholds, &a.scan, a.inventory).await {
                    Ok(all) => {
                        let new = crate::cmd::alerts::fresh(all, &mut sent);
                        if let Err(e) = sinks.send(&new, tw.clock().now()).await {
                            tracing::error!(alerts = new.len(), error = %e, "sending alerts failed");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "the alert check failed; the next one retries"),
                }
            }
            _ = reporter.tick(), if a.report.is_some() => {
                if let Some(path) = &a.report {
                    match crate::cmd::report::build(&tw, g, &tokenward::posture::Thresholds::default()).await {
                        Ok(r) => {
                            if let Err(e) = private_fs::write(path, crate::cmd::report::html(&r)) {
                                tracing::warn!(path = %path.display(), error = %e, "writing the report failed");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "building the report failed; the next one retries"),
                    }
                }
            }
        }
    }
    eprintln!("tokenward daemon: draining");
    tw.shutdown().await?;
    drop(lock);
    eprintln!("tokenward daemon: stopped");
    Ok(0)
}
