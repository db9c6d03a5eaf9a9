//! The PostgreSQL backend, for a service with many instances: a connection pool, the same schema
//! ideas as the embedded store, advisory locks for the per-purpose and per-secret rules, and
//! revocations announced with `NOTIFY` so other instances' verifier caches drop them.
//!
//! Every write is one transaction; PostgreSQL's default `synchronous_commit = on` makes each
//! acknowledged write durable (the server group-commits concurrent ones).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use token_core::{TokenId, TokenRecord};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::backend::Backend;
use crate::envelope::Sealed;
use crate::error::{Result, StoreError};
use crate::memory::check_active;
use crate::model::{Label, LabelChange, Labels, SecretName, SecretVersion, StoredToken, TokenQuery};

/// The channel revocations are announced on; the payload is `id@millis` items, comma-separated.
pub const REVOCATION_CHANNEL: &str = "tokenward_revocations";

/// The `NOTIFY` channel on which every issue is announced (payload: the token id), so other
/// instances' verifier caches take new tokens at once rather than at their next resync.
pub const ISSUE_CHANNEL: &str = "tokenward_issues";

const SCHEMA_VERSION: i32 = 1;

const MIGRATION_1: &str = "
CREATE TABLE IF NOT EXISTS tokenward_schema (version INTEGER NOT NULL);
CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    parent TEXT,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT,
    last_used_ms BIGINT,
    uses BIGINT NOT NULL DEFAULT 0,
    record TEXT NOT NULL
);
CREATE INDEX tokens_principal ON tokens(principal, purpose);
CREATE INDEX tokens_parent ON tokens(parent);
CREATE INDEX tokens_expires ON tokens(expires_ms);
CREATE TABLE versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    kek_id TEXT NOT NULL,
    wrapped_key BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX versions_kek ON versions(kek_id);
CREATE TABLE labels (
    name TEXT NOT NULL,
    label TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, label)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value BYTEA NOT NULL);
";

/// A store in a PostgreSQL database (or schema: set `search_path` in the connection string's
/// `options`).
#[derive(Clone)]
pub struct PostgresBackend {
    pool: Pool,
    config: tokio_postgres::Config,
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").field("pool", &self.pool.status()).finish_non_exhaustive()
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres pool: {e}"))
}

fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| StoreError::Corrupted { what: "timestamp", detail: "out of range".into() })
}

fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn row_token(row: &tokio_postgres::Row) -> Result<StoredToken> {
    let record: String = row.try_get(0).map_err(pg)?;
    let record: TokenRecord = serde_json::from_str(&record)
        .map_err(|e| StoreError::Corrupted { what: "token record", detail: e.to_string() })?;
    let last_used: Option<i64> = row.try_get(1).map_err(pg)?;
    let uses: i64 = row.try_get(2).map_err(pg)?;
    Ok(StoredToken {
        record,
        last_used: last_used.map(from_ms).transpose()?,
        uses: u64::try_from(uses).unwrap_or(0),
    })
}

impl PostgresBackend {
    /// Connects with a libpq-style connection string (`host=… port=… user=… dbname=…`), with a
    /// pool of at most `max_connections`, and brings the schema up to date.
    pub async fn connect(conn_str: &str, max_connections: usize) -> Result<Self> {
        let config: tokio_postgres::Config =
            conn_str.parse().map_err(|e| StoreError::Invalid(format!("postgres connection string: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .build()
            .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))?;
        let backend = Self { pool, config };
        backend.migrate().await?;
        Ok(backend)
    }

    async fn migrate(&self) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        // One migrator at a time across instances.
        tx.execute("SELECT pg_advisory_xact_lock(7234001)", &[]).await.map_err(pg)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tokenward_schema (version INTEGER NOT NULL)")
            .await
            .map_err(pg)?;
        let version: Option<i32> = tx
            .query_opt("SELECT MAX(version) FROM tokenward_schema", &[])
            .await
            .map_err(pg)?
            .and_then(|r| r.get(0));
        let version = version.unwrap_or(0);
        if version > SCHEMA_VERSION {
            return Err(StoreError::Invalid(format!(
                "store schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
            )));
        }
        if version < 1 {
            tx.batch_execute(MIGRATION_1).await.map_err(pg)?;
            tx.execute("INSERT INTO tokenward_schema (version) VALUES (1)", &[]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    /// Listens for revocations from every instance, on a connection of its own. The feed yields
    /// revoked ids as their transactions commit; it ends if the connection is lost (a cache then
    /// falls back to polling the backend).
    pub async fn listen_revocations(&self) -> Result<RevocationFeed> {
        use std::future::poll_fn;
        let (client, mut connection) = self.config.connect(NoTls).await.map_err(pg)?;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(msg) = poll_fn(|cx| connection.poll_message(cx)).await {
                match msg {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) if n.channel() == ISSUE_CHANNEL => {
                        if let Ok(id) = n.payload().parse::<TokenId>()
                            && tx.send(Change::Issued(id)).is_err()
                        {
                            return;
                        }
                    }
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        for item in n.payload().split(',') {
                            let Some((id, at)) = item.split_once('@') else { continue };
                            let (Ok(id), Ok(at)) = (id.parse::<TokenId>(), at.parse::<i64>()) else {
                                continue;
                            };
                            let Some(at) = DateTime::from_timestamp_millis(at) else { continue };
                            if tx.send(Change::Revoked(id, at)).is_err() {
                                return;
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        client
            .batch_execute(&format!("LISTEN {REVOCATION_CHANNEL}; LISTEN {ISSUE_CHANNEL}"))
            .await
            .map_err(pg)?;
        Ok(RevocationFeed { rx, _client: client })
    }
}

/// A change to the token set announced by an instance sharing the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// A token (tree member) was revoked at this time.
    Revoked(TokenId, DateTime<Utc>),
    /// A token was issued.
    Issued(TokenId),
}

/// Revocations (and issues) announced by any instance sharing the database.
pub struct RevocationFeed {
    rx: tokio::sync::mpsc::UnboundedReceiver<Change>,
    _client: tokio_postgres::Client,
}

impl RevocationFeed {
    /// The next revoked id with its revocation time (issues are skipped); `None` once the
    /// listening connection is gone.
    pub async fn recv(&mut self) -> Option<(TokenId, DateTime<Utc>)> {
        loop {
            if let Change::Revoked(id, at) = self.rx.recv().await? {
                return Some((id, at));
            }
        }
    }

    /// The next change, revocation or issue; `None` once the listening connection is gone.
    pub async fn recv_change(&mut self) -> Option<Change> {
        self.rx.recv().await
    }
}

impl std::fmt::Debug for RevocationFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevocationFeed").finish_non_exhaustive()
    }
}

fn as_sql(arg: &crate::sql::SqlArg) -> &(dyn tokio_postgres::types::ToSql + Sync) {
    match arg {
        crate::sql::SqlArg::Text(s) => s,
        crate::sql::SqlArg::Int(i) => i,
    }
}

#[async_trait]
impl Backend for PostgresBackend {
    async fn insert_token(&self, record: &TokenRecord, expected_active: &[TokenId]) -> Result<()> {
        let json = serde_json::to_string(record).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        let (principal, purpose) = (record.principal.as_str(), record.purpose.as_str());
        if record.parent.is_none() {
            // Serialise issues for one (principal, purpose) across all instances.
            tx.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 1))",
                &[&principal, &purpose],
            )
            .await
            .map_err(pg)?;
            let at = ms(record.created_at);
            let rows = tx
                .query(
                    "SELECT id FROM tokens WHERE principal = $1 AND purpose = $2 AND parent IS NULL
                     AND expires_ms > $3 AND (revoked_ms IS NULL OR revoked_ms > $3)",
                    &[&principal, &purpose, &at],
                )
                .await
                .map_err(pg)?;
            let mut found = Vec::with_capacity(rows.len());
            for r in rows {
                let id: String = r.get(0);
                found.push(id.parse().map_err(|e: token_core::TokenFormatError| StoreError::Corrupted {
                    what: "token id",
                    detail: e.to_string(),
                })?);
            }
            check_active(&found, expected_active)?;
        }
        let inserted = tx
            .execute(
                "INSERT INTO tokens (id, principal, purpose, parent, expires_ms, revoked_ms, record)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &record.id.to_string(),
                    &principal,
                    &purpose,
                    &record.parent.map(|p| p.to_string()),
                    &ms(record.expires_at),
                    &record.revoked_at.map(ms),
                    &json,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {
                // Delivered to listeners when (and only if) the transaction commits.
                tx.execute("SELECT pg_notify($1, $2)", &[&ISSUE_CHANNEL, &record.id.to_string()])
                    .await
                    .map_err(pg)?;
                tx.commit().await.map_err(pg)
            }
            Err(e) if is_unique_violation(&e) => {
                Err(StoreError::TokenRejected(format!("token id {} already exists", record.id)))
            }
            Err(e) => Err(pg(e)),
        }
    }

    async fn token(&self, id: TokenId) -> Result<Option<StoredToken>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let stmt = client
            .prepare_cached("SELECT record, last_used_ms, uses FROM tokens WHERE id = $1")
            .await
            .map_err(pg)?;
        let row = client.query_opt(&stmt, &[&id.to_string()]).await.map_err(pg)?;
        row.as_ref().map(row_token).transpose()
    }

    async fn tokens(&self, query: &TokenQuery) -> Result<Vec<StoredToken>> {
        let (sql, args) = crate::sql::token_query(query);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args.iter().map(as_sql).collect();
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client.query(&sql, &params).await.map_err(pg)?;
        rows.iter().map(row_token).collect()
    }

    async fn revoke_tree(&self, id: TokenId, at: DateTime<Utc>) -> Result<Vec<TokenId>> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        let id_text = id.to_string();
        if tx.query_opt("SELECT 1 FROM tokens WHERE id = $1", &[&id_text]).await.map_err(pg)?.is_none() {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        let at_text = serde_json::to_value(at).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let at_text = at_text.as_str().unwrap_or_default().to_owned();
        let rows = tx
            .query(
                "WITH RECURSIVE tree(id) AS (
                    SELECT $1::text UNION SELECT t.id FROM tokens t JOIN tree ON t.parent = tree.id)
                 UPDATE tokens SET revoked_ms = $2,
                     record = jsonb_set(record::jsonb, '{revoked_at}', to_jsonb($3::text))::text
                 WHERE id IN (SELECT id FROM tree) AND revoked_ms IS NULL
                 RETURNING id",
                &[&id_text, &ms(at), &at_text],
            )
            .await
            .map_err(pg)?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let s: String = r.get(0);
            out.push(s.parse().map_err(|e: token_core::TokenFormatError| StoreError::Corrupted {
                what: "token id",
                detail: e.to_string(),
            })?);
        }
        // Announce in the same transaction: delivered on commit, never for a rolled-back revoke.
        let ids: Vec<String> = out.iter().map(|id| format!("{id}@{}", ms(at))).collect();
        for chunk in ids.chunks(400) {
            tx.execute("SELECT pg_notify($1, $2)", &[&REVOCATION_CHANNEL, &chunk.join(",")])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        Ok(out)
    }

    async fn record_uses(&self, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        let stmt = tx
            .prepare(
                "UPDATE tokens SET last_used_ms = GREATEST(COALESCE(last_used_ms, $2), $2), uses = uses + $3
                 WHERE id = $1",
            )
            .await
            .map_err(pg)?;
        for (id, at, n) in uses {
            tx.execute(&stmt, &[&id.to_string(), &ms(*at), &i64::try_from(*n).unwrap_or(i64::MAX)])
                .await
                .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn insert_version(&self, v: &SecretVersion) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        let name = v.name.as_str();
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", &[&name]).await.map_err(pg)?;
        let latest: Option<i64> = tx
            .query_one("SELECT MAX(version) FROM versions WHERE name = $1", &[&name])
            .await
            .map_err(pg)?
            .get(0);
        let latest = u64::try_from(latest.unwrap_or(0)).unwrap_or(0);
        if v.version != latest + 1 {
            return Err(StoreError::Conflict(format!(
                "secret {} version {} is not the next (latest is {latest})",
                v.name, v.version
            )));
        }
        tx.execute(
            "INSERT INTO versions (name, version, kek_id, wrapped_key, ciphertext, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &name,
                &version_i64(v.version),
                &v.kek_id,
                &v.wrapped_key.0,
                &v.ciphertext.0,
                &ms(v.created_at),
            ],
        )
        .await
        .map_err(pg)?;
        tx.commit().await.map_err(pg)
    }

    async fn version(&self, name: &SecretName, version: u64) -> Result<Option<SecretVersion>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt(
                "SELECT kek_id, wrapped_key, ciphertext, created_ms FROM versions WHERE name = $1 AND version = $2",
                &[&name.as_str(), &version_i64(version)],
            )
            .await
            .map_err(pg)?;
        row.map(|r| {
            Ok(SecretVersion {
                name: name.clone(),
                version,
                kek_id: r.get(0),
                wrapped_key: Sealed(r.get(1)),
                ciphertext: Sealed(r.get(2)),
                created_at: from_ms(r.get(3))?,
            })
        })
        .transpose()
    }

    async fn latest_version(&self, name: &SecretName) -> Result<Option<u64>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let v: Option<i64> = client
            .query_one("SELECT MAX(version) FROM versions WHERE name = $1", &[&name.as_str()])
            .await
            .map_err(pg)?
            .get(0);
        Ok(v.and_then(|v| u64::try_from(v).ok()))
    }

    async fn labels(&self, name: &SecretName) -> Result<Labels> {
        let client = self.pool.get().await.map_err(pool_err)?;
        read_labels(&**client, name).await
    }

    async fn update_labels(&self, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
        let mut client = self.pool.get().await.map_err(pool_err)?;
        let tx = client.transaction().await.map_err(pg)?;
        tx.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 2))", &[&name.as_str()])
            .await
            .map_err(pg)?;
        let mut labels = read_labels(&*tx, name).await?;
        for c in changes {
            if labels.get(&c.label).copied() != c.expect {
                return Err(StoreError::Conflict(format!("label {} of {name} moved", c.label.as_str())));
            }
            if let Some(v) = c.set
                && tx
                    .query_opt(
                        "SELECT 1 FROM versions WHERE name = $1 AND version = $2",
                        &[&name.as_str(), &version_i64(v)],
                    )
                    .await
                    .map_err(pg)?
                    .is_none()
            {
                return Err(StoreError::Conflict(format!("{name} has no version {v}")));
            }
            match c.set {
                Some(v) => labels.insert(c.label, v),
                None => labels.remove(&c.label),
            };
        }
        tx.execute("DELETE FROM labels WHERE name = $1", &[&name.as_str()]).await.map_err(pg)?;
        for (label, v) in &labels {
            tx.execute(
                "INSERT INTO labels (name, label, version) VALUES ($1, $2, $3)",
                &[&name.as_str(), &label.as_str(), &version_i64(*v)],
            )
            .await
            .map_err(pg)?;
        }
        tx.commit().await.map_err(pg)
    }

    async fn versions_not_under(&self, kek_id: &str, limit: usize) -> Result<Vec<(SecretName, u64)>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let rows = client
            .query(
                "SELECT name, version FROM versions WHERE kek_id <> $1 ORDER BY name, version LIMIT $2",
                &[&kek_id, &i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await
            .map_err(pg)?;
        rows.iter()
            .map(|r| {
                let n: String = r.get(0);
                let v: i64 = r.get(1);
                Ok((
                    SecretName::new(&n)
                        .map_err(|e| StoreError::Corrupted { what: "secret name", detail: e.to_string() })?,
                    u64::try_from(v).unwrap_or(0),
                ))
            })
            .collect()
    }

    async fn rewrap_version(
        &self,
        name: &SecretName,
        version: u64,
        expect_kek: &str,
        new_kek: &str,
        wrapped_key: &Sealed,
    ) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = client
            .execute(
                "UPDATE versions SET kek_id = $4, wrapped_key = $5 WHERE name = $1 AND version = $2 AND kek_id = $3",
                &[&name.as_str(), &version_i64(version), &expect_kek, &new_kek, &wrapped_key.0],
            )
            .await
            .map_err(pg)?;
        if n == 1 {
            return Ok(());
        }
        let exists = client
            .query_opt(
                "SELECT 1 FROM versions WHERE name = $1 AND version = $2",
                &[&name.as_str(), &version_i64(version)],
            )
            .await
            .map_err(pg)?;
        Err(match exists {
            Some(_) => {
                StoreError::Conflict(format!("{name} version {version} is no longer under {expect_kek}"))
            }
            None => StoreError::NotFound(format!("{name} version {version}")),
        })
    }

    async fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let row = client.query_opt("SELECT value FROM meta WHERE key = $1", &[&key]).await.map_err(pg)?;
        Ok(row.map(|r| r.get(0)))
    }

    async fn set_meta(&self, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
        let client = self.pool.get().await.map_err(pool_err)?;
        let n = match expect {
            None => client
                .execute(
                    "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    &[&key, &value],
                )
                .await
                .map_err(pg)?,
            Some(old) => client
                .execute("UPDATE meta SET value = $3 WHERE key = $1 AND value = $2", &[&key, &old, &value])
                .await
                .map_err(pg)?,
        };
        if n == 1 { Ok(()) } else { Err(StoreError::Conflict(format!("metadata {key} changed"))) }
    }
}

async fn read_labels<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    name: &SecretName,
) -> Result<Labels> {
    let rows = client
        .query("SELECT label, version FROM labels WHERE name = $1", &[&name.as_str()])
        .await
        .map_err(pg)?;
    let mut out = Labels::new();
    for r in rows {
        let l: String = r.get(0);
        let v: i64 = r.get(1);
        out.insert(Label::parse(&l)?, u64::try_from(v).unwrap_or(0));
    }
    Ok(out)
}
