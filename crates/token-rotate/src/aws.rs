//! AWS IAM access keys as a rotation target (feature `aws`), following AWS's own guidance: a
//! second key is created beside the current one (IAM allows two), tested by signing an STS
//! `GetCallerIdentity` with it and checking the ARN, promoted, and the previous key revoked in two
//! steps — deactivated after the overlap, deleted after a further grace.
//!
//! The handle is the access key id (public: it names the key, it cannot sign); the secret is the
//! secret access key. Calls go through `token_http::aws` (SigV4, rustls on ring).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use token_http::aws::{AwsClient, AwsCredentials, AwsError, xml};

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

const IAM_VERSION: &str = "2010-05-08";
/// The user tag that marks a key creation in progress: `<rotation>:<unix ms>`. A key made after
/// it by a create that crashed before its secret was recorded is ours, useless (AWS shows a
/// secret once), and deleted on the retry.
const CREATING_TAG: &str = "tokenward:creating";

/// One of a user's access keys, as `ListAccessKeys` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AccessKeyInfo {
    /// Its id.
    pub id: String,
    /// `Active` or `Inactive`.
    pub active: bool,
    /// When it was made.
    pub created: Option<DateTime<Utc>>,
}

/// Rotates an IAM user's access keys. See the module docs.
#[derive(Debug)]
pub struct AwsAccessKeyTarget {
    admin: AwsClient,
    user: String,
    lifetime: TimeDelta,
    grace: TimeDelta,
    test_patience: Duration,
    /// Keys this target deactivated, and when (deleted once `grace` has passed).
    deactivated: Mutex<HashMap<String, DateTime<Utc>>>,
}

fn iam_err(step: &'static str, e: AwsError) -> TargetError {
    TargetError::with_source(step, "IAM call failed", e)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

impl AwsAccessKeyTarget {
    /// The keys of IAM user `user`, managed with `admin`'s credentials (which need
    /// `iam:ListAccessKeys`, `CreateAccessKey`, `UpdateAccessKey`, `DeleteAccessKey`,
    /// `GetAccessKeyLastUsed`, `TagUser`, `ListUserTags` on the user). Defaults: a key is rotated
    /// within 90 days (its nominal lifetime: IAM keys do not expire), deleted 1 hour after it is
    /// deactivated, tested for up to 15 s (new keys take a moment to reach STS).
    pub fn new(admin: AwsClient, user: &str) -> Self {
        Self {
            admin,
            user: user.to_owned(),
            lifetime: TimeDelta::days(90),
            grace: TimeDelta::hours(1),
            test_patience: Duration::from_secs(15),
            deactivated: Mutex::new(HashMap::new()),
        }
    }

    /// The nominal lifetime a key is given (the scheduler rotates before it).
    #[must_use]
    pub fn lifetime(mut self, d: TimeDelta) -> Self {
        self.lifetime = d;
        self
    }

    /// How long a deactivated key stays before it is deleted (a window to reactivate it if
    /// something still needed it).
    #[must_use]
    pub fn deletion_grace(mut self, d: TimeDelta) -> Self {
        self.grace = d;
        self
    }

    /// How long `test` keeps trying a new key before it fails (IAM is eventually consistent).
    #[must_use]
    pub fn test_patience(mut self, d: Duration) -> Self {
        self.test_patience = d;
        self
    }

    /// The user's keys.
    pub async fn keys(&self) -> Result<Vec<AccessKeyInfo>, TargetError> {
        let x = self
            .admin
            .query("iam", IAM_VERSION, "ListAccessKeys", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err("create", e))?;
        Ok(xml::blocks(&x, "member")
            .into_iter()
            .filter_map(|m| {
                Some(AccessKeyInfo {
                    id: xml::tag(m, "AccessKeyId")?,
                    active: xml::tag(m, "Status").as_deref() == Some("Active"),
                    created: xml::tag(m, "CreateDate").as_deref().and_then(parse_time),
                })
            })
            .collect())
    }

    /// When the key was last used (`GetAccessKeyLastUsed`; `None`: never, or not recorded yet).
    pub async fn last_used(&self, key_id: &str) -> Result<Option<DateTime<Utc>>, TargetError> {
        let x = self
            .admin
            .query("iam", IAM_VERSION, "GetAccessKeyLastUsed", &[("AccessKeyId", key_id.to_owned())])
            .await
            .map_err(|e| iam_err("last-used", e))?;
        Ok(xml::tag(&x, "LastUsedDate").as_deref().and_then(parse_time))
    }

    async fn delete(&self, step: &'static str, id: &str) -> Result<(), TargetError> {
        match self
            .admin
            .query(
                "iam",
                IAM_VERSION,
                "DeleteAccessKey",
                &[("UserName", self.user.clone()), ("AccessKeyId", id.to_owned())],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("NoSuchEntity") => {}
            Err(e) => return Err(iam_err(step, e)),
        }
        self.deactivated.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        tracing::info!(user = %self.user, key = id, "deleted an inactive access key");
        Ok(())
    }

    /// Deletes the keys this target deactivated more than the grace ago; returns how many.
    pub async fn purge_inactive(&self) -> Result<usize, TargetError> {
        let now = Utc::now();
        let due: Vec<String> = self
            .deactivated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, at)| now - **at >= self.grace)
            .map(|(id, _)| id.clone())
            .collect();
        let keys = self.keys().await?;
        let mut n = 0;
        for id in due {
            // Only if still inactive: a key reactivated by hand is left alone.
            if keys.iter().any(|k| k.id == id && !k.active) {
                self.delete("revoke", &id).await?;
                n += 1;
            } else {
                self.deactivated.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
            }
        }
        Ok(n)
    }

    async fn creating_marker(&self) -> Result<Option<(u64, i64)>, TargetError> {
        let x = self
            .admin
            .query("iam", IAM_VERSION, "ListUserTags", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err("create", e))?;
        Ok(xml::blocks(&x, "member").into_iter().find_map(|m| {
            (xml::tag(m, "Key").as_deref() == Some(CREATING_TAG)).then(|| {
                let v = xml::tag(m, "Value").unwrap_or_default();
                let (r, t) = v.split_once(':')?;
                Some((r.parse().ok()?, t.parse().ok()?))
            })?
        }))
    }
}

#[async_trait]
impl RotationTarget for AwsAccessKeyTarget {
    fn kind(&self) -> &str {
        "aws-iam-access-key"
    }

    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        let keys = self.keys().await?;
        let marker = self.creating_marker().await?;
        let current_id = current.map(|c| c.handle.as_str());
        let mut unknown_active = Vec::new();
        for k in keys.iter().filter(|k| Some(k.id.as_str()) != current_id) {
            let ours_orphan = match (marker, k.created) {
                // Made after a create of ours began that never returned: its secret is lost.
                (Some((_, at_ms)), Some(created)) => created.timestamp_millis() >= at_ms - 1_000,
                _ => false,
            };
            if !k.active || ours_orphan {
                // The inactive older key goes first (IAM allows two), as does our own orphan.
                self.delete("create", &k.id).await?;
            } else {
                unknown_active.push(k.id.clone());
            }
        }
        if !unknown_active.is_empty() && (current_id.is_some() || unknown_active.len() > 1) {
            return Err(TargetError::new(
                "create",
                format!(
                    "IAM user {} holds active access key(s) {} that Tokenward did not make: deactivate or delete them \
                     (or make one the current credential) before rotating",
                    self.user,
                    unknown_active.join(", ")
                ),
            ));
        }
        let now = Utc::now();
        self.admin
            .query(
                "iam",
                IAM_VERSION,
                "TagUser",
                &[
                    ("UserName", self.user.clone()),
                    ("Tags.member.1.Key", CREATING_TAG.to_owned()),
                    ("Tags.member.1.Value", format!("{rotation}:{}", now.timestamp_millis())),
                ],
            )
            .await
            .map_err(|e| iam_err("create", e))?;
        let x = self
            .admin
            .query("iam", IAM_VERSION, "CreateAccessKey", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err("create", e))?;
        let (Some(id), Some(secret)) = (xml::tag(&x, "AccessKeyId"), xml::tag(&x, "SecretAccessKey")) else {
            return Err(TargetError::new("create", "IAM's CreateAccessKey answer lacks the key"));
        };
        tracing::info!(user = %self.user, key = %id, "created an access key");
        Ok(Credential::new(id, SecretString::from(secret), now + self.lifetime))
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

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        match self
            .admin
            .query(
                "iam",
                IAM_VERSION,
                "UpdateAccessKey",
                &[
                    ("UserName", self.user.clone()),
                    ("AccessKeyId", credential.handle.clone()),
                    ("Status", "Inactive".to_owned()),
                ],
            )
            .await
        {
            Ok(_) => {
                self.deactivated
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(credential.handle.clone())
                    .or_insert_with(Utc::now);
                tracing::info!(user = %self.user, key = %credential.handle, "deactivated an access key");
            }
            Err(e) if e.code() == Some("NoSuchEntity") => {} // deleted already
            Err(e) => return Err(iam_err("revoke", e)),
        }
        // The second step for earlier keys whose grace has passed.
        self.purge_inactive().await?;
        Ok(())
    }
}
