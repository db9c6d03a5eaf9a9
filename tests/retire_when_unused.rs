//! Issue 28's run on the local AWS API (moto, signatures and IAM policies on): a key made by hand
//! is adopted, then rotated 20 times while an independent consumer (boto3, `tests/consumers/`)
//! re-reads the current key from Secrets Manager every half second and calls STS with it every
//! 50 ms. Each previous key is retired only once IAM's `GetAccessKeyLastUsed` shows it quiet for
//! the credential's quiet period (1 s), and at the latest when its overlap (5 s) ends — which a
//! second consumer, pinned to the adopted key, shows. No call of the switching consumer fails;
//! every revocation has a confirmation in the audit log; other users' hand-made keys are
//! untouched.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use token_http::aws::xml;
use tokenward::policy::PolicyFile;
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward_test_support::Moto;

use common::*;

const IAM: &str = "2010-05-08";
const QUIET: f64 = 1.0;
const OVERLAP: f64 = 5.0;

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// Starts the boto3 consumer; waits until its first call is made.
fn consumer(dir: &Path, tag: &str, endpoint: &str, env: &[(&str, &str)], args: &[&str]) -> Child {
    let ready = dir.join(format!("{tag}.ready"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/consumers/boto3_consumer.py");
    let mut c = Command::new("python3");
    c.arg(script)
        .args(["--endpoint", endpoint, "--stop"])
        .arg(dir.join(format!("{tag}.stop")))
        .arg("--ready")
        .arg(&ready)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        c.env(k, v);
    }
    let child = c.spawn().expect("python3 with boto3 (moto's dependency)");
    let start = Instant::now();
    while !ready.exists() {
        assert!(start.elapsed() < Duration::from_secs(30), "the {tag} consumer did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// Stops a consumer and reads its summary.
fn stop(dir: &Path, tag: &str, child: Child) -> serde_json::Value {
    std::fs::write(dir.join(format!("{tag}.stop")), b"").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_key_rotated_20_times_is_retired_only_once_unused_and_every_revocation_proven() {
    let dir = tempfile::tempdir().unwrap();
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);
    let make_key = async |user: &str| {
        let k = admin.query("iam", IAM, "CreateAccessKey", &[("UserName", user.into())]).await.unwrap();
        (xml::tag(&k, "AccessKeyId").unwrap(), xml::tag(&k, "SecretAccessKey").unwrap())
    };
    let keys_of = async |user: &str| {
        let x = admin.query("iam", IAM, "ListAccessKeys", &[("UserName", user.into())]).await.unwrap();
        xml::blocks(&x, "member")
            .into_iter()
            .map(|m| (xml::tag(m, "AccessKeyId").unwrap(), xml::tag(m, "Status").unwrap()))
            .collect::<Vec<_>>()
    };
    let bystanders = ["ops", "ci", "backup"];
    for user in ["billing"].iter().chain(&bystanders) {
        admin.query("iam", IAM, "CreateUser", &[("UserName", (*user).into())]).await.unwrap();
    }
    let mut others = Vec::new();
    for user in bystanders {
        others.push((user, make_key(user).await.0));
    }
    // The key to adopt: made by hand, already in use.
    let (k0, k0_secret) = make_key("billing").await;

    let tw = builder(dir.path()).open().await.unwrap();
    tw.seal_current(&SecretName::new("aws/admin-secret").unwrap(), admin_secret.as_bytes()).await.unwrap();
    let access = format!(
        "endpoint = \"{e}\", admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\"",
        e = moto.endpoint()
    );
    let file = PolicyFile::parse(&format!(
        "[[credential]]\nname = \"aws/billing-key\"\noverlap = \"{OVERLAP}s\"\nquiet_period = \"{QUIET}s\"\n\
         deletion_grace = \"0s\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"billing\", {access} }}\n\
         deploy = [{{ kind = \"aws-secrets-manager\", secret_id = \"billing/aws-key\", format = \"aws-access-key\", {access} }}]\n"
    ))
    .unwrap();
    let name = tw.manage_declared(&file, false).await.unwrap()[0].clone();
    let target = tw.declared_target(&file, &file.credentials[0]).await.unwrap();
    tw.adopt(&name, target.clone(), Some(&k0), SecretString::from(k0_secret.clone())).await.unwrap();

    let reader =
        [("READER_ACCESS_KEY_ID", admin_id.as_str()), ("READER_SECRET_ACCESS_KEY", admin_secret.as_str())];
    let switching =
        consumer(dir.path(), "switching", moto.endpoint(), &reader, &["--secret-id", "billing/aws-key"]);
    let pinned_env =
        [("PINNED_ACCESS_KEY_ID", k0.as_str()), ("PINNED_SECRET_ACCESS_KEY", k0_secret.as_str())];
    let mut pinned = Some(consumer(dir.path(), "pinned", moto.endpoint(), &pinned_env, &["--pinned"]));
    let mut pinned_summary = None;

    // (old key, promoted at, retired at), Unix seconds.
    let mut runs: Vec<(String, f64, f64)> = Vec::new();
    for _ in 0..20 {
        let old = tw.current_credential(&name).await.unwrap().unwrap().handle;
        let promoted_at = unix_now();
        let _ = tw.rotate(&name, target.clone()).await.unwrap();
        let start = Instant::now();
        loop {
            let _ = tw.rotator().revoke_previous_if_due(&name, target.as_ref()).await.unwrap();
            if tw.rotator().previous(&name).await.unwrap().is_none() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the previous key is retired within its overlap"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runs.push((old, promoted_at, unix_now()));
        if let Some(p) = pinned.take() {
            pinned_summary = Some(stop(dir.path(), "pinned", p));
        }
    }
    let summary = stop(dir.path(), "switching", switching);
    let pinned = pinned_summary.unwrap();

    // The switching consumer never failed, and used every key.
    assert_eq!(summary["failures"], serde_json::json!([]), "no failed call: {summary}");
    assert!(summary["calls"].as_u64().unwrap() > 200, "{summary}");
    let last_use = |s: &serde_json::Value, key: &str| s["uses"][key]["last"].as_f64();
    let mut waited = Vec::new();
    for (i, (old, promoted, retired)) in runs.iter().enumerate() {
        assert!(
            retired - promoted <= OVERLAP + 2.0,
            "run {i}: retired {:.1} s after its promotion",
            retired - promoted
        );
        let last =
            [last_use(&summary, old), last_use(&pinned, old)].into_iter().flatten().fold(0.0, f64::max);
        assert!(last > 0.0, "run {i}: {old} was used");
        if i == 0 {
            // The pinned consumer never switched: the adopted key lives until the overlap ends.
            assert!(
                retired - promoted >= OVERLAP - 0.1,
                "kept for the whole overlap: {:.2} s",
                retired - promoted
            );
        } else {
            // Retired only once quiet: the consumer's last use of it is a quiet period before.
            assert!(
                retired - last >= QUIET - 0.1,
                "run {i}: retired {:.2} s after its last use",
                retired - last
            );
            waited.push(retired - promoted);
        }
    }
    waited.sort_by(f64::total_cmp);
    eprintln!(
        "retirement after promotion (quiet {QUIET} s, overlap {OVERLAP} s): median {:.2} s, max {:.2} s; the pinned key {:.2} s",
        waited[waited.len() / 2],
        waited[waited.len() - 1],
        runs[0].2 - runs[0].1
    );

    // Every revocation proven: a confirmation entry per retired key.
    let log = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let confirmed: Vec<&str> = log.lines().filter(|l| l.contains("revocation_confirmed")).collect();
    assert_eq!(confirmed.len(), runs.len(), "one confirmation per revocation");
    for (old, ..) in &runs {
        assert!(confirmed.iter().any(|l| l.contains(old.as_str())), "{old}: its revocation is confirmed");
    }
    let mut after_ms: Vec<i64> = confirmed
        .iter()
        .map(|l| {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            let text = e.to_string();
            let at = text.find("\"after_ms\"").unwrap();
            text[at..].split('"').nth(3).unwrap().parse().unwrap()
        })
        .collect();
    after_ms.sort_unstable();
    eprintln!(
        "revocation confirmed after (ms, from the revocation): median {}, max {}; {} calls by the switching consumer",
        after_ms[after_ms.len() / 2],
        after_ms[after_ms.len() - 1],
        summary["calls"]
    );
    assert_eq!(log.lines().filter(|l| l.contains("previous_quiet")).count(), runs.len() - 1);
    assert!(!log.contains("revocation_unconfirmed"));
    for secret in [&k0_secret, &admin_secret] {
        assert!(!log.contains(secret.as_str()), "no secret in the audit log");
    }

    // Only billing's current key is left; every other user's hand-made key is as it was.
    let current = tw.current_credential(&name).await.unwrap().unwrap().handle;
    assert_eq!(keys_of("billing").await, [(current, "Active".to_owned())]);
    for (user, key) in others {
        assert_eq!(keys_of(user).await, [(key, "Active".to_owned())], "{user}'s key untouched");
    }
    tw.shutdown().await.unwrap();
}
