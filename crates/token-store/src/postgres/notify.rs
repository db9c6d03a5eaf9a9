//! Changes announced with `NOTIFY` by every instance sharing the database: revocations and issues.

use chrono::{DateTime, Utc};
use token_core::TokenId;
use tokio_postgres::NoTls;

use super::{ISSUE_CHANNEL, PostgresBackend, REVOCATION_CHANNEL, pg};
use crate::error::Result;

impl PostgresBackend {
    /// Listens for revocations from every instance, on a connection of its own. The feed yields
    /// revoked ids as their transactions commit; it ends if the connection is lost (a cache then
    /// falls back to polling the backend).
    pub async fn listen_revocations(&self) -> Result<RevocationFeed> {
        use std::future::poll_fn;
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(pg)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = poll_fn(|cx| connection.poll_message(cx)).await {
                match msg {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) if n.channel() == ISSUE_CHANNEL => {
                        if let Ok(id) = n.payload().parse::<TokenId>()
                            && tx.send(Change::Issued(id)).is_err()
                        {
                            return;
                        }
                    }
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        for item in n.payload().split(',') {
                            let Some((id, at)) = item.split_once('@') else { continue };
                            let (Ok(id), Ok(at)) = (id.parse::<TokenId>(), at.parse::<i64>()) else {
                                continue;
                            };
                            let Some(at) = DateTime::from_timestamp_millis(at) else { continue };
                            if tx.send(Change::Revoked(id, at)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {REVOCATION_CHANNEL}; LISTEN {ISSUE_CHANNEL}"))
            .await
            .map_err(pg)?;
        Ok(RevocationFeed { rx, _client: client })
    }
}

/// A change to the token set announced by an instance sharing the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A token (tree member) was revoked at this time.
    Revoked(TokenId, DateTime<Utc>),
    /// A token was issued.
    Issued(TokenId),
}

/// Revocations (and issues) announced by any instance sharing the database.
pub struct RevocationFeed {
    rx: tokio::sync::mpsc::UnboundedReceiver<Change>,
    _client: tokio_postgres::Client,
}

impl RevocationFeed {
    /// The next revoked id with its revocation time (issues are skipped); `None` once the
    /// listening connection is gone.
    pub async fn recv(&mut self) -> Option<(TokenId, DateTime<Utc>)> {
        loop {
            if let Change::Revoked(id, at) = self.rx.recv().await? {
                return Some((id, at));
            }
        }
    }

    /// The next change, revocation or issue; `None` once the listening connection is gone.
    pub async fn recv_change(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").finish_non_exhaustive()
    }
}
