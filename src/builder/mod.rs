//! [`TokenwardBuilder`]: what a deployment is made of, checked and opened in one call. The
//! settings are here; opening them, in order, is `open.rs`.

mod open;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use token_audit::{
    CheckpointSigner, FailureMode, LogStorage, SubjectKey, VerifyAuditMode, WriterConfig,
    checkpoints::SignedCheckpoint,
};
use token_core::chrono::TimeDelta;
use token_core::{Policy, clocks::Clock, clocks::SystemClock};
use token_rotate::SchedulerConfig;
use token_store::secrecy::SecretString;
use token_store::{Backend, KeyProvider, keys::KdfParams};

use crate::deployment::Tokenward;
use crate::upkeep::Upkeep;

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
    bounded_cache: Option<token_store::cache::BoundedCache>,
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
    witness: Option<Arc<dyn token_audit::witnesses::Witness>>,
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
    /// a key file, another KMS key): a [`token_store::keys::KekMove`], which opens the store before,
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
    /// Revocation holds as in full mode: see [`token_store::cache::VerifierCache`].
    pub fn bounded_cache(mut self, config: token_store::cache::BoundedCache) -> Self {
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
    /// [`token_audit::witnesses::WitnessError::RolledBack`]. Heads are signed by the checkpoint signer
    /// ([`TokenwardBuilder::checkpoint_signer`]) or else the store's own (sealed in the store,
    /// made on first use). Needs an audit log. Use one witness location per store.
    pub fn witness(mut self, witness: Arc<dyn token_audit::witnesses::Witness>) -> Self {
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
