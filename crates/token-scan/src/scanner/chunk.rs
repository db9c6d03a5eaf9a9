//! One chunk: every detector's hits, then suppression (vetoes, allow comments, baseline),
//! fingerprints and locations.

use super::tokenward_hits::tokenward_hits;
use super::{ALLOW_MARKER, OVERLAP, Offset, Scanner};
use crate::finding::{Finding, Location, Report};
use crate::rule::{Confidence, GENERIC_RULE, TOKENWARD_RULE};

/// A match before locations: where its secret is, and what it is.
pub(super) struct Hit {
    pub(super) rule: usize, // index into rules, or usize::MAX for Tokenward
    /// Where it is reported: the whole match's start (a PEM key's `-----BEGIN`, a URL's scheme).
    pub(super) at: usize,
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) confidence: Confidence,
    pub(super) public_prefix: usize,
    pub(super) redacted: Option<String>,
    /// The secret when it is not the bytes at `start..end` (base64 of text, decoded).
    pub(super) decoded: Option<String>,
    /// The public half of a pair whose secret is reported (an AWS access key id).
    pub(super) public_id: Option<String>,
}

/// A partner taken, and the span of the value (a key id) that took it.
pub(super) type Paired = ((usize, usize), (usize, usize));

pub(super) const TOKENWARD: usize = usize::MAX;
pub(super) const GENERIC: usize = usize::MAX - 1;

impl Scanner {
    /// Scans `data`, reporting matches whose secret starts before `limit`.
    pub(crate) fn scan_chunk(
        &self,
        data: &[u8],
        limit: usize,
        offset: Offset,
        report: &mut Report,
        locate: &dyn Fn(u64, u64) -> Location,
    ) {
        let mut hits = Vec::new();
        let mut vetoes = Vec::new();
        let mut claimed = Vec::new();
        let mut generic_at = Vec::new();
        self.rule_hits(data, report, &mut hits, &mut vetoes, &mut claimed, &mut generic_at);
        if self.tokenward {
            tokenward_hits(data, report, &mut hits, &mut vetoes);
        }
        if !generic_at.is_empty() {
            // Values a rule matched (reported or not: its own judgement stands) or vetoed are no
            // generic finding.
            claimed.extend_from_slice(&vetoes);
            claimed.sort_unstable();
            self.generic_hits(data, &generic_at, &claimed, limit, report, &mut hits);
        }
        hits.retain(|h| h.start < limit);
        // A value whose checksum failed is reported by no rule: every match overlapping it yields
        // (a veto is shorter than the overlap between chunks, so only those starting within it of
        // a hit can reach it).
        if !vetoes.is_empty() {
            vetoes.sort_unstable();
            hits.retain(|h| {
                let from = vetoes.partition_point(|v| v.0 + OVERLAP <= h.start);
                !vetoes[from..].iter().take_while(|v| v.0 < h.end).any(|v| h.start < v.1)
            });
        }
        // One finding per secret: where two rules match overlapping text, the surer one wins.
        hits.sort_by(|a, b| a.start.cmp(&b.start).then(b.confidence.cmp(&a.confidence)));
        let mut kept: Vec<Hit> = Vec::with_capacity(hits.len());
        for h in hits {
            // Only hits starting within the longest possible match can overlap this one (kept is
            // in start order), so a file with thousands of hits is not quadratic.
            let mut near = kept.iter().rev().take_while(|k| k.start + OVERLAP > h.start);
            if near.any(|k| k.start < h.end && h.start < k.end && k.confidence >= h.confidence) {
                continue;
            }
            kept.push(h);
        }
        // Locations: lines counted once, forward.
        kept.sort_by_key(|h| h.at);
        let (mut line, mut counted) = (offset.line + 1, 0usize);
        for h in kept {
            line += memchr::memchr_iter(b'\n', &data[counted..h.at]).count() as u64;
            counted = h.at;
            let line_start = memchr::memrchr(b'\n', &data[..h.at]).map_or(0, |i| i + 1);
            let line_end = memchr::memchr(b'\n', &data[h.at..]).map_or(data.len(), |i| h.at + i);
            let allowed =
                memchr::memmem::find(&data[line_start..line_end], ALLOW_MARKER.as_bytes()).is_some();
            if allowed && h.rule != TOKENWARD {
                report.suppress("allow comment");
                continue;
            }
            let secret = match &h.decoded {
                Some(d) => d.as_str(),
                None => match std::str::from_utf8(&data[h.start..h.end]) {
                    Ok(s) => s,
                    Err(_) => {
                        report.suppress("not text");
                        continue;
                    }
                },
            };
            let rule = match h.rule {
                TOKENWARD => TOKENWARD_RULE,
                GENERIC => GENERIC_RULE,
                r => self.rules[r].rule.id.as_str(),
            };
            let column = (h.at - line_start) as u64 + 1;
            let mut finding = Finding::new(
                rule,
                locate(line, column),
                h.confidence,
                secret,
                h.public_prefix,
                self.key.as_ref(),
            );
            if let Some(r) = h.redacted {
                finding.redacted = r;
            }
            finding.public_id = h.public_id;
            let why = if allowed {
                Some("allow comment")
            } else {
                self.baseline.contains(&finding.fingerprint).then_some("baseline")
            };
            match why {
                None => report.findings.push(finding),
                Some(why) => {
                    report.suppress(why);
                    // A Tokenward token is not reported, but stays within the leak response's
                    // reach: a comment or a baseline entry never keeps one alive.
                    if h.rule == TOKENWARD {
                        finding.suppressed = Some(why.to_owned());
                        report.suppressed_tokens.push(finding);
                    }
                }
            }
        }
    }
}
