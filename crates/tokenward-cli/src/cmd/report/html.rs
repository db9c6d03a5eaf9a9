//! The posture report as one self-contained HTML page: no script, no network, inline SVG charts
//! (`svg.rs`), each with a legend.

use std::fmt::Write as _;

use tokenward::posture::{Finding, Posture};

use super::svg;
use crate::out;

/// HTML-escapes text and attribute values.
pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The page's style: shared by the report and the drill page.
pub(crate) const STYLE: &str = "\
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1d2433;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px} .sub{color:#5b6577}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0} .card{background:#fff;border:1px solid #e1e5ec;border-radius:8px;padding:12px 16px;min-width:120px}
.card b{display:block;font-size:22px} table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e5ec}
td,th{padding:6px 10px;border-bottom:1px solid #eef1f5;text-align:left;vertical-align:top} th{background:#f0f2f6;font-weight:600}
.high{color:#b42318;font-weight:600} .medium{color:#b54708;font-weight:600} .low{color:#5b6577}
code{font:12px ui-monospace,Menlo,monospace} .ok{color:#067647;font-weight:600} .bad{color:#b42318;font-weight:600}
svg{background:#fff;border:1px solid #e1e5ec;border-radius:8px;display:block;width:100%;height:auto}\ntd.names{white-space:nowrap}
.legend{display:flex;gap:18px;flex-wrap:wrap;margin:0 0 6px;color:#5b6577;font-size:13px}
.legend i{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:6px;vertical-align:-1px}
.legend i.dot{border-radius:50%}
.steps span{display:inline-block;margin:0 6px 2px 0;padding:0 6px;border-radius:4px;background:#ecfdf3;color:#067647;font:12px ui-monospace,Menlo,monospace}
.steps span.failed{background:#fef3f2;color:#b42318}
";

/// A legend: `(colour, label, round)` for each mark of a chart.
pub(crate) fn legend(items: &[(&str, &str, bool)]) -> String {
    let mut s = String::from(r#"<div class="legend">"#);
    for (color, label, round) in items {
        let _ = write!(
            s,
            r#"<span><i class="{}" style="background:{color}"></i>{}</span>"#,
            if *round { "dot" } else { "" },
            esc(label)
        );
    }
    s.push_str("</div>");
    s
}

/// The tokens and credential a finding names: each token with its principal and purpose.
fn names(p: &Posture, f: &Finding) -> String {
    let mut names: Vec<String> = f
        .tokens
        .iter()
        .map(|t| match p.named_tokens.get(t) {
            Some(l) => format!(
                r#"<code>{}</code> <span class="sub">{} · {}</span>"#,
                esc(t),
                esc(&l.principal),
                esc(&l.purpose)
            ),
            None => format!("<code>{}</code>", esc(t)),
        })
        .collect();
    if let Some(c) = &f.credential {
        names.push(format!("credential <code>{}</code>", esc(c)));
    }
    names.join("<br>")
}

/// Each credential's rotation: its period, last rotation, and its audited steps.
fn rotation_history(p: &Posture) -> String {
    if p.rotation.is_empty() {
        return r#"<p class="sub">no credentials are declared</p>"#.into();
    }
    let mut h = String::from(
        "<table><tr><th>credential</th><th>rotates every</th><th>last rotated</th><th>recent steps (oldest first)</th></tr>",
    );
    for c in &p.rotation {
        let every = c.period_days.map_or_else(|| "on demand".to_owned(), super::days);
        let last = c.days_since_rotation.map_or_else(|| "never".to_owned(), super::days_ago);
        let mut steps = String::new();
        for s in &c.history {
            // A revocation's proof says how long after the revocation the provider refused it.
            let after = s.after_ms.map(|ms| format!(" +{ms} ms")).unwrap_or_default();
            let _ = write!(
                steps,
                r#"<span class="{}" title="{}{}">{} {}{}</span>"#,
                if s.ok { "" } else { "failed" },
                esc(&out::time(s.at)),
                esc(&s.handle.as_deref().map(|h| format!(" {h}")).unwrap_or_default()),
                esc(&s.at.format("%m-%d %H:%M").to_string()),
                esc(&s.step),
                esc(&after)
            );
        }
        if steps.is_empty() {
            steps.push_str(r#"<span class="sub">none in the audit log</span>"#);
        }
        let _ = write!(
            h,
            r#"<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class="steps">{steps}</td></tr>"#,
            esc(&c.name),
            esc(&every),
            esc(&last)
        );
    }
    h.push_str("</table>");
    h
}

/// The inventory's section: one row per credential, its findings red.
fn inventory(inv: &tokenward::posture::inventory::Inventory) -> String {
    let mut h = String::from("<h2>Inventory (every credential the sources show)</h2><table><tr>");
    let rows = crate::cmd::inventory::rows(inv);
    for c in crate::cmd::inventory::HEAD {
        let _ = write!(h, "<th>{}</th>", esc(&c.to_lowercase()));
    }
    h.push_str("</tr>");
    if rows.is_empty() {
        h.push_str(r#"<tr><td colspan="8">no credentials</td></tr>"#);
    }
    for r in &rows {
        h.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let class = if i + 1 == r.len() && c != "-" { r#" class="high""# } else { "" };
            let _ = write!(h, "<td{class}>{}</td>", esc(c));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}

/// The report as one self-contained HTML page: no script, no network, inline SVG charts.
pub(crate) fn html(p: &Posture) -> String {
    let mut h = String::with_capacity(16 << 10);
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tokenward posture report</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>{STYLE}</style></head><body>
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
        r#"<div class="card" title="a copy of a bound token is useless without its key"><b>{} / {}</b>active bound to a key / bearer</div>"#,
        p.binding.bound, p.binding.bearer
    );
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
        let _ = write!(
            h,
            r#"<tr><td class="{sev}">{sev}</td><td><code>{}</code></td><td>{}</td><td class="names">{}</td></tr>"#,
            f.kind.as_str(),
            esc(&f.summary),
            names(p, f),
            sev = f.severity.as_str()
        );
    }
    h.push_str("</table>");
    h.push_str("<h2>Expiry timeline (active tokens, by principal)</h2>");
    h.push_str(&legend(&[
        (svg::RED, "expires within the report's window (long-lived)", true),
        (svg::BLUE, "expires later", true),
    ]));
    h.push_str(&svg::expiry_chart(p));
    h.push_str("<h2>Rotation age per credential</h2>");
    h.push_str(&legend(&[
        (svg::GREEN, "within its rotation period", false),
        (svg::RED, "overdue or never rotated", false),
    ]));
    h.push_str(&svg::rotation_chart(p));
    h.push_str("<h2>Rotation history per credential</h2>");
    h.push_str(&rotation_history(p));
    h.push_str("<h2>Verifications per principal (from the audit log)</h2>");
    h.push_str(&legend(&[(svg::BLUE, "allowed", false), (svg::ORANGE, "denied", false)]));
    h.push_str(&svg::volume_chart(p));
    if let Some(inv) = &p.inventory {
        h.push_str(&inventory(inv));
    }
    h.push_str("</body></html>\n");
    h
}
