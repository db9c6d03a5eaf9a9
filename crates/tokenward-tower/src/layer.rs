//! The layer: what every wrapped service shares.

use std::sync::Arc;

use tokenward::TokenVerifier;
use tokenward::oidc::DpopVerifier;
use tower_layer::Layer;

use crate::service::TokenAuth;

/// Where a request came from, for the audit entry's `source` (an address or host). Called once
/// per request; return `None` when unknown.
pub type SourceFn = dyn Fn(&http::Extensions, &http::HeaderMap) -> Option<String> + Send + Sync;

/// The default largest `Authorization` header, in bytes (a Tokenward token is under 100).
pub const DEFAULT_MAX_HEADER: usize = 1024;

#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) max_header: usize,
    pub(crate) source: Option<Arc<SourceFn>>,
    pub(crate) dpop: Option<Arc<Dpop>>,
}

/// DPoP (RFC 9449) as the layer checks it: the proofs' verifier, and the origin the server is
/// reached at (a proof's `htu` names the URI the client used, which a server behind a proxy
/// cannot read from the request).
pub(crate) struct Dpop {
    pub(crate) verifier: DpopVerifier,
    pub(crate) origin: String,
}

/// A [`Layer`] that authenticates bearer tokens and authorises each request's scope through a
/// [`TokenVerifier`] (audited when the deployment audits). See the [crate docs](crate).
pub struct TokenAuthLayer<M> {
    verifier: TokenVerifier,
    scopes: Arc<M>,
    config: Arc<Config>,
}

impl<M> Clone for TokenAuthLayer<M> {
    fn clone(&self) -> Self {
        Self {
            verifier: self.verifier.clone(),
            scopes: Arc::clone(&self.scopes),
            config: Arc::clone(&self.config),
        }
    }
}

impl<M> std::fmt::Debug for TokenAuthLayer<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuthLayer")
            .field("verifier", &self.verifier)
            .field("max_header", &self.config.max_header)
            .finish_non_exhaustive()
    }
}

impl<M> TokenAuthLayer<M> {
    /// Verifies through `verifier`; `scopes` says which scope each request needs (a
    /// [`crate::RouteTable`] or a closure `Fn(&http::Request<B>) -> Option<Request>`).
    pub fn new(verifier: TokenVerifier, scopes: M) -> Self {
        Self {
            verifier,
            scopes: Arc::new(scopes),
            config: Arc::new(Config { max_header: DEFAULT_MAX_HEADER, source: None, dpop: None }),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        // Configured before cloning (builder style); a clone made earlier keeps its own.
        Arc::make_mut(&mut self.config)
    }

    /// The largest `Authorization` header accepted (default [`DEFAULT_MAX_HEADER`]); a larger one
    /// is `400 invalid_request`.
    #[must_use]
    pub fn max_header(mut self, bytes: usize) -> Self {
        self.config_mut().max_header = bytes;
        self
    }

    /// Records each request's source in its audit entry, as `f` reads it (e.g. axum's
    /// `ConnectInfo<SocketAddr>` from the extensions, or a trusted proxy's header).
    #[must_use]
    pub fn source(
        mut self,
        f: impl Fn(&http::Extensions, &http::HeaderMap) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.config_mut().source = Some(Arc::new(f));
        self
    }

    /// Accepts DPoP-bound tokens (RFC 9449): `Authorization: DPoP <token>` with one `DPoP` proof
    /// header, checked by `verifier` (signature by the proof's own key, `htm` the request's
    /// method, `htu` `origin` + the request's path, `iat` fresh, `jti` never seen, `ath` the
    /// token's hash); the token must then be bound to that key. `origin` is how clients reach
    /// the server (`https://api.example.com`, no path). Without this, a token bound to a key is
    /// refused (it is never accepted as a bearer token, with or without this).
    #[must_use]
    pub fn dpop(mut self, verifier: DpopVerifier, origin: impl Into<String>) -> Self {
        let origin = origin.into().trim_end_matches('/').to_owned();
        self.config_mut().dpop = Some(Arc::new(Dpop { verifier, origin }));
        self
    }
}

impl<S, M> Layer<S> for TokenAuthLayer<M> {
    type Service = TokenAuth<S, M>;

    fn layer(&self, inner: S) -> Self::Service {
        TokenAuth::new(inner, self.verifier.clone(), Arc::clone(&self.scopes), Arc::clone(&self.config))
    }
}
