//! The rotation protocol as a trait that a tool author implements for any credential target.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::credential::Credential;
use crate::error::TargetError;

/// What a provider said of a revoked credential ([`RotationTarget::probe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Probe {
    /// It refused it: the credential is dead there.
    Refused,
    /// It still accepts it.
    Accepted,
    /// The answer proves neither (throttled, unreachable, an error that is not a refusal).
    Unknown(String),
    /// The target cannot probe (its credentials are checked elsewhere, or not at all).
    Unsupported,
}

/// A credential's last use, as its provider reports it ([`RotationTarget::last_used`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Usage {
    /// The provider does not say (OpenBao): retirement waits for the maximum overlap.
    Unknown,
    /// Never used.
    Never,
    /// Last used then, and where or by what when the provider says (`sts us-east-1`).
    At {
        /// When.
        at: DateTime<Utc>,
        /// By what, or where (never a secret).
        by: Option<String>,
    },
}

/// A system whose credentials Tokenward rotates (our own tokens, an OpenBao token or KV secret, a
/// cloud provider's access keys).
///
/// The [`Rotator`](crate::Rotator) drives it: `create` a pending credential → `deploy` it where
/// consumers read it → `test` that it really works → promote (labels in the store, not the
/// target's business) → after the overlap, `revoke` the previous one. Every method must be
/// idempotent: after a crash a step may run again with the same arguments. A credential created
/// but never recorded (a crash between `create` and the store's write) is orphaned at the target
/// and dies at its expiry, which every credential has.
#[async_trait]
pub trait RotationTarget: Send + Sync {
    /// A short name for audit entries (`"tokenward-token"`, `"openbao-token"`).
    fn kind(&self) -> &str;

    /// Whether a credential's handle is a public id that names the credential on its own (an AWS
    /// access key id, `AKIA…`): a secret found in a leak that is a current or previous handle is
    /// then that credential's, and the leak response replaces it. The default: no (an accessor,
    /// a login name or a version number is no finding on its own).
    fn handle_names_credential(&self) -> bool {
        false
    }

    /// Whether the target can take a new credential beside `current` now: `None` if it can (the
    /// default), or until when it cannot and why — an IAM user whose two key slots hold the
    /// current key and one deactivated key still in its deletion grace, which is never deleted
    /// early. Asked before a rotation starts; a rotation that is told to wait starts nothing
    /// ([`Rotation::Waiting`](crate::Rotation::Waiting)).
    async fn blocked_until(
        &self,
        current: Option<&Credential>,
    ) -> Result<Option<(DateTime<Utc>, String)>, TargetError> {
        let _ = current;
        Ok(None)
    }

    /// Does the target's own deferred work that is due (an IAM key whose deletion grace is over
    /// is deleted) and says when it should be asked again (`None`: never; the default does
    /// nothing). Run by the deployment's upkeep, so a deactivated key goes when its grace ends,
    /// not at the next rotation.
    async fn upkeep(&self) -> Result<Option<DateTime<Utc>>, TargetError> {
        Ok(None)
    }

    /// Emergency: makes room for a replacement of the leaked `current` by ending the deletion
    /// grace of the target's *own* deactivated credentials early (an IAM key Tokenward
    /// deactivated holding the second slot), so a leak is never kept alive by a grace. Returns
    /// how many it removed. Never touches a credential it did not create. The default does
    /// nothing. Called before [`RotationTarget::create`] in an emergency only.
    async fn make_room(&self, current: Option<&Credential>) -> Result<usize, TargetError> {
        let _ = current;
        Ok(0)
    }

    /// Creates a new credential that works alongside `current` (the overlap). `rotation` is the
    /// rotation's number, usable as an idempotency key.
    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError>;

    /// Makes `pending` reachable where consumers read it. The default does nothing: consumers
    /// read the store's `current` version through a [`CurrentCredential`](crate::CurrentCredential).
    async fn deploy(&self, pending: &Credential) -> Result<(), TargetError> {
        let _ = pending;
        Ok(())
    }

    /// Makes `current` — just promoted in the store — the current one where consumers read it (a
    /// secrets manager's `AWSCURRENT` label). The default does nothing. Idempotent: it runs right
    /// after the promotion and again before the previous credential is revoked (so a failure, or a
    /// crash between the two, is retried before anything is revoked).
    async fn promote(&self, current: &Credential) -> Result<(), TargetError> {
        let _ = current;
        Ok(())
    }

    /// Takes an existing credential — made outside Tokenward — under management: checks, at the
    /// target, that `secret` works and is a credential this target rotates (an IAM key of its
    /// user, acting as that user), and returns it with its handle and expiry. `handle` is the
    /// credential's public id when the secret alone does not name it (an access key id); a target
    /// that learns it from the secret (an OpenBao token's accessor) checks it when given. The
    /// default refuses: a target whose credentials only Tokenward makes.
    async fn adopt(&self, handle: Option<&str>, secret: SecretString) -> Result<Credential, TargetError> {
        let _ = (handle, secret);
        Err(TargetError::new(
            "adopt",
            format!("a {} target cannot adopt a credential made elsewhere", self.kind()),
        ))
    }

    /// Asks the provider whether it still accepts `credential` (revoked a moment ago): one
    /// authenticated call made with it (AWS: STS `GetCallerIdentity`; OpenBao: `lookup-self`).
    /// The rotator probes each revoked credential until the provider refuses it several times in
    /// a row, and audits the confirmation. The default says it cannot probe.
    async fn probe(&self, credential: &Credential) -> Result<Probe, TargetError> {
        let _ = credential;
        Ok(Probe::Unsupported)
    }

    /// Whether [`RotationTarget::probe`] can answer (the default: no). A target that says no
    /// adds nothing to a rotation: no pending proof is recorded.
    fn can_probe(&self) -> bool {
        false
    }

    /// When `credential` was last used, as the provider reports it (AWS: `GetAccessKeyLastUsed`;
    /// our tokens: the store's last use). A previous credential whose quiet period
    /// ([`Rotator::set_quiet_period`](crate::Rotator::set_quiet_period)) has passed since its
    /// last use is retired before its overlap ends. The default does not know.
    async fn last_used(&self, credential: &Credential) -> Result<Usage, TargetError> {
        let _ = credential;
        Ok(Usage::Unknown)
    }

    /// Proves `pending` works against the target. An error rolls the rotation back.
    async fn test(&self, pending: &Credential) -> Result<(), TargetError>;

    /// Revokes `credential` at the target. Revoking one already revoked or expired is not an error.
    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError>;

    /// Ends the target's session when its user is done with it (a command ends, a daemon stops):
    /// an OpenBao AppRole login token is revoked, not left alive until its TTL. The default does
    /// nothing. The target may be used again afterwards (it logs in again).
    async fn close(&self) -> Result<(), TargetError> {
        Ok(())
    }
}
