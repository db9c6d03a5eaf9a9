//! [`TokenwardBuilder`]: what a deployment is made of, checked and opened in one call.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use token_audit::{
    AuditWriter, Auditor, CheckpointSigner, FailureMode, FileLog, LogStorage, SignedCheckpoint, SubjectKey,
    VerificationSummary, VerifyAuditMode, WriterConfig,
};
use token_core::chrono::TimeDelta;
use token_core::{Clock, Policy, SystemClock, TokenFormat, TokenPrefix};
use token_rotate::{Rotator, SchedulerConfig, TokioScheduler};
use token_store::secrecy::SecretString;
use token_store::{Backend, KdfParams, KeyProvider, LocalKek, MemoryBackend, SecretStore, TokenService};

use crate::deployment::Tokenward;
use crate::error::{Error, Result};
use crate::inner::Inner;
use crate::upkeep::{self, Upkeep};

/// The id the front door gives a key read from a file or the environment.
pub const LOCAL_KEK_ID: &str = "local";

enum BackendSource {
    Ready(Arc<dyn Backend>),
    Memory,
    #[cfg(feature = "sqlite")]
    Sqlite(PathBuf),
    #[cfg(feature = "postgres")]
    Postgres(String, usize),
}

enum KeySource {
    Passphrase(SecretString, Option<KdfParams>),
    File(PathBuf),
    Env(String),
    Provider(Arc<dyn KeyProvider>),
    Kms(crate::KmsKey),
}

enum AuditSource {
    File(PathBuf),
    Storage(Arc<dyn LogStorage>),
}

type Export = Box<dyn FnMut(SignedCheckpoint) + Send + 'static>;

/// A signer, the log's name, and optionally a period and where each periodic checkpoint goes.
type Checkpoints = (CheckpointSigner, String, Option<(Duration, Export)>);

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

/// Builds a [`Tokenward`]: a backend, a key, a token format and policy, and optionally an audit
/// log. [`TokenwardBuilder::open`] opens every part and starts the upkeep tasks.
///
/// Defaults: token prefix `tw`; a 100,000-token verifier cache; rotation overlap 5 minutes; the
/// system clock; no audit log (then nothing is recorded — attach one for production); upkeep as
/// [`Upkeep::default`].
#[must_use = "a builder does nothing until `open`"]
pub struct TokenwardBuilder {
    backend: BackendSource,
    key: Option<KeySource>,
    prefix: Option<String>,
    policy: Option<Policy>,
    stored_policy: bool,
    actor: token_audit::Actor,
    cache_capacity: usize,
    bounded_cache: Option<token_store::BoundedCache>,
    overlap: TimeDelta,
    clock: Arc<dyn Clock>,
    audit: Option<(AuditSource, FailureMode, WriterConfig)>,
    subject_key: Option<SubjectKey>,
    verify_audit: VerifyAuditMode,
    checkpoints: Option<Checkpoints>,
    upkeep: Upkeep,
    scheduler: SchedulerConfig,
    migrate: bool,
    move_to: Option<crate::KmsKey>,
    witness: Option<Arc<dyn token_audit::Witness>>,
    new_log: Option<String>,
}

impl std::fmt::Debug for TokenwardBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenwardBuilder")
            .field("prefix", &self.prefix)
            .field("cache_capacity", &self.cache_capacity)
            .field("overlap", &self.overlap)
            .field("audited", &self.audit.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenwardBuilder {
    fn new(backend: BackendSource) -> Self {
        Self {
            backend,
            key: None,
            prefix: None,
            policy: None,
            stored_policy: false,
            actor: token_audit::Actor::System,
            cache_capacity: 100_000,
            bounded_cache: None,
            overlap: TimeDelta::minutes(5),
            clock: Arc::new(SystemClock),
            audit: None,
            subject_key: None,
            verify_audit: VerifyAuditMode::EveryDecision,
            checkpoints: None,
            upkeep: Upkeep::default(),
            scheduler: SchedulerConfig::default(),
            migrate: false,
            move_to: None,
            witness: None,
            new_log: None,
        }
    }

    pub(crate) fn with_backend(backend: Arc<dyn Backend>) -> Self {
        Self::new(BackendSource::Ready(backend))
    }

    pub(crate) fn in_memory() -> Self {
        Self::new(BackendSource::Memory)
    }

    #[cfg(feature = "sqlite")]
    pub(crate) fn embedded(path: PathBuf) -> Self {
        Self::new(BackendSource::Sqlite(path))
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn postgres(url: String) -> Self {
        Self::new(BackendSource::Postgres(url, 16))
    }

    /// The key-encryption key from a passphrase (Argon2id with OWASP's parameters, its salt kept
    /// in the store).
    pub fn passphrase(mut self, passphrase: SecretString) -> Self {
        self.key = Some(KeySource::Passphrase(passphrase, None));
        self
    }

    /// The same, with explicit Argon2id parameters for a new store (an existing store keeps its own).
    pub fn passphrase_with(mut self, passphrase: SecretString, params: KdfParams) -> Self {
        self.key = Some(KeySource::Passphrase(passphrase, Some(params)));
        self
    }

    /// The key-encryption key: 32 raw bytes (or 64 hex digits) in a file.
    pub fn key_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.key = Some(KeySource::File(path.into()));
        self
    }

    /// The key-encryption key: 64 hex digits in the environment variable `var`.
    pub fn key_env(mut self, var: impl Into<String>) -> Self {
        self.key = Some(KeySource::Env(var.into()));
        self
    }

    /// Any key provider (a keyring with older keys, a KMS).
    pub fn key_provider(mut self, provider: Arc<dyn KeyProvider>) -> Self {
        self.key = Some(KeySource::Provider(provider));
        self
    }

    /// The key-encryption key in a KMS ([`crate::KmsKey`]: `transit:MOUNT/KEY`,
    /// `aws-kms:KEY`), connected at `open` with settings and credentials from the environment.
    /// For a client configured in code, build the provider yourself and pass it to
    /// [`Self::key_provider`].
    pub fn kms(mut self, key: crate::KmsKey) -> Self {
        self.key = Some(KeySource::Kms(key));
        self
    }

    /// Opens the store to move it to the KMS key `to` (from the key given as usual: a passphrase,
    /// a key file, another KMS key): a [`token_store::KekMove`], which opens the store before,
    /// during (after an interrupted move) and after the move. Then call
    /// [`crate::Tokenward::move_kek`].
    pub fn moving_kek_to(mut self, to: crate::KmsKey) -> Self {
        self.move_to = Some(to);
        self
    }

    /// The issuer prefix of every token (checked at `open`: lowercase letters, digits, `_`).
    /// The store remembers the prefix it was first opened with: left unset, that one is used
    /// (`tw` for a new store); set to another, `open` refuses (tokens already out carry the
    /// stored one).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// The roles, their grants and TTL caps, and the issuing rules. Required, unless the policy
    /// comes from the store ([`TokenwardBuilder::stored_policy`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Issue under the policy stored by [`Tokenward::apply_policy`] (policy as code: see
    /// [`crate::policy`]). A store with none yet uses [`TokenwardBuilder::policy`] if given, else a
    /// policy with no roles (nothing can be issued until one is applied).
    pub fn stored_policy(mut self) -> Self {
        self.stored_policy = true;
        self
    }

    /// Who the handle records as the actor of the audit entries it writes itself (revocations,
    /// policy changes, secret reads and writes): an operator's name for a CLI, the service for a
    /// service. Default [`token_audit::Actor::System`].
    pub fn actor(mut self, actor: token_audit::Actor) -> Self {
        self.actor = actor;
        self
    }

    /// How many tokens the verifier cache holds at most (every unexpired token is loaded: more
    /// than this many is an error; see [`TokenwardBuilder::bounded_cache`] for more tokens than
    /// memory).
    pub fn cache_capacity(mut self, n: usize) -> Self {
        self.cache_capacity = n;
        self
    }

    /// Holds only the hot tokens (at most `config.capacity`), reading a missing one from the
    /// store by id when it is presented — for more tokens than an instance should hold. Verify
    /// with [`crate::TokenVerifier::verify_async`] (what the tower layer does): the synchronous
    /// `verify` answers from the cache alone and denies a token it does not hold as unknown.
    /// Revocation holds as in full mode: see [`token_store::VerifierCache`].
    pub fn bounded_cache(mut self, config: token_store::BoundedCache) -> Self {
        self.bounded_cache = Some(config);
        self
    }

    /// How long a previous credential keeps working after a rotation's promotion.
    pub fn overlap(mut self, overlap: TimeDelta) -> Self {
        self.overlap = overlap;
        self
    }

    /// The clock every time-dependent decision reads (a `ManualClock` in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// A hash-chained audit log in the file `path` (group-committed, fsynced before an event is
    /// acknowledged), attached to every part that records: issues, revocations, verifications,
    /// key rotations and every rotation step.
    pub fn audit_file(mut self, path: impl Into<PathBuf>, mode: FailureMode) -> Self {
        self.audit = Some((AuditSource::File(path.into()), mode, WriterConfig::default()));
        self
    }

    /// The same, to any log storage (`PostgresLog`, `MemoryLog`, your own).
    pub fn audit_storage(mut self, storage: Arc<dyn LogStorage>, mode: FailureMode) -> Self {
        self.audit = Some((AuditSource::Storage(storage), mode, WriterConfig::default()));
        self
    }

    /// How the audit writer batches (default: natural group commit).
    pub fn audit_writer_config(mut self, config: WriterConfig) -> Self {
        if let Some((_, _, c)) = &mut self.audit {
            *c = config;
        }
        self
    }

    /// How verifications are audited (with an audit log): every decision an entry (the default),
    /// or [`VerifyAuditMode::Summarized`] — denials each an entry at once, allowed verifications
    /// counted per token, request and source and recorded once per interval (a crash loses at
    /// most one interval of counts; [`Tokenward::shutdown`] records what is pending).
    pub fn verify_audit(mut self, mode: VerifyAuditMode) -> Self {
        self.verify_audit = mode;
        self
    }

    /// Records malformed token presentations by their HMAC under `key` (without it, a malformed
    /// presentation is recorded without its subject). A fresh key is generated at `open` if unset.
    pub fn subject_key(mut self, key: SubjectKey) -> Self {
        self.subject_key = Some(key);
        self
    }

    /// Signs checkpoints of the audit log under `signer`, naming the log `log` (on demand with
    /// [`Tokenward::checkpoint`], and at [`Tokenward::shutdown`]).
    pub fn checkpoint_signer(mut self, signer: CheckpointSigner, log: impl Into<String>) -> Self {
        self.checkpoints = Some((signer, log.into(), None));
        self
    }

    /// Also signs one every `every` while the log grows, handing each to `export` (which should
    /// keep it away from the log). Needs [`TokenwardBuilder::checkpoint_signer`].
    pub fn checkpoint_every(
        mut self,
        every: Duration,
        export: impl FnMut(SignedCheckpoint) + Send + 'static,
    ) -> Self {
        if let Some((_, _, periodic)) = &mut self.checkpoints {
            *periodic = Some((every, Box::new(export)));
        }
        self
    }

    /// How often the upkeep tasks run.
    pub fn upkeep(mut self, upkeep: Upkeep) -> Self {
        self.upkeep = upkeep;
        self
    }

    /// The scheduler's settings, for credentials given to [`Tokenward::schedule`].
    pub fn scheduler(mut self, config: SchedulerConfig) -> Self {
        self.scheduler = config;
        self
    }

    /// Upgrades a store written by an older Tokenward while opening it: a deliberate act of the
    /// operator (`tokenward migrate`), recorded in the audit log, never something an open does
    /// by itself (see [`token_store::SecretStore::migrate`] for what it does and refuses). What it
    /// did: [`Tokenward::migration`].
    pub fn migrate(mut self) -> Self {
        self.migrate = true;
        self
    }

    /// Pushes the audit log's signed tree heads to `witness` — somewhere the store's writer cannot
    /// rewrite (an object-locked S3 bucket, a directory on another mount) — after each revocation
    /// and from the upkeep ([`Upkeep::bind_every`]), and checks at `open` that the log is
    /// consistent with the newest head it holds: a store and log rolled back together fail with
    /// [`token_audit::WitnessError::RolledBack`]. Heads are signed by the checkpoint signer
    /// ([`TokenwardBuilder::checkpoint_signer`]) or else the store's own (sealed in the store,
    /// made on first use). Needs an audit log. Use one witness location per store.
    pub fn witness(mut self, witness: Arc<dyn token_audit::Witness>) -> Self {
        self.witness = Some(witness);
        self
    }

    /// Starts a new audit log deliberately (the operator's `tokenward audit rebind`): instead of
    /// refusing a log that is not the one the store is bound to, `open` records a `store` /
    /// `new-log` entry in the attached log — with `reason`, what the previous binding was and what
    /// was found — and binds the store to that log in a new epoch (pushed to the witness, if any,
    /// so that a store restored from before it is caught). Needs the store's key, as every open.
    pub fn new_audit_log(mut self, reason: impl Into<String>) -> Self {
        self.new_log = Some(reason.into());
        self
    }

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
        #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
        let mut follow: Option<upkeep::Follower> = None;
        let backend: Arc<dyn Backend> = match self.backend {
            BackendSource::Ready(b) => b,
            BackendSource::Memory => Arc::new(MemoryBackend::new()),
            #[cfg(feature = "sqlite")]
            BackendSource::Sqlite(path) => Arc::new(token_store::SqliteBackend::open(&path)?),
            #[cfg(feature = "postgres")]
            BackendSource::Postgres(url, max) => {
                let pg = Arc::new(token_store::PostgresBackend::connect(&url, max).await?);
                follow = Some(upkeep::Follower::new(pg.clone()));
                pg
            }
        };
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
            Some(to) => Arc::new(token_store::KekMove::new(keys, to.connect_from_env().await?)),
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
            opened: Default::default(),
            tasks: Default::default(),
            migration,
            guard,
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

/// Where a deployment opens from: each returns the builder for it.
impl Tokenward {
    /// A deployment on the embedded store: one SQLite file at `path` (created if missing).
    #[cfg(feature = "sqlite")]
    pub fn embedded(path: impl Into<std::path::PathBuf>) -> TokenwardBuilder {
        TokenwardBuilder::embedded(path.into())
    }

    /// A deployment on PostgreSQL (a libpq connection string such as
    /// `host=127.0.0.1 port=5432 user=tokenward dbname=tokenward`); instances sharing it see each
    /// other's issues and revocations within milliseconds.
    #[cfg(feature = "postgres")]
    pub fn postgres(url: impl Into<String>) -> TokenwardBuilder {
        TokenwardBuilder::postgres(url.into())
    }

    /// A deployment in memory (tests, examples): nothing survives the process.
    pub fn in_memory() -> TokenwardBuilder {
        TokenwardBuilder::in_memory()
    }

    /// A deployment on any backend (your own, or one you opened with options).
    pub fn with_backend(backend: Arc<dyn Backend>) -> TokenwardBuilder {
        TokenwardBuilder::with_backend(backend)
    }
}
