//! A credential under rotation: its schedule, emergency order, overlap and deletion grace, its
//! target and where it is deployed (each a kind's declaration, read by `kinds`).

use serde::{Deserialize, Serialize};
use token_core::chrono::TimeDelta;
use token_rotate::declare::{Duration, format_duration};
use token_rotate::{EmergencyOrder, Schedule};
use token_store::SecretName;

use super::error::PolicyFileError;
use super::kinds::{DestinationSpec, TargetSpec};

/// A credential under rotation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct CredentialSpec {
    /// The secret name its current version is kept under.
    pub name: String,
    /// Rotate every this long (a duration), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Duration>,
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
    pub overlap: Option<Duration>,
    /// Retire the previous credential as soon as its provider reports it unused for this long
    /// after the promotion (a duration shorter than the overlap, which becomes the maximum):
    /// consumers that switched let it go early, one that has not keeps it until the overlap ends.
    /// Providers that report no last use (OpenBao) retire at the overlap's end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quiet_period: Option<Duration>,
    /// For an `aws-iam-access-key` target: how long a deactivated key stays (inactive, so it can
    /// be reactivated by hand if something still needed it) before it is deleted (a duration,
    /// `0s` for at once, at most [`MAX_DELETION_GRACE`]; 1 hour when absent). Never deleted
    /// earlier: a rotation that needs its slot waits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace: Option<Duration>,
    /// What it is and where it lives.
    pub target: TargetSpec,
    /// Where else its current value is written for consumers that read a secrets manager (all
    /// or none: a failed deploy rolls back everywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deploy: Vec<DestinationSpec>,
}

fn default_emergency() -> String {
    "replace-first".into()
}

/// The longest `overlap` a credential may declare.
pub const MAX_OVERLAP: TimeDelta = TimeDelta::days(7);
/// The longest `deletion_grace` a credential may declare.
pub const MAX_DELETION_GRACE: TimeDelta = TimeDelta::days(30);
/// An AWS key's deletion grace when none is declared.
pub const DEFAULT_DELETION_GRACE: TimeDelta = TimeDelta::hours(1);

impl CredentialSpec {
    /// Its rotation schedule, if it has one.
    pub fn schedule_spec(&self) -> Result<Option<Schedule>, PolicyFileError> {
        let every = self.schedule.as_ref().map(Duration::get).transpose()?;
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
        let d = text.get_or_zero().map_err(|e| PolicyFileError::new(format!("overlap: {e}")))?;
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
        let in_target = match self.target.deletion_grace() {
            Some(in_target) => in_target,
            None => {
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
        let d = text.get_or_zero().map_err(|e| PolicyFileError::new(format!("deletion_grace: {e}")))?;
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
    /// Its quiet period (`None`: retired at the overlap's end only).
    pub fn quiet_period_spec(&self) -> Result<Option<TimeDelta>, PolicyFileError> {
        let Some(text) = &self.quiet_period else { return Ok(None) };
        let d = text.get().map_err(|e| PolicyFileError::new(format!("quiet_period: {e}")))?;
        if let Some(overlap) = self.overlap_spec()?
            && d >= overlap
        {
            return Err(PolicyFileError::new(format!(
                "quiet_period {text}: must be shorter than the overlap ({}), the longest the previous credential is \
                 kept",
                format_duration(overlap)
            )));
        }
        Ok(Some(d))
    }

    pub(crate) fn check_overlap_and_grace(&self) -> Result<(), PolicyFileError> {
        self.deletion_grace_spec()?;
        self.quiet_period_spec()?;
        let Some(overlap) = self.overlap_spec()? else { return Ok(()) };
        if let Some(every) = self.schedule.as_ref().map(Duration::get).transpose()?
            && overlap >= every
        {
            return Err(PolicyFileError::new(format!(
                "overlap {}: must be shorter than the schedule ({})",
                format_duration(overlap),
                format_duration(every)
            )));
        }
        let lifetime = self.target.lifetime()?;
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
