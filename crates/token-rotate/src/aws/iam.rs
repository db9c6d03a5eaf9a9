//! The IAM calls, and the tags Tokenward keeps on the user: which keys it made, and when it
//! deactivated them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use token_http::aws::xml;
use token_http::aws::{AwsError, KeyLastUse};

use super::{AccessKeyInfo, AwsAccessKeyTarget, IAM_VERSION, KEY_TAG_PREFIX, LOG_TARGET};
use crate::error::TargetError;

pub(super) fn iam_err(step: &'static str, e: AwsError) -> TargetError {
    let what = match e.code() {
        Some(code) => format!("IAM call failed ({code})"),
        None => "IAM call failed".to_owned(),
    };
    TargetError::with_source(step, what, e)
}

pub(super) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).ok().map(|t| t.with_timezone(&Utc))
}

pub(super) fn key_tag(id: &str) -> String {
    format!("{KEY_TAG_PREFIX}{id}")
}

impl AwsAccessKeyTarget {
    /// The user's keys.
    pub async fn keys(&self) -> Result<Vec<AccessKeyInfo>, TargetError> {
        self.list_keys("create").await
    }

    pub(super) async fn list_keys(&self, step: &'static str) -> Result<Vec<AccessKeyInfo>, TargetError> {
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
        // Read strictly: an answer it cannot read is an error, never taken for a key nobody used
        // (that would let a crashed create's orphan check claim it).
        match self.admin.access_key_last_used(key_id).await.map_err(|e| iam_err("last-used", e))? {
            KeyLastUse::At { at, .. } => Ok(Some(at)),
            _ => Ok(None),
        }
    }

    /// The user's tags.
    pub(super) async fn user_tags(&self, step: &'static str) -> Result<HashMap<String, String>, TargetError> {
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

    pub(super) async fn tag(&self, step: &'static str, key: &str, value: String) -> Result<(), TargetError> {
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

    pub(super) async fn untag(&self, step: &'static str, key: &str) -> Result<(), TargetError> {
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

    /// Deactivates a key of ours and records when (the deletion grace runs from then). A key
    /// deleted already is not an error.
    pub(super) async fn deactivate(&self, step: &'static str, id: &str) -> Result<bool, TargetError> {
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
        tracing::info!(target: LOG_TARGET, user = %self.user, key = id, "deactivated an access key");
        Ok(true)
    }

    /// Deletes a key of ours that is inactive (deactivated first if it is not), and its tag.
    pub(super) async fn delete(&self, step: &'static str, key: &AccessKeyInfo) -> Result<(), TargetError> {
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
        tracing::info!(target: LOG_TARGET, user = %self.user, key = %key.id, "deleted an inactive access key");
        Ok(())
    }
}
