//! [`TokenwardBuilder::open`]: the backend, the key, the secret store, the token service, the audit
//! log and the rotator opened in order, checked against each other, and the upkeep started.

use std::sync::Arc;

use token_audit::{
    AuditWriter, Auditor, FileLog, LogStorage, SubjectKey, VerifyAuditMode, summary::VerificationSummary,
};
use token_core::{Policy, TokenFormat, TokenPrefix, clocks::Clock};
use token_rotate::{Rotator, TokioScheduler};
use token_store::{Backend, KeyProvider, LocalKek, MemoryBackend, SecretStore, TokenService};

use super::{AuditSource, BackendSource, KeySource, LOCAL_KEK_ID, TokenwardBuilder};
use crate::deployment::Tokenward;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::upkeep;

/// The sealed metadata key of the store's token prefix.
const PREFIX_KEY: &str = "tokenward/prefix";

/// The prefix tokens are issued with: the one the store remembers, or `given` (stored on first
/// use); a `given` that differs from the stored one is refused.
async fn settle_prefix(secrets: &SecretStore, given: Option<String>) -> Result<TokenPrefix> {
    let stored =
        secrets.sealed_meta(PREFIX_KEY).await?.map(|(v, _)| String::from_utf8_lossy(&v).into_owned());
    let chosen = match (stored, given) {
        (Some(s), Some(g)) if s != g => {
            return Err(Error::Config(format!(
                "token prefix: this store issues `{s}_` tokens; it was opened with prefix `{g}`"
            )));
        }
        (Some(s), _) => s,
        (None, given) => {
            let p = given.unwrap_or_else(|| "tw".to_owned());
            match secrets.set_sealed_meta(PREFIX_KEY, None, p.as_bytes()).await {
                Ok(_) => p,
                // Another instance stored one first: agree with it or refuse.
                Err(token_store::StoreError::Conflict(_)) => {
                    return Box::pin(settle_prefix(secrets, Some(p))).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    TokenPrefix::new(&chosen).map_err(|e| Error::Config(format!("token prefix: {e}")))
}

fn unreachable_policy() -> Result<Policy> {
    Err(Error::Config("a policy is required".into()))
}

impl TokenwardBuilder {
    /// Opens the backend, the key, the secret store, the token service, the audit log and the
    /// rotator, attaches the audit log to each, and starts the upkeep tasks on the current tokio
    /// runtime. Fails with a typed error if any part does not open (a wrong passphrase, a log held
    /// by another writer, …).
    pub async fn open(self) -> Result<Tokenward> {
        if self.policy.is_none() && !self.stored_policy {
            return Err(Error::Config("a policy is required (or `stored_policy`)".into()));
        }
        let key = self.key.ok_or_else(|| {
            Error::Config("a key is required: a passphrase, a key file, the environment or a provider".into())
        })?;
        if let Some(p) = &self.prefix {
            TokenPrefix::new(p).map_err(|e| Error::Config(format!("token prefix: {e}")))?;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Config("open needs a tokio runtime (its upkeep runs on tasks)".into()));
        }
        let backend: Arc<dyn Backend> = match self.backend {
            BackendSource::Ready(b) => b,
            BackendSource::Memory => Arc::new(MemoryBackend::new()),
            #[cfg(feature = "sqlite")]
            BackendSource::Sqlite(path) => Arc::new(token_store::SqliteBackend::open(&path)?),
            #[cfg(feature = "postgres")]
            BackendSource::Postgres(url, max) => {
                Arc::new(token_store::PostgresBackend::connect(&url, max).await?)
            }
        };
        // Other instances' changes, followed on any backend that announces them (one handed in
        // with `with_backend` too).
        let follow = upkeep::Follower::probe(&backend).await;
        let (writer, auditor) = match self.audit {
            None => (None, None),
            Some((source, mode, config)) => {
                let storage: Arc<dyn LogStorage> = match source {
                    AuditSource::File(path) => Arc::new(FileLog::open(path)?),
                    AuditSource::Storage(s) => s,
                };
                let writer = Arc::new(AuditWriter::start(storage, config)?);
                let auditor = Auditor::new(writer.clone(), mode);
                (Some(writer), Some(auditor))
            }
        };
        let keys: Arc<dyn KeyProvider> = match key {
            KeySource::Passphrase(p, params) => SecretStore::passphrase_key(&backend, &p, params).await?,
            KeySource::File(path) => Arc::new(LocalKek::from_file(LOCAL_KEK_ID, &path)?),
            KeySource::Env(var) => Arc::new(LocalKek::from_env(LOCAL_KEK_ID, &var)?),
            KeySource::Provider(p) => p,
            KeySource::Kms(k) => k.connect_from_env().await?,
        };
        let keys: Arc<dyn KeyProvider> = match &self.move_to {
            Some(to) => Arc::new(token_store::keys::KekMove::new(keys, to.connect_from_env().await?)),
            None => keys,
        };
        let (mut secrets, migration) = if self.migrate {
            let (secrets, done) = SecretStore::migrate(backend.clone(), keys).await?;
            (secrets, Some(done))
        } else {
            (SecretStore::open(backend.clone(), keys).await?, None)
        };
        if let (Some(done), Some(a)) = (&migration, &auditor) {
            let event = token_audit::AuditEvent::new(
                self.clock.now(),
                self.actor.clone(),
                token_audit::Action::Store("migrate".into()),
            )
            .attr("records_rewritten", done.records_rewritten.to_string())
            .attr("markers_written", done.markers_written.join(","))
            .attr("digest_key_created", done.digest_key_created.to_string());
            a.emit_durable(event).await?;
        }
        let (signer, periodic) = match self.checkpoints {
            Some((signer, log, periodic)) => (Some((Arc::new(signer), log)), periodic),
            None => (None, None),
        };
        let guard = match (&writer, &auditor) {
            (Some(w), Some(a)) => {
                let witness = match self.witness {
                    None => None,
                    Some(witness) => {
                        let (signer, log) = match &signer {
                            Some((s, log)) => (s.clone(), log.clone()),
                            None => {
                                let s =
                                    crate::guard::stored_signer(&secrets, true).await?.ok_or_else(|| {
                                        Error::Config("the store's audit signer could not be made".into())
                                    })?;
                                (Arc::new(s), crate::guard::AUDIT_LOG_NAME.to_owned())
                            }
                        };
                        Some(crate::guard::WitnessSetup { witness, signer, log })
                    }
                };
                let new_log = self.new_log.map(|reason| crate::guard::NewLog {
                    reason,
                    actor: self.actor.clone(),
                    now: self.clock.now(),
                });
                Some(Arc::new(crate::guard::Guard::open(&secrets, w.clone(), a, witness, new_log).await?))
            }
            _ if self.witness.is_some() || self.new_log.is_some() => {
                return Err(Error::Config("a witness or a new audit log needs an audit log".into()));
            }
            _ => None,
        };
        if let Some(a) = &auditor {
            secrets = secrets.with_audit(a.clone());
        }
        let secrets = Arc::new(secrets);
        let prefix = settle_prefix(&secrets, self.prefix).await?;
        let policy = match (self.stored_policy, self.policy) {
            (true, given) => match crate::policy::stored::read_head(&secrets).await? {
                Some((record, _)) => record.file()?.to_policy()?,
                None => match given {
                    Some(p) => p,
                    None => Policy::builder().build().map_err(|e| Error::Config(e.to_string()))?,
                },
            },
            (false, Some(p)) => p,
            (false, None) => unreachable_policy()?,
        };
        let mut tokens = match self.bounded_cache.clone() {
            Some(config) => {
                TokenService::open_bounded(
                    backend.clone(),
                    &secrets,
                    TokenFormat::new(prefix),
                    policy,
                    config,
                )
                .await?
            }
            None => {
                TokenService::open(
                    backend.clone(),
                    &secrets,
                    TokenFormat::new(prefix),
                    policy,
                    self.cache_capacity,
                )
                .await?
            }
        };
        if let Some(a) = &auditor {
            tokens = tokens.with_audit(a.clone());
        }
        let tokens = Arc::new(tokens);
        let mut rotator = Rotator::new(secrets.clone(), self.overlap, self.clock.clone());
        if let Some(a) = &auditor {
            rotator = rotator.with_audit(a.clone());
        }
        let rotator = Arc::new(rotator);
        let scheduler = Arc::new(TokioScheduler::new(rotator.clone(), self.scheduler));
        let subject_key = match (self.subject_key, &auditor) {
            (Some(k), _) => Some(k),
            (None, Some(_)) => Some(SubjectKey::generate()?),
            (None, None) => None,
        };
        let summary = match (&self.verify_audit, &auditor) {
            (VerifyAuditMode::Summarized { interval }, Some(a)) => {
                Some(VerificationSummary::start(a.clone(), *interval)?)
            }
            _ => None,
        };
        let inner = Arc::new(Inner {
            backend,
            secrets,
            tokens,
            rotator,
            scheduler,
            writer,
            auditor,
            subject_key,
            summary,
            clock: self.clock,
            signer,
            actor: self.actor,
            watched: Default::default(),
            emergency_orders: Default::default(),
            opened: Default::default(),
            tasks: Default::default(),
            migration,
            guard,
            #[cfg(feature = "federation")]
            federations: crate::federation::trusted::Federations::new(),
        });
        let mut checkpoints = None;
        if let (Some((every, export)), Some(w), Some((s, log))) = (periodic, &inner.writer, &inner.signer) {
            checkpoints = Some(w.spawn_checkpoints(s.clone(), log.clone(), every, export));
        }
        upkeep::start(&inner, self.upkeep, follow, checkpoints);
        let tw = Tokenward { inner };
        let reconciled = tw.reconcile_revocations().await?;
        if !reconciled.revived.is_empty() {
            tw.seal(true).await?; // revoked again: bound and witnessed like any revocation
        }
        tracing::info!(
            audited = tw.inner.auditor.is_some(),
            refused = tw.inner.tokens.opened().refused.len(),
            revoked_again = reconciled.revived.len(),
            "tokenward opened"
        );
        Ok(tw)
    }
}
