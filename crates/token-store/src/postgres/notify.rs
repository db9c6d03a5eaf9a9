//! Changes announced with `NOTIFY` by every instance sharing the database: revocations and issues
//! — the PostgreSQL [`RevocationFeed`].

use async_trait::async_trait;
use chrono::DateTime;
use token_core::TokenId;
use tokio_postgres::NoTls;

use super::{ISSUE_CHANNEL, PostgresBackend, REVOCATION_CHANNEL, pg};
use crate::error::Result;
use crate::follow::{Change, RevocationFeed};

impl PostgresBackend {
    /// Listens for revocations from every instance, on a connection of its own. The feed yields
    /// revoked ids as their transactions commit; it ends if the connection is lost (a cache then
    /// falls back to polling the backend).
    pub(super) async fn listen(&self) -> Result<NotifyFeed> {
        use std::future::poll_fn;
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(pg)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = poll_fn(|cx| connection.poll_message(cx)).await {
                match msg {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) if n.channel() == ISSUE_CHANNEL => {
                        match n.payload().parse::<TokenId>() {
                            Ok(id) => {
                                if tx.send(Change::Issued(id)).is_err() {
                                    return;
                                }
                            }
                            Err(_) => malformed(n.channel(), n.payload()),
                        }
                    }
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        for item in n.payload().split(',') {
                            let Some((id, at)) = item.split_once('@') else {
                                malformed(n.channel(), item);
                                continue;
                            };
                            let (Ok(id), Ok(at)) = (id.parse::<TokenId>(), at.parse::<i64>()) else {
                                malformed(n.channel(), item);
                                continue;
                            };
                            let Some(at) = DateTime::from_timestamp_millis(at) else {
                                malformed(n.channel(), item);
                                continue;
                            };
                            if tx.send(Change::Revoked(id, at)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        // The feed ends; its follower listens again and catches up.
                        tracing::warn!(error = %e, "the revocation feed's connection failed");
                        return;
                    }
                }
            }
            tracing::debug!("the revocation feed's connection closed");
        });
        client
            .batch_execute(&format!("LISTEN {REVOCATION_CHANNEL}; LISTEN {ISSUE_CHANNEL}"))
            .await
            .map_err(pg)?;
        tracing::debug!("listening for revocations");
        Ok(NotifyFeed { rx, _client: client })
    }
}

/// A notice nobody can apply (written by something other than Tokenward): skipped. Its length
/// is logged, not its text (whoever wrote it may have written anything).
fn malformed(channel: &str, payload: &str) {
    tracing::warn!(channel, len = payload.len(), "a malformed change notice was skipped");
}

/// Revocations (and issues) announced by any instance sharing the database.
pub(super) struct NotifyFeed {
    rx: tokio::sync::mpsc::UnboundedReceiver<Change>,
    _client: tokio_postgres::Client,
}

#[async_trait]
impl RevocationFeed for NotifyFeed {
    async fn recv_change(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for NotifyFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").field("backend", &"postgres").finish_non_exhaustive()
    }
}
