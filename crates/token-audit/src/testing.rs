//! For tests of code that audits: a log storage that can be broken on demand (appends fail, as on
//! a full disk) or stuck (appends hang, as on a dead network mount), to see an operation fail
//! closed (or proceed, fail-open) and recover; and the conformance kit every [`Witness`] backend
//! runs ([`witness_conformance`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::Arc;
//! use token_audit::{testing::Breakable, *};
//!
//! let log = Arc::new(Breakable::new(MemoryLog::new()));
//! log.set_broken(true);
//! let event = AuditEvent::new(token_core::chrono::Utc::now(), Actor::System, Action::Issue);
//! assert!(log.append(&[event]).await.is_err());
//! # }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;

use crate::chain::{ChainHead, Entry};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::storage::LogStorage;
use crate::witness::{Witness, WitnessError, WitnessedHead};

/// Wraps a storage; while broken, appends fail as a full disk would; while stuck, they wait until
/// it is unstuck (reads still work either way).
#[derive(Debug)]
pub struct Breakable<S> {
    inner: S,
    broken: AtomicBool,
    stuck: tokio::sync::watch::Sender<bool>,
}

impl<S: Default> Default for Breakable<S> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

impl<S> Breakable<S> {
    /// Wraps `inner`, working.
    pub fn new(inner: S) -> Self {
        Self { inner, broken: AtomicBool::new(false), stuck: tokio::sync::watch::Sender::new(false) }
    }

    /// Breaks (`true`) or repairs (`false`) it.
    pub fn set_broken(&self, broken: bool) {
        self.broken.store(broken, Ordering::SeqCst);
    }

    /// Makes appends hang (`true`) until called with `false`, which lets the waiting ones through.
    pub fn set_stuck(&self, stuck: bool) {
        self.stuck.send_replace(stuck);
    }

    /// The wrapped storage.
    pub fn inner(&self) -> &S {
        &self.inner
    }
}

#[async_trait]
impl<S: LogStorage> LogStorage for Breakable<S> {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        let mut stuck = self.stuck.subscribe();
        let _ = stuck.wait_for(|s| !*s).await;
        if self.broken.load(Ordering::SeqCst) {
            return Err(AuditError::Io {
                what: "append",
                source: std::io::Error::other("no space left (injected)"),
            });
        }
        self.inner.append(events).await
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        self.inner.head().await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        self.inner.read(from, limit).await
    }
}

/// The behaviour every [`Witness`] must have, on a witness that holds nothing yet: it panics with
/// a message naming the broken rule (a test kit reports as `assert!` does). `reopen` gives a second
/// handle on the same place (records must outlive the handle that pushed them).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use token_audit::{witnesses::FileWitness, testing};
/// let dir = tempfile::tempdir().unwrap();
/// let w = FileWitness::open(dir.path()).unwrap();
/// testing::witness_conformance(&w, || Box::new(FileWitness::open(dir.path()).unwrap())).await;
/// # }
/// ```
#[allow(clippy::panic)]
pub async fn witness_conformance(w: &dyn Witness, reopen: impl Fn() -> Box<dyn Witness>) {
    let at = |epoch, size| WitnessedHead {
        epoch,
        size,
        note: format!("kit/epoch/{epoch}\n{size}\nroot\n\n\u{2014} kit signature-of-{epoch}-{size}\n"),
    };
    let newest = |r: Result<Option<WitnessedHead>, WitnessError>| match r {
        Ok(n) => n,
        Err(e) => panic!("{}: newest failed: {e}", w.location()),
    };
    assert_eq!(newest(w.newest().await), None, "an empty witness holds no record");
    for (e, s) in [(0, 3), (0, 7)] {
        if let Err(e) = w.push(&at(e, s)).await {
            panic!("{}: push failed: {e}", w.location());
        }
    }
    assert_eq!(newest(w.newest().await), Some(at(0, 7)), "the newest is the greatest size");
    // Pushed later, but older: the newest stays the greatest position (two writers racing).
    if let Err(e) = w.push(&at(0, 5)).await {
        panic!("{}: pushing an older position failed: {e}", w.location());
    }
    assert_eq!(newest(w.newest().await), Some(at(0, 7)), "newest is by position, not by push order");
    // The same record again is not an error; another note at a held position is a conflict and
    // changes nothing.
    assert!(w.push(&at(0, 7)).await.is_ok(), "pushing the same record again is accepted");
    let mut forged = at(0, 7);
    forged.note.push_str("\u{2014} other signature\n");
    match w.push(&forged).await {
        Err(WitnessError::Conflict { epoch: 0, size: 7 }) => {}
        other => {
            panic!("{}: a different note at a held position must be a Conflict: {other:?}", w.location())
        }
    }
    assert_eq!(newest(w.newest().await), Some(at(0, 7)), "a refused push replaced nothing");
    // A later epoch is newer than any size of an earlier one.
    if let Err(e) = w.push(&at(1, 2)).await {
        panic!("{}: push failed: {e}", w.location());
    }
    assert_eq!(newest(w.newest().await), Some(at(1, 2)), "a later epoch is newer");
    let again = reopen();
    assert_eq!(newest(again.newest().await), Some(at(1, 2)), "records outlive the handle");
    assert_eq!(again.location(), w.location());
}
