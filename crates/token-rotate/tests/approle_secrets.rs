//! Planted AppRole secrets — the secret id, the tokens AppRole logs in with, the tokens the
//! target creates, a wrong secret id — never reach tracing output (TRACE, every thread), Debug,
//! or errors, through login, renewal, create, test, revoke and a refused login, against the real
//! OpenBao dev server.

#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tokenward_test_support::Captured;

use token_core::chrono::TimeDelta;
use token_http::secrecy::{ExposeSecret, SecretString};
use token_rotate::{RotationTarget, openbao::OpenBao, openbao::OpenBaoTokenTarget};

async fn root_call(
    addr: &str,
    root: &str,
    method: token_http::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let http = token_http::HttpClient::builder(addr).build().unwrap();
    let r = http
        .send(
            token_http::Request::new(method, path)
                .secret_header("X-Vault-Token", &SecretString::from(root.to_owned()))
                .json(&body),
        )
        .await
        .unwrap();
    r.json().unwrap_or(serde_json::Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_secrets_never_reach_tracing_debug_or_errors() {
    let (addr, root) = match (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN")) {
        (Ok(a), Ok(t)) => (a, t),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TOKENWARD_BAO_ADDR is not set")
        }
        _ => return eprintln!("\n*** SKIPPED: TOKENWARD_BAO_ADDR is not set ***\n"),
    };
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    use token_http::Method::{Get, Post};
    let _ =
        root_call(&addr, &root, Post, "/v1/sys/auth/approle", serde_json::json!({"type": "approle"})).await;
    let policy = "path \"auth/token/*\" { capabilities = [\"create\", \"read\", \"update\", \"sudo\"] }";
    root_call(
        &addr,
        &root,
        Post,
        "/v1/sys/policies/acl/tw-secrets-test",
        serde_json::json!({"policy": policy}),
    )
    .await;
    let role = format!("tw-secrets-{}", std::process::id());
    root_call(
        &addr,
        &root,
        Post,
        &format!("/v1/auth/approle/role/{role}"),
        serde_json::json!({"token_ttl": "2s", "token_max_ttl": "60s", "token_policies": ["default", "tw-secrets-test"]}),
    )
    .await;
    let role_id =
        root_call(&addr, &root, Get, &format!("/v1/auth/approle/role/{role}/role-id"), serde_json::json!({}))
            .await["data"]["role_id"]
            .as_str()
            .unwrap()
            .to_owned();
    let secret_id = root_call(
        &addr,
        &root,
        Post,
        &format!("/v1/auth/approle/role/{role}/secret-id"),
        serde_json::json!({}),
    )
    .await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let client =
        OpenBao::builder(&addr).approle(&role_id, SecretString::from(secret_id.clone())).build().unwrap();
    let me = client.lookup_self().await.unwrap();
    let login_token = me["id"].as_str().unwrap().to_owned();
    // Past two thirds of the 2 s lease: a renewal.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    client.lookup_self().await.unwrap();
    let client_debug = format!("{client:?}");
    let target = OpenBaoTokenTarget::new(client, &["default"], TimeDelta::minutes(5), "tw-secrets");
    let created = target.create(1, None).await.unwrap();
    target.test(&created).await.unwrap();
    target.revoke(&created).await.unwrap();
    let wrong_secret = "aaaaaaaa-planted-wrong-secret-id-0000";
    let wrong = OpenBao::builder(&addr)
        .approle(&role_id, SecretString::from(wrong_secret.to_owned()))
        .build()
        .unwrap();
    let err = wrong.lookup_self().await.unwrap_err();

    let shown = format!("{}\n{client_debug}\n{target:?}\n{created:?}\n{err}\n{err:?}", captured.text());
    assert!(shown.len() > 200, "tracing printed nothing: the check would prove nothing");
    for (what, secret) in [
        ("the secret id", secret_id.as_str()),
        ("the AppRole login token", login_token.as_str()),
        ("a created token", created.secret.expose_secret()),
        ("the wrong secret id", wrong_secret),
        ("the root token", root.as_str()),
    ] {
        assert!(!shown.contains(secret), "{what} appeared:\n{shown}");
    }
}
