//! An issuer's keys: a JWKS document read strictly ([`Jwks`]), and where it comes from
//! ([`IssuerKeys`]) — a pinned file for air-gapped use, or a URL fetched through `token-http`
//! (TLS, a size cap, timeouts, no redirects), cached, refreshed on a schedule, and refetched on
//! an unknown `kid` at most once per minimum interval, however many unknown `kid`s arrive.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_http::{HttpClient, Request};

use crate::error::{ConfigError, JwksError, JwtError, quote};
use crate::jwk::{JwkRefusal, PublicJwk};
use crate::jws::Algorithm;
use crate::limits;

/// A key set (RFC 7517 §5): the usable public keys, and the well-formed ones that are usable
/// for nothing here (kept so that a token naming one is told why, not "unknown kid"). A key
/// with private material refuses the whole set; a key of an unsupported type is skipped.
#[derive(Clone, Debug, Default)]
pub struct Jwks {
    keys: Vec<PublicJwk>,
}

impl Jwks {
    /// Reads a JWKS document (`{"keys": [...]}`), at most [`limits::MAX_JWKS_BYTES`].
    pub fn parse(doc: &[u8]) -> Result<Self, JwksError> {
        if doc.len() > limits::MAX_JWKS_BYTES {
            return Err(JwksError::TooLarge { max: limits::MAX_JWKS_BYTES });
        }
        let Ok(Value::Object(mut top)) = crate::jws::strict_json(doc) else {
            return Err(JwksError::Malformed("not a JSON object (or a member appears twice)"));
        };
        let Some(Value::Array(entries)) = top.remove("keys") else {
            return Err(JwksError::Malformed("no \"keys\" array"));
        };
        if entries.len() > limits::MAX_JWKS_KEYS {
            return Err(JwksError::TooManyKeys { max: limits::MAX_JWKS_KEYS });
        }
        let mut keys = Vec::with_capacity(entries.len());
        for entry in &entries {
            let Value::Object(m) = entry else {
                return Err(JwksError::Malformed("a key is not a JSON object"));
            };
            match PublicJwk::from_map(m, false) {
                Ok(k) => keys.push(k),
                Err(JwkRefusal::Private) => {
                    let kid = m.get("kid").and_then(Value::as_str).map(quote);
                    return Err(JwksError::PrivateKey { kid });
                }
                Err(JwkRefusal::Bad(why)) => {
                    let kid = m.get("kid").and_then(Value::as_str).map(quote);
                    tracing::debug!(?kid, reason = why, "JWKS key skipped");
                }
            }
        }
        Ok(Self { keys })
    }

    /// The keys read.
    pub fn keys(&self) -> &[PublicJwk] {
        &self.keys
    }

    /// The key a token with `kid` and `alg` is verified with: the one with that `kid` (or, with
    /// no `kid`, the only key for `alg`). `Ok(None)`: no such key.
    pub(crate) fn select(&self, kid: Option<&str>, alg: Algorithm) -> Result<Option<&PublicJwk>, JwtError> {
        let mut candidates = self.keys.iter().filter(|k| match kid {
            Some(kid) => k.kid() == Some(kid),
            None => k.algorithm() == Ok(alg),
        });
        let Some(first) = candidates.next() else { return Ok(None) };
        let mut usable = None;
        let mut why = None;
        for k in std::iter::once(first).chain(candidates) {
            match k.check_alg(alg) {
                Ok(()) if usable.is_some() => {
                    // Two keys answer: the token must name one (or the set names it twice).
                    return Err(JwtError::UnknownKey { kid: kid.map(quote) });
                }
                Ok(()) => usable = Some(k),
                Err(w) => why = Some(w),
            }
        }
        match (usable, why) {
            (Some(k), _) => Ok(Some(k)),
            (None, why) => Err(JwtError::KeyAlgorithmMismatch {
                kid: kid.map(quote),
                alg: alg.as_str().to_owned(),
                why: why.unwrap_or("no key is usable"),
            }),
        }
    }
}

/// A pinned JWKS file's bytes: not writable by its group or others (Unix), read from the file
/// whose mode was checked, at most [`limits::MAX_JWKS_BYTES`].
fn read_anchor(path: &std::path::Path) -> Result<Vec<u8>, JwksError> {
    use std::io::Read as _;
    let file_err = |source| JwksError::File { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(file_err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if file.metadata().map_err(file_err)?.mode() & 0o022 != 0 {
            return Err(JwksError::Writable { path: path.display().to_string() });
        }
    }
    let mut doc = Vec::new();
    file.take(limits::MAX_JWKS_BYTES as u64 + 1).read_to_end(&mut doc).map_err(file_err)?;
    if doc.len() > limits::MAX_JWKS_BYTES {
        return Err(JwksError::TooLarge { max: limits::MAX_JWKS_BYTES });
    }
    Ok(doc)
}

/// Where an issuer's keys come from, and their cache. Cheap to clone (shared).
#[derive(Clone)]
pub struct IssuerKeys {
    inner: Arc<Inner>,
}

struct Inner {
    remote: Option<Remote>,
    state: RwLock<State>,
    fetch: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

struct Remote {
    client: HttpClient,
    path: String,
    shown: String,
    refresh: TimeDelta,
    min_refetch: TimeDelta,
    max_stale: TimeDelta,
}

#[derive(Clone, Default)]
struct State {
    keys: Arc<Jwks>,
    /// When the keys held were fetched (`None`: never, or pinned).
    fetched_at: Option<DateTime<Utc>>,
    /// When a fetch was last tried, successful or not.
    last_attempt: Option<DateTime<Utc>>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("IssuerKeys");
        match &self.inner.remote {
            Some(r) => d.field("url", &r.shown),
            None => d.field("pinned", &true),
        };
        d.field("keys", &self.current().keys.len()).finish()
    }
}

impl IssuerKeys {
    /// Keys fixed at construction, never fetched (air-gapped use).
    pub fn pinned(jwks: Jwks) -> Self {
        Self::with(None, State { keys: Arc::new(jwks), ..State::default() })
    }

    /// Keys read once from a JWKS file, as the trust anchor it is (whoever can write it can mint
    /// identities): refused if its group or others may write it (on Unix:
    /// [`JwksError::Writable`]), and read from the file opened (the mode checked is that file's),
    /// never more than [`limits::MAX_JWKS_BYTES`].
    pub fn pinned_file(path: impl AsRef<std::path::Path>) -> Result<Self, JwksError> {
        Ok(Self::pinned(Jwks::parse(&read_anchor(path.as_ref())?)?))
    }

    /// [`IssuerKeys::pinned_file`], and the document must have the SHA-256 `sha256` (pinned where
    /// the file's writer cannot change it, a sealed policy): an edited file is refused
    /// ([`JwksError::DigestMismatch`]).
    pub fn pinned_file_sha256(
        path: impl AsRef<std::path::Path>,
        sha256: &[u8; 32],
    ) -> Result<Self, JwksError> {
        use sha2::Digest as _;
        let path = path.as_ref();
        let doc = read_anchor(path)?;
        let digest: [u8; 32] = sha2::Sha256::digest(&doc).into();
        if &digest != sha256 {
            return Err(JwksError::DigestMismatch { path: path.display().to_string() });
        }
        Ok(Self::pinned(Jwks::parse(&doc)?))
    }

    /// Keys fetched from `url` (https, or http to loopback only), configured by the builder.
    pub fn remote(url: impl Into<String>) -> RemoteKeysBuilder {
        RemoteKeysBuilder {
            url: url.into(),
            refresh: limits::DEFAULT_JWKS_REFRESH,
            min_refetch: limits::DEFAULT_JWKS_MIN_REFETCH,
            max_stale: limits::DEFAULT_JWKS_MAX_STALE,
            max_bytes: limits::DEFAULT_JWKS_BYTES,
            timeout: Duration::from_secs(10),
            ca_pem: None,
        }
    }

    fn with(remote: Option<Remote>, state: State) -> Self {
        Self {
            inner: Arc::new(Inner {
                remote,
                state: RwLock::new(state),
                fetch: tokio::sync::Mutex::new(()),
                fetches: AtomicU64::new(0),
            }),
        }
    }

    /// How many fetches were made (attempts, successful or not): what the refetch bound is
    /// observed by.
    pub fn fetches(&self) -> u64 {
        self.inner.fetches.load(Ordering::Relaxed)
    }

    /// The keys held now (none yet for a remote source never fetched).
    pub fn current(&self) -> Arc<Jwks> {
        self.inner.state.read().map(|s| Arc::clone(&s.keys)).unwrap_or_default()
    }

    /// Fetches the key set now (remote; pinned keys are left as they are), whatever the
    /// schedule says — for a start-up check.
    pub async fn refresh_at(&self, now: DateTime<Utc>) -> Result<(), JwksError> {
        let Some(remote) = &self.inner.remote else { return Ok(()) };
        let _one = self.inner.fetch.lock().await;
        self.fetch(remote, now).await
    }

    fn state(&self) -> State {
        self.inner.state.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// The key for (`kid`, `alg`) at `now`: from the cache; refreshed first when the cache is
    /// due; refetched once when `kid` is unknown and the last attempt is older than the minimum
    /// interval.
    pub(crate) async fn key_at(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
        now: DateTime<Utc>,
    ) -> Result<PublicJwk, JwtError> {
        let Some(remote) = &self.inner.remote else {
            let keys = self.current();
            return keys.select(kid, alg)?.cloned().ok_or(JwtError::UnknownKey { kid: kid.map(quote) });
        };
        let state = self.state();
        let due = state.fetched_at.is_none_or(|at| now - at >= remote.refresh);
        if due && self.may_fetch(&state, remote, now) {
            self.fetch_once(remote, state.last_attempt, now).await;
        }
        let unusable = |s: &State| s.fetched_at.is_none_or(|at| now - at > remote.max_stale);
        let mut state = self.state();
        if unusable(&state) {
            // No usable keys, and another caller's fetch may be in flight (the first one, at
            // start-up): wait for it to end rather than refuse while it runs.
            drop(self.inner.fetch.lock().await);
            state = self.state();
        }
        if unusable(&state) {
            // Never fetched, or the last good copy is too old to trust for a rotated-out key.
            return Err(JwtError::KeysUnavailable(JwksError::Unavailable {
                fetched_at: state.fetched_at,
                last_error: state.last_error.unwrap_or_else(|| "no fetch yet".into()),
            }));
        }
        if let Some(k) = state.keys.select(kid, alg)? {
            return Ok(k.clone());
        }
        if self.may_fetch(&state, remote, now) {
            self.fetch_once(remote, state.last_attempt, now).await;
        } else if self.inner.fetch.try_lock().is_err() {
            // A fetch is in flight (another token with a new kid, just after a rotation, say):
            // its answer may hold the key. Wait for it rather than refuse now; this makes no
            // fetch of its own.
            drop(self.inner.fetch.lock().await);
        } else {
            return Err(JwtError::UnknownKey { kid: kid.map(quote) });
        }
        match self.current().select(kid, alg)? {
            Some(k) => Ok(k.clone()),
            None => Err(JwtError::UnknownKey { kid: kid.map(quote) }),
        }
    }

    /// Whether a fetch may be made at `now`: none was tried within the minimum interval. A
    /// clock stepped back by more than the interval counts as that long (so a step back does
    /// not stop fetches until the clock catches up), but callers whose `now` is only a little
    /// behind the last attempt (concurrent requests read the clock in any order) do not fetch.
    fn may_fetch(&self, state: &State, remote: &Remote, now: DateTime<Utc>) -> bool {
        state.last_attempt.is_none_or(|at| (now - at).abs() >= remote.min_refetch)
    }

    /// One fetch among concurrent callers: whoever takes the lock first fetches; the others
    /// find the attempt made (`last_attempt` moved) and use its result.
    async fn fetch_once(&self, remote: &Remote, seen: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        let _one = self.inner.fetch.lock().await;
        if self.state().last_attempt != seen {
            return;
        }
        if let Err(e) = self.fetch(remote, now).await {
            tracing::warn!(url = %remote.shown, error = %e, "JWKS fetch failed; keeping the keys held");
        }
    }

    async fn fetch(&self, remote: &Remote, now: DateTime<Utc>) -> Result<(), JwksError> {
        let result = self.fetch_inner(remote, now).await;
        if let (Err(e), Ok(mut s)) = (&result, self.inner.state.write()) {
            s.last_error = Some(e.to_string());
        }
        result
    }

    async fn fetch_inner(&self, remote: &Remote, now: DateTime<Utc>) -> Result<(), JwksError> {
        self.inner.fetches.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.inner.state.write() {
            s.last_attempt = Some(now);
        }
        let answer = remote
            .client
            .send(Request::get(remote.path.clone()).header("Accept", "application/json"))
            .await
            .map_err(JwksError::Fetch)?;
        if answer.status != 200 {
            return Err(JwksError::Status { url: remote.shown.clone(), status: answer.status });
        }
        let jwks = Jwks::parse(&answer.body)?;
        if let Ok(mut s) = self.inner.state.write() {
            s.keys = Arc::new(jwks);
            s.fetched_at = Some(now);
            s.last_error = None;
        }
        Ok(())
    }
}

/// Configures a remote JWKS ([`IssuerKeys::remote`]).
#[must_use = "a builder does nothing until `build`"]
#[derive(Debug)]
pub struct RemoteKeysBuilder {
    url: String,
    refresh: TimeDelta,
    min_refetch: TimeDelta,
    max_stale: TimeDelta,
    max_bytes: usize,
    timeout: Duration,
    ca_pem: Option<Vec<u8>>,
}

impl RemoteKeysBuilder {
    /// How long fetched keys are used before the set is fetched again (default 1 h; 1 min to
    /// 24 h).
    pub fn refresh(mut self, every: TimeDelta) -> Self {
        self.refresh = every;
        self
    }

    /// The least time between two fetches, whatever asks for them (a refresh, unknown `kid`s):
    /// default 1 min; 1 s to 1 h. A flood of unknown `kid`s makes at most one fetch per
    /// interval.
    pub fn min_refetch_interval(mut self, every: TimeDelta) -> Self {
        self.min_refetch = every;
        self
    }

    /// How long the last good key set is used while fetches fail (default 24 h; at least the
    /// refresh interval, at most 7 d). Past it, tokens are refused until a fetch succeeds.
    pub fn max_stale(mut self, d: TimeDelta) -> Self {
        self.max_stale = d;
        self
    }

    /// The largest JWKS answer accepted (default 64 KiB; at most 1 MiB).
    pub fn max_bytes(mut self, n: usize) -> Self {
        self.max_bytes = n;
        self
    }

    /// The whole fetch's timeout (default 10 s; the connect timeout is half of it).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Trust only these CA certificates (PEM) for the JWKS host.
    pub fn ca_pem(mut self, pem: Vec<u8>) -> Self {
        self.ca_pem = Some(pem);
        self
    }

    /// Checks the settings and builds the (empty) cache; the first validation fetches.
    pub fn build(self) -> Result<IssuerKeys, ConfigError> {
        let range = |what, ok: bool, bound: &str| {
            if ok { Ok(()) } else { Err(ConfigError::OutOfRange { what, bound: bound.to_owned() }) }
        };
        range(
            "the JWKS refresh interval",
            self.refresh >= TimeDelta::minutes(1) && self.refresh <= TimeDelta::hours(24),
            "1m to 24h",
        )?;
        range(
            "the JWKS minimum refetch interval",
            self.min_refetch >= TimeDelta::seconds(1) && self.min_refetch <= TimeDelta::hours(1),
            "1s to 1h",
        )?;
        range(
            "the JWKS staleness bound",
            self.max_stale >= self.refresh && self.max_stale <= TimeDelta::days(7),
            "from the refresh interval to 7d",
        )?;
        range(
            "the JWKS size cap",
            self.max_bytes > 0 && self.max_bytes <= limits::MAX_JWKS_BYTES,
            "1 B to 1 MiB",
        )?;
        let url = url::Url::parse(&self.url).map_err(|e| ConfigError::BadUrl(e.to_string()))?;
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(ConfigError::BadUrl("a JWKS URL has no fragment and no credentials".into()));
        }
        let mut path = url.path().to_owned();
        if let Some(q) = url.query() {
            path.push('?');
            path.push_str(q);
        }
        let origin = url.origin().ascii_serialization();
        let mut client = HttpClient::builder(origin.clone())
            .timeout(self.timeout)
            .connect_timeout(self.timeout / 2)
            .max_response(self.max_bytes)
            .retries(1, Duration::from_millis(200));
        if let Some(pem) = self.ca_pem {
            client = client.ca_pem(pem);
        }
        let client = client.build().map_err(ConfigError::Http)?;
        let remote = Remote {
            client,
            shown: format!("{origin}{}", url.path()),
            path,
            refresh: self.refresh,
            min_refetch: self.min_refetch,
            max_stale: self.max_stale,
        };
        Ok(IssuerKeys::with(Some(remote), State::default()))
    }
}
