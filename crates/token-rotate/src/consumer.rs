//! The consumer's side: a handle that always holds the `current` credential, refreshed when a
//! rotation promotes a new one, so a service picks up new credentials with no restart.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use token_store::{Label, SecretName, SecretStore};
use tokio::sync::broadcast;

use crate::credential::Credential;
use crate::error::{Result, RotateError};

/// The current credential of one name, kept fresh by a task: on every promotion this process's
/// [`Rotator`](crate::Rotator) announces, and by polling the store's labels (for rotations done by
/// other processes). Reading it is a lock and a reference-count increment.
pub struct CurrentCredential {
    inner: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

struct Shared {
    secrets: Arc<SecretStore>,
    name: SecretName,
    current: RwLock<(u64, Arc<Credential>)>,
}

impl std::fmt::Debug for CurrentCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurrentCredential")
            .field("name", &self.inner.name)
            .field("version", &self.version())
            .finish_non_exhaustive()
    }
}

impl Shared {
    async fn refresh(&self) -> Result<()> {
        let labels = self.secrets.labels(&self.name).await?;
        let Some(&v) = labels.get(&Label::Current) else { return Ok(()) };
        if self.current.read().unwrap_or_else(|p| p.into_inner()).0 == v {
            return Ok(());
        }
        let bytes = self.secrets.get(&self.name, v).await?;
        let cred = Arc::new(Credential::from_sealed_plaintext(self.name.as_str(), &bytes)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (v, cred);
        Ok(())
    }
}

impl CurrentCredential {
    /// Loads the current credential of `name` and keeps it fresh: on each announcement from
    /// `announcements` (a [`Rotator::subscribe`](crate::Rotator::subscribe)) and every `poll`.
    pub async fn follow(
        secrets: Arc<SecretStore>,
        name: SecretName,
        mut announcements: Option<broadcast::Receiver<(String, u64)>>,
        poll: Duration,
    ) -> Result<Self> {
        let (v, bytes) = secrets
            .get_labeled(&name, Label::Current)
            .await?
            .ok_or_else(|| RotateError::NoCurrent(name.as_str().to_owned()))?;
        let cred = Arc::new(Credential::from_sealed_plaintext(name.as_str(), &bytes)?);
        let inner = Arc::new(Shared { secrets, name, current: RwLock::new((v, cred)) });
        let task = tokio::spawn({
            let inner = Arc::clone(&inner);
            async move {
                let mut tick = tokio::time::interval(poll);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut failing = false;
                loop {
                    match &mut announcements {
                        Some(rx) => tokio::select! {
                            m = rx.recv() => match m {
                                Ok((n, _)) if n != inner.name.as_str() => continue,
                                Err(broadcast::error::RecvError::Closed) => announcements = None,
                                _ => {}
                            },
                            _ = tick.tick() => {}
                        },
                        None => {
                            tick.tick().await;
                        }
                    }
                    // A failed refresh keeps the credential we have; the next tick tries again.
                    // Said once when it starts failing (then at debug), and when it recovers.
                    match inner.refresh().await {
                        Ok(()) if failing => {
                            failing = false;
                            tracing::info!(
                                credential = inner.name.as_str(),
                                "refreshing the current credential works again"
                            );
                        }
                        Ok(()) => {}
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(
                                credential = inner.name.as_str(),
                                version = inner.current.read().unwrap_or_else(|p| p.into_inner()).0,
                                error = %e,
                                "refreshing the current credential failed; keeping the one held"
                            );
                        }
                        Err(e) => {
                            tracing::debug!(credential = inner.name.as_str(), error = %e, "refreshing the current credential failed again")
                        }
                    }
                }
            }
        });
        Ok(Self { inner, task })
    }

    /// The current credential (as of the last refresh).
    pub fn get(&self) -> Arc<Credential> {
        Arc::clone(&self.inner.current.read().unwrap_or_else(|p| p.into_inner()).1)
    }

    /// Its version in the store.
    pub fn version(&self) -> u64 {
        self.inner.current.read().unwrap_or_else(|p| p.into_inner()).0
    }

    /// Re-reads the store now (e.g. after the target refused the credential).
    pub async fn refresh(&self) -> Result<()> {
        self.inner.refresh().await
    }
}

impl Drop for CurrentCredential {
    fn drop(&mut self) {
        self.task.abort();
    }
}
