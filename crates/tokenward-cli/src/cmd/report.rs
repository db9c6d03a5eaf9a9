//! `tokenward report`: the posture report — what an auditor asks about a store's tokens and
//! credentials, as a table, stable JSON (`docs/cli.md`) or a self-contained HTML page with inline
//! SVG charts (no network).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use tokenward::Tokenward;
use tokenward::audit::chains::{ChainHead, ChainVerifier};
use tokenward::audit::{Action, Entry};
use tokenward::core::chrono::{DateTime, TimeDelta, Utc};
use tokenward::core::lookup::TokenStatus;
use tokenward::core::private_fs;
use tokenward::policy::PolicyFile;
use tokenward::store::{TokenQuery, TokenRow};

use crate::cli::{Global, ReportArgs};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

/// The report's JSON schema version (`docs/cli.md` documents each field).
pub(crate) const REPORT_SCHEMA: u32 = 1;

/// When a token counts as close to expiry or unused.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Thresholds {
    pub(crate) expiring_within: TimeDelta,
    pub(crate) unused_for: TimeDelta,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self { expiring_within: TimeDelta::days(7), unused_for: TimeDelta::days(30) }
    }
}

/// One thing the report says, with the tokens or credential it names.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Finding {
    /// `expiring_soon`, `unused`, `over_broad_scope`, `several_tokens_for_purpose`, `shared_token`,
    /// `rotation_overdue`, `rotation_rolled_back`, `revoked_still_presented`, `audit_chain_broken`,
    /// `tampered_records`.
    pub(crate) kind: &'static str,
    /// `high`, `medium` or `low`.
    pub(crate) severity: &'static str,
    /// One line for people.
    pub(crate) summary: String,
    /// Token ids it names.
    pub(crate) tokens: Vec<String>,
    /// The credential it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) credential: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct AuditStatus {
    pub(crate) verified: bool,
    pub(crate) entries: u64,
    pub(crate) head: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct TokenPoint {
    pub(crate) id: String,
    pub(crate) principal: String,
    pub(crate) purpose: String,
    pub(crate) expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct CredentialAge {
    pub(crate) name: String,
    /// Days since its current version was promoted (`None`: never rotated).
    pub(crate) days_since_rotation: Option<f64>,
    /// Its schedule's period in days, if it rotates on one.
    pub(crate) period_days: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Volume {
    pub(crate) allowed: u64,
    pub(crate) denied: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Posture {
    pub(crate) schema: u32,
    pub(crate) generated_at: DateTime<Utc>,
    pub(crate) policy_version: u64,
    pub(crate) tokens: BTreeMap<&'static str, u64>,
    pub(crate) findings: Vec<Finding>,
    pub(crate) audit: AuditStatus,
    pub(crate) expiry: Vec<TokenPoint>,
    pub(crate) rotation: Vec<CredentialAge>,
    pub(crate) verifications: BTreeMap<String, Volume>,
}

/// A scope is over-broad if a wildcard stands alone in a position, or `**` takes a whole service
/// or its first level (`s3:**:read`, `s3:bucket/**:read`).
fn over_broad(scope: &tokenward::core::Scope) -> bool {
    if scope.has_bare_wildcard() {
        return true;
    }
    let text = scope.to_string();
    let mut parts = text.splitn(3, ':');
    let _service = parts.next();
    let resource = parts.next().unwrap_or_default();
    resource.split('/').take(2).any(|s| s == "**")
}

fn ids(rows: &[&TokenRow]) -> Vec<String> {
    rows.iter().map(|r| r.record.id.to_string()).collect()
}

/// The audit log's entries (the chain verified on the way) and its status.
fn read_log(source: Result<crate::cmd::audit::Entries>, g: &Global) -> (Vec<Entry>, AuditStatus) {
    let spinner = crate::progress::spinner(g, "reading the audit log");
    let mut entries = Vec::new();
    let mut v = ChainVerifier::new(ChainHead::EMPTY);
    let error = match source {
        Err(e) => Some(e.to_string()),
        Ok(reader) => {
            let mut err = None;
            for e in reader {
                match e {
                    Ok(e) => {
                        if let Err(x) = v.push(&e) {
                            err = Some(x.to_string());
                            break;
                        }
                        entries.push(e);
                        if entries.len() % 4096 == 0 {
                            spinner.set_message(format!("reading the audit log: {} entries", entries.len()));
                        }
                    }
                    Err(x) => {
                        err = Some(x.to_string());
                        break;
                    }
                }
            }
            err
        }
    };
    spinner.finish_and_clear();
    let head = v.head();
    let status =
        AuditStatus { verified: error.is_none(), entries: head.len, head: head.head.to_string(), error };
    (entries, status)
}

/// Builds the report from the store, the stored policy and the audit log.
pub(crate) async fn build_with(
    tw: &Tokenward,
    file: &PolicyFile,
    policy_version: u64,
    g: &Global,
    t: &Thresholds,
) -> Result<Posture> {
    let now = tw.clock().now();
    let listed = tw.tokens().tokens(&TokenQuery::Unexpired { at: DateTime::<Utc>::MIN_UTC }).await?;
    let (tampered, all): (Vec<_>, Vec<_>) = listed.into_iter().partition(|t| t.tampered.is_some());
    let all: Vec<TokenRow> = all.into_iter().map(|t| t.row).collect();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    if !tampered.is_empty() {
        counts.insert("tampered", tampered.len() as u64);
    }
    for r in &all {
        *counts.entry(out::status_name(r.record.status_at(now))).or_default() += 1;
    }
    let active: Vec<&TokenRow> =
        all.iter().filter(|r| r.record.status_at(now) == TokenStatus::Active).collect();
    let mut findings = Vec::new();
    if !tampered.is_empty() {
        findings.push(Finding {
            kind: "tampered_records",
            severity: "high",
            summary: format!(
                "{} token record(s) fail their integrity check (edited outside Tokenward): refused, never used",
                tampered.len()
            ),
            tokens: tampered.iter().map(|t| t.row.record.id.to_string()).collect(),
            credential: None,
        });
    }

    // Close to expiry: a token that lives longer than the window and ends within it (a consumer
    // about to break). Short-lived tokens expire by design and are not flagged.
    let expiring: Vec<&TokenRow> = active
        .iter()
        .copied()
        .filter(|r| {
            r.record.expires_at <= now + t.expiring_within
                && r.record.expires_at - r.record.not_before > t.expiring_within
        })
        .collect();
    if !expiring.is_empty() {
        findings.push(Finding {
            kind: "expiring_soon",
            severity: "medium",
            summary: format!(
                "{} long-lived token(s) expire within {}",
                expiring.len(),
                out::fmt_delta(t.expiring_within)
            ),
            tokens: ids(&expiring),
            credential: None,
        });
    }
    let unused: Vec<&TokenRow> = active
        .iter()
        .copied()
        .filter(|r| {
            r.record.created_at <= now - t.unused_for && r.last_used.is_none_or(|u| u <= now - t.unused_for)
        })
        .collect();
    if !unused.is_empty() {
        findings.push(Finding {
            kind: "unused",
            severity: "medium",
            summary: format!(
                "{} active token(s) unused for {} or more: revoke them",
                unused.len(),
                out::fmt_delta(t.unused_for)
            ),
            tokens: ids(&unused),
            credential: None,
        });
    }
    let broad: Vec<&TokenRow> =
        active.iter().copied().filter(|r| r.record.scopes.iter().any(over_broad)).collect();
    if !broad.is_empty() {
        findings.push(Finding {
            kind: "over_broad_scope",
            severity: "high",
            summary: format!("{} active token(s) hold a wildcard or whole-service scope", broad.len()),
            tokens: ids(&broad),
            credential: None,
        });
    }
    let mut by_purpose: BTreeMap<(String, String), Vec<&TokenRow>> = BTreeMap::new();
    for r in active.iter().copied().filter(|r| r.record.parent.is_none()) {
        by_purpose
            .entry((r.record.principal.as_str().to_owned(), r.record.purpose.as_str().to_owned()))
            .or_default()
            .push(r);
    }
    for ((p, purpose), rows) in &by_purpose {
        if rows.len() > 1 {
            findings.push(Finding {
                kind: "several_tokens_for_purpose",
                severity: "medium",
                summary: format!("{p} holds {} active tokens for {purpose} (one per purpose; a rotation overlap ends soon)", rows.len()),
                tokens: ids(rows),
                credential: None,
            });
        }
    }

    let (entries, audit) = read_log(crate::cmd::audit::entries(g).await, g);
    if !audit.verified {
        findings.push(Finding {
            kind: "audit_chain_broken",
            severity: "high",
            summary: format!("the audit log fails verification: {}", audit.error.clone().unwrap_or_default()),
            tokens: Vec::new(),
            credential: None,
        });
    }
    let by_id: BTreeMap<String, &TokenRow> = all.iter().map(|r| (r.record.id.to_string(), r)).collect();
    let mut sources: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut dead_presented: BTreeMap<String, u64> = BTreeMap::new();
    let mut volume: BTreeMap<String, Volume> = BTreeMap::new();
    let mut last_rotation_step: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let bar = crate::progress::bar(g, entries.len() as u64, "reading uses");
    for (i, e) in entries.iter().enumerate() {
        if i % 4096 == 0 {
            bar.set_position(i as u64);
        }
        let ev = &e.event;
        match &ev.action {
            Action::VerifyAllowed | Action::VerifyDenied(_) => {
                let token = ev.token.map(|t| t.to_string());
                let principal = token
                    .as_ref()
                    .and_then(|t| by_id.get(t))
                    .map_or_else(|| "(unknown token)".to_owned(), |r| r.record.principal.as_str().to_owned());
                let v = volume.entry(principal).or_default();
                if matches!(ev.action, Action::VerifyAllowed) {
                    v.allowed += 1;
                } else {
                    v.denied += 1;
                }
                if let (Some(t), Some(s)) = (&token, &ev.source) {
                    sources.entry(t.clone()).or_default().insert(s.clone());
                }
                if let (Action::VerifyDenied(reason), Some(t)) = (&ev.action, &token)
                    && reason == "revoked"
                {
                    *dead_presented.entry(t.clone()).or_default() += 1;
                }
            }
            Action::Rotate(step) => {
                if let Some(c) = ev.attrs.get("credential") {
                    let failed = !matches!(ev.outcome, tokenward::audit::Outcome::Success);
                    last_rotation_step.insert(c.clone(), (step.clone(), failed));
                }
            }
            _ => {}
        }
    }
    bar.finish_and_clear();
    let shared: Vec<String> = sources.iter().filter(|(_, s)| s.len() > 1).map(|(t, _)| t.clone()).collect();
    if !shared.is_empty() {
        findings.push(Finding {
            kind: "shared_token",
            severity: "high",
            summary: format!(
                "{} token(s) presented from more than one source: one credential, several holders",
                shared.len()
            ),
            tokens: shared,
            credential: None,
        });
    }
    if !dead_presented.is_empty() {
        findings.push(Finding {
            kind: "revoked_still_presented",
            severity: "high",
            summary: format!(
                "{} revoked token(s) still presented ({} denied calls): someone still uses a dead credential",
                dead_presented.len(),
                dead_presented.values().sum::<u64>()
            ),
            tokens: dead_presented.keys().cloned().collect(),
            credential: None,
        });
    }

    let mut rotation = Vec::new();
    let bar = crate::progress::bar(g, file.credentials.len() as u64, "reading rotations");
    for c in &file.credentials {
        bar.inc(1);
        let name = c.secret_name()?;
        let record = tw.rotator().record(&name).await?;
        let promoted = record.promoted_at_ms.and_then(DateTime::from_timestamp_millis);
        let period = c.schedule.as_ref().and_then(|s| s.get().ok());
        let age = promoted.map(|p| (now - p).num_milliseconds() as f64 / 86_400_000.0);
        rotation.push(CredentialAge {
            name: c.name.clone(),
            days_since_rotation: age,
            period_days: period.map(|p| p.num_milliseconds() as f64 / 86_400_000.0),
        });
        if let Some(period) = period
            && promoted.is_none_or(|p| p + period < now)
        {
            findings.push(Finding {
                kind: "rotation_overdue",
                severity: "high",
                summary: match promoted {
                    Some(p) => format!(
                        "{} was last rotated {} ago; it rotates every {}",
                        c.name,
                        out::fmt_delta(now - p),
                        out::fmt_delta(period)
                    ),
                    None => format!(
                        "{} has never been rotated; it rotates every {}",
                        c.name,
                        out::fmt_delta(period)
                    ),
                },
                tokens: Vec::new(),
                credential: Some(c.name.clone()),
            });
        }
        if let Some((step, failed)) = last_rotation_step.get(&c.name)
            && (step == "rollback" || *failed)
        {
            findings.push(Finding {
                kind: "rotation_rolled_back",
                severity: "high",
                summary: format!("the last rotation of {} ended in {step}", c.name),
                tokens: Vec::new(),
                credential: Some(c.name.clone()),
            });
        }
    }
    bar.finish_and_clear();
    let expiry = active
        .iter()
        .map(|r| TokenPoint {
            id: r.record.id.to_string(),
            principal: r.record.principal.as_str().to_owned(),
            purpose: r.record.purpose.as_str().to_owned(),
            expires_at: r.record.expires_at,
        })
        .collect();
    Ok(Posture {
        schema: REPORT_SCHEMA,
        generated_at: now,
        policy_version,
        tokens: counts,
        findings,
        audit,
        expiry,
        rotation,
        verifications: volume,
    })
}

/// Builds the report for an open handle, reading the audit log `g` names.
pub(crate) async fn build(tw: &Tokenward, g: &Global, t: &Thresholds) -> Result<Posture> {
    let (file, version) = stored(tw).await?;
    build_with(tw, &file, version, g, t).await
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
        let _ = writeln!(s, "{:<6}  {:<27}  {}", f.severity, f.kind, f.summary);
        for t in &f.tokens {
            let _ = writeln!(s, "        token {t}");
        }
        if let Some(c) = &f.credential {
            let _ = writeln!(s, "        credential {c}");
        }
    }
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The report as one self-contained HTML page: no script, no network, inline SVG charts.
pub(crate) fn html(p: &Posture) -> String {
    let mut h = String::with_capacity(16 << 10);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tokenward posture report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>
body{{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1d2433;background:#f7f8fa}}
h1{{font-size:22px;margin:0 0 4px}} h2{{font-size:16px;margin:28px 0 8px}} .sub{{color:#5b6577}}
.cards{{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}} .card{{background:#fff;border:1px solid #e1e5ec;border-radius:8px;padding:12px 16px;min-width:120px}}
.card b{{display:block;font-size:22px}} table{{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e5ec}}
td,th{{padding:6px 10px;border-bottom:1px solid #eef1f5;text-align:left;vertical-align:top}} th{{background:#f0f2f6;font-weight:600}}
.high{{color:#b42318;font-weight:600}} .medium{{color:#b54708;font-weight:600}} .low{{color:#5b6577}}
code{{font:12px ui-monospace,Menlo,monospace}} .ok{{color:#067647;font-weight:600}} .bad{{color:#b42318;font-weight:600}}
svg{{background:#fff;border:1px solid #e1e5ec;border-radius:8px}}
</style></head><body>
<h1>Tokenward posture report</h1><div class="sub">generated {} · policy version {}</div>"#,
        esc(&out::time(p.generated_at)),
        p.policy_version
    );
    h.push_str(r#"<div class="cards">"#);
    for k in ["active", "expired", "revoked", "not_yet_valid"] {
        let _ = write!(
            h,
            r#"<div class="card"><b>{}</b>{k} tokens</div>"#,
            p.tokens.get(k).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        h,
        r#"<div class="card"><b>{}</b>findings</div><div class="card"><b class="{}">{}</b>audit chain ({} entries)</div></div>"#,
        p.findings.len(),
        if p.audit.verified { "ok" } else { "bad" },
        if p.audit.verified { "verified" } else { "BROKEN" },
        p.audit.entries
    );
    h.push_str(
        "<h2>Findings</h2><table><tr><th>severity</th><th>finding</th><th>what</th><th>names</th></tr>",
    );
    if p.findings.is_empty() {
        h.push_str(r#"<tr><td colspan="4" class="ok">no findings</td></tr>"#);
    }
    for f in &p.findings {
        let mut names: Vec<String> = f.tokens.iter().map(|t| format!("<code>{}</code>", esc(t))).collect();
        if let Some(c) = &f.credential {
            names.push(format!("credential <code>{}</code>", esc(c)));
        }
        let _ = write!(
            h,
            r#"<tr><td class="{sev}">{sev}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>"#,
            f.kind,
            esc(&f.summary),
            names.join("<br>"),
            sev = f.severity
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Expiry timeline (active tokens)</h2>");
    h.push_str(&expiry_chart(p));
    h.push_str("<h2>Rotation age per credential</h2>");
    h.push_str(&rotation_chart(p));
    h.push_str("<h2>Verifications per principal (from the audit log)</h2>");
    h.push_str(&volume_chart(p));
    h.push_str("</body></html>\n");
    h
}

const W: f64 = 1060.0;

fn expiry_chart(p: &Posture) -> String {
    if p.expiry.is_empty() {
        return r#"<p class="sub">no active tokens</p>"#.into();
    }
    let now = p.generated_at;
    let last = p.expiry.iter().map(|t| t.expires_at).max().unwrap_or(now);
    let span = (last - now).num_seconds().max(3600) as f64;
    let (left, right) = (160.0, W - 20.0);
    let principals: BTreeSet<&str> = p.expiry.iter().map(|t| t.principal.as_str()).collect();
    let rows: Vec<&str> = principals.into_iter().collect();
    let soon_ids: BTreeSet<&str> = p
        .findings
        .iter()
        .filter(|f| f.kind == "expiring_soon")
        .flat_map(|f| f.tokens.iter().map(String::as_str))
        .collect();
    let height = 40.0 + rows.len() as f64 * 28.0;
    let mut s = format!(
        r#"<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" aria-label="expiry timeline">"#
    );
    for i in 0..=4 {
        let x = left + (right - left) * f64::from(i) / 4.0;
        let at = now + TimeDelta::seconds((span * f64::from(i) / 4.0) as i64);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" stroke="#e1e5ec"/><text x="{x:.1}" y="14" font-size="11" text-anchor="middle" fill="#5b6577">{}</text>"##,
            height - 8.0,
            if i == 0 { "now".to_owned() } else { format!("+{}", out::fmt_delta(at - now)) }
        );
    }
    for (row, principal) in rows.iter().enumerate() {
        let y = 40.0 + row as f64 * 28.0;
        let _ = write!(
            s,
            r##"<text x="8" y="{:.1}" font-size="12" fill="#1d2433">{}</text>"##,
            y + 4.0,
            esc(principal)
        );
        for t in p.expiry.iter().filter(|t| t.principal == *principal) {
            let frac = ((t.expires_at - now).num_seconds() as f64 / span).clamp(0.0, 1.0);
            let x = left + (right - left) * frac;
            let soon = soon_ids.contains(t.id.as_str());
            let _ = write!(
                s,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{}"><title>{} ({}) expires {}</title></circle>"##,
                if soon { "#d92d20" } else { "#2e90fa" },
                esc(&t.id),
                esc(&t.purpose),
                esc(&out::time(t.expires_at))
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// A bar: its value, colour and tooltip.
type Bar = (f64, &'static str, String);

/// Horizontal bars, scaled to the largest total (or `scale`, if larger), labelled with `total_label`.
fn bar_chart(rows: &[(String, Vec<Bar>)], scale: f64, total_label: impl Fn(f64) -> String) -> String {
    if rows.is_empty() {
        return r#"<p class="sub">nothing to show</p>"#.into();
    }
    let max =
        rows.iter().map(|(_, bars)| bars.iter().map(|b| b.0).sum::<f64>()).fold(scale, f64::max).max(1e-9);
    let (left, right) = (220.0, W - 90.0);
    let height = 20.0 + rows.len() as f64 * 30.0;
    let mut s = format!(r#"<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">"#);
    for (i, (label, bars)) in rows.iter().enumerate() {
        let y = 12.0 + i as f64 * 30.0;
        let _ = write!(
            s,
            r##"<text x="8" y="{:.1}" font-size="12" fill="#1d2433">{}</text>"##,
            y + 13.0,
            esc(label)
        );
        let mut x = left;
        let mut total = 0.0;
        for (value, color, title) in bars {
            let w = (right - left) * value / max;
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="18" rx="3" fill="{color}"><title>{}</title></rect>"#,
                esc(title)
            );
            x += w;
            total += value;
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#5b6577">{}</text>"##,
            x + 6.0,
            y + 13.0,
            esc(&total_label(total))
        );
    }
    s.push_str("</svg>");
    s
}

fn rotation_chart(p: &Posture) -> String {
    let rows: Vec<(String, Vec<Bar>)> = p
        .rotation
        .iter()
        .map(|c| {
            let age = c.days_since_rotation.unwrap_or(0.0);
            let overdue = match (c.days_since_rotation, c.period_days) {
                (None, Some(_)) => true,
                (Some(a), Some(period)) => a > period,
                _ => false,
            };
            let title = match (c.days_since_rotation, c.period_days) {
                (None, _) => format!("{}: never rotated", c.name),
                (Some(a), Some(period)) => {
                    format!("{}: rotated {a:.1} days ago, every {period:.1} days", c.name)
                }
                (Some(a), None) => format!("{}: rotated {a:.1} days ago", c.name),
            };
            let label = match c.period_days {
                Some(period) => format!("{} · every {period:.0}d", c.name),
                None => c.name.clone(),
            };
            (label, vec![(age, if overdue { "#d92d20" } else { "#12b76a" }, title)])
        })
        .collect();
    // Scaled to the longest period, so a fresh rotation is a short bar and an overdue one passes it.
    let scale = p.rotation.iter().filter_map(|c| c.period_days).fold(0.0, f64::max);
    bar_chart(&rows, scale, |d| format!("{d:.1} days"))
}

fn volume_chart(p: &Posture) -> String {
    let rows: Vec<(String, Vec<Bar>)> = p
        .verifications
        .iter()
        .map(|(principal, v)| {
            (
                principal.clone(),
                vec![
                    (v.allowed as f64, "#2e90fa", format!("{} allowed", v.allowed)),
                    (v.denied as f64, "#f79009", format!("{} denied", v.denied)),
                ],
            )
        })
        .collect();
    bar_chart(&rows, 0.0, |n| format!("{n:.0} calls"))
}

pub(crate) async fn run(g: &Global, a: ReportArgs) -> Result<u8> {
    let t = Thresholds {
        expiring_within: out::duration(&a.expiring_within, "--expiring-within")?,
        unused_for: out::duration(&a.unused_for, "--unused-for")?,
    };
    let tw = open::open(g, Need::ReadOnly).await?;
    let posture = async {
        let (file, version) = stored(&tw).await?;
        build_with(&tw, &file, version, g, &t).await
    }
    .await;
    tw.shutdown().await?;
    let posture = posture?;
    if let Some(path) = &a.html {
        private_fs::write(path, html(&posture))
            .map_err(|e| CliError::new(format!("writing {}: {e}", path.display())))?;
        eprintln!("wrote the report to {}", path.display());
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&posture)?);
    } else if a.html.is_none() {
        print!("{}", text(&posture));
    }
    Ok(if posture.findings.is_empty() { 0 } else { 1 })
}
