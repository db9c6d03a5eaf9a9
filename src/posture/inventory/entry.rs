//! An inventory's entries: one credential each, by its id (never its secret), with its owner,
//! times, status, management and findings.

use serde::Serialize;
use token_core::chrono::{DateTime, Utc};

/// Where an entry was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SourceKind {
    /// An AWS IAM user's access key.
    AwsIam,
    /// An OpenBao / Vault token (by its accessor).
    Openbao,
    /// A token Tokenward issued.
    Tokenward,
}

impl SourceKind {
    /// Its name: `aws-iam`, `openbao`, `tokenward`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AwsIam => "aws-iam",
            Self::Openbao => "openbao",
            Self::Tokenward => "tokenward",
        }
    }
}

/// Whether a credential can be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CredentialStatus {
    /// Usable.
    Active,
    /// Disabled but not deleted (an IAM key made inactive).
    Inactive,
    /// Past its expiry.
    Expired,
    /// Revoked.
    Revoked,
    /// Not valid yet.
    NotYetValid,
    /// Its record fails its integrity check (the store was written outside Tokenward): every
    /// verifier refuses it.
    Tampered,
}

/// Who manages a credential in Tokenward, when it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "as", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Managed {
    /// The current version of a declared credential.
    Current {
        /// The credential's name.
        credential: String,
    },
    /// The previous version of a declared credential (in its overlap).
    Previous {
        /// The credential's name.
        credential: String,
    },
    /// A key Tokenward made for a declared credential (attributed on the IAM user) that is
    /// neither its current nor its previous version: retired and in its deletion grace, or left
    /// by a rotation that did not finish. Tokenward deletes it; it is not drift.
    Attributed {
        /// The credential's name.
        credential: String,
    },
    /// A token Tokenward issued.
    Issued,
}

/// The last use of a credential, as its source reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LastUse {
    /// When.
    pub at: DateTime<Utc>,
    /// The service it was used with (AWS: `s3`, `iam`, …), when reported.
    pub service: Option<String>,
    /// The region it was used in, when reported.
    pub region: Option<String>,
}

/// One credential. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InventoryEntry {
    /// Where it was found.
    pub source: SourceKind,
    /// Its id: an access key id, an accessor, a token id — never the secret.
    pub id: String,
    /// Who owns it: the IAM user, the display name, the principal.
    pub owner: String,
    /// What it is for, when the source says (a token's purpose).
    pub purpose: Option<String>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// Its last use (`None`: never used, when [`usage_reported`](Self::usage_reported)).
    pub last_used: Option<LastUse>,
    /// Whether the source reports last use (OpenBao does not): without it, no `never-used` or
    /// `unused` finding.
    pub usage_reported: bool,
    /// When it expires (`None`: never).
    pub expires: Option<DateTime<Utc>>,
    /// Whether it is usable.
    pub status: CredentialStatus,
    /// How Tokenward manages it (`None`: it does not).
    pub managed: Option<Managed>,
    /// What needs attention.
    pub findings: Vec<Finding>,
}

impl InventoryEntry {
    pub(super) fn new(source: SourceKind, id: String, owner: String, status: CredentialStatus) -> Self {
        Self {
            source,
            id,
            owner,
            purpose: None,
            created: None,
            last_used: None,
            usage_reported: true,
            expires: None,
            status,
            managed: None,
            findings: Vec::new(),
        }
    }
}

/// Every credential the sources showed, as of a time.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Inventory {
    /// As of.
    pub generated_at: DateTime<Utc>,
    /// The entries, by source, owner and id.
    pub entries: Vec<InventoryEntry>,
}

/// One thing to look at about a credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Finding {
    /// Active, and never used since it was created.
    NeverUsed,
    /// Active, and not used for more than the threshold.
    Unused {
        /// Whole days since its last use.
        days: i64,
    },
    /// Active, and older than the rotation policy allows.
    TooOld {
        /// Its age in whole days.
        days: i64,
    },
    /// Active, and it never expires.
    NoExpiry,
    /// Its owner has more than one active key (IAM allows two, for a rotation's overlap).
    SeveralActiveKeys {
        /// How many.
        count: usize,
    },
    /// A key under a declared credential's IAM user that the credential's record does not know
    /// (made by hand, or left behind).
    Drifted {
        /// The declared credential.
        credential: String,
    },
    /// A token whose record fails its integrity check: someone wrote the store outside Tokenward.
    Tampered,
}

impl Finding {
    /// Its kind's name: `never-used`, `unused`, `too-old`, `no-expiry`, `several-active-keys`,
    /// `drifted`, `tampered`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NeverUsed => "never-used",
            Self::Unused { .. } => "unused",
            Self::TooOld { .. } => "too-old",
            Self::NoExpiry => "no-expiry",
            Self::SeveralActiveKeys { .. } => "several-active-keys",
            Self::Drifted { .. } => "drifted",
            Self::Tampered => "tampered",
        }
    }
}
