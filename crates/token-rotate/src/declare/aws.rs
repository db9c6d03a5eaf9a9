//! `aws-iam-access-key` and the `aws-secrets-manager` destination, and how both reach AWS.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use token_store::SecretName;

use super::{
    BuildContext, CheckContext, DeclareError, DestinationDeclaration, Duration, DurationError, TargetDeclaration,
};
use crate::deploy::Destination;
use crate::target::RotationTarget;

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

fn default_region() -> String {
    "us-east-1".into()
}

fn default_key_lifetime() -> Duration {
    Duration::new("90d")
}

fn default_format() -> String {
    "secret".into()
}

impl AwsAccess {
    /// The secret key's store name is valid.
    pub fn check(&self, what: &str) -> Result<(), DeclareError> {
        SecretName::new(&self.admin_secret_key_secret)
            .map(|_| ())
            .map_err(|e| DeclareError::new(format!("{what}: admin_secret_key_secret: {e}")))
    }

    /// A client acting with the access key, its secret key read (audited) from the store.
    #[cfg(feature = "aws")]
    pub async fn client<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<crate::aws::AwsClient, C::Error> {
        let secret = ctx.secret_text(&self.admin_secret_key_secret).await?;
        let creds = crate::aws::AwsCredentials::new(self.admin_access_key_id.clone(), secret);
        let mut client = crate::aws::AwsClient::new(self.region.clone(), creds);
        if let Some(e) = &self.endpoint {
            client = client.endpoint(e.clone());
        }
        Ok(client)
    }
}

/// An AWS IAM user's access key (`aws-iam-access-key`): the handle is the access key id, the
/// secret the secret access key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AwsIamAccessKeySpec {
    /// The IAM user whose keys rotate.
    pub user: String,
    /// How to reach AWS, acting as whom (a key that manages the user's keys).
    #[serde(flatten)]
    pub access: AwsAccess,
    /// A key's nominal lifetime (IAM keys do not expire; the schedule rotates before it).
    #[serde(default = "default_key_lifetime")]
    pub lifetime: Duration,
    /// How long a deactivated key stays before it is deleted: the credential's
    /// `deletion_grace` (this place is still read, for files written before that field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace: Option<Duration>,
}

#[async_trait]
impl TargetDeclaration for AwsIamAccessKeySpec {
    const KIND: &'static str = "aws-iam-access-key";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.lifetime.get()?;
        self.access.check(ctx.what())
    }

    fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        self.lifetime.get()
    }

    fn deletion_grace(&self) -> Option<Option<&Duration>> {
        Some(self.deletion_grace.as_ref())
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn RotationTarget>, C::Error> {
        #[cfg(feature = "aws")]
        {
            let grace = ctx.deletion_grace()?;
            let client = self.access.client(ctx).await?;
            Ok(Arc::new(
                crate::aws::AwsAccessKeyTarget::new(client, &self.user)
                    .lifetime(self.lifetime.get()?)
                    .deletion_grace(grace)
                    .clock(ctx.clock()),
            ))
        }
        #[cfg(not(feature = "aws"))]
        Err(ctx.config(format!("{}: AWS targets need the `aws` feature", ctx.what())))
    }
}

/// An AWS Secrets Manager secret (the `aws-secrets-manager` destination), with AWSPENDING /
/// AWSCURRENT / AWSPREVIOUS.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SecretsManagerSpec {
    /// The secret's name or ARN (created on first use).
    pub secret_id: String,
    /// How to reach AWS, acting as whom.
    #[serde(flatten)]
    pub access: AwsAccess,
    /// `secret` (the secret alone, default) or `aws-access-key` (`{"AccessKeyId", "SecretAccessKey"}`).
    #[serde(default = "default_format")]
    pub format: String,
}

#[async_trait]
impl DestinationDeclaration for SecretsManagerSpec {
    const KIND: &'static str = "aws-secrets-manager";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        let what = ctx.what();
        self.access.check(what)?;
        let format = &self.format;
        if format != "secret" && format != "aws-access-key" {
            return Err(DeclareError::new(format!(
                "{what} format {format:?}: expected secret or aws-access-key"
            )));
        }
        Ok(())
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn Destination>, C::Error> {
        #[cfg(feature = "aws")]
        {
            let client = self.access.client(ctx).await?;
            let format = if self.format == "aws-access-key" {
                crate::ValueFormat::aws_access_key()
            } else {
                crate::ValueFormat::Secret
            };
            Ok(Arc::new(crate::aws::SecretsManagerDestination::new(client, &self.secret_id, format)))
        }
        #[cfg(not(feature = "aws"))]
        Err(ctx.config(format!("{}: Secrets Manager needs the `aws` feature", ctx.what())))
    }
}
