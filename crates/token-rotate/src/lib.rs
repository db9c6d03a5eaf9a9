//! # token-rotate
//!
//! Rotation that is mandatory, automated and verified, and never takes a consumer down.
//!
//! A [`RotationTarget`] (our own tokens: [`TokenwardTokenTarget`]; OpenBao tokens and KV secrets with the
//! `vault` feature; anything a tool author implements) is driven by the [`Rotator`] through
//! **create → deploy → test → promote → (after the overlap) revoke previous**. Each step is
//! recorded in the store by compare-and-swap (the `pending`/`current`/`previous` labels move in one
//! all-or-nothing swap), so a crash resumes or rolls back and there is never a second current or
//! none; a failed test rolls back and raises an audit alert. [`Rotator::revoke_and_replace`] is the
//! emergency path. A [`CurrentCredential`] gives consumers the current credential with no restart,
//! and [`Scheduler`] runs rotations on policies, one instance at a time per credential (a lease).
//! [`testing::run_target_suite`] (feature `testing`) is the conformance kit. [`declare`] holds each
//! kind's declaration (what a policy file writes for it, checked and built into the target).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use token_core::chrono::TimeDelta;
//! use token_core::*;
//! use token_core::clocks::SystemClock;
//! use token_rotate::*;
//! use token_store::*;
//!
//! let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
//! let kek = LocalKek::from_key("kek", secrecy::SecretBox::new(Box::new([7; 32])))?; // from your key provider
//! let secrets = Arc::new(SecretStore::open(backend.clone(), Arc::new(kek)).await?);
//! let policy = Policy::builder().role(Role::parse("r", "kv:app/**:read", TimeDelta::days(1))?).build()?;
//! let format = TokenFormat::new(TokenPrefix::new("tw")?);
//! let tokens = Arc::new(TokenService::open(backend, &secrets, format, policy, 1000).await?);
//! let target = TokenwardTokenTarget::new(
//!     tokens.clone(),
//!     Principal::parse("billing", ["r"])?,
//!     IssueRequest::parse("app", "kv:app/**:read", TimeDelta::hours(1))?,
//! );
//! let rotator = Rotator::new(secrets.clone(), TimeDelta::seconds(30), Arc::new(SystemClock));
//! let name = SecretName::new("billing/app-token")?;
//! assert!(matches!(rotator.rotate(&name, &target).await?, Rotation::Promoted { .. }));
//! let current = rotator.current(&name).await?.expect("promoted");
//! assert!(tokens.verifier().authenticate_at(secrecy::ExposeSecret::expose_secret(&current.secret), token_core::chrono::Utc::now()).is_allowed());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod consumer;
mod credential;
pub mod declare;
mod error;
mod lease;
#[cfg(feature = "vault")]
pub mod openbao;
mod rotator;
mod scheduler;
mod state;
mod target;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;

pub use consumer::CurrentCredential;
pub use credential::Credential;
pub use error::{Result, RotateError, TargetError};
mod deploy;
pub use deploy::{Deployed, Destination, ValueFormat};
#[cfg(feature = "aws")]
pub mod aws;
pub use rotator::{EmergencyReport, Rotation, Rotator};
pub use scheduler::{Schedule, Scheduler, SchedulerConfig, TickReport, TokioScheduler};
pub use state::{Emergency, EmergencyOrder, RotationRecord, Step};
pub use target::RotationTarget;

/// After a promotion: the previous credential's last use as its provider reports it
/// ([`retire::Usage`], what a quiet period is judged on), and the proof that a revoked credential
/// is refused ([`retire::Probe`], [`retire::ConfirmPolicy`], [`retire::Unconfirmed`]).
pub mod retire {
    pub use crate::rotator::ConfirmPolicy;
    pub use crate::state::Unconfirmed;
    pub use crate::target::{Probe, Usage};
}
pub use tokens::TokenwardTokenTarget;

pub use secrecy;

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// A stored credential's sealed plaintext.
    pub fn credential(bytes: &[u8]) -> bool {
        let b = secrecy::SecretBox::new(Box::new(bytes.to_vec()));
        crate::credential::Credential::from_sealed_plaintext("fuzz", &b).is_ok()
    }
}
