//! The PostgreSQL schema and its migrations (table `tokenward_schema`), one migrator at a time.

use super::{pg, pool_err};
use crate::error::{Result, StoreError};

pub(super) const SCHEMA_VERSION: i32 = 4;

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

/// Version 2: every token record carries its integrity tag (set by the token service on first
/// open for older rows).
const MIGRATION_2: &str = "ALTER TABLE tokens ADD COLUMN mac BYTEA;";

/// Version 3: a record is stored in its canonical binary encoding (`body`, which its tag covers);
/// `record` keeps the JSON of rows written before, until the token service rewrites them.
const MIGRATION_3: &str =
    "ALTER TABLE tokens ADD COLUMN body BYTEA; ALTER TABLE tokens ALTER COLUMN record DROP NOT NULL;";

/// Version 4: revocations found by time (a follower catching up after a lost connection).
const MIGRATION_4: &str = "CREATE INDEX tokens_revoked ON tokens(revoked_ms) WHERE revoked_ms IS NOT NULL;";

pub(super) async fn migrate(pool: &deadpool_postgres::Pool) -> Result<()> {
    let mut client = pool.get().await.map_err(pool_err)?;
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
    for (to, sql) in [(1, MIGRATION_1), (2, MIGRATION_2), (3, MIGRATION_3), (4, MIGRATION_4)] {
        if version < to {
            tx.batch_execute(sql).await.map_err(pg)?;
            tx.execute("INSERT INTO tokenward_schema (version) VALUES ($1)", &[&to]).await.map_err(pg)?;
            tracing::debug!(from = version, to, "the store's schema was brought up to date");
        }
    }
    tx.commit().await.map_err(pg)
}
