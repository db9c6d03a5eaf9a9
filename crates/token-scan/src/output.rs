//! Writing a report: text for people (colour on request), JSON lines for pipelines, SARIF 2.1.0
//! for code-scanning UIs. None writes a secret: findings carry only their redacted form and
//! fingerprint.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::finding::{Location, Report};
use crate::rule::{Confidence, GENERIC_RULE, RuleSet, TOKENWARD_RULE};

/// The tool name in SARIF and text output.
pub const TOOL_NAME: &str = "tokenward-scan";

impl Report {
    /// Writes one line per finding and a summary; `color` adds ANSI colours (for a terminal).
    pub fn write_text(&self, mut w: impl Write, color: bool) -> io::Result<()> {
        let paint =
            |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() };
        for f in &self.findings {
            let level = match f.confidence {
                Confidence::Certain | Confidence::High => paint("1;31", f.confidence.as_str()),
                Confidence::Medium => paint("33", f.confidence.as_str()),
                Confidence::Low => paint("2", f.confidence.as_str()),
            };
            writeln!(
                w,
                "{}  {}  {level}  {}  {}",
                paint("1", &f.location.to_string()),
                f.rule,
                f.redacted,
                f.fingerprint
            )?;
        }
        for s in &self.skipped {
            writeln!(w, "skipped {}: {}", s.what, s.reason)?;
        }
        let suppressed: u64 = self.suppressed.values().sum();
        let reasons: Vec<String> = self.suppressed.iter().map(|(k, v)| format!("{v} {k}")).collect();
        writeln!(
            w,
            "{} finding(s); {suppressed} suppressed{}; {} skipped; {} file(s), {} bytes scanned",
            self.findings.len(),
            if reasons.is_empty() { String::new() } else { format!(" ({})", reasons.join(", ")) },
            self.skipped.len(),
            self.files,
            self.bytes
        )
    }

    /// Writes one JSON object per finding (`"type":"finding"`), per skipped item
    /// (`"type":"skipped"`), then a summary (`"type":"summary"`).
    pub fn write_jsonl(&self, mut w: impl Write) -> io::Result<()> {
        for f in &self.findings {
            let mut v = serde_json::to_value(f).map_err(io::Error::other)?;
            v["type"] = json!("finding");
            writeln!(w, "{v}")?;
        }
        for s in &self.skipped {
            writeln!(w, "{}", json!({"type": "skipped", "what": s.what, "reason": s.reason}))?;
        }
        writeln!(
            w,
            "{}",
            json!({"type": "summary", "findings": self.findings.len(), "suppressed": self.suppressed,
                   "skipped": self.skipped.len(), "files": self.files, "bytes": self.bytes})
        )
    }

    /// Writes a SARIF 2.1.0 log: one run; in `tool.driver.rules` every rule `rules` runs (the
    /// Tokenward and generic detectors included) with its descriptions, help and default level;
    /// one result per finding with its `ruleIndex`, location, confidence and fingerprint. Paths are
    /// relative to `root` (the tree or repository scanned), which `run.originalUriBaseIds` gives as
    /// `%SRCROOT%` (a `file://` URI ending in `/`) and every `artifactLocation` names as its
    /// `uriBaseId`.
    pub fn write_sarif(&self, mut w: impl Write, rules: &RuleSet, root: &Path) -> io::Result<()> {
        // (id, description, confidence)
        let mut ids: Vec<(String, String, Option<Confidence>)> = Vec::new();
        if rules.tokenward {
            ids.push((
                TOKENWARD_RULE.to_owned(),
                "Tokenward token (any issuer prefix), CRC-32 validated".to_owned(),
                Some(Confidence::Certain),
            ));
        }
        ids.extend(
            rules
                .rules()
                .iter()
                .filter(|r| r.enabled)
                .map(|r| (r.id.clone(), r.description.clone(), Some(r.confidence))),
        );
        if rules.generic {
            ids.push((
                GENERIC_RULE.to_owned(),
                "A high-entropy value assigned to a name that means a secret (`API_KEY=…`, `password: …`), a URL's password or an Authorization header's credentials (low confidence)".to_owned(),
                Some(Confidence::Low),
            ));
        }
        for f in &self.findings {
            if !ids.iter().any(|(id, _, _)| *id == f.rule) {
                ids.push((f.rule.clone(), f.rule.clone(), None));
            }
        }
        let sarif_rules: Vec<Value> = ids
            .iter()
            .map(|(id, d, confidence)| {
                let level = if *confidence == Some(Confidence::Low) { "warning" } else { "error" };
                let help = format!(
                    "{d}. A credential in a file or in git history is leaked: revoke or rotate it at \
                     its provider first, then remove it (from the history too) and load it at run \
                     time from a secret store. A known false positive is silenced with a \
                     `tokenward:allow` comment on its line or a baseline entry."
                );
                let mut rule = json!({
                    "id": id,
                    "name": id,
                    "shortDescription": {"text": d},
                    "fullDescription": {"text": d},
                    "help": {"text": help},
                    "defaultConfiguration": {"level": level}
                });
                if let Some(c) = confidence {
                    rule["properties"] = json!({"confidence": c.as_str()});
                }
                rule
            })
            .collect();
        let results: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                let index = ids.iter().position(|(id, _, _)| *id == f.rule).unwrap_or(0);
                let level = if f.confidence == Confidence::Low { "warning" } else { "error" };
                let mut props = json!({"confidence": f.confidence.as_str(), "redacted": f.redacted});
                match &f.location {
                    Location::Git { commit, .. } => props["commit"] = json!(commit),
                    Location::Image { image, layer, deleted_in_layer, .. } => {
                        props["image"] = json!(image);
                        props["layer"] = json!(layer);
                        props["deletedInLayer"] = json!(deleted_in_layer);
                    }
                    Location::Postgres { schema, table, field, row, .. } => {
                        props["postgres"] =
                            json!({"schema": schema, "table": table, "column": field, "row": row});
                    }
                    _ => {}
                }
                json!({
                    "ruleId": f.rule,
                    "ruleIndex": index,
                    "level": level,
                    "message": {"text": format!("{} found: {}", f.rule, f.redacted)},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": uri(f.location.path()), "uriBaseId": SRCROOT},
                        "region": {"startLine": f.location.line(), "startColumn": f.location.column()}
                    }}],
                    "partialFingerprints": {"secretFingerprint/v1": f.fingerprint.as_str()},
                    "properties": props
                })
            })
            .collect();
        // What could not be read is a tool notification (the scan still ran), so a code-scanning
        // UI shows it beside the results instead of dropping it.
        let notifications: Vec<Value> = self
            .skipped
            .iter()
            .map(|s| {
                json!({
                    "level": "warning",
                    "descriptor": {"id": "skipped"},
                    "message": {"text": format!("skipped {}: {}", s.what, s.reason)},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": uri(&s.what), "uriBaseId": SRCROOT}
                    }}]
                })
            })
            .collect();
        let log = json!({
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [{
                "tool": {"driver": {
                    "name": TOOL_NAME,
                    "version": env!("CARGO_PKG_VERSION"),
                    "informationUri": "https://example.invalid/tokenward",
                    "rules": sarif_rules
                }},
                "invocations": [{
                    "executionSuccessful": true,
                    "toolExecutionNotifications": notifications,
                    "properties": {"suppressed": self.suppressed, "files": self.files, "bytes": self.bytes}
                }],
                "originalUriBaseIds": {SRCROOT: {"uri": root_uri(root)}},
                "results": results
            }]
        });
        serde_json::to_writer_pretty(&mut w, &log).map_err(io::Error::other)?;
        writeln!(w)
    }
}

/// The base id of scanned paths.
const SRCROOT: &str = "%SRCROOT%";

/// The scanned root as a `file://` URI ending in `/` (absolute; percent-encoded).
fn root_uri(root: &Path) -> String {
    let abs = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let mut text = abs.to_string_lossy().replace('\\', "/");
    if !text.starts_with('/') {
        // A Windows drive: `file:///C:/…`.
        text.insert(0, '/');
    }
    if !text.ends_with('/') {
        text.push('/');
    }
    format!("file://{}", uri(&text).replace("%3A", ":"))
}

/// A relative path as a URI reference: unreserved characters and `/` kept, the rest
/// percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.replace('\\', "/").bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
