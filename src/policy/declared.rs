//! The declared credentials, built: each credential's target (and destinations) in a deployment,
//! and the credentials put under the handle's rotation.

use token_store::SecretName;

#[cfg(feature = "vault")]
use super::credential::OpenBaoConnect;
#[cfg(feature = "aws")]
use super::credential::{AwsAccess, DEFAULT_DELETION_GRACE};
use super::credential::{CredentialSpec, DestinationSpec, TargetSpec};
use super::duration::parse_duration;
use super::schema::PolicyFile;
use crate::deployment::Tokenward;
use crate::error::{Error, Result};

impl Tokenward {
    /// The rotation target a declared credential names, in this deployment. An OpenBao target's
    /// token is read (audited) from the store secret its `token_secret` names.
    pub async fn declared_target(
        &self,
        file: &PolicyFile,
        spec: &CredentialSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::RotationTarget>> {
        let target = self.declared_target_only(file, spec).await?;
        // Its overlap, from its next promotion on, whoever rotates it through this handle.
        let overlap =
            spec.overlap_spec().map_err(|e| Error::Config(format!("credential {}: {e}", spec.name)))?;
        self.rotator().set_overlap(&spec.secret_name()?, overlap);
        if spec.deploy.is_empty() {
            return Ok(target);
        }
        let mut destinations: Vec<std::sync::Arc<dyn token_rotate::Destination>> = Vec::new();
        for d in &spec.deploy {
            destinations.push(self.declared_destination(spec, d).await?);
        }
        Ok(std::sync::Arc::new(token_rotate::Deployed::new(target, destinations)))
    }

    async fn declared_destination(
        &self,
        spec: &CredentialSpec,
        d: &DestinationSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::Destination>> {
        let what =
            |e: &dyn std::fmt::Display| Error::Config(format!("credential {}: deploy: {e}", spec.name));
        match d {
            #[cfg(feature = "aws")]
            DestinationSpec::AwsSecretsManager { secret_id, access, format } => {
                let client = self.aws_client(access).await?;
                let format = if format == "aws-access-key" {
                    token_rotate::ValueFormat::aws_access_key()
                } else {
                    token_rotate::ValueFormat::Secret
                };
                Ok(std::sync::Arc::new(token_rotate::SecretsManagerDestination::new(
                    client, secret_id, format,
                )))
            }
            #[cfg(not(feature = "aws"))]
            DestinationSpec::AwsSecretsManager { .. } => {
                Err(what(&"Secrets Manager needs the `aws` feature"))
            }
            #[cfg(feature = "vault")]
            DestinationSpec::OpenbaoKv { address, connect, mount, path, field, handle_field } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                let mut d = token_rotate::OpenBaoKvDestination::new(bao, mount, path, field);
                if let Some(h) = handle_field {
                    d = d.handle_field(h);
                }
                Ok(std::sync::Arc::new(d))
            }
            #[cfg(not(feature = "vault"))]
            DestinationSpec::OpenbaoKv { .. } => Err(what(&"OpenBao destinations need the `vault` feature")),
        }
    }

    /// An AWS client for `access`: its key id, with the secret key read (audited) from the store.
    #[cfg(feature = "aws")]
    async fn aws_client(&self, access: &AwsAccess) -> Result<token_rotate::AwsClient> {
        use token_store::secrecy::{ExposeSecret as _, SecretString};
        let (region, endpoint, id, secret_name) = (
            access.region.as_str(),
            access.endpoint.as_deref(),
            access.admin_access_key_id.as_str(),
            access.admin_secret_key_secret.as_str(),
        );
        let secret = self
            .read_current(&SecretName::new(secret_name)?)
            .await?
            .ok_or_else(|| Error::Config(format!("{secret_name}: no such secret in the store")))?;
        let secret = std::str::from_utf8(secret.expose_secret())
            .map_err(|_| Error::Config(format!("{secret_name}: not UTF-8 text")))?
            .trim()
            .to_owned();
        let creds = token_rotate::AwsCredentials::new(id.to_owned(), SecretString::from(secret));
        let mut client = token_rotate::AwsClient::new(region.to_owned(), creds);
        if let Some(e) = endpoint {
            client = client.endpoint(e.to_owned());
        }
        Ok(client)
    }

    async fn declared_target_only(
        &self,
        file: &PolicyFile,
        spec: &CredentialSpec,
    ) -> Result<std::sync::Arc<dyn token_rotate::RotationTarget>> {
        let what = |e: &dyn std::fmt::Display| Error::Config(format!("credential {}: {e}", spec.name));
        match &spec.target {
            TargetSpec::TokenwardToken { principal, purpose, scopes, ttl } => {
                let p =
                    file.principal(principal).ok_or_else(|| what(&format!("no principal {principal}")))?;
                let request =
                    token_core::IssueRequest::parse(purpose, &scopes.join(" "), parse_duration(ttl)?)
                        .map_err(|e| what(&e))?;
                Ok(self.token_target(p, request))
            }
            #[cfg(feature = "vault")]
            TargetSpec::OpenbaoToken { address, connect, policies, ttl, display_name } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                let policies: Vec<&str> = policies.iter().map(String::as_str).collect();
                Ok(std::sync::Arc::new(token_rotate::OpenBaoTokenTarget::new(
                    bao,
                    &policies,
                    parse_duration(ttl)?,
                    display_name,
                )))
            }
            #[cfg(feature = "vault")]
            TargetSpec::OpenbaoKv { address, connect, mount, path, field, lifetime } => {
                let bao = self.openbao(address, connect).await.map_err(|e| what(&e))?;
                Ok(std::sync::Arc::new(token_rotate::OpenBaoKvTarget::new(
                    bao,
                    mount,
                    path,
                    field,
                    parse_duration(lifetime)?,
                )))
            }
            #[cfg(not(feature = "vault"))]
            TargetSpec::OpenbaoToken { .. } | TargetSpec::OpenbaoKv { .. } => {
                Err(what(&"OpenBao targets need the `vault` feature"))
            }
            #[cfg(feature = "aws")]
            TargetSpec::AwsIamAccessKey { user, access, lifetime, .. } => {
                let grace =
                    spec.deletion_grace_spec().map_err(|e| what(&e))?.unwrap_or(DEFAULT_DELETION_GRACE);
                let client = self.aws_client(access).await?;
                Ok(std::sync::Arc::new(
                    token_rotate::AwsAccessKeyTarget::new(client, user)
                        .lifetime(parse_duration(lifetime)?)
                        .deletion_grace(grace)
                        .clock(self.clock().clone()),
                ))
            }
            #[cfg(not(feature = "aws"))]
            TargetSpec::AwsIamAccessKey { .. } => Err(what(&"AWS targets need the `aws` feature")),
        }
    }

    #[cfg(feature = "vault")]
    async fn openbao(&self, address: &str, connect: &OpenBaoConnect) -> Result<token_rotate::OpenBao> {
        use token_store::secrecy::{ExposeSecret as _, SecretString};
        let secret_text = |name: &str| {
            let name = name.to_owned();
            async move {
                let value = self
                    .read_current(&SecretName::new(&name)?)
                    .await?
                    .ok_or_else(|| Error::Config(format!("{name}: no such secret in the store")))?;
                let text = std::str::from_utf8(value.expose_secret())
                    .map_err(|_| Error::Config(format!("{name}: not UTF-8 text")))?;
                Ok::<_, Error>(SecretString::from(text.trim().to_owned()))
            }
        };
        let mut b = token_rotate::OpenBao::builder(address);
        if let Some(ca) = &connect.ca_file {
            let pem = std::fs::read(ca).map_err(|e| Error::Config(format!("ca_file {ca}: {e}")))?;
            b = b.ca_pem(pem);
        }
        b = match (&connect.token_secret, &connect.approle_role_id, &connect.approle_secret_id_secret) {
            (Some(t), _, _) => b.token(secret_text(t).await?),
            (None, Some(role), Some(secret)) => b.approle(role, secret_text(secret).await?),
            _ => {
                return Err(Error::Config(
                    "give token_secret, or approle_role_id with approle_secret_id_secret".into(),
                ));
            }
        };
        b.build().map_err(|e| Error::Rotate(e.into()))
    }

    /// Puts the file's credentials under this handle: each becomes known to the leak response
    /// (a leaked current credential is replaced, not only revoked), and with `schedule`, those
    /// with a schedule run under the scheduler. Returns the names.
    pub async fn manage_declared(&self, file: &PolicyFile, schedule: bool) -> Result<Vec<SecretName>> {
        let mut names = Vec::new();
        for spec in &file.credentials {
            let name = spec.secret_name()?;
            let target = self.declared_target(file, spec).await?;
            match spec.schedule_spec()? {
                Some(s) if schedule => self.schedule(name.clone(), target, s),
                _ => self.watch(&name, &target),
            }
            names.push(name);
        }
        Ok(names)
    }
}
