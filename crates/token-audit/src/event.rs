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
    /// Someone not (yet) authenticated: the presenter of a token that was denied.
    Anonymous,
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
    /// A secret was read or written by name (detail: `read`, `write`); the entry names the secret
    /// and version in its attributes, never the value.
    SecretAccess(String),
    /// A leak drill ran (detail: `finished` or `failed`); its measurements are attributes.
    Drill(String),
    /// An operator's deliberate change to the store itself (detail: `migrate`, `new-log`, …).
    Store(String),
    /// A workload's OIDC token exchanged for a token (detail: `granted` or `denied`); the
    /// federation, issuer, subject and matched claims are attributes, never the subject token.
    Exchange(String),
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
            Action::SecretAccess(_) => "secret_access",
            Action::Drill(_) => "drill",
            Action::Store(_) => "store",
            Action::Exchange(_) => "exchange",
        }
    }

    /// Its detail (reason or step), if it has one.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Action::VerifyDenied(d)
            | Action::Rotate(d)
            | Action::SecretAccess(d)
            | Action::Drill(d)
            | Action::Store(d)
            | Action::Exchange(d) => Some(d),
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
        let mut out = Vec::with_capacity(160);
        self.canonical_into(&mut out);
        out
    }

    /// Appends the canonical bytes to `out` (the allocation-free form of [`AuditEvent::canonical`]).
    pub fn canonical_into(&self, out: &mut Vec<u8>) {
        self.canonical_with(&Formatted::of(self), out);
    }

    /// [`AuditEvent::canonical_into`] with the time and token id already formatted (an entry
    /// formats them once for its hash and its stored line).
    pub(crate) fn canonical_with(&self, pre: &Formatted, out: &mut Vec<u8>) {
        fn field(out: &mut Vec<u8>, v: Option<&[u8]>) {
            match v {
                Some(s) => {
                    out.extend_from_slice(&u32::try_from(s.len()).unwrap_or(u32::MAX - 1).to_be_bytes());
                    out.extend_from_slice(s);
                }
                None => out.extend_from_slice(&u32::MAX.to_be_bytes()),
            }
        }
        fn prefixed(out: &mut Vec<u8>, prefix: &str, name: &str) {
            let len = prefix.len() + name.len();
            out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX - 1).to_be_bytes());
            out.extend_from_slice(prefix.as_bytes());
            out.extend_from_slice(name.as_bytes());
        }
        let mut num = itoa::Buffer::new();
        field(out, Some(num.format(self.schema).as_bytes()));
        field(out, Some(pre.time()));
        match &self.actor {
            Actor::Principal(p) => prefixed(out, "principal:", p),
            Actor::Operator(o) => prefixed(out, "operator:", o),
            Actor::System => field(out, Some(b"system")),
            Actor::Anonymous => field(out, Some(b"anonymous")),
        }
        field(out, Some(self.action.name().as_bytes()));
        field(out, self.action.detail().map(str::as_bytes));
        field(out, pre.token.as_ref().map(|t| &t[..]));
        field(out, self.subject_hmac.as_deref().map(str::as_bytes));
        match &self.outcome {
            Outcome::Success => {
                field(out, Some(b"success"));
                field(out, None);
            }
            Outcome::Failure(r) => {
                field(out, Some(b"failure"));
                field(out, Some(r.as_bytes()));
            }
        }
        field(out, self.source.as_deref().map(str::as_bytes));
        field(out, Some(num.format(self.attrs.len()).as_bytes()));
        for (k, v) in &self.attrs {
            field(out, Some(k.as_bytes()));
            field(out, Some(v.as_bytes()));
        }
    }

    /// Appends the event's JSON form to `out`: the same bytes as `serde_json` writes for it, without
    /// going through serde (the file sink writes one per entry).
    pub(crate) fn json_with(&self, pre: &Formatted, out: &mut Vec<u8>) {
        use crate::json::{opt_string, string};
        let mut num = itoa::Buffer::new();
        out.extend_from_slice(b"{\"schema\":");
        out.extend_from_slice(num.format(self.schema).as_bytes());
        out.extend_from_slice(b",\"time\":\"");
        out.extend_from_slice(pre.time());
        out.extend_from_slice(b"\",\"actor\":{\"kind\":");
        match &self.actor {
            Actor::Principal(p) => {
                out.extend_from_slice(b"\"principal\",\"name\":");
                string(out, p);
            }
            Actor::Operator(o) => {
                out.extend_from_slice(b"\"operator\",\"name\":");
                string(out, o);
            }
            Actor::System => out.extend_from_slice(b"\"system\""),
            Actor::Anonymous => out.extend_from_slice(b"\"anonymous\""),
        }
        out.extend_from_slice(b"},\"action\":{\"kind\":\"");
        out.extend_from_slice(self.action.name().as_bytes());
        out.push(b'"');
        if let Some(d) = self.action.detail() {
            out.extend_from_slice(b",\"detail\":");
            string(out, d);
        }
        out.extend_from_slice(b"},\"token\":");
        match &pre.token {
            Some(t) => {
                out.push(b'"');
                out.extend_from_slice(t);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"subject_hmac\":");
        opt_string(out, self.subject_hmac.as_deref());
        out.extend_from_slice(b",\"outcome\":{\"kind\":");
        match &self.outcome {
            Outcome::Success => out.extend_from_slice(b"\"success\"}"),
            Outcome::Failure(r) => {
                out.extend_from_slice(b"\"failure\",\"reason\":");
                string(out, r);
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"source\":");
        opt_string(out, self.source.as_deref());
        out.extend_from_slice(b",\"attrs\":{");
        for (i, (k, v)) in self.attrs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, k);
            out.push(b':');
            string(out, v);
        }
        out.extend_from_slice(b"}}");
    }
}

/// An event's time and token id in their text forms, made once for both of an entry's encodings.
pub(crate) struct Formatted {
    time: [u8; 32],
    time_len: usize,
    token: Option<[u8; token_core::limits::ID_LEN]>,
}

impl Formatted {
    pub(crate) fn of(e: &AuditEvent) -> Self {
        let mut time = [0u8; 32];
        let time_len = canonical_time::format_into(&e.time, &mut time).len();
        Self { time, time_len, token: e.token.map(TokenId::to_chars) }
    }

    fn time(&self) -> &[u8] {
        &self.time[..self.time_len]
    }
}

impl Actor {
    /// The actor as the canonical encoding writes it (`principal:NAME`, `operator:NAME`,
    /// `system`, `anonymous`); the PostgreSQL log indexes it.
    pub fn key(&self) -> String {
        match self {
            Actor::Principal(p) => format!("principal:{p}"),
            Actor::Operator(o) => format!("operator:{o}"),
            Actor::System => "system".to_owned(),
            Actor::Anonymous => "anonymous".to_owned(),
        }
    }
}

impl fmt::Display for AuditEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", canonical_time::format(&self.time), self.actor.key(), self.action.name())?;
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
pub(crate) mod canonical_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn format(t: &DateTime<Utc>) -> String {
        let mut buf = [0u8; 32];
        String::from_utf8_lossy(format_into(t, &mut buf)).into_owned()
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` without chrono's formatting machinery (years 0–9999; others, which
    /// the parser refuses anyway, go through chrono).
    pub(crate) fn format_into<'b>(t: &DateTime<Utc>, buf: &'b mut [u8; 32]) -> &'b [u8] {
        let ms = t.timestamp_millis();
        let days = ms.div_euclid(86_400_000);
        let in_day = ms.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        if !(0..=9999).contains(&y) {
            let s = t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
            let n = s.len().min(buf.len());
            buf[..n].copy_from_slice(&s.as_bytes()[..n]);
            return &buf[..n];
        }
        // Two digits at a time, in u32 arithmetic.
        fn two(buf: &mut [u8; 32], at: usize, v: u32) {
            buf[at] = b'0' + (v / 10) as u8;
            buf[at + 1] = b'0' + (v % 10) as u8;
        }
        let (y, m, d) = (y as u32, m as u32, d as u32);
        let in_day = in_day as u32;
        let ms = in_day % 1000;
        let secs = in_day / 1000;
        *buf = *b"0000-00-00T00:00:00.000Z00000000";
        two(buf, 0, y / 100);
        two(buf, 2, y % 100);
        two(buf, 5, m);
        two(buf, 8, d);
        two(buf, 11, secs / 3600);
        two(buf, 14, secs / 60 % 60);
        two(buf, 17, secs % 60);
        buf[20] = b'0' + (ms / 100) as u8;
        two(buf, 21, ms % 100);
        &buf[..24]
    }

    /// Howard Hinnant's days-from-civil inverse: (year, month, day) of a day count from 1970-01-01.
    fn civil_from_days(z: i64) -> (i64, i64, i64) {
        let z = z + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        (y, m, d)
    }

    pub(crate) fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
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
