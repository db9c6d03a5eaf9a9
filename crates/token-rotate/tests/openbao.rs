//! OpenBao targets against a real server (`bao server -dev`, started by `scripts/services.sh`):
//! a token of the token auth method and a KV v2 secret, each through the conformance kit.
//! Without a server these tests say so loudly and pass, except under CI (`CI=true`).

#![cfg(feature = "vault")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use token_core::chrono::TimeDelta;
use token_core::clocks::SystemClock;
use token_rotate::openbao::{OpenBao, OpenBaoKvDestination, OpenBaoKvTarget, OpenBaoTokenTarget};
use token_rotate::retire::Probe;
use token_rotate::secrecy::{ExposeSecret, SecretString};
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
fn plain_http_is_refused_off_loopback_unless_allowed() {
    for addr in ["http://10.0.0.8:8200", "http://vault.example:8200", "127.0.0.1:8200", "ftp://127.0.0.1"] {
        assert!(OpenBao::new(addr, SecretString::from("t".to_owned())).is_err(), "{addr}");
    }
    for addr in
        ["http://127.0.0.1:8200", "http://[::1]:8200", "http://localhost:8200/", "https://bao.example:8200"]
    {
        assert!(OpenBao::new(addr, SecretString::from("t".to_owned())).is_ok(), "{addr}");
    }
    let allowed = OpenBao::builder("http://10.0.0.8:8200")
        .allow_plain_http(true)
        .token(SecretString::from("t".to_owned()));
    assert!(allowed.build().is_ok());
    assert!(OpenBao::builder("https://bao.example").build().is_err(), "no token, no AppRole");
}

/// The TLS dev server (`start_openbao_tls`): address, CA file, root token.
fn bao_tls() -> Option<(String, String, String)> {
    match (
        std::env::var("TOKENWARD_BAO_TLS_ADDR"),
        std::env::var("TOKENWARD_BAO_TLS_CA"),
        std::env::var("TOKENWARD_BAO_TLS_TOKEN"),
    ) {
        (Ok(a), Ok(c), Ok(t)) => Some((a, c, t)),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "CI=true but TOKENWARD_BAO_TLS_ADDR is not set: the OpenBao TLS tests cannot be skipped in CI"
            )
        }
        _ => {
            eprintln!("\n*** SKIPPED: OpenBao TLS tests (TOKENWARD_BAO_TLS_ADDR is not set) ***\n");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_its_ca_the_targets_pass_the_kit_and_a_wrong_ca_is_refused() {
    let Some((addr, ca, root)) = bao_tls() else { return };
    let ca_pem = std::fs::read(&ca).unwrap();
    let client = || {
        OpenBao::builder(&addr)
            .ca_pem(ca_pem.clone())
            .token(SecretString::from(root.clone()))
            .build()
            .unwrap()
    };
    assert!(client().lookup_self().await.unwrap()["policies"].to_string().contains("root"));
    run_target_suite(async || {
        harness(Arc::new(OpenBaoTokenTarget::new(
            client(),
            &["default"],
            TimeDelta::hours(1),
            "tokenward-tls",
        )))
        .await
    })
    .await;
    run_target_suite(async || {
        let path = format!("tokenward/tls-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        harness(Arc::new(OpenBaoKvTarget::new(client(), "secret", &path, "password", TimeDelta::days(30))))
            .await
    })
    .await;

    // Another CA (made here with openssl): the server's certificate does not chain to it.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other-ca.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=not-the-bao-ca",
        ])
        .arg("-keyout")
        .arg(dir.path().join("other-key.pem"))
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let wrong = OpenBao::builder(&addr)
        .ca_pem(std::fs::read(&other).unwrap())
        .token(SecretString::from(root.clone()))
        .build()
        .unwrap();
    let e = wrong.lookup_self().await.unwrap_err();
    let text = format!("{e} {:?}", std::error::Error::source(&e).map(ToString::to_string));
    assert!(text.to_lowercase().contains("certificate") || text.contains("issuer"), "{text}");
    assert!(!text.contains(&root), "no token in the error");
    // The platform's roots do not know the dev server's CA either.
    let platform = OpenBao::new(&addr, SecretString::from(root.clone())).unwrap();
    assert!(platform.lookup_self().await.is_err());
    // Plain HTTP to the TLS listener is not an answer.
    let plain = OpenBao::new(&addr.replace("https://", "http://"), SecretString::from(root.clone())).unwrap();
    assert!(plain.lookup_self().await.is_err());
}

/// Enables AppRole (once) on the plain dev server and makes a role whose tokens live `ttl`
/// seconds (at most `max_ttl`); returns (role_id, secret_id).
async fn approle(addr: &str, root: &str, role: &str, ttl: u64, max_ttl: u64) -> (String, SecretString) {
    let http = |method: &str, path: &str, body: Option<serde_json::Value>| {
        let mut c = std::process::Command::new("curl");
        c.args(["-s", "-X", method, "-H", &format!("X-Vault-Token: {root}")]);
        if let Some(b) = body {
            c.args(["-d", &b.to_string()]);
        }
        let out = c.arg(format!("{addr}{path}")).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    let _ = http("POST", "/v1/sys/auth/approle", Some(serde_json::json!({"type": "approle"})));
    // What the token target needs, and no more (AppRole cannot hand out root).
    let policy = r#"
path "auth/token/create-orphan" { capabilities = ["create", "update", "sudo"] }
path "auth/token/revoke-accessor" { capabilities = ["update"] }
path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
"#;
    http("PUT", "/v1/sys/policies/acl/tokenward-rotator", Some(serde_json::json!({"policy": policy})));
    http(
        "POST",
        &format!("/v1/auth/approle/role/{role}"),
        Some(serde_json::json!({"token_ttl": format!("{ttl}s"), "token_max_ttl": format!("{max_ttl}s"),
                                "token_policies": ["default", "tokenward-rotator"]})),
    );
    let id: serde_json::Value =
        serde_json::from_str(&http("GET", &format!("/v1/auth/approle/role/{role}/role-id"), None)).unwrap();
    let secret: serde_json::Value =
        serde_json::from_str(&http("POST", &format!("/v1/auth/approle/role/{role}/secret-id"), None))
            .unwrap();
    (
        id["data"]["role_id"].as_str().unwrap().to_owned(),
        SecretString::from(secret["data"]["secret_id"].as_str().unwrap().to_owned()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_logs_in_renews_before_expiry_and_logs_in_again_past_max_ttl() {
    let Some((addr, root)) = bao() else { return };
    let role = format!("tw-{}", std::process::id());
    let (role_id, secret_id) = approle(&addr, &root, &role, 3, 6).await;
    let client = OpenBao::builder(&addr).approle(&role_id, secret_id.clone()).build().unwrap();
    assert!(!format!("{client:?}").contains(secret_id.expose_secret()), "{client:?}");
    let first = client.lookup_self().await.unwrap();
    let accessor = first["accessor"].as_str().unwrap().to_owned();
    // Past two thirds of the 3 s lease: renewed (the same token), not a new login.
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    let renewed = client.lookup_self().await.unwrap();
    assert_eq!(renewed["accessor"], accessor.as_str(), "renewed in place");
    // Past the 6 s max TTL, renewal cannot help: a fresh login, a new token.
    tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    let later = client.lookup_self().await.unwrap();
    assert_ne!(later["accessor"], accessor.as_str(), "logged in again");
    // The kit through AppRole.
    run_target_suite(async || {
        let c = OpenBao::builder(&addr).approle(&role_id, secret_id.clone()).build().unwrap();
        harness(Arc::new(OpenBaoTokenTarget::new(c, &["default"], TimeDelta::hours(1), "tokenward-approle")))
            .await
    })
    .await;
    // A wrong secret id: a clear error that holds neither id.
    let wrong = OpenBao::builder(&addr)
        .approle(&role_id, SecretString::from("not-the-secret-id".to_owned()))
        .build()
        .unwrap();
    let e = wrong.lookup_self().await.unwrap_err().to_string();
    assert!(e.contains("AppRole login") && !e.contains("not-the-secret-id"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_deploy_into_kv_v2_with_check_and_set_and_a_failed_deploy_rolls_back() {
    let Some((addr, root)) = bao() else { return };
    let client = || OpenBao::new(&addr, SecretString::from(root.clone())).unwrap();
    let path = format!("deploy/tw-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let kv: Arc<dyn Destination> =
        Arc::new(OpenBaoKvDestination::new(client(), "secret", &path, "token").handle_field("accessor"));
    let inner: Arc<dyn RotationTarget> =
        Arc::new(OpenBaoTokenTarget::new(client(), &["default"], TimeDelta::hours(1), "tw-deploy"));
    // Through the kit first: deploying everywhere changes nothing of the protocol.
    run_target_suite(async || {
        let p = format!("deploy/kit-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
        let d: Arc<dyn Destination> = Arc::new(OpenBaoKvDestination::new(client(), "secret", &p, "token"));
        let t: Arc<dyn RotationTarget> =
            Arc::new(OpenBaoTokenTarget::new(client(), &["default"], TimeDelta::hours(1), "tw-kit"));
        harness(Arc::new(Deployed::new(t, vec![d]))).await
    })
    .await;
    let h = harness(Arc::new(Deployed::new(inner.clone(), vec![kv.clone()]))).await;
    let read = |p: String| {
        let addr = addr.clone();
        let root = root.clone();
        async move {
            let out = std::process::Command::new("curl")
                .args(["-s", "-H", &format!("X-Vault-Token: {root}"), &format!("{addr}/v1/secret/data/{p}")])
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        }
    };
    for _ in 0..2 {
        assert!(matches!(
            h.rotator.rotate(&h.name, h.target.as_ref()).await.unwrap(),
            Rotation::Promoted { .. }
        ));
    }
    let current = h.rotator.current(&h.name).await.unwrap().unwrap();
    let v = read(path.clone()).await;
    assert_eq!(v["data"]["data"]["token"], current.secret.expose_secret());
    assert_eq!(v["data"]["data"]["accessor"], current.handle.as_str());
    assert_eq!(v["data"]["metadata"]["version"], 2, "one version per promotion");
    assert!(read(format!("{path}-pending")).await["data"].is_null(), "nothing left staged");
    // A second destination on a mount that does not exist: the first's staged copy is withdrawn,
    // the new token revoked, the secret untouched.
    assert!(h.rotator.revoke_previous_if_due(&h.name, h.target.as_ref()).await.unwrap());
    let broken: Arc<dyn Destination> =
        Arc::new(OpenBaoKvDestination::new(client(), "no-such-mount", "x", "token"));
    let both = Deployed::new(inner.clone(), vec![kv.clone(), broken]);
    match h.rotator.rotate(&h.name, &both).await.unwrap() {
        Rotation::RolledBack { reason, .. } => {
            assert!(reason.contains("openbao-kv:no-such-mount/x"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(read(path.clone()).await["data"]["metadata"]["version"], 2, "the secret is untouched");
    assert!(read(format!("{path}-pending")).await["data"].is_null(), "the staged copy was withdrawn");
    assert_eq!(h.rotator.current(&h.name).await.unwrap().unwrap().handle, current.handle);
}

/// A root call through curl; the answer's JSON (`null` if none).
fn root_curl(
    addr: &str,
    root: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    let mut c = std::process::Command::new("curl");
    c.args(["-s", "-X", method, "-H", &format!("X-Vault-Token: {root}")]);
    if let Some(b) = body {
        c.args(["-d", &b.to_string()]);
    }
    let out = c.arg(format!("{addr}{path}")).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// Live tokens that AppRole role `role` logged in.
fn live_logins(addr: &str, root: &str, role: &str) -> usize {
    let list = root_curl(addr, root, "LIST", "/v1/auth/token/accessors", None);
    let keys = list["data"]["keys"].as_array().cloned().unwrap_or_default();
    assert!(keys.len() < 5_000, "a bounded listing");
    keys.iter()
        .filter_map(|a| a.as_str())
        .filter(|a| {
            let v = root_curl(
                addr,
                root,
                "POST",
                "/v1/auth/token/lookup-accessor",
                Some(serde_json::json!({ "accessor": a })),
            );
            v["data"]["meta"]["role_name"].as_str() == Some(role)
        })
        .count()
}

/// Issue 24 §6: every command logged in through AppRole and never revoked its login token (21 live
/// tokens with the rotator's policy after one test run). Now the session ends with the target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_login_tokens_are_revoked_when_the_session_ends_and_a_403_names_the_path() {
    let Some((addr, root)) = bao() else { return };
    let role = format!("tw-close-{}", std::process::id());
    let (role_id, secret_id) = approle(&addr, &root, &role, 3600, 7200).await;
    assert_eq!(live_logins(&addr, &root, &role), 0);
    // A target's session: it logs in on first use, and `close` revokes the login token.
    let client = OpenBao::builder(&addr).approle(&role_id, secret_id.clone()).build().unwrap();
    let target = OpenBaoTokenTarget::new(client, &["default"], TimeDelta::hours(1), "tw-close");
    let made = target.create(1, None).await.unwrap();
    target.test(&made).await.unwrap();
    assert_eq!(live_logins(&addr, &root, &role), 1, "one login for the whole session");
    target.revoke(&made).await.unwrap();
    target.close().await.unwrap();
    assert_eq!(live_logins(&addr, &root, &role), 0, "the login token is revoked when the session ends");
    // Usable again after: it logs in afresh.
    let again = target.create(2, None).await.unwrap();
    target.revoke(&again).await.unwrap();
    target.close().await.unwrap();
    assert_eq!(live_logins(&addr, &root, &role), 0);
    // A capability the rotator's policy lacks (KV): the error names the path, not just "403".
    let client = OpenBao::builder(&addr).approle(&role_id, secret_id).build().unwrap();
    let kv = OpenBaoKvTarget::new(client, "secret", "tw-close/denied", "password", TimeDelta::hours(1));
    let e = kv.create(1, None).await.unwrap_err().to_string();
    assert!(e.contains("OpenBao denied secret/metadata/tw-close/denied (403)"), "{e}");
    kv.close().await.unwrap();
    assert_eq!(live_logins(&addr, &root, &role), 0);
}

/// A token made outside the rotator is adopted by its accessor (the target's own token, a token
/// given as the accessor and a wrong accessor are refused); once rotated away and revoked, OpenBao is probed until it refuses
/// it, and nothing is left to confirm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openbao_token_is_adopted_and_its_revocation_proven() {
    let Some((addr, root)) = bao() else { return };
    let client = OpenBao::new(&addr, SecretString::from(root.clone())).unwrap();
    let target: Arc<dyn RotationTarget> =
        Arc::new(OpenBaoTokenTarget::new(client, &["default"], TimeDelta::hours(1), "tw-adopt"));
    let h = harness(target.clone()).await;
    let made = target.create(0, None).await.unwrap();

    // The token the target acts with (here the root token) is never adopted: retiring it would
    // cut the target off.
    let own = h.rotator.adopt(&h.name, target.as_ref(), None, SecretString::from(root.clone())).await;
    assert!(own.unwrap_err().to_string().contains("acts with"));
    // A token given as the accessor is refused before anything is asked, and not repeated.
    let swapped = h
        .rotator
        .adopt(&h.name, target.as_ref(), Some(made.secret.expose_secret()), made.secret.clone())
        .await;
    let e = swapped.unwrap_err().to_string();
    assert!(e.contains("not an accessor") && !e.contains(made.secret.expose_secret()), "{e}");
    let wrong =
        h.rotator.adopt(&h.name, target.as_ref(), Some("not-its-accessor"), made.secret.clone()).await;
    assert!(wrong.unwrap_err().to_string().contains("accessor"));
    let v = h.rotator.adopt(&h.name, target.as_ref(), Some(&made.handle), made.secret.clone()).await.unwrap();
    let current = h.rotator.current(&h.name).await.unwrap().unwrap();
    assert_eq!((current.handle.as_str(), v), (made.handle.as_str(), 1));
    assert_eq!(current.secret.expose_secret(), made.secret.expose_secret());
    let again = h.rotator.adopt(&h.name, target.as_ref(), None, made.secret.clone()).await;
    assert!(matches!(again, Err(RotateError::AlreadyManaged(_))), "{again:?}");
    assert_eq!(target.probe(&made).await.unwrap(), Probe::Accepted);

    let _ = h.rotator.rotate(&h.name, target.as_ref()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    assert!(h.rotator.revoke_previous_if_due(&h.name, target.as_ref()).await.unwrap());
    assert_eq!(target.probe(&made).await.unwrap(), Probe::Refused);
    assert!(h.rotator.record(&h.name).await.unwrap().unconfirmed.is_empty(), "proven at once");
}
