//! Baselines: known findings, by fingerprint, that a scan suppresses (a JSON file
//! `{"version":1,"fingerprints":["sha256:…", …]}`; written from a report, read back).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::error::ScanError;
use crate::finding::{Fingerprint, Report};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    fingerprints: Vec<String>,
}

/// A set of known fingerprints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Baseline {
    fingerprints: BTreeSet<Fingerprint>,
}

impl Baseline {
    /// Every finding of `report`.
    pub fn from_report(report: &Report) -> Self {
        Self { fingerprints: report.findings.iter().map(|f| f.fingerprint.clone()).collect() }
    }

    /// Parses a baseline file's text.
    pub fn parse(text: &str) -> Result<Self, ScanError> {
        let file: File = serde_json::from_str(text).map_err(|e| ScanError::Baseline(e.to_string()))?;
        if file.version != 1 {
            return Err(ScanError::Baseline(format!("version {} is not understood", file.version)));
        }
        let fingerprints = file
            .fingerprints
            .iter()
            .map(|f| {
                Fingerprint::parse(f)
                    .ok_or_else(|| ScanError::Baseline(format!("not a fingerprint: {f:.80}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { fingerprints })
    }

    /// The file's text.
    pub fn to_json(&self) -> String {
        let file = File {
            version: 1,
            fingerprints: self.fingerprints.iter().map(|f| f.as_str().to_owned()).collect(),
        };
        serde_json::to_string_pretty(&file).unwrap_or_default()
    }

    /// The fingerprints.
    pub fn fingerprints(&self) -> impl Iterator<Item = &Fingerprint> {
        self.fingerprints.iter()
    }
}
