//! Sealed secret versions, their labels, KEK re-wraps, and metadata in SQLite.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::db;
use crate::envelope::Sealed;
use crate::error::{Result, StoreError};
use crate::model::{
    Label, LabelChange, Labels, SecretName, SecretVersion, apply_label_changes, check_next_version,
};
use crate::sql::{self, from_ms, ms, version_i64, version_u64};

fn latest(conn: &Connection, name: &SecretName) -> Result<Option<u64>> {
    let v: Option<i64> = conn
        .query_row("SELECT MAX(version) FROM versions WHERE name = ?1", [name.as_str()], |r| r.get(0))
        .map_err(db)?;
    v.map(|v| version_u64(v, "secret version")).transpose()
}

fn exists(conn: &Connection, name: &SecretName, version: u64) -> Result<bool> {
    let found: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM versions WHERE name = ?1 AND version = ?2",
            params![name.as_str(), version_i64(version)],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    Ok(found.is_some())
}

pub(super) fn insert_version(conn: &mut Connection, v: &SecretVersion) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    check_next_version(&v.name, v.version, latest(&tx, &v.name)?)?;
    tx.execute(
        "INSERT INTO versions (name, version, kek_id, wrapped_key, ciphertext, created_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            v.name.as_str(),
            version_i64(v.version),
            v.kek_id,
            v.wrapped_key.0,
            v.ciphertext.0,
            ms(v.created_at)
        ],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

pub(super) fn version(
    conn: &mut Connection,
    name: &SecretName,
    version: u64,
) -> Result<Option<SecretVersion>> {
    let row = conn
        .query_row(
            "SELECT kek_id, wrapped_key, ciphertext, created_ms FROM versions WHERE name = ?1 AND version = ?2",
            params![name.as_str(), version_i64(version)],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?)),
        )
        .optional()
        .map_err(db)?;
    row.map(|(kek_id, wrapped, ct, created)| {
        Ok(SecretVersion {
            name: name.clone(),
            version,
            kek_id,
            wrapped_key: Sealed(wrapped),
            ciphertext: Sealed(ct),
            created_at: from_ms(created)?,
        })
    })
    .transpose()
}

pub(super) fn names(conn: &mut Connection) -> Result<Vec<(SecretName, u64)>> {
    let mut stmt = conn
        .prepare_cached("SELECT name, MAX(version) FROM versions GROUP BY name ORDER BY name")
        .map_err(db)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db)?;
    let mut out = Vec::new();
    for row in rows {
        let (n, v) = row.map_err(db)?;
        out.push((SecretName::new(&n)?, version_u64(v, "secret version")?));
    }
    Ok(out)
}

pub(super) fn latest_version(conn: &mut Connection, name: &SecretName) -> Result<Option<u64>> {
    latest(conn, name)
}

pub(super) fn read_labels(conn: &Connection, name: &SecretName) -> Result<Labels> {
    let mut stmt = conn.prepare_cached("SELECT label, version FROM labels WHERE name = ?1").map_err(db)?;
    let rows =
        stmt.query_map([name.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))).map_err(db)?;
    let mut out = Labels::new();
    for row in rows {
        let (l, v) = row.map_err(db)?;
        out.insert(Label::parse(&l)?, version_u64(v, "secret label")?);
    }
    Ok(out)
}

pub(super) fn update_labels(conn: &mut Connection, name: &SecretName, changes: &[LabelChange]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let mut labels = read_labels(&tx, name)?;
    apply_label_changes(name, &mut labels, changes, |v| exists(&tx, name, v))?;
    tx.execute("DELETE FROM labels WHERE name = ?1", [name.as_str()]).map_err(db)?;
    for (label, v) in &labels {
        tx.execute(
            "INSERT INTO labels (name, label, version) VALUES (?1, ?2, ?3)",
            params![name.as_str(), label.as_str(), version_i64(*v)],
        )
        .map_err(db)?;
    }
    tx.commit().map_err(db)
}

pub(super) fn versions_not_under(
    conn: &mut Connection,
    kek_id: &str,
    limit: usize,
) -> Result<Vec<(SecretName, u64)>> {
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
        let name = SecretName::new(&n).map_err(|e| sql::corrupt("secret name", None, e.to_string()))?;
        out.push((name, version_u64(v, "secret version")?));
    }
    Ok(out)
}

pub(super) fn rewrap_version(
    conn: &mut Connection,
    name: &SecretName,
    version: u64,
    expect: &str,
    new: &str,
    wrapped: &Sealed,
) -> Result<()> {
    let n = conn
        .execute(
            "UPDATE versions SET kek_id = ?4, wrapped_key = ?5 WHERE name = ?1 AND version = ?2 AND kek_id = ?3",
            params![name.as_str(), version_i64(version), expect, new, wrapped.0],
        )
        .map_err(db)?;
    if n == 1 {
        return Ok(());
    }
    Err(if exists(conn, name, version)? {
        StoreError::Conflict(format!("{name} version {version} is no longer under {expect}"))
    } else {
        StoreError::NotFound(format!("{name} version {version}"))
    })
}

pub(super) fn meta(conn: &mut Connection, key: &str) -> Result<Option<Vec<u8>>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)
}

pub(super) fn set_meta(conn: &mut Connection, key: &str, expect: Option<&[u8]>, value: &[u8]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let current: Option<Vec<u8>> =
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0)).optional().map_err(db)?;
    if current.as_deref() != expect {
        return Err(StoreError::Conflict(format!("metadata {key} changed")));
    }
    tx.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}
