//! Writing a report: text for people (colour on request), JSON lines for pipelines, SARIF 2.1.0
//! for code-scanning UIs. None writes a secret: findings carry only their redacted form and
//! fingerprint.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{Value, json};

use crate::finding::{Location, Report};
use crate::live::{Validity, printable};
use crate::rule::{Confidence, GENERIC_RULE, RuleSet, TOKENWARD_RULE};

/// The tool name in SARIF and text output.
pub const TOOL_NAME: &str = "tokenward-scan";

impl Report {
    /// Writes one line per finding and a summary; `color` adds ANSI colours (for a terminal).
    pub fn write_text(&self, mut w: impl Write, color: bool) -> io::Result<()> {
        let paint =
            |code: &str, s: &str| if color { format!("\x1b[{code}m{s}\x1b[0m") } else { s.to_owned() };
        for f in &self.findings {
            let mitigated = f.validation.as_ref().is_some_and(|v| v.is_mitigated());
            let level = match f.confidence {
                Confidence::Certain | Confidence::High if !mitigated => paint("1;31", f.confidence.as_str()),
                Confidence::Certain | Confidence::High | Confidence::Medium => {
                    paint("33", f.confidence.as_str())
                }
                Confidence::Low => paint("2", f.confidence.as_str()),
            };
            let validity = match &f.validation {
                None => String::new(),
                Some(v) => {
                    let word = match v.validity {
                        Validity::Valid if mitigated => paint("33", "valid"),
                        Validity::Valid => paint("1;31", "valid"),
                        Validity::Invalid => paint("32", "invalid"),
                        Validity::Unknown => paint("2", "unknown"),
                    };
                    let lower = match &v.mitigation {
                        Some(m) => format!("  lower severity: {}", printable(m, 200)),
                        None => String::new(),
                    };
                    // A provider's words (a display name) must not start lines of their own.
                    format!("  {word} ({}: {}){lower}", printable(&v.by, 64), printable(&v.detail, 400))
                }
            };
            writeln!(
                w,
                "{}  {}  {level}  {}  {}{validity}",
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
    /// one result per finding with its `ruleIndex`, location, confidence and fingerprint. Files'
    /// paths are relative to `root` (the tree or repository scanned), which
    /// `run.originalUriBaseIds` gives as `%SRCROOT%` (a `file://` URI ending in `/`) and their
    /// `artifactLocation` names as its `uriBaseId`; an S3 object is located by its absolute
    /// `s3://` URI, an image's file and a database value by a logical location.
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
                // One level lower for a mitigated finding (a key-bound token of ours).
                let mitigated = f.validation.as_ref().is_some_and(|v| v.is_mitigated());
                let level = if f.confidence == Confidence::Low || mitigated { "warning" } else { "error" };
                let mut props = json!({"confidence": f.confidence.as_str(), "redacted": f.redacted});
                if let Some(v) = &f.validation {
                    props["validity"] = json!(v.validity.as_str());
                    props["validatedBy"] = json!(v.by);
                    props["validationDetail"] = json!(v.detail);
                    if let Some(m) = &v.mitigation {
                        props["mitigation"] = json!(m);
                    }
                }
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
                    "locations": [sarif_location(&f.location)],
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
                    "message": {"text": format!("skipped {}: {}", s.what, s.reason)}
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

/// Where a finding is, as SARIF says it: a file of the tree or repository scanned relative to
/// `%SRCROOT%`; an S3 object by its absolute `s3://` URI; a file in a container image or a value in
/// a database, which are no artifact under the scanned root, as a logical location (its full name
/// as the text report prints it; the line and column in the value go in the properties).
fn sarif_location(l: &Location) -> Value {
    let region = json!({"startLine": l.line(), "startColumn": l.column()});
    match l {
        Location::File { path, .. } | Location::Git { path, .. } => json!({"physicalLocation": {
            "artifactLocation": {"uri": uri(path), "uriBaseId": SRCROOT},
            "region": region
        }}),
        Location::S3 { bucket, key, .. } => json!({"physicalLocation": {
            "artifactLocation": {"uri": format!("s3://{}/{}", uri(bucket), uri(key))},
            "region": region
        }}),
        Location::Image { image, layer_index, path, .. } => json!({
            "logicalLocations": [{"fullyQualifiedName": format!("{image}[layer {layer_index}]:{path}"), "kind": "resource"}],
            "properties": {"line": l.line(), "column": l.column()}
        }),
        Location::Postgres { schema, table, field, row, .. } => json!({
            "logicalLocations": [{"fullyQualifiedName": format!("postgres:{schema}.{table}:{field}:{row}"), "kind": "value"}],
            "properties": {"line": l.line(), "column": l.column()}
        }),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finding::Finding;

    /// Findings outside the scanned root never claim `%SRCROOT%`: an S3 object by its absolute
    /// URI, an image's file and a database value as logical locations; the log stays valid SARIF.
    #[test]
    fn locations_outside_the_root_carry_no_srcroot() {
        let at = |location| {
            Finding::new("generic-assignment", location, Confidence::Low, "Vq7Lr2Xw9Tb4KpN8", 0, None)
        };
        let mut report = Report::default();
        report.findings.extend([
            at(Location::File { path: "a b/.env".into(), line: 1, column: 9 }),
            at(Location::S3 { bucket: "logs".into(), key: "app/x y.env".into(), line: 2, column: 3 }),
            at(Location::Image {
                image: "app:1".into(),
                layer: "blobs/sha256/ab".into(),
                layer_index: 2,
                path: "etc/app.env".into(),
                line: 4,
                column: 5,
                deleted_in_layer: None,
            }),
            at(Location::Postgres {
                schema: "public".into(),
                table: "settings".into(),
                field: "value".into(),
                row: "id=7".into(),
                line: 1,
                column: 1,
            }),
        ]);
        report
            .skipped
            .push(crate::finding::Skipped { what: "s3://logs/big.bin".into(), reason: "binary".into() });
        let mut out = Vec::new();
        report.write_sarif(&mut out, &RuleSet::builtin(), Path::new("/src")).unwrap();
        let log: Value = serde_json::from_slice(&out).unwrap();
        let results = log["runs"][0]["results"].as_array().unwrap();
        let place = |i: usize| &results[i]["locations"][0];
        assert_eq!(place(0)["physicalLocation"]["artifactLocation"]["uriBaseId"], SRCROOT);
        assert_eq!(place(0)["physicalLocation"]["artifactLocation"]["uri"], "a%20b/.env");
        let s3 = &place(1)["physicalLocation"]["artifactLocation"];
        assert_eq!(s3["uri"], "s3://logs/app/x%20y.env");
        assert!(s3.get("uriBaseId").is_none(), "{s3}");
        assert_eq!(place(2)["logicalLocations"][0]["fullyQualifiedName"], "app:1[layer 2]:etc/app.env");
        assert_eq!(
            place(3)["logicalLocations"][0]["fullyQualifiedName"],
            "postgres:public.settings:value:id=7"
        );
        for i in 2..4 {
            assert!(place(i).get("physicalLocation").is_none(), "{}", place(i));
        }
        let note = &log["runs"][0]["invocations"][0]["toolExecutionNotifications"][0];
        assert!(note.get("locations").is_none(), "a skipped input is named in the message only: {note}");

        let schema: Value =
            serde_json::from_str(include_str!("../tests/vectors/sarif-2.1.0-rtm.5.json")).unwrap();
        let mut schemas = boon::Schemas::new();
        let mut compiler = boon::Compiler::new();
        compiler.add_resource("urn:sarif", schema).unwrap();
        let index = compiler.compile("urn:sarif", &mut schemas).unwrap();
        schemas.validate(&log, index).unwrap();
    }

    /// A finding whose validation names a mitigation (a key-bound token of ours) is one level
    /// lower in every format and says why; the same finding without it is not.
    #[test]
    fn a_mitigated_finding_is_reported_one_level_lower_and_says_why() {
        use crate::live::Validation;
        let token = "acme_2mQ4x8Jz7cT1vN5pL3kR9wY6bH0dF2gS";
        let found = |v: Validation| {
            let mut f = Finding::new(
                TOKENWARD_RULE,
                Location::File { path: "app.env".into(), line: 1, column: 5 },
                Confidence::Certain,
                token,
                5,
                None,
            );
            f.validation = Some(v);
            f
        };
        let mut report = Report::default();
        report.findings.push(found(Validation::valid("tokenward-store", "token t1 is active")));
        report.findings.push(found(
            Validation::valid("tokenward-store", "token t2 is active").mitigated("bound to a key"),
        ));
        let mut sarif = Vec::new();
        report.write_sarif(&mut sarif, &RuleSet::builtin(), Path::new("/src")).unwrap();
        let log: Value = serde_json::from_slice(&sarif).unwrap();
        let results = log["runs"][0]["results"].as_array().unwrap();
        assert_eq!(
            (results[0]["level"].as_str(), results[1]["level"].as_str()),
            (Some("error"), Some("warning"))
        );
        assert!(results[0]["properties"].get("mitigation").is_none());
        assert_eq!(results[1]["properties"]["mitigation"], "bound to a key");
        assert_eq!(results[1]["properties"]["confidence"], "certain", "as sure it is a secret as before");
        let mut text = Vec::new();
        report.write_text(&mut text, false).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(!lines[0].contains("lower severity"), "{text}");
        assert!(
            lines[1].ends_with("valid (tokenward-store: token t2 is active)  lower severity: bound to a key"),
            "{text}"
        );
        let mut jsonl = Vec::new();
        report.write_jsonl(&mut jsonl).unwrap();
        let rows: Vec<Value> =
            String::from_utf8(jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(rows[0]["validation"].get("mitigation").is_none());
        assert_eq!(rows[1]["validation"]["mitigation"], "bound to a key");
        assert!(!String::from_utf8_lossy(&sarif).contains(token) && !text.contains(token));
    }
}
