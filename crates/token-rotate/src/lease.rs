//! A lease in the store, so that with several service instances only one runs a given rotation.
//! It is a compare-and-swap on a metadata key (transactional on every backend, PostgreSQL
//! included), with an expiry so a crashed holder does not block the others for long.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use token_store::{SecretStore, StoreError};

use crate::error::Result;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Held {
    holder: String,
    until_ms: i64,
}

fn key(name: &str) -> String {
    format!("tokenward/lease/{name}")
}

/// Takes the lease on `name` for `holder` until `now + ttl` if it is free, expired, or already
/// `holder`'s. Returns whether `holder` holds it.
pub(crate) async fn acquire(
    secrets: &SecretStore,
    name: &str,
    holder: &str,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<bool> {
    let raw = secrets.backend().meta(&key(name)).await?;
    if let Some(bytes) = &raw
        && let Ok(h) = serde_json::from_slice::<Held>(bytes)
        && h.holder != holder
        && h.until_ms > now.timestamp_millis()
    {
        return Ok(false);
    }
    let next =
        serde_json::to_vec(&Held { holder: holder.to_owned(), until_ms: (now + ttl).timestamp_millis() })
            .unwrap_or_default();
    match secrets.backend().set_meta(&key(name), raw.as_deref(), &next).await {
        Ok(()) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Gives the lease back (if still `holder`'s).
pub(crate) async fn release(secrets: &SecretStore, name: &str, holder: &str) -> Result<()> {
    let raw = secrets.backend().meta(&key(name)).await?;
    if let Some(bytes) = &raw
        && let Ok(h) = serde_json::from_slice::<Held>(bytes)
        && h.holder == holder
    {
        let next = serde_json::to_vec(&Held { holder: String::new(), until_ms: 0 }).unwrap_or_default();
        match secrets.backend().set_meta(&key(name), raw.as_deref(), &next).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
