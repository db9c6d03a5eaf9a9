//! OpenBao targets against a real server (`bao server -dev`, started by `scripts/services.sh`):
//! a token of the token auth method and a KV v2 secret, each through the conformance kit.
//! Without a server these tests say so loudly and pass, except under CI (`CI=true`).

#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use token_core::SystemClock;
use token_core::chrono::TimeDelta;
use token_rotate::secrecy::SecretString;
use token_rotate::testing::{Harness, run_target_suite};
use token_rotate::*;
use token_store::secrecy::SecretBox;
use token_store::*;

fn bao() -> Option<(String, String)> {
    match (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN")) {
        (Ok(a), Ok(t)) => Some((a, t)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but TOKENWARD_BAO_ADDR is not set: OpenBao tests cannot be skipped in CI")
        }
        _ => {
            eprintln!(
                "\n*** SKIPPED: OpenBao tests (TOKENWARD_BAO_ADDR is not set; scripts/test.sh starts a server) ***\n"
            );
            None
        }
    }
}

static N: AtomicUsize = AtomicUsize::new(0);

async fn harness(target: Arc<dyn RotationTarget>) -> Harness {
    let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([9u8; 32]))).unwrap());
    let secrets = Arc::new(SecretStore::open(backend, kek).await.unwrap());
    Harness {
        rotator: Rotator::new(secrets, TimeDelta::zero(), Arc::new(SystemClock)),
        target,
        name: SecretName::new("svc/openbao").unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openbao_token_passes_the_kit() {
    let Some((addr, root)) = bao() else { return };
    run_target_suite(async || {
        let client = OpenBao::new(&addr, SecretString::from(root.clone())).unwrap();
        harness(Arc::new(OpenBaoTokenTarget::new(
            client,
            &["default"],
            TimeDelta::hours(1),
            "tokenward-test",
        )))
        .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openbao_kv_secret_passes_the_kit() {
    let Some((addr, root)) = bao() else { return };
    run_target_suite(async || {
        let client = OpenBao::new(&addr, SecretString::from(root.clone())).unwrap();
        let path = format!("tokenward/kit-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        harness(Arc::new(OpenBaoKvTarget::new(client, "secret", &path, "password", TimeDelta::days(30))))
            .await
    })
    .await;
}

#[test]
fn plain_http_is_refused_off_loopback() {
    for addr in
        ["http://10.0.0.8:8200", "https://127.0.0.1:8200", "http://vault.example:8200", "127.0.0.1:8200"]
    {
        assert!(OpenBao::new(addr, SecretString::from("t".to_owned())).is_err(), "{addr}");
    }
    for addr in ["http://127.0.0.1:8200", "http://[::1]:8200", "http://localhost:8200/"] {
        assert!(OpenBao::new(addr, SecretString::from("t".to_owned())).is_ok(), "{addr}");
    }
}
