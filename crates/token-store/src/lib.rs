//! # token-store
//!
//! Storage for Tokenward: a small async [`Backend`] trait (token records, versioned secrets with
//! staging labels and compare-and-swap, metadata), envelope encryption at rest ([`SecretStore`]:
//! AES-256-GCM per version, data keys wrapped by a key-encryption key), and [`KeyProvider`]s
//! (a passphrase through Argon2id, a raw 256-bit key from a file or the environment).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), token_store::StoreError> {
//! use std::sync::Arc;
//! use token_store::*;
//! use token_store::secrecy::{ExposeSecret, SecretString};
//!
//! let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
//! let pass = SecretString::from("correct horse battery staple");
//! let store = SecretStore::open_with_passphrase(backend, &pass, None).await?;
//! let name = SecretName::new("billing-api/aws-key")?;
//! let v = store.put(&name, b"AKIA...").await?;
//! store.update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }]).await?;
//! let (_, secret) = store.get_labeled(&name, Label::Current).await?.expect("labelled");
//! assert_eq!(secret.expose_secret().as_slice(), b"AKIA...");
//! # Ok(()) }
//! ```
//!
//! Backends see only sealed bytes. Plaintext exists only in `secrecy` boxes, zeroized on drop.

#![deny(missing_docs)]

pub mod backend;
pub mod cache;
mod encoding;
mod envelope;
mod error;
mod follow;
mod integrity;
pub mod keys;
#[cfg(any(feature = "openbao-transit", feature = "aws-kms"))]
mod kms;
mod memory;
mod model;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
mod table;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;

pub use backend::Backend;
pub use error::{BackendError, KeyProviderError, Result, StoreError};
pub use follow::{Change, Followed, RevocationFeed};
pub use keys::{KeyProvider, LocalKek};
pub use memory::MemoryBackend;
pub use model::{Label, LabelChange, Labels, SecretName, TokenQuery, TokenRow};
#[cfg(feature = "postgres")]
pub use postgres::PostgresBackend;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteBackend;
pub use store::{Migration, SecretStore, secret_text};
pub use tokens::{ListedToken, TokenService};

/// Names the store reserves for itself: its own sealed keys and key ids, the metadata it keeps,
/// and PostgreSQL's `NOTIFY` channels.
pub mod reserved {
    #[cfg(feature = "postgres")]
    pub use crate::postgres::{ISSUE_CHANNEL, REVOCATION_CHANNEL};
    pub use crate::store::{
        AUDIT_BINDING_META, DIGEST_KEY_SECRET, KEK_MOVE_META, PASSPHRASE_KEK_ID, RECORD_KEY_SECRET,
    };
}

pub use secrecy;
