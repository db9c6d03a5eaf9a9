//! The PostgreSQL log: several processes append at once and still form one chain.
//!
//! Each batch is one transaction that takes a transaction-scoped advisory lock, reads the head,
//! links its events and inserts them, so appenders queue on the lock and every entry links to the
//! one committed before it. Rows hold the entry's stored line (the file log's exact JSON) plus
//! indexed columns for queries; a trigger refuses `UPDATE`, `DELETE` and `TRUNCATE` (a superuser
//! can still drop it: the chain and checkpoints are what detect that).

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use crate::chain::{ChainHash, ChainHead, Entry};
use crate::error::AuditError;
use crate::event::AuditEvent;
use crate::file::parse_line;
use crate::query::AuditQuery;
use crate::storage::LogStorage;

const SCHEMA_VERSION: i32 = 1;
const MIGRATION_LOCK: i64 = 7_234_101;
const APPEND_LOCK: i64 = 7_234_102;

const MIGRATION_1: &str = r"
CREATE TABLE tokenward_audit (
    seq     BIGINT PRIMARY KEY CHECK (seq >= 0),
    prev    BYTEA NOT NULL CHECK (length(prev) = 32),
    hash    BYTEA NOT NULL CHECK (length(hash) = 32),
    time_ms BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    token   TEXT,
    line    TEXT NOT NULL
);
CREATE INDEX tokenward_audit_by_token ON tokenward_audit (token, seq) WHERE token IS NOT NULL;
CREATE INDEX tokenward_audit_by_actor ON tokenward_audit (actor, seq);
CREATE INDEX tokenward_audit_by_action ON tokenward_audit (action, seq);
CREATE INDEX tokenward_audit_by_time ON tokenward_audit (time_ms);
CREATE FUNCTION tokenward_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tokenward_audit is append-only';
END
$$;
CREATE TRIGGER tokenward_audit_no_rewrite BEFORE UPDATE OR DELETE ON tokenward_audit
    FOR EACH ROW EXECUTE FUNCTION tokenward_audit_append_only();
CREATE TRIGGER tokenward_audit_no_truncate BEFORE TRUNCATE ON tokenward_audit
    FOR EACH STATEMENT EXECUTE FUNCTION tokenward_audit_append_only();
";

fn pg(e: tokio_postgres::Error) -> AuditError {
    AuditError::database("postgres", e)
}

/// An audit log in a PostgreSQL table (`tokenward_audit`, in the connection's schema).
///
/// Its operations run on the tokio runtime it was connected from (where its pooled connections
/// are driven), whichever thread calls them — the batched writer's thread included.
#[derive(Clone)]
pub struct PostgresLog {
    pool: Pool,
    rt: tokio::runtime::Handle,
}

impl std::fmt::Debug for PostgresLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresLog").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

impl PostgresLog {
    /// Connects (libpq-style connection string; set `search_path` in `options` for a schema) with
    /// at most `max_connections`, and creates or checks the table. Call it from a tokio runtime
    /// that outlives the log.
    pub async fn connect(conn_str: &str, max_connections: usize) -> Result<Self, AuditError> {
        let config: tokio_postgres::Config =
            conn_str.parse().map_err(|e| AuditError::database("parsing the connection string", e))?;
        let manager =
            Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| AuditError::database("postgres pool", e))?;
        let log = Self { pool, rt: tokio::runtime::Handle::current() };
        log.migrate().await?;
        Ok(log)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, AuditError> {
        self.pool.get().await.map_err(|e| AuditError::database("postgres pool", e))
    }

    async fn migrate(&self) -> Result<(), AuditError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tokenward_audit_schema (version INTEGER NOT NULL)")
            .await
            .map_err(pg)?;
        let version: Option<i32> = tx
            .query_one("SELECT MAX(version) FROM tokenward_audit_schema", &[])
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(pg)?;
        let version = version.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(AuditError::Database {
                context: format!(
                    "audit schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
                ),
                source: None,
            });
        }
        if version < 1 {
            tx.batch_execute(MIGRATION_1).await.map_err(pg)?;
            tx.execute("INSERT INTO tokenward_audit_schema (version) VALUES (1)", &[]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// Runs `f` on the log's runtime and waits for it from any runtime or thread.
    async fn on_rt<T: Send + 'static>(
        &self,
        f: impl Future<Output = Result<T, AuditError>> + Send + 'static,
    ) -> Result<T, AuditError> {
        self.rt.spawn(f).await.map_err(|e| AuditError::database("the audit task failed", e))?
    }

    async fn append_owned(self, events: Vec<AuditEvent>) -> Result<ChainHead, AuditError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK]).await.map_err(pg)?;
        let mut head = match tx
            .query_opt("SELECT seq, hash FROM tokenward_audit ORDER BY seq DESC LIMIT 1", &[])
            .await
            .map_err(pg)?
        {
            None => ChainHead::EMPTY,
            Some(row) => {
                let seq: i64 = row.try_get(0).map_err(pg)?;
                let hash: Vec<u8> = row.try_get(1).map_err(pg)?;
                let hash: [u8; 32] = hash.try_into().map_err(|_| corrupt(seq, "hash is not 32 bytes"))?;
                ChainHead { len: seq_u64(seq)? + 1, head: ChainHash(hash) }
            }
        };
        let n = events.len();
        let (mut seqs, mut prevs, mut hashes, mut times) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let (mut actors, mut actions, mut tokens, mut lines) =
            (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
        let mut scratch = Vec::with_capacity(256);
        let mut line = Vec::with_capacity(512);
        for e in &events {
            seqs.push(i64::try_from(head.len).map_err(|_| corrupt(i64::MAX, "sequence overflow"))?);
            prevs.push(head.head.0.to_vec());
            line.clear();
            // Links the entry (hash and line from one formatting of its time and id) and advances.
            let hash = head.append_line(e, &mut line, &mut scratch);
            line.pop(); // the newline
            hashes.push(hash.0.to_vec());
            times.push(e.time.timestamp_millis());
            actors.push(e.actor.key());
            actions.push(e.action.name());
            tokens.push(e.token.map(|t| t.to_string()));
            lines.push(String::from_utf8_lossy(&line).into_owned());
        }
        tx.execute(
            "INSERT INTO tokenward_audit (seq, prev, hash, time_ms, actor, action, token, line) \
             SELECT * FROM UNNEST($1::int8[], $2::bytea[], $3::bytea[], $4::int8[], $5::text[], \
             $6::text[], $7::text[], $8::text[])",
            &[&seqs, &prevs, &hashes, &times, &actors, &actions, &tokens, &lines],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)?;
        Ok(head)
    }

    async fn select(self, sql: String, params: Vec<Param>) -> Result<Vec<Entry>, AuditError> {
        let client = self.client().await?;
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
        let rows = client.query(&sql, &refs).await.map_err(pg)?;
        rows.iter()
            .map(|row| {
                let seq: i64 = row.try_get(0).map_err(pg)?;
                let line: String = row.try_get(1).map_err(pg)?;
                let entry = parse_line(line.as_bytes(), seq_u64(seq)? + 1)?;
                if i64::try_from(entry.seq).ok() != Some(seq) {
                    return Err(corrupt(seq, "row's sequence differs from its entry's"));
                }
                Ok(entry)
            })
            .collect()
    }
}

enum Param {
    I64(i64),
    Text(String),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::I64(v) => v,
            Param::Text(v) => v,
        }
    }
}

fn seq_u64(seq: i64) -> Result<u64, AuditError> {
    u64::try_from(seq).map_err(|_| corrupt(seq, "negative sequence"))
}

fn corrupt(seq: i64, detail: &str) -> AuditError {
    AuditError::Corrupt { line: u64::try_from(seq).unwrap_or(0), detail: detail.to_owned() }
}

#[async_trait]
impl LogStorage for PostgresLog {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        let this = self.clone();
        let events = events.to_vec();
        self.on_rt(this.append_owned(events)).await
    }

    async fn head(&self) -> Result<ChainHead, AuditError> {
        let this = self.clone();
        self.on_rt(async move {
            let client = this.client().await?;
            match client
                .query_opt("SELECT seq, hash FROM tokenward_audit ORDER BY seq DESC LIMIT 1", &[])
                .await
                .map_err(pg)?
            {
                None => Ok(ChainHead::EMPTY),
                Some(row) => {
                    let seq: i64 = row.try_get(0).map_err(pg)?;
                    let hash: Vec<u8> = row.try_get(1).map_err(pg)?;
                    let hash: [u8; 32] = hash.try_into().map_err(|_| corrupt(seq, "hash is not 32 bytes"))?;
                    Ok(ChainHead { len: seq_u64(seq)? + 1, head: ChainHash(hash) })
                }
            }
        })
        .await
    }

    async fn read(&self, from: u64, limit: usize) -> Result<Vec<Entry>, AuditError> {
        let from = i64::try_from(from).unwrap_or(i64::MAX);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = "SELECT seq, line FROM tokenward_audit WHERE seq >= $1 ORDER BY seq LIMIT $2".to_owned();
        self.on_rt(self.clone().select(sql, vec![Param::I64(from), Param::I64(limit)])).await
    }

    async fn query(&self, query: &AuditQuery) -> Result<Vec<Entry>, AuditError> {
        let AuditQuery { token, actor, action, from, until, .. } = query;
        let mut sql = String::from("SELECT seq, line FROM tokenward_audit WHERE true");
        let mut params = Vec::new();
        let mut add = |sql: &mut String, cond: &str, p: Param| {
            params.push(p);
            sql.push_str(&format!(" AND {cond} ${}", params.len()));
        };
        if let Some(t) = token {
            add(&mut sql, "token =", Param::Text(t.to_string()));
        }
        if let Some(a) = actor {
            add(&mut sql, "actor =", Param::Text(a.key()));
        }
        if let Some(a) = action {
            add(&mut sql, "action =", Param::Text(a.clone()));
        }
        if let Some(f) = from {
            add(&mut sql, "time_ms >=", Param::I64(f.timestamp_millis()));
        }
        if let Some(u) = until {
            add(&mut sql, "time_ms <", Param::I64(u.timestamp_millis()));
        }
        sql.push_str(" ORDER BY seq");
        if let Some(l) = query.limit_value() {
            sql.push_str(&format!(" LIMIT {l}"));
        }
        let rows = self.on_rt(self.clone().select(sql, params)).await?;
        // The indexed columns are not covered by the chain: confirm each row against its entry.
        Ok(rows.into_iter().filter(|e| query.matches(e)).collect())
    }
}
