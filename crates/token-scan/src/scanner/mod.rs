//! The engine: one Aho-Corasick pass over the literal anchors of every rule and of the generic
//! detector, regexes only on the merged windows around anchor hits, the generic detector's parser
//! only at its anchors' hits, the Tokenward detector (any issuer prefix, CRC-32), then validation,
//! suppression (examples, checksums, baseline, allow comments) and locations.
//!
//! This module holds the scanner and its entry points (bytes, a stream in overlapping chunks);
//! `build` compiles a rule set into one, `chunk` scans one chunk (hits, suppression, locations),
//! and each detector's hits are in a module of their own: `rule_hits`, `generic_hits`,
//! `tokenward_hits`.

mod build;
mod chunk;
mod generic_hits;
mod rule_hits;
mod tokenward_hits;

use std::collections::HashSet;
use std::io::Read;

use aho_corasick::AhoCorasick;
use regex::bytes::Regex;

pub use self::build::ScannerBuilder;
use crate::error::ScanError;
use crate::finding::{Fingerprint, Location, Report, Skipped};
use crate::rule::{Rule, RuleSet};

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
}
