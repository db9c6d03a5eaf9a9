//! SQL shared by the SQL backends.

use chrono::{DateTime, Utc};

use token_core::TokenRecord;

use crate::error::{Result, StoreError};
use crate::integrity::RecordMac;
use crate::model::{StoredToken, TokenQuery};

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
pub(crate) fn count_u64(v: i64, what: &'static str, id: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| corrupt(what, Some(id), format!("count {v} is negative")))
}

/// A stored token id back.
pub(crate) fn token_id(text: &str) -> Result<token_core::TokenId> {
    text.parse().map_err(|e: token_core::TokenFormatError| corrupt("token id", None, e.to_string()))
}

pub(crate) fn corrupt(what: &'static str, id: Option<&str>, detail: String) -> StoreError {
    StoreError::Corrupted { id: id.map(str::to_owned), what, detail }
}

/// A token row (`record, last_used_ms, uses, mac`) decoded, every column range-checked into a
/// typed error. The MAC is not checked here: the token service does that.
pub(crate) fn stored_token(
    record: &str,
    last_used: Option<i64>,
    uses: i64,
    mac: Option<&[u8]>,
) -> Result<StoredToken> {
    let record: TokenRecord =
        serde_json::from_str(record).map_err(|e| corrupt("token record", None, e.to_string()))?;
    let id = record.id.to_string();
    let last_used = last_used.map(from_ms).transpose()?;
    let uses = count_u64(uses, "token use count", &id)?;
    let mac = match mac {
        None => None,
        Some(b) => Some(RecordMac::from_slice(b).ok_or_else(|| {
            corrupt("token record", Some(&id), format!("integrity tag of {} bytes", b.len()))
        })?),
    };
    Ok(StoredToken::new(record, last_used, uses, mac))
}

/// The `SELECT record, last_used_ms, uses, mac` for a token query, with `$N` placeholders (which SQLite
/// and PostgreSQL both bind by position, each number first appearing in order).
pub(crate) fn token_query(query: &TokenQuery) -> (String, Vec<SqlArg>) {
    select_where("SELECT record, last_used_ms, uses, mac FROM tokens WHERE ", query)
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
        TokenQuery::Unexpired { at } => ("expires_ms > $1", vec![SqlArg::Int(ms(*at))]),
    };
    (format!("{base}{filter}"), args)
}
