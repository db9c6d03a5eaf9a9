//! Where a credential's rotation stands, kept in the store and moved only by compare-and-swap, so
//! a crash at any point resumes or rolls back, and two instances never both advance it.

use serde::{Deserialize, Serialize};
use token_store::SecretStore;

use crate::error::{Result, RotateError};

/// A rotation's step, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Step {
    /// No rotation in progress; no previous credential awaiting revocation.
    Idle,
    /// A credential is being created at the target (nothing recorded of it yet).
    Creating,
    /// Created and stored as version `version`, labelled `pending`.
    Created {
        /// The pending version.
        version: u64,
    },
    /// Deployed where consumers read it.
    Deployed {
        /// The pending version.
        version: u64,
    },
    /// Tested against the target.
    Tested {
        /// The pending version.
        version: u64,
    },
    /// Promoted; the previous credential (if any) is revoked once the overlap ends.
    Promoted {
        /// The previous version, labelled `previous`.
        previous: Option<u64>,
        /// When it may be revoked (Unix ms).
        revoke_after_ms: i64,
        /// Promoted in the store but not yet where consumers read it (a destination refused or
        /// did not answer): what is left. Retried by the next run; the previous credential is not
        /// revoked until it is done.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unfinished: Option<String>,
    },
    /// The pending version failed and is being withdrawn, but withdrawing it did not finish (a
    /// destination or the target refused or did not answer). The next run finishes the
    /// rollback; the rotation is never resumed from here.
    RollingBack {
        /// The pending version.
        version: u64,
        /// Why the rotation failed.
        reason: String,
    },
}

/// The order of an emergency revoke-and-replace: the operator's choice between the smallest risk
/// window and no failed consumer call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum EmergencyOrder {
    /// Revoke the leaked credential at the target first, then create, deploy, test and promote a
    /// replacement. The leaked credential stops working at once; consumers are denied until the
    /// replacement is current (one rotation's time).
    #[default]
    RevokeFirst,
    /// Create, deploy and test the replacement first, then promote it and revoke the leaked one at
    /// once. No consumer call fails; the leaked credential works for one rotation's time longer.
    ReplaceFirst,
}

impl EmergencyOrder {
    /// Its stable name (`revoke_first`, `replace_first`).
    pub fn name(self) -> &'static str {
        match self {
            Self::RevokeFirst => "revoke_first",
            Self::ReplaceFirst => "replace_first",
        }
    }
}

/// An emergency in progress, recorded before anything is done at the target, so a crash at any
/// point is finished by the next call of `rotate`, `revoke_and_replace` or the scheduler.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Emergency {
    /// The leaked version (current when the emergency was declared).
    pub leaked: u64,
    /// The chosen order.
    pub order: EmergencyOrder,
    /// Whether the leaked version has been revoked at the target.
    pub revoked: bool,
    /// When it was declared (Unix ms).
    pub declared_ms: i64,
}

/// A credential's rotation record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RotationRecord {
    /// Rotations started so far (the current one's number).
    pub rotation: u64,
    /// Where it stands.
    pub step: Step,
    /// Rotations promoted so far.
    pub promoted: u64,
    /// Rotations rolled back so far.
    pub rolled_back: u64,
    /// When the current credential was promoted (Unix ms).
    #[serde(default)]
    pub promoted_at_ms: Option<i64>,
    /// An emergency revoke-and-replace in progress: while set, overlaps are zero and every step
    /// runs at once, until a replacement is current and the leaked version is revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emergency: Option<Emergency>,
    /// Revocations not yet confirmed at the provider: probed until it refuses the credential
    /// (see [`Rotator::confirm_revocations`](crate::Rotator::confirm_revocations)).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unconfirmed: Vec<Unconfirmed>,
}

/// A revoked credential whose refusal by its provider is not yet confirmed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Unconfirmed {
    /// Its version in the store.
    pub version: u64,
    /// Its handle (an access key id, an accessor).
    pub handle: String,
    /// When it was revoked (Unix ms).
    pub revoked_at_ms: i64,
    /// Refusals in a row so far.
    #[serde(default)]
    pub refusals: u32,
    /// Probes so far.
    #[serde(default)]
    pub probes: u32,
}

impl Default for RotationRecord {
    fn default() -> Self {
        Self {
            rotation: 0,
            step: Step::Idle,
            promoted: 0,
            rolled_back: 0,
            promoted_at_ms: None,
            emergency: None,
            unconfirmed: Vec::new(),
        }
    }
}

pub(crate) fn key(name: &str) -> String {
    format!("tokenward/rotation/{name}")
}

/// The record and its stored bytes (the expectation of the next compare-and-swap). The record is
/// authenticated metadata: one edited outside Tokenward is refused as corrupted.
pub(crate) async fn load(secrets: &SecretStore, name: &str) -> Result<(RotationRecord, Option<Vec<u8>>)> {
    match secrets.sealed_meta(&key(name)).await {
        Ok(None) => Ok((RotationRecord::default(), None)),
        Ok(Some((value, raw))) => {
            let rec = serde_json::from_slice(&value)
                .map_err(|e| RotateError::Corrupted { name: name.to_owned(), detail: e.to_string() })?;
            Ok((rec, Some(raw)))
        }
        Err(token_store::StoreError::Corrupted { detail, .. }) => {
            Err(RotateError::Corrupted { name: name.to_owned(), detail: format!("rotation record {detail}") })
        }
        Err(e) => Err(e.into()),
    }
}

/// Moves the record from `expect` to `next`; another writer in between makes it [`RotateError::Busy`].
pub(crate) async fn cas(
    secrets: &SecretStore,
    name: &str,
    expect: &Option<Vec<u8>>,
    next: &RotationRecord,
) -> Result<Option<Vec<u8>>> {
    let bytes = serde_json::to_vec(next)
        .map_err(|e| RotateError::Corrupted { name: name.to_owned(), detail: e.to_string() })?;
    match secrets.set_sealed_meta(&key(name), expect.as_deref(), &bytes).await {
        Ok(raw) => Ok(Some(raw)),
        Err(token_store::StoreError::Conflict(_)) => Err(RotateError::Busy(name.to_owned())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Stored rotation records: never a panic on any input; whatever parses writes back the same.
        #[test]
        fn records_parse_strictly(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(r) = serde_json::from_slice::<RotationRecord>(&bytes) {
                let again: RotationRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
                prop_assert_eq!(again, r);
            }
        }

        #[test]
        fn records_round_trip(rotation in any::<u64>(), v in any::<u64>(), ms in any::<i64>(), which in 0..8u8) {
            let step = match which {
                0 => Step::Idle,
                1 => Step::Creating,
                2 => Step::Created { version: v },
                3 => Step::Deployed { version: v },
                4 => Step::Tested { version: v },
                5 => Step::Promoted { previous: Some(v), revoke_after_ms: ms, unfinished: None },
                6 => Step::RollingBack { version: v, reason: format!("r{ms}") },
                _ => Step::Promoted { previous: None, revoke_after_ms: ms, unfinished: Some(format!("u{v}")) },
            };
            let emergency = (which % 2 == 0).then_some(Emergency {
                leaked: v,
                order: if ms % 2 == 0 { EmergencyOrder::RevokeFirst } else { EmergencyOrder::ReplaceFirst },
                revoked: rotation % 2 == 0,
                declared_ms: ms,
            });
            let r = RotationRecord { rotation, step, promoted: v / 2, rolled_back: v / 3, promoted_at_ms: Some(ms), emergency, unconfirmed: Vec::new() };
            let again: RotationRecord = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
            prop_assert_eq!(again, r);
        }
    }
}
