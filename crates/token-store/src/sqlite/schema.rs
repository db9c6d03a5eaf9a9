//! The SQLite schema and its migrations (`PRAGMA user_version`).

use rusqlite::{Connection, TransactionBehavior};

use super::db;
use crate::error::{Result, StoreError};

pub(super) const SCHEMA_VERSION: i64 = 5;

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

/// Version 2 kept a token's verification view in columns (dropped again in version 4).
const MIGRATION_2: &str = "
ALTER TABLE tokens ADD COLUMN digest BLOB;
ALTER TABLE tokens ADD COLUMN not_before_ms INTEGER;
ALTER TABLE tokens ADD COLUMN scopes TEXT;
ALTER TABLE tokens ADD COLUMN max_uses INTEGER;
ALTER TABLE tokens ADD COLUMN idle_ms INTEGER;
";

/// Version 3 indexes parents only where there is one (most tokens are roots).
const MIGRATION_3: &str = "
CREATE INDEX IF NOT EXISTS tokens_parent_some ON tokens(parent) WHERE parent IS NOT NULL;
DROP INDEX IF EXISTS tokens_parent;
";

/// Version 4: every token record carries its integrity tag (`mac`, set by the token service on
/// first open for older rows). The view columns of version 2 go: a cache loads from the
/// authenticated record, never from unauthenticated copies of its fields.
const MIGRATION_4: &str = "
CREATE TABLE tokens_v4 (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    parent TEXT,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_used_ms INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    record TEXT NOT NULL,
    mac BLOB
) STRICT;
INSERT INTO tokens_v4 SELECT id, principal, purpose, parent, expires_ms, revoked_ms, last_used_ms, uses, record, NULL
    FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v4 RENAME TO tokens;
CREATE INDEX tokens_principal ON tokens(principal, purpose);
CREATE INDEX tokens_parent ON tokens(parent) WHERE parent IS NOT NULL;
CREATE INDEX tokens_expires ON tokens(expires_ms);
";

/// Version 5: a record is stored in its canonical binary encoding (`body`, which its tag covers);
/// `record` keeps the JSON of rows written before, until the token service rewrites them.
const MIGRATION_5: &str = "
CREATE TABLE tokens_v5 (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    purpose TEXT NOT NULL,
    parent TEXT,
    expires_ms INTEGER NOT NULL,
    revoked_ms INTEGER,
    last_used_ms INTEGER,
    uses INTEGER NOT NULL DEFAULT 0,
    body BLOB,
    record TEXT,
    mac BLOB
) STRICT;
INSERT INTO tokens_v5 SELECT id, principal, purpose, parent, expires_ms, revoked_ms, last_used_ms, uses, NULL,
    record, mac FROM tokens;
DROP TABLE tokens;
ALTER TABLE tokens_v5 RENAME TO tokens;
CREATE INDEX tokens_principal ON tokens(principal, purpose);
CREATE INDEX tokens_parent ON tokens(parent) WHERE parent IS NOT NULL;
CREATE INDEX tokens_expires ON tokens(expires_ms);
";

/// Brings the schema up to date, one version per exclusive transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::Invalid(format!(
            "store schema version {version} is newer than this build understands ({SCHEMA_VERSION})"
        )));
    }
    for (to, sql) in
        [(1, MIGRATION_1), (2, MIGRATION_2), (3, MIGRATION_3), (4, MIGRATION_4), (5, MIGRATION_5)]
    {
        if version < to {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Exclusive).map_err(db)?;
            tx.execute_batch(sql).map_err(db)?;
            tx.pragma_update(None, "user_version", to).map_err(db)?;
            tx.commit().map_err(db)?;
            tracing::debug!(from = version, to, "the store's schema was brought up to date");
        }
    }
    Ok(())
}
