//! Detection rules: a data table (id, description, literal anchors for the prefilter, regex,
//! confidence, validator), the built-in rules, and user rules from TOML.

use serde::{Deserialize, Serialize};

use crate::error::ScanError;

/// How sure a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Confidence {
    /// A value judged by its name and its entropy alone (the generic detector).
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

/// What a match must also pass to be a finding. A checksum that fails suppresses the match
/// (counted as `checksum fails`) and vetoes every other rule's match overlapping it: a value
/// shaped like a checksummed token whose checksum fails is never reported, by any rule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Validator {
    /// Nothing beyond the regex.
    None,
    /// GitHub's token checksum, which npm's tokens share: after a 4-character prefix (`ghp_`,
    /// `npm_`), 30 random base62 characters, then the CRC-32 of those 30 in 6 base62 digits.
    GithubCrc32,
    /// Grafana's prefixed-key checksum (`glsa_<secret>_<checksum>`): the last 8 characters are the
    /// CRC-32 (IEEE) of everything before the last `_`, its 4 bytes little-endian in lowercase hex.
    GrafanaCrc32,
    /// A PyPI API token: `pypi-` then the base64url of a version-2 macaroon whose fields parse
    /// (location, identifier, caveats, a 32-byte signature) and whose location is `pypi.org` or
    /// `test.pypi.org`.
    PypiMacaroon,
    /// The value's Shannon entropy is at least this many bits per character.
    Entropy {
        /// The threshold.
        min_bits: f32,
    },
}

/// A second value a match is useless without (an AWS access key id and its secret key, a Twilio
/// account SID and its auth token, an Azure client secret and its client id): searched for within
/// the rule's window (`before` bytes before the match, `after` after it); without it the match is
/// suppressed, counted under [`Pair::unpaired`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// The partner's regex (Rust `regex` syntax).
    pub regex: String,
    /// Which capture group is the partner (0: the whole match).
    #[serde(default)]
    pub group: usize,
    /// Whether the partner must hold a lowercase letter, an uppercase letter and a digit or a
    /// symbol (so that a word or an identifier is not taken for a key).
    #[serde(default)]
    pub mixed: bool,
    /// Whether the partner is the secret reported (an AWS secret key beside its public key id:
    /// the finding is the secret, redacted as `<id> / …<last four>`); otherwise the match is.
    #[serde(default)]
    pub report_partner: bool,
    /// The reason a match without its partner is counted under in `Report::suppressed`.
    pub unpaired: String,
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
    /// The partner a match is useless without, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pair: Option<Pair>,
    /// Whether it runs (yes unless said).
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

/// The id of the generic detector's findings: a value assigned to a name that means a secret
/// (`API_KEY=…`, `password: …`), judged by its entropy and the placeholder filters (see
/// `docs/scanning.md`). On in [`RuleSet::builtin`]; [`RuleSet::with_generic`] turns it off.
pub const GENERIC_RULE: &str = "generic-assignment";

/// A set of rules: the built-in table, user rules, or both.
#[derive(Clone, Debug)]
pub struct RuleSet {
    pub(crate) rules: Vec<Rule>,
    pub(crate) tokenward: bool,
    pub(crate) generic: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<Rule>,
}

impl RuleSet {
    /// The built-in rules (`rules/builtin.toml`, parsed once), the Tokenward detector and the
    /// generic detector ([`GENERIC_RULE`], on; see [`RuleSet::with_generic`]).
    pub fn builtin() -> Self {
        Self { rules: crate::rules::builtin().to_vec(), tokenward: true, generic: true }
    }

    /// No rules at all (add some with [`RuleSet::with_rules`]); the Tokenward detector stays, the
    /// generic detector is off.
    pub fn empty() -> Self {
        Self { rules: Vec::new(), tokenward: true, generic: false }
    }

    /// Turns the low-confidence generic detector ([`GENERIC_RULE`]: a value assigned to a name
    /// that means a secret) on or off.
    #[must_use]
    pub fn with_generic(mut self, on: bool) -> Self {
        self.generic = on;
        self
    }

    /// Whether the generic detector runs.
    pub fn generic(&self) -> bool {
        self.generic
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
        Ok(self.with_rules(parse_rules(text)?))
    }

    /// The table's rules, in order (the Tokenward and generic detectors are not in it).
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
        if ids.contains(&GENERIC_RULE) {
            self.generic = false;
        }
        self
    }
}

/// The `[[rule]]` tables of a TOML text (users' `--rules` files and the built-in table alike).
pub(crate) fn parse_rules(text: &str) -> Result<Vec<Rule>, ScanError> {
    let file: RuleFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|span| {
            let before = &text[..span.start.min(text.len())];
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {}, column {column}: ", before.matches('\n').count() + 1)
        });
        ScanError::Rules(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
    })?;
    Ok(file.rule)
}
