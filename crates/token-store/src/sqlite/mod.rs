//! The embedded default backend: one SQLite file in WAL mode.
//!
//! Durability: revocations, secret versions, label moves, KEK re-wraps and metadata are fsynced
//! before they are acknowledged (`synchronous=FULL` for their transactions). Token issues and use
//! counters run under `synchronous=NORMAL`: acknowledged once in the WAL, they survive the process
//! being killed (tested with SIGKILL) and are fsynced with the next durable write or checkpoint — the
//! group commit the design allows for issues; a power loss can lose the last issues, never a
//! revocation.
//!
//! Why SQLite: a single file, no server, decades of crash-safety testing, transactions for the
//! compare-and-swap and one-active rules, and indexes for the queries. It is bundled (compiled in),
//! so nothing needs installing.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::Connection;
use token_core::{TokenId, lookup::TokenRecord};

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::{BackendError, Result, StoreError};
use crate::integrity::RecordKey;
use crate::model::{LabelChange, Labels, SecretName, SecretVersion, TokenQuery, TokenRow};

mod schema;
mod secrets;
mod tokens;

/// Records per chunk when a large query streams.
const STREAM_CHUNK: usize = 4096;

/// A store in one local SQLite file.
#[derive(Clone)]
pub struct SqliteBackend {
    // Field order matters on drop: the main connection closes first, then the checkpointer's,
    // which, being the last, checkpoints the WAL into the main file.
    conn: Arc<Mutex<Connection>>,
    _checkpointer: Option<Arc<Checkpointer>>,
}

/// Checkpoints the WAL from a thread and connection of its own, so that commits never pay for it
/// (SQLite's automatic checkpoint runs inside the commit that crosses the threshold).
struct Checkpointer {
    stop: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tokenward-sqlite-checkpoint".into())
            .spawn(move || {
                // A checkpoint that fails leaves the WAL to grow until the next one (nothing is
                // lost): routine while busy, worth a warning when closing.
                let checkpoint = |mode: &str| {
                    if let Err(e) = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(())) {
                        if mode == "TRUNCATE" {
                            tracing::warn!(error = %e, "the store's closing checkpoint failed; the WAL is kept");
                        } else {
                            tracing::debug!(mode, error = %e, "a WAL checkpoint failed");
                        }
                    }
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(std::time::Duration::from_millis(100))
                {
                    checkpoint("PASSIVE");
                }
                // On close, the whole WAL goes into the main file and the WAL is emptied.
                checkpoint("TRUNCATE");
            })
            .map_err(|e| {
                StoreError::Backend(BackendError::new("starting the sqlite checkpoint thread", e))
            })?;
        Ok(Self { stop: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        if let Some(t) = self.thread.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for SqliteBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteBackend").finish_non_exhaustive()
    }
}

/// Creates the store file empty and `0600` if it is missing, before SQLite opens it (SQLite would
/// create it under the umask, typically `0644`; an empty file is a new database to it).
fn create_private(path: &Path) -> Result<()> {
    // SQLite's own names for a memory database and URIs are not files to create.
    if path.as_os_str() == ":memory:" || path.as_os_str().as_encoded_bytes().starts_with(b"file:") {
        return Ok(());
    }
    match token_core::private_fs::options().write(true).create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            Err(StoreError::Backend(BackendError::new(format!("creating the store {}", path.display()), e)))
        }
    }
}

/// Warns when the store, or its `-wal` or `-shm`, is open to other users.
fn warn_if_exposed(path: &Path) {
    let mut files = vec![path.to_path_buf()];
    for suffix in ["-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        files.push(name.into());
    }
    for file in files {
        if let Ok(Some(mode)) = token_core::private_fs::exposed_mode(&file) {
            tracing::warn!(
                "the store file {} is open to other users (mode {mode:04o}): its salt, key check and \
                 wrapped keys let them guess the passphrase offline; `chmod 600` it",
                file.display()
            );
        }
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(BackendError::new("sqlite", e))
}

impl SqliteBackend {
    /// Opens (creating if needed) the store file at `path` and brings its schema up to date.
    ///
    /// A new store is created `0600` (SQLite gives its `-wal` and `-shm` the same mode); opening
    /// one that others can read logs a warning: its salt, key check and wrapped keys are enough to
    /// guess the passphrase offline.
    pub fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let conn = Connection::open(path).map_err(db)?;
        let mut backend = Self::init(conn)?;
        warn_if_exposed(path);
        // Commits no longer checkpoint; a thread of the store's own does, every 100 ms.
        backend
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db)?;
        backend._checkpointer = Some(Arc::new(Checkpointer::start(path)?));
        tracing::debug!(path = %path.display(), "opened the SQLite store");
        Ok(backend)
    }

    /// A private in-memory database (for tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::init(Connection::open_in_memory().map_err(db)?)
    }

    fn init(mut conn: Connection) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(db)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(db)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        // A small page cache (4 MiB; the OS caches the file anyway): SQLite walks its whole page
        // cache at the end of every write transaction (pcache1Truncate), so a large one slows each
        // issue — with a million tokens stored, 64 MiB gave 16.5k issues/s, 4 MiB 25.5k/s.
        conn.pragma_update(None, "cache_size", -4096).map_err(db)?;
        schema::migrate(&mut conn)?;
        Ok(Self { conn: Arc::new(Mutex::new(conn)), _checkpointer: None })
    }

    /// Loads many token records in one transaction, as they are (an import or a benchmark set-up),
    /// each tagged under `key`: no one-active check, ids must be new.
    pub fn bulk_insert_tokens(&self, records: &[TokenRecord], key: &RecordKey) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens::bulk_insert(&mut conn, records, key)
    }

    /// Runs a point read or a small write that waits for no fsync (token issues and use counters,
    /// under `synchronous=NORMAL`) on the calling thread: it takes microseconds, less than handing
    /// it to another thread would cost.
    async fn inline<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut Connection) -> Result<T>,
    {
        let mut guard = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Runs `f` in a transaction that is fsynced before it returns (`synchronous=FULL` for it):
    /// revocations, secret versions, label moves, re-wraps and metadata, which must survive a
    /// power loss once acknowledged.
    async fn with_durable<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        self.with(move |conn| {
            conn.pragma_update(None, "synchronous", "FULL").map_err(db)?;
            let result = f(conn);
            conn.pragma_update(None, "synchronous", "NORMAL").map_err(db)?;
            result
        })
        .await
    }

    /// Runs `f` (a write that waits for an fsync, or a large query) on the connection, off the
    /// async executor's threads when inside a tokio runtime.
    async fn with<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let run = move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&mut guard)
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(run)
                .await
                .map_err(|e| StoreError::Backend(BackendError::new("the sqlite worker failed", e)))?,
            Err(_) => run(),
        }
    }
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn insert_token(
        &self,
        record: &TokenRecord,
        key: &RecordKey,
        expected_active: &[TokenId],
    ) -> Result<()> {
        self.inline(|conn| tokens::insert(conn, record, key, expected_active)).await
    }

    async fn token(&self, id: TokenId) -> Result<Option<TokenRow>> {
        self.inline(|conn| tokens::get(conn, id)).await
    }

    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<TokenRow>> {
        let query = query.clone();
        self.with(move |conn| tokens::query(conn, &query)).await
    }

    async fn count_tokens(&self, query: &TokenQuery) -> Result<Option<usize>> {
        let query = query.clone();
        self.with(move |conn| tokens::count(conn, &query)).await.map(Some)
    }

    async fn visit_tokens(
        &self,
        query: &TokenQuery,
        visit: &mut (dyn FnMut(Vec<TokenRow>) -> Result<()> + Send),
    ) -> Result<()> {
        // Read and decode on a worker thread while the caller checks what came before: chunks go
        // through a small bounded channel, so at most a few chunks are held at once.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<TokenRow>>>(4);
        let owned = query.clone();
        let conn = Arc::clone(&self.conn);
        let reader = move || {
            let mut guard = conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let sent = tokens::stream(&mut guard, &owned, STREAM_CHUNK, &mut |chunk| {
                tx.blocking_send(Ok(chunk))
                    .map_err(|_| StoreError::Backend("the reader's caller went away".into()))
            });
            if let Err(e) = sent {
                let _ = tx.blocking_send(Err(e));
            }
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            let mut guard = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            return tokens::stream(&mut guard, query, STREAM_CHUNK, visit);
        };
        let worker = handle.spawn_blocking(reader);
        let mut outcome = Ok(());
        while let Some(chunk) = rx.recv().await {
            if let Err(e) = chunk.and_then(&mut *visit) {
                outcome = Err(e);
                break;
            }
        }
        drop(rx);
        worker.await.map_err(|e| StoreError::Backend(BackendError::new("the sqlite worker failed", e)))?;
        outcome
    }

    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>, key: &RecordKey) -> Result<Vec<TokenId>> {
        // A revocation is acknowledged only once fsynced.
        let key = key.clone();
        self.with_durable(move |conn| tokens::revoke_tree(conn, id, at, &key)).await
    }

    async fn upgrade_token_records(&self, key: &RecordKey) -> Result<usize> {
        let key = key.clone();
        self.with_durable(move |conn| tokens::upgrade(conn, &key)).await
    }

    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
        self.inline(|conn| tokens::record_uses(conn, uses)).await
    }

    async fn insert_version(&self, v: &SecretVersion) -> Result<()> {
        let v = v.clone();
        self.with_durable(move |conn| secrets::insert_version(conn, &v)).await
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        self.inline(|conn| secrets::version(conn, name, version)).await
    }

    async fn secret_names(&self) -> Result<Vec<(SecretName, u64)>> {
        self.inline(secrets::names).await
    }

    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>> {
        self.inline(|conn| secrets::latest_version(conn, name)).await
    }

    async fn labels(&self, name: &SecretName) -> Result<Labels> {
        self.inline(|conn| secrets::read_labels(conn, name)).await
    }

    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        let (name, changes) = (name.clone(), changes.to_vec());
        self.with_durable(move |conn| secrets::update_labels(conn, &name, &changes)).await
    }

    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>> {
        let kek_id = kek_id.to_owned();
        self.with(move |conn| secrets::versions_not_under(conn, &kek_id, limit)).await
    }

    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> Result<()> {
        let (name, expect, new, wrapped) =
            (name.clone(), expect_kek.to_owned(), new_kek.to_owned(), wrapped_key.clone());
        self.with_durable(move |conn| secrets::rewrap_version(conn, &name, version, &expect, &new, &wrapped))
            .await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        self.inline(|conn| secrets::meta(conn, key)).await
    }

    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
        let (key, expect, value) = (key.to_owned(), expect.map(<[u8]>::to_vec), value.to_vec());
        self.with_durable(move |conn| secrets::set_meta(conn, &key, expect.as_deref(), &value)).await
    }
}
