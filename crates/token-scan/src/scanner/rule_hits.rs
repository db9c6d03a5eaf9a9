//! The rules' hits: each rule's regex on the window around its anchors' hits, its value then
//! checked (placeholders, checksums, entropy), paired with its partner, and its public prefix.

use super::Scanner;
use super::chunk::{Hit, Paired};
use crate::finding::Report;
use crate::rule::{Rule, Validator};
use crate::validate;

impl Scanner {
    /// The rules' hits; `claimed` gets the span of every value a rule's regex matched (and its
    /// partner's), `generic_at` the positions of the generic detector's anchor hits.
    pub(super) fn rule_hits(
        &self,
        data: &[u8],
        report: &mut Report,
        hits: &mut Vec<Hit>,
        vetoes: &mut Vec<(usize, usize)>,
        claimed: &mut Vec<(usize, usize)>,
        generic_at: &mut Vec<usize>,
    ) {
        let Some(ac) = &self.anchors else { return };
        let mut paired: Vec<Paired> = Vec::new();
        // Windows around anchor hits, per rule, merged where they overlap.
        let mut windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.rules.len()];
        // Leftmost-first search (prefilter-accelerated), resumed one byte past each hit's start,
        // so that anchors starting at every position are seen.
        let mut pos = 0;
        while let Some(m) = ac.find(aho_corasick::Input::new(data).span(pos..data.len())) {
            pos = m.start() + 1;
            if self.anchor_generic[m.pattern().as_usize()] {
                generic_at.push(m.start());
            }
            for &r in &self.anchor_rules[m.pattern().as_usize()] {
                let c = &self.rules[r];
                // The rule's own anchor there may be longer than the one reported.
                let end = m.end().max(m.start() + c.longest_anchor);
                let (s, e) = (m.start().saturating_sub(c.rule.before), (end + c.rule.after).min(data.len()));
                match windows[r].last_mut() {
                    Some(last) if s <= last.1 => {
                        last.0 = last.0.min(s);
                        last.1 = last.1.max(e);
                    }
                    _ => windows[r].push((s, e)),
                }
            }
        }
        for (r, ws) in windows.iter().enumerate() {
            let c = &self.rules[r];
            for &(ws_start, ws_end) in ws {
                for caps in c.regex.captures_iter(&data[ws_start..ws_end]) {
                    let Some(m) = caps.get(c.rule.secret_group) else { continue };
                    let whole = caps.get(0).map_or(m.start(), |w| w.start());
                    let (start, end) = (ws_start + m.start(), ws_start + m.end());
                    claimed.push((start, end));
                    if let Some(hit) = self.validate(
                        r,
                        data,
                        ws_start + whole,
                        (start, end),
                        report,
                        vetoes,
                        claimed,
                        &mut paired,
                    ) {
                        hits.push(hit);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn validate(
        &self,
        r: usize,
        data: &[u8],
        whole: usize,
        (start, end): (usize, usize),
        report: &mut Report,
        vetoes: &mut Vec<(usize, usize)>,
        claimed: &mut Vec<(usize, usize)>,
        paired: &mut Vec<Paired>,
    ) -> Option<Hit> {
        let c = &self.rules[r];
        let rule = &c.rule;
        let value = &data[start..end];
        if let Some(why) = validate::placeholder(value) {
            report.suppress(why);
            return None;
        }
        let checked = match rule.validator {
            Validator::None => true,
            Validator::GithubCrc32 => validate::github_crc_ok(value),
            Validator::GrafanaCrc32 => validate::grafana_crc_ok(value),
            Validator::PypiMacaroon => validate::pypi_macaroon_ok(value),
            Validator::Entropy { min_bits } => {
                if validate::entropy(value) < min_bits {
                    report.suppress("low entropy");
                    return None;
                }
                true
            }
        };
        if !checked {
            report.suppress("checksum fails");
            vetoes.push((start, end));
            return None;
        }
        let public_prefix = public_prefix(rule, value);
        let hit = Hit {
            rule: r,
            at: whole,
            start,
            end,
            confidence: rule.confidence,
            public_prefix,
            redacted: None,
            decoded: None,
            public_id: None,
        };
        let (Some(pair), Some(re)) = (&rule.pair, &c.pair) else { return Some(hit) };
        let (ws, we) = (whole.saturating_sub(rule.before), (end + rule.after).min(data.len()));
        // A partner another value (another key id) took already is not this one's: with
        // `ID_A ID_B SECRET_A SECRET_B`, B pairs with the secret after A's. The same value seen
        // again (a repeated id) may take it again.
        let taken = |p: (usize, usize)| {
            paired.iter().any(|&(q, (vs, ve))| q == p && data[vs..ve] != data[start..end])
        };
        let Some((s, e)) =
            validate::partner(re, pair.group, pair.mixed, data, (ws, we), (start, end), &taken)
        else {
            report.suppress(&pair.unpaired);
            return None;
        };
        paired.push(((s, e), (start, end)));
        claimed.push((s, e));
        let partner = &data[s..e];
        if let Some(why) = validate::placeholder(partner) {
            report.suppress(why);
            return None;
        }
        if !pair.report_partner {
            return Some(hit);
        }
        // The finding is the partner (the secret); the match (public: a key id) says whose it is.
        let id = String::from_utf8_lossy(value);
        let tail = String::from_utf8_lossy(&partner[partner.len().saturating_sub(4)..]);
        Some(Hit {
            at: s,
            start: s,
            end: e,
            public_prefix: 0,
            redacted: Some(format!("{id} / …{tail}")),
            public_id: Some(id.into_owned()),
            ..hit
        })
    }
}

/// A rule's value's public prefix: the longest of its anchors the value starts with (`ghp_`,
/// `AIza`, `dop_v1_`), or else, when the value is the whole match, a vendor prefix by shape (none
/// for a value captured out of its context: a password, a key after its variable's name).
fn public_prefix(rule: &Rule, value: &[u8]) -> usize {
    rule.anchors
        .iter()
        .map(String::as_bytes)
        .filter(|a| value.len() > a.len() && value[..a.len()].eq_ignore_ascii_case(a))
        .map(<[u8]>::len)
        .max()
        .unwrap_or_else(|| if rule.secret_group == 0 { vendor_prefix(value) } else { 0 })
}

/// The public prefix of a vendor token (`ghp_`, `glpat-`, `sk_live_`, `hvs.`, `xoxb-`): up to and
/// including its first `_`, `-` or `.` within 12 characters (a URL or a key shows none).
fn vendor_prefix(value: &[u8]) -> usize {
    if value.starts_with(b"-----") || memchr::memmem::find(value, b"://").is_some() {
        return 0;
    }
    let mut last = 0;
    for (i, c) in value.iter().take(12).enumerate() {
        if matches!(c, b'_' | b'-' | b'.') {
            last = i + 1;
        }
    }
    last
}
