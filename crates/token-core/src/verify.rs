//! Verification: parse → look up by id → constant-time digest check → key binding → lifecycle →
//! scope → limits.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::binding::Thumbprint;
use crate::clock::{Clock, SystemClock};
use crate::decision::{Decision, DenyReason, Grant};
use crate::format::{ParsedToken, TokenFormat, TokenId};
use crate::scope::Request;
use crate::secret::DigestKey;
use crate::view::TokenView;

/// How many generations of ancestors a verifier checks above a child token: a token further
/// down a line is refused ([`DenyReason::AncestorMissing`]).
pub const MAX_ANCESTRY: usize = 32;

/// Where a verifier finds tokens: the small trait a store implements.
///
/// The verifier hands `with_token` a closure that it must call with the token's [`TokenView`]
/// (if it has one) while it holds it, so a lookup can keep views inline and lend them without
/// copying or reference counting. Implementations must be cheap and must not block on I/O: the
/// verifier calls this once per request (a store puts a cache in front of its database). Use limits
/// are enforced on the view's in-memory counters, so `max_uses` is counted per process.
pub trait TokenLookup: Send + Sync {
    /// Calls `visit` once with the view of `id`, if there is one; returns whether there was.
    fn with_token(&self, id: TokenId, visit: &mut dyn FnMut(&TokenView)) -> bool;
}

impl<T: TokenLookup + ?Sized> TokenLookup for Arc<T> {
    #[inline]
    fn with_token(&self, id: TokenId, visit: &mut dyn FnMut(&TokenView)) -> bool {
        (**self).with_token(id, visit)
    }
}

impl<T: TokenLookup + ?Sized> TokenLookup for &T {
    #[inline]
    fn with_token(&self, id: TokenId, visit: &mut dyn FnMut(&TokenView)) -> bool {
        (**self).with_token(id, visit)
    }
}

/// The digest keys a deployment holds: the current one digests new tokens; older ones still verify
/// the tokens they digested until those expire.
#[derive(Clone, Debug)]
pub struct DigestKeyring {
    current: DigestKey,
    older: Vec<DigestKey>,
}

impl DigestKeyring {
    /// A keyring holding only `current`.
    pub fn new(current: DigestKey) -> Self {
        Self { current, older: Vec::new() }
    }

    /// Keeps `key` for verifying what it digested.
    pub fn with_older(mut self, key: DigestKey) -> Self {
        self.older.push(key);
        self
    }

    /// The key that digests new tokens.
    pub fn current(&self) -> &DigestKey {
        &self.current
    }

    /// A key by id.
    #[inline]
    pub fn get(&self, id: u32) -> Option<&DigestKey> {
        if self.current.id() == id {
            return Some(&self.current);
        }
        self.older.iter().find(|k| k.id() == id)
    }
}

/// Verifies presented tokens against stored digests.
#[derive(Clone)]
pub struct Verifier<L> {
    format: TokenFormat,
    keys: DigestKeyring,
    lookup: L,
    clock: Arc<dyn Clock>,
}

impl<L: TokenLookup> Verifier<L> {
    /// A verifier of `format` tokens using `keys`, finding records through `lookup`, on the system
    /// clock.
    pub fn new(format: TokenFormat, keys: DigestKeyring, lookup: L) -> Self {
        Self { format, keys, lookup, clock: Arc::new(SystemClock) }
    }

    /// Uses `clock` for [`Verifier::verify`].
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same verifier (format, keys, clock) finding records through `lookup` instead: to
    /// judge one record read from a store, say, with exactly the rules the cache is judged by.
    pub fn over<M: TokenLookup>(&self, lookup: M) -> Verifier<M> {
        Verifier {
            format: self.format.clone(),
            keys: self.keys.clone(),
            lookup,
            clock: Arc::clone(&self.clock),
        }
    }

    /// The token format it accepts.
    pub fn format(&self) -> &TokenFormat {
        &self.format
    }

    /// The clock it reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The lookup it reads.
    pub fn lookup(&self) -> &L {
        &self.lookup
    }

    /// Verifies `token` for `request` now.
    #[inline]
    pub fn verify(&self, token: &str, request: &Request) -> Decision {
        self.decide(token, Some(request), None, self.clock.now_millis())
    }

    /// Verifies `token` for `request` at `now`.
    ///
    /// The secret is checked (in constant time) before anything about the token's state is told,
    /// so only its holder learns that it is revoked, expired or out of scope.
    ///
    /// Presented this way — as a bearer token — a token bound to a key is refused
    /// ([`DenyReason::ProofRequired`]): see [`Verifier::verify_with_proof_at`].
    pub fn verify_at(&self, token: &str, request: &Request, now: DateTime<Utc>) -> Decision {
        self.decide(token, Some(request), None, now.timestamp_millis())
    }

    /// Verifies `token` for `request` at `now`, presented with a proof of possession of the key
    /// whose thumbprint is `proof` (a DPoP proof the caller has verified: its signature, method,
    /// URI, freshness and `ath`). Allowed only if the token is bound to that very key (compared in
    /// constant time); a token bound to another key, or to none, is
    /// [`DenyReason::WrongProofKey`].
    pub fn verify_with_proof_at(
        &self,
        token: &str,
        proof: &Thumbprint,
        request: &Request,
        now: DateTime<Utc>,
    ) -> Decision {
        self.decide(token, Some(request), Some(proof), now.timestamp_millis())
    }

    /// Checks that `token` is genuine and active at `now`, whatever it may do. Does not count as a
    /// use, and does not ask for a key binding's proof (it says whether the token is alive, not
    /// whether this presentation may act: use a `verify` method for that).
    pub fn authenticate_at(&self, token: &str, now: DateTime<Utc>) -> Decision {
        self.decide(token, None, None, now.timestamp_millis())
    }

    /// [`Verifier::verify_at`], also saying which token was presented when it parsed (for an
    /// audit record of a denial, without parsing the token a second time). `None`: malformed.
    pub fn verify_identified_at(
        &self,
        token: &str,
        request: &Request,
        now: DateTime<Utc>,
    ) -> (Decision, Option<TokenId>) {
        self.decide_identified(token, Some(request), None, now.timestamp_millis())
    }

    /// [`Verifier::verify_identified_at`] at `now_ms` milliseconds since the Unix epoch (what
    /// [`Clock::now_millis`] gives: no calendar conversion on the hot path).
    #[inline]
    pub fn verify_identified_at_millis(
        &self,
        token: &str,
        request: &Request,
        now_ms: i64,
    ) -> (Decision, Option<TokenId>) {
        self.decide_identified(token, Some(request), None, now_ms)
    }

    /// [`Verifier::verify_identified_at_millis`] with the thumbprint of the key a proof of
    /// possession was made with, when one was presented (see [`Verifier::verify_with_proof_at`]).
    #[inline]
    pub fn verify_identified_with_proof_at_millis(
        &self,
        token: &str,
        proof: Option<&Thumbprint>,
        request: &Request,
        now_ms: i64,
    ) -> (Decision, Option<TokenId>) {
        self.decide_identified(token, Some(request), proof, now_ms)
    }

    #[inline]
    fn decide(
        &self,
        token: &str,
        request: Option<&Request>,
        proof: Option<&Thumbprint>,
        now_ms: i64,
    ) -> Decision {
        self.decide_identified(token, request, proof, now_ms).0
    }

    #[inline]
    fn decide_identified(
        &self,
        token: &str,
        request: Option<&Request>,
        proof: Option<&Thumbprint>,
        now_ms: i64,
    ) -> (Decision, Option<TokenId>) {
        let parsed = match self.format.parse(token) {
            Ok(p) => p,
            Err(e) => return (Decision::Denied(DenyReason::Malformed(e)), None),
        };
        let mut decision = Decision::Denied(DenyReason::UnknownToken);
        self.lookup.with_token(parsed.id(), &mut |view| {
            decision = self.judge(&parsed, view, request, proof, now_ms)
        });
        (decision, Some(parsed.id()))
    }

    /// Walks a child token's ancestors: the first one revoked, expired (or not valid yet) gives
    /// the denial; one missing, or a line longer than [`MAX_ANCESTRY`], is
    /// [`DenyReason::AncestorMissing`]. Out of line: only child tokens pay for it.
    #[cold]
    #[inline(never)]
    fn ancestry_denies(&self, parent: TokenId, now_ms: i64) -> Option<DenyReason> {
        let mut next = Some(parent);
        for _ in 0..MAX_ANCESTRY {
            let id = next?;
            let mut found = None;
            if !self
                .lookup
                .with_token(id, &mut |view| found = Some((view.lifecycle_at(now_ms), view.parent())))
            {
                return Some(DenyReason::AncestorMissing);
            }
            let (denied, up) = found?;
            if denied.is_some() {
                return denied;
            }
            next = up;
        }
        next.map(|_| DenyReason::AncestorMissing)
    }

    #[inline]
    fn judge(
        &self,
        parsed: &ParsedToken<'_>,
        view: &TokenView,
        request: Option<&Request>,
        proof: Option<&Thumbprint>,
        now_ms: i64,
    ) -> Decision {
        let key_id = view.digest().key_id();
        let Some(key) = self.keys.get(key_id) else {
            return Decision::Denied(DenyReason::UnknownDigestKey { key_id });
        };
        if !bool::from(key.digest_token(parsed).ct_eq(view.digest())) {
            return Decision::Denied(DenyReason::BadSecret);
        }
        // The key binding next, before anything about the token's state: a thief holding a copy
        // of a bound token (and not its key) learns nothing of it — not even whether it is live.
        if request.is_some() {
            match (view.bound_to(), proof) {
                (None, None) => {}
                (Some(bound), Some(proof)) if bound.ct_eq(proof) => {}
                (Some(_), None) => return Decision::Denied(DenyReason::ProofRequired),
                (_, Some(_)) => return Decision::Denied(DenyReason::WrongProofKey),
            }
        }
        if let Some(reason) = view.lifecycle_at(now_ms) {
            return Decision::Denied(reason);
        }
        if let Some(parent) = view.parent()
            && let Some(reason) = self.ancestry_denies(parent, now_ms)
        {
            return Decision::Denied(reason);
        }
        if let Some(request) = request {
            if !view.scopes().allows(request) {
                return Decision::Denied(DenyReason::OutOfScope);
            }
            if let Err(reason) = view.try_use(now_ms) {
                return Decision::Denied(reason);
            }
        }
        Decision::Allowed(Grant::new(parsed.id(), Arc::clone(view.bearer())))
    }
}

impl<L> fmt::Debug for Verifier<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("format", &self.format)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
