//! Detection rules: a data table (id, description, literal anchors for the prefilter, regex,
//! confidence, validator), the built-in rules, and user rules from TOML.

use serde::{Deserialize, Serialize};

use crate::error::ScanError;

/// How sure a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Confidence {
    /// A pattern that also matches harmless text (generic assignments): flagged, off by default.
    Low,
    /// A shape without a checksum, in context.
    Medium,
    /// A vendor prefix and shape without a checksum.
    High,
    /// A checksum validated offline (Tokenward, GitHub classic).
    Certain,
}

impl Confidence {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
            Confidence::Certain => "certain",
        }
    }
}

/// What a match must also pass to be a finding.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Validator {
    /// Nothing beyond the regex.
    None,
    /// GitHub's classic token checksum: the last 6 base62 characters are the CRC-32 of the 30
    /// random ones.
    GithubCrc32,
    /// An AWS access key id counts only with a 40-character secret key within the window.
    AwsSecretNearby,
    /// The value's Shannon entropy is at least this many bits per character.
    Entropy {
        /// The threshold.
        min_bits: f32,
    },
}

/// One detection rule.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A stable id (`github-classic`, `aws-access-key`, …), used in findings and SARIF.
    pub id: String,
    /// What it finds.
    pub description: String,
    /// Literal strings one of which every match contains (ASCII, matched case-insensitively): the
    /// prefilter runs the regex only near them.
    pub anchors: Vec<String>,
    /// The regex (Rust `regex` syntax), run on windows around anchor hits.
    pub regex: String,
    /// Which capture group is the secret (0: the whole match).
    #[serde(default)]
    pub secret_group: usize,
    /// How sure a finding is.
    pub confidence: Confidence,
    /// What a match must also pass.
    #[serde(default = "no_validator")]
    pub validator: Validator,
    /// How far before an anchor a match may start (bytes).
    #[serde(default = "default_before")]
    pub before: usize,
    /// How far after an anchor a match may end (bytes).
    #[serde(default = "default_after")]
    pub after: usize,
    /// Whether it runs (user rules: yes unless said; the generic built-in rule: no).
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn no_validator() -> Validator {
    Validator::None
}
fn default_before() -> usize {
    64
}
fn default_after() -> usize {
    256
}
fn yes() -> bool {
    true
}

/// The id of the built-in Tokenward rule (found by its own scan, not a regex: any issuer prefix,
/// CRC-32 validated).
pub const TOKENWARD_RULE: &str = "tokenward";

/// A set of rules: the built-in table, user rules, or both.
#[derive(Clone, Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) tokenward: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

impl RuleSet {
    /// The built-in rules (the generic assignment rule off; see [`RuleSet::with_generic`]).
    pub fn builtin() -> Self {
        Self { rules: crate::rules::builtin(), tokenward: true }
    }

    /// No rules at all (add some with [`RuleSet::with_rules`]); the Tokenward detector stays.
    pub fn empty() -> Self {
        Self { rules: Vec::new(), tokenward: true }
    }

    /// Turns the low-confidence generic `key/token/secret/password = value` rule on or off.
    #[must_use]
    pub fn with_generic(mut self, on: bool) -> Self {
        for r in &mut self.rules {
            if r.id == crate::rules::GENERIC_RULE {
                r.enabled = on;
            }
        }
        self
    }

    /// Adds rules (a rule with an id already present replaces it).
    #[must_use]
    pub fn with_rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        for rule in rules {
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(old) => *old = rule,
                None => self.rules.push(rule),
            }
        }
        self
    }

    /// Adds the rules of a TOML file's text: `[[rule]]` tables with the fields of [`Rule`].
    pub fn with_toml(self, text: &str) -> Result<Self, ScanError> {
        let file: RuleFile = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {}, column {column}: ", before.matches('\n').count() + 1)
            });
            ScanError::Rules(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })?;
        Ok(self.with_rules(file.rule))
    }

    /// The rules, in order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Disables rules by id.
    #[must_use]
    pub fn without(mut self, ids: &[&str]) -> Self {
        for r in &mut self.rules {
            if ids.contains(&r.id.as_str()) {
                r.enabled = false;
            }
        }
        if ids.contains(&TOKENWARD_RULE) {
            self.tokenward = false;
        }
        self
    }
}
