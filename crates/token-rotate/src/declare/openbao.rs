//! `openbao-token` and `openbao-kv`: an OpenBao / Vault token, a field of a KV v2 secret (as a
//! target, or as a destination written at promotion), and how each reaches its server.

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

/// How a declared OpenBao target reaches the server and authenticates: a CA to trust, and a
/// token or an AppRole, each kept as a secret in the store (named here, never written here).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBaoConnect {
    /// The store secret holding the token to act with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret: Option<String>,
    /// AppRole instead of a token: the role id, and the store secret holding the secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_role_id: Option<String>,
    /// The store secret holding the AppRole secret id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approle_secret_id_secret: Option<String>,
    /// A PEM file with the CA to trust (instead of the platform's roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl OpenBaoConnect {
    /// The secret names are valid, and there is a token or an AppRole (not both, not half of one).
    pub fn check(&self, what: &str) -> Result<(), DeclareError> {
        let names: Vec<&String> =
            [&self.token_secret, &self.approle_secret_id_secret].into_iter().flatten().collect();
        for n in names {
            SecretName::new(n).map_err(|e| DeclareError::new(format!("{what}: {n}: {e}")))?;
        }
        match (&self.token_secret, &self.approle_role_id, &self.approle_secret_id_secret) {
            (Some(_), None, None) | (None, Some(_), Some(_)) => Ok(()),
            _ => Err(DeclareError::new(format!(
                "{what}: give token_secret, or approle_role_id with approle_secret_id_secret"
            ))),
        }
    }

    /// A client for the server at `address`, logged in with the token or AppRole read (audited)
    /// from the store.
    #[cfg(feature = "vault")]
    pub async fn client<C: BuildContext + ?Sized>(
        &self,
        address: &str,
        ctx: &C,
    ) -> Result<crate::openbao::OpenBao, C::Error> {
        let mut b = crate::openbao::OpenBao::builder(address);
        if let Some(ca) = &self.ca_file {
            let pem = std::fs::read(ca).map_err(|e| ctx.config(format!("ca_file {ca}: {e}")))?;
            b = b.ca_pem(pem);
        }
        b = match (&self.token_secret, &self.approle_role_id, &self.approle_secret_id_secret) {
            (Some(t), _, _) => b.token(ctx.secret_text(t).await?),
            (None, Some(role), Some(secret)) => b.approle(role, ctx.secret_text(secret).await?),
            _ => {
                return Err(
                    ctx.config("give token_secret, or approle_role_id with approle_secret_id_secret".into())
                );
            }
        };
        Ok(b.build().map_err(crate::TargetError::from)?)
    }
}

fn default_display() -> String {
    "tokenward".into()
}

/// An OpenBao / Vault token (`openbao-token`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBaoTokenSpec {
    /// The server's address (`https://…`; plain `http://` to loopback only).
    pub address: String,
    /// How to reach and authenticate to it.
    #[serde(flatten)]
    pub connect: OpenBaoConnect,
    /// The policies new tokens get.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Their lifetime.
    pub ttl: Duration,
    /// Their display name.
    #[serde(default = "default_display")]
    pub display_name: String,
}

#[async_trait]
impl TargetDeclaration for OpenBaoTokenSpec {
    const KIND: &'static str = "openbao-token";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.ttl.get()?;
        self.connect.check(ctx.what())
    }

    fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        self.ttl.get()
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn RotationTarget>, C::Error> {
        #[cfg(feature = "vault")]
        {
            let what = ctx.what();
            let bao = self
                .connect
                .client(&self.address, ctx)
                .await
                .map_err(|e| ctx.config(format!("{what}: {e}")))?;
            let policies: Vec<&str> = self.policies.iter().map(String::as_str).collect();
            Ok(Arc::new(crate::openbao::OpenBaoTokenTarget::new(
                bao,
                &policies,
                self.ttl.get()?,
                &self.display_name,
            )))
        }
        #[cfg(not(feature = "vault"))]
        Err(ctx.config(format!("{}: OpenBao targets need the `vault` feature", ctx.what())))
    }
}

/// A field of an OpenBao / Vault KV v2 secret: one spec for the `openbao-kv` target (which has a
/// `lifetime`) and the `openbao-kv` destination (which may have a `handle_field`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OpenBaoKvSpec {
    /// The server's address (`https://…`; plain `http://` to loopback only).
    pub address: String,
    /// How to reach and authenticate to it.
    #[serde(flatten)]
    pub connect: OpenBaoConnect,
    /// The KV v2 mount.
    pub mount: String,
    /// The secret's path.
    pub path: String,
    /// The field the secret goes in (the field rotated, for a target).
    pub field: String,
    /// A destination only: a field for the handle too (an access key id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle_field: Option<String>,
    /// A target only: how long a value lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<Duration>,
}

/// The `openbao-kv` target: an [`OpenBaoKvSpec`] with a `lifetime` and no `handle_field`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OpenBaoKvSpec", into = "OpenBaoKvSpec")]
pub struct OpenBaoKvTargetSpec(OpenBaoKvSpec);

impl OpenBaoKvTargetSpec {
    /// The secret and field it rotates.
    pub fn spec(&self) -> &OpenBaoKvSpec {
        &self.0
    }
}

impl TryFrom<OpenBaoKvSpec> for OpenBaoKvTargetSpec {
    type Error = String;
    fn try_from(spec: OpenBaoKvSpec) -> Result<Self, String> {
        if spec.lifetime.is_none() {
            return Err("missing field `lifetime`".into());
        }
        if spec.handle_field.is_some() {
            return Err("unknown field `handle_field`: a KV target has none (a destination may)".into());
        }
        Ok(Self(spec))
    }
}

impl From<OpenBaoKvTargetSpec> for OpenBaoKvSpec {
    fn from(t: OpenBaoKvTargetSpec) -> Self {
        t.0
    }
}

#[async_trait]
impl TargetDeclaration for OpenBaoKvTargetSpec {
    const KIND: &'static str = "openbao-kv";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.lifetime()?;
        self.0.connect.check(ctx.what())
    }

    fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        // Always present: `try_from` refuses a target without one.
        self.0.lifetime.as_ref().map_or_else(|| super::parse_duration(""), Duration::get)
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn RotationTarget>, C::Error> {
        #[cfg(feature = "vault")]
        {
            let (s, what) = (&self.0, ctx.what());
            let bao =
                s.connect.client(&s.address, ctx).await.map_err(|e| ctx.config(format!("{what}: {e}")))?;
            let lifetime = self.lifetime()?;
            Ok(Arc::new(crate::openbao::OpenBaoKvTarget::new(bao, &s.mount, &s.path, &s.field, lifetime)))
        }
        #[cfg(not(feature = "vault"))]
        Err(ctx.config(format!("{}: OpenBao targets need the `vault` feature", ctx.what())))
    }
}

/// The `openbao-kv` destination: an [`OpenBaoKvSpec`] without a `lifetime`, staged beside the
/// secret and written at promotion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "OpenBaoKvSpec", into = "OpenBaoKvSpec")]
pub struct OpenBaoKvDestinationSpec(OpenBaoKvSpec);

impl OpenBaoKvDestinationSpec {
    /// The secret and fields it writes.
    pub fn spec(&self) -> &OpenBaoKvSpec {
        &self.0
    }
}

#[async_trait]
impl DestinationDeclaration for OpenBaoKvDestinationSpec {
    const KIND: &'static str = "openbao-kv";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        self.0.connect.check(ctx.what())
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn Destination>, C::Error> {
        #[cfg(feature = "vault")]
        {
            let (s, what) = (&self.0, ctx.what());
            let bao =
                s.connect.client(&s.address, ctx).await.map_err(|e| ctx.config(format!("{what}: {e}")))?;
            let mut d = crate::openbao::OpenBaoKvDestination::new(bao, &s.mount, &s.path, &s.field);
            if let Some(h) = &s.handle_field {
                d = d.handle_field(h);
            }
            Ok(Arc::new(d))
        }
        #[cfg(not(feature = "vault"))]
        Err(ctx.config(format!("{}: OpenBao destinations need the `vault` feature", ctx.what())))
    }
}

impl TryFrom<OpenBaoKvSpec> for OpenBaoKvDestinationSpec {
    type Error = String;
    fn try_from(spec: OpenBaoKvSpec) -> Result<Self, String> {
        if spec.lifetime.is_some() {
            return Err("unknown field `lifetime`: a KV destination has none (a target does)".into());
        }
        Ok(Self(spec))
    }
}

impl From<OpenBaoKvDestinationSpec> for OpenBaoKvSpec {
    fn from(d: OpenBaoKvDestinationSpec) -> Self {
        d.0
    }
}
