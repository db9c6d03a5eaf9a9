//! Rotation targets and destinations as a policy file declares them: each kind owns its
//! declaration (a serde type: the settings of its table, `kind` aside), checks it, and builds
//! itself from it in a deployment.
//!
//! A kind is a type implementing [`TargetDeclaration`]: its [`TargetDeclaration::KIND`] (the
//! `kind = "…"` it is declared under), its fields (serde, `deny_unknown_fields`; durations as
//! [`Duration`], parsed once when the file is read), [`TargetDeclaration::check`] for what
//! deserializing cannot tell (store secret names, a declared principal), and
//! [`TargetDeclaration::build`], which gets what it needs from the deployment through a
//! [`BuildContext`] (store secrets, the clock, the token service). This crate knows no file
//! format: the front door (`tokenward::policy`) reads the TOML table into the kind's type and
//! registers kinds, one line each, without knowing their fields.
//!
//! The kinds here: `tokenward-token` ([`TokenwardTokenSpec`]), `openbao-token`
//! ([`OpenBaoTokenSpec`]), `openbao-kv` ([`OpenBaoKvTargetSpec`]), `aws-iam-access-key`
//! ([`AwsIamAccessKeySpec`]); and the destinations `aws-secrets-manager`
//! ([`SecretsManagerSpec`]) and `openbao-kv` ([`OpenBaoKvDestinationSpec`]). An OpenBao KV secret
//! is one spec ([`OpenBaoKvSpec`]) for the target and the destination. Every declaration parses
//! without the `vault` or `aws` feature; building one whose feature is off is an error naming it.

use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use token_core::{Policy, Principal, clocks::Clock};
use token_store::TokenService;

use crate::error::TargetError;
use crate::target::RotationTarget;

mod aws;
mod duration;
mod openbao;
mod tokens;

pub use aws::{AwsAccess, AwsIamAccessKeySpec, SecretsManagerSpec};
pub use duration::{Duration, DurationError, format_duration, parse_duration, parse_duration_or_zero};
pub use openbao::{
    OpenBaoConnect, OpenBaoKvDestinationSpec, OpenBaoKvSpec, OpenBaoKvTargetSpec, OpenBaoTokenSpec,
};
pub use tokens::TokenwardTokenSpec;

/// The attribute [`TargetDeclaration`] and [`BuildContext`] are implemented with.
pub use async_trait::async_trait;

/// A declaration that does not make sense: the whole message, naming the credential (from
/// [`CheckContext::what`]) where it is about one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DeclareError(String);

impl DeclareError {
    /// A declaration error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl From<DurationError> for DeclareError {
    fn from(e: DurationError) -> Self {
        Self(e.to_string())
    }
}

/// What a declaration is checked against: the file it is in.
pub trait CheckContext {
    /// What is being checked, for messages (`credential billing/api-token`).
    fn what(&self) -> &str;
    /// A principal the file declares, with its roles.
    fn principal(&self, name: &str) -> Option<Principal>;
    /// The issuing policy the file describes.
    fn policy(&self) -> &Policy;
}

/// What a declaration is built with: the deployment it rotates in.
#[async_trait]
pub trait BuildContext: Send + Sync {
    /// The deployment's error.
    type Error: From<DurationError> + From<TargetError> + fmt::Display + Send;
    /// What is being built, for messages (`credential billing/api-token`).
    fn what(&self) -> &str;
    /// A configuration error saying `message` (the declaration cannot be built as written).
    fn config(&self, message: String) -> Self::Error;
    /// A store secret, by name, as trimmed UTF-8 text (an audited read); an error if there is none.
    async fn secret_text(&self, name: &str) -> Result<SecretString, Self::Error>;
    /// The deployment's clock.
    fn clock(&self) -> Arc<dyn Clock>;
    /// The deployment's token service (our own tokens rotate in it).
    fn tokens(&self) -> Arc<TokenService>;
    /// A principal the policy file declares, with its roles.
    fn principal(&self, name: &str) -> Option<Principal>;
    /// How long a revoked credential is kept before it is deleted: the credential's declared
    /// grace, or the default (for kinds with [`TargetDeclaration::deletion_grace`]).
    fn deletion_grace(&self) -> Result<TimeDelta, Self::Error>;
}

/// A rotation target kind, as declared: its settings, checked, and built into a target.
#[async_trait]
pub trait TargetDeclaration: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static {
    /// The `kind` it is declared under (`openbao-token`).
    const KIND: &'static str;

    /// Checks what deserializing could not (names of store secrets, a declared principal).
    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError>;

    /// How long one credential lives (a token's TTL, a key's nominal lifetime).
    fn lifetime(&self) -> Result<TimeDelta, DurationError>;

    /// Whether a revoked credential of this kind is kept (deactivated) for a grace before it is
    /// deleted: `None` (the default) when it is revoked at once; `Some` when it is kept, with the
    /// grace the target's own table gives, if any (older files wrote it there).
    fn deletion_grace(&self) -> Option<Option<&Duration>> {
        None
    }

    /// The target, in the deployment `ctx` describes.
    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn RotationTarget>, C::Error>;
}
