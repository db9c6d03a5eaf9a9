//! `tokenward inventory`: every non-human credential the store's deployment can see
//! ([`tokenward::posture::inventory`]) — the AWS accounts and OpenBao servers its declared
//! credentials reach, read with the admin access they declare, and its own tokens — with who owns
//! each, when it was created and last used, when it expires, whether Tokenward manages it, and
//! the findings. Never a secret: ids, names and times.

use std::fmt::Write as _;

use tokenward::core::chrono::{DateTime, TimeDelta, Utc};
use tokenward::posture::inventory::{
    Inventory, InventoryEntry, InventorySources, InventoryThresholds, Managed,
};

use tokenward::Tokenward;

use clap::Args;

use crate::cli::{Global, Output};
use crate::cmd::alerts::Alert;
use crate::error::Result;
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct InventoryArgs {
    #[command(flatten)]
    pub(crate) output: Output,
    /// An active credential last used longer ago than this is "unused".
    #[arg(long, default_value = "90d")]
    pub(crate) unused_for: String,
    /// An active credential older than this is "too old" (AWS and CIS advise rotating keys every
    /// 90 days).
    #[arg(long, default_value = "90d")]
    pub(crate) max_age: String,
    /// A credential never used is flagged once it is older than this.
    #[arg(long, default_value = "1d")]
    pub(crate) never_used_grace: String,
}

/// Reads the inventory; exit 1 when an entry has a finding (as `report` and `alerts` do).
pub(crate) async fn run(g: &Global, a: InventoryArgs) -> Result<u8> {
    let thresholds = InventoryThresholds::new(
        out::duration(&a.unused_for, "--unused-for")?,
        out::duration(&a.max_age, "--max-age")?,
        out::duration(&a.never_used_grace, "--never-used-grace")?,
    );
    // Audited: the admin secrets the declared credentials name are read from the store.
    let tw = open::open(g, Need::Audited).await?;
    let inventory = read(&tw, thresholds).await;
    tw.shutdown().await?;
    let inventory = inventory?;
    if a.output.json() {
        println!("{}", serde_json::to_string_pretty(&inventory)?);
    } else {
        print!("{}", text(&inventory));
    }
    Ok(if inventory.entries.iter().any(|e| !e.findings.is_empty()) { 1 } else { 0 })
}

/// The inventory of the sources the stored policy implies ([`InventorySources::declared`]).
pub(crate) async fn read(tw: &Tokenward, thresholds: InventoryThresholds) -> Result<Inventory> {
    let sources = InventorySources::declared(tw).await?.thresholds(thresholds);
    Ok(tw.inventory(&sources).await?)
}

/// One alert per finding kind, naming the credentials (`source:id`) that have it.
pub(crate) fn alerts(inv: &Inventory) -> Vec<Alert> {
    let mut by_kind: Vec<(&'static str, Vec<String>)> = Vec::new();
    for e in &inv.entries {
        for f in &e.findings {
            let name = format!("{}:{}", e.source.name(), e.id);
            match by_kind.iter_mut().find(|(k, _)| *k == f.kind()) {
                Some((_, names)) => names.push(name),
                None => by_kind.push((f.kind(), vec![name])),
            }
        }
    }
    by_kind
        .into_iter()
        .map(|(kind, names)| {
            let severity = match kind {
                // Someone made or left a key a declared credential does not know: look now.
                "drifted" | "tampered" => "high",
                "several-active-keys" | "unused" | "never-used" => "medium",
                _ => "low",
            };
            let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
            let more = names.len().saturating_sub(shown.len());
            Alert {
                kind: format!("inventory_{}", kind.replace('-', "_")),
                severity: severity.to_owned(),
                summary: format!(
                    "{} credential(s) {kind}: {}{}",
                    names.len(),
                    shown.join(", "),
                    if more > 0 { format!(" and {more} more") } else { String::new() }
                ),
                tokens: Vec::new(),
                credential: None,
                location: None,
                credentials: names,
            }
        })
        .collect()
}

/// A table, one line per credential, then a count of each finding.
pub(crate) fn text(inv: &Inventory) -> String {
    let rows = rows(inv);
    let head = HEAD;
    let mut widths = head.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut s = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        let _ = writeln!(s, "{}", l.trim_end());
    };
    line(&head.map(str::to_owned));
    for r in &rows {
        line(r);
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for f in inv.entries.iter().flat_map(|e| &e.findings) {
        match counts.iter_mut().find(|(k, _)| *k == f.kind()) {
            Some((_, n)) => *n += 1,
            None => counts.push((f.kind(), 1)),
        }
    }
    let _ = write!(s, "\n{} credentials", inv.entries.len());
    if counts.is_empty() {
        s.push_str(", no findings\n");
    } else {
        let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(s, "; findings: {}", list.join(", "));
    }
    s
}

/// The table's columns.
pub(crate) const HEAD: [&str; 8] =
    ["SOURCE", "ID", "OWNER", "AGE", "LAST USED", "EXPIRES", "MANAGED", "FINDINGS"];

/// One row per credential, for people.
pub(crate) fn rows(inv: &Inventory) -> Vec<[String; 8]> {
    inv.entries.iter().map(|e| row(e, inv.generated_at)).collect()
}

fn row(e: &InventoryEntry, now: DateTime<Utc>) -> [String; 8] {
    // A source's clock may run ahead of ours by a little: that is "0s ago", not negative.
    let ago = |t: DateTime<Utc>| format!("{} ago", out::fmt_delta((now - t).max(TimeDelta::zero())));
    let last_used = match (&e.last_used, e.usage_reported) {
        (Some(u), _) => {
            let place: Vec<&str> =
                [u.service.as_deref(), u.region.as_deref()].into_iter().flatten().collect();
            if place.is_empty() { ago(u.at) } else { format!("{} ({})", ago(u.at), place.join(" ")) }
        }
        (None, true) => "never".into(),
        (None, false) => "not reported".into(),
    };
    let expires = match e.expires {
        Some(t) if t > now => format!("in {}", out::fmt_delta(t - now)),
        Some(t) => format!("{} ago", out::fmt_delta(now - t)),
        None => "never".into(),
    };
    let managed = match &e.managed {
        Some(Managed::Current { credential }) => format!("{credential} (current)"),
        Some(Managed::Previous { credential }) => format!("{credential} (previous)"),
        Some(Managed::Attributed { credential }) => format!("{credential} (retired)"),
        Some(Managed::Issued) => "issued".into(),
        Some(_) => "yes".into(),
        None => "-".into(),
    };
    let mut owner = e.owner.clone();
    if let Some(p) = &e.purpose {
        let _ = write!(owner, "/{p}");
    }
    let status = serde_json::to_value(e.status).ok().and_then(|v| v.as_str().map(str::to_owned));
    let mut findings: Vec<String> = e.findings.iter().map(finding).collect();
    if let Some(s) = status.filter(|s| s != "active" && !findings.contains(s)) {
        findings.insert(0, s);
    }
    [
        e.source.name().to_owned(),
        e.id.clone(),
        owner,
        e.created.map_or_else(|| "-".into(), |c| out::fmt_delta((now - c).max(TimeDelta::zero()))),
        last_used,
        expires,
        managed,
        if findings.is_empty() { "-".into() } else { findings.join(", ") },
    ]
}

fn finding(f: &tokenward::posture::inventory::Finding) -> String {
    use tokenward::posture::inventory::Finding;
    match f {
        Finding::Unused { days } => format!("unused {days}d"),
        Finding::TooOld { days } => format!("too-old {days}d"),
        Finding::SeveralActiveKeys { count } => format!("{count} active keys"),
        Finding::Drifted { credential } => format!("drifted from {credential}"),
        other => other.kind().to_owned(),
    }
}
