//! The tasks a [`crate::Tokenward`] runs so nobody has to: cache resync, usage flush, eviction of
//! expired tokens, revoking previous credentials whose overlap ended (and finishing interrupted
//! emergencies), the scheduler, periodic checkpoints, and following other instances on PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use token_core::chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::inner::{Inner, Tasks};

/// How often each upkeep task runs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Upkeep {
    /// Catch up with the backend (the backstop for missed notices): revocations stored since the
    /// last pass (one indexed query, with a minute of slack for the revokers' clocks) and tokens
    /// the cache does not hold (their ids scanned, the missing ones read). Default 60 s.
    pub resync_every: Duration,
    /// Reload every valid token from the backend, checking each record's integrity tag again (a
    /// record edited outside Tokenward is refused): the backstop for everything else. It costs
    /// seconds of CPU per million tokens, so it runs far less often than the catch-up, and after
    /// a catch-up that failed. Default 15 min.
    pub full_resync_every: Duration,
    /// Persist use counters (last used, uses). Default 5 s.
    pub flush_usage_every: Duration,
    /// Drop expired tokens from the cache. Default 60 s.
    pub evict_every: Duration,
    /// Revoke previous credentials whose overlap ended, finish interrupted emergencies, and run
    /// the targets' own deferred work when it falls due (an IAM key deleted when its deletion
    /// grace ends), for credentials rotated through the handle. Default 1 s.
    pub sweep_every: Duration,
    /// With an audit log: move the store's binding to the log's head and push its signed tree
    /// head to the witness (if any), when the log grew. Default 10 s: the longest a crash can
    /// leave appended entries unbound (a revocation binds and pushes at once).
    pub bind_every: Duration,
}

impl Default for Upkeep {
    fn default() -> Self {
        Self {
            resync_every: Duration::from_secs(60),
            full_resync_every: Duration::from_secs(15 * 60),
            flush_usage_every: Duration::from_secs(5),
            evict_every: Duration::from_secs(60),
            sweep_every: Duration::from_secs(1),
            bind_every: Duration::from_secs(10),
        }
    }
}

impl Upkeep {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Upkeep::resync_every`].
    #[must_use]
    pub fn resync_every(mut self, d: Duration) -> Self {
        self.resync_every = d;
        self
    }

    /// Sets [`Upkeep::full_resync_every`].
    #[must_use]
    pub fn full_resync_every(mut self, d: Duration) -> Self {
        self.full_resync_every = d;
        self
    }

    /// Sets [`Upkeep::flush_usage_every`].
    #[must_use]
    pub fn flush_usage_every(mut self, d: Duration) -> Self {
        self.flush_usage_every = d;
        self
    }

    /// Sets [`Upkeep::evict_every`].
    #[must_use]
    pub fn evict_every(mut self, d: Duration) -> Self {
        self.evict_every = d;
        self
    }

    /// Sets [`Upkeep::bind_every`].
    #[must_use]
    pub fn bind_every(mut self, d: Duration) -> Self {
        self.bind_every = d;
        self
    }

    /// Sets [`Upkeep::sweep_every`].
    #[must_use]
    pub fn sweep_every(mut self, d: Duration) -> Self {
        self.sweep_every = d;
        self
    }
}

/// Follows other instances' changes on a backend that announces them (PostgreSQL's `NOTIFY`, or
/// any backend whose `listen_revocations` gives a feed), reconnecting when the feed ends.
pub(crate) struct Follower {
    backend: Arc<dyn token_store::Backend>,
    /// The feed the open's probe got, used first.
    first: Option<Box<dyn token_store::RevocationFeed>>,
}

impl Follower {
    /// A follower for `backend`, if it can announce changes: `None` for a backend that says it
    /// cannot (`NoRevocationFeed`: its instances learn of each other's changes through the
    /// periodic catch-up alone). A backend that can but does not answer now is followed: the
    /// follower retries.
    pub(crate) async fn probe(backend: &Arc<dyn token_store::Backend>) -> Option<Self> {
        match backend.listen_revocations().await {
            Ok(feed) => Some(Self { backend: Arc::clone(backend), first: Some(feed) }),
            Err(token_store::StoreError::NoRevocationFeed) => None,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for revocations yet; retrying");
                Some(Self { backend: Arc::clone(backend), first: None })
            }
        }
    }
}

/// Where the periodic backstop stands.
struct Backstop {
    /// The start of the last pass that succeeded: the next catch-up reads from there.
    caught_up_to: DateTime<Utc>,
    /// When the next full resync is due.
    full_at: tokio::time::Instant,
}

/// Runs `work` every `every` until `stop` turns true.
fn every<F, Fut>(every: Duration, mut stop: watch::Receiver<bool>, mut work: F) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every.max(Duration::from_millis(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // the first tick is immediate: open just did all of this
        loop {
            tokio::select! {
                _ = tick.tick() => work().await,
                _ = stop.changed() => return,
            }
        }
    })
}

pub(crate) fn start(
    inner: &Arc<Inner>,
    upkeep: Upkeep,
    follower: Option<Follower>,
    checkpoints: Option<JoinHandle<()>>,
) {
    let (stop, rx) = watch::channel(false);
    let mut handles = Vec::new();

    // The backstop: a catch-up every `resync_every`, a full resync every `full_resync_every`
    // (and after a catch-up that failed), one task so the two never race over the table. The
    // catch-up's start moves only when one succeeded (or a full resync did): nothing is skipped.
    let weak = Arc::downgrade(inner);
    let full_every = upkeep.full_resync_every.max(upkeep.resync_every);
    let state = Arc::new(std::sync::Mutex::new(Backstop {
        caught_up_to: inner.clock.now(),
        full_at: tokio::time::Instant::now() + full_every,
    }));
    handles.push(every(upkeep.resync_every, rx.clone(), move || {
        let (inner, state) = (weak.upgrade(), Arc::clone(&state));
        async move {
            let Some(inner) = inner else { return };
            let started = inner.clock.now();
            let (since, full) = {
                let s = state.lock().unwrap_or_else(|p| p.into_inner());
                (s.caught_up_to, tokio::time::Instant::now() >= s.full_at)
            };
            if !full {
                match inner.tokens.catch_up_at(since, inner.clock.now()).await {
                    Ok(c) => {
                        tracing::debug!(revoked = c.revocations, issued = c.loaded, "periodic catch-up");
                        state.lock().unwrap_or_else(|p| p.into_inner()).caught_up_to = started;
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "periodic catch-up failed; resyncing in full"),
                }
            }
            match inner.tokens.resync_at(started).await {
                Ok(_) => {
                    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
                    s.caught_up_to = started;
                    s.full_at = tokio::time::Instant::now() + full_every;
                }
                Err(e) => tracing::warn!(error = %e, "cache resync failed; the next pass retries it"),
            }
        }
    }));

    let weak = Arc::downgrade(inner);
    let mut since: DateTime<Utc> = DateTime::UNIX_EPOCH;
    handles.push(every(upkeep.flush_usage_every, rx.clone(), move || {
        let inner = weak.upgrade();
        let from = since;
        if let Some(i) = &inner {
            since = i.clock.now();
        }
        async move {
            let Some(inner) = inner else { return };
            if let Err(e) = inner.tokens.flush_usage(from).await {
                tracing::warn!(error = %e, "usage flush failed; the next one retries");
            }
        }
    }));

    let weak = Arc::downgrade(inner);
    handles.push(every(upkeep.evict_every, rx.clone(), move || {
        let inner = weak.upgrade();
        async move {
            let Some(inner) = inner else { return };
            let n = inner.tokens.cache().evict_expired(inner.clock.now());
            tracing::debug!(evicted = n, "expired tokens dropped from the cache");
        }
    }));

    let weak = Arc::downgrade(inner);
    // When each watched target next has deferred work of its own (an IAM key whose deletion
    // grace ends): asked then, not on every pass (each ask is a call to the provider).
    let target_due: Arc<std::sync::Mutex<std::collections::HashMap<String, DateTime<Utc>>>> = Arc::default();
    handles.push(every(upkeep.sweep_every, rx.clone(), move || {
        let (inner, target_due) = (weak.upgrade(), Arc::clone(&target_due));
        async move {
            let Some(inner) = inner else { return };
            let watched: Vec<_> =
                inner.watched.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
            for (name, target) in &watched {
                let now = inner.clock.now();
                let due = target_due.lock().unwrap_or_else(|p| p.into_inner()).get(name.as_str()).copied();
                if due.is_some_and(|d| d > now) {
                    continue;
                }
                let next = match target.upkeep().await {
                    Ok(Some(at)) => at,
                    Ok(None) => DateTime::<Utc>::MAX_UTC,
                    Err(e) => {
                        tracing::warn!(credential = name.as_str(), error = %e, "the target's upkeep failed; retrying");
                        now + token_core::chrono::TimeDelta::seconds(5)
                    }
                };
                target_due.lock().unwrap_or_else(|p| p.into_inner()).insert(name.as_str().to_owned(), next);
            }
            for (name, target) in watched {
                let result = async {
                    let rec = inner.rotator.record(&name).await?;
                    let revoking = matches!(rec.step, token_rotate::Step::Promoted { .. });
                    if rec.emergency.is_some() {
                        // Finished only if still recorded once held: another caller may have
                        // finished it since the read above.
                        let _ = inner.rotator.finish_emergency(&name, target.as_ref()).await?;
                    } else if inner.rotator.revoke_previous_if_due(&name, target.as_ref()).await? && revoking {
                        // A credential was just revoked: its target is asked again on the next
                        // pass (an IAM key's grace runs from now).
                        target_due.lock().unwrap_or_else(|p| p.into_inner()).remove(name.as_str());
                    }
                    // Revocations not yet proven at the provider: probed again, audited when
                    // refused (or given up on).
                    if !inner.rotator.record(&name).await?.unconfirmed.is_empty() {
                        inner.rotator.confirm_revocations(&name, target.as_ref()).await?;
                    }
                    Ok::<_, token_rotate::RotateError>(())
                };
                if let Err(e) = result.await {
                    tracing::warn!(credential = name.as_str(), error = %e, "rotation upkeep failed; retrying");
                }
            }
        }
    }));

    if let Some(guard) = inner.guard.clone() {
        let weak = Arc::downgrade(inner);
        handles.push(every(upkeep.bind_every, rx.clone(), move || {
            let (inner, guard) = (weak.upgrade(), guard.clone());
            async move {
                let Some(inner) = inner else { return };
                if let Err(e) = guard.seal(&inner.secrets, true).await {
                    tracing::warn!(error = %e, "binding the log / pushing to the witness failed; the next pass retries");
                }
            }
        }));
    }

    let scheduler = inner.scheduler.clone();
    handles.push(tokio::spawn(async move {
        let _ = scheduler.run(rx.clone()).await;
    }));

    if let Some(h) = checkpoints {
        let mut stop_rx = stop.subscribe();
        handles.push(tokio::spawn(async move {
            let _ = stop_rx.changed().await;
            h.abort();
        }));
    }

    if let Some(f) = follower {
        handles.push(follow(inner, f, stop.subscribe()));
    }

    *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()) = Some(Tasks { stop, handles });
}

/// Applies other instances' revocations and issues as they are announced; on (re)connecting,
/// catches up on what was announced while nobody listened — revocations stored since, and tokens
/// the cache does not hold — so nothing is missed (a revoker's clock more than a minute behind is
/// left to the full resync), and after a lost connection reconnects at once.
fn follow(inner: &Arc<Inner>, mut f: Follower, mut stop: watch::Receiver<bool>) -> JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        // Since when changes may have been missed: from before the cache was loaded at open
        // (generous slack: the load of a large store takes a while), then from each lost feed.
        use token_core::chrono::TimeDelta;
        let mut lost_at: Option<DateTime<Utc>> = Some(Utc::now() - TimeDelta::minutes(10));
        loop {
            let Some(inner) = weak.upgrade() else { return };
            let listened = match f.first.take() {
                Some(feed) => Ok(feed),
                None => f.backend.listen_revocations().await,
            };
            match listened {
                Ok(feed) => {
                    // Following first: a change announced from now on is applied at once.
                    let mut follower = inner.tokens.follow_revocations(feed);
                    // Then what was announced while nobody listened: revocations since then, in
                    // one indexed query (a minute of slack for the revokers' clocks), and tokens
                    // issued meanwhile, found by their ids — not a full reload (the full
                    // resync stays the backstop). If either fails, a full resync.
                    let since = lost_at.take().unwrap_or_else(Utc::now);
                    match inner.tokens.catch_up_at(since, inner.clock.now()).await {
                        Ok(c) => {
                            tracing::info!(
                                revoked = c.revocations,
                                issued = c.loaded,
                                "caught up on changes after (re)connecting"
                            )
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "catching up failed; resyncing");
                            if let Err(e) = inner.tokens.resync_at(inner.clock.now()).await {
                                tracing::warn!(error = %e, "resync after (re)connecting failed");
                            }
                        }
                    }
                    drop(inner);
                    tokio::select! {
                        ended = &mut follower => {
                            lost_at = Some(Utc::now());
                            match ended {
                                Ok(done) => tracing::warn!(
                                    revoked = done.revocations,
                                    loaded = done.loaded,
                                    unreadable = done.unreadable,
                                    refused = done.refused,
                                    "revocation feed ended; reconnecting"
                                ),
                                Err(e) => tracing::error!(error = %e, "the revocation follower failed; reconnecting"),
                            }
                        }
                        _ = stop.changed() => {
                            follower.abort();
                            return;
                        }
                    }
                    // A feed that worked and ended (a lost connection): reconnect at once; the
                    // wait below is for a server that refuses connections.
                    continue;
                }
                Err(e) => {
                    drop(inner);
                    lost_at.get_or_insert_with(Utc::now);
                    tracing::warn!(error = %e, "cannot listen for revocations; retrying");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = stop.changed() => return,
            }
        }
    })
}
