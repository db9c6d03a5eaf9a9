//! SQL shared by the SQL backends.

use chrono::{DateTime, Utc};

use token_core::TokenRecord;

use crate::encoding::RecordDecoder;
use crate::error::{Result, StoreError};
use crate::integrity::RecordMac;
use crate::model::{TokenQuery, TokenRow};

/// A bound parameter.
pub(crate) enum SqlArg {
    Text(String),
    Int(i64),
}

/// A time as stored: Unix milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// A stored time back, range-checked.
pub(crate) fn from_ms(v: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(v)
        .ok_or_else(|| corrupt("timestamp", None, format!("{v} ms is out of range")))
}

/// A version number as stored (BIGINT / INTEGER).
pub(crate) fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A stored version number back: positive.
pub(crate) fn version_u64(v: i64, what: &'static str) -> Result<u64> {
    u64::try_from(v)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| corrupt(what, None, format!("version {v} is out of range")))
}

/// A stored count back: not negative.
pub(crate) fn count_u64(v: i64, what: &'static str, id: impl std::fmt::Display) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(what, Some(&id.to_string()), format!("count {v} is negative")))
}

/// A stored token id back.
pub(crate) fn token_id(text: &str) -> Result<token_core::TokenId> {
    text.parse().map_err(|e: token_core::TokenFormatError| corrupt("token id", None, e.to_string()))
}

pub(crate) fn corrupt(what: &'static str, id: Option<&str>, detail: String) -> StoreError {
    StoreError::Corrupted { id: id.map(str::to_owned), what, detail }
}

/// The columns a token row is read with, in this order.
pub(crate) const TOKEN_COLUMNS: &str = "body, record, last_used_ms, uses, mac";

/// A token row's record: its canonical encoding, or (rows written before it) its JSON.
pub(crate) struct Body<'a> {
    pub(crate) body: Option<&'a [u8]>,
    pub(crate) record: Option<&'a str>,
}

/// A token row (`TOKEN_COLUMNS`) decoded, every column range-checked into a typed error. The MAC
/// is not checked here: the token service does that.
pub(crate) fn stored_token(
    decoder: &mut RecordDecoder,
    row: Body<'_>,
    last_used: Option<i64>,
    uses: i64,
    mac: Option<&[u8]>,
) -> Result<TokenRow> {
    let (record, legacy) = match row {
        Body { body: Some(body), .. } => (decoder.decode(body)?, false),
        Body { body: None, record: Some(json) } => (
            serde_json::from_str::<TokenRecord>(json)
                .map_err(|e| corrupt("token record", None, e.to_string()))?,
            true,
        ),
        Body { body: None, record: None } => {
            return Err(corrupt("token record", None, "the row holds no record".into()));
        }
    };
    let last_used = last_used.map(from_ms).transpose()?;
    let uses = count_u64(uses, "token use count", record.id)?;
    let mac = match mac {
        None => None,
        Some(b) => Some(RecordMac::from_slice(b).ok_or_else(|| {
            corrupt(
                "token record",
                Some(&record.id.to_string()),
                format!("integrity tag of {} bytes", b.len()),
            )
        })?),
    };
    let row = TokenRow::new(record, last_used, uses, mac);
    Ok(if legacy { row.read_as_legacy_json() } else { row })
}

/// The `SELECT` of `TOKEN_COLUMNS` for a token query, with `$N` placeholders (which SQLite and
/// PostgreSQL both bind by position, each number first appearing in order).
pub(crate) fn token_query(query: &TokenQuery) -> (String, Vec<SqlArg>) {
    select_where(&format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE "), query)
}

/// The `SELECT id` for a token query.
#[cfg(feature = "postgres")]
pub(crate) fn id_query(query: &TokenQuery) -> (String, Vec<SqlArg>) {
    select_where("SELECT id FROM tokens WHERE ", query)
}

/// The `SELECT COUNT(*)` for a token query (the index may serve it: no `+` trick here).
pub(crate) fn count_query(query: &TokenQuery) -> (String, Vec<SqlArg>) {
    let (sql, args) = select_where("SELECT COUNT(*) FROM tokens WHERE ", query);
    (sql.replace("+expires_ms", "expires_ms"), args)
}

/// The `SELECT id` of the root tokens active for `record`'s principal and purpose when it was
/// issued (the one-active rule's check, inside the insert's transaction): ids only, no record parsed.
pub(crate) fn active_ids_query(record: &TokenRecord) -> (String, Vec<SqlArg>) {
    let active = TokenQuery::Active {
        principal: record.principal.clone(),
        purpose: record.purpose.clone(),
        at: record.created_at,
    };
    select_where("SELECT id FROM tokens WHERE ", &active)
}

fn select_where(base: &str, query: &TokenQuery) -> (String, Vec<SqlArg>) {
    let (filter, args) = match query {
        TokenQuery::Principal(p) => ("principal = $1", vec![SqlArg::Text(p.to_string())]),
        TokenQuery::Active { principal, purpose, at } => (
            "principal = $1 AND purpose = $2 AND parent IS NULL AND expires_ms > $3
             AND (revoked_ms IS NULL OR revoked_ms > $3)",
            vec![
                SqlArg::Text(principal.to_string()),
                SqlArg::Text(purpose.to_string()),
                SqlArg::Int(ms(*at)),
            ],
        ),
        TokenQuery::ExpiringBetween { from, until } => (
            "revoked_ms IS NULL AND expires_ms >= $1 AND expires_ms < $2",
            vec![SqlArg::Int(ms(*from)), SqlArg::Int(ms(*until))],
        ),
        TokenQuery::UnusedSince { since } => (
            "revoked_ms IS NULL AND expires_ms > $1 AND (last_used_ms IS NULL OR last_used_ms < $1)",
            vec![SqlArg::Int(ms(*since))],
        ),
        TokenQuery::Revoked => ("revoked_ms IS NOT NULL", vec![]),
        TokenQuery::RevokedSince { since } => ("revoked_ms >= $1", vec![SqlArg::Int(ms(*since))]),
        // A full load (what a verifier cache reads): most rows answer, so a sequential scan beats
        // the expiry index (`+` keeps both SQLite and PostgreSQL from using it).
        TokenQuery::Unexpired { at } => ("+expires_ms > $1", vec![SqlArg::Int(ms(*at))]),
    };
    (format!("{base}{filter}"), args)
}
