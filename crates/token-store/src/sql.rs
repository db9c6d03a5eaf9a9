//! SQL shared by the SQL backends.

use chrono::{DateTime, Utc};

use crate::model::TokenQuery;

/// A bound parameter.
pub(crate) enum SqlArg {
    Text(String),
    Int(i64),
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The `SELECT record, last_used_ms, uses` for a token query, with `$N` placeholders (which SQLite
/// and PostgreSQL both bind by position, each number first appearing in order).
pub(crate) fn token_query(query: &TokenQuery) -> (String, Vec<SqlArg>) {
    let base = "SELECT record, last_used_ms, uses FROM tokens WHERE ";
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
