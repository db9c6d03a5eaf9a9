//! The posture report's charts, as inline SVG: an expiry timeline and horizontal bar charts. Labels
//! are cut to the room they have (the whole text in a tooltip); points that would overlap are
//! stacked in lanes.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use tokenward::core::chrono::TimeDelta;
use tokenward::core::duration::approx;
use tokenward::posture::{FindingKind, Posture, TokenPoint};

use super::html::esc;
use crate::out;

pub(crate) const RED: &str = "#d92d20";
pub(crate) const BLUE: &str = "#2e90fa";
pub(crate) const GREEN: &str = "#12b76a";
pub(crate) const ORANGE: &str = "#f79009";

const W: f64 = 1060.0;
/// About how wide a character of the 12 px labels is.
const CHAR_W: f64 = 6.6;

/// `text` cut to fit `width` pixels (with `…`), as SVG text with the whole text as its tooltip.
fn label(x: f64, y: f64, width: f64, text: &str, fill: &str) -> String {
    let room = ((width / CHAR_W).floor() as usize).max(4);
    let shown = if text.chars().count() > room {
        let mut cut: String = text.chars().take(room - 1).collect();
        cut.push('…');
        cut
    } else {
        text.to_owned()
    };
    format!(
        r#"<text x="{x:.1}" y="{y:.1}" font-size="12" fill="{fill}"><title>{}</title>{}</text>"#,
        esc(text),
        esc(&shown)
    )
}

/// Lanes for points on a line: each point (by x) goes to the first lane where it is clear of the
/// last point by `gap`; returns each point's lane (in input order) and the number of lanes.
fn lanes(xs: &[f64], gap: f64) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ends: Vec<f64> = Vec::new();
    let mut lane = vec![0; xs.len()];
    for i in order {
        let l = ends.iter().position(|&end| xs[i] - end >= gap).unwrap_or(ends.len());
        if l == ends.len() {
            ends.push(xs[i]);
        } else {
            ends[l] = xs[i];
        }
        lane[i] = l;
    }
    (lane, ends.len().max(1))
}

/// A point on the timeline: its x, its lane, the token.
type Placed<'a> = (f64, usize, &'a TokenPoint);

pub(crate) fn expiry_chart(p: &Posture) -> String {
    if p.expiry.is_empty() {
        return r#"<p class="sub">no active tokens</p>"#.into();
    }
    let now = p.generated_at;
    let last = p.expiry.iter().map(|t| t.expires_at).max().unwrap_or(now);
    let span = (last - now).num_seconds().max(3600) as f64;
    let (left, right) = (180.0, W - 40.0);
    let rows: Vec<&str> =
        p.expiry.iter().map(|t| t.principal.as_str()).collect::<BTreeSet<_>>().into_iter().collect();
    let soon_ids: BTreeSet<&str> = p
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::ExpiringSoon)
        .flat_map(|f| f.tokens.iter().map(String::as_str))
        .collect();
    const LANE: f64 = 14.0;
    const ROW_PAD: f64 = 14.0;
    // Each principal's points, placed, and its lanes.
    let placed: Vec<(Vec<Placed<'_>>, usize)> = rows
        .iter()
        .map(|principal| {
            let points: Vec<_> = p.expiry.iter().filter(|t| t.principal == *principal).collect();
            let xs: Vec<f64> = points
                .iter()
                .map(|t| {
                    left + (right - left) * ((t.expires_at - now).num_seconds() as f64 / span).clamp(0.0, 1.0)
                })
                .collect();
            let (lane, n) = lanes(&xs, 13.0);
            (points.into_iter().zip(xs).zip(lane).map(|((t, x), l)| (x, l, t)).collect(), n)
        })
        .collect();
    let top = 30.0;
    let height = top + placed.iter().map(|(_, n)| *n as f64 * LANE + ROW_PAD).sum::<f64>() + 34.0;
    let mut s = format!(
        r#"<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img" aria-label="expiry timeline">"#
    );
    for i in 0..=4 {
        let x = left + (right - left) * f64::from(i) / 4.0;
        let at = TimeDelta::seconds((span * f64::from(i) / 4.0) as i64);
        let anchor = match i {
            0 => "start",
            4 => "end",
            _ => "middle",
        };
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="20" x2="{x:.1}" y2="{:.1}" stroke="#e1e5ec"/><text x="{x:.1}" y="14" font-size="11" text-anchor="{anchor}" fill="#5b6577">{}</text>"##,
            height - 30.0,
            if i == 0 { "now".to_owned() } else { format!("+{}", approx(at)) }
        );
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#5b6577">time until the token expires (from {})</text>"##,
        (left + right) / 2.0,
        height - 10.0,
        esc(&out::time(now))
    );
    let mut y0 = top;
    for (principal, (points, n)) in rows.iter().zip(&placed) {
        let row_h = *n as f64 * LANE + ROW_PAD;
        let mid = y0 + row_h / 2.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" y1="{:.1}" x2="{right}" y2="{:.1}" stroke="#f0f2f6"/>"##,
            y0 + row_h,
            y0 + row_h
        );
        s.push_str(&label(8.0, mid + 4.0, left - 16.0, principal, "#1d2433"));
        for (x, lane, t) in points {
            let y = y0 + ROW_PAD / 2.0 + LANE / 2.0 + *lane as f64 * LANE;
            let soon = soon_ids.contains(t.id.as_str());
            let _ = write!(
                s,
                r##"<circle cx="{x:.1}" cy="{y:.1}" r="6" fill="{}" stroke="#fff" stroke-width="1.5"><title>{} ({} · {}) expires {}</title></circle>"##,
                if soon { RED } else { BLUE },
                esc(&t.id),
                esc(&t.principal),
                esc(&t.purpose),
                esc(&out::time(t.expires_at))
            );
        }
        y0 += row_h;
    }
    s.push_str("</svg>");
    s
}

/// A bar: its value, colour and tooltip.
type Bar = (f64, &'static str, String);

/// Horizontal bars, scaled to the largest total (or `scale`, if larger), each row labelled with
/// `total_label(row, total)`.
fn bar_chart(rows: &[(String, Vec<Bar>)], scale: f64, total_label: impl Fn(usize, f64) -> String) -> String {
    if rows.is_empty() {
        return r#"<p class="sub">nothing to show</p>"#.into();
    }
    let max =
        rows.iter().map(|(_, bars)| bars.iter().map(|b| b.0).sum::<f64>()).fold(scale, f64::max).max(1e-9);
    let (left, right) = (240.0, W - 110.0);
    let height = 20.0 + rows.len() as f64 * 30.0;
    let mut s = format!(r#"<svg width="{W}" height="{height}" viewBox="0 0 {W} {height}" role="img">"#);
    for (i, (name, bars)) in rows.iter().enumerate() {
        let y = 12.0 + i as f64 * 30.0;
        s.push_str(&label(8.0, y + 13.0, left - 16.0, name, "#1d2433"));
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
            esc(&total_label(i, total))
        );
    }
    s.push_str("</svg>");
    s
}

pub(crate) fn rotation_chart(p: &Posture) -> String {
    // Scaled to the longest period, so a fresh rotation is a short bar and an overdue one passes it.
    let scale = p.rotation.iter().filter_map(|c| c.period_days).fold(0.0, f64::max);
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
                    format!("{}: rotated {}, every {}", c.name, super::days_ago(a), super::days(period))
                }
                (Some(a), None) => format!("{}: rotated {}", c.name, super::days_ago(a)),
            };
            let color = if overdue { RED } else { GREEN };
            // A fresh rotation is a sliver, not nothing.
            (c.name.clone(), vec![(age.max(scale * 0.004), color, title)])
        })
        .collect();
    let totals: Vec<String> = p
        .rotation
        .iter()
        .map(|c| match (c.days_since_rotation, c.period_days) {
            (None, Some(period)) => format!("never · every {}", super::days(period)),
            (None, None) => "never rotated".to_owned(),
            (Some(a), Some(period)) => format!("{} of {}", super::days(a), super::days(period)),
            (Some(a), None) => super::days(a),
        })
        .collect();
    bar_chart(&rows, scale, |i, _| totals[i].clone())
}

pub(crate) fn volume_chart(p: &Posture) -> String {
    let rows: Vec<(String, Vec<Bar>)> = p
        .verifications
        .iter()
        .map(|(principal, v)| {
            (
                principal.clone(),
                vec![
                    (v.allowed as f64, BLUE, format!("{} allowed", v.allowed)),
                    (v.denied as f64, ORANGE, format!("{} denied", v.denied)),
                ],
            )
        })
        .collect();
    bar_chart(&rows, 0.0, |_, n| format!("{n:.0} call{}", if (n - 1.0).abs() < 0.5 { "" } else { "s" }))
}
