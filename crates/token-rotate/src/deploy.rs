//! Deploying a credential where non-Rust consumers read it: [`Destination`]s (AWS Secrets Manager
//! with feature `aws`, OpenBao KV v2 with feature `vault`, or a tool author's) and [`Deployed`], a
//! target that deploys to several of them — all or none: a failed deploy withdraws what the others
//! staged, and the rotation rolls back.

use std::sync::Arc;

use async_trait::async_trait;

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

/// A place consumers read the current credential from, with its own staging.
#[async_trait]
pub trait Destination: Send + Sync {
    /// A short name for errors and logs (`aws-secretsmanager:billing/key`).
    fn name(&self) -> String;

    /// Stages `pending` (not yet what consumers read where the manager has staging labels).
    async fn stage(&self, pending: &Credential) -> Result<(), TargetError>;

    /// Makes `current` what consumers read (idempotent: it may run more than once).
    async fn promote(&self, current: &Credential) -> Result<(), TargetError>;

    /// Withdraws a staged `credential` that will not be promoted (idempotent; nothing to do for
    /// one that was never staged or is no longer pending).
    async fn withdraw(&self, credential: &Credential) -> Result<(), TargetError>;

    /// Ends the destination's session (see [`RotationTarget::close`]). The default does nothing.
    async fn close(&self) -> Result<(), TargetError> {
        Ok(())
    }
}

/// A target whose credentials are also deployed to `destinations`: `deploy` stages at each in
/// order (a failure withdraws those already staged, and fails the deploy: the rotation rolls
/// back and revokes the pending credential), `promote` promotes at each, `revoke` withdraws a
/// still-staged credential everywhere before revoking it at the target.
pub struct Deployed {
    target: Arc<dyn RotationTarget>,
    destinations: Vec<Arc<dyn Destination>>,
}

impl std::fmt::Debug for Deployed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.destinations.iter().map(|d| d.name()).collect();
        f.debug_struct("Deployed").field("target", &self.target.kind()).field("destinations", &names).finish()
    }
}

impl Deployed {
    /// `target`, deployed to `destinations`.
    pub fn new(target: Arc<dyn RotationTarget>, destinations: Vec<Arc<dyn Destination>>) -> Self {
        Self { target, destinations }
    }
}

#[async_trait]
impl RotationTarget for Deployed {
    fn kind(&self) -> &str {
        self.target.kind()
    }

    fn handle_names_credential(&self) -> bool {
        self.target.handle_names_credential()
    }

    async fn blocked_until(
        &self,
        current: Option<&Credential>,
    ) -> Result<Option<(chrono::DateTime<chrono::Utc>, String)>, TargetError> {
        self.target.blocked_until(current).await
    }

    async fn upkeep(&self) -> Result<Option<chrono::DateTime<chrono::Utc>>, TargetError> {
        self.target.upkeep().await
    }

    async fn make_room(&self, current: Option<&Credential>) -> Result<usize, TargetError> {
        self.target.make_room(current).await
    }

    async fn create(&self, rotation: u64, current: Option<&Credential>) -> Result<Credential, TargetError> {
        self.target.create(rotation, current).await
    }

    async fn deploy(&self, pending: &Credential) -> Result<(), TargetError> {
        self.target.deploy(pending).await?;
        for (i, d) in self.destinations.iter().enumerate() {
            if let Err(e) = d.stage(pending).await {
                // The failed one too: a call that timed out may still have been carried out.
                // (Best effort here; the rollback's revoke withdraws everywhere and reports.)
                for staged in self.destinations[..=i].iter().rev() {
                    if let Err(w) = staged.withdraw(pending).await {
                        tracing::warn!(destination = %staged.name(), error = %w, "withdrawing a staged credential failed");
                    }
                }
                return Err(TargetError::new("deploy", format!("{}: {}", d.name(), e.detail)));
            }
        }
        Ok(())
    }

    async fn promote(&self, current: &Credential) -> Result<(), TargetError> {
        self.target.promote(current).await?;
        // Every destination is tried; what is left is reported destination by destination.
        let mut left = Vec::new();
        for d in &self.destinations {
            if let Err(e) = d.promote(current).await {
                left.push(format!("{}: {}", d.name(), e.detail));
            }
        }
        if left.is_empty() { Ok(()) } else { Err(TargetError::new("promote", left.join("; "))) }
    }

    async fn last_used(&self, credential: &Credential) -> Result<crate::target::Usage, TargetError> {
        self.target.last_used(credential).await
    }

    fn can_probe(&self) -> bool {
        self.target.can_probe()
    }

    async fn probe(&self, credential: &Credential) -> Result<crate::target::Probe, TargetError> {
        self.target.probe(credential).await
    }

    /// The target adopts it, then every destination takes it as current (as a promotion does).
    async fn adopt(
        &self,
        handle: Option<&str>,
        secret: secrecy::SecretString,
    ) -> Result<Credential, TargetError> {
        let adopted = self.target.adopt(handle, secret).await?;
        self.deploy(&adopted).await?;
        self.promote(&adopted).await?;
        Ok(adopted)
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        self.target.test(pending).await
    }

    async fn close(&self) -> Result<(), TargetError> {
        let mut left = Vec::new();
        for d in &self.destinations {
            if let Err(e) = d.close().await {
                left.push(format!("{}: {}", d.name(), e.detail));
            }
        }
        if let Err(e) = self.target.close().await {
            left.push(format!("{}: {}", self.target.kind(), e.detail));
        }
        if left.is_empty() { Ok(()) } else { Err(TargetError::new("close", left.join("; "))) }
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        // Revoked at the target whatever the destinations answer; every failure reported.
        let mut left = Vec::new();
        for d in &self.destinations {
            if let Err(e) = d.withdraw(credential).await {
                left.push(format!("{}: {}", d.name(), e.detail));
            }
        }
        if let Err(e) = self.target.revoke(credential).await {
            left.push(format!("{}: {}", self.target.kind(), e.detail));
        }
        if left.is_empty() { Ok(()) } else { Err(TargetError::new("revoke", left.join("; "))) }
    }
}

/// How a credential is written at a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueFormat {
    /// The secret alone.
    Secret,
    /// A JSON object with the handle and the secret under these keys (for an AWS key:
    /// `{"AccessKeyId": …, "SecretAccessKey": …}`).
    Json {
        /// The handle's key.
        handle: String,
        /// The secret's key.
        secret: String,
    },
}

impl ValueFormat {
    /// `{"AccessKeyId": handle, "SecretAccessKey": secret}`.
    pub fn aws_access_key() -> Self {
        Self::Json { handle: "AccessKeyId".into(), secret: "SecretAccessKey".into() }
    }

    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn render(&self, c: &Credential) -> zeroize::Zeroizing<String> {
        use secrecy::ExposeSecret;
        zeroize::Zeroizing::new(match self {
            ValueFormat::Secret => c.secret.expose_secret().to_owned(),
            ValueFormat::Json { handle, secret } => {
                let mut m = serde_json::Map::new();
                m.insert(handle.clone(), serde_json::Value::String(c.handle.clone()));
                m.insert(secret.clone(), serde_json::Value::String(c.secret.expose_secret().to_owned()));
                serde_json::Value::Object(m).to_string()
            }
        })
    }
}

#[cfg(feature = "aws")]
pub use self::secrets_manager::SecretsManagerDestination;

#[cfg(feature = "aws")]
mod secrets_manager {
    use async_trait::async_trait;
    use serde_json::{Value, json};
    use token_http::aws::{AwsClient, AwsError};

    use super::{Destination, ValueFormat};
    use crate::credential::Credential;
    use crate::error::TargetError;

    /// An AWS Secrets Manager secret, with the staging labels AWS's own rotation uses: a new
    /// version is put as `AWSPENDING`; promotion moves `AWSCURRENT` to it (the old version
    /// becomes `AWSPREVIOUS`, as Secrets Manager does itself); a withdrawn one loses `AWSPENDING`.
    /// A version's id is derived from the credential's handle (idempotent retries).
    #[derive(Debug)]
    pub struct SecretsManagerDestination {
        client: AwsClient,
        secret_id: String,
        format: ValueFormat,
    }

    impl SecretsManagerDestination {
        /// The secret `secret_id` (name or ARN; created on first use), written as `format`.
        pub fn new(client: AwsClient, secret_id: &str, format: ValueFormat) -> Self {
            Self { client, secret_id: secret_id.to_owned(), format }
        }

        fn version_id(c: &Credential) -> String {
            // 32 to 64 characters; the same for the same credential.
            token_http::aws::sigv4::sha256_hex(format!("tokenward:{}", c.handle).as_bytes())
        }

        /// An error naming the call and the provider's error code (or what the transport saw:
        /// no answer within the timeout, a refused connection).
        fn err(step: &'static str, action: &str, e: AwsError) -> TargetError {
            let why = match (e.code(), &e) {
                (Some(code), _) => code.to_owned(),
                (None, AwsError::Http(h)) => h.to_string(),
                (None, other) => other.to_string(),
            };
            TargetError::with_source(step, format!("{action} failed ({why})"), e)
        }

        async fn call(&self, step: &'static str, action: &str, body: Value) -> Result<Value, TargetError> {
            self.client
                .json("secretsmanager", &format!("secretsmanager.{action}"), &body)
                .await
                .map_err(|e| Self::err(step, action, e))
        }

        /// Version id → its stages.
        pub async fn stages(&self) -> Result<Vec<(String, Vec<String>)>, TargetError> {
            let body = json!({ "SecretId": self.secret_id });
            match self.client.json("secretsmanager", "secretsmanager.DescribeSecret", &body).await {
                Ok(v) => Ok(Self::stages_of(&v)),
                Err(e) => Err(Self::err("promote", "DescribeSecret", e)),
            }
        }

        fn stages_of(v: &Value) -> Vec<(String, Vec<String>)> {
            v["VersionIdsToStages"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(id, s)| {
                            (
                                id.clone(),
                                s.as_array()
                                    .into_iter()
                                    .flatten()
                                    .filter_map(|x| x.as_str().map(str::to_owned))
                                    .collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        }
    }

    #[async_trait]
    impl Destination for SecretsManagerDestination {
        fn name(&self) -> String {
            format!("aws-secretsmanager:{}", self.secret_id)
        }

        async fn stage(&self, pending: &Credential) -> Result<(), TargetError> {
            let value = self.format.render(pending);
            let token = Self::version_id(pending);
            let put = json!({
                "SecretId": self.secret_id,
                "ClientRequestToken": token,
                "SecretString": value.as_str(),
                "VersionStages": ["AWSPENDING"],
            });
            match self.client.json("secretsmanager", "secretsmanager.PutSecretValue", &put).await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("ResourceNotFoundException") => {
                    // A new secret: created with this version (current at once: there is no other).
                    let create = json!({ "Name": self.secret_id, "ClientRequestToken": token, "SecretString": value.as_str() });
                    self.call("deploy", "CreateSecret", create).await.map(|_| ())
                }
                Err(e) => Err(Self::err("deploy", "PutSecretValue", e)),
            }
        }

        async fn promote(&self, current: &Credential) -> Result<(), TargetError> {
            let id = Self::version_id(current);
            let stages = self.stages().await?;
            let old =
                stages.iter().find(|(_, s)| s.iter().any(|x| x == "AWSCURRENT")).map(|(v, _)| v.clone());
            if old.as_deref() != Some(id.as_str()) {
                let mut body = json!({ "SecretId": self.secret_id, "VersionStage": "AWSCURRENT", "MoveToVersionId": id });
                if let Some(old) = &old {
                    body["RemoveFromVersionId"] = json!(old);
                }
                self.call("promote", "UpdateSecretVersionStage", body).await?;
            }
            if stages.iter().any(|(v, s)| *v == id && s.iter().any(|x| x == "AWSPENDING")) {
                self.call(
                    "promote",
                    "UpdateSecretVersionStage",
                    json!({ "SecretId": self.secret_id, "VersionStage": "AWSPENDING", "RemoveFromVersionId": id }),
                )
                .await?;
            }
            Ok(())
        }

        async fn withdraw(&self, credential: &Credential) -> Result<(), TargetError> {
            let id = Self::version_id(credential);
            let body = json!({ "SecretId": self.secret_id });
            let stages =
                match self.client.json("secretsmanager", "secretsmanager.DescribeSecret", &body).await {
                    Ok(v) => Self::stages_of(&v),
                    // No secret: nothing staged. Anything else (a refusal, no answer) is not "nothing".
                    Err(e) if e.code() == Some("ResourceNotFoundException") => return Ok(()),
                    Err(e) => return Err(Self::err("revoke", "DescribeSecret", e)),
                };
            if stages.iter().any(|(v, s)| *v == id && s.iter().any(|x| x == "AWSPENDING")) {
                self.call(
                    "revoke",
                    "UpdateSecretVersionStage",
                    json!({ "SecretId": self.secret_id, "VersionStage": "AWSPENDING", "RemoveFromVersionId": id }),
                )
                .await?;
            }
            Ok(())
        }
    }
}
