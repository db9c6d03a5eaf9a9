//! `tokenward-token`: a token of this deployment's own store, for a declared principal and purpose.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use token_core::IssueRequest;

use super::{BuildContext, CheckContext, DeclareError, Duration, DurationError, TargetDeclaration};
use crate::target::RotationTarget;
use crate::tokens::TokenwardTokenTarget;

/// A Tokenward token of this store, for a principal and purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TokenwardTokenSpec {
    /// The principal (declared in the file).
    pub principal: String,
    /// The purpose.
    pub purpose: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Its lifetime.
    pub ttl: Duration,
}

impl TokenwardTokenSpec {
    /// What each rotation asks for; `Err(message)` when it does not parse.
    fn request(&self) -> Result<Result<IssueRequest, String>, DurationError> {
        let ttl = self.ttl.get()?;
        Ok(IssueRequest::parse(&self.purpose, &self.scopes.join(" "), ttl).map_err(|e| e.to_string()))
    }
}

#[async_trait]
impl TargetDeclaration for TokenwardTokenSpec {
    const KIND: &'static str = "tokenward-token";

    fn check(&self, ctx: &dyn CheckContext) -> Result<(), DeclareError> {
        let what = ctx.what();
        let principal = &self.principal;
        let Some(holder) = ctx.principal(principal) else {
            return Err(DeclareError::new(format!("{what}: no principal {principal}")));
        };
        let request = self.request()?.map_err(|e| DeclareError::new(format!("{what}: {e}")))?;
        // What every rotation would ask: refused here, not found when one rolls back.
        let _approved = ctx.policy().check_issue(&holder, &request, &[], Utc::now()).map_err(|e| {
            DeclareError::new(format!("{what}: the principal may not be issued its token: {e}"))
        })?;
        Ok(())
    }

    fn lifetime(&self) -> Result<TimeDelta, DurationError> {
        self.ttl.get()
    }

    async fn build<C: BuildContext + ?Sized>(&self, ctx: &C) -> Result<Arc<dyn RotationTarget>, C::Error> {
        let what = ctx.what();
        let principal = &self.principal;
        let p = ctx
            .principal(principal)
            .ok_or_else(|| ctx.config(format!("{what}: no principal {principal}")))?;
        let request = self.request()?.map_err(|e| ctx.config(format!("{what}: {e}")))?;
        Ok(Arc::new(TokenwardTokenTarget::new(ctx.tokens(), p, request)))
    }
}
