//! Rotation on a schedule: policies (every N, or at a fraction of the credential's lifetime, with
//! jitter, never past expiry), retry with backoff, a bound on rotations in flight, a lease so one
//! instance runs a given rotation, graceful shutdown.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use rand::TryRng;
use token_store::SecretName;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::error::Result;
use crate::lease;
use crate::rotator::{Rotation, Rotator};
use crate::state::Step;
use crate::target::RotationTarget;

/// When a credential is rotated. Build with [`Schedule::every`] or
/// [`Schedule::at_lifetime_fraction`]; both may be combined (the earlier wins). Jitter only ever
/// moves a rotation earlier, and a rotation is never later than `expiry − min_remaining`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    every: Option<TimeDelta>,
    fraction: Option<f64>,
    jitter: TimeDelta,
    min_remaining: TimeDelta,
}

impl Schedule {
    /// Every `period` after the last promotion.
    pub fn every(period: TimeDelta) -> Self {
        Self {
            every: Some(period),
            fraction: None,
            jitter: TimeDelta::zero(),
            min_remaining: TimeDelta::zero(),
        }
    }

    /// When `fraction` (clamped to 0.05–0.95) of the credential's lifetime has passed.
    pub fn at_lifetime_fraction(fraction: f64) -> Self {
        Self {
            every: None,
            fraction: Some(fraction.clamp(0.05, 0.95)),
            jitter: TimeDelta::zero(),
            min_remaining: TimeDelta::zero(),
        }
    }

    /// Also every `period`.
    pub fn or_every(mut self, period: TimeDelta) -> Self {
        self.every = Some(period);
        self
    }

    /// Up to `jitter` earlier, at random (spreads rotations of many credentials).
    pub fn jitter(mut self, jitter: TimeDelta) -> Self {
        self.jitter = jitter;
        self
    }

    /// Never later than `margin` before the credential expires.
    pub fn min_remaining(mut self, margin: TimeDelta) -> Self {
        self.min_remaining = margin;
        self
    }

    /// The next rotation of a credential promoted at `promoted` and expiring at `expires`, with
    /// `jitter01` ∈ [0, 1) of the jitter applied.
    pub fn next_after(
        &self,
        promoted: DateTime<Utc>,
        expires: DateTime<Utc>,
        jitter01: f64,
    ) -> DateTime<Utc> {
        let mut due = expires - self.min_remaining;
        if let Some(e) = self.every {
            due = due.min(promoted + e);
        }
        if let Some(f) = self.fraction {
            let life = (expires - promoted).num_milliseconds().max(0) as f64;
            due = due.min(promoted + TimeDelta::milliseconds((life * f) as i64));
        }
        let j = (self.jitter.num_milliseconds() as f64 * jitter01.clamp(0.0, 1.0)) as i64;
        (due - TimeDelta::milliseconds(j)).max(promoted)
    }
}

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

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = rand::rngs::SysRng.try_fill_bytes(&mut b);
    u64::from_le_bytes(b)
}

fn jitter01() -> f64 {
    (random_u64() >> 11) as f64 / (1u64 << 53) as f64
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

/// The rotations in flight, each task's credential kept so a task that fails is named.
#[derive(Default)]
struct InFlight {
    set: JoinSet<Done>,
    names: HashMap<tokio::task::Id, String>,
}

impl InFlight {
    /// The next finished rotation: `None` when none is in flight, `Some(None)` for a task that
    /// panicked or was cancelled (logged: its credential is not scheduled again until the
    /// scheduler restarts).
    async fn join_next(&mut self) -> Option<Option<Done>> {
        Some(match self.set.join_next_with_id().await? {
            Ok((id, done)) => {
                self.names.remove(&id);
                Some(done)
            }
            Err(e) => {
                let credential = self.names.remove(&e.id()).unwrap_or_default();
                if e.is_panic() {
                    tracing::error!(
                        credential,
                        "a rotation task panicked: the credential is not rotated again until the scheduler restarts"
                    );
                } else {
                    tracing::warn!(credential, "a rotation task was cancelled");
                }
                None
            }
        })
    }
}

struct Done {
    index: usize,
    work: Work,
    due_ms: i64,
    attempts: u32,
    report: TickReport,
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

    /// The due-check: indexes of entries due at `now` and not already running.
    pub fn due_at(&self, now: DateTime<Utc>) -> Vec<usize> {
        let now = now.timestamp_millis();
        // A dense scan of due times (a running entry's is i64::MAX): 8 bytes per credential.
        let t = self.lock();
        t.due.iter().enumerate().filter(|(_, d)| **d <= now).map(|(i, _)| i).collect()
    }

    /// Promotions and rollbacks so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.promoted.load(Ordering::Relaxed), self.rolled_back.load(Ordering::Relaxed))
    }

    /// Runs so far that left a rotation unfinished ([`Rotation::Partial`],
    /// [`Rotation::RollbackIncomplete`]).
    pub fn unfinished(&self) -> u64 {
        self.unfinished.load(Ordering::Relaxed)
    }

    fn backoff(&self, attempts: u32) -> TimeDelta {
        let d = self.config.retry_base.saturating_mul(1u32 << attempts.min(16)).min(self.config.retry_max);
        TimeDelta::from_std(d).unwrap_or(TimeDelta::seconds(300))
    }

    /// Starts what is due into `set`.
    fn spawn_due(self: &Arc<Self>, set: &mut InFlight) {
        let now = self.rotator.clock().now();
        for index in self.due_at(now) {
            let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else { break };
            let (name, target, schedule, work, attempts) = {
                let mut t = self.lock();
                t.due[index] = i64::MAX;
                let e = &mut t.entries[index];

                (e.name.clone(), Arc::clone(&e.target), e.schedule, e.work, e.attempts)
            };
            let this = Arc::clone(self);
            let credential = name.as_str().to_owned();
            let task = set.set.spawn(async move {
                let _permit = permit;
                this.process(index, name, target.as_ref(), schedule, work, attempts).await
            });
            set.names.insert(task.id(), credential);
        }
    }

    fn finish(&self, d: &Done) {
        let mut t = self.lock();
        if let Some(due) = t.due.get_mut(d.index) {
            *due = d.due_ms;
        }
        if let Some(e) = t.entries.get_mut(d.index) {
            e.work = d.work;
            e.attempts = d.attempts;
        }
        self.promoted.fetch_add(d.report.promoted, Ordering::Relaxed);
        self.rolled_back.fetch_add(d.report.rolled_back, Ordering::Relaxed);
        self.unfinished.fetch_add(d.report.unfinished, Ordering::Relaxed);
    }

    /// The next rotation after the current promotion.
    async fn next_rotation(&self, name: &SecretName, schedule: &Schedule) -> Result<i64> {
        let rec = self.rotator.record(name).await?;
        let Some(current) = self.rotator.current(name).await? else { return Ok(0) }; // none: rotate now
        let promoted = rec
            .promoted_at_ms
            .and_then(DateTime::from_timestamp_millis)
            .unwrap_or_else(|| self.rotator.clock().now());
        Ok(schedule.next_after(promoted, current.expires_at, jitter01()).timestamp_millis())
    }

    async fn process(
        &self,
        index: usize,
        name: SecretName,
        target: &dyn RotationTarget,
        schedule: Schedule,
        work: Work,
        attempts: u32,
    ) -> Done {
        let holder = &self.config.holder;
        let secrets = self.rotator.secrets();
        let now = self.rotator.clock().now();
        let mut report = TickReport::default();
        let retry = |attempts: u32, report: TickReport| Done {
            index,
            work,
            due_ms: (now + self.backoff(attempts)).timestamp_millis(),
            attempts: attempts + 1,
            report,
        };
        match lease::acquire(secrets, name.as_str(), holder, now, self.config.lease_ttl).await {
            Ok(true) => {}
            _ => {
                tracing::debug!(credential = name.as_str(), "lease held elsewhere; skipped");
                report.failed_or_skipped = 1;
                return retry(attempts, report);
            }
        }
        let result: Result<Done> = async {
            let rec = self.rotator.record(&name).await?;
            let emergency = rec.emergency.is_some();
            let step_work = match (&rec.step, work) {
                // An emergency a crash interrupted: finish it now, whatever the overlap.
                _ if rec.emergency.is_some() => Work::Rotate,
                // A promotion a destination did not take: retried now (and with backoff).
                (Step::Promoted { unfinished: Some(_), .. }, _) => Work::Rotate,
                (Step::Promoted { revoke_after_ms, .. }, _) => {
                    if now.timestamp_millis() < *revoke_after_ms {
                        return Ok(Done {
                            index,
                            work: Work::RevokePrevious,
                            due_ms: *revoke_after_ms,
                            attempts: 0,
                            report,
                        });
                    }
                    Work::RevokePrevious
                }
                (Step::Idle, Work::Check) => {
                    let due = self.next_rotation(&name, &schedule).await?;
                    if due > now.timestamp_millis() {
                        return Ok(Done { index, work: Work::Rotate, due_ms: due, attempts: 0, report });
                    }
                    Work::Rotate
                }
                (Step::Idle, Work::RevokePrevious) => {
                    let due = self.next_rotation(&name, &schedule).await?;
                    return Ok(Done { index, work: Work::Rotate, due_ms: due, attempts: 0, report });
                }
                _ => Work::Rotate, // idle and due, or an interrupted rotation to resume
            };
            if step_work == Work::RevokePrevious {
                self.rotator.revoke_previous_if_due(&name, target).await?;
                report.revoked_previous = 1;
                let due = self.next_rotation(&name, &schedule).await?;
                return Ok(Done { index, work: Work::Rotate, due_ms: due, attempts: 0, report });
            }
            let rotation = if emergency {
                // Finished only if still recorded once held: another caller (the leak response,
                // an operator) may have finished it since the read above.
                match self.rotator.finish_emergency(&name, target).await? {
                    Some(r) => r,
                    None => {
                        return Ok(Done {
                            index,
                            work: Work::Check,
                            due_ms: now.timestamp_millis(),
                            attempts: 0,
                            report,
                        });
                    }
                }
            } else {
                self.rotator.rotate(&name, target).await?
            };
            match rotation {
                Rotation::Promoted { .. } => {
                    report.promoted = 1;
                    let until = self.rotator.clock().now() + self.rotator.overlap_for(&name);
                    Ok(Done {
                        index,
                        work: Work::RevokePrevious,
                        due_ms: until.timestamp_millis(),
                        attempts: 0,
                        report,
                    })
                }
                Rotation::InOverlap { until } => Ok(Done {
                    index,
                    work: Work::RevokePrevious,
                    due_ms: until.timestamp_millis(),
                    attempts,
                    report,
                }),
                // The target has no room yet (a key in its deletion grace): tried again then.
                Rotation::Waiting { until, .. } => Ok(Done {
                    index,
                    work: Work::Rotate,
                    due_ms: until.timestamp_millis(),
                    attempts: 0,
                    report,
                }),
                Rotation::RolledBack { .. } => {
                    report.rolled_back = 1;
                    Ok(retry(attempts, report))
                }
                Rotation::Partial { .. } | Rotation::RollbackIncomplete { .. } => {
                    report.unfinished = 1;
                    Ok(retry(attempts, report))
                }
            }
        }
        .await;
        let _ = lease::release(secrets, name.as_str(), holder).await;
        match result {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(credential = name.as_str(), attempts, error = %e, "scheduled rotation failed; retrying with backoff");
                report.failed_or_skipped += 1;
                retry(attempts, report)
            }
        }
    }

    /// Runs until `shutdown` turns true: starts due work as it falls due (at most
    /// `max_in_flight` at once), then stops starting work and waits for what is in flight.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) -> TickReport {
        let mut set = InFlight::default();
        let mut total = TickReport::default();
        loop {
            if *shutdown.borrow() {
                break;
            }
            self.spawn_due(&mut set);
            let wait = self
                .next_due()
                .map(|d| (d - self.rotator.clock().now()).to_std().unwrap_or(Duration::ZERO))
                .unwrap_or(self.config.poll)
                .min(self.config.poll)
                .max(Duration::from_millis(1));
            tokio::select! {
                Some(done) = set.join_next(), if !set.set.is_empty() => {
                    if let Some(d) = done {
                        self.finish(&d);
                        add(&mut total, d.report);
                    }
                }
                _ = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break; // the sender is gone: nobody can ask for more work
                    }
                }
            }
        }
        while let Some(done) = set.join_next().await {
            if let Some(d) = done {
                self.finish(&d);
                add(&mut total, d.report);
            }
        }
        total
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
