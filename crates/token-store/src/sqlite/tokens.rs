//! Token records in SQLite: the one-active check and the insert in one transaction, tree
//! revocation (each record re-tagged), queries, use counters.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use token_core::{TokenId, lookup::TokenRecord};

use super::db;
use crate::encoding::{RecordDecoder, encode_token_record};
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::model::{TokenQuery, TokenRow, check_active};
use crate::sql::{self, ms};

const INSERT_TOKEN: &str =
    "INSERT INTO tokens (id, principal, purpose, parent, expires_ms, revoked_ms, body, mac)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

fn insert_row(stmt: &mut rusqlite::CachedStatement<'_>, record: &TokenRecord, key: &RecordKey) -> Result<()> {
    let mac = key.seal_token(record);
    let inserted = stmt.execute(params![
        record.id.to_string(),
        record.principal.as_str(),
        record.purpose.as_str(),
        record.parent.map(|p| p.to_string()),
        ms(record.expires_at),
        record.revoked_at.map(ms),
        encode_token_record(record),
        &mac.0[..],
    ]);
    match inserted {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
            Err(StoreError::TokenRejected(format!("token id {} already exists", record.id)))
        }
        Err(e) => Err(db(e)),
    }
}

/// A `TOKEN_COLUMNS` row decoded, every column range-checked; a row that does not decode is
/// quarantined ([`sql::stored_token`]). A column of the wrong SQL type is a defect of that row.
fn row(r: &rusqlite::Row<'_>, decoder: &mut RecordDecoder) -> Result<TokenRow> {
    let id =
        r.get_ref(0).map_err(db)?.as_str().map_err(|e| sql::corrupt("token row", None, e.to_string()))?;
    match raw_row(r, id) {
        Ok(raw) => sql::stored_token(decoder, raw),
        Err(e) => Ok(TokenRow::quarantined(sql::token_id(id)?, format!("a column has the wrong type ({e})"))),
    }
}

fn raw_row<'a>(r: &'a rusqlite::Row<'_>, id: &'a str) -> rusqlite::Result<sql::RawRow<'a>> {
    use rusqlite::types::FromSqlError;
    let v = |i: usize| r.get_ref(i);
    let conv = |e: FromSqlError| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Null, Box::new(e))
    };
    Ok(sql::RawRow {
        id,
        principal: v(1)?.as_str_or_null().map_err(conv)?.unwrap_or_default(),
        purpose: v(2)?.as_str_or_null().map_err(conv)?.unwrap_or_default(),
        parent: v(3)?.as_str_or_null().map_err(conv)?,
        expires_ms: v(4)?.as_i64_or_null().map_err(conv)?.unwrap_or_default(),
        revoked_ms: v(5)?.as_i64_or_null().map_err(conv)?,
        body: v(6)?.as_blob_or_null().map_err(conv)?,
        record: v(7)?.as_str_or_null().map_err(conv)?,
        last_used: v(8)?.as_i64_or_null().map_err(conv)?,
        uses: v(9)?.as_i64_or_null().map_err(conv)?.unwrap_or(-1),
        mac: v(10)?.as_blob_or_null().map_err(conv)?,
    })
}

/// Rows of a read of many: a row whose id column is not even an id is logged and skipped (no
/// token can match it), never allowed to fail the whole read.
fn row_or_skip(r: &rusqlite::Row<'_>, decoder: &mut RecordDecoder) -> Result<Option<TokenRow>> {
    match row(r, decoder) {
        Ok(t) => Ok(Some(t)),
        Err(StoreError::Corrupted { id, what, detail }) => {
            tracing::error!(row = id.as_deref().unwrap_or("?"), what, %detail, "an unreadable token row was skipped");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn active_ids(conn: &Connection, record: &TokenRecord) -> Result<Vec<TokenId>> {
    let (query, args) = sql::active_ids_query(record);
    let mut stmt = conn.prepare_cached(&query).map_err(db)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.into_iter().map(to_value))).map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        let id =
            r.get_ref(0).map_err(db)?.as_str().map_err(|e| sql::corrupt("token id", None, e.to_string()))?;
        out.push(sql::token_id(id)?);
    }
    Ok(out)
}

fn to_value(a: sql::SqlArg) -> rusqlite::types::Value {
    match a {
        sql::SqlArg::Text(t) => rusqlite::types::Value::Text(t),
        sql::SqlArg::Int(i) => rusqlite::types::Value::Integer(i),
    }
}

pub(super) fn insert(
    conn: &mut Connection,
    record: &TokenRecord,
    key: &RecordKey,
    expected: &[TokenId],
) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    if record.parent.is_none() {
        check_active(&active_ids(&tx, record)?, expected)?;
    }
    insert_row(&mut tx.prepare_cached(INSERT_TOKEN).map_err(db)?, record, key)?;
    tx.commit().map_err(db)
}

/// Loads many records in one transaction, as they are: no one-active check, ids must be new.
pub(super) fn bulk_insert(conn: &mut Connection, records: &[TokenRecord], key: &RecordKey) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    {
        let mut stmt = tx.prepare_cached(INSERT_TOKEN).map_err(db)?;
        for record in records {
            insert_row(&mut stmt, record, key)?;
        }
    }
    tx.commit().map_err(db)
}

pub(super) fn get(conn: &mut Connection, id: TokenId) -> Result<Option<TokenRow>> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {} FROM tokens WHERE id = ?1", sql::TOKEN_COLUMNS))
        .map_err(db)?;
    let mut rows = stmt.query([id.to_string()]).map_err(db)?;
    rows.next().map_err(db)?.map(|r| row(r, &mut RecordDecoder::new())).transpose()
}

pub(super) fn query(conn: &mut Connection, query: &TokenQuery) -> Result<Vec<TokenRow>> {
    let mut out = Vec::new();
    stream(conn, query, usize::MAX, &mut |mut chunk| {
        out.append(&mut chunk);
        Ok(())
    })?;
    Ok(out)
}

pub(super) fn count(conn: &mut Connection, query: &TokenQuery) -> Result<usize> {
    let (sql, args) = sql::count_query(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let n: i64 = stmt
        .query_row(rusqlite::params_from_iter(args.into_iter().map(to_value)), |r| r.get(0))
        .map_err(db)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Reads the rows answering `query`, handing them to `visit` `chunk` at a time.
pub(super) fn stream(
    conn: &mut Connection,
    query: &TokenQuery,
    chunk: usize,
    visit: &mut (dyn FnMut(Vec<TokenRow>) -> Result<()> + Send),
) -> Result<()> {
    let (sql, args) = sql::token_query(query);
    let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(args.into_iter().map(to_value))).map_err(db)?;
    let mut decoder = RecordDecoder::new();
    let mut out = Vec::with_capacity(chunk.min(1024));
    while let Some(r) = rows.next().map_err(db)? {
        let Some(t) = row_or_skip(r, &mut decoder)? else { continue };
        out.push(t);
        if out.len() == chunk {
            visit(std::mem::replace(&mut out, Vec::with_capacity(chunk)))?;
            // A fresh decoder per chunk: the caller drops this chunk's shared names and scope sets
            // on its own thread while this one clones the next chunk's, never the same counters.
            decoder = RecordDecoder::new();
        }
    }
    if !out.is_empty() {
        visit(out)?;
    }
    Ok(())
}

pub(super) fn revoke_tree(
    conn: &mut Connection,
    id: TokenId,
    at: DateTime<Utc>,
    key: &RecordKey,
) -> Result<Vec<TokenId>> {
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
            .prepare(&format!(
                "WITH RECURSIVE tree(id) AS (
                     SELECT ?1 UNION SELECT tokens.id FROM tokens JOIN tree ON tokens.parent = tree.id)
                 SELECT {} FROM tokens WHERE id IN tree AND revoked_ms IS NULL",
                sql::TOKEN_COLUMNS
            ))
            .map_err(db)?;
        let mut rows = stmt.query([id.to_string()]).map_err(db)?;
        let mut decoder = RecordDecoder::new();
        while let Some(r) = rows.next().map_err(db)? {
            let Some(t) = row_or_skip(r, &mut decoder)? else { continue };
            to_revoke.push(t);
        }
    }
    let mut out = Vec::with_capacity(to_revoke.len());
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE tokens SET revoked_ms = ?2, body = ?3, record = NULL, mac = ?4 WHERE id = ?1",
            )
            .map_err(db)?;
        for t in to_revoke {
            out.push(t.record.id);
            // A record that fails its tag is left as it is, still refused (never re-tagged); its
            // id is returned all the same, so a cache that held it before the edit denies it.
            if key.check_token(&t).is_err() {
                continue;
            }
            let mut record = t.record;
            record.revoked_at = Some(at);
            let mac = key.seal_token(&record);
            stmt.execute(params![record.id.to_string(), ms(at), encode_token_record(&record), &mac.0[..]])
                .map_err(db)?;
        }
    }
    tx.commit().map_err(db)?;
    Ok(out)
}

pub(super) fn upgrade(conn: &mut Connection, key: &RecordKey) -> Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    let records: Vec<TokenRecord> = {
        let mut stmt = tx
            .prepare(&format!("SELECT {} FROM tokens WHERE body IS NULL", sql::TOKEN_COLUMNS))
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        let mut decoder = RecordDecoder::new();
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(db)? {
            // A row that does not even decode is left for the load to refuse.
            if let Ok(t) = row(r, &mut decoder)
                && key.may_upgrade(&t)
            {
                out.push(t.record);
            }
        }
        out
    };
    {
        let mut stmt = tx
            .prepare("UPDATE tokens SET body = ?2, record = NULL, mac = ?3 WHERE id = ?1 AND body IS NULL")
            .map_err(db)?;
        for record in &records {
            stmt.execute(params![
                record.id.to_string(),
                encode_token_record(record),
                &key.seal_token(record).0[..]
            ])
            .map_err(db)?;
        }
    }
    tx.commit().map_err(db)?;
    Ok(records.len())
}

pub(super) fn record_uses(conn: &mut Connection, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
    {
        let mut stmt = tx
            .prepare_cached(
                "UPDATE tokens SET last_used_ms = MAX(COALESCE(last_used_ms, ?2), ?2), uses = uses + ?3
                 WHERE id = ?1",
            )
            .map_err(db)?;
        for (id, at, n) in uses {
            stmt.execute(params![id.to_string(), ms(*at), i64::try_from(*n).unwrap_or(i64::MAX)])
                .map_err(db)?;
        }
    }
    tx.commit().map_err(db)
}
