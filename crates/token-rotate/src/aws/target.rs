//! The [`RotationTarget`] steps: make room, create beside the current key, test with STS, revoke.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use token_core::clocks::Clock;
use token_http::aws::xml;
use token_http::aws::{AwsCredentials, KeyLastUse};

use super::iam::{iam_err, key_tag};
use super::{AwsAccessKeyTarget, CREATING_TAG, IAM_VERSION, KEY_TAG_PREFIX, LOG_TARGET};
use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::{Probe, RotationTarget, Usage};

#[async_trait]
impl RotationTarget for AwsAccessKeyTarget {
    fn kind(&self) -> &str {
        "aws-iam-access-key"
    }

    async fn blocked_until(
        &self,
        current: Option<&Credential>,
    ) -> Result<Option<(DateTime<Utc>, String)>, TargetError> {
        let keys = self.list_keys("create").await?;
        let tags = self.user_tags("create").await?;
        let beside = self.beside(&keys, &tags, current.map(|c| c.handle.as_str())).await?;
        if !beside.unknown.is_empty() {
            return Ok(None); // `create` refuses, naming them
        }
        Ok(self.blocked(&keys, &beside))
    }

    async fn upkeep(&self) -> Result<Option<DateTime<Utc>>, TargetError> {
        let now = self.clock.now();
        let (n, next) = self.purge_at(now).await?;
        if n > 0 {
            tracing::info!(target: LOG_TARGET, user = %self.user, deleted = n, "access keys deleted after their deletion grace");
        }
        // Asked again when the next grace ends, and at least every minute (or every grace, when
        // shorter): another process may deactivate a key meanwhile.
        let recheck = self.grace.clamp(TimeDelta::seconds(1), TimeDelta::seconds(60));
        let mut at = (now + recheck).timestamp_millis();
        if let Some(t) = next {
            at = at.min(t);
        }
        Ok(DateTime::from_timestamp_millis(at))
    }

    async fn make_room(&self, current: Option<&Credential>) -> Result<usize, TargetError> {
        let keys = self.list_keys("make_room").await?;
        let tags = self.user_tags("make_room").await?;
        let beside = self.beside(&keys, &tags, current.map(|c| c.handle.as_str())).await?;
        if !beside.unknown.is_empty() || self.blocked(&keys, &beside).is_none() {
            return Ok(0); // nothing in the way (or a key not ours, which `create` names and refuses)
        }
        // Ours and deactivated already: a leaked key outweighs the grace.
        for (k, _) in &beside.kept {
            tracing::warn!(target: LOG_TARGET, user = %self.user, key = %k.id, "emergency: a deactivated key of ours is deleted before its grace ends");
            self.delete("make_room", k).await?;
        }
        Ok(beside.kept.len())
    }

    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        let keys = self.list_keys("create").await?;
        let tags = self.user_tags("create").await?;
        let current_id = current.map(|c| c.handle.as_str());
        // Every other key is attributed before anything is touched: one that is not Tokenward's
        // stops the rotation, and nothing is deactivated or deleted.
        let beside = self.beside(&keys, &tags, current_id).await?;
        if !beside.unknown.is_empty() {
            return Err(TargetError::new(
                "create",
                format!(
                    "IAM user {} holds access key(s) {} that Tokenward did not create and will not deactivate or \
                     delete: remove them (or move their users to the rotated key) before rotating",
                    self.user,
                    beside.unknown.join(", ")
                ),
            ));
        }
        // A deactivated key in its deletion grace is never deleted early: if it takes the second
        // slot, nothing is made (the rotator asks `blocked_until` first; this is the backstop).
        if let Some((_, why)) = self.blocked(&keys, &beside) {
            return Err(TargetError::new("create", why));
        }
        // The current credential is the store's, so ours: attributed if it is not yet (a key
        // rotated in before attribution tags existed).
        if let Some(id) = current_id
            && keys.iter().any(|k| k.id == id)
            && !tags.contains_key(&key_tag(id))
        {
            self.tag("create", &key_tag(id), format!("made:{}", self.clock.now().timestamp_millis())).await?;
        }
        // Ours, not current, and free to go: a key made for a rotation that never finished, the
        // orphan of a crashed create, a deactivated key whose grace is over (IAM allows two keys,
        // so they make room). Deactivated first when still active, then deleted.
        for k in beside.remove {
            self.delete("create", k).await?;
        }
        // Tags of keys that no longer exist.
        for t in tags.keys().filter(|t| t.starts_with(KEY_TAG_PREFIX)) {
            if !keys.iter().any(|k| key_tag(&k.id) == *t) {
                self.untag("create", t).await?;
            }
        }
        let now = Utc::now();
        self.tag("create", CREATING_TAG, format!("{rotation}:{}", now.timestamp_millis())).await?;
        let x = self
            .admin
            .query("iam", IAM_VERSION, "CreateAccessKey", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err("create", e))?;
        let (Some(id), Some(secret)) = (xml::tag(&x, "AccessKeyId"), xml::tag(&x, "SecretAccessKey")) else {
            return Err(TargetError::new("create", "IAM's CreateAccessKey answer lacks the key"));
        };
        tracing::info!(target: LOG_TARGET, user = %self.user, key = %id, "created an access key");
        // Attributed, then the marker cleared: a key made by hand from now on is nobody's orphan.
        // (If either call fails the key is still returned: its secret exists only here. A key
        // left untagged with the marker still set is recognised as this create's orphan.)
        let attributed = self.tag("create", &key_tag(&id), format!("made:{}", now.timestamp_millis())).await;
        let cleared = match &attributed {
            Ok(()) => self.untag("create", CREATING_TAG).await,
            Err(_) => Ok(()),
        };
        if let Err(e) = attributed.and(cleared) {
            tracing::warn!(target: LOG_TARGET, user = %self.user, key = %id, error = %e, "tagging the new access key failed");
        }
        Ok(Credential::new(id, SecretString::from(secret), now + self.lifetime))
    }

    /// An access key of this target's user, given by its id: active at IAM and acting as the
    /// user (STS `GetCallerIdentity`, signed with it). It expires, for the rotation, one
    /// `lifetime` from now. Tagged as Tokenward's at the next rotation, as a current key is.
    async fn adopt(&self, handle: Option<&str>, secret: SecretString) -> Result<Credential, TargetError> {
        let Some(id) = handle.filter(|h| !h.is_empty()) else {
            return Err(TargetError::new("adopt", "give the access key id (the secret does not name it)"));
        };
        // An access key id is 16–128 letters and digits (`AKIA…`); a secret key has `/` or `+`
        // and is 40 long: a swapped argument is refused without being repeated anywhere.
        if !(16..=128).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) || id.len() == 40
        {
            return Err(TargetError::new(
                "adopt",
                "--handle is not an access key id (was the secret key given there?)",
            ));
        }
        if id == self.admin.access_key_id() {
            return Err(TargetError::new("adopt", "that is the admin key this target acts with"));
        }
        let keys = self.keys().await.map_err(|e| TargetError::new("adopt", e.to_string()))?;
        match keys.iter().find(|k| k.id == id) {
            None => {
                return Err(TargetError::new(
                    "adopt",
                    format!("access key {id} is not one of IAM user {}'s", self.user),
                ));
            }
            Some(k) if !k.active => {
                return Err(TargetError::new("adopt", format!("access key {id} is inactive")));
            }
            Some(_) => {}
        }
        let cred = Credential::new(id, secret, self.clock.now() + self.lifetime);
        self.test(&cred).await.map_err(|e| TargetError::new("adopt", e.detail))?;
        Ok(cred)
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        // Active at IAM (an inactive key is revoked, whatever a local API still accepts) …
        let keys = self.keys().await.map_err(|e| TargetError::new("test", e.to_string()))?;
        if !keys.iter().any(|k| k.id == pending.handle && k.active) {
            return Err(TargetError::new("test", format!("access key {} is not active", pending.handle)));
        }
        // … and it signs: STS says who it is, and that is the user.
        let client =
            self.admin.with_credentials(AwsCredentials::new(pending.handle.clone(), pending.secret.clone()));
        let deadline = std::time::Instant::now() + self.test_patience;
        let mut wait = Duration::from_millis(100);
        loop {
            match client.caller_arn().await {
                Ok(arn)
                    if arn.ends_with(&format!(":user/{}", self.user))
                        || arn.ends_with(&format!("/{}", self.user)) =>
                {
                    return Ok(());
                }
                Ok(arn) => {
                    return Err(TargetError::new(
                        "test",
                        format!("the new key acts as {arn}, not user {}", self.user),
                    ));
                }
                // A key not yet visible to STS: IAM is eventually consistent.
                Err(e)
                    if e.code() == Some("InvalidClientTokenId") && std::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    return Err(TargetError::with_source(
                        "test",
                        "STS GetCallerIdentity with the new key failed",
                        e,
                    ));
                }
            }
        }
    }

    /// IAM's `GetAccessKeyLastUsed`: the date, and the service and region of the last use.
    async fn last_used(&self, credential: &Credential) -> Result<Usage, TargetError> {
        Ok(
            match self
                .admin
                .access_key_last_used(&credential.handle)
                .await
                .map_err(|e| iam_err("last_used", e))?
            {
                KeyLastUse::At { at, service, region } => {
                    let by: Vec<String> = [service, region].into_iter().flatten().collect();
                    Usage::At { at, by: (!by.is_empty()).then(|| by.join(" ")) }
                }
                _ => Usage::Never,
            },
        )
    }

    fn handle_names_credential(&self) -> bool {
        true
    }

    fn can_probe(&self) -> bool {
        true
    }

    async fn probe(&self, credential: &Credential) -> Result<Probe, TargetError> {
        let client = self
            .admin
            .with_credentials(AwsCredentials::new(credential.handle.clone(), credential.secret.clone()));
        Ok(match client.caller_arn().await {
            Ok(_) => Probe::Accepted,
            Err(e) if e.code() == Some("InvalidClientTokenId") => Probe::Refused,
            Err(e) => Probe::Unknown(e.to_string()),
        })
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        // The credential is the store's: Tokenward's own key. Deactivated, and the time recorded
        // on the user (the deletion grace runs from it, whichever process deletes it).
        if self.deactivate("revoke", &credential.handle).await? {
            let tags = self.user_tags("revoke").await?;
            let tag = key_tag(&credential.handle);
            if !tags.get(&tag).is_some_and(|v| v.starts_with("inactive:")) {
                self.tag("revoke", &tag, format!("inactive:{}", self.clock.now().timestamp_millis())).await?;
            }
        }
        // The second step for earlier keys whose grace has passed.
        self.purge_inactive().await?;
        Ok(())
    }
}
