//! The append-only file log: one JSON object per line, written in batches, fsynced before a batch
//! is acknowledged, locked against a second writer, and cut back cleanly after a torn write.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::chain::{ChainHead, ChainVerifier, Entry, entry_hash_with};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::query::AuditQuery;
use crate::storage::LogStorage;

/// How the file log makes appends durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileSync {
    /// `fdatasync` after every appended batch, before it is acknowledged (the default). With the
    /// batched writer's group commit this is "fsync every N ms or N entries".
    Data,
    /// Leave it to the operating system: survives a process crash, not a power loss.
    Os,
}

/// An append-only audit log in a file of JSON lines (`docs/audit-format.md`).
///
/// Opening takes an exclusive lock on the file (a second writer gets [`AuditError::Locked`]),
/// cuts an incomplete last line — a write torn by a crash, never acknowledged — and checks that the
/// last entry hashes to itself. Verify the whole file with [`FileLog::verify`] or [`verify_file`].
///
/// [`FileLog::open_shared`] lets several processes append to one file (a daemon and the operator's
/// commands): the lock is taken for each batch instead, and the entries other writers appended
/// since are read and checked to chain on before the batch is.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    sync: FileSync,
    torn_bytes: u64,
    shared: bool,
    lock_wait: std::time::Duration,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    /// Bytes of complete, acknowledged entries.
    len: u64,
    head: ChainHead,
    buf: Vec<u8>,
    scratch: Vec<u8>,
    /// Set when an fsync failed: what reached the disk is unknown, so no more appends until reopened.
    poisoned: bool,
    /// Set by [`LogStorage::release`]: the lock is given up, so no more appends.
    released: bool,
}

impl FileLog {
    /// Opens (or creates) the log at `path`, fsyncing every batch.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        Self::open_with(path, FileSync::Data)
    }

    /// Opens (or creates) the log at `path` with the given durability.
    pub fn open_with(path: impl AsRef<Path>, sync: FileSync) -> Result<Self, AuditError> {
        Self::open_mode(path.as_ref(), sync, false)
    }

    /// Opens (or creates) the log at `path` for appending beside other processes that open it
    /// shared too: each batch takes the file's lock (waiting for another writer's batch), reads and
    /// checks what others appended since, cuts a tail torn by a writer that crashed, appends, syncs
    /// and unlocks. An exclusive writer ([`FileLog::open`]) and a shared one exclude each other.
    pub fn open_shared(path: impl AsRef<Path>, sync: FileSync) -> Result<Self, AuditError> {
        Self::open_mode(path.as_ref(), sync, true)
    }

    fn open_mode(path: &Path, sync: FileSync, shared: bool) -> Result<Self, AuditError> {
        let path = path.to_path_buf();
        // Created `0600`: the log says which tokens exist, who holds them and what they did.
        let file = token_core::private_fs::options()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(AuditError::io("open"))?;
        if shared {
            lock_shared_batch(&file, &path, std::time::Duration::from_secs(10))?;
        } else {
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(AuditError::Locked(format!(
                        "{} is open for writing elsewhere",
                        path.display()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(AuditError::io("lock")(e)),
            }
        }
        let opened = Self::open_locked(file, path, sync, shared);
        if shared && let Ok(log) = &opened {
            let g = log.inner.lock().unwrap_or_else(|p| p.into_inner());
            let _ = g.file.unlock();
        }
        opened
    }

    fn open_locked(mut file: File, path: PathBuf, sync: FileSync, shared: bool) -> Result<Self, AuditError> {
        let size = file.metadata().map_err(AuditError::io("stat"))?.len();
        let (complete, last_line) = last_line(&mut file, size)?;
        let torn_bytes = size - complete;
        if torn_bytes > 0 {
            file.set_len(complete).map_err(AuditError::io("cut the torn tail"))?;
            file.sync_all().map_err(AuditError::io("cut the torn tail"))?;
        }
        let head = match last_line {
            None => ChainHead::EMPTY,
            Some(bytes) => {
                let entry = parse_line(&bytes, 0)?;
                let mut scratch = Vec::new();
                if entry_hash_with(entry.seq, &entry.prev, &entry.event, &mut scratch) != entry.hash {
                    return Err(AuditError::Corrupt {
                        line: entry.seq + 1,
                        detail: "the last entry does not match its hash (edited)".into(),
                    });
                }
                ChainHead { len: entry.seq + 1, head: entry.hash }
            }
        };
        Ok(Self {
            path,
            sync,
            torn_bytes,
            shared,
            lock_wait: std::time::Duration::from_secs(10),
            inner: Mutex::new(Inner {
                file,
                len: complete,
                head,
                buf: Vec::with_capacity(1 << 16),
                scratch: Vec::with_capacity(256),
                poisoned: false,
                released: false,
            }),
        })
    }

    /// How long a shared log's batch waits for another writer's lock before it fails with
    /// [`AuditError::Locked`] (default 10 s).
    #[must_use]
    pub fn lock_wait(mut self, patience: std::time::Duration) -> Self {
        self.lock_wait = patience;
        self
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of an incomplete last line cut when the log was opened (0 after a clean shutdown).
    pub fn torn_bytes_cut(&self) -> u64 {
        self.torn_bytes
    }

    /// Appends `events` as the next entries, synchronously; durable per [`FileSync`] on return.
    /// On error nothing of the batch remains in the file.
    pub fn append_now(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *g;
        if inner.poisoned {
            return Err(AuditError::Unavailable(
                "an earlier fsync of the audit log failed; reopen it to recover".into(),
            ));
        }
        if inner.released {
            return Err(AuditError::Unavailable("the audit log was closed".into()));
        }
        if self.shared {
            lock_shared_batch(&inner.file, &self.path, self.lock_wait)?;
            let caught_up = catch_up(inner);
            if let Err(e) = caught_up {
                let _ = inner.file.unlock();
                return Err(e);
            }
        }
        let appended = self.append_locked(inner, events);
        if self.shared {
            let _ = inner.file.unlock();
        }
        appended
    }

    fn append_locked(&self, inner: &mut Inner, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        inner.buf.clear();
        let mut head = inner.head;
        for e in events {
            head.append_line(e, &mut inner.buf, &mut inner.scratch);
        }
        if let Err(e) = inner.file.write_all(&inner.buf) {
            // Take back whatever part of the batch reached the file.
            if let Err(t) = inner.file.set_len(inner.len) {
                inner.poisoned = true;
                tracing::error!(error = %t, "a failed append could not be taken back: the audit file refuses appends until reopened");
            }
            return Err(AuditError::io("append")(e));
        }
        if self.sync == FileSync::Data
            && let Err(e) = inner.file.sync_data()
        {
            inner.poisoned = true;
            let _ = inner.file.set_len(inner.len);
            tracing::error!(error = %e, "fsync of the audit file failed: it refuses appends until reopened");
            return Err(AuditError::io("fsync")(e));
        }
        inner.len += inner.buf.len() as u64;
        inner.head = head;
        Ok(head)
    }

    /// Where the log stands (for a shared log: as of this handle's last append).
    pub fn head_now(&self) -> ChainHead {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).head
    }

    /// Reads the entries from the start (a separate handle; appends may go on).
    pub fn reader(&self) -> Result<LogReader, AuditError> {
        LogReader::open(&self.path)
    }

    /// Verifies the whole file, and against `checkpoints`.
    pub fn verify(&self, checkpoints: &[ChainHead]) -> Result<ChainHead, AuditError> {
        verify_file(&self.path, checkpoints)
    }
}

#[async_trait]
impl LogStorage for FileLog {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        self.append_now(events)
    }

    /// Gives up the file's lock (the next writer may open it at once); appends are refused after.
    fn release(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.released = true;
        if !self.shared {
            let _ = g.file.unlock();
        }
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        Ok(self.head_now())
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        // Line n holds entry n: skip to `from` without parsing (an exporter paging through a large
        // log would otherwise parse every earlier entry for every page).
        let mut reader = self.reader()?;
        reader.skip_lines(from)?;
        reader.take(limit).collect()
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<Entry>, AuditError> {
        let mut out = Vec::new();
        for e in self.reader()? {
            let e = e?;
            if query.matches(&e) {
                out.push(e);
                if query.limit_value().is_some_and(|l| out.len() >= l) {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Verifies the log file at `path` from its first entry, and against `checkpoints`; reports the
/// first bad entry and why. Does not need the writer's lock.
pub fn verify_file(path: impl AsRef<Path>, checkpoints: &[ChainHead]) -> Result<ChainHead, AuditError> {
    let mut v = ChainVerifier::new(ChainHead::EMPTY).with_checkpoints(checkpoints.iter().copied());
    for e in LogReader::open(path.as_ref())? {
        v.push(&e?)?;
    }
    Ok(v.finish()?)
}

/// The entries of a log file, in order, each parsed strictly: a line must be exactly the bytes this
/// crate writes for the entry it holds. An incomplete last line (a torn write that a writer has not
/// yet cut) is an error.
#[derive(Debug)]
pub struct LogReader {
    r: BufReader<File>,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl LogReader {
    /// Passes over the next `n` lines unread (not parsed, not checked).
    pub(crate) fn skip_lines(&mut self, n: u64) -> Result<(), AuditError> {
        for _ in 0..n {
            self.buf.clear();
            if self.r.read_until(b'\n', &mut self.buf).map_err(AuditError::io("read"))? == 0 {
                break;
            }
            self.line += 1;
        }
        Ok(())
    }

    /// Reads the log at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let f = File::open(path).map_err(AuditError::io("open for reading"))?;
        Ok(Self {
            r: BufReader::with_capacity(1 << 16, f),
            line: 0,
            buf: Vec::with_capacity(512),
            done: false,
        })
    }
}

impl Iterator for LogReader {
    type Item = Result<Entry, AuditError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.buf.clear();
        match self.r.read_until(b'\n', &mut self.buf) {
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(_) => {
                self.line += 1;
                if self.buf.last() != Some(&b'\n') {
                    self.done = true;
                    return Some(Err(AuditError::Corrupt {
                        line: self.line,
                        detail: "incomplete last line (a torn write; opening the log for writing cuts it)"
                            .into(),
                    }));
                }
                let r = parse_line(&self.buf, self.line);
                if r.is_err() {
                    self.done = true;
                }
                Some(r)
            }
            Err(e) => {
                self.done = true;
                Some(Err(AuditError::io("read")(e)))
            }
        }
    }
}

/// Parses one stored line (with or without its newline) strictly.
pub(crate) fn parse_line(line: &[u8], line_no: u64) -> Result<Entry, AuditError> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let entry: Entry = serde_json::from_slice(body)
        .map_err(|e| AuditError::Corrupt { line: line_no, detail: format!("not a valid entry: {e}") })?;
    let mut again = Vec::with_capacity(line.len() + 1);
    entry.json_line_into(&mut again);
    if again.strip_suffix(b"\n") != Some(body) {
        return Err(AuditError::Corrupt { line: line_no, detail: "entry is not in canonical form".into() });
    }
    Ok(entry)
}

/// Takes the file's lock for one batch of a shared log, waiting a bounded time for another
/// process's batch (an exclusive writer that holds it for good is [`AuditError::Locked`]).
fn lock_shared_batch(file: &File, path: &Path, patience: std::time::Duration) -> Result<(), AuditError> {
    let deadline = std::time::Instant::now() + patience;
    let mut wait = std::time::Duration::from_micros(200);
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(wait);
                wait = (wait * 2).min(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked(format!(
                    "{} is held by another writer for over {patience:?} (one opened exclusively?)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(AuditError::io("lock")(e)),
        }
    }
}

/// With the lock held: reads what other writers appended since this handle's last batch, checks it
/// chains on from where this handle stands, and moves the head to its end; an incomplete last line
/// (a writer that crashed mid-batch: nobody else holds the lock) is cut.
fn catch_up(inner: &mut Inner) -> Result<(), AuditError> {
    let size = inner.file.metadata().map_err(AuditError::io("stat"))?.len();
    if size == inner.len {
        return Ok(());
    }
    if size < inner.len {
        return Err(AuditError::Corrupt {
            line: inner.head.len,
            detail: format!("the log shrank from {} to {size} bytes under a shared writer", inner.len),
        });
    }
    inner.file.seek(SeekFrom::Start(inner.len)).map_err(AuditError::io("read what others appended"))?;
    let mut tail = Vec::with_capacity(usize::try_from(size - inner.len).unwrap_or(0));
    Read::by_ref(&mut inner.file)
        .take(size - inner.len)
        .read_to_end(&mut tail)
        .map_err(AuditError::io("read what others appended"))?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut v = ChainVerifier::new(inner.head);
    for line in tail[..complete].split_inclusive(|&b| b == b'\n') {
        v.push(&parse_line(line, inner.head.len + 1)?)?;
    }
    let head = v.finish()?;
    if complete < tail.len() {
        let at = inner.len + complete as u64;
        inner.file.set_len(at).map_err(AuditError::io("cut a torn tail"))?;
        inner.file.sync_all().map_err(AuditError::io("cut a torn tail"))?;
    }
    inner.len += complete as u64;
    inner.head = head;
    Ok(())
}

/// Finds the end of the last complete line and that line's bytes, reading backwards.
fn last_line(file: &mut File, size: u64) -> Result<(u64, Option<Vec<u8>>), AuditError> {
    let mut window = 64 * 1024u64;
    loop {
        let start = size.saturating_sub(window);
        let mut buf = Vec::with_capacity(usize::try_from(size - start).unwrap_or(0));
        file.seek(SeekFrom::Start(start)).map_err(AuditError::io("read the tail"))?;
        Read::by_ref(file)
            .take(size - start)
            .read_to_end(&mut buf)
            .map_err(AuditError::io("read the tail"))?;
        let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') else {
            if start == 0 {
                return Ok((0, None)); // no complete line at all
            }
            window *= 4;
            continue;
        };
        let complete = start + last_nl as u64 + 1;
        match buf[..last_nl].iter().rposition(|&b| b == b'\n') {
            Some(prev_nl) => return Ok((complete, Some(buf[prev_nl + 1..=last_nl].to_vec()))),
            None if start == 0 => return Ok((complete, Some(buf[..=last_nl].to_vec()))),
            None => window *= 4,
        }
    }
}
