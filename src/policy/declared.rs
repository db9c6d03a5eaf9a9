//! The declared credentials, built: each credential's target (and destinations) in a deployment,
//! and the credentials put under the handle's rotation. The kinds build themselves
//! ([`token_rotate::declare`]); this gives them the deployment, as a [`BuildContext`].

use std::sync::Arc;

use token_core::Principal;
use token_core::chrono::TimeDelta;
use token_rotate::declare::BuildContext;
use token_rotate::{Deployed, Destination, RotationTarget};
use token_store::secrecy::{ExposeSecret as _, SecretString};
use token_store::{SecretName, TokenService};

use super::credential::{CredentialSpec, DEFAULT_DELETION_GRACE};
use super::schema::PolicyFile;
use crate::deployment::Tokenward;
use crate::error::{Error, Result};

/// One credential's declaration, built in a deployment.
pub(crate) struct Deploying<'a> {
    tw: &'a Tokenward,
    file: &'a PolicyFile,
    spec: &'a CredentialSpec,
    /// `credential NAME`, or `credential NAME: deploy` for its destinations.
    what: String,
}

#[token_rotate::declare::async_trait]
impl BuildContext for Deploying<'_> {
    type Error = Error;

    fn what(&self) -> &str {
        &self.what
    }

    fn config(&self, message: String) -> Error {
        Error::Config(message)
    }

    async fn secret_text(&self, name: &str) -> Result<SecretString> {
        let value = self
            .tw
            .read_current(&SecretName::new(name)?)
            .await?
            .ok_or_else(|| Error::Config(format!("{name}: no such secret in the store")))?;
        let text = std::str::from_utf8(value.expose_secret())
            .map_err(|_| Error::Config(format!("{name}: not UTF-8 text")))?;
        Ok(SecretString::from(text.trim().to_owned()))
    }

    fn clock(&self) -> Arc<dyn token_core::clocks::Clock> {
        self.tw.clock().clone()
    }

    fn tokens(&self) -> Arc<TokenService> {
        self.tw.tokens().clone()
    }

    fn principal(&self, name: &str) -> Option<Principal> {
        self.file.principal(name)
    }

    fn deletion_grace(&self) -> Result<TimeDelta> {
        let grace =
            self.spec.deletion_grace_spec().map_err(|e| Error::Config(format!("{}: {e}", self.what)))?;
        Ok(grace.unwrap_or(DEFAULT_DELETION_GRACE))
    }
}

impl Tokenward {
    /// What a declared credential's kind reads its access with (the store's secrets, the clock),
    /// in this deployment.
    #[cfg(any(feature = "aws", feature = "vault"))]
    pub(crate) fn deploying<'a>(&'a self, file: &'a PolicyFile, spec: &'a CredentialSpec) -> Deploying<'a> {
        Deploying { tw: self, file, spec, what: format!("credential {}", spec.name) }
    }

    /// The rotation target a declared credential names, in this deployment. An OpenBao target's
    /// token is read (audited) from the store secret its `token_secret` names.
    pub async fn declared_target(
        &self,
        file: &PolicyFile,
        spec: &CredentialSpec,
    ) -> Result<Arc<dyn RotationTarget>> {
        let what = format!("credential {}", spec.name);
        let target = spec.target.build(&Deploying { tw: self, file, spec, what: what.clone() }).await?;
        // Its overlap, from its next promotion on, whoever rotates it through this handle.
        let overlap = spec.overlap_spec().map_err(|e| Error::Config(format!("{what}: {e}")))?;
        self.rotator().set_overlap(&spec.secret_name()?, overlap);
        let quiet = spec.quiet_period_spec().map_err(|e| Error::Config(format!("{what}: {e}")))?;
        self.rotator().set_quiet_period(&spec.secret_name()?, quiet);
        if spec.deploy.is_empty() {
            return Ok(target);
        }
        let ctx = Deploying { tw: self, file, spec, what: format!("{what}: deploy") };
        let mut destinations: Vec<Arc<dyn Destination>> = Vec::new();
        for d in &spec.deploy {
            destinations.push(d.build(&ctx).await?);
        }
        Ok(Arc::new(Deployed::new(target, destinations)))
    }

    /// Puts the file's credentials under this handle: each becomes known to the leak response
    /// (a leaked current credential is replaced in its declared `emergency` order, not only
    /// revoked), and with `schedule`, those
    /// with a schedule run under the scheduler. Returns the names.
    pub async fn manage_declared(&self, file: &PolicyFile, schedule: bool) -> Result<Vec<SecretName>> {
        let mut names = Vec::new();
        for spec in &file.credentials {
            let name = spec.secret_name()?;
            let target = self.declared_target(file, spec).await?;
            self.set_emergency_order(&name, spec.emergency_order()?);
            match spec.schedule_spec()? {
                Some(s) if schedule => self.schedule(name.clone(), target, s),
                _ => self.watch(&name, &target),
            }
            names.push(name);
        }
        Ok(names)
    }
}
