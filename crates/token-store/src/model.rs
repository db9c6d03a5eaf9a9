//! What backends store: sealed secret versions, staging labels, token records with usage.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use token_core::names::{PrincipalId, Purpose};
use token_core::{TokenId, lookup::TokenRecord};

use crate::envelope::Sealed;
use crate::error::{Result, StoreError};

/// The name of a versioned secret, such as `billing-api/aws-access-key`: 1 to 256 characters of
/// `[A-Za-z0-9._:/@+=-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Validates a name.
    pub fn new(name: &str) -> Result<Self> {
        let ok = !name.is_empty()
            && name.len() <= 256
            && name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._:/@+=-".contains(&c));
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(StoreError::Invalid("a secret name is 1 to 256 characters of [A-Za-z0-9._:/@+=-]".into()))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretName({})", self.0)
    }
}

impl TryFrom<String> for SecretName {
    type Error = StoreError;
    fn try_from(s: String) -> Result<Self> {
        Self::new(&s)
    }
}

impl From<SecretName> for String {
    fn from(n: SecretName) -> String {
        n.0
    }
}

/// A staging label: which version is in use, which is being rolled out, which was in use before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    /// In use.
    Current,
    /// Created and being deployed and tested; not yet in use.
    Pending,
    /// In use before the last promotion; kept for the overlap window.
    Previous,
}

impl Label {
    /// All labels.
    pub const ALL: [Label; 3] = [Label::Current, Label::Pending, Label::Previous];

    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Current => "current",
            Label::Pending => "pending",
            Label::Previous => "previous",
        }
    }

    /// From its name.
    pub fn parse(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s).ok_or_else(|| StoreError::Corrupted {
            id: None,
            what: "label",
            detail: "unknown label name".into(),
        })
    }
}

/// Where each label points. A label points to at most one version.
pub type Labels = BTreeMap<Label, u64>;

/// One compare-and-swap on a label: it must point at `expect` (None: nowhere), and will point at
/// `set` (None: nowhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelChange {
    /// The label.
    pub label: Label,
    /// What it must point at now.
    pub expect: Option<u64>,
    /// What it will point at.
    pub set: Option<u64>,
}

/// One sealed version of a secret, as a backend stores it. Holds no plaintext.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretVersion {
    /// The secret.
    pub name: SecretName,
    /// Its version, from 1, never reused.
    pub version: u64,
    /// The KEK that wrapped the data key.
    pub kek_id: String,
    /// The data key, wrapped.
    pub wrapped_key: Sealed,
    /// The payload, sealed under the data key.
    pub ciphertext: Sealed,
    /// When it was written.
    pub created_at: DateTime<Utc>,
}

/// A token record with what the store knows of its use, and its integrity tag as stored.
///
/// What a backend returns is as stored, not yet checked: the token service checks the tag
/// ([`crate::backend::RecordKey::check_token`]) before it uses a record.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TokenRow {
    /// The record.
    pub record: TokenRecord,
    /// Last use, as recorded (coarsely) by verifiers.
    pub last_used: Option<DateTime<Utc>>,
    /// Uses recorded by verifiers.
    pub uses: u64,
    /// The record's MAC as stored (`None`: written before integrity tags, or stripped).
    pub mac: Option<crate::integrity::RecordMac>,
    /// Read from a JSON record written before the binary encoding (its tag is over the JSON).
    pub(crate) legacy_json: bool,
    /// Why the row cannot be trusted whatever its tag says (it does not decode, or its plain
    /// columns contradict its record): the record is then a stand-in that grants nothing.
    pub(crate) defect: Option<String>,
}

impl TokenRow {
    /// A stored token, as a backend read it.
    pub fn new(
        record: TokenRecord,
        last_used: Option<DateTime<Utc>>,
        uses: u64,
        mac: Option<crate::integrity::RecordMac>,
    ) -> Self {
        Self { record, last_used, uses, mac, legacy_json: false, defect: None }
    }

    /// A row that cannot be trusted (it does not decode, or its columns contradict its record):
    /// quarantined. It is refused by the integrity check and named by `id`; its record is a
    /// stand-in that grants nothing (no scopes, no digest that any token matches, revoked and
    /// expired at the epoch), so code that looks at it without checking still denies.
    pub fn quarantined(id: token_core::TokenId, detail: impl Into<String>) -> Self {
        let epoch = DateTime::<Utc>::UNIX_EPOCH;
        let record = token_core::lookup::TokenRecord {
            id,
            principal: PrincipalId::new("unreadable").unwrap_or_else(|_| unreachable!("a valid name")),
            purpose: Purpose::new("unreadable").unwrap_or_else(|_| unreachable!("a valid name")),
            scopes: token_core::ScopeSet::default(),
            digest: token_core::digest::TokenDigest::from_parts(u32::MAX, [0; 32]),
            created_at: epoch,
            not_before: epoch,
            expires_at: epoch,
            revoked_at: Some(epoch),
            parent: None,
            replaces: None,
            limits: token_core::lookup::UseLimits::default(),
            bound_to: None,
        };
        Self { defect: Some(detail.into()), ..Self::new(record, None, 0, None) }
    }

    /// The same row, marked untrustworthy for `detail` (a column that contradicts its record).
    pub(crate) fn with_defect(self, detail: String) -> Self {
        Self { defect: Some(self.defect.unwrap_or(detail)), ..self }
    }

    /// Why this row was quarantined by its backend, if it was (the integrity check refuses it).
    pub fn defect(&self) -> Option<&str> {
        self.defect.as_deref()
    }

    /// The same row, read from a JSON record written before the binary encoding.
    #[cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]
    pub(crate) fn read_as_legacy_json(self) -> Self {
        Self { legacy_json: true, ..self }
    }
}

/// Which token records to list.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenQuery {
    /// Every token of a principal.
    Principal(PrincipalId),
    /// The principal's root tokens for a purpose that are active or not yet valid at `at`.
    Active {
        /// Holder.
        principal: PrincipalId,
        /// Purpose.
        purpose: Purpose,
        /// Instant.
        at: DateTime<Utc>,
    },
    /// Unrevoked tokens expiring in `[from, until)`.
    ExpiringBetween {
        /// From.
        from: DateTime<Utc>,
        /// Until.
        until: DateTime<Utc>,
    },
    /// Unrevoked, unexpired-at-`since` tokens not used since `since` (never-used ones included).
    UnusedSince {
        /// Instant.
        since: DateTime<Utc>,
    },
    /// Revoked tokens.
    Revoked,
    /// Tokens revoked at or after `since` (a follower catching up after a lost connection).
    RevokedSince {
        /// Instant.
        since: DateTime<Utc>,
    },
    /// Tokens not expired at `at`, revoked or not (what a verifier cache loads, so that it can
    /// say "revoked" rather than "unknown").
    Unexpired {
        /// Instant.
        at: DateTime<Utc>,
    },
}

impl TokenQuery {
    /// Whether `t` answers this query (what an in-memory backend filters with).
    pub fn matches(&self, t: &TokenRow) -> bool {
        let r = &t.record;
        match self {
            TokenQuery::Principal(p) => r.principal == *p,
            TokenQuery::Active { principal, purpose, at } => {
                r.parent.is_none()
                    && r.principal == *principal
                    && r.purpose == *purpose
                    && r.revoked_at.is_none_or(|x| x > *at)
                    && r.expires_at > *at
            }
            TokenQuery::ExpiringBetween { from, until } => {
                r.revoked_at.is_none() && r.expires_at >= *from && r.expires_at < *until
            }
            TokenQuery::UnusedSince { since } => {
                r.revoked_at.is_none() && r.expires_at > *since && t.last_used.is_none_or(|u| u < *since)
            }
            TokenQuery::Revoked => r.revoked_at.is_some(),
            TokenQuery::RevokedSince { since } => r.revoked_at.is_some_and(|at| at >= *since),
            TokenQuery::Unexpired { at } => r.expires_at > *at,
        }
    }
}

/// The one-active rule's atomic check, shared by every backend: the purpose's active root tokens
/// found inside the backend's transaction must be exactly those the issuer expected (any order).
pub fn check_active(found: &[TokenId], expected: &[TokenId]) -> Result<()> {
    let mut a = found.to_vec();
    let mut b = expected.to_vec();
    a.sort();
    b.sort();
    if a == b {
        Ok(())
    } else {
        Err(StoreError::TokenRejected(format!(
            "the active tokens for this purpose changed: expected {}, found {}",
            b.len(),
            a.len()
        )))
    }
}

/// The next-version rule: a new version of `name` must be `latest + 1` (1 for a new secret).
pub fn check_next_version(name: &SecretName, version: u64, latest: Option<u64>) -> Result<()> {
    let latest = latest.unwrap_or(0);
    if version == latest.saturating_add(1) {
        Ok(())
    } else {
        Err(StoreError::Conflict(format!(
            "secret {name} version {version} is not the next (latest is {latest})"
        )))
    }
}

/// The label rule: applies `changes` to `labels` all or none — each label must point where its
/// change expects, and each version it is set to must exist (`exists`); else
/// [`StoreError::Conflict`] and `labels` is left as it was.
pub fn apply_label_changes(
    name: &SecretName,
    labels: &mut Labels,
    changes: &[LabelChange],
    mut exists: impl FnMut(u64) -> Result<bool>,
) -> Result<()> {
    let mut next = labels.clone();
    for c in changes {
        if next.get(&c.label).copied() != c.expect {
            return Err(StoreError::Conflict(format!("label {} of {name} moved", c.label.as_str())));
        }
        match c.set {
            Some(v) => {
                if !exists(v)? {
                    return Err(StoreError::Conflict(format!("{name} has no version {v}")));
                }
                next.insert(c.label, v);
            }
            None => {
                next.remove(&c.label);
            }
        }
    }
    *labels = next;
    Ok(())
}

/// A token id, checked to exist; used in errors.
pub(crate) fn id_text(id: TokenId) -> String {
    id.to_string()
}
