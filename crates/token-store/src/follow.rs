//! Following other instances: what a backend implements so revocations (and issues) made by any
//! instance sharing it reach this one at once, without waiting for the periodic catch-up.
//!
//! A backend that can announce changes (PostgreSQL, with `LISTEN`/`NOTIFY`) returns a
//! [`RevocationFeed`] from [`Backend::listen_revocations`](crate::Backend::listen_revocations);
//! one that cannot keeps the default, [`StoreError::NoRevocationFeed`](crate::StoreError), and
//! its instances learn of each other's changes through the catch-up alone
//! ([`TokenService::catch_up_at`](crate::TokenService::catch_up_at), which reads what the
//! [`Backend`](crate::Backend) stored since). [`TokenService::follow_revocations`](crate::TokenService::follow_revocations)
//! applies a feed to a cache.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use token_core::TokenId;

/// A change to the token set announced by an instance sharing the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A token (tree member) was revoked at this time.
    Revoked(TokenId, DateTime<Utc>),
    /// A token was issued.
    Issued(TokenId),
}

/// Revocations (and issues) announced by any instance sharing a backend, as their transactions
/// commit. It ends (`None`) when the backend's connection is lost: the follower then listens
/// again and catches up on what it missed meanwhile.
#[async_trait]
pub trait RevocationFeed: Send + std::fmt::Debug {
    /// The next change, revocation or issue; `None` once the feed has ended.
    async fn recv_change(&mut self) -> Option<Change>;

    /// The next revoked id with its revocation time (issues are skipped); `None` once the feed
    /// has ended.
    async fn recv(&mut self) -> Option<(TokenId, DateTime<Utc>)> {
        loop {
            if let Change::Revoked(id, at) = self.recv_change().await? {
                return Some((id, at));
            }
        }
    }
}

/// What [`TokenService::follow_revocations`](crate::TokenService::follow_revocations) did with a
/// feed, once it has ended. Unreadable and refused records are also logged as they happen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Followed {
    /// Revocations applied to the cache.
    pub revocations: u64,
    /// Tokens announced as issued and loaded into the cache.
    pub loaded: u64,
    /// Tokens announced as issued whose record could not be read (left to the next catch-up).
    pub unreadable: u64,
    /// Tokens announced as issued whose record fails its integrity check (refused, not loaded:
    /// a record edited outside Tokenward).
    pub refused: u64,
}
