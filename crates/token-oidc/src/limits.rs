//! The bounds validation works within: defaults, and the ceilings no setting may pass.

use token_core::chrono::TimeDelta;

/// The clock skew tolerated on `exp`, `nbf` and `iat` by default.
pub const DEFAULT_SKEW: TimeDelta = TimeDelta::seconds(60);
/// The largest skew a validator may be given.
pub const MAX_SKEW: TimeDelta = TimeDelta::minutes(5);
/// The longest `exp − iat` a subject token may have by default.
pub const DEFAULT_MAX_LIFETIME: TimeDelta = TimeDelta::hours(1);
/// The longest `exp − iat` a validator may be told to accept.
pub const MAX_LIFETIME_CEILING: TimeDelta = TimeDelta::hours(24);
/// The longest subject token accepted by default, in bytes.
pub const DEFAULT_MAX_TOKEN: usize = 8 * 1024;
/// The longest token or proof a validator may be told to accept, in bytes.
pub const MAX_TOKEN_CEILING: usize = 64 * 1024;
/// The longest `jti` accepted, in bytes.
pub const MAX_JTI_LEN: usize = 256;
/// The latest NumericDate accepted (9999-12-31T23:59:59Z).
pub const MAX_NUMERIC_DATE: i64 = 253_402_300_799;

/// How long a fetched JWKS is used before it is fetched again, by default.
pub const DEFAULT_JWKS_REFRESH: TimeDelta = TimeDelta::hours(1);
/// The least time between two JWKS fetches, by default (an unknown `kid` refetches at most this
/// often).
pub const DEFAULT_JWKS_MIN_REFETCH: TimeDelta = TimeDelta::minutes(1);
/// How long the last good JWKS is used while fetches fail, by default.
pub const DEFAULT_JWKS_MAX_STALE: TimeDelta = TimeDelta::hours(24);
/// The largest JWKS answer accepted by default, in bytes.
pub const DEFAULT_JWKS_BYTES: usize = 64 * 1024;
/// The largest JWKS document ever read, in bytes.
pub const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// The most keys a JWKS may hold.
pub const MAX_JWKS_KEYS: usize = 64;

/// How old a DPoP proof's `iat` may be, by default.
pub const DEFAULT_PROOF_MAX_AGE: TimeDelta = TimeDelta::seconds(60);
/// The oldest a verifier may be told to accept a proof.
pub const MAX_PROOF_AGE_CEILING: TimeDelta = TimeDelta::minutes(10);
/// The clock skew tolerated on a proof's `iat` by default (either way).
pub const DEFAULT_PROOF_SKEW: TimeDelta = TimeDelta::seconds(10);
/// The longest DPoP proof accepted by default, in bytes (a 4096-bit RSA key in the header fits).
pub const DEFAULT_MAX_PROOF: usize = 8 * 1024;
/// The replay cache's capacity by default (live identifiers).
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;
