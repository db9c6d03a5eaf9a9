//! The drill's HTML page: which store, credential, order and time; each run's pipeline steps and
//! its risk window. No script, no network.

use std::fmt::Write as _;

use super::{Run, Subject, Summary};
use crate::cmd::report::html::{STYLE, esc};
use crate::out;

pub(super) fn page(subject: &Subject, runs: &[Run], summary: &Summary) -> String {
    let mut h = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tokenward leak drill</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>{STYLE}
td,th{{text-align:right}} td:first-child,th:first-child{{text-align:left}}</style></head><body>
<h1>Tokenward leak drill</h1>"#
    );
    let _ = write!(
        h,
        r#"<div class="sub">credential <code>{}</code> · store <code>{}</code> · emergency order <b>{}</b> · started {}</div>"#,
        esc(&subject.credential),
        esc(&subject.store),
        esc(&subject.emergency_order.replace('_', "-")),
        esc(&out::time(subject.started_at))
    );
    let w = summary.risk_window_ms;
    let _ = write!(
        h,
        r#"<div class="cards"><div class="card"><b>{:.1} ms</b>risk window p50 (leak written → token refused)</div><div class="card"><b>{:.1} ms</b>risk window p90 · max {:.1} ms</div><div class="card"><b>{:.1} ms</b>pipeline p50 (detect + respond)</div><div class="card"><b class="{}">{}</b>consumer calls refused of {}</div></div>"#,
        w.p50,
        w.p90,
        w.max,
        summary.pipeline_ms.p50,
        if summary.consumer_failures == 0 { "ok" } else { "bad" },
        summary.consumer_failures,
        summary.consumer_calls
    );
    let _ = write!(h, "<p>{} run(s).</p>", runs.len());
    h.push_str("<table><tr><th>run</th><th>leak ms</th><th>detect ms</th><th>revoke+replace ms</th><th>pipeline ms</th><th>risk window ms</th><th>refused after found ms</th><th>consumer moved ms</th><th>calls</th><th>failures</th><th>leaked denied</th></tr>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td><b>{:.1}</b></td><td>{:.1}</td><td>{:.1}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            i + 1,
            r.leak_ms,
            r.detect_ms,
            r.respond_ms,
            r.pipeline_ms,
            r.risk_window_ms,
            r.dead_after_found_ms,
            r.consumer_moved_ms,
            r.consumer_calls,
            r.consumer_failures,
            if r.leaked_token_denied { "ok" } else { "bad" },
            if r.leaked_token_denied { "yes" } else { "NO" }
        );
    }
    h.push_str(
        r#"</table><p class="sub">The risk window runs from the moment the leak is written to the moment a prober presenting the leaked token every millisecond is refused; the pipeline (detection and response) is measured apart. Revoke-first refuses the token as the response starts and consumers fail until the replacement is current; replace-first keeps consumers working and refuses the token once the replacement is promoted.</p></body></html>
"#,
    );
    h
}
