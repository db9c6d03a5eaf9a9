//! The batched writer: emitters hand events to an in-memory queue (a lock, a push) and a thread of
//! its own chains them into the log in batches — group commit: one append and one fsync per
//! `max_batch` events or per `max_delay`, whichever comes first.
//!
//! Backpressure: a *busy* log slows emitters down, a *stuck* one refuses them. When the queue is
//! full an emitter waits for room, which the writer makes every time it takes a batch; only when
//! no room appears for `full_queue_wait` (the writer made no progress that long) is the event
//! refused. A log whose appends fail refuses at once, while the writer retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::chain::ChainHead;
use crate::checkpoint::{CheckpointSigner, SignedCheckpoint};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::sink::{AuditSink, Ticket};
use crate::storage::LogStorage;
use crate::verification::AllowedVerification;

/// What waits in the queue: an event, or an allowed verification made into its event on the
/// writer's thread (so its allocations are made and freed there).
enum Queued {
    Event(AuditEvent),
    Allowed(AllowedVerification),
}

impl Queued {
    /// Puts the event at `events[n]`, refilling what is there when it can.
    fn place(self, events: &mut Vec<AuditEvent>, n: usize) {
        match (self, events.get_mut(n)) {
            (Queued::Allowed(v), Some(e)) => v.fill(e),
            (Queued::Allowed(v), None) => events.push(v.to_event()),
            (Queued::Event(e), Some(slot)) => *slot = e,
            (Queued::Event(e), None) => events.push(e),
        }
    }
}

/// How the writer batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    max_batch: usize,
    max_delay: Duration,
    queue_capacity: usize,
    full_queue_wait: Duration,
}

impl Default for WriterConfig {
    /// Natural group commit: a batch is written as soon as the writer is free, holding what
    /// queued while the previous batch was being written and fsynced (at most 1,000), so a lone
    /// event waits for one fsync and a busy log shares each fsync among many. 65,536 events may
    /// wait; an emitter finding the queue full waits for room, and is refused only when the writer
    /// has made no progress for 1 s.
    fn default() -> Self {
        Self::group_commit(1000, Duration::ZERO)
    }
}

impl WriterConfig {
    /// One append (and fsync, for a file log) per `max_entries` events or per `max_delay` after the
    /// first event of a batch arrived, whichever comes first. With a zero `max_delay` a batch is
    /// whatever queued during the previous write (the lowest latency; batches still grow with load).
    pub fn group_commit(max_entries: usize, max_delay: Duration) -> Self {
        Self {
            max_batch: max_entries.max(1),
            max_delay,
            queue_capacity: 65_536,
            full_queue_wait: Duration::from_secs(1),
        }
    }

    /// One append (and fsync) per event.
    pub fn per_entry() -> Self {
        Self::group_commit(1, Duration::ZERO)
    }

    /// At most `n` events waiting.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// When the queue is full, wait up to `d` for room before refusing with
    /// [`AuditError::QueueFull`] (default 1 s). Room appears each time the writer takes a batch, so
    /// a busy log only slows emitters down; a refusal means the writer made no progress for `d`.
    /// Zero refuses at once. The wait blocks the emitting thread.
    pub fn full_queue_wait(mut self, d: Duration) -> Self {
        self.full_queue_wait = d;
        self
    }
}

#[derive(Clone, Debug, Default)]
struct Progress {
    committed: u64,
    failure: Option<Arc<str>>,
    closed: bool,
}

/// The queue: chunks of at most `max_batch` events, so the writer takes a batch in O(1) under the
/// lock (emitters never wait behind a copy), and spare chunks recycled.
#[derive(Default)]
struct Queue {
    chunks: VecDeque<Vec<Queued>>,
    len: usize,
    spare: Vec<Vec<Queued>>,
}

impl Queue {
    fn push(&mut self, event: Queued, max_batch: usize) {
        if self.chunks.back().is_none_or(|c| c.len() >= max_batch) {
            let chunk = self.spare.pop().unwrap_or_else(|| Vec::with_capacity(max_batch.min(1024)));
            self.chunks.push_back(chunk);
        }
        if let Some(c) = self.chunks.back_mut() {
            c.push(event);
            self.len += 1;
        }
    }

    /// The oldest chunk (at most `max_batch` events).
    fn take(&mut self) -> Vec<Queued> {
        let chunk = self.chunks.pop_front().unwrap_or_default();
        self.len -= chunk.len();
        chunk
    }

    fn recycle(&mut self, mut chunk: Vec<Queued>) {
        chunk.clear();
        if self.spare.len() < 4 && chunk.capacity() > 0 {
            self.spare.push(chunk);
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

struct State {
    queue: Queue,
    submitted: u64,
    failure: Option<Arc<str>>,
    closing: bool,
}

struct Shared {
    config: WriterConfig,
    state: Mutex<State>,
    /// Wakes the writer thread.
    wake: Condvar,
    /// Wakes emitters waiting for room or for a commit.
    room: Condvar,
    committed: AtomicU64,
    batches: AtomicU64,
    progress: watch::Sender<Progress>,
    head: Mutex<ChainHead>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The batched, asynchronous audit writer: an [`AuditSink`] over any [`LogStorage`].
///
/// Recording an event costs the caller a lock and a push. A thread of the writer's own (with a
/// private single-threaded runtime for async storages such as PostgreSQL) appends batches; a
/// failed append is retried with backoff, and while it fails the writer refuses new events, so a
/// fail-closed emitter refuses operations instead of stalling. Dropping the writer (or
/// [`AuditWriter::close`]) writes what is queued and stops.
pub struct AuditWriter {
    shared: Arc<Shared>,
    storage: Arc<dyn LogStorage>,
    thread: Mutex<Option<JoinHandle<Result<(), AuditError>>>>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("config", &self.shared.config)
            .field("committed", &self.shared.committed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl AuditWriter {
    /// Starts a writer appending to `storage`. Reads the storage's head first (so a checkpoint
    /// before any append is right).
    pub fn start(storage: Arc<dyn LogStorage>, config: WriterConfig) -> Result<Self, AuditError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(AuditError::io("start the writer's runtime"))?;
        let head = std::thread::scope(|s| s.spawn(|| rt.block_on(storage.head())).join())
            .map_err(|_| AuditError::Unavailable("reading the log's head panicked".into()))??;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State { queue: Queue::default(), submitted: 0, failure: None, closing: false }),
            wake: Condvar::new(),
            room: Condvar::new(),
            committed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            progress: watch::Sender::new(Progress::default()),
            head: Mutex::new(head),
        });
        let thread = std::thread::Builder::new()
            .name("tokenward-audit".into())
            .spawn({
                let shared = Arc::clone(&shared);
                let storage = Arc::clone(&storage);
                move || run(&shared, storage.as_ref(), &rt)
            })
            .map_err(AuditError::io("start the writer thread"))?;
        Ok(Self { shared, storage, thread: Mutex::new(Some(thread)) })
    }

    /// The storage written to (for reads and queries).
    pub fn storage(&self) -> &Arc<dyn LogStorage> {
        &self.storage
    }

    /// Waits until every event recorded so far is durable; returns the head after them.
    pub async fn flush(&self) -> Result<ChainHead, AuditError> {
        let ticket = Ticket(self.shared.lock().submitted);
        self.committed(ticket).await?;
        Ok(self.head())
    }

    /// Like [`AuditWriter::flush`], blocking the calling thread (not for async tasks).
    pub fn flush_blocking(&self) -> Result<ChainHead, AuditError> {
        let mut st = self.shared.lock();
        let target = st.submitted;
        loop {
            if self.shared.committed.load(Ordering::Acquire) >= target {
                return Ok(self.head());
            }
            if let Some(f) = &st.failure {
                return Err(AuditError::Unavailable(f.to_string()));
            }
            st = self.shared.room.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// The head after the last committed batch.
    pub fn head(&self) -> ChainHead {
        *self.shared.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Events committed, and batches (appends) it took.
    pub fn stats(&self) -> (u64, u64) {
        (self.shared.committed.load(Ordering::Relaxed), self.shared.batches.load(Ordering::Relaxed))
    }

    /// Flushes, then signs a checkpoint of the head (on demand; see
    /// [`AuditWriter::spawn_checkpoints`] for a schedule).
    pub async fn checkpoint(
        &self,
        signer: &CheckpointSigner,
        log: &str,
        now: DateTime<Utc>,
    ) -> Result<SignedCheckpoint, AuditError> {
        let head = self.flush().await?;
        Ok(signer.sign(log, head, now))
    }

    /// Signs a checkpoint every `every` (when the log has grown) on a task of the current tokio
    /// runtime and hands it to `export` (which should keep it away from the log).
    pub fn spawn_checkpoints(
        self: &Arc<Self>,
        signer: Arc<CheckpointSigner>,
        log: String,
        every: Duration,
        mut export: impl FnMut(SignedCheckpoint) + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let writer = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut last = None;
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(w) = writer.upgrade() else { return };
                let head = w.head();
                if last != Some(head) {
                    export(signer.sign(&log, head, Utc::now()));
                    last = Some(head);
                }
            }
        })
    }

    /// Writes what is queued and stops; reports the last failure if the queue could not be
    /// written. Later records are refused.
    pub fn close(&self) -> Result<(), AuditError> {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        let handle = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(h) = handle else { return Ok(()) };
        let result = h.join().map_err(|_| AuditError::Unavailable("the audit writer panicked".into()));
        self.storage.release();
        result?
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        if let Err(e) = self.close() {
            tracing::error!(error = %e, "the audit writer did not close cleanly: entries still queued may not be written");
        }
    }
}

impl AuditWriter {
    fn enqueue(&self, event: Queued) -> Result<Ticket, AuditError> {
        let c = &self.shared.config;
        let mut st = self.shared.lock();
        let mut deadline = None;
        loop {
            if st.closing {
                return Err(AuditError::Unavailable("the audit writer has shut down".into()));
            }
            if let Some(f) = &st.failure {
                return Err(AuditError::Unavailable(f.to_string()));
            }
            if st.queue.len() < c.queue_capacity {
                break;
            }
            let until = *deadline.get_or_insert_with(|| Instant::now() + c.full_queue_wait);
            let now = Instant::now();
            if now >= until {
                return Err(AuditError::QueueFull { capacity: c.queue_capacity });
            }
            st = self.shared.room.wait_timeout(st, until - now).unwrap_or_else(|p| p.into_inner()).0;
        }
        let was_empty = st.queue.is_empty();
        st.queue.push(event, c.max_batch);
        st.submitted += 1;
        let ticket = Ticket(st.submitted);
        let full = st.queue.len() == c.max_batch || st.queue.len() == c.queue_capacity;
        drop(st);
        if was_empty || full {
            self.shared.wake.notify_one();
        }
        Ok(ticket)
    }
}

#[async_trait]
impl AuditSink for AuditWriter {
    fn record(&self, event: AuditEvent) -> Result<Ticket, AuditError> {
        self.enqueue(Queued::Event(event))
    }

    fn record_allowed(&self, v: AllowedVerification) -> Result<Ticket, AuditError> {
        self.enqueue(Queued::Allowed(v))
    }

    async fn committed(&self, ticket: Ticket) -> Result<(), AuditError> {
        if self.shared.committed.load(Ordering::Acquire) >= ticket.0 {
            return Ok(());
        }
        let mut rx = self.shared.progress.subscribe();
        let p = rx
            .wait_for(|p| p.committed >= ticket.0 || p.failure.is_some() || p.closed)
            .await
            .map_err(|_| AuditError::Unavailable("the audit writer has shut down".into()))?
            .clone();
        if p.committed >= ticket.0 {
            Ok(())
        } else if let Some(f) = p.failure {
            Err(AuditError::Unavailable(f.to_string()))
        } else {
            Err(AuditError::Unavailable("the audit writer has shut down".into()))
        }
    }
}

/// The writer thread.
fn run(shared: &Shared, storage: &dyn LogStorage, rt: &tokio::runtime::Runtime) -> Result<(), AuditError> {
    let c = shared.config;
    let mut batch: Vec<Queued>;
    let mut events: Vec<AuditEvent> = Vec::new();
    let mut last_error = None;
    loop {
        let last_ticket;
        {
            let mut st = shared.lock();
            while st.queue.is_empty() && !st.closing {
                st = shared.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            if st.queue.is_empty() {
                break; // closing, nothing left
            }
            // Group commit: give the batch until `max_delay` to fill up (a full queue goes now:
            // emitters are waiting for room).
            let deadline = Instant::now() + c.max_delay;
            let enough = c.max_batch.min(c.queue_capacity);
            while st.queue.len() < enough && !st.closing {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = shared.wake.wait_timeout(st, deadline - now).unwrap_or_else(|p| p.into_inner()).0;
            }
            // At most `max_batch`; the rest waits for the next append.
            batch = st.queue.take();
            last_ticket = st.submitted - st.queue.len() as u64;
        }
        shared.room.notify_all();
        // The events of earlier batches are kept and refilled (their strings reused); `n` are this
        // batch's.
        let n = batch.len();
        for (i, q) in batch.drain(..).enumerate() {
            q.place(&mut events, i);
        }
        let events = &events[..n];
        // Append, retrying with backoff; meanwhile the writer refuses new events.
        let mut backoff = Duration::from_millis(20);
        let mut attempts = 0u32;
        loop {
            match rt.block_on(storage.append(events)) {
                Ok(head) => {
                    *shared.head.lock().unwrap_or_else(|p| p.into_inner()) = head;
                    let mut st = shared.lock();
                    st.failure = None;
                    shared.committed.store(last_ticket, Ordering::Release);
                    drop(st);
                    shared.batches.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(e) => {
                    attempts += 1;
                    let msg: Arc<str> = format!("appending to the audit log failed (retrying): {e}").into();
                    let closing = {
                        let mut st = shared.lock();
                        st.failure = Some(Arc::clone(&msg));
                        st.closing
                    };
                    shared.progress.send_modify(|p| p.failure = Some(Arc::clone(&msg)));
                    shared.room.notify_all();
                    if closing && attempts >= 5 {
                        last_error = Some(e);
                        break;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        shared.lock().queue.recycle(std::mem::take(&mut batch));
        let committed = shared.committed.load(Ordering::Acquire);
        shared.progress.send_modify(|p| {
            p.committed = committed;
            p.failure = None;
        });
        shared.room.notify_all();
        if last_error.is_some() {
            break;
        }
    }
    {
        let mut st = shared.lock();
        st.closing = true;
    }
    shared.progress.send_modify(|p| p.closed = true);
    shared.room.notify_all();
    match last_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
