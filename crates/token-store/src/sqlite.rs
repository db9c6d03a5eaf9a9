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
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use token_core::{TokenId, TokenRecord};

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::{Result, StoreError};
use crate::memory::check_active;
use crate::model::{Label, LabelChange, Labels, SecretName, SecretVersion, StoredToken, TokenQuery};

const SCHEMA_VERSION: i64 = 3;

const MIGRATION_1: &str = "
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    parent TEXT,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_used_ms INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL
) STRICT;
CREATE INDEX tokens_principal ON tokens(principal, purpose);
CREATE INDEX tokens_parent ON tokens(parent);
CREATE INDEX tokens_expires ON tokens(expires_ms);
CREATE TABLE versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_key BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;
CREATE INDEX versions_kek ON versions(kek_id);
CREATE TABLE labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, label)
) STRICT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT;
";

/// Version 2 keeps a token's verification view in columns, so a cache loads without parsing JSON.
const MIGRATION_2: &str = "
ALTER TABLE tokens ADD COLUMN digest BLOB;
ALTER TABLE tokens ADD COLUMN not_before_ms INTEGER;
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN max_uses INTEGER;
ALTER TABLE tokens ADD COLUMN idle_ms INTEGER;
";

/// Version 3 indexes parents only where there is one (most tokens are roots): an issue writes one
/// index page fewer.
const MIGRATION_3: &str = "
CREATE TABLE tokens_v3 (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    parent TEXT,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_used_ms INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    digest BLOB,
    not_before_ms INTEGER,
    scopes TEXT,
    max_uses INTEGER,
    idle_ms INTEGER
) STRICT;
INSERT INTO tokens_v3 SELECT id, principal, purpose, parent, expires_ms, revoked_ms, last_used_ms, uses, record,
    digest, not_before_ms, scopes, max_uses, idle_ms FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v3 RENAME TO tokens;
CREATE INDEX tokens_principal ON tokens(principal, purpose);
CREATE INDEX tokens_parent ON tokens(parent) WHERE parent IS NOT NULL;
CREATE INDEX tokens_expires ON tokens(expires_ms);
";

const INSERT_TOKEN: &str = "INSERT INTO tokens
    (id, principal, purpose, parent, expires_ms, revoked_ms, record, digest, not_before_ms, scopes, max_uses, idle_ms)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

fn digest_bytes(d: &token_core::TokenDigest) -> Vec<u8> {
    let mut out = Vec::with_capacity(36);
    out.extend_from_slice(&d.key_id().to_be_bytes());
    out.extend_from_slice(d.mac());
    out
}

fn insert_token_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    record: &TokenRecord,
) -> rusqlite::Result<usize> {
    let json =
        serde_json::to_string(record).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    stmt.execute(params![
        record.id.to_string(),
        record.principal.as_str(),
        record.purpose.as_str(),
        record.parent.map(|p| p.to_string()),
        ms(record.expires_at),
        record.revoked_at.map(ms),
        json,
        digest_bytes(&record.digest),
        token_core::TokenView::not_before_ms_of(record),
        record.scopes.to_string(),
        record.limits.max_uses.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
        record.limits.idle_timeout.map(|d| d.num_milliseconds()),
    ])
}

/// Fills the view columns of rows written before schema version 2.
fn backfill_view_columns(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    let rows: Vec<(String, String)> = {
        let mut stmt = tx.prepare("SELECT id, record FROM tokens WHERE digest IS NULL").map_err(db)?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).map_err(db)?;
        rows.collect::<rusqlite::Result<_>>().map_err(db)?
    };
    for (id, json) in rows {
        let record: TokenRecord =
            serde_json::from_str(&json).map_err(|e| corrupt("token record")(e.to_string()))?;
        tx.execute(
            "UPDATE tokens SET digest = ?2, not_before_ms = ?3, scopes = ?4, max_uses = ?5, idle_ms = ?6 WHERE id = ?1",
            params![
                id,
                digest_bytes(&record.digest),
                token_core::TokenView::not_before_ms_of(&record),
                record.scopes.to_string(),
                record.limits.max_uses.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                record.limits.idle_timeout.map(|d| d.num_milliseconds()),
            ],
        )
        .map_err(db)?;
    }
    Ok(())
}

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
                let checkpoint = |mode: &str| {
                    let _ = conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |_| Ok(()));
                };
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    rx.recv_timeout(std::time::Duration::from_millis(100))
                {
                    checkpoint("PASSIVE");
                }
                // On close, the whole WAL goes into the main file and the WAL is emptied.
                checkpoint("TRUNCATE");
            })
            .map_err(|e| StoreError::Backend(format!("starting the checkpoint thread: {e}")))?;
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

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

fn corrupt(what: &'static str) -> impl Fn(String) -> StoreError {
    move |detail| StoreError::Corrupted { what, detail }
}

impl SqliteBackend {
    /// Opens (creating if needed) the store file at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let conn = Connection::open(path).map_err(db)?;
        let mut backend = Self::init(conn)?;
        // Commits no longer checkpoint; a thread of the store's own does, every 100 ms.
        backend
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(db)?;
        backend._checkpointer = Some(Arc::new(Checkpointer::start(path)?));
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
        // 64 MiB of page cache: the id index of a million tokens stays in memory.
        conn.pragma_update(None, "cache_size", -65536).map_err(db)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "store schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
            )));
        }
        if version < 1 {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(db)?;
            tx.execute_batch(MIGRATION_1).map_err(db)?;
            tx.pragma_update(None, "user_version", 1).map_err(db)?;
            tx.commit().map_err(db)?;
        }
        if version < 2 {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(db)?;
            tx.execute_batch(MIGRATION_2).map_err(db)?;
            backfill_view_columns(&tx)?;
            tx.pragma_update(None, "user_version", 2).map_err(db)?;
            tx.commit().map_err(db)?;
        }
        if version < 3 {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(db)?;
            tx.execute_batch(MIGRATION_3).map_err(db)?;
            tx.pragma_update(None, "user_version", 3).map_err(db)?;
            tx.commit().map_err(db)?;
        }
        Ok(Self { conn: Arc::new(Mutex::new(conn)), _checkpointer: None })
    }

    /// Loads many token records in one transaction, as they are (an import or a benchmark set-up):
    /// no one-active check, ids must be new.
    pub fn bulk_insert_tokens(&self, records: &[TokenRecord]) -> Result<()> {
        let mut conn = self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        {
            let mut stmt = tx.prepare_cached(INSERT_TOKEN).map_err(db)?;
            for record in records {
                insert_token_row(&mut stmt, record).map_err(db)?;
            }
        }
        tx.commit().map_err(db)
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
                .map_err(|e| StoreError::Backend(format!("sqlite worker failed: {e}")))?,
            Err(_) => run(),
        }
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupted { what: "timestamp", detail: "out of range".into() })
}

fn row_token(record: String, last_used: Option<i64>, uses: i64) -> Result<StoredToken> {
    let record: TokenRecord =
        serde_json::from_str(&record).map_err(|e| corrupt("token record")(e.to_string()))?;
    Ok(StoredToken {
        record,
        last_used: last_used.map(from_ms).transpose()?,
        uses: u64::try_from(uses).unwrap_or(0),
    })
}

fn active_ids(conn: &Connection, record: &TokenRecord) -> Result<Vec<TokenId>> {
    let at = ms(record.created_at);
    let mut stmt = conn
        .prepare_cached(
            "SELECT id FROM tokens WHERE principal = ?1 AND purpose = ?2 AND parent IS NULL
             AND expires_ms > ?3 AND (revoked_ms IS NULL OR revoked_ms > ?3)",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(params![record.principal.as_str(), record.purpose.as_str(), at], |r| r.get::<_, String>(0))
        .map_err(db)?;
    let mut out = Vec::new();
    for id in rows {
        out.push(
            id.map_err(db)?
                .parse()
                .map_err(|e: token_core::TokenFormatError| corrupt("token id")(e.to_string()))?,
        );
    }
    Ok(out)
}

fn query_sql(query: &TokenQuery) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let (sql, args) = crate::sql::token_query(query);
    let args = args
        .into_iter()
        .map(|a| match a {
            crate::sql::SqlArg::Text(t) => Value::Text(t),
            crate::sql::SqlArg::Int(i) => Value::Integer(i),
        })
        .collect();
    (sql, args)
}

#[async_trait]
impl Backend for SqliteBackend {
    async fn insert_token(&self, record: &TokenRecord, expected_active: &[TokenId]) -> Result<()> {
        let record = record.clone();
        let expected = expected_active.to_vec();
        self.inline(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            if record.parent.is_none() {
                check_active(&active_ids(&tx, &record)?, &expected)?;
            }
            let inserted =
                tx.prepare_cached(INSERT_TOKEN).and_then(|mut stmt| insert_token_row(&mut stmt, &record));
            match inserted {
                Ok(_) => tx.commit().map_err(db),
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::ConstraintViolation =>
                {
                    Err(StoreError::TokenRejected(format!("token id {} already exists", record.id)))
                }
                Err(e) => Err(db(e)),
            }
        })
        .await
    }

    async fn token(&self, id: TokenId) -> Result<Option<StoredToken>> {
        self.inline(move |conn| {
            let row = conn
                .query_row(
                    "SELECT record, last_used_ms, uses FROM tokens WHERE id = ?1",
                    [id.to_string()],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, i64>(2)?)),
                )
                .optional()
                .map_err(db)?;
            row.map(|(rec, lu, uses)| row_token(rec, lu, uses)).transpose()
        })
        .await
    }

    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<StoredToken>> {
        let (sql, args) = query_sql(query);
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args), |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<i64>>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (rec, lu, uses) = row.map_err(db)?;
                out.push(row_token(rec, lu, uses)?);
            }
            Ok(out)
        })
        .await
    }

    async fn views(&self, at: DateTime<Utc>) -> Result<Vec<(TokenId, token_core::TokenView)>> {
        self.with(move |conn| load_views(conn, ms(at))).await
    }

    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>) -> Result<Vec<TokenId>> {
        // A revocation is acknowledged only once fsynced.
        self.with_durable(move |conn| revoke_tree_tx(conn, id, at)).await
    }

    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
        let uses = uses.to_vec();
        self.inline(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE tokens SET last_used_ms = MAX(COALESCE(last_used_ms, ?2), ?2), uses = uses + ?3
                         WHERE id = ?1",
                    )
                    .map_err(db)?;
                for (id, at, n) in uses {
                    stmt.execute(params![id.to_string(), ms(at), i64::try_from(n).unwrap_or(i64::MAX)]).map_err(db)?;
                }
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn insert_version(&self, v: &SecretVersion) -> Result<()> {
        let v = v.clone();
        self.with_durable(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let latest: Option<i64> = tx
                .query_row("SELECT MAX(version) FROM versions WHERE name = ?1", [v.name.as_str()], |r| {
                    r.get(0)
                })
                .map_err(db)?;
            let latest = u64::try_from(latest.unwrap_or(0)).unwrap_or(0);
            if v.version != latest + 1 {
                return Err(StoreError::Conflict(format!(
                    "secret {} version {} is not the next (latest is {latest})",
                    v.name, v.version
                )));
            }
            tx.execute(
                "INSERT INTO versions (name, version, kek_id, wrapped_key, ciphertext, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    v.name.as_str(),
                    i64::try_from(v.version).unwrap_or(i64::MAX),
                    v.kek_id,
                    v.wrapped_key.0,
                    v.ciphertext.0,
                    ms(v.created_at)
                ],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        let name = name.clone();
        self.inline(move |conn| {
            let row = conn
                .query_row(
                    "SELECT kek_id, wrapped_key, ciphertext, created_ms FROM versions WHERE name = ?1 AND version = ?2",
                    params![name.as_str(), i64::try_from(version).unwrap_or(i64::MAX)],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?)),
                )
                .optional()
                .map_err(db)?;
            row.map(|(kek_id, wrapped, ct, created)| {
                Ok(SecretVersion {
                    name,
                    version,
                    kek_id,
                    wrapped_key: Sealed(wrapped),
                    ciphertext: Sealed(ct),
                    created_at: from_ms(created)?,
                })
            })
            .transpose()
        })
        .await
    }

    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>> {
        let name = name.clone();
        self.inline(move |conn| {
            let v: Option<i64> = conn
                .query_row("SELECT MAX(version) FROM versions WHERE name = ?1", [name.as_str()], |r| r.get(0))
                .map_err(db)?;
            Ok(v.and_then(|v| u64::try_from(v).ok()))
        })
        .await
    }

    async fn labels(&self, name: &SecretName) -> Result<Labels> {
        let name = name.clone();
        self.inline(move |conn| read_labels(conn, &name)).await
    }

    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        let name = name.clone();
        let changes = changes.to_vec();
        self.with_durable(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let mut labels = read_labels(&tx, &name)?;
            for c in &changes {
                if labels.get(&c.label).copied() != c.expect {
                    return Err(StoreError::Conflict(format!("label {} of {name} moved", c.label.as_str())));
                }
                if let Some(v) = c.set {
                    let found: Option<i64> = tx
                        .query_row(
                            "SELECT 1 FROM versions WHERE name = ?1 AND version = ?2",
                            params![name.as_str(), i64::try_from(v).unwrap_or(i64::MAX)],
                            |r| r.get(0),
                        )
                        .optional()
                        .map_err(db)?;
                    if found.is_none() {
                        return Err(StoreError::Conflict(format!("{name} has no version {v}")));
                    }
                }
                match c.set {
                    Some(v) => labels.insert(c.label, v),
                    None => labels.remove(&c.label),
                };
            }
            tx.execute("DELETE FROM labels WHERE name = ?1", [name.as_str()]).map_err(db)?;
            for (label, v) in &labels {
                tx.execute(
                    "INSERT INTO labels (name, label, version) VALUES (?1, ?2, ?3)",
                    params![name.as_str(), label.as_str(), i64::try_from(*v).unwrap_or(i64::MAX)],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)
        })
        .await
    }

    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>> {
        let kek_id = kek_id.to_owned();
        self.with(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT name, version FROM versions WHERE kek_id != ?1 ORDER BY name, version LIMIT ?2",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map(params![kek_id, i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                })
                .map_err(db)?;
            let mut out = Vec::new();
            for row in rows {
                let (n, v) = row.map_err(db)?;
                out.push((
                    SecretName::new(&n).map_err(|e| corrupt("secret name")(e.to_string()))?,
                    u64::try_from(v).unwrap_or(0),
                ));
            }
            Ok(out)
        })
        .await
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
        self.with_durable(move |conn| {
            let v = i64::try_from(version).unwrap_or(i64::MAX);
            let n = conn
                .execute(
                    "UPDATE versions SET kek_id = ?4, wrapped_key = ?5 WHERE name = ?1 AND version = ?2 AND kek_id = ?3",
                    params![name.as_str(), v, expect, new, wrapped.0],
                )
                .map_err(db)?;
            if n == 1 {
                return Ok(());
            }
            let exists: Option<i64> = conn
                .query_row("SELECT 1 FROM versions WHERE name = ?1 AND version = ?2", params![name.as_str(), v], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            Err(match exists {
                Some(_) => StoreError::Conflict(format!("{name} version {version} is no longer under {expect}")),
                None => StoreError::NotFound(format!("{name} version {version}")),
            })
        })
        .await
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.to_owned();
        self.inline(move |conn| {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()
                .map_err(db)
        })
        .await
    }

    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
        let (key, expect, value) = (key.to_owned(), expect.map(<[u8]>::to_vec), value.to_vec());
        self.with_durable(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
            let current: Option<Vec<u8>> =
                tx.query_row("SELECT value FROM meta WHERE key = ?1", [&key], |r| r.get(0)).optional().map_err(db)?;
            if current != expect {
                return Err(StoreError::Conflict(format!("metadata {key} changed")));
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map_err(db)?;
            tx.commit().map_err(db)
        })
        .await
    }
}

fn read_labels(conn: &Connection, name: &SecretName) -> Result<Labels> {
    let mut stmt = conn.prepare_cached("SELECT label, version FROM labels WHERE name = ?1").map_err(db)?;
    let rows =
        stmt.query_map([name.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db)?;
    let mut out = Labels::new();
    for row in rows {
        let (l, v) = row.map_err(db)?;
        out.insert(Label::parse(&l)?, u64::try_from(v).unwrap_or(0));
    }
    Ok(out)
}

fn revoke_tree_tx(conn: &mut Connection, id: TokenId, at: DateTime<Utc>) -> Result<Vec<TokenId>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM tokens WHERE id = ?1", [id.to_string()], |r| r.get(0))
        .optional()
        .map_err(db)?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("token {id}")));
    }
    let mut to_revoke = Vec::new();
    {
        let mut stmt = tx
            .prepare(
                "WITH RECURSIVE tree(id) AS (
                            SELECT ?1 UNION SELECT tokens.id FROM tokens JOIN tree ON tokens.parent = tree.id)
                         SELECT tokens.id, tokens.record FROM tokens JOIN tree ON tokens.id = tree.id
                         WHERE tokens.revoked_ms IS NULL",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([id.to_string()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(db)?;
        for row in rows {
            to_revoke.push(row.map_err(db)?);
        }
    }
    let mut out = Vec::with_capacity(to_revoke.len());
    for (tid, json) in to_revoke {
        let mut record: TokenRecord =
            serde_json::from_str(&json).map_err(|e| corrupt("token record")(e.to_string()))?;
        record.revoked_at = Some(at);
        let json = serde_json::to_string(&record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        tx.execute(
            "UPDATE tokens SET revoked_ms = ?2, record = ?3 WHERE id = ?1",
            params![tid, ms(at), json],
        )
        .map_err(db)?;
        out.push(record.id);
    }
    tx.commit().map_err(db)?;
    Ok(out)
}

/// Every unexpired token's view, straight from the columns: scope sets and principals are parsed
/// once per distinct value and shared.
fn load_views(conn: &mut Connection, at_ms: i64) -> Result<Vec<(TokenId, token_core::TokenView)>> {
    use std::collections::HashMap;
    use token_core::{PrincipalId, ScopeSet, TokenDigest, TokenView, UseLimits};
    let mut scopes: HashMap<String, ScopeSet> = HashMap::new();
    let mut principals: HashMap<String, PrincipalId> = HashMap::new();
    let mut stmt = conn
        .prepare(
            "SELECT id, principal, scopes, digest, not_before_ms, expires_ms, revoked_ms, max_uses, idle_ms,
                    uses, last_used_ms
             FROM tokens WHERE expires_ms > ?1",
        )
        .map_err(db)?;
    let mut rows = stmt.query([at_ms]).map_err(db)?;
    let mut out = Vec::new();
    let bad = |what: &'static str| move |e: String| StoreError::Corrupted { what, detail: e };
    while let Some(r) = rows.next().map_err(db)? {
        let id: TokenId = r
            .get_ref(0)
            .map_err(db)?
            .as_str()
            .map_err(|e| bad("token id")(e.to_string()))?
            .parse()
            .map_err(|e: token_core::TokenFormatError| bad("token id")(e.to_string()))?;
        let principal_text =
            r.get_ref(1).map_err(db)?.as_str().map_err(|e| bad("principal")(e.to_string()))?;
        let principal = intern(&mut principals, principal_text, |t| {
            PrincipalId::new(t).map_err(|e| bad("principal")(e.to_string()))
        })?;
        let scope_text = r.get_ref(2).map_err(db)?.as_str().map_err(|e| bad("scopes")(e.to_string()))?;
        let scope_set = intern(&mut scopes, scope_text, |t| {
            ScopeSet::parse(t).map_err(|e| bad("scopes")(e.to_string()))
        })?;
        let digest = r.get_ref(3).map_err(db)?.as_blob().map_err(|e| bad("digest")(e.to_string()))?;
        let (key_id, mac): ([u8; 4], [u8; 32]) = match (digest.get(..4), digest.get(4..)) {
            (Some(k), Some(m)) if digest.len() == 36 => (
                k.try_into().map_err(|_| bad("digest")("length".into()))?,
                m.try_into().map_err(|_| bad("digest")("length".into()))?,
            ),
            _ => return Err(bad("digest")(format!("{} bytes, expected 36", digest.len()))),
        };
        let max_uses: Option<i64> = r.get(7).map_err(db)?;
        let idle_ms: Option<i64> = r.get(8).map_err(db)?;
        let uses: i64 = r.get(9).map_err(db)?;
        let view = TokenView::from_parts(
            TokenDigest::from_parts(u32::from_be_bytes(key_id), mac),
            r.get(4).map_err(db)?,
            r.get(5).map_err(db)?,
            r.get(6).map_err(db)?,
            UseLimits {
                max_uses: max_uses.map(|m| u64::try_from(m).unwrap_or(0)),
                idle_timeout: idle_ms.map(chrono::TimeDelta::milliseconds),
            },
            scope_set,
            principal,
            u64::try_from(uses).unwrap_or(0),
            r.get(10).map_err(db)?,
        );
        out.push((id, view));
    }
    Ok(out)
}

/// The value parsed from `text`, parsed once per distinct text and shared (cloning is a reference
/// count).
fn intern<T: Clone>(
    seen: &mut std::collections::HashMap<String, T>,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T>,
) -> Result<T> {
    if let Some(v) = seen.get(text) {
        return Ok(v.clone());
    }
    let v = parse(text)?;
    seen.insert(text.to_owned(), v.clone());
    Ok(v)
}
