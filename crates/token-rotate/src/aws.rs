//! AWS IAM access keys as a rotation target (feature `aws`), following AWS's own guidance: a
//! second key is created beside the current one (IAM allows two), tested by signing an STS
//! `GetCallerIdentity` with it and checking the ARN, promoted, and the previous key revoked in two
//! steps — deactivated after the overlap, deleted once a further grace has passed since (by the
//! deployment's upkeep, [`RotationTarget::upkeep`], or a later rotation; never early: a rotation
//! that finds the second key slot held by a key in its grace waits, see
//! [`RotationTarget::blocked_until`]).
//!
//! The handle is the access key id (public: it names the key, it cannot sign); the secret is the
//! secret access key. Calls go through `token_http::aws` (SigV4, rustls on ring): its client,
//! credentials and error are re-exported here, beside [`SecretsManagerDestination`], which deploys
//! a rotated credential into AWS Secrets Manager.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use secrecy::SecretString;
use token_core::{clocks::Clock, clocks::SystemClock};
use token_http::aws::xml;
pub use token_http::aws::{AwsClient, AwsCredentials, AwsError};

pub use crate::deploy::SecretsManagerDestination;

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

const IAM_VERSION: &str = "2010-05-08";
/// The user tag that marks a key creation in progress: `<rotation>:<unix ms>`. Set just before
/// `CreateAccessKey` and cleared once the new key carries its own tag, so it is present only while
/// a create runs or after one crashed between the two calls.
const CREATING_TAG: &str = "tokenward:creating";
/// The user tag that attributes a key to Tokenward: `tokenward:key:<access key id>` =
/// `made:<unix ms>` (created by Tokenward) or `inactive:<unix ms>` (deactivated by Tokenward then).
const KEY_TAG_PREFIX: &str = "tokenward:key:";
/// A key made by a create that crashed before tagging it is recognised only if IAM dates it within
/// this long after the creating marker (`CreateAccessKey` follows the marker at once) and it was
/// never used (its secret was lost with the crash).
const ORPHAN_WINDOW_MS: i64 = 60_000;

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
pub struct AwsAccessKeyTarget {
    admin: AwsClient,
    user: String,
    lifetime: TimeDelta,
    grace: TimeDelta,
    test_patience: Duration,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for AwsAccessKeyTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsAccessKeyTarget")
            .field("admin", &self.admin)
            .field("user", &self.user)
            .field("lifetime", &self.lifetime)
            .field("grace", &self.grace)
            .field("test_patience", &self.test_patience)
            .finish_non_exhaustive()
    }
}

/// Who a key belongs to, as far as Tokenward can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    /// Tagged as Tokenward's; deactivated by Tokenward at this time (Unix ms), if it was.
    Ours { inactive_since: Option<i64> },
    /// Made by a create of ours that crashed before tagging it (see [`ORPHAN_WINDOW_MS`]).
    Orphan,
    /// Not Tokenward's: never deactivated or deleted, and a rotation refuses while it exists.
    Unknown,
}

fn iam_err(step: &'static str, e: AwsError) -> TargetError {
    let what = match e.code() {
        Some(code) => format!("IAM call failed ({code})"),
        None => "IAM call failed".to_owned(),
    };
    TargetError::with_source(step, what, e)
}

fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

fn key_tag(id: &str) -> String {
    format!("{KEY_TAG_PREFIX}{id}")
}

impl AwsAccessKeyTarget {
    /// The keys of IAM user `user`, managed with `admin`'s credentials (which need
    /// `iam:ListAccessKeys`, `CreateAccessKey`, `UpdateAccessKey`, `DeleteAccessKey`,
    /// `GetAccessKeyLastUsed`, `TagUser`, `UntagUser`, `ListUserTags` on the user). Defaults: a
    /// key is rotated within 90 days (its nominal lifetime: IAM keys do not expire), deleted 1
    /// hour after it is deactivated, tested for up to 15 s (new keys take a moment to reach STS).
    ///
    /// Every key Tokenward creates is tagged on the user (`tokenward:key:<id>`); a key without
    /// that tag (other than the current credential, which the store holds) is never deactivated
    /// or deleted, and `create` refuses while one exists, naming it.
    pub fn new(admin: AwsClient, user: &str) -> Self {
        Self {
            admin,
            user: user.to_owned(),
            lifetime: TimeDelta::days(90),
            grace: TimeDelta::hours(1),
            test_patience: Duration::from_secs(15),
            clock: Arc::new(SystemClock),
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

    /// The clock deactivation times and the deletion grace are read from (the system's by
    /// default). A key's creation time is IAM's, compared with the real time.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The user's keys.
    pub async fn keys(&self) -> Result<Vec<AccessKeyInfo>, TargetError> {
        self.list_keys("create").await
    }

    async fn list_keys(&self, step: &'static str) -> Result<Vec<AccessKeyInfo>, TargetError> {
        let x = self
            .admin
            .query("iam", IAM_VERSION, "ListAccessKeys", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err(step, e))?;
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

    /// The user's tags.
    async fn user_tags(&self, step: &'static str) -> Result<HashMap<String, String>, TargetError> {
        let x = self
            .admin
            .query("iam", IAM_VERSION, "ListUserTags", &[("UserName", self.user.clone())])
            .await
            .map_err(|e| iam_err(step, e))?;
        Ok(xml::blocks(&x, "member")
            .into_iter()
            .filter_map(|m| Some((xml::tag(m, "Key")?, xml::tag(m, "Value").unwrap_or_default())))
            .collect())
    }

    async fn tag(&self, step: &'static str, key: &str, value: String) -> Result<(), TargetError> {
        self.admin
            .query(
                "iam",
                IAM_VERSION,
                "TagUser",
                &[
                    ("UserName", self.user.clone()),
                    ("Tags.member.1.Key", key.to_owned()),
                    ("Tags.member.1.Value", value),
                ],
            )
            .await
            .map(|_| ())
            .map_err(|e| iam_err(step, e))
    }

    async fn untag(&self, step: &'static str, key: &str) -> Result<(), TargetError> {
        self.admin
            .query(
                "iam",
                IAM_VERSION,
                "UntagUser",
                &[("UserName", self.user.clone()), ("TagKeys.member.1", key.to_owned())],
            )
            .await
            .map(|_| ())
            .map_err(|e| iam_err(step, e))
    }

    /// Who `key` belongs to.
    fn owner(key: &AccessKeyInfo, tags: &HashMap<String, String>, last_used: Option<DateTime<Utc>>) -> Owner {
        if let Some(v) = tags.get(&key_tag(&key.id)) {
            let inactive_since = v.strip_prefix("inactive:").and_then(|ms| ms.parse().ok());
            return Owner::Ours { inactive_since };
        }
        let marker = tags.get(CREATING_TAG).and_then(|v| {
            let (_, t) = v.split_once(':')?;
            t.parse::<i64>().ok()
        });
        match (marker, key.created) {
            (Some(at_ms), Some(created))
                if (at_ms - 1_000..=at_ms + ORPHAN_WINDOW_MS).contains(&created.timestamp_millis())
                    && last_used.is_none() =>
            {
                Owner::Orphan
            }
            _ => Owner::Unknown,
        }
    }

    /// Deactivates a key of ours and records when (the deletion grace runs from then). A key
    /// deleted already is not an error.
    async fn deactivate(&self, step: &'static str, id: &str) -> Result<bool, TargetError> {
        match self
            .admin
            .query(
                "iam",
                IAM_VERSION,
                "UpdateAccessKey",
                &[
                    ("UserName", self.user.clone()),
                    ("AccessKeyId", id.to_owned()),
                    ("Status", "Inactive".to_owned()),
                ],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("NoSuchEntity") => return Ok(false),
            Err(e) => return Err(iam_err(step, e)),
        }
        tracing::info!(user = %self.user, key = id, "deactivated an access key");
        Ok(true)
    }

    /// Deletes a key of ours that is inactive (deactivated first if it is not), and its tag.
    async fn delete(&self, step: &'static str, key: &AccessKeyInfo) -> Result<(), TargetError> {
        if key.active {
            self.deactivate(step, &key.id).await?;
        }
        match self
            .admin
            .query(
                "iam",
                IAM_VERSION,
                "DeleteAccessKey",
                &[("UserName", self.user.clone()), ("AccessKeyId", key.id.clone())],
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code() == Some("NoSuchEntity") => {}
            Err(e) => return Err(iam_err(step, e)),
        }
        self.untag(step, &key_tag(&key.id)).await?;
        tracing::info!(user = %self.user, key = %key.id, "deleted an inactive access key");
        Ok(())
    }

    /// Deletes the keys Tokenward deactivated more than the deletion grace ago (and still
    /// inactive: a key reactivated by hand is left alone); returns how many.
    pub async fn purge_inactive(&self) -> Result<usize, TargetError> {
        self.purge_inactive_at(self.clock.now()).await
    }

    /// [`AwsAccessKeyTarget::purge_inactive`] at `now`.
    pub async fn purge_inactive_at(&self, now: DateTime<Utc>) -> Result<usize, TargetError> {
        Ok(self.purge_at(now).await?.0)
    }

    /// Deletes the keys whose grace is over at `now`; returns how many, and when the next one's
    /// grace ends (Unix ms).
    async fn purge_at(&self, now: DateTime<Utc>) -> Result<(usize, Option<i64>), TargetError> {
        let keys = self.list_keys("revoke").await?;
        let tags = self.user_tags("revoke").await?;
        let mut n = 0;
        let mut next: Option<i64> = None;
        for k in keys.iter().filter(|k| !k.active) {
            if let Owner::Ours { inactive_since: Some(ms) } = Self::owner(k, &tags, Some(now)) {
                let until = ms.saturating_add(self.grace.num_milliseconds());
                if now.timestamp_millis() >= until {
                    self.delete("revoke", k).await?;
                    n += 1;
                } else {
                    next = Some(next.map_or(until, |t| t.min(until)));
                }
            }
        }
        Ok((n, next))
    }

    /// The user's keys other than `current_id`, sorted: keys of ours that may go now (made for a
    /// rotation that never finished, a crashed create's orphan, a deactivated key whose grace is
    /// over), keys of ours deactivated and still in their grace (with when it ends, Unix ms), and
    /// keys that are not ours (named, with their state).
    async fn beside<'k>(
        &self,
        keys: &'k [AccessKeyInfo],
        tags: &HashMap<String, String>,
        current_id: Option<&str>,
    ) -> Result<Beside<'k>, TargetError> {
        let now_ms = self.clock.now().timestamp_millis();
        let mut out = Beside { remove: Vec::new(), kept: Vec::new(), unknown: Vec::new() };
        for k in keys.iter().filter(|k| Some(k.id.as_str()) != current_id) {
            let used = if tags.contains_key(&key_tag(&k.id)) { None } else { self.last_used(&k.id).await? };
            match Self::owner(k, tags, used) {
                Owner::Unknown => {
                    out.unknown.push(format!("{} ({})", k.id, if k.active { "active" } else { "inactive" }))
                }
                Owner::Ours { inactive_since: Some(ms) }
                    if !k.active && now_ms < ms.saturating_add(self.grace.num_milliseconds()) =>
                {
                    out.kept.push((k, ms.saturating_add(self.grace.num_milliseconds())));
                }
                _ => out.remove.push(k),
            }
        }
        Ok(out)
    }

    /// Whether a key in its grace fills IAM's second slot: until when, and why.
    fn blocked(&self, keys: &[AccessKeyInfo], b: &Beside<'_>) -> Option<(DateTime<Utc>, String)> {
        // IAM allows two keys per user: after the removable ones go, is there room for one more?
        if b.kept.is_empty() || keys.len() - b.remove.len() < 2 {
            return None;
        }
        let (key, until_ms) = b.kept.iter().min_by_key(|(_, t)| *t)?;
        let until = DateTime::from_timestamp_millis(*until_ms)?;
        Some((
            until,
            format!(
                "IAM user {} has no room for a new access key: {} was deactivated by Tokenward and is kept for its \
                 deletion grace ({}) until {} (it is not deleted early)",
                self.user,
                key.id,
                token_core::duration::format(self.grace),
                until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ))
    }
}

/// Keys beside the current one (see [`AwsAccessKeyTarget::beside`]).
struct Beside<'k> {
    remove: Vec<&'k AccessKeyInfo>,
    kept: Vec<(&'k AccessKeyInfo, i64)>,
    unknown: Vec<String>,
}

#[async_trait]
impl RotationTarget for AwsAccessKeyTarget {
    fn kind(&self) -> &str {
        "aws-iam-access-key"
    }

    /// An access key id (`AKIA…`) names its key: found alone in a leak, it is the key's.
    fn handle_names_credential(&self) -> bool {
        true
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
            tracing::info!(user = %self.user, deleted = n, "access keys deleted after their deletion grace");
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
            tracing::warn!(user = %self.user, key = %k.id, "emergency: a deactivated key of ours is deleted before its grace ends");
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
        tracing::info!(user = %self.user, key = %id, "created an access key");
        // Attributed, then the marker cleared: a key made by hand from now on is nobody's orphan.
        // (If either call fails the key is still returned: its secret exists only here. A key
        // left untagged with the marker still set is recognised as this create's orphan.)
        let attributed = self.tag("create", &key_tag(&id), format!("made:{}", now.timestamp_millis())).await;
        let cleared = match &attributed {
            Ok(()) => self.untag("create", CREATING_TAG).await,
            Err(_) => Ok(()),
        };
        if let Err(e) = attributed.and(cleared) {
            tracing::warn!(user = %self.user, key = %id, error = %e, "tagging the new access key failed");
        }
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
