//! Rotation targets and deploy destinations as a policy file declares them: each kind owns its
//! declaration (a serde type: the settings of its table, `kind` aside), checks it, and builds
//! itself from it in a deployment.
//!
//! A target kind is a type implementing [`TargetDeclaration`], a destination kind one
//! implementing [`DestinationDeclaration`]: its `KIND` (the `kind = "…"` it is declared under),
//! its fields (serde, `deny_unknown_fields`; durations as [`Duration`], parsed once when the file
//! is read), `check` for what deserializing cannot tell (store secret names, a declared
//! principal), and `build`, which gets what it needs from the deployment through a
//! [`BuildContext`] (store secrets, the clock, the token service). This crate knows no file
//! format: the front door (`tokenward::policy`) reads the TOML table into the kind's type,
//! without knowing its fields, for every kind [`builtin_kinds`] hands it.
//!
//! A built-in kind is one file in `declare/` and one line in the `kinds!` list below (the file's
//! module, and the kinds it declares: each is exported from here and registered by that line).
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

use crate::deploy::Destination;
use crate::error::TargetError;
use crate::target::RotationTarget;

mod duration;

pub use aws::AwsAccess;
pub use duration::{Duration, DurationError, format_duration, parse_duration, parse_duration_or_zero};
pub use openbao::{OpenBaoConnect, OpenBaoKvSpec};

/// The built-in kinds, one line per file of `declare/`: `mod FILE { target Type, destination
/// Type, … }` declares the module, exports each kind's declaration from here, and registers it
/// (in this order, which is the order an unknown kind's error lists them in).
macro_rules! kinds {
    ($(mod $file:ident { $($role:ident $spec:ident),* $(,)? })*) => {
        $(
            mod $file;
            $(pub use $file::$spec;)*
        )*

        /// Hands every built-in kind to `registry` (the front door's), in order.
        pub fn builtin_kinds<R: Kinds>(registry: &mut R) {
            $($(registry.$role::<$spec>();)*)*
        }
    };
}

kinds! {
    mod tokens { target TokenwardTokenSpec }
    mod openbao { target OpenBaoTokenSpec, target OpenBaoKvTargetSpec, destination OpenBaoKvDestinationSpec }
    mod aws { target AwsIamAccessKeySpec, destination SecretsManagerSpec }
}

/// What kinds are registered with: [`builtin_kinds`] calls one method per kind.
pub trait Kinds {
    /// A rotation target kind.
    fn target<S: TargetDeclaration>(&mut self);
    /// A deploy destination kind.
    fn destination<S: DestinationDeclaration>(&mut self);
}

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

/// A deploy destination kind, as declared: its settings, checked, and built into a
/// [`Destination`] (`deploy = [{ kind = "…", … }]` of a credential).
#[async_trait]
pub trait DestinationDeclaration: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static {
    /// The `kind` it is declared under (`aws-secrets-manager`).
    const KIND: &'static str;

    /// Checks what deserializing could not (names of store secrets); `ctx.what()` names the
    /// deploy (`credential NAME: deploy`).
    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError>;

    /// The destination, in the deployment `ctx` describes (whose `what` names the deploy).
    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn Destination>, C::Error>;
}
