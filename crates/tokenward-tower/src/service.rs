//! The service: authenticate, authorise, audit, then call the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokenward::TokenVerifier;
use tokenward::core::{Decision, DenyReason, Grant, Request};
use tokenward::oidc::{DpopProof, DpopRequest};
use tower_service::Service;

use crate::bearer::{Scheme, credentials};
use crate::error::Rejection;
use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::scope::RequiredScope;

/// The middleware [`crate::TokenAuthLayer`] wraps a service in. Allowed requests reach the
/// inner service with the verified [`Grant`] (token id, principal, scopes) in their extensions;
/// the rest are answered with a [`Rejection`]'s response.
pub struct TokenAuth<S, M> {
    inner: S,
    /// One reference count to clone: routers (axum's among them) clone the service for every
    /// request, and each count touched is a cache line the worker threads pass between them.
    shared: Arc<Shared<M>>,
}

struct Shared<M> {
    verifier: TokenVerifier,
    scopes: Arc<M>,
    config: Arc<Config>,
}

impl<S: Clone, M> Clone for TokenAuth<S, M> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone(), shared: Arc::clone(&self.shared) }
    }
}

impl<S, M> std::fmt::Debug for TokenAuth<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth").field("verifier", &self.shared.verifier).finish_non_exhaustive()
    }
}

impl<S, M> TokenAuth<S, M> {
    pub(crate) fn new(inner: S, verifier: TokenVerifier, scopes: Arc<M>, config: Arc<Config>) -> Self {
        Self { inner, shared: Arc::new(Shared { verifier, scopes, config }) }
    }

    /// What a decision needs of `req`: the token, the key a valid DPoP proof was made with (a
    /// `DPoP`-scheme request), the scope it must allow (`None`: no scope maps to the request),
    /// the source. A request without a usable token, or with a DPoP proof that is not valid, is
    /// refused here, audited.
    #[allow(clippy::type_complexity)]
    fn prepare<'r, B>(
        &self,
        req: &'r http::Request<B>,
    ) -> Result<(&'r str, Option<DpopProof>, Option<Request>, Option<String>), Rejection>
    where
        M: RequiredScope<B>,
    {
        let config = &self.shared.config;
        let source = config.source.as_ref().and_then(|f| f(req.extensions(), req.headers()));
        let (scheme, token) = match credentials(req.headers(), config.max_header, config.dpop.is_some()) {
            Ok(found) => found,
            Err(rejection) => {
                let code = match rejection {
                    Rejection::MissingToken => "missing_token",
                    _ => "invalid_request",
                };
                if !self.shared.verifier.record_tokenless(code, &refused(req), source.as_deref()) {
                    return Err(Rejection::AuditUnavailable);
                }
                return Err(rejection);
            }
        };
        let proof = match (scheme, &config.dpop) {
            (Scheme::Dpop, Some(dpop)) => match self.proof(req, token, dpop) {
                Some(key) => Some(key),
                None => {
                    if !self.shared.verifier.record_tokenless(
                        "invalid_dpop_proof",
                        &refused(req),
                        source.as_deref(),
                    ) {
                        return Err(Rejection::AuditUnavailable);
                    }
                    return Err(Rejection::InvalidDpopProof);
                }
            },
            _ => None,
        };
        // The token is judged whether a scope maps or not: a revoked, expired or made-up token is
        // `401 invalid_token` on every path, so no one learns the routes without a valid token.
        let scope = self.shared.scopes.required_scope(req);
        Ok((token, proof, scope, source))
    }

    /// The request's one valid DPoP proof for `token`, if it has one — unspent: its `jti` is
    /// recorded only once the token is allowed with its key ([`spend`]), so proofs for tokens
    /// that are refused anyway take no place in the replay cache.
    fn proof<B>(&self, req: &http::Request<B>, token: &str, dpop: &crate::layer::Dpop) -> Option<DpopProof> {
        let mut proofs = req.headers().get_all("dpop").iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else { return None };
        let proof = proof.to_str().ok()?;
        let htu = format!("{}{}", dpop.origin, req.uri().path());
        match dpop
            .verifier
            .verify_unspent(proof, &DpopRequest::new(req.method().as_str(), &htu).access_token(token))
        {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "DPoP proof refused");
                None
            }
        }
    }

    /// The decision for `req`: its grant, or why not. Audited through the verifier. With a
    /// bounded cache that does not hold the token this answers from the cache alone (see
    /// [`TokenAuth::authorize_async`]).
    pub fn authorize<B>(&self, req: &http::Request<B>) -> Result<Grant, Rejection>
    where
        M: RequiredScope<B>,
    {
        let (token, proof, scope, source) = self.prepare(req)?;
        let verifier = &self.shared.verifier;
        let key = proof.as_ref().map(DpopProof::thumbprint);
        let grant = match scope {
            Some(scope) => answer(
                verifier.verify_with_proof_from(token, key.as_ref(), &scope, source.as_deref()),
                Some(scope),
            ),
            None => answer(verifier.refuse_unmapped_from(token, &refused(req), source.as_deref()), None),
        }?;
        spend(&self.shared.config, verifier, proof.as_ref(), &refused(req), source.as_deref())?;
        Ok(grant)
    }

    /// [`TokenAuth::authorize`], reading the token's record from the store first when a bounded
    /// cache does not hold it.
    pub async fn authorize_async<B>(&self, req: &http::Request<B>) -> Result<Grant, Rejection>
    where
        M: RequiredScope<B>,
    {
        let (token, proof, scope, source) = self.prepare(req)?;
        let verifier = &self.shared.verifier;
        let key = proof.as_ref().map(DpopProof::thumbprint);
        let grant = match scope {
            Some(scope) => answer(
                verifier.verify_with_proof_from_async(token, key.as_ref(), &scope, source.as_deref()).await,
                Some(scope),
            ),
            None => {
                let decision =
                    verifier.refuse_unmapped_from_async(token, &refused(req), source.as_deref()).await;
                answer(decision, None)
            }
        }?;
        spend(&self.shared.config, verifier, proof.as_ref(), &refused(req), source.as_deref())?;
        Ok(grant)
    }
}

/// Spends the DPoP proof of a request whose token was allowed with its key: a proof seen before
/// (a replay, or a concurrent twin that spent it first) refuses the request after all, audited.
fn spend(
    config: &crate::layer::Config,
    verifier: &TokenVerifier,
    proof: Option<&DpopProof>,
    asked: &str,
    source: Option<&str>,
) -> Result<(), Rejection> {
    let (Some(proof), Some(dpop)) = (proof, &config.dpop) else { return Ok(()) };
    match dpop.verifier.spend(proof) {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::debug!(error = %e, "DPoP proof refused");
            if !verifier.record_tokenless("invalid_dpop_proof", asked, source) {
                return Err(Rejection::AuditUnavailable);
            }
            Err(Rejection::InvalidDpopProof)
        }
    }
}

/// What a refused request asked, for its audit entry: the method and the path (at most 256
/// bytes), and whether it had a query (never the query itself: RFC 6750 lets a client send its
/// token there).
fn refused<B>(req: &http::Request<B>) -> String {
    const MAX: usize = 256;
    let path = req.uri().path();
    let mut end = path.len().min(MAX);
    while !path.is_char_boundary(end) {
        end -= 1;
    }
    let mut text = format!("{} {}", req.method(), &path[..end]);
    if end < path.len() {
        text.push('…');
    }
    if req.uri().query().is_some() {
        text.push_str("?…");
    }
    text
}

/// The grant, or the rejection a denial maps to (`scope`: the one the request needed, if any maps).
fn answer(decision: Decision, scope: Option<Request>) -> Result<Grant, Rejection> {
    match decision {
        Decision::Allowed(grant) => Ok(grant),
        Decision::Denied(reason) => {
            // The detail goes to tracing and the audit log, never to the client.
            match &scope {
                Some(scope) => {
                    tracing::debug!(reason = reason.code(), scope = %scope, "bearer token refused")
                }
                None => tracing::debug!(
                    reason = reason.code(),
                    "bearer token refused: no scope maps to the request"
                ),
            }
            Err(match reason {
                DenyReason::OutOfScope => Rejection::InsufficientScope(scope),
                DenyReason::AuditUnavailable | DenyReason::LookupUnavailable => Rejection::AuditUnavailable,
                DenyReason::ProofRequired | DenyReason::WrongProofKey => Rejection::InvalidKeyBinding,
                _ => Rejection::InvalidToken,
            })
        }
    }
}

impl<S, M, ReqBody, ResBody> Service<http::Request<ReqBody>> for TokenAuth<S, M>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    M: RequiredScope<ReqBody> + Send + Sync + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        // A bounded cache without this token: read it, then decide (the only path that waits,
        // and the only one that allocates for it).
        let config = &self.shared.config;
        if self.shared.verifier.is_bounded()
            && let Ok((_, token)) = credentials(req.headers(), config.max_header, config.dpop.is_some())
            && self.shared.verifier.needs_fetch(token)
        {
            let (token, proof, scope, source) = match self.prepare(&req) {
                Ok((token, proof, scope, source)) => (token.to_owned(), proof, scope, source),
                Err(rejection) => return ResponseFuture::rejected(rejection.into_response()),
            };
            let asked = if scope.is_none() { Some(refused(&req)) } else { None };
            let what = refused(&req);
            let config = Arc::clone(&self.shared.config);
            // The service polled ready is the one to call; a clone takes its place here.
            let clone = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, clone);
            let verifier = self.shared.verifier.clone();
            return ResponseFuture::fetching(Box::pin(async move {
                let decision = match (&scope, &asked) {
                    (Some(scope), _) => {
                        let key = proof.as_ref().map(DpopProof::thumbprint);
                        verifier
                            .verify_with_proof_from_async(&token, key.as_ref(), scope, source.as_deref())
                            .await
                    }
                    (None, asked) => {
                        let asked = asked.as_deref().unwrap_or_default();
                        verifier.refuse_unmapped_from_async(&token, asked, source.as_deref()).await
                    }
                };
                let granted = answer(decision, scope).and_then(|grant| {
                    spend(&config, &verifier, proof.as_ref(), &what, source.as_deref())?;
                    Ok(grant)
                });
                match granted {
                    Ok(grant) => {
                        req.extensions_mut().insert(grant);
                        inner.call(req).await
                    }
                    Err(rejection) => Ok(rejection.into_response()),
                }
            }));
        }
        match self.authorize(&req) {
            Ok(grant) => {
                req.extensions_mut().insert(grant);
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(rejection) => ResponseFuture::rejected(rejection.into_response()),
        }
    }
}
