//! The Tokenward detector: tokens of any issuer prefix, counted only when their CRC-32 checks.

use super::chunk::{Hit, TOKENWARD};
use crate::finding::Report;
use crate::rule::Confidence;

fn is_base62(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Tokenward tokens of any issuer prefix: `_` then exactly the 66-character body, the prefix
/// before it; a candidate counts only if its CRC-32 checks (`certain`).
pub(super) fn tokenward_hits(
    data: &[u8],
    report: &mut Report,
    hits: &mut Vec<Hit>,
    vetoes: &mut Vec<(usize, usize)>,
) {
    use token_core::limits::{BODY_LEN, MAX_PREFIX_LEN};
    for sep in memchr::memchr_iter(b'_', data) {
        let body_end = sep + 1 + BODY_LEN;
        if body_end > data.len()
            || !is_base62(data[body_end - 1])
            || data.get(body_end).is_some_and(|c| is_base62(*c) || *c == b'_')
            || !data[sep + 1..body_end].iter().all(|c| is_base62(*c))
        {
            continue;
        }
        // The prefix: lowercase letters, digits and single underscores, up to 32, ending at `sep`.
        let mut start = sep;
        while start > 0
            && sep - start < MAX_PREFIX_LEN
            && matches!(data[start - 1], b'a'..=b'z' | b'0'..=b'9' | b'_')
        {
            start -= 1;
        }
        if start == sep {
            continue;
        }
        // The prefix may begin after any `_` of that run (the CRC covers it, so only the right
        // one checks): longest first.
        let mut found = false;
        let mut saw_shape = false;
        for s in (start..sep).filter(|&s| s == start || data[s - 1] == b'_') {
            if !data[s].is_ascii_lowercase() {
                continue;
            }
            let Ok(text) = std::str::from_utf8(&data[s..body_end]) else { continue };
            saw_shape = true;
            if token_core::lookup::ParsedToken::parse(text).is_ok() {
                hits.push(Hit {
                    rule: TOKENWARD,
                    at: s,
                    start: s,
                    end: body_end,
                    confidence: Confidence::Certain,
                    public_prefix: sep + 1 - s,
                    redacted: None,
                    decoded: None,
                    public_id: None,
                });
                found = true;
                break;
            }
        }
        if saw_shape && !found {
            report.suppress("checksum fails");
            vetoes.push((start, body_end));
        }
    }
}
