//! The generic detector's hits: its parser run only at its anchors' hits.

use super::chunk::{GENERIC, Hit};
use super::{OVERLAP, Scanner};
use crate::finding::Report;
use crate::generic;
use crate::rule::Confidence;

impl Scanner {
    /// The generic detector's hits at its anchors' positions (in order), but for values in
    /// `claimed` (sorted), starting before `limit`, or in a vendor's format.
    pub(super) fn generic_hits(
        &self,
        data: &[u8],
        at: &[usize],
        claimed: &[(usize, usize)],
        limit: usize,
        report: &mut Report,
        hits: &mut Vec<Hit>,
    ) {
        let mut done = 0;
        for &a in at {
            let c = match generic::candidate(data, a, &mut done) {
                generic::Outcome::Nothing => continue,
                generic::Outcome::Suppressed(why) => {
                    if a < limit {
                        report.suppress(why);
                    }
                    continue;
                }
                generic::Outcome::Found(c) => c,
            };
            if c.start >= limit {
                continue;
            }
            let from = claimed.partition_point(|v| v.0 + OVERLAP <= c.start);
            if claimed[from..].iter().take_while(|v| v.0 < c.end).any(|v| c.start < v.1) {
                continue;
            }
            let value = c.decoded.as_deref().map_or(&data[c.start..c.end], str::as_bytes);
            let lower = value.to_ascii_lowercase();
            if self.vendor.iter().any(|a| {
                (a.len() >= 3 && lower.starts_with(a))
                    || (a.len() >= 6 && memchr::memmem::find(&lower, a).is_some())
            }) {
                continue;
            }
            hits.push(Hit {
                rule: GENERIC,
                at: c.start,
                start: c.start,
                end: c.end,
                confidence: Confidence::Low,
                public_prefix: 0,
                redacted: None,
                decoded: c.decoded,
                public_id: None,
            });
        }
    }
}
