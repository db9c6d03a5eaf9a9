//! A credential under rotation: its schedule, emergency order, overlap and deletion grace, its
//! target and where it is deployed.

use serde::{Deserialize, Serialize};
use token_core::chrono::TimeDelta;
use token_rotate::{EmergencyOrder, Schedule};
use token_store::SecretName;

use super::duration::{format_duration, parse_duration, parse_duration_or_zero};
use super::error::PolicyFileError;

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
    pub(crate) fn check(&self, what: &str) -> Result<(), PolicyFileError> {
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
    pub(crate) fn check(&self, what: &str) -> Result<(), PolicyFileError> {
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

fn default_display() -> String {
    "tokenward".into()
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
    pub(crate) fn check_overlap_and_grace(&self) -> Result<(), PolicyFileError> {
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
