//! The engine: one Aho-Corasick pass over the literal anchors of every rule and of the generic
//! detector, regexes only on the merged windows around anchor hits, the generic detector's parser
//! only at its anchors' hits, the Tokenward detector (any issuer prefix, CRC-32), then validation,
//! suppression (examples, checksums, baseline, allow comments) and locations.

use std::collections::HashSet;
use std::io::Read;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use regex::bytes::Regex;

use crate::error::ScanError;
use crate::finding::{Finding, Fingerprint, Location, Report, Skipped};
use crate::generic;
use crate::rule::{Confidence, GENERIC_RULE, Rule, RuleSet, TOKENWARD_RULE, Validator};
use crate::validate;

/// Bytes read per chunk of a stream; a chunk overlaps the next by [`OVERLAP`].
pub(crate) const CHUNK: usize = 4 << 20;
/// The overlap between chunks: longer than any match a rule allows (a PEM key: 8 KiB).
pub(crate) const OVERLAP: usize = 16 << 10;
/// A file (or stream) with a NUL byte in its first this many bytes is binary and skipped.
const BINARY_SNIFF: usize = 8000;
/// The inline comment that marks a line's finding as known and allowed.
pub const ALLOW_MARKER: &str = "tokenward:allow";

struct Compiled {
    rule: Rule,
    regex: Regex,
    /// The partner's regex, for a paired rule.
    pair: Option<Regex>,
    /// Its longest anchor's length.
    longest_anchor: usize,
}

/// A compiled rule set with its options; cheap to share between threads (`Send + Sync`).
pub struct Scanner {
    rules: Vec<Compiled>,
    anchors: Option<AhoCorasick>,
    anchor_rules: Vec<Vec<usize>>,
    /// Whether an anchor is (or shares a prefix with) one of the generic detector's.
    anchor_generic: Vec<bool>,
    tokenward: bool,
    /// The rules' anchors, lowercase: a generic value starting with one (or holding one of six
    /// characters or more) is a vendor's format, that vendor's rule's to judge.
    vendor: Vec<Vec<u8>>,
    baseline: HashSet<Fingerprint>,
    key: Option<[u8; 32]>,
    /// The rules it was built from (for SARIF's rule table).
    set: RuleSet,
}

impl std::fmt::Debug for Scanner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scanner")
            .field("rules", &self.rules.iter().map(|r| r.rule.id.as_str()).collect::<Vec<_>>())
            .field("tokenward", &self.tokenward)
            .field("baseline", &self.baseline.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`Scanner`].
#[derive(Debug)]
#[must_use]
pub struct ScannerBuilder {
    rules: RuleSet,
    baseline: HashSet<Fingerprint>,
    key: Option<[u8; 32]>,
}

impl ScannerBuilder {
    /// The rules to run (the built-in set by default).
    pub fn rules(mut self, rules: RuleSet) -> Self {
        self.rules = rules;
        self
    }

    /// Findings whose fingerprint is in `baseline` are suppressed (counted as `baseline`).
    pub fn baseline(mut self, baseline: impl IntoIterator<Item = Fingerprint>) -> Self {
        self.baseline.extend(baseline);
        self
    }

    /// Fingerprints become HMAC-SHA256 under `key` instead of plain SHA-256.
    pub fn fingerprint_key(mut self, key: [u8; 32]) -> Self {
        self.key = Some(key);
        self
    }

    /// Compiles the rules: a bad regex, an anchor-less rule or a window wider than the overlap
    /// between chunks (`before + after + anchor` over 16 KiB: a match that long could be split
    /// between two chunks and missed) is [`ScanError::Rules`], naming the rule.
    pub fn build(self) -> Result<Scanner, ScanError> {
        let set = self.rules.clone();
        let mut rules = Vec::new();
        let mut patterns: Vec<String> = Vec::new();
        let mut anchor_rules: Vec<Vec<usize>> = Vec::new();
        for rule in self.rules.rules.into_iter().filter(|r| r.enabled) {
            if rule.anchors.is_empty() || rule.anchors.iter().any(|a| a.is_empty() || !a.is_ascii()) {
                return Err(ScanError::Rules(format!(
                    "rule {}: anchors must be non-empty ASCII strings",
                    rule.id
                )));
            }
            let longest = rule.anchors.iter().map(String::len).max().unwrap_or(0);
            if rule.before.saturating_add(rule.after).saturating_add(longest) > OVERLAP {
                return Err(ScanError::Rules(format!(
                    "rule {}: before + after + anchor is {} bytes, more than the {OVERLAP}-byte overlap \
                     between chunks (a match that long could be split and missed)",
                    rule.id,
                    rule.before.saturating_add(rule.after).saturating_add(longest)
                )));
            }
            let regex = regex::bytes::RegexBuilder::new(&rule.regex)
                .size_limit(1 << 22)
                .build()
                .map_err(|e| ScanError::Rules(format!("rule {}: {e}", rule.id)))?;
            if rule.secret_group >= regex.captures_len() {
                return Err(ScanError::Rules(format!(
                    "rule {}: no capture group {}",
                    rule.id, rule.secret_group
                )));
            }
            let pair = match &rule.pair {
                None => None,
                Some(p) => {
                    let re = regex::bytes::RegexBuilder::new(&p.regex)
                        .size_limit(1 << 22)
                        .build()
                        .map_err(|e| ScanError::Rules(format!("rule {}: pair: {e}", rule.id)))?;
                    if p.group >= re.captures_len() {
                        return Err(ScanError::Rules(format!(
                            "rule {}: pair: no capture group {}",
                            rule.id, p.group
                        )));
                    }
                    Some(re)
                }
            };
            let index = rules.len();
            for anchor in &rule.anchors {
                let lower = anchor.to_ascii_lowercase();
                match patterns.iter().position(|p| *p == lower) {
                    Some(p) => anchor_rules[p].push(index),
                    None => {
                        patterns.push(lower);
                        anchor_rules.push(vec![index]);
                    }
                }
            }
            rules.push(Compiled { rule, regex, pair, longest_anchor: longest });
        }
        let vendor: Vec<Vec<u8>> = patterns.iter().map(|p| p.as_bytes().to_vec()).collect();
        let mut anchor_generic = vec![false; patterns.len()];
        if set.generic {
            for anchor in generic::ANCHORS {
                match patterns.iter().position(|p| p == anchor) {
                    Some(p) => anchor_generic[p] = true,
                    None => {
                        patterns.push((*anchor).to_owned());
                        anchor_rules.push(Vec::new());
                        anchor_generic.push(true);
                    }
                }
            }
        }
        // The search reports one anchor per start (leftmost-first), so where one anchor is a prefix
        // of another (`azure` and `azure_devops_pat`, `-----BEGIN ` and `-----BEGIN PGP …`), a hit
        // on either stands for both: each carries the other's rules (their regexes decide).
        let own = anchor_rules.clone();
        let own_generic = anchor_generic.clone();
        for (i, p) in patterns.iter().enumerate() {
            for (j, q) in patterns.iter().enumerate() {
                if i != j && (q.starts_with(p.as_str()) || p.starts_with(q.as_str())) {
                    anchor_generic[i] |= own_generic[j];
                    for &r in &own[j] {
                        if !anchor_rules[i].contains(&r) {
                            anchor_rules[i].push(r);
                        }
                    }
                }
            }
            anchor_rules[i].sort_unstable();
        }
        let anchors = if patterns.is_empty() {
            None
        } else {
            Some(
                // A DFA whatever the number of anchors (left to itself the crate picks an NFA past
                // about a hundred, at two thirds of the speed): a few hundred KiB for ~200 anchors.
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::LeftmostFirst)
                    .kind(Some(AhoCorasickKind::DFA))
                    .build(&patterns)
                    .map_err(|e| ScanError::Rules(format!("anchors: {e}")))?,
            )
        };
        Ok(Scanner {
            rules,
            anchors,
            anchor_rules,
            anchor_generic,
            tokenward: self.rules.tokenward,
            vendor,
            baseline: self.baseline,
            key: self.key,
            set,
        })
    }
}

/// A match before locations: where its secret is, and what it is.
struct Hit {
    rule: usize, // index into rules, or usize::MAX for Tokenward
    /// Where it is reported: the whole match's start (a PEM key's `-----BEGIN`, a URL's scheme).
    at: usize,
    start: usize,
    end: usize,
    confidence: Confidence,
    public_prefix: usize,
    redacted: Option<String>,
    /// The secret when it is not the bytes at `start..end` (base64 of text, decoded).
    decoded: Option<String>,
    /// The public half of a pair whose secret is reported (an AWS access key id).
    public_id: Option<String>,
}

/// A partner taken, and the span of the value (a key id) that took it.
type Paired = ((usize, usize), (usize, usize));

const TOKENWARD: usize = usize::MAX;
const GENERIC: usize = usize::MAX - 1;

/// Where the chunk being scanned sits in its whole: bytes and lines before it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Offset {
    pub(crate) line: u64,
}

impl Scanner {
    /// A builder with the built-in rules.
    pub fn builder() -> ScannerBuilder {
        ScannerBuilder { rules: RuleSet::builtin(), baseline: HashSet::new(), key: None }
    }

    /// A scanner with the built-in rules and no baseline.
    pub fn new() -> Result<Self, ScanError> {
        Self::builder().build()
    }

    /// The rules it runs (what [`Report::write_sarif`] lists as the run's rules).
    pub fn rule_set(&self) -> &RuleSet {
        &self.set
    }

    /// Scans bytes a service holds (`name` is their location's path).
    pub fn scan_bytes(&self, name: &str, data: &[u8]) -> Report {
        let mut report = Report { files: 1, bytes: data.len() as u64, ..Report::default() };
        self.scan_chunk(data, data.len(), Offset::default(), &mut report, &|line, column| Location::File {
            path: name.to_owned(),
            line,
            column,
        });
        report.sort();
        report
    }

    /// Scans a stream in overlapping chunks (memory stays bounded whatever its size). A binary
    /// stream (a NUL in its first 8,000 bytes) is skipped and reported.
    pub fn scan_reader(&self, name: &str, reader: impl Read) -> Result<Report, ScanError> {
        let mut report = Report::default();
        let mut buf = Vec::new();
        self.scan_stream(reader, &mut buf, &mut report, name, &|line, column| Location::File {
            path: name.to_owned(),
            line,
            column,
        })
        .map_err(|e| ScanError::Io { what: name.to_owned(), source: e })?;
        report.sort();
        Ok(report)
    }

    /// The streaming scan behind every source: `buf` is reused between calls.
    pub(crate) fn scan_stream(
        &self,
        mut reader: impl Read,
        buf: &mut Vec<u8>,
        report: &mut Report,
        what: &str,
        locate: &dyn Fn(u64, u64) -> Location,
    ) -> std::io::Result<()> {
        buf.clear();
        let mut offset = Offset::default();
        let mut first = true;
        loop {
            // Fill up to CHUNK (the kept overlap included), appending into spare capacity: no
            // zero-filling of a chunk-sized buffer for a file of a few kilobytes.
            let kept = buf.len();
            let want = (CHUNK.max(kept + OVERLAP) - kept) as u64;
            let read = loop {
                match reader.by_ref().take(want).read_to_end(buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            };
            let eof = (read as u64) < want;
            let filled = buf.len();
            if first {
                first = false;
                if memchr::memchr(0, &buf[..buf.len().min(BINARY_SNIFF)]).is_some() {
                    report.skipped.push(Skipped { what: what.to_owned(), reason: "binary".into() });
                    return Ok(());
                }
                report.files += 1;
            }
            report.bytes += (filled - kept) as u64;
            // Report matches that start before the overlap kept for the next chunk (all of them
            // at the end), so none is reported twice.
            let limit = if eof { buf.len() } else { buf.len() - OVERLAP };
            self.scan_chunk(buf, limit, offset, report, locate);
            if eof {
                return Ok(());
            }
            offset.line += memchr::memchr_iter(b'\n', &buf[..limit]).count() as u64;
            buf.drain(..limit);
        }
    }

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

    /// The rules' hits; `claimed` gets the span of every value a rule's regex matched (and its
    /// partner's), `generic_at` the positions of the generic detector's anchor hits.
    fn rule_hits(
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

    /// The generic detector's hits at its anchors' positions (in order), but for values in
    /// `claimed` (sorted), starting before `limit`, or in a vendor's format.
    fn generic_hits(
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

fn is_base62(c: u8) -> bool {
    c.is_ascii_alphanumeric()
}

/// Tokenward tokens of any issuer prefix: `_` then exactly the 66-character body, the prefix
/// before it; a candidate counts only if its CRC-32 checks (`certain`).
fn tokenward_hits(data: &[u8], report: &mut Report, hits: &mut Vec<Hit>, vetoes: &mut Vec<(usize, usize)>) {
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
