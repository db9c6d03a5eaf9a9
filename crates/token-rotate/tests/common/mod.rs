//! Shared by the integration tests: a token service on a backend, and a target rotating
//! `billing`'s token for the purpose `app`.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use token_core::chrono::TimeDelta;
use token_core::{IssueRequest, Policy, Principal, Role, TokenFormat, TokenPrefix};
use token_rotate::TokenwardTokenTarget;
use token_store::secrecy::SecretBox;
use token_store::{Backend, LocalKek, SecretName, SecretStore, TokenService};

pub(crate) struct World {
    pub(crate) secrets: Arc<SecretStore>,
    pub(crate) tokens: Arc<TokenService>,
    pub(crate) target: TokenwardTokenTarget,
}

/// Tokens (prefix `tw`, role `r` = `kv:app/**:read`) on `backend`, and a target issuing `billing`
/// a token for `app` living `ttl`.
pub(crate) async fn token_world(backend: Arc<dyn Backend>, ttl: TimeDelta) -> World {
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([7u8; 32]))).unwrap());
    let secrets = Arc::new(SecretStore::open(backend.clone(), kek).await.unwrap());
    let policy = Policy::builder()
        .role(Role::parse("r", "kv:app/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let tokens = Arc::new(
        TokenService::open(
            backend,
            &secrets,
            TokenFormat::new(TokenPrefix::new("tw").unwrap()),
            policy,
            100_000,
        )
        .await
        .unwrap(),
    );
    let target = TokenwardTokenTarget::new(
        tokens.clone(),
        Principal::parse("billing", ["r"]).unwrap(),
        IssueRequest::parse("app", "kv:app/**:read", ttl).unwrap(),
    );
    World { secrets, tokens, target }
}

/// The credential every test rotates.
pub(crate) fn name() -> SecretName {
    SecretName::new("billing/app-token").unwrap()
}
