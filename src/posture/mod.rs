//! The posture model: what an auditor asks about a deployment's tokens and credentials — tokens
//! about to end, unused, over-broad or shared; how many are bound to a key versus bearer; revoked
//! tokens still presented; rotations overdue or rolled back; an audit log that fails
//! verification; records edited outside Tokenward.
//!
//! [`analyze`] is a pure function of what was read (the token records, the chain-checked audit
//! log, each declared credential's rotation state) to a plain, serializable [`Posture`]; reading
//! and rendering are the caller's (the `tokenward` command renders it as text, JSON and HTML; its
//! daemon and `alerts check` send the findings that call for a person, [`FindingKind::is_alert`]).
//!
//! [`inventory`] looks wider: every credential the deployment can see at its providers (AWS IAM
//! access keys) and in its store, managed by Tokenward or not.

mod analyze;
pub mod inventory;
mod model;

pub use analyze::analyze;
pub use model::{
    AuditStatus, Binding, CredentialAge, CredentialState, Finding, FindingKind, HISTORY_STEPS, Inputs,
    Posture, RotationStep, SCHEMA, Severity, Thresholds, TokenLabel, TokenPoint, Volume, read_audit,
    status_name,
};
