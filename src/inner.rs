//! What one deployment is made of, shared by the [`crate::Tokenward`] handle's clones, the
//! builder that opens it and the upkeep tasks that keep it up. Below all three, so that none of
//! them imports another to reach it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use token_audit::{Actor, AuditWriter, Auditor, CheckpointSigner, SubjectKey};
use token_core::clocks::Clock;
use token_rotate::{RotationTarget, Rotator, TokioScheduler};
use token_store::{Backend, SecretName, SecretStore, TokenService};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Everything one deployment is made of (shared by the handle's clones and its upkeep tasks).
pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) secrets: Arc<SecretStore>,
    pub(crate) tokens: Arc<TokenService>,
    pub(crate) rotator: Arc<Rotator>,
    pub(crate) scheduler: Arc<TokioScheduler>,
    pub(crate) writer: Option<Arc<AuditWriter>>,
    pub(crate) auditor: Option<Auditor>,
    pub(crate) subject_key: Option<SubjectKey>,
    /// Allowed verifications counted per interval (`VerifyAuditMode::Summarized`).
    pub(crate) summary: Option<token_audit::summary::VerificationSummary>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) signer: Option<(Arc<CheckpointSigner>, String)>,
    /// Who this handle records as the actor of the entries it writes itself.
    pub(crate) actor: Actor,
    /// Credentials rotated through this handle: upkeep revokes their previous versions when the
    /// overlap ends, and finishes an emergency a crash interrupted.
    pub(crate) watched: Mutex<HashMap<String, Watched>>,
    /// The emergency order a leak of each credential is answered in (absent: revoke first).
    pub(crate) emergency_orders: Mutex<HashMap<String, token_rotate::EmergencyOrder>>,
    /// Every target the handle was given: closed at shutdown (an OpenBao AppRole login token is
    /// revoked, not left alive until its TTL).
    pub(crate) opened: Mutex<Vec<Arc<dyn RotationTarget>>>,
    pub(crate) tasks: Mutex<Option<Tasks>>,
    /// What an explicit migration did when this handle opened (`TokenwardBuilder::migrate`).
    pub(crate) migration: Option<token_store::Migration>,
    /// The store's binding to its audit log, and the witness (with an audit log).
    pub(crate) guard: Option<Arc<crate::guard::Guard>>,
    /// The OIDC issuers this handle trusts for exchanges ([`crate::Tokenward::federate`]).
    #[cfg(feature = "federation")]
    pub(crate) federations: crate::federation::trusted::Federations,
}

/// A credential rotated through the handle, and its target.
pub(crate) type Watched = (SecretName, Arc<dyn RotationTarget>);

/// The upkeep tasks and the signal that stops them.
pub(crate) struct Tasks {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) handles: Vec<JoinHandle<()>>,
}
