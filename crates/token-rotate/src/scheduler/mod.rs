//! Rotation on a schedule: policies (every N, or at a fraction of the credential's lifetime, with
//! jitter, never past expiry), retry with backoff, a bound on rotations in flight, a lease so one
//! instance runs a given rotation, graceful shutdown.
//!
//! This module holds the scheduler's interface, its configuration and the credentials it
//! manages; `schedule` is when one is due, `run` the passes that start, finish and retry
//! rotations.

mod run;
mod schedule;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use token_store::SecretName;
use tokio::sync::Semaphore;

use self::run::InFlight;
pub use self::schedule::Schedule;
use self::schedule::random_u64;
use crate::error::Result;
use crate::rotator::Rotator;
use crate::target::RotationTarget;

/// The target of this module's log lines, whichever file writes them: what an operator filters
/// on (`TOKENWARD_LOG=token_rotate::scheduler=debug`) stays put when the code moves.
const LOG_TARGET: &str = "token_rotate::scheduler";

/// How the scheduler runs.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// At most this many rotations at once.
    pub max_in_flight: usize,
    /// First retry delay after a failed or rolled-back rotation; doubles up to `retry_max`.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How long a lease on a credential lasts (renewed by each step's run).
    pub lease_ttl: TimeDelta,
    /// This instance's name in leases.
    pub holder: String,
    /// How often `run` looks for due work when nothing is scheduled sooner.
    pub poll: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 8,
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(300),
            lease_ttl: TimeDelta::seconds(60),
            holder: format!("pid-{}-{}", std::process::id(), random_u64()),
            poll: Duration::from_millis(250),
        }
    }
}

/// What a pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Rotations promoted.
    pub promoted: u64,
    /// Rotations rolled back (retried later).
    pub rolled_back: u64,
    /// Previous credentials revoked after their overlap.
    pub revoked_previous: u64,
    /// Rotations left unfinished: promoted in the store but not at every destination, or rolled
    /// back with the withdrawal not done (retried with backoff).
    pub unfinished: u64,
    /// Runs that failed (retried later) or found the lease held elsewhere.
    pub failed_or_skipped: u64,
}

/// Runs rotations when they are due.
#[async_trait]
pub trait Scheduler: Send + Sync {
    /// Does what is due now (bounded by the in-flight limit) and waits for it.
    async fn tick(&self) -> Result<TickReport>;

    /// When something is next due.
    fn next_due(&self) -> Option<DateTime<Utc>>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    /// Unknown: read the record and the credential's expiry.
    Check,
    /// Rotate (or resume an interrupted rotation).
    Rotate,
    /// Revoke the previous credential once the overlap ends.
    RevokePrevious,
}

/// The managed credentials, and their due times in a dense array for the due-check.
#[derive(Default)]
struct Table {
    entries: Vec<Entry>,
    due: Vec<i64>,
}

struct Entry {
    name: SecretName,
    target: Arc<dyn RotationTarget>,
    schedule: Schedule,
    work: Work,
    attempts: u32,
}

/// The tokio scheduler.
pub struct TokioScheduler {
    rotator: Arc<Rotator>,
    config: SchedulerConfig,
    entries: Mutex<Table>,
    permits: Arc<Semaphore>,
    promoted: AtomicU64,
    rolled_back: AtomicU64,
    unfinished: AtomicU64,
}

impl std::fmt::Debug for TokioScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokioScheduler").field("config", &self.config).finish_non_exhaustive()
    }
}

impl TokioScheduler {
    /// A scheduler driving `rotator`.
    pub fn new(rotator: Arc<Rotator>, config: SchedulerConfig) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        Self {
            rotator,
            config,
            entries: Mutex::new(Table::default()),
            permits,
            promoted: AtomicU64::new(0),
            rolled_back: AtomicU64::new(0),
            unfinished: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Manages `name`: its record and expiry are read on the next pass.
    pub fn register(&self, name: SecretName, target: Arc<dyn RotationTarget>, schedule: Schedule) {
        self.register_due(name, target, schedule, DateTime::UNIX_EPOCH);
    }

    /// Manages `name`, next due at `due` (when the caller knows it).
    pub fn register_due(
        &self,
        name: SecretName,
        target: Arc<dyn RotationTarget>,
        schedule: Schedule,
        due: DateTime<Utc>,
    ) {
        let work = if due == DateTime::UNIX_EPOCH { Work::Check } else { Work::Rotate };
        let mut t = self.lock();
        t.due.push(due.timestamp_millis());
        t.entries.push(Entry { name, target, schedule, work, attempts: 0 });
    }

    /// Credentials managed.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether none are.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Promotions and rollbacks so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.promoted.load(Ordering::Relaxed), self.rolled_back.load(Ordering::Relaxed))
    }

    /// Runs so far that left a rotation unfinished ([`Rotation::Partial`](crate::Rotation::Partial),
    /// [`Rotation::RollbackIncomplete`](crate::Rotation::RollbackIncomplete)).
    pub fn unfinished(&self) -> u64 {
        self.unfinished.load(Ordering::Relaxed)
    }
}

impl TokioScheduler {
    /// When something is next due (not counting work in flight).
    pub fn next_due(&self) -> Option<DateTime<Utc>> {
        self.lock()
            .due
            .iter()
            .copied()
            .filter(|d| *d != i64::MAX)
            .min()
            .and_then(DateTime::from_timestamp_millis)
    }
}

fn add(total: &mut TickReport, r: TickReport) {
    total.promoted += r.promoted;
    total.rolled_back += r.rolled_back;
    total.revoked_previous += r.revoked_previous;
    total.unfinished += r.unfinished;
    total.failed_or_skipped += r.failed_or_skipped;
}

#[async_trait]
impl Scheduler for Arc<TokioScheduler> {
    async fn tick(&self) -> Result<TickReport> {
        let mut set = InFlight::default();
        self.spawn_due(&mut set);
        let mut total = TickReport::default();
        while let Some(done) = set.join_next().await {
            if let Some(d) = done {
                self.finish(&d);
                add(&mut total, d.report);
            }
        }
        Ok(total)
    }

    fn next_due(&self) -> Option<DateTime<Utc>> {
        TokioScheduler::next_due(self)
    }
}
