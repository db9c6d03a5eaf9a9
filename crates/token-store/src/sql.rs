//! SQL shared by the SQL backends.

use chrono::{DateTime, Utc};

use token_core::lookup::TokenRecord;

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

/// A stored token id back.
pub(crate) fn token_id(text: &str) -> Result<token_core::TokenId> {
    text.parse().map_err(|e: token_core::errors::TokenFormatError| corrupt("token id", None, e.to_string()))
}

pub(crate) fn corrupt(what: &'static str, id: Option<&str>, detail: String) -> StoreError {
    StoreError::Corrupted { id: id.map(str::to_owned), what, detail }
}

/// The columns a token row is read with, in this order: the plain columns the queries filter on,
/// then the record, the use counters and the tag.
pub(crate) const TOKEN_COLUMNS: &str =
    "id, principal, purpose, parent, expires_ms, revoked_ms, body, record, last_used_ms, uses, mac";

/// A token row (`TOKEN_COLUMNS`) as read, before any decoding.
pub(crate) struct RawRow<'a> {
    pub(crate) id: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) purpose: &'a str,
    pub(crate) parent: Option<&'a str>,
    pub(crate) expires_ms: i64,
    pub(crate) revoked_ms: Option<i64>,
    /// The canonical encoding of the record.
    pub(crate) body: Option<&'a [u8]>,
    /// The JSON of a record written before the binary encoding.
    pub(crate) record: Option<&'a str>,
    pub(crate) last_used: Option<i64>,
    pub(crate) uses: i64,
    pub(crate) mac: Option<&'a [u8]>,
}

/// A token row decoded. One bad row never fails a read of many: a row whose id column is not an id
/// is an error naming it (the caller skips and logs it; no token can match it); any other defect
/// (a record that does not decode, a column that contradicts the authenticated record — the id,
/// principal, purpose, parent, expiry or revocation the queries and cascades use) quarantines the
/// row ([`TokenRow::quarantined`], [`TokenRow::with_defect`]), which the integrity check refuses
/// by id. The MAC itself is checked by the token service.
pub(crate) fn stored_token(decoder: &mut RecordDecoder, raw: RawRow<'_>) -> Result<TokenRow> {
    let id = token_id(raw.id).map_err(|_| {
        let shown: String = raw.id.chars().take(40).filter(|c| c.is_ascii_graphic()).collect();
        corrupt("token row", Some(&shown), "its id column is not a token id".into())
    })?;
    let (record, legacy) = match (raw.body, raw.record) {
        (Some(body), _) => match decoder.decode(body) {
            Ok(r) => (r, false),
            Err(e) => return Ok(TokenRow::quarantined(id, format!("its record does not decode ({e})"))),
        },
        (None, Some(json)) => match serde_json::from_str::<TokenRecord>(json) {
            Ok(r) => (r, true),
            Err(e) => return Ok(TokenRow::quarantined(id, format!("its JSON record does not parse ({e})"))),
        },
        (None, None) => return Ok(TokenRow::quarantined(id, "the row holds no record")),
    };
    if record.id != id {
        // Named by the row it sits in: the record's own token keeps its row.
        return Ok(TokenRow::quarantined(
            id,
            format!("its record is token {}'s (its id column contradicts the record)", record.id),
        ));
    }
    let mut defects = Vec::new();
    if record.principal.as_str() != raw.principal {
        defects.push("principal");
    }
    if record.purpose.as_str() != raw.purpose {
        defects.push("purpose");
    }
    if record.parent.map(|p| p.to_string()).as_deref() != raw.parent {
        defects.push("parent");
    }
    if ms(record.expires_at) != raw.expires_ms {
        defects.push("expiry");
    }
    if record.revoked_at.map(ms) != raw.revoked_ms {
        defects.push("revocation");
    }
    let last_used = match raw.last_used.map(from_ms).transpose() {
        Ok(t) => t,
        Err(_) => {
            defects.push("last use");
            None
        }
    };
    let uses = u64::try_from(raw.uses).unwrap_or_else(|_| {
        defects.push("use count");
        0
    });
    let mac = match raw.mac {
        None => None,
        Some(b) => RecordMac::from_slice(b).or_else(|| {
            defects.push("integrity tag");
            None
        }),
    };
    let mut row = TokenRow::new(record, last_used, uses, mac);
    if legacy {
        row = row.read_as_legacy_json();
    }
    if !defects.is_empty() {
        row = row.with_defect(format!(
            "its {} column{} contradict{} the record",
            defects.join(", "),
            if defects.len() == 1 { "" } else { "s" },
            if defects.len() == 1 { "s" } else { "" },
        ));
    }
    Ok(row)
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
