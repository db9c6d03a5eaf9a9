//! AWS IAM access keys as a rotation target (feature `aws`), following AWS's own guidance: a
//! second key is created beside the current one (IAM allows two), tested by signing an STS
//! `GetCallerIdentity` with it and checking the ARN, promoted, and the previous key revoked in two
//! steps — deactivated after the overlap, deleted once a further grace has passed since (by the
//! deployment's upkeep, [`RotationTarget::upkeep`](crate::RotationTarget::upkeep), or a later
//! rotation; never early: a rotation that finds the second key slot held by a key in its grace
//! waits, see [`RotationTarget::blocked_until`](crate::RotationTarget::blocked_until)).
//!
//! The handle is the access key id (public: it names the key, it cannot sign); the secret is the
//! secret access key. Calls go through `token_http::aws` (SigV4, rustls on ring): its client,
//! credentials and error are re-exported here, beside [`SecretsManagerDestination`], which deploys
//! a rotated credential into AWS Secrets Manager.
//!
//! This module holds the target and how it is made; `iam` is the IAM calls and the tags
//! Tokenward keeps on the user, `grace` whose keys are there and when an inactive one may go,
//! `target` the [`RotationTarget`](crate::RotationTarget) steps.

mod grace;
mod iam;
mod target;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use token_core::{clocks::Clock, clocks::SystemClock};
pub use token_http::aws::{AwsClient, AwsCredentials, AwsError};

pub use crate::deploy::SecretsManagerDestination;

/// The target of this module's log lines, whichever file writes them: what an operator filters
/// on (`TOKENWARD_LOG=token_rotate::aws=info`) stays put when the code moves.
const LOG_TARGET: &str = "token_rotate::aws";

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
}
