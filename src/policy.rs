//! Policy as code: roles, principals, issuing rules and the credentials under rotation, in one
//! TOML file an operator keeps in git ([`PolicyFile`]), stored versioned in the store
//! ([`Tokenward::apply_policy`], compare-and-swap, audited as `policy_change`) and read back when a
//! deployment opens ([`crate::TokenwardBuilder::stored_policy`]).
//!
//! ```toml
//! [rules]
//! max_ttl = "30d"                  # the hard cap on any token (default 90d)
//! allow_bare_wildcards = false     # `*:…`-style grants refused (default)
//! one_active_per_purpose = true    # default
//! # idle_timeout = "7d"
//!
//! [[role]]
//! name = "log-reader"
//! grants = ["s3:bucket/prod-logs/**:read"]
//! max_ttl = "1h"
//!
//! [[principal]]
//! name = "billing-api"
//! roles = ["log-reader"]
//!
//! [[credential]]
//! name = "billing-api/logs-token"  # a secret name in the store
//! schedule = "7d"                  # rotate every 7 days …
//! # at_lifetime = 0.5               # … or at half the credential's lifetime, whichever is first
//! emergency = "replace-first"      # or "revoke-first"
//! overlap = "5m"                   # the previous credential keeps working this long after a
//!                                  # promotion (default: the deployment's, 5m; "0s": none)
//! # deletion_grace = "1h"          # aws-iam-access-key only: a deactivated key is deleted this
//!                                  # long after its deactivation, never before (default 1h)
//! target = { kind = "tokenward-token", principal = "billing-api", purpose = "read-logs",
//!            scopes = ["s3:bucket/prod-logs/*:read"], ttl = "1h" }
//! # target = { kind = "openbao-token", address = "https://bao:8200", token_secret = "openbao/admin",
//! #            ca_file = "/etc/bao/ca.pem", policies = ["default"], ttl = "1h", display_name = "ci" }
//! # (or approle_role_id = "…", approle_secret_id_secret = "openbao/secret-id" instead of a token)
//! # target = { kind = "aws-iam-access-key", user = "billing", admin_access_key_id = "AKIA…",
//! #            admin_secret_key_secret = "aws/admin-secret", lifetime = "90d" }
//! # target = { kind = "openbao-kv", address = "…", token_secret = "…", mount = "secret",
//! #            path = "app/db", field = "password", lifetime = "30d" }
//! ```
//!
//! Secrets a target needs (an OpenBao token) are named by `token_secret`, a secret in the store,
//! never written in the file. The stored copy is sealed (authenticated under the store's record
//! key): a policy edited in the database is refused when read, not obeyed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use token_audit::{Action, Actor, AuditEvent};
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::{Policy, Principal, Role, ScopeSet, TokenId};
use token_rotate::{EmergencyOrder, Schedule};
use token_store::{SecretName, TokenQuery};

use crate::deployment::Tokenward;
use crate::error::{Error, Result};

/// The sealed metadata key of the current policy.
const HEAD_KEY: &str = "tokenward/policy";

fn version_key(v: u64) -> String {
    format!("tokenward/policy/{v}")
}

/// A policy file that does not parse or does not make sense, with what and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy file: {0}")]
pub struct PolicyFileError(String);

impl PolicyFileError {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

/// A policy file: issuing rules, roles, principals and the credentials under rotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyFile {
    /// The issuing rules.
    #[serde(default)]
    pub rules: Rules,
    /// Roles: what they grant, for how long at most.
    #[serde(default, rename = "role", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSpec>,
    /// Principals (services, automations) and their roles.
    #[serde(default, rename = "principal", skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<PrincipalSpec>,
    /// Credentials under rotation.
    #[serde(default, rename = "credential", skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialSpec>,
}

/// The issuing rules ([`token_core::errors::PolicyBuilder`]'s settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rules {
    /// The hard cap on any token's lifetime (`90d` by default).
    #[serde(default = "default_max_ttl")]
    pub max_ttl: String,
    /// Whether bare wildcards (`*:…`, `…:**:…`) may be granted.
    #[serde(default)]
    pub allow_bare_wildcards: bool,
    /// Whether a principal holds one active token per purpose (outside rotation overlaps).
    #[serde(default = "yes")]
    pub one_active_per_purpose: bool,
    /// An idle timeout for every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_ttl: default_max_ttl(),
            allow_bare_wildcards: false,
            one_active_per_purpose: true,
            idle_timeout: None,
        }
    }
}

fn default_max_ttl() -> String {
    "90d".into()
}
fn yes() -> bool {
    true
}

/// A role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoleSpec {
    /// Its name.
    pub name: String,
    /// The scopes it grants.
    pub grants: Vec<String>,
    /// The longest token it allows.
    pub max_ttl: String,
}

impl RoleSpec {
    /// A role granting `grants` for at most `max_ttl` (a duration such as `1h`).
    pub fn new(name: impl Into<String>, grants: Vec<String>, max_ttl: impl Into<String>) -> Self {
        Self { name: name.into(), grants, max_ttl: max_ttl.into() }
    }
}

/// A principal and its roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PrincipalSpec {
    /// Its id.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
}

impl PrincipalSpec {
    /// A principal holding `roles`.
    pub fn new(name: impl Into<String>, roles: Vec<String>) -> Self {
        Self { name: name.into(), roles }
    }
}

/// A credential under rotation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CredentialSpec {
    /// The secret name its current version is kept under.
    pub name: String,
    /// Rotate every this long (a duration), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Rotate at this fraction of the credential's lifetime (0 < f < 1), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_lifetime: Option<f64>,
    /// In an emergency: `replace-first` (default: no consumer downtime) or `revoke-first`.
    #[serde(default = "default_emergency")]
    pub emergency: String,
    /// How long the previous credential keeps working after a promotion (a duration, `0s` for
    /// none, at most [`MAX_OVERLAP`], shorter than the schedule and the credential's lifetime);
    /// the deployment's overlap (5 minutes by default) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<String>,
    /// For an `aws-iam-access-key` target: how long a deactivated key stays (inactive, so it can
    /// be reactivated by hand if something still needed it) before it is deleted (a duration,
    /// `0s` for at once, at most [`MAX_DELETION_GRACE`]; 1 hour when absent). Never deleted
    /// earlier: a rotation that needs its slot waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace: Option<String>,
    /// What it is and where it lives.
    pub target: TargetSpec,
    /// Where else its current value is written for consumers that read a secrets manager (all
    /// or none: a failed deploy rolls back everywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploy: Vec<DestinationSpec>,
}

/// A place a credential is deployed to (see `token_rotate::Destination`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum DestinationSpec {
    /// An AWS Secrets Manager secret (feature `aws`), with AWSPENDING / AWSCURRENT / AWSPREVIOUS.
    AwsSecretsManager {
        /// The secret's name or ARN (created on first use).
        secret_id: String,
        /// How to reach AWS, acting as whom.
        #[serde(flatten)]
        access: AwsAccess,
        /// `secret` (the secret alone, default) or `aws-access-key` (`{"AccessKeyId", "SecretAccessKey"}`).
        #[serde(default = "default_format")]
        format: String,
    },
    /// An OpenBao / Vault KV v2 secret (feature `vault`): staged beside, written at promotion.
    OpenbaoKv {
        /// The server's address.
        address: String,
        /// How to reach and authenticate to it.
        #[serde(flatten)]
        connect: OpenBaoConnect,
        /// The KV v2 mount.
        mount: String,
        /// The secret's path.
        path: String,
        /// The field the secret goes in.
        field: String,
        /// A field for the handle too (an access key id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handle_field: Option<String>,
    },
}

fn default_format() -> String {
    "secret".into()
}

fn default_emergency() -> String {
    "replace-first".into()
}

/// A rotation target's kind and settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum TargetSpec {
    /// A Tokenward token of this store, for a principal and purpose.
    TokenwardToken {
        /// The principal (declared in the file).
        principal: String,
        /// The purpose.
        purpose: String,
        /// Its scopes.
        scopes: Vec<String>,
        /// Its lifetime.
        ttl: String,
    },
    /// An OpenBao / Vault token.
    OpenbaoToken {
        /// The server's address (`https://…`; plain `http://` to loopback only).
        address: String,
        /// How to reach and authenticate to it.
        #[serde(flatten)]
        connect: OpenBaoConnect,
        /// The policies new tokens get.
        #[serde(default)]
        policies: Vec<String>,
        /// Their lifetime.
        ttl: String,
        /// Their display name.
        #[serde(default = "default_display")]
        display_name: String,
    },
    /// An AWS IAM user's access key (feature `aws`): the handle is the access key id, the secret
    /// the secret access key.
    AwsIamAccessKey {
        /// The IAM user whose keys rotate.
        user: String,
        /// How to reach AWS, acting as whom (a key that manages the user's keys).
        #[serde(flatten)]
        access: AwsAccess,
        /// A key's nominal lifetime (IAM keys do not expire; the schedule rotates before it).
        #[serde(default = "default_key_lifetime")]
        lifetime: String,
        /// How long a deactivated key stays before it is deleted: the credential's
        /// `deletion_grace` (this place is still read, for files written before that field).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        deletion_grace: Option<String>,
    },
    /// A field of an OpenBao / Vault KV v2 secret.
    OpenbaoKv {
        /// The server's address (`https://…`; plain `http://` to loopback only).
        address: String,
        /// How to reach and authenticate to it.
        #[serde(flatten)]
        connect: OpenBaoConnect,
        /// The KV v2 mount.
        mount: String,
        /// The secret's path.
        path: String,
        /// The field rotated.
        field: String,
        /// How long a value lives.
        lifetime: String,
    },
}

/// How a declared AWS target or destination reaches AWS: the region, an endpoint for a local API,
/// and the access key it acts with, whose secret key is kept in the store (named here, never
/// written here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AwsAccess {
    /// The region (default `us-east-1`).
    #[serde(default = "default_region")]
    pub region: String,
    /// One endpoint for every service (a local AWS API); AWS's own when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The access key id it acts with.
    pub admin_access_key_id: String,
    /// The store secret holding that key's secret access key.
    pub admin_secret_key_secret: String,
}

impl AwsAccess {
    fn check(&self, what: &str) -> Result<(), PolicyFileError> {
        SecretName::new(&self.admin_secret_key_secret)
            .map(|_| ())
            .map_err(|e| PolicyFileError::new(format!("{what}: admin_secret_key_secret: {e}")))
    }
}

/// How a declared OpenBao target reaches the server and authenticates: a CA to trust, and a
/// token or an AppRole, each kept as a secret in the store (named here, never written here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBaoConnect {
    /// The store secret holding the token to act with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// AppRole instead of a token: the role id, and the store secret holding the secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_role_id: Option<String>,
    /// The store secret holding the AppRole secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_secret_id_secret: Option<String>,
    /// A PEM file with the CA to trust (instead of the platform's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl OpenBaoConnect {
    fn check(&self, what: &str) -> Result<(), PolicyFileError> {
        let names: Vec<&String> =
            [&self.token_secret, &self.approle_secret_id_secret].into_iter().flatten().collect();
        for n in names {
            SecretName::new(n).map_err(|e| PolicyFileError::new(format!("{what}: {n}: {e}")))?;
        }
        match (&self.token_secret, &self.approle_role_id, &self.approle_secret_id_secret) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => Ok(()),
            _ => Err(PolicyFileError::new(format!(
                "{what}: give token_secret, or approle_role_id with approle_secret_id_secret"
            ))),
        }
    }
}

fn default_region() -> String {
    "us-east-1".into()
}
fn default_key_lifetime() -> String {
    "90d".into()
}
/// The longest `overlap` a credential may declare.
pub const MAX_OVERLAP: TimeDelta = TimeDelta::days(7);
/// The longest `deletion_grace` a credential may declare.
pub const MAX_DELETION_GRACE: TimeDelta = TimeDelta::days(30);
/// An AWS key's deletion grace when none is declared.
pub const DEFAULT_DELETION_GRACE: TimeDelta = TimeDelta::hours(1);

/// [`parse_duration`], with zero allowed (`0s`, `0m`, `0`).
fn parse_duration_or_zero(text: &str) -> Result<TimeDelta, PolicyFileError> {
    let t = text.trim();
    let unit = t.trim_start_matches('0');
    if unit.len() < t.len() && ["", "ms", "s", "m", "h", "d", "w"].contains(&unit) {
        return Ok(TimeDelta::zero());
    }
    parse_duration(text)
}

fn default_display() -> String {
    "tokenward".into()
}

/// Parses a duration: one or more `<number><unit>` with units `ms`, `s`, `m`, `h`, `d`, `w`
/// (`90d`, `1h30m`, `500ms`). Zero and more than 100 years are refused (so that a time plus or
/// minus any parsed duration stays inside the calendar).
pub fn parse_duration(text: &str) -> Result<TimeDelta, PolicyFileError> {
    let bad = || PolicyFileError::new(format!("duration {text:?}: expected e.g. 30d, 1h30m, 90s"));
    let mut total = TimeDelta::zero();
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let ms_per: i64 = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => return Err(bad()),
        };
        let ms = n.checked_mul(ms_per).ok_or_else(bad)?;
        total = total.checked_add(&TimeDelta::try_milliseconds(ms).ok_or_else(bad)?).ok_or_else(bad)?;
    }
    if total <= TimeDelta::zero() || total > TimeDelta::days(36_500) {
        return Err(bad());
    }
    Ok(total)
}

/// Writes a duration the way [`parse_duration`] reads it (`1d2h`, `15m`, `500ms`).
pub fn format_duration(d: TimeDelta) -> String {
    let mut ms = d.num_milliseconds();
    if ms <= 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, per) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
        if ms >= per {
            let _ = write!(out, "{}{unit}", ms / per);
            ms %= per;
        }
    }
    out
}

fn scopes(list: &[String], what: &str) -> Result<ScopeSet, PolicyFileError> {
    ScopeSet::parse(&list.join(" ")).map_err(|e| PolicyFileError::new(format!("{what}: {e}")))
}

impl PolicyFile {
    /// Parses and checks a policy file: every duration and scope parses, the rules build a
    /// [`Policy`], every principal's role exists, names are unique, every credential names a
    /// valid secret and (for our tokens) a declared principal.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            // One line: where, then what (toml's own rendering spans several lines).
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            PolicyFileError::new(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })?;
        file.check()?;
        Ok(file)
    }

    /// Checks the file (what [`PolicyFile::parse`] does after parsing).
    pub fn check(&self) -> Result<(), PolicyFileError> {
        let policy = self.to_policy()?;
        let roles: BTreeSet<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for p in &self.principals {
            if !seen.insert(p.name.as_str()) {
                return Err(PolicyFileError::new(format!("principal {} is declared twice", p.name)));
            }
            for r in &p.roles {
                if !roles.contains(r.as_str()) {
                    return Err(PolicyFileError::new(format!("principal {}: no role {r}", p.name)));
                }
            }
            Principal::parse(&p.name, p.roles.iter().map(String::as_str))
                .map_err(|e| PolicyFileError::new(format!("principal {}: {e}", p.name)))?;
        }
        let mut names = BTreeSet::new();
        for c in &self.credentials {
            let what = format!("credential {}", c.name);
            SecretName::new(&c.name).map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
            if !names.insert(c.name.as_str()) {
                return Err(PolicyFileError::new(format!("{what} is declared twice")));
            }
            c.schedule_spec().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            c.emergency_order().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            c.check_overlap_and_grace().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            for d in &c.deploy {
                match d {
                    DestinationSpec::AwsSecretsManager { access, format, .. } => {
                        access.check(&format!("{what}: deploy"))?;
                        if format != "secret" && format != "aws-access-key" {
                            return Err(PolicyFileError::new(format!(
                                "{what}: deploy format {format:?}: expected secret or aws-access-key"
                            )));
                        }
                    }
                    DestinationSpec::OpenbaoKv { connect, .. } => {
                        connect.check(&format!("{what}: deploy"))?
                    }
                }
            }
            match &c.target {
                TargetSpec::TokenwardToken { principal, purpose, scopes: s, ttl } => {
                    let Some(holder) = self.principal(principal) else {
                        return Err(PolicyFileError::new(format!("{what}: no principal {principal}")));
                    };
                    let request =
                        token_core::IssueRequest::parse(purpose, &s.join(" "), parse_duration(ttl)?)
                            .map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
                    // What every rotation would ask: refused here, not found when one rolls back.
                    let _approved = policy.check_issue(&holder, &request, &[], Utc::now()).map_err(|e| {
                        PolicyFileError::new(format!(
                            "{what}: the principal may not be issued its token: {e}"
                        ))
                    })?;
                }
                TargetSpec::OpenbaoToken { connect, ttl, .. } => {
                    parse_duration(ttl)?;
                    connect.check(&what)?;
                }
                TargetSpec::OpenbaoKv { connect, lifetime, .. } => {
                    parse_duration(lifetime)?;
                    connect.check(&what)?;
                }
                TargetSpec::AwsIamAccessKey { access, lifetime, .. } => {
                    parse_duration(lifetime)?;
                    access.check(&what)?;
                }
            }
        }
        Ok(())
    }

    /// The issuing [`Policy`] the file describes.
    pub fn to_policy(&self) -> Result<Policy, PolicyFileError> {
        let mut b = Policy::builder()
            .max_ttl(parse_duration(&self.rules.max_ttl)?)
            .allow_bare_wildcards(self.rules.allow_bare_wildcards)
            .one_active_per_purpose(self.rules.one_active_per_purpose);
        if let Some(idle) = &self.rules.idle_timeout {
            b = b.idle_timeout(parse_duration(idle)?);
        }
        for r in &self.roles {
            let what = format!("role {}", r.name);
            let ttl =
                parse_duration(&r.max_ttl).map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            let role = Role::parse(&r.name, scopes(&r.grants, &what)?.as_str(), ttl)
                .map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
            b = b.role(role);
        }
        b.build().map_err(|e| PolicyFileError::new(e.to_string()))
    }

    /// A declared principal, with its roles.
    pub fn principal(&self, name: &str) -> Option<Principal> {
        let p = self.principals.iter().find(|p| p.name == name)?;
        Principal::parse(&p.name, p.roles.iter().map(String::as_str)).ok()
    }

    /// A declared credential.
    pub fn credential(&self, name: &str) -> Option<&CredentialSpec> {
        self.credentials.iter().find(|c| c.name == name)
    }

    /// The file in canonical TOML (what is stored and hashed).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// What changes from `old` to this file, one line each (`+ role x`, `- principal y`,
    /// `~ role z: …`); empty when nothing does.
    pub fn diff(&self, old: &PolicyFile) -> Vec<String> {
        let mut out = Vec::new();
        if self.rules != old.rules {
            let show = |r: &Rules| {
                format!(
                    "max_ttl {}, bare wildcards {}, one active per purpose {}, idle timeout {}",
                    r.max_ttl,
                    if r.allow_bare_wildcards { "allowed" } else { "refused" },
                    r.one_active_per_purpose,
                    r.idle_timeout.as_deref().unwrap_or("none")
                )
            };
            out.push(format!("~ rules: {} → {}", show(&old.rules), show(&self.rules)));
        }
        diff_named(
            &mut out,
            "role",
            &old.roles,
            &self.roles,
            |r| &r.name,
            |r| format!("grants [{}], max_ttl {}", r.grants.join(" "), r.max_ttl),
        );
        diff_named(
            &mut out,
            "principal",
            &old.principals,
            &self.principals,
            |p| &p.name,
            |p| format!("roles [{}]", p.roles.join(" ")),
        );
        diff_named(
            &mut out,
            "credential",
            &old.credentials,
            &self.credentials,
            |c| &c.name,
            |c| {
                let target = serde_json::to_value(&c.target).map(|v| v.to_string()).unwrap_or_default();
                let mut shown = format!(
                    "schedule {}, emergency {}, overlap {}",
                    c.schedule.as_deref().unwrap_or("none"),
                    c.emergency,
                    c.overlap.as_deref().unwrap_or("default")
                );
                if let Some(g) = &c.deletion_grace {
                    let _ = write!(shown, ", deletion_grace {g}");
                }
                format!("{shown}, target {target}")
            },
        );
        out
    }
}

fn diff_named<T: PartialEq>(
    out: &mut Vec<String>,
    kind: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
    show: impl Fn(&T) -> String,
) {
    let old_by: BTreeMap<&String, &T> = old.iter().map(|t| (name(t), t)).collect();
    let new_by: BTreeMap<&String, &T> = new.iter().map(|t| (name(t), t)).collect();
    for (n, t) in &old_by {
        match new_by.get(n) {
            None => out.push(format!("- {kind} {n}: {}", show(t))),
            Some(u) if u != t => out.push(format!("~ {kind} {n}: {} → {}", show(t), show(u))),
            Some(_) => {}
        }
    }
    for (n, t) in &new_by {
        if !old_by.contains_key(n) {
            out.push(format!("+ {kind} {n}: {}", show(t)));
        }
    }
}

impl CredentialSpec {
    /// Its rotation schedule, if it has one.
    pub fn schedule_spec(&self) -> Result<Option<Schedule>, PolicyFileError> {
        let every = self.schedule.as_deref().map(parse_duration).transpose()?;
        if let Some(f) = self.at_lifetime
            && !(f > 0.0 && f < 1.0)
        {
            return Err(PolicyFileError::new(format!("at_lifetime {f}: must be between 0 and 1")));
        }
        Ok(match (every, self.at_lifetime) {
            (None, None) => None,
            (Some(e), None) => Some(Schedule::every(e)),
            (None, Some(f)) => Some(Schedule::at_lifetime_fraction(f)),
            (Some(e), Some(f)) => Some(Schedule::at_lifetime_fraction(f).or_every(e)),
        })
    }

    /// Its emergency ordering.
    pub fn emergency_order(&self) -> Result<EmergencyOrder, PolicyFileError> {
        match self.emergency.as_str() {
            "replace-first" => Ok(EmergencyOrder::ReplaceFirst),
            "revoke-first" => Ok(EmergencyOrder::RevokeFirst),
            other => Err(PolicyFileError::new(format!(
                "emergency {other:?}: expected replace-first or revoke-first"
            ))),
        }
    }

    /// Its own overlap (`None`: the deployment's), checked against [`MAX_OVERLAP`].
    pub fn overlap_spec(&self) -> Result<Option<TimeDelta>, PolicyFileError> {
        let Some(text) = &self.overlap else { return Ok(None) };
        let d =
            parse_duration_or_zero(text).map_err(|e| PolicyFileError::new(format!("overlap: {}", e.0)))?;
        if d > MAX_OVERLAP {
            return Err(PolicyFileError::new(format!(
                "overlap {text}: at most {} (a previous credential is revoked after it)",
                format_duration(MAX_OVERLAP)
            )));
        }
        Ok(Some(d))
    }

    /// Its deletion grace (an `aws-iam-access-key` target's; `None` for other targets), from the
    /// credential's `deletion_grace`, or the target's (older files), or
    /// [`DEFAULT_DELETION_GRACE`].
    pub fn deletion_grace_spec(&self) -> Result<Option<TimeDelta>, PolicyFileError> {
        let in_target = match &self.target {
            TargetSpec::AwsIamAccessKey { deletion_grace, .. } => deletion_grace.as_ref(),
            _ => {
                if self.deletion_grace.is_some() {
                    return Err(PolicyFileError::new(
                        "deletion_grace: only an aws-iam-access-key target keeps a revoked credential (deactivated) \
                         before deleting it; other targets revoke at once",
                    ));
                }
                return Ok(None);
            }
        };
        let text = match (&self.deletion_grace, in_target) {
            (Some(_), Some(_)) => {
                return Err(PolicyFileError::new(
                    "deletion_grace is given twice (on the credential and in its target): keep the credential's",
                ));
            }
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => return Ok(Some(DEFAULT_DELETION_GRACE)),
        };
        let d = parse_duration_or_zero(text)
            .map_err(|e| PolicyFileError::new(format!("deletion_grace: {}", e.0)))?;
        if d > MAX_DELETION_GRACE {
            return Err(PolicyFileError::new(format!(
                "deletion_grace {text}: at most {}",
                format_duration(MAX_DELETION_GRACE)
            )));
        }
        Ok(Some(d))
    }

    /// The overlap and the deletion grace parse and fit: an overlap shorter than the schedule's
    /// period (or the next rotation would wait for it) and than the credential's lifetime (the
    /// previous one would expire before its overlap ends, so the overlap would not be honoured).
    fn check_overlap_and_grace(&self) -> Result<(), PolicyFileError> {
        self.deletion_grace_spec()?;
        let Some(overlap) = self.overlap_spec()? else { return Ok(()) };
        if let Some(every) = self.schedule.as_deref().map(parse_duration).transpose()?
            && overlap >= every
        {
            return Err(PolicyFileError::new(format!(
                "overlap {}: must be shorter than the schedule ({})",
                format_duration(overlap),
                format_duration(every)
            )));
        }
        let lifetime = match &self.target {
            TargetSpec::TokenwardToken { ttl, .. } | TargetSpec::OpenbaoToken { ttl, .. } => ttl,
            TargetSpec::AwsIamAccessKey { lifetime, .. } | TargetSpec::OpenbaoKv { lifetime, .. } => lifetime,
        };
        let lifetime = parse_duration(lifetime)?;
        if overlap >= lifetime {
            return Err(PolicyFileError::new(format!(
                "overlap {}: must be shorter than the credential's lifetime ({}): the previous credential \
                 would expire before its overlap ends",
                format_duration(overlap),
                format_duration(lifetime)
            )));
        }
        Ok(())
    }

    /// The secret name.
    pub fn secret_name(&self) -> Result<SecretName, PolicyFileError> {
        SecretName::new(&self.name)
            .map_err(|e| PolicyFileError::new(format!("credential {}: {e}", self.name)))
    }
}

/// A stored version of the policy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PolicyRecord {
    /// Its version (1, 2, …).
    pub version: u64,
    /// When it was applied.
    pub applied_at: DateTime<Utc>,
    /// Who applied it.
    pub actor: String,
    /// SHA-256 of its canonical TOML (hex).
    pub sha256: String,
    /// Its canonical TOML.
    pub text: String,
}

impl PolicyRecord {
    /// The file it holds.
    pub fn file(&self) -> Result<PolicyFile, PolicyFileError> {
        PolicyFile::parse(&self.text)
    }
}

/// An active token the new policy would no longer cover: its principal is gone, or its scopes are
/// outside every grant its principal's roles would have.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphan {
    /// The token.
    pub token: TokenId,
    /// Its principal.
    pub principal: String,
    /// Its purpose.
    pub purpose: String,
    /// Why.
    pub why: String,
}

/// How [`Tokenward::apply_policy`] applies a file.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// Apply only if the stored version is still this one (`Some(0)`: no policy stored yet);
    /// `None`: over whatever is stored (still compare-and-swap against what was read).
    pub expect_version: Option<u64>,
    /// Apply even if it orphans active tokens.
    pub allow_orphans: bool,
}

impl ApplyOptions {
    /// Over whatever is stored, refusing to orphan tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only over stored version `v` (`0`: none stored yet).
    pub fn expect_version(mut self, v: u64) -> Self {
        self.expect_version = Some(v);
        self
    }

    /// Apply even if active tokens are orphaned (they keep working until they expire or are revoked).
    pub fn allow_orphans(mut self, on: bool) -> Self {
        self.allow_orphans = on;
        self
    }
}

/// What [`Tokenward::apply_policy`] did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PolicyApplied {
    /// The version stored (the old one when nothing changed).
    pub version: u64,
    /// What changed (empty: the file was already the stored policy; nothing was written).
    pub diff: Vec<String>,
    /// Active tokens it orphans (applied anyway: `allow_orphans`).
    pub orphans: Vec<Orphan>,
}

fn actor_name(actor: &Actor) -> String {
    match actor {
        Actor::Principal(p) => format!("principal:{p}"),
        Actor::Operator(o) => format!("operator:{o}"),
        Actor::System => "system".into(),
        Actor::Anonymous => "anonymous".into(),
        other => format!("{other:?}"),
    }
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest as _;
    let d = sha2::Sha256::digest(text.as_bytes());
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn decode(bytes: &[u8]) -> Result<PolicyRecord> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Store(token_store::StoreError::Corrupted {
            id: None,
            what: "stored policy",
            detail: e.to_string(),
        })
    })
}

/// Reads the stored policy through a secret store (what the builder does before the token service
/// opens).
pub(crate) async fn read_head(secrets: &token_store::SecretStore) -> Result<Option<(PolicyRecord, Vec<u8>)>> {
    match secrets.sealed_meta(HEAD_KEY).await? {
        None => Ok(None),
        Some((value, raw)) => Ok(Some((decode(&value)?, raw))),
    }
}

impl Tokenward {
    /// The stored policy, if one was applied.
    pub async fn stored_policy(&self) -> Result<Option<PolicyRecord>> {
        Ok(read_head(self.secrets()).await?.map(|(r, _)| r))
    }

    /// Every stored version of the policy, oldest first.
    pub async fn policy_history(&self) -> Result<Vec<PolicyRecord>> {
        let Some((head, _)) = read_head(self.secrets()).await? else { return Ok(Vec::new()) };
        let mut out = Vec::new();
        for v in 1..head.version {
            if let Some((value, _)) = self.secrets().sealed_meta(&version_key(v)).await? {
                out.push(decode(&value)?);
            }
        }
        out.push(head);
        Ok(out)
    }

    /// Active tokens `file` would orphan (see [`Orphan`]).
    pub async fn policy_orphans(&self, file: &PolicyFile) -> Result<Vec<Orphan>> {
        let policy = file.to_policy().map_err(|e| Error::Config(e.to_string()))?;
        let now = self.clock().now();
        let rows = self.backend().tokens(&TokenQuery::Unexpired { at: now }).await?;
        let mut out = Vec::new();
        for row in rows {
            let r = &row.record;
            if r.revoked_at.is_some() {
                continue;
            }
            let principal = r.principal.as_str().to_owned();
            let why = match file.principal(&principal) {
                None => Some("its principal is no longer declared".to_owned()),
                Some(p) => {
                    let grants: Vec<&token_core::Scope> = p
                        .roles()
                        .filter_map(|n| policy.role(n))
                        .flat_map(|role| role.grants().iter())
                        .collect();
                    r.scopes
                        .iter()
                        .find(|s| !grants.iter().any(|g| s.is_subset(g)))
                        .map(|s| format!("scope {s} is no longer granted to {principal}"))
                }
            };
            if let Some(why) = why {
                out.push(Orphan { token: r.id, principal, purpose: r.purpose.as_str().to_owned(), why });
            }
        }
        Ok(out)
    }

    /// Stores `file` as the next policy version: refused if the stored version is not
    /// `options.expect_version` (or changed since it was read: compare-and-swap), or if it would
    /// orphan active tokens and `allow_orphans` is off ([`Error::PolicyOrphans`], naming them).
    /// Records a `policy_change` audit entry (version, SHA-256, changes). Applying the stored
    /// policy again writes nothing. The running deployment keeps the policy it opened with; a
    /// handle opened afterwards with [`crate::TokenwardBuilder::stored_policy`] issues under the new one.
    pub async fn apply_policy(&self, file: &PolicyFile, options: ApplyOptions) -> Result<PolicyApplied> {
        file.check().map_err(|e| Error::Config(e.to_string()))?;
        let head = read_head(self.secrets()).await?;
        let current = head.as_ref().map_or(0, |(r, _)| r.version);
        if let Some(expect) = options.expect_version
            && expect != current
        {
            return Err(Error::PolicyConflict { expected: expect, found: current });
        }
        let old = match &head {
            Some((r, _)) => r.file().map_err(|e| Error::Config(format!("the stored policy: {e}")))?,
            None => PolicyFile::default(),
        };
        let text = file.to_toml();
        let diff = file.diff(&old);
        if head.is_some() && diff.is_empty() {
            return Ok(PolicyApplied { version: current, diff, orphans: Vec::new() });
        }
        let orphans = self.policy_orphans(file).await?;
        if !orphans.is_empty() && !options.allow_orphans {
            return Err(Error::PolicyOrphans(orphans.iter().map(|o| o.token).collect()));
        }
        let record = PolicyRecord {
            version: current + 1,
            applied_at: self.clock().now(),
            actor: actor_name(self.actor()),
            sha256: sha256_hex(&text),
            text,
        };
        let bytes = serde_json::to_vec(&record).map_err(|e| Error::Config(e.to_string()))?;
        let expect = head.as_ref().map(|(_, raw)| raw.as_slice());
        match self.secrets().set_sealed_meta(HEAD_KEY, expect, &bytes).await {
            Ok(_) => {}
            Err(token_store::StoreError::Conflict(_)) => {
                let found = read_head(self.secrets()).await?.map_or(0, |(r, _)| r.version);
                return Err(Error::PolicyConflict { expected: current, found });
            }
            Err(e) => return Err(e.into()),
        }
        // History: the head holds the newest; older versions keep their own key.
        if let Some((old_record, _)) = &head {
            let old_bytes = serde_json::to_vec(old_record).map_err(|e| Error::Config(e.to_string()))?;
            match self.secrets().set_sealed_meta(&version_key(old_record.version), None, &old_bytes).await {
                Ok(_) | Err(token_store::StoreError::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(auditor) = self.auditor() {
            let event = AuditEvent::new(record.applied_at, self.actor().clone(), Action::PolicyChange)
                .attr("version", record.version.to_string())
                .attr("sha256", record.sha256.clone())
                .attr("changes", diff.join("\n"))
                .attr("orphaned", orphans.len().to_string());
            auditor.emit_durable(event).await?;
        }
        tracing::info!(version = record.version, changes = diff.len(), "policy applied");
        Ok(PolicyApplied { version: record.version, diff, orphans })
    }
}

impl Tokenward {
    /// The rotation target a declared credential names, in this deployment. An OpenBao target's
    /// token is read (audited) from the store secret its `token_secret` names.
    pub async fn declared_target(
        &self,
        file: &PolicyFile,
        spec: &CredentialSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::RotationTarget>> {
        let target = self.declared_target_only(file, spec).await?;
        // Its overlap, from its next promotion on, whoever rotates it through this handle.
        let overlap =
            spec.overlap_spec().map_err(|e| Error::Config(format!("credential {}: {e}", spec.name)))?;
        self.rotator().set_overlap(&spec.secret_name()?, overlap);
        if spec.deploy.is_empty() {
            return Ok(target);
        }
        let mut destinations: Vec<std::sync::Arc<dyn token_rotate::Destination>> = Vec::new();
        for d in &spec.deploy {
            destinations.push(self.declared_destination(spec, d).await?);
        }
        Ok(std::sync::Arc::new(token_rotate::Deployed::new(target, destinations)))
    }

    async fn declared_destination(
        &self,
        spec: &CredentialSpec,
        d: &DestinationSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::Destination>> {
        let what =
            |e: &dyn std::fmt::Display| Error::Config(format!("credential {}: deploy: {e}", spec.name));
        match d {
            #[cfg(feature = "aws")]
            DestinationSpec::AwsSecretsManager { secret_id, access, format } => {
                let client = self.aws_client(access).await?;
                let format = if format == "aws-access-key" {
                    token_rotate::ValueFormat::aws_access_key()
                } else {
                    token_rotate::ValueFormat::Secret
                };
                Ok(std::sync::Arc::new(token_rotate::SecretsManagerDestination::new(
                    client, secret_id, format,
                )))
            }
            #[cfg(not(feature = "aws"))]
            DestinationSpec::AwsSecretsManager { .. } => {
                Err(what(&"Secrets Manager needs the `aws` feature"))
            }
            #[cfg(feature = "vault")]
            DestinationSpec::OpenbaoKv { address, connect, mount, path, field, handle_field } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                let mut d = token_rotate::OpenBaoKvDestination::new(bao, mount, path, field);
                if let Some(h) = handle_field {
                    d = d.handle_field(h);
                }
                Ok(std::sync::Arc::new(d))
            }
            #[cfg(not(feature = "vault"))]
            DestinationSpec::OpenbaoKv { .. } => Err(what(&"OpenBao destinations need the `vault` feature")),
        }
    }

    /// An AWS client for `access`: its key id, with the secret key read (audited) from the store.
    #[cfg(feature = "aws")]
    async fn aws_client(&self, access: &AwsAccess) -> Result<token_rotate::AwsClient> {
        use token_store::secrecy::{ExposeSecret as _, SecretString};
        let (region, endpoint, id, secret_name) = (
            access.region.as_str(),
            access.endpoint.as_deref(),
            access.admin_access_key_id.as_str(),
            access.admin_secret_key_secret.as_str(),
        );
        let secret = self
            .read_current(&SecretName::new(secret_name)?)
            .await?
            .ok_or_else(|| Error::Config(format!("{secret_name}: no such secret in the store")))?;
        let secret = std::str::from_utf8(secret.expose_secret())
            .map_err(|_| Error::Config(format!("{secret_name}: not UTF-8 text")))?
            .trim()
            .to_owned();
        let creds = token_rotate::AwsCredentials::new(id.to_owned(), SecretString::from(secret));
        let mut client = token_rotate::AwsClient::new(region.to_owned(), creds);
        if let Some(e) = endpoint {
            client = client.endpoint(e.to_owned());
        }
        Ok(client)
    }

    async fn declared_target_only(
        &self,
        file: &PolicyFile,
        spec: &CredentialSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::RotationTarget>> {
        let what = |e: &dyn std::fmt::Display| Error::Config(format!("credential {}: {e}", spec.name));
        match &spec.target {
            TargetSpec::TokenwardToken { principal, purpose, scopes, ttl } => {
                let p =
                    file.principal(principal).ok_or_else(|| what(&format!("no principal {principal}")))?;
                let request =
                    token_core::IssueRequest::parse(purpose, &scopes.join(" "), parse_duration(ttl)?)
                        .map_err(|e| what(&e))?;
                Ok(self.token_target(p, request))
            }
            #[cfg(feature = "vault")]
            TargetSpec::OpenbaoToken { address, connect, policies, ttl, display_name } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                let policies: Vec<&str> = policies.iter().map(String::as_str).collect();
                Ok(std::sync::Arc::new(token_rotate::OpenBaoTokenTarget::new(
                    bao,
                    &policies,
                    parse_duration(ttl)?,
                    display_name,
                )))
            }
            #[cfg(feature = "vault")]
            TargetSpec::OpenbaoKv { address, connect, mount, path, field, lifetime } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                Ok(std::sync::Arc::new(token_rotate::OpenBaoKvTarget::new(
                    bao,
                    mount,
                    path,
                    field,
                    parse_duration(lifetime)?,
                )))
            }
            #[cfg(not(feature = "vault"))]
            TargetSpec::OpenbaoToken { .. } | TargetSpec::OpenbaoKv { .. } => {
                Err(what(&"OpenBao targets need the `vault` feature"))
            }
            #[cfg(feature = "aws")]
            TargetSpec::AwsIamAccessKey { user, access, lifetime, .. } => {
                let grace =
                    spec.deletion_grace_spec().map_err(|e| what(&e))?.unwrap_or(DEFAULT_DELETION_GRACE);
                let client = self.aws_client(access).await?;
                Ok(std::sync::Arc::new(
                    token_rotate::AwsAccessKeyTarget::new(client, user)
                        .lifetime(parse_duration(lifetime)?)
                        .deletion_grace(grace)
                        .clock(self.clock().clone()),
                ))
            }
            #[cfg(not(feature = "aws"))]
            TargetSpec::AwsIamAccessKey { .. } => Err(what(&"AWS targets need the `aws` feature")),
        }
    }

    #[cfg(feature = "vault")]
    async fn openbao(&self, address: &str, connect: &OpenBaoConnect) -> Result<token_rotate::OpenBao> {
        use token_store::secrecy::{ExposeSecret as _, SecretString};
        let secret_text = |name: &str| {
            let name = name.to_owned();
            async move {
                let value = self
                    .read_current(&SecretName::new(&name)?)
                    .await?
                    .ok_or_else(|| Error::Config(format!("{name}: no such secret in the store")))?;
                let text = std::str::from_utf8(value.expose_secret())
                    .map_err(|_| Error::Config(format!("{name}: not UTF-8 text")))?;
                Ok::<_, Error>(SecretString::from(text.trim().to_owned()))
            }
        };
        let mut b = token_rotate::OpenBao::builder(address);
        if let Some(ca) = &connect.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Config(format!("ca_file {ca}: {e}")))?;
            b = b.ca_pem(pem);
        }
        b = match (&connect.token_secret, &connect.approle_role_id, &connect.approle_secret_id_secret) {
            (Some(t), _, _) => b.token(secret_text(t).await?),
            (None, Some(role), Some(secret)) => b.approle(role, secret_text(secret).await?),
            _ => {
                return Err(Error::Config(
                    "give token_secret, or approle_role_id with approle_secret_id_secret".into(),
                ));
            }
        };
        b.build().map_err(|e| Error::Rotate(e.into()))
    }

    /// Puts the file's credentials under this handle: each becomes known to the leak response
    /// (a leaked current credential is replaced, not only revoked), and with `schedule`, those
    /// with a schedule run under the scheduler. Returns the names.
    pub async fn manage_declared(&self, file: &PolicyFile, schedule: bool) -> Result<Vec<SecretName>> {
        let mut names = Vec::new();
        for spec in &file.credentials {
            let name = spec.secret_name()?;
            let target = self.declared_target(file, spec).await?;
            match spec.schedule_spec()? {
                Some(s) if schedule => self.schedule(name.clone(), target, s),
                _ => self.watch(&name, &target),
            }
            names.push(name);
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_with_flattened_settings_parse_and_unknown_fields_are_refused() {
        let t = r#"
[[credential]]
name = "x/y"
target = { kind = "openbao-token", address = "http://127.0.0.1:8200", token_secret = "openbao/admin", ttl = "1h" }
[[credential]]
name = "x/z"
target = { kind = "aws-iam-access-key", user = "u", admin_access_key_id = "AKIA", admin_secret_key_secret = "aws/s" }
deploy = [{ kind = "aws-secrets-manager", secret_id = "s", admin_access_key_id = "AKIA", admin_secret_key_secret = "aws/s" }]
"#;
        let f = PolicyFile::parse(t).unwrap();
        let TargetSpec::AwsIamAccessKey { access, .. } = &f.credentials[1].target else { panic!() };
        assert_eq!(access.region, "us-east-1");
        assert_eq!(PolicyFile::parse(&f.to_toml()).unwrap(), f, "round-trips through its canonical TOML");
        for (from, to) in [
            ("ttl = \"1h\"", "ttl = \"1h\", bogus = 1"),
            ("user = \"u\"", "user = \"u\", bogus = 1"),
            ("secret_id = \"s\"", "secret_id = \"s\", bogus = 1"),
            ("admin_secret_key_secret = \"aws/s\" }\n", "admin_secret_key_secret = \"bad name!\" }\n"),
            ("token_secret = \"openbao/admin\", ", ""),
        ] {
            let bad = t.replacen(from, to, 1);
            assert_ne!(bad, t, "{from}");
            assert!(PolicyFile::parse(&bad).is_err(), "accepted: {to}");
        }
    }

    #[test]
    fn overlap_and_deletion_grace_are_checked_and_bounded() {
        let aws = |extra: &str, target_extra: &str| {
            format!(
                "[[credential]]\nname = \"aws/k\"\nschedule = \"1d\"\n{extra}\ntarget = {{ kind = \"aws-iam-access-key\", \
                 user = \"u\", admin_access_key_id = \"AKIA\", admin_secret_key_secret = \"aws/s\"{target_extra} }}\n"
            )
        };
        let spec = |text: &str| PolicyFile::parse(text).map(|f| f.credentials[0].clone());
        // Absent: the deployment's overlap, a grace of 1 hour.
        let c = spec(&aws("", "")).unwrap();
        assert_eq!(
            (c.overlap_spec().unwrap(), c.deletion_grace_spec().unwrap()),
            (None, Some(TimeDelta::hours(1)))
        );
        let c = spec(&aws("overlap = \"90s\"\ndeletion_grace = \"10m\"", "")).unwrap();
        assert_eq!(c.overlap_spec().unwrap(), Some(TimeDelta::seconds(90)));
        assert_eq!(c.deletion_grace_spec().unwrap(), Some(TimeDelta::minutes(10)));
        let c = spec(&aws("overlap = \"0s\"\ndeletion_grace = \"0\"", "")).unwrap();
        assert_eq!(
            (c.overlap_spec().unwrap(), c.deletion_grace_spec().unwrap()),
            (Some(TimeDelta::zero()), Some(TimeDelta::zero()))
        );
        // An older file's grace in the target still counts.
        let c = spec(&aws("", ", deletion_grace = \"2h\"")).unwrap();
        assert_eq!(c.deletion_grace_spec().unwrap(), Some(TimeDelta::hours(2)));
        assert_eq!(
            PolicyFile::parse(&PolicyFile::parse(&aws("overlap = \"1m\"", "")).unwrap().to_toml())
                .unwrap()
                .credentials[0]
                .overlap
                .as_deref(),
            Some("1m")
        );
        for (bad, why) in [
            (aws("overlap = \"8d\"", ""), "at most"),
            (aws("overlap = \"1d\"", ""), "shorter than the schedule"),
            (aws("overlap = \"soon\"", ""), "overlap"),
            (aws("overlap = \"-1s\"", ""), "overlap"),
            (aws("deletion_grace = \"31d\"", ""), "at most"),
            (aws("deletion_grace = \"00x\"", ""), "deletion_grace"),
            (aws("deletion_grace = \"1h\"", ", deletion_grace = \"1h\""), "twice"),
            (aws("", ", lifetime = \"1h\"").replace("schedule = \"1d\"\n", "overlap = \"2h\"\n"), "lifetime"),
            (
                "[[credential]]\nname = \"kv/x\"\ndeletion_grace = \"1h\"\ntarget = { kind = \"openbao-kv\", \
                 address = \"http://127.0.0.1:8200\", token_secret = \"o/t\", mount = \"m\", path = \"p\", field = \"f\", \
                 lifetime = \"1d\" }\n"
                    .to_owned(),
                "only an aws-iam-access-key",
            ),
        ] {
            let e = PolicyFile::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("credential"), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_parse_and_print_back() {
        for (t, ms) in [("90d", 90 * 86_400_000), ("1h30m", 5_400_000), ("500ms", 500), ("2w", 1_209_600_000)]
        {
            let d = parse_duration(t).unwrap();
            assert_eq!(d.num_milliseconds(), ms, "{t}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for bad in ["", "0s", "h", "1", "1y", "-1h", "1h-", "99999999999999999999d", " 1 h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }
}
