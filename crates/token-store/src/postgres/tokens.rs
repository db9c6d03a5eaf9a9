//! Token records in PostgreSQL: the one-active check under a per-purpose advisory lock, tree
//! revocation (each record re-tagged) announced with `NOTIFY`, queries, use counters.

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use token_core::{TokenId, lookup::TokenRecord};

use super::{ISSUE_CHANNEL, REVOCATION_CHANNEL, is_unique_violation, pg};
use crate::encoding::{RecordDecoder, encode_token_record};
use crate::error::{Result, StoreError};
use crate::integrity::RecordKey;
use crate::model::{TokenQuery, TokenRow, check_active};
use crate::sql::{self, ms};

/// A `TOKEN_COLUMNS` row decoded, every column range-checked; a row that does not decode is
/// quarantined ([`sql::stored_token`]). A column of the wrong SQL type is a defect of that row.
fn row(r: &tokio_postgres::Row, decoder: &mut RecordDecoder) -> Result<TokenRow> {
    let id: &str = r.try_get(0).map_err(|e| sql::corrupt("token row", None, e.to_string()))?;
    let typed = || -> std::result::Result<sql::RawRow<'_>, tokio_postgres::Error> {
        Ok(sql::RawRow {
            id,
            principal: r.try_get::<_, Option<&str>>(1)?.unwrap_or_default(),
            purpose: r.try_get::<_, Option<&str>>(2)?.unwrap_or_default(),
            parent: r.try_get(3)?,
            expires_ms: r.try_get::<_, Option<i64>>(4)?.unwrap_or_default(),
            revoked_ms: r.try_get(5)?,
            body: r.try_get(6)?,
            record: r.try_get(7)?,
            last_used: r.try_get(8)?,
            uses: r.try_get::<_, Option<i64>>(9)?.unwrap_or(-1),
            mac: r.try_get(10)?,
        })
    };
    match typed() {
        Ok(raw) => sql::stored_token(decoder, raw),
        Err(e) => Ok(TokenRow::quarantined(sql::token_id(id)?, format!("a column has the wrong type ({e})"))),
    }
}

/// Rows of a read of many: a row whose id column is not even an id is logged and skipped (no
/// token can match it), never allowed to fail the whole read.
fn rows(found: &[tokio_postgres::Row], decoder: &mut RecordDecoder) -> Result<Vec<TokenRow>> {
    let mut out = Vec::with_capacity(found.len());
    for r in found {
        match row(r, decoder) {
            Ok(t) => out.push(t),
            Err(StoreError::Corrupted { id, what, detail }) => {
                tracing::error!(row = id.as_deref().unwrap_or("?"), what, %detail, "an unreadable token row was skipped");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn as_sql(arg: &sql::SqlArg) -> &(dyn tokio_postgres::types::ToSql + Sync) {
    match arg {
        sql::SqlArg::Text(s) => s,
        sql::SqlArg::Int(i) => i,
    }
}

async fn select<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    query: &TokenQuery,
) -> Result<Vec<TokenRow>> {
    let (sql, args) = sql::token_query(query);
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args.iter().map(as_sql).collect();
    let found = client.query(&sql, &params).await.map_err(pg)?;
    rows(&found, &mut RecordDecoder::new())
}

pub(super) async fn insert(
    client: &mut Object,
    record: &TokenRecord,
    key: &RecordKey,
    expected: &[TokenId],
) -> Result<()> {
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
        let (sql, args) = sql::active_ids_query(record);
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args.iter().map(as_sql).collect();
        let mut found = Vec::new();
        for r in tx.query(&sql, &params).await.map_err(pg)? {
            let id: String = r.try_get(0).map_err(|e| sql::corrupt("token id", None, e.to_string()))?;
            found.push(sql::token_id(&id)?);
        }
        check_active(&found, expected)?;
    }
    let mac = key.seal_token(record);
    let inserted = tx
        .execute(
            "INSERT INTO tokens (id, principal, purpose, parent, expires_ms, revoked_ms, body, mac)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &record.id.to_string(),
                &principal,
                &purpose,
                &record.parent.map(|p| p.to_string()),
                &ms(record.expires_at),
                &record.revoked_at.map(ms),
                &encode_token_record(record),
                &&mac.0[..],
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

pub(super) async fn get(client: &Object, id: TokenId) -> Result<Option<TokenRow>> {
    let stmt = client
        .prepare_cached(&format!("SELECT {} FROM tokens WHERE id = $1", sql::TOKEN_COLUMNS))
        .await
        .map_err(pg)?;
    let r = client.query_opt(&stmt, &[&id.to_string()]).await.map_err(pg)?;
    r.as_ref().map(|r| row(r, &mut RecordDecoder::new())).transpose()
}

pub(super) async fn ids(client: &Object, query: &TokenQuery) -> Result<Vec<TokenId>> {
    let (sql, args) = sql::id_query(query);
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args.iter().map(as_sql).collect();
    let rows = client.query(&sql, &params).await.map_err(pg)?;
    rows.iter()
        .map(|r| {
            let id: &str = r.try_get(0).map_err(|e| sql::corrupt("token id", None, e.to_string()))?;
            sql::token_id(id)
        })
        .collect()
}

pub(super) async fn get_many(client: &Object, ids: &[TokenId]) -> Result<Vec<TokenRow>> {
    let stmt = client
        .prepare_cached(&format!("SELECT {} FROM tokens WHERE id = ANY($1)", sql::TOKEN_COLUMNS))
        .await
        .map_err(pg)?;
    let mut found = Vec::with_capacity(ids.len());
    let mut decoder = RecordDecoder::new();
    for chunk in ids.chunks(1000) {
        let texts: Vec<String> = chunk.iter().map(ToString::to_string).collect();
        found.append(&mut rows(&client.query(&stmt, &[&texts]).await.map_err(pg)?, &mut decoder)?);
    }
    Ok(found)
}

pub(super) async fn count(client: &Object, query: &TokenQuery) -> Result<usize> {
    let (sql, args) = sql::count_query(query);
    let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = args.iter().map(as_sql).collect();
    let n: i64 = client
        .query_one(&sql, &params)
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(|e| sql::corrupt("token count", None, e.to_string()))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

pub(super) async fn query(client: &Object, query: &TokenQuery) -> Result<Vec<TokenRow>> {
    select(&***client, query).await
}

pub(super) async fn revoke_tree(
    client: &mut Object,
    id: TokenId,
    at: DateTime<Utc>,
    key: &RecordKey,
) -> Result<Vec<TokenId>> {
    // Five round trips, each statement prepared once per connection: the rows are locked from the
    // tree's read to the commit, and a revocation storm's latency is mostly this transaction.
    let tx = client.transaction().await.map_err(pg)?;
    let id_text = id.to_string();
    let tree = tx
        .prepare_cached(&format!(
            "WITH RECURSIVE tree(id) AS (
                SELECT $1::text UNION SELECT t.id FROM tokens t JOIN tree ON t.parent = tree.id)
             SELECT {} FROM tokens
             WHERE id IN (SELECT id FROM tree) AND revoked_ms IS NULL FOR UPDATE",
            sql::TOKEN_COLUMNS
        ))
        .await
        .map_err(pg)?;
    let found = tx.query(&tree, &[&id_text]).await.map_err(pg)?;
    if found.is_empty() {
        // Nothing active under it: revoked already (nothing to do), or no such token.
        if tx.query_opt("SELECT 1 FROM tokens WHERE id = $1", &[&id_text]).await.map_err(pg)?.is_none() {
            return Err(StoreError::NotFound(format!("token {id}")));
        }
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(found.len());
    let (mut ids, mut bodies, mut macs) =
        (Vec::with_capacity(found.len()), Vec::with_capacity(found.len()), Vec::with_capacity(found.len()));
    for t in rows(&found, &mut RecordDecoder::new())? {
        out.push(t.record.id);
        // A record that fails its tag is left as it is, still refused (never re-tagged); its id
        // is returned all the same, so a cache that held it before the edit denies it.
        if key.check_token(&t).is_err() {
            continue;
        }
        let mut record = t.record;
        record.revoked_at = Some(at);
        macs.push(key.seal_token(&record).0.to_vec());
        bodies.push(encode_token_record(&record));
        ids.push(record.id.to_string());
    }
    let update = tx
        .prepare_cached(
            "UPDATE tokens t SET revoked_ms = $2, body = v.body, record = NULL, mac = v.mac
             FROM UNNEST($1::text[], $3::bytea[], $4::bytea[]) AS v(id, body, mac) WHERE t.id = v.id",
        )
        .await
        .map_err(pg)?;
    tx.execute(&update, &[&ids, &ms(at), &bodies, &macs]).await.map_err(pg)?;
    // Announce in the same transaction: delivered on commit, never for a rolled-back revoke.
    let notify = tx.prepare_cached("SELECT pg_notify($1, $2)").await.map_err(pg)?;
    let ids: Vec<String> = out.iter().map(|id| format!("{id}@{}", ms(at))).collect();
    for chunk in ids.chunks(400) {
        tx.execute(&notify, &[&REVOCATION_CHANNEL, &chunk.join(",")]).await.map_err(pg)?;
    }
    tx.commit().await.map_err(pg)?;
    Ok(out)
}

pub(super) async fn upgrade(client: &mut Object, key: &RecordKey) -> Result<usize> {
    let tx = client.transaction().await.map_err(pg)?;
    let rows = tx
        .query(&format!("SELECT {} FROM tokens WHERE body IS NULL FOR UPDATE", sql::TOKEN_COLUMNS), &[])
        .await
        .map_err(pg)?;
    let update = tx
        .prepare("UPDATE tokens SET body = $2, record = NULL, mac = $3 WHERE id = $1 AND body IS NULL")
        .await
        .map_err(pg)?;
    let mut decoder = RecordDecoder::new();
    let mut n = 0;
    for r in &rows {
        // A row that does not even decode, or whose tag fails, is left for the load to refuse.
        let Ok(t) = row(r, &mut decoder) else { continue };
        if !key.may_upgrade(&t) {
            continue;
        }
        let record = t.record;
        tx.execute(
            &update,
            &[&record.id.to_string(), &encode_token_record(&record), &&key.seal_token(&record).0[..]],
        )
        .await
        .map_err(pg)?;
        n += 1;
    }
    tx.commit().await.map_err(pg)?;
    Ok(n)
}

pub(super) async fn record_uses(client: &mut Object, uses: &[(TokenId, DateTime<Utc>, u64)]) -> Result<()> {
    if uses.is_empty() {
        return Ok(());
    }
    let (mut ids, mut times, mut counts) =
        (Vec::with_capacity(uses.len()), Vec::with_capacity(uses.len()), Vec::with_capacity(uses.len()));
    for (id, at, n) in uses {
        ids.push(id.to_string());
        times.push(ms(*at));
        counts.push(i64::try_from(*n).unwrap_or(i64::MAX));
    }
    // One statement: the rows stay locked for one round trip, not one per token. A revocation
    // (`FOR UPDATE` of its tree) waits for a flush holding its row, and a flush of a thousand
    // tokens made a thousand round trips inside its transaction: a storm's revocations waited up
    // to 380 ms behind four instances' flushes (docs/scaling.md). Rows are locked in id order
    // (the materialized `ORDER BY id FOR UPDATE`), so instances flushing the same tokens at once
    // wait for each other instead of deadlocking. A token given twice counts both.
    client
        .execute(
            "WITH u(id, at, n) AS (
                      SELECT id, max(at), sum(n)::int8 FROM UNNEST($1::text[], $2::int8[], $3::int8[])
                      AS g(id, at, n) GROUP BY id),
                  locked AS MATERIALIZED (
                      SELECT t.id FROM tokens t WHERE t.id IN (SELECT id FROM u) ORDER BY t.id FOR UPDATE)
             UPDATE tokens t
             SET last_used_ms = GREATEST(COALESCE(t.last_used_ms, u.at), u.at), uses = t.uses + u.n
             FROM u, locked WHERE t.id = u.id AND locked.id = t.id",
            &[&ids, &times, &counts],
        )
        .await
        .map_err(pg)?;
    Ok(())
}
