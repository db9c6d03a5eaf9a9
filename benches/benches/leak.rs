//! Leak → rotate on a local AWS API (moto, signatures and IAM on): the risk window over 20 drills,
//! beside its floor in the same run.
//!
//! Each drill: the deployment's current IAM access key (a declared credential, `revoke-first`,
//! `deletion_grace = "0s"`) is written into a `.env` stream, scanned, and the finding answered by
//! `Tokenward::respond_to_leaks`; a prober calls STS `GetCallerIdentity` with the leaked key every
//! 2 ms from the finding on. Reported: found → old key refused by STS, and found → key revoked at
//! IAM (`LeakAction::time_to_revoke`), median and p90. The floor: one moto round trip, a signed
//! `GetCallerIdentity` with a valid key (median and p90 of 100), and the window's ratio to it.
//!
//! moto accepts a deactivated key (it checks only that the key exists and the signature), so
//! with moto the key is refused once deleted; AWS refuses a deactivated key itself.
//!
//! `source scripts/services.sh && ensure_moto && cargo bench -p tokenward-bench --bench leak`
//! (skipped, with a line saying so, without moto).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::path::Path;
use std::time::{Duration, Instant};

use tokenward::core::chrono::TimeDelta;
use tokenward::core::{Policy, Role};
use tokenward::policy::PolicyFile;
use tokenward::rotate::aws::AwsCredentials;
use tokenward::scan::Scanner;
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward::{FailureMode, Tokenward};
use tokenward_test_support::Moto;
use tokenward_test_support::stats::percentile;

const DRILLS: usize = 20;
const ROUND_TRIPS: usize = 100;

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(run());
}

/// The deployment in `dir`: the embedded store, a fail-closed audit file.
async fn deployment(dir: &Path) -> Tokenward {
    let policy = Policy::builder()
        .role(Role::parse("r", "kv:app/**:read", TimeDelta::hours(2)).unwrap())
        .build()
        .unwrap();
    Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("leak bench passphrase"))
        .prefix("lb")
        .policy(policy)
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .open()
        .await
        .unwrap()
}

fn env_file(id: &str, secret: &str) -> String {
    format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\nAWS_REGION=us-east-1\n")
}

/// Median and p90, in milliseconds.
fn ms(d: &[Duration]) -> (f64, f64) {
    let mut v: Vec<f64> = d.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    v.sort_by(f64::total_cmp);
    (percentile(&v, 0.5), percentile(&v, 0.9))
}

async fn run() {
    let Some(moto) = Moto::start(3) else {
        println!("leak → rotate: skipped (no moto: `source scripts/services.sh && ensure_moto`)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // An admin allowed everything; an IAM user `billing` whose key the deployment manages.
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);
    admin.query("iam", "2010-05-08", "CreateUser", &[("UserName", "billing".into())]).await.unwrap();
    let tw = deployment(dir.path()).await;
    tw.seal_current(&SecretName::new("aws/admin-secret").unwrap(), admin_secret.as_bytes()).await.unwrap();
    let file = PolicyFile::parse(&format!(
        "[[credential]]\nname = \"aws/billing-key\"\nemergency = \"revoke-first\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"billing\", endpoint = \"{e}\", \
         admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\", \
         deletion_grace = \"0s\" }}\n",
        e = moto.endpoint()
    ))
    .unwrap();
    let name = tw.manage_declared(&file, false).await.unwrap().remove(0);
    let target = tw.declared_target(&file, &file.credentials[0]).await.unwrap();
    let _ = tw.rotate(&name, target).await.unwrap();

    // The floor: one signed GetCallerIdentity with a valid key.
    let mut trips = Vec::with_capacity(ROUND_TRIPS);
    for _ in 0..ROUND_TRIPS {
        let start = Instant::now();
        admin.caller_arn().await.unwrap();
        trips.push(start.elapsed());
    }

    let scanner = Scanner::new().unwrap();
    let (mut refused, mut revoked) = (Vec::new(), Vec::new());
    for _ in 0..DRILLS {
        let c = tw.current_credential(&name).await.unwrap().unwrap();
        let (id, secret) = (c.handle.clone(), c.secret.expose_secret().to_owned());
        let report = scanner.scan_bytes("leak.env", env_file(&id, &secret).as_bytes());
        let found = Instant::now();
        // Probing from the finding on, while the response runs.
        let client = moto.client(AwsCredentials::new(id, SecretString::from(secret)));
        let probe = tokio::spawn(async move {
            while found.elapsed() < Duration::from_secs(10) {
                if client.caller_arn().await.is_err() {
                    return Some(found.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            None
        });
        let response = tw.respond_to_leaks(&report).await.unwrap();
        assert_eq!(response.revoked(), 1, "{:?}", response.actions);
        refused.push(probe.await.unwrap().expect("the leaked key is refused within 10 s"));
        revoked.push(response.actions[0].time_to_revoke.unwrap());
    }
    tw.shutdown().await.unwrap();

    let (tm, t90) = ms(&trips);
    let (rm, r90) = ms(&refused);
    let (dm, d90) = ms(&revoked);
    println!("leak → rotate on moto, {DRILLS} drills (revoke-first, deletion grace 0 s):\n");
    println!("| what | median | p90 | median / floor |");
    println!("|---|---:|---:|---:|");
    println!("| found → old key refused by STS (risk window) | {rm:.1} ms | {r90:.1} ms | {:.1}× |", rm / tm);
    println!(
        "| found → key revoked at IAM (deactivated, deleted) | {dm:.1} ms | {d90:.1} ms | {:.1}× |",
        dm / tm
    );
    println!("| floor: one signed GetCallerIdentity ({ROUND_TRIPS} calls) | {tm:.2} ms | {t90:.2} ms | 1× |");
}
