//! The conformance kit: the behaviour every [`Backend`] must have, as one async suite a backend's
//! own tests call. It panics with a message naming the broken rule.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use std::sync::Arc;
//! use token_store::{Backend, MemoryBackend, testing};
//! testing::run_backend_suite(async || Arc::new(MemoryBackend::new()) as Arc<dyn Backend>).await;
//! # }
//! ```
//!
//! The checks, by what they check: token records (`tokens`), secret versions, labels and
//! metadata (`secrets`), the [`SecretStore`](crate::SecretStore) on the backend (`store`), and the key-provider kit
//! (`key_provider`); `fail_after` is the backend that interrupts a rotation.

// A test kit reports failures by panicking, as `assert!` does.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

mod fail_after;
mod key_provider;
mod secrets;
mod store;
mod tokens;

use std::sync::Arc;

use chrono::{DateTime, Utc};

pub use self::key_provider::run_key_provider_suite;
pub use self::secrets::{rewrap_and_meta, versions_and_labels};
pub use self::store::{envelope_through_store, kek_rotation, wrong_keys_and_tampering};
pub use self::tokens::{
    one_active_per_purpose, record_uses, records_keep_their_tags, revoke_tree, token_queries,
    tokens_round_trip,
};
use crate::backend::Backend;

/// Runs every check, each on a fresh backend from `make`.
pub async fn run_backend_suite<F>(mut make: F)
where
    F: AsyncFnMut() -> Arc<dyn Backend>,
{
    tokens_round_trip(make().await.as_ref()).await;
    one_active_per_purpose(make().await.as_ref()).await;
    token_queries(make().await.as_ref()).await;
    revoke_tree(make().await.as_ref()).await;
    record_uses(make().await.as_ref()).await;
    records_keep_their_tags(make().await.as_ref()).await;
    versions_and_labels(make().await.as_ref()).await;
    rewrap_and_meta(make().await.as_ref()).await;
    envelope_through_store(make().await).await;
    wrong_keys_and_tampering(make().await, make().await).await;
    kek_rotation(make().await).await;
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z").expect("time").with_timezone(&Utc)
}
