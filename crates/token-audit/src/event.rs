//! The audit event model (schema version 1). Events hold ids and keyed HMACs, never secrets.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use token_core::TokenId;

/// The schema version this crate writes.
pub const SCHEMA_VERSION: u16 = 1;

/// Who acted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
#[non_exhaustive]
pub enum Actor {
    /// A service or automation holding tokens.
    Principal(String),
    /// A human operator.
    Operator(String),
    /// Tokenward itself (scheduler, scanner).
    System,
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// A token was issued.
    Issue,
    /// A verification allowed a request.
    VerifyAllowed,
    /// A verification denied a request, with the reason.
    VerifyDenied(String),
    /// A rotation step (create, deploy, test, promote, revoke-previous, rollback).
    Rotate(String),
    /// A token (tree) was revoked.
    Revoke,
    /// A key (KEK or digest key) was rotated.
    KeyRotation,
    /// A scanner found a token.
    ScanFinding,
    /// The policy changed.
    PolicyChange,
}

impl Action {
    /// The action's name in the canonical encoding.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Issue => "issue",
            Action::VerifyAllowed => "verify_allowed",
            Action::VerifyDenied(_) => "verify_denied",
            Action::Rotate(_) => "rotate",
            Action::Revoke => "revoke",
            Action::KeyRotation => "key_rotation",
            Action::ScanFinding => "scan_finding",
            Action::PolicyChange => "policy_change",
        }
    }

    /// Its detail (reason or step), if it has one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Action::VerifyDenied(d) | Action::Rotate(d) => Some(d),
            _ => None,
        }
    }
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "reason", rename_all = "lowercase")]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed, with the reason.
    Failure(String),
}

/// One audited event. Reading refuses unknown fields and non-canonical times, so that no byte of a
/// stored entry can change without changing what it says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub schema: u16,
    /// When (kept to the millisecond; stored as `YYYY-MM-DDTHH:MM:SS.mmmZ` exactly).
    #[serde(with = "canonical_time")]
    pub time: DateTime<Utc>,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: Action,
    /// The token concerned, by its public id.
    pub token: Option<TokenId>,
    /// A keyed HMAC of anything sensitive the event is about (hex), as Vault's audit devices do.
    pub subject_hmac: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Where the request came from (host or address), if known.
    pub source: Option<String>,
    /// Free-form attributes.
    pub attrs: BTreeMap<String, String>,
}

impl AuditEvent {
    /// A successful event now-ish at `time` (truncated to the millisecond).
    pub fn new(time: DateTime<Utc>, actor: Actor, action: Action) -> Self {
        Self {
            schema: SCHEMA_VERSION,
            time: DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time),
            actor,
            action,
            token: None,
            subject_hmac: None,
            outcome: Outcome::Success,
            source: None,
            attrs: BTreeMap::new(),
        }
    }

    /// About this token.
    pub fn token(mut self, id: TokenId) -> Self {
        self.token = Some(id);
        self
    }

    /// With this outcome.
    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    /// From this source.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// With an attribute.
    pub fn attr(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.attrs.insert(key.into(), value.into());
        self
    }

    /// The canonical bytes hashed into the chain (see `docs/audit-format.md`): every field in a fixed
    /// order, each as a 4-byte big-endian length and its UTF-8 bytes, an absent field as length
    /// `0xFFFF_FFFF`; attributes as a count, then key and value pairs in key order.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        let mut field = |v: Option<&str>| match v {
            Some(s) => {
                out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX - 1).to_be_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
        };
        field(Some(&self.schema.to_string()));
        field(Some(&canonical_time::format(&self.time)));
        let actor = match &self.actor {
            Actor::Principal(p) => format!("principal:{p}"),
            Actor::Operator(o) => format!("operator:{o}"),
            Actor::System => "system".to_owned(),
        };
        field(Some(&actor));
        field(Some(self.action.name()));
        field(self.action.detail());
        field(self.token.map(|t| t.to_string()).as_deref());
        field(self.subject_hmac.as_deref());
        match &self.outcome {
            Outcome::Success => {
                field(Some("success"));
                field(None);
            }
            Outcome::Failure(r) => {
                field(Some("failure"));
                field(Some(r));
            }
        }
        field(self.source.as_deref());
        field(Some(&self.attrs.len().to_string()));
        for (k, v) in &self.attrs {
            field(Some(k));
            field(Some(v));
        }
        out
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {:?} {}", self.time.format("%Y-%m-%dT%H:%M:%S%.3fZ"), self.actor, self.action.name())?;
        if let Some(d) = self.action.detail() {
            write!(f, " ({d})")?;
        }
        if let Some(t) = self.token {
            write!(f, " token {t}")?;
        }
        match &self.outcome {
            Outcome::Success => Ok(()),
            Outcome::Failure(r) => write!(f, " failed: {r}"),
        }
    }
}

/// The one accepted text form of an event time: every byte of a stored time matters.
mod canonical_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn format(t: &DateTime<Utc>) -> String {
        t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub(super) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        let t = DateTime::parse_from_rfc3339(&text).map_err(serde::de::Error::custom)?.with_timezone(&Utc);
        if format(&t) != text {
            return Err(serde::de::Error::custom(
                "event time is not in canonical form (YYYY-MM-DDTHH:MM:SS.mmmZ)",
            ));
        }
        Ok(t)
    }
}
