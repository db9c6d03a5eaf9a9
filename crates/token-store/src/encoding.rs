//! The canonical binary encoding of a token record: what SQL backends store (`body`) and what a
//! record's integrity tag is computed over. Compact (about 150 bytes for a typical token), with no
//! text parsing on the way back but the names and scopes — and those are interned per load, so a
//! cache of a million tokens parses each distinct scope set once.
//!
//! Layout (big-endian), version 1:
//!
//! | field | bytes |
//! |---|---|
//! | version (`1`) | 1 |
//! | id | 16 |
//! | digest key id, digest | 4 + 32 |
//! | created, not before, expires (seconds `i64` + nanoseconds `u32`) | 3 × 12 |
//! | flags: revoked, parent, replaces, max uses, idle timeout, bound (bits 0–5; others 0) | 1 |
//! | revoked at (12), parent (16), replaces (16), max uses (8), idle timeout (12), bound key's thumbprint (32), each if flagged | 0–96 |
//! | principal, purpose, scopes (text, each a `u16` length then UTF-8) | 6 + text |
//!
//! Decoding checks every field into a typed error ([`StoreError::Corrupted`]) and refuses trailing
//! bytes; it never panics (a fuzz target and property tests hold it to that).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use token_core::names::{PrincipalId, Purpose};
use token_core::{
    ScopeSet, Thumbprint, TokenId, digest::TokenDigest, lookup::TokenRecord, lookup::UseLimits,
};

use crate::error::{Result, StoreError};

const VERSION: u8 = 1;
const REVOKED: u8 = 1;
const PARENT: u8 = 1 << 1;
const REPLACES: u8 = 1 << 2;
const MAX_USES: u8 = 1 << 3;
const IDLE: u8 = 1 << 4;
const BOUND: u8 = 1 << 5;
/// At most this many distinct values interned per kind during one load; past it, values are
/// parsed each time (a bound on the decoder's memory, not on correctness).
const INTERN_MAX: usize = 1 << 16;

fn put_time(out: &mut Vec<u8>, t: DateTime<Utc>) {
    out.extend_from_slice(&t.timestamp().to_be_bytes());
    out.extend_from_slice(&t.timestamp_subsec_nanos().to_be_bytes());
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    // Names are at most 128 bytes and a scope set at most a few KiB (token-core's limits).
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

/// Appends the canonical encoding of `record` to `out`.
pub fn encode_token_record_into(record: &TokenRecord, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.extend_from_slice(&record.id.to_u128().to_be_bytes());
    out.extend_from_slice(&record.digest.key_id().to_be_bytes());
    out.extend_from_slice(record.digest.mac());
    put_time(out, record.created_at);
    put_time(out, record.not_before);
    put_time(out, record.expires_at);
    let mut flags = 0;
    for (set, bit) in [
        (record.revoked_at.is_some(), REVOKED),
        (record.parent.is_some(), PARENT),
        (record.replaces.is_some(), REPLACES),
        (record.limits.max_uses.is_some(), MAX_USES),
        (record.limits.idle_timeout.is_some(), IDLE),
        (record.bound_to.is_some(), BOUND),
    ] {
        if set {
            flags |= bit;
        }
    }
    out.push(flags);
    if let Some(t) = record.revoked_at {
        put_time(out, t);
    }
    for id in [record.parent, record.replaces].into_iter().flatten() {
        out.extend_from_slice(&id.to_u128().to_be_bytes());
    }
    if let Some(n) = record.limits.max_uses {
        out.extend_from_slice(&n.to_be_bytes());
    }
    if let Some(d) = record.limits.idle_timeout {
        // As TimeDelta holds it: whole seconds rounded down, then 0 ≤ nanoseconds < 10⁹.
        let (mut secs, mut nanos) = (d.num_seconds(), d.subsec_nanos());
        if nanos < 0 {
            secs -= 1;
            nanos += 1_000_000_000;
        }
        out.extend_from_slice(&secs.to_be_bytes());
        out.extend_from_slice(&nanos.unsigned_abs().to_be_bytes());
    }
    if let Some(key) = &record.bound_to {
        out.extend_from_slice(key.as_bytes());
    }
    put_text(out, record.principal.as_str());
    put_text(out, record.purpose.as_str());
    put_text(out, record.scopes.as_str());
}

/// The canonical encoding of `record`.
#[must_use]
pub fn encode_token_record(record: &TokenRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    encode_token_record_into(record, &mut out);
    out
}

/// Decodes token records, interning principals, purposes and scope sets across the records of one
/// load (so a million tokens of a hundred purposes parse a hundred scope sets, and share them).
#[derive(Default)]
pub struct RecordDecoder {
    scopes: Interned<ScopeSet>,
    principals: Interned<PrincipalId>,
    purposes: Interned<Purpose>,
}

/// Interned values by their stored bytes. The bytes come from the store, not from an adversary
/// who can choose them freely to collide (and the table is bounded), so a fast FNV-1a hash does.
type Interned<T> = HashMap<Box<[u8]>, T, std::hash::BuildHasherDefault<Fnv>>;

#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

impl std::fmt::Debug for RecordDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordDecoder").field("scope_sets", &self.scopes.len()).finish_non_exhaustive()
    }
}

struct Reader<'a> {
    rest: &'a [u8],
}

fn bad(detail: impl Into<String>) -> StoreError {
    StoreError::Corrupted { id: None, what: "token record", detail: detail.into() }
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            return Err(bad("the encoding is truncated"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn id(&mut self) -> Result<TokenId> {
        TokenId::from_u128(u128::from_be_bytes(self.array()?))
            .ok_or_else(|| bad("a token id is out of range"))
    }

    fn time(&mut self) -> Result<DateTime<Utc>> {
        let secs = i64::from_be_bytes(self.array()?);
        let nanos = u32::from_be_bytes(self.array()?);
        DateTime::from_timestamp(secs, nanos)
            .ok_or_else(|| bad(format!("time {secs}.{nanos} is out of range")))
    }

    fn text(&mut self) -> Result<&'a [u8]> {
        let len = u16::from_be_bytes(self.array()?);
        self.take(usize::from(len))
    }
}

fn intern<T: Clone>(map: &mut Interned<T>, bytes: &[u8], parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
    if let Some(v) = map.get(bytes) {
        return Ok(v.clone());
    }
    let text = std::str::from_utf8(bytes).map_err(|_| bad("a name is not UTF-8"))?;
    let v = parse(text)?;
    if map.len() < INTERN_MAX {
        map.insert(bytes.into(), v.clone());
    }
    Ok(v)
}

impl RecordDecoder {
    /// A decoder with nothing interned yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one record; any malformed, out-of-range or trailing byte is
    /// [`StoreError::Corrupted`].
    pub fn decode(&mut self, bytes: &[u8]) -> Result<TokenRecord> {
        let mut r = Reader { rest: bytes };
        let [version] = r.array()?;
        if version != VERSION {
            return Err(bad(format!("encoding version {version} is not understood")));
        }
        let id = r.id()?;
        let key_id = u32::from_be_bytes(r.array()?);
        let digest = TokenDigest::from_parts(key_id, r.array()?);
        let created_at = r.time()?;
        let not_before = r.time()?;
        let expires_at = r.time()?;
        let [flags] = r.array()?;
        if flags & !(REVOKED | PARENT | REPLACES | MAX_USES | IDLE | BOUND) != 0 {
            return Err(bad(format!("unknown flags {flags:#04x}")));
        }
        let revoked_at = if flags & REVOKED != 0 { Some(r.time()?) } else { None };
        let parent = if flags & PARENT != 0 { Some(r.id()?) } else { None };
        let replaces = if flags & REPLACES != 0 { Some(r.id()?) } else { None };
        let max_uses = if flags & MAX_USES != 0 { Some(u64::from_be_bytes(r.array()?)) } else { None };
        let idle_timeout = if flags & IDLE != 0 {
            let secs = i64::from_be_bytes(r.array()?);
            let nanos = u32::from_be_bytes(r.array()?);
            Some(TimeDelta::new(secs, nanos).ok_or_else(|| bad("the idle timeout is out of range"))?)
        } else {
            None
        };
        let bound_to = if flags & BOUND != 0 { Some(Thumbprint::from_bytes(r.array()?)) } else { None };
        let principal =
            intern(&mut self.principals, r.text()?, |s| PrincipalId::new(s).map_err(|e| bad(e.to_string())))?;
        let purpose =
            intern(&mut self.purposes, r.text()?, |s| Purpose::new(s).map_err(|e| bad(e.to_string())))?;
        let scopes =
            intern(&mut self.scopes, r.text()?, |s| ScopeSet::parse(s).map_err(|e| bad(e.to_string())))?;
        if !r.rest.is_empty() {
            return Err(bad(format!("{} trailing bytes", r.rest.len())));
        }
        let limits = UseLimits { max_uses, idle_timeout };
        Ok(TokenRecord {
            id,
            principal,
            purpose,
            scopes,
            digest,
            created_at,
            not_before,
            expires_at,
            revoked_at,
            parent,
            replaces,
            limits,
            bound_to,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn record(seed: u64, revoked: bool, child: bool, limits: bool) -> TokenRecord {
        let t = DateTime::from_timestamp(1_700_000_000 + i64::try_from(seed % 1000).unwrap(), 123_456_789)
            .unwrap();
        TokenRecord {
            id: TokenId::from_u128(u128::from(seed) + 1).unwrap(),
            principal: PrincipalId::new("billing-api").unwrap(),
            purpose: Purpose::new("s3.read").unwrap(),
            scopes: ScopeSet::parse("s3:data/*:read sqs:queue:send").unwrap(),
            digest: TokenDigest::from_parts(3, [7; 32]),
            created_at: t,
            not_before: t,
            expires_at: t + TimeDelta::days(30),
            revoked_at: revoked.then_some(t + TimeDelta::hours(1)),
            parent: child.then(|| TokenId::from_u128(99).unwrap()),
            replaces: child.then(|| TokenId::from_u128(98).unwrap()),
            limits: if limits {
                UseLimits { max_uses: Some(u64::MAX), idle_timeout: Some(TimeDelta::new(-3601, 5).unwrap()) }
            } else {
                UseLimits::default()
            },
            bound_to: (seed & 8 != 0).then(|| Thumbprint::from_bytes([9; 32])),
        }
    }

    fn same(a: &TokenRecord, b: &TokenRecord) -> bool {
        serde_json::to_string(a).unwrap() == serde_json::to_string(b).unwrap()
    }

    #[test]
    fn round_trips_every_shape() {
        let mut d = RecordDecoder::new();
        for bits in 0..16u8 {
            let r = record(u64::from(bits), bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
            let bytes = encode_token_record(&r);
            let back = d.decode(&bytes).unwrap();
            assert!(same(&r, &back), "{bits}");
            assert_eq!(encode_token_record(&back), bytes, "canonical");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = encode_token_record(&record(1, true, true, true));
        let mut d = RecordDecoder::new();
        for n in 0..bytes.len() {
            assert!(matches!(d.decode(&bytes[..n]), Err(StoreError::Corrupted { .. })), "{n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(d.decode(&long).is_err());
    }

    #[test]
    fn interned_values_are_shared() {
        let mut d = RecordDecoder::new();
        let a = d.decode(&encode_token_record(&record(1, false, false, false))).unwrap();
        let b = d.decode(&encode_token_record(&record(2, false, false, false))).unwrap();
        assert_eq!(a.scopes, b.scopes);
        assert_eq!(d.scopes.len(), 1);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = RecordDecoder::new().decode(&bytes);
        }

        #[test]
        fn flipped_bytes_never_panic_and_re_encode_canonically(flip in 0usize..200, bit in 0u8..8) {
            let mut bytes = encode_token_record(&record(5, true, true, true));
            let i = flip % bytes.len();
            bytes[i] ^= 1 << bit;
            if let Ok(r) = RecordDecoder::new().decode(&bytes) {
                // Whatever decodes re-encodes to something that decodes to the same record.
                let again = RecordDecoder::new().decode(&encode_token_record(&r)).unwrap();
                prop_assert!(same(&r, &again));
            }
        }
    }
}
