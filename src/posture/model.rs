//! The posture's types: the findings, their kinds and severities, and the report they make.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;
use token_audit::chains::Entry;
use token_audit::chains::{ChainHead, ChainVerifier};
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::lookup::TokenStatus;
use token_store::ListedToken;

/// The JSON schema version of a [`Posture`] (`docs/cli.md` documents each field; fields are
/// added, never changed).
pub const SCHEMA: u32 = 1;

/// How many rotation steps [`CredentialAge::history`] keeps per credential (the newest).
pub const HISTORY_STEPS: usize = 12;

/// When a token counts as close to expiry or unused.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// A long-lived token that ends within this long is close to expiry.
    pub expiring_within: TimeDelta,
    /// An active token not used for this long is unused.
    pub unused_for: TimeDelta,
}

impl Default for Thresholds {
    /// Seven days to expiry, thirty days unused.
    fn default() -> Self {
        Self { expiring_within: TimeDelta::days(7), unused_for: TimeDelta::days(30) }
    }
}

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FindingKind {
    /// Token records that fail their integrity check.
    TamperedRecords,
    /// Long-lived tokens about to end.
    ExpiringSoon,
    /// Active tokens nobody uses.
    Unused,
    /// Active tokens with a wildcard or whole-service scope.
    OverBroadScope,
    /// Several active tokens of one principal for one purpose.
    SeveralTokensForPurpose,
    /// A token presented from more than one source.
    SharedToken,
    /// A credential past its rotation period.
    RotationOverdue,
    /// A credential whose last rotation rolled back or failed.
    RotationRolledBack,
    /// Revoked tokens still presented.
    RevokedStillPresented,
    /// A revoked cloud credential its provider still accepted when the rotator gave up probing.
    RevocationUnconfirmed,
    /// The audit log fails verification.
    AuditChainBroken,
}

impl FindingKind {
    /// Its name in JSON and text (`expiring_soon`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TamperedRecords => "tampered_records",
            Self::ExpiringSoon => "expiring_soon",
            Self::Unused => "unused",
            Self::OverBroadScope => "over_broad_scope",
            Self::SeveralTokensForPurpose => "several_tokens_for_purpose",
            Self::SharedToken => "shared_token",
            Self::RotationOverdue => "rotation_overdue",
            Self::RotationRolledBack => "rotation_rolled_back",
            Self::RevokedStillPresented => "revoked_still_presented",
            Self::RevocationUnconfirmed => "revocation_unconfirmed",
            Self::AuditChainBroken => "audit_chain_broken",
        }
    }

    /// Whether it calls for a person now (an alert), not only for the next review.
    #[must_use]
    pub fn is_alert(self) -> bool {
        matches!(
            self,
            Self::TamperedRecords
                | Self::ExpiringSoon
                | Self::RotationOverdue
                | Self::RotationRolledBack
                | Self::AuditChainBroken
                | Self::RevokedStillPresented
                | Self::RevocationUnconfirmed
        )
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Act now.
    High,
    /// Act soon.
    Medium,
    /// Worth knowing.
    Low,
}

impl Severity {
    /// `high`, `medium` or `low`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing the report says, with the tokens or credential it names.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How urgent.
    pub severity: Severity,
    /// One line for people.
    pub summary: String,
    /// Token ids it names (each described in [`Posture::named_tokens`]).
    pub tokens: Vec<String>,
    /// The credential it names, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The audit log as read: whether its chain verified, its length and head.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct AuditStatus {
    /// The whole chain verified.
    pub verified: bool,
    /// Entries read (up to the first that fails).
    pub entries: u64,
    /// The head's hash.
    pub head: String,
    /// Why it fails verification (or could not be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The audit log read with its chain checked on the way: the entries up to the first that fails,
/// and the status. `progress` is told the count read every 4,096 entries.
pub fn read_audit<E: fmt::Display, S: fmt::Display>(
    source: Result<impl IntoIterator<Item = Result<Entry, E>>, S>,
    mut progress: impl FnMut(usize),
) -> (Vec<Entry>, AuditStatus) {
    let mut entries = Vec::new();
    let mut v = ChainVerifier::new(ChainHead::EMPTY);
    let error = match source {
        Err(e) => Some(e.to_string()),
        Ok(reader) => {
            let mut err = None;
            for e in reader {
                match e {
                    Ok(e) => {
                        if let Err(x) = v.push(&e) {
                            err = Some(x.to_string());
                            break;
                        }
                        entries.push(e);
                        if entries.len() % 4096 == 0 {
                            progress(entries.len());
                        }
                    }
                    Err(x) => {
                        err = Some(x.to_string());
                        break;
                    }
                }
            }
            err
        }
    };
    let head = v.head();
    let status =
        AuditStatus { verified: error.is_none(), entries: head.len, head: head.head.to_string(), error };
    (entries, status)
}

/// An active token on the expiry timeline.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TokenPoint {
    /// Its id.
    pub id: String,
    /// Who holds it.
    pub principal: String,
    /// What for.
    pub purpose: String,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Who holds a token a finding names, and what for.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct TokenLabel {
    /// Who holds it.
    pub principal: String,
    /// What for.
    pub purpose: String,
}

/// One audited rotation step of a credential.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RotationStep {
    /// When.
    pub at: DateTime<Utc>,
    /// The step (`create`, `deploy`, `test`, `promote`, `rollback`, `emergency`, …).
    pub step: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// For a revocation's proof (`revocation_confirmed`, `revocation_unconfirmed`): how long after
    /// the revocation, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_ms: Option<i64>,
    /// The credential version's handle it is about, when the step names one (an access key id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
}

impl RotationStep {
    /// Whether it is about a revocation's proof or a retirement's reason, not a rotation's own
    /// progress (`revocation_confirmed`, `revocation_unconfirmed`, `previous_quiet`).
    #[must_use]
    pub fn is_aftercare(&self) -> bool {
        matches!(self.step.as_str(), "revocation_confirmed" | "revocation_unconfirmed" | "previous_quiet")
    }
}

/// A declared credential's rotation age.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct CredentialAge {
    /// Its declared name.
    pub name: String,
    /// Days since its current version was promoted (`None`: never rotated).
    pub days_since_rotation: Option<f64>,
    /// Its schedule's period in days, if it rotates on one.
    pub period_days: Option<f64>,
    /// Its audited rotation steps, oldest first (the newest [`HISTORY_STEPS`]).
    pub history: Vec<RotationStep>,
}

/// Verifications of one principal's tokens, from the audit log.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct Volume {
    /// Allowed.
    pub allowed: u64,
    /// Denied.
    pub denied: u64,
}

/// A declared credential's rotation state, as read from the rotator.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CredentialState {
    /// Its declared name.
    pub name: String,
    /// When its current version was promoted (`None`: never rotated).
    pub promoted_at: Option<DateTime<Utc>>,
    /// Its schedule's period, if it rotates on one.
    pub period: Option<TimeDelta>,
}

impl CredentialState {
    /// A credential's state.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        promoted_at: Option<DateTime<Utc>>,
        period: Option<TimeDelta>,
    ) -> Self {
        Self { name: name.into(), promoted_at, period }
    }
}

/// What [`analyze`](super::analyze) reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    /// The time the report is as of.
    pub now: DateTime<Utc>,
    /// The stored policy's version.
    pub policy_version: u64,
    /// Every token record the store lists (tampered ones included, as listed).
    pub tokens: &'a [ListedToken],
    /// The audit log's entries, chain-checked ([`read_audit`]).
    pub audit: &'a [Entry],
    /// Its status.
    pub audit_status: &'a AuditStatus,
    /// Each declared credential's rotation state.
    pub credentials: &'a [CredentialState],
}

/// The whole posture.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Posture {
    /// [`SCHEMA`].
    pub schema: u32,
    /// As of.
    pub generated_at: DateTime<Utc>,
    /// The stored policy's version.
    pub policy_version: u64,
    /// Tokens by status (`active`, `expired`, `revoked`, `not_yet_valid`, `tampered`).
    pub tokens: BTreeMap<&'static str, u64>,
    /// Active tokens, bound to a key versus bearer.
    pub binding: Binding,
    /// What needs attention.
    pub findings: Vec<Finding>,
    /// The audit log's status.
    pub audit: AuditStatus,
    /// Active tokens and when they end.
    pub expiry: Vec<TokenPoint>,
    /// Each declared credential's rotation age and history.
    pub rotation: Vec<CredentialAge>,
    /// Verifications per principal.
    pub verifications: BTreeMap<String, Volume>,
    /// Who holds each token a finding names, and what for (tampered records: not known).
    pub named_tokens: BTreeMap<String, TokenLabel>,
    /// Every credential the deployment's sources show, when it was read ([`analyze`] leaves it
    /// out: reading it reaches the providers; the caller sets it).
    ///
    /// [`analyze`]: crate::posture::analyze
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inventory: Option<super::inventory::Inventory>,
}

/// Active tokens by how they may be used: bound to a key (DPoP: a copy is useless without the
/// key's proofs) or bearer (whoever holds a copy can use it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Binding {
    /// Active tokens bound to a key.
    pub bound: u64,
    /// Active bearer tokens.
    pub bearer: u64,
}

/// A token status's name (`active`, `expired`, `revoked`, `not_yet_valid`).
#[must_use]
pub fn status_name(s: TokenStatus) -> &'static str {
    match s {
        TokenStatus::NotYetValid => "not_yet_valid",
        TokenStatus::Active => "active",
        TokenStatus::Expired => "expired",
        TokenStatus::Revoked => "revoked",
        _ => "unknown",
    }
}
