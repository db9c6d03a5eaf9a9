//! The passes: the due-check, starting what is due within the in-flight bound, finishing each
//! rotation (the next due time, or a retry with backoff), and the loop that runs until shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use token_store::SecretName;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::schedule::{Schedule, jitter01};
use super::{LOG_TARGET, TickReport, TokioScheduler, Work, add};
use crate::error::Result;
use crate::lease;
use crate::rotator::Rotation;
use crate::state::Step;
use crate::target::RotationTarget;

/// The rotations in flight, each task's credential kept so a task that fails is named.
#[derive(Default)]
pub(super) struct InFlight {
    set: JoinSet<Done>,
    names: HashMap<tokio::task::Id, String>,
}

impl InFlight {
    /// The next finished rotation: `None` when none is in flight, `Some(None)` for a task that
    /// panicked or was cancelled (logged: its credential is not scheduled again until the
    /// scheduler restarts).
    pub(super) async fn join_next(&mut self) -> Option<Option<Done>> {
        Some(match self.set.join_next_with_id().await? {
            Ok((id, done)) => {
                self.names.remove(&id);
                Some(done)
            }
            Err(e) => {
                let credential = self.names.remove(&e.id()).unwrap_or_default();
                if e.is_panic() {
                    tracing::error!(
                        target: LOG_TARGET,
                        credential,
                        "a rotation task panicked: the credential is not rotated again until the scheduler restarts"
                    );
                } else {
                    tracing::warn!(target: LOG_TARGET, credential, "a rotation task was cancelled");
                }
                None
            }
        })
    }
}

pub(super) struct Done {
    pub(super) index: usize,
    pub(super) work: Work,
    pub(super) due_ms: i64,
    pub(super) attempts: u32,
    pub(super) report: TickReport,
}

impl TokioScheduler {
    /// The due-check: indexes of entries due at `now` and not already running.
    pub fn due_at(&self, now: DateTime<Utc>) -> Vec<usize> {
        let now = now.timestamp_millis();
        // A dense scan of due times (a running entry's is i64::MAX): 8 bytes per credential.
        let t = self.lock();
        t.due.iter().enumerate().filter(|(_, d)| **d <= now).map(|(i, _)| i).collect()
    }

    fn backoff(&self, attempts: u32) -> TimeDelta {
        let d = self.config.retry_base.saturating_mul(1u32 << attempts.min(16)).min(self.config.retry_max);
        TimeDelta::from_std(d).unwrap_or(TimeDelta::seconds(300))
    }

    /// Starts what is due into `set`.
    pub(super) fn spawn_due(self: &Arc<Self>, set: &mut InFlight) {
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

    pub(super) fn finish(&self, d: &Done) {
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
                tracing::debug!(target: LOG_TARGET, credential = name.as_str(), "lease held elsewhere; skipped");
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
                tracing::warn!(target: LOG_TARGET, credential = name.as_str(), attempts, error = %e, "scheduled rotation failed; retrying with backoff");
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
