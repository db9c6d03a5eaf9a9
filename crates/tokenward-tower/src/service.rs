//! The service: authenticate, authorise, audit, then call the inner service.

use std::sync::Arc;
use std::task::{Context, Poll};

use tokenward::TokenVerifier;
use tokenward::core::{Decision, DenyReason, Grant};
use tower_service::Service;

use crate::bearer::bearer;
use crate::error::Rejection;
use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::scope::RequiredScope;

/// The middleware [`crate::TokenAuthLayer`] wraps a service in. Allowed requests reach the
/// inner service with the verified [`Grant`] (token id, principal, scopes) in their extensions;
/// the rest are answered with a [`Rejection`]'s response.
pub struct TokenAuth<S, M> {
    inner: S,
    verifier: TokenVerifier,
    scopes: Arc<M>,
    config: Arc<Config>,
}

impl<S: Clone, M> Clone for TokenAuth<S, M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            verifier: self.verifier.clone(),
            scopes: Arc::clone(&self.scopes),
            config: Arc::clone(&self.config),
        }
    }
}

impl<S, M> std::fmt::Debug for TokenAuth<S, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth").field("verifier", &self.verifier).finish_non_exhaustive()
    }
}

impl<S, M> TokenAuth<S, M> {
    pub(crate) fn new(inner: S, verifier: TokenVerifier, scopes: Arc<M>, config: Arc<Config>) -> Self {
        Self { inner, verifier, scopes, config }
    }

    /// The decision for `req`: its grant, or why not. Audited through the verifier.
    pub fn authorize<B>(&self, req: &http::Request<B>) -> Result<Grant, Rejection>
    where
        M: RequiredScope<B>,
    {
        let token = bearer(req.headers(), self.config.max_header)?;
        let Some(scope) = self.scopes.required_scope(req) else {
            tracing::debug!(path = req.uri().path(), "no scope maps to this request");
            return Err(Rejection::InsufficientScope(None));
        };
        let source = self.config.source.as_ref().and_then(|f| f(req.extensions(), req.headers()));
        match self.verifier.verify_from(token, &scope, source.as_deref()) {
            Decision::Allowed(grant) => Ok(grant),
            Decision::Denied(reason) => {
                // The detail goes to tracing and the audit log, never to the client.
                tracing::debug!(reason = reason.code(), scope = %scope, "bearer token refused");
                Err(match reason {
                    DenyReason::OutOfScope => Rejection::InsufficientScope(Some(scope)),
                    DenyReason::AuditUnavailable => Rejection::AuditUnavailable,
                    _ => Rejection::InvalidToken,
                })
            }
        }
    }
}

impl<S, M, ReqBody, ResBody> Service<http::Request<ReqBody>> for TokenAuth<S, M>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    M: RequiredScope<ReqBody>,
    ResBody: Default,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        match self.authorize(&req) {
            Ok(grant) => {
                req.extensions_mut().insert(grant);
                ResponseFuture::inner(self.inner.call(req))
            }
            Err(rejection) => ResponseFuture::rejected(rejection.into_response()),
        }
    }
}
