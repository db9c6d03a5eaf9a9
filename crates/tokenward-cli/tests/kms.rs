//! A store whose key-encryption key lives in a KMS, from the CLI: `--kms transit:MOUNT/KEY`
//! against the real OpenBao dev server, `--kms aws-kms:KEY` against moto with signatures on. The
//! store works with no passphrase, keeps working after the KMS key rotates (`rewrap`), and a KMS
//! that refuses is one clear error line that names it, never a credential.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use token_http::secrecy::{ExposeSecret, SecretString};
use tokenward_test_support::Moto;

fn required(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) => Some(v),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => panic!("CI=true but {var} is not set"),
        Err(_) => {
            eprintln!("\n*** SKIPPED: {var} is not set ***\n");
            None
        }
    }
}

/// Issues a token, seals a secret and reads it back, with the store's key from the KMS only.
fn works(cli: &Cli, kms: &dyn Fn(&mut std::process::Command)) -> String {
    let token = cli.run_in(
        &[
            "issue",
            "--principal",
            "billing-api",
            "--purpose",
            "read-logs",
            "--scope",
            "s3:bucket/prod-logs/*:read",
            "--ttl",
            "10m",
        ],
        None,
        kms,
    );
    let token = token.ok().trim().to_owned();
    cli.run_in(&["verify", "--scope", "s3:bucket/prod-logs/app.log:read"], Some(token.as_bytes()), kms).ok();
    cli.run_in(&["secret", "put", "app/db"], Some(b"hunter2-kms-planted"), kms).ok();
    let got = cli.run_in(&["secret", "get", "app/db"], None, kms);
    assert_eq!(got.ok(), "hunter2-kms-planted");
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keyed_by_openbao_transit_survives_a_key_rotation() {
    let (Some(addr), Some(root)) = (required("TOKENWARD_BAO_ADDR"), required("TOKENWARD_BAO_TOKEN")) else {
        return;
    };
    let http = token_http::HttpClient::builder(&addr).build().unwrap();
    let call = |path: String, body: serde_json::Value| {
        let http = http.clone();
        let root = SecretString::from(root.clone());
        async move {
            let r = http
                .send(token_http::Request::post(&path).secret_header("X-Vault-Token", &root).json(&body))
                .await
                .unwrap();
            r.status
        }
    };
    let _ = call("/v1/sys/mounts/transit".into(), serde_json::json!({"type": "transit"})).await;
    let key = format!("cli-kek-{}", std::process::id());
    let s = call(format!("/v1/transit/keys/{key}"), serde_json::json!({})).await;
    assert!(s == 200 || s == 204, "{s}");

    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    let spec = format!("transit:transit/{key}");
    let kms = |c: &mut std::process::Command| {
        c.env_remove("TOKENWARD_PASSPHRASE")
            .env("TOKENWARD_KMS", &spec)
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &root);
    };
    cli.run_in(&["init", "--policy", "policy.toml"], None, kms).ok();
    let token = works(&cli, &kms);

    // Without the KMS, the passphrase is not the key.
    let r = cli.run(&["secret", "get", "app/db"]);
    assert_ne!(r.code, 0);

    // The key rotates in Transit; the store still opens, and `rewrap` moves every data key to v2.
    let s = call(format!("/v1/transit/keys/{key}/rotate"), serde_json::json!({})).await;
    assert!(s == 200 || s == 204, "{s}");
    let r = cli.run_in(&["rewrap"], None, kms);
    r.ok();
    assert!(r.stderr.contains(&format!("under transit:transit/{key}:v2")), "{}", r.stderr);
    assert!(!r.stderr.contains("rewrapped 0 "), "{}", r.stderr);
    // Old versions can no longer decrypt; the store, rewrapped, does not need them.
    let s = call(format!("/v1/transit/keys/{key}/config"), serde_json::json!({"min_decryption_version": 2}))
        .await;
    assert!(s == 200 || s == 204, "{s}");
    assert_eq!(cli.run_in(&["secret", "get", "app/db"], None, kms).ok(), "hunter2-kms-planted");
    cli.run_in(&["audit", "verify"], None, kms).ok();

    // A token the server refuses: one error line naming the provider, never the token.
    let bad = "s.not-a-real-token-planted-0123456789";
    let r = cli.run_in(&["secret", "get", "app/db"], None, |c| {
        kms(c);
        c.env("BAO_TOKEN", bad);
    });
    assert_ne!(r.code, 0);
    let line = r.error_line();
    assert!(line.contains("Transit"), "{line}");
    // An unreachable server: the same, promptly.
    let r = cli.run_in(&["secret", "get", "app/db"], None, |c| {
        kms(c);
        c.env("BAO_ADDR", "http://127.0.0.1:9");
    });
    assert_ne!(r.code, 0);
    assert!(r.error_line().contains("Transit"), "{}", r.stderr);
    // A spec that is not one: refused before anything is opened.
    let r = cli.run_in(&["list"], None, |c| {
        kms(c);
        c.env("TOKENWARD_KMS", "transit:nokey");
    });
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("transit:MOUNT/KEY"), "{}", r.stderr);

    let transcript = cli.transcript.borrow();
    for secret in [root.as_str(), bad, "hunter2-kms-planted"] {
        let shown = transcript.matches(secret).count();
        // The planted value is printed by the two `secret get`s that succeed (asked for), nowhere else.
        let allowed = if secret == "hunter2-kms-planted" { 2 } else { 0 };
        assert_eq!(shown, allowed, "{secret} appears {shown} times");
    }
    assert_eq!(transcript.matches(token.as_str()).count(), 1, "the token is printed once, by issue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keyed_by_aws_kms_opens_with_the_aws_environment_and_names_a_denial() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("kms-admin", tokenward_test_support::ALLOW_ALL).await;
    let (id, secret) = (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let client = moto.client(creds);
    let k = client.json("kms", "TrentService.CreateKey", &serde_json::json!({})).await.unwrap();
    let key_id = k["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();

    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    let endpoint = moto.endpoint();
    let kms = |c: &mut std::process::Command| {
        c.env_remove("TOKENWARD_PASSPHRASE")
            .env("TOKENWARD_KMS", format!("aws-kms:{key_id}"))
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_ENDPOINT_URL", endpoint);
    };
    cli.run_in(&["init", "--policy", "policy.toml"], None, kms).ok();
    works(&cli, &kms);
    cli.run_in(&["audit", "verify"], None, kms).ok();

    // A wrong secret key: AWS refuses the signature; the error names the KMS key, not the secret.
    let wrong = "wJalrXUtnFEMIK7MDENGbPxRfiCYplantedKEY01";
    let r = cli.run_in(&["secret", "get", "app/db"], None, |c| {
        kms(c);
        c.env("AWS_SECRET_ACCESS_KEY", wrong);
    });
    assert_ne!(r.code, 0);
    assert!(r.error_line().contains("AWS KMS key"), "{}", r.stderr);
    // No credentials at all: says which variable to set.
    let r = cli.run_in(&["list"], None, |c| {
        kms(c);
        c.env_remove("AWS_SECRET_ACCESS_KEY");
    });
    assert_ne!(r.code, 0);
    assert!(r.error_line().contains("AWS_SECRET_ACCESS_KEY"), "{}", r.stderr);

    let transcript = cli.transcript.borrow();
    assert!(!transcript.contains(&secret), "the AWS secret key appeared");
    assert!(!transcript.contains(wrong), "the wrong AWS secret key appeared");
}

/// `rekey --to` (issue 24 §6): a store moves from its passphrase to an AWS KMS key, then to
/// another KMS key with the move killed (SIGKILL) midway and run again; each time every secret
/// still reads under the new key, the old key no longer opens the store, a half-moved store
/// refuses an ordinary open with a typed error that says how to finish, and the moves are audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_moves_from_a_passphrase_to_a_kms_key_and_to_another_resumably() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("kms-admin", tokenward_test_support::ALLOW_ALL).await;
    let (id, secret) = (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let client = moto.client(creds);
    let mut keys = Vec::new();
    for _ in 0..2 {
        let k = client.json("kms", "TrentService.CreateKey", &serde_json::json!({})).await.unwrap();
        keys.push(format!("aws-kms:{}", k["KeyMetadata"]["KeyId"].as_str().unwrap()));
    }
    let endpoint = moto.endpoint().to_owned();
    let aws = |c: &mut std::process::Command| {
        c.env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_ENDPOINT_URL", &endpoint);
    };
    let under = |kek: &str| {
        let (kek, aws) = (kek.to_owned(), &aws);
        move |c: &mut std::process::Command| {
            aws(c);
            c.env_remove("TOKENWARD_PASSPHRASE").env("TOKENWARD_KMS", &kek);
        }
    };
    let cli = Cli::new();
    cli.init();
    for i in 0..40 {
        cli.run_stdin(&["secret", "put", &format!("app/s{i}")], format!("planted-{i}").as_bytes()).ok();
    }
    let reads = |configure: &dyn Fn(&mut std::process::Command)| {
        let r = cli.run_in(&["secret", "get", "app/s7"], None, configure);
        (r.code, r.stdout.clone(), r.stderr.clone())
    };

    // Passphrase → KMS key A.
    let r = cli.run_in(&["rekey", "--to", &keys[0]], None, aws);
    assert!(r.ok().is_empty() && r.stderr.contains(&format!("moved to {}", keys[0])), "{}", r.stderr);
    assert_eq!(reads(&under(&keys[0])).1, "planted-7");
    let (code, _, err) = reads(&|_: &mut std::process::Command| {});
    assert_eq!(code, 2, "the passphrase no longer opens the store: {err}");

    // KMS key A → B, killed midway, then run again.
    let mut child = cli.command();
    child
        .args(["rekey", "--to", &keys[1]])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    under(&keys[0])(&mut child);
    let mut child = child.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(350));
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    let (code, out, err) = reads(&under(&keys[0]));
    // Not started (key A still opens it whole), midway (a typed refusal naming the move and how
    // to finish it), or done (key B's check: key A is refused) — never a half-readable store.
    let stage = if out == "planted-7" {
        "not started"
    } else if code == 2 && err.contains("unfinished") && err.contains(&keys[1]) {
        "midway"
    } else if code == 2 && err.contains(&keys[1]) {
        "done"
    } else {
        panic!("after a SIGKILL during the move ({code}): {err}")
    };
    eprintln!("the move was killed {stage}");
    let r = cli.run_in(&["rekey", "--to", &keys[1]], None, under(&keys[0]));
    assert!(r.stderr.contains(&format!("moved to {}", keys[1])), "{}", r.stderr);
    r.ok();
    for i in [0, 7, 39] {
        let got = cli.run_in(&["secret", "get", &format!("app/s{i}")], None, under(&keys[1]));
        assert_eq!(got.ok(), format!("planted-{i}"));
    }
    let (code, _, err) = reads(&under(&keys[0]));
    assert_eq!(code, 2, "key A no longer opens the store: {err}");
    // A rerun after it is done: refused (already under B), nothing changed.
    let again = cli.run_in(&["rekey", "--to", &keys[1]], None, under(&keys[1]));
    assert_eq!(again.code, 2, "{}", again.stderr);
    assert_eq!(reads(&under(&keys[1])).1, "planted-7");

    let audit = cli.run_in(&["audit", "show", "--action", "key_rotation"], None, under(&keys[1]));
    let shown = audit.ok();
    assert!(shown.contains(&keys[0]) && shown.contains(&keys[1]), "{shown}");
    cli.run_in(&["audit", "verify"], None, under(&keys[1])).ok();
    let transcript = cli.transcript.borrow();
    assert!(!transcript.contains(&secret) && !transcript.contains(PASS));
}
