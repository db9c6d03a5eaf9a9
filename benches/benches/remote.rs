//! Remote APIs on loopback, each beside its local floor in the same run:
//!
//! - an AWS IAM access-key rotation against moto (signatures and IAM policies on): the time of
//!   each step (create, test, revoke) and of a whole `Rotator::rotate`, median of 20;
//! - OpenBao Transit wrap and unwrap of one data key (`TOKENWARD_BAO_ADDR` / `TOKENWARD_BAO_TOKEN`,
//!   which `scripts/services.sh`'s `start_openbao` sets) beside the local AES-GCM KEK: medians of
//!   300 and the ratio.
//!
//! `cargo bench -p tokenward-bench --bench remote` (skips what has no server, and says so).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use token_http::aws::AwsCredentials;
use token_store::secrecy::{SecretBox, SecretString};
use token_store::{KeyProvider, LocalKek, backend::SecretKey};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::clocks::SystemClock;
use tokenward::rotate::{RotationTarget, Rotator, aws::AwsAccessKeyTarget};
use tokenward::store::{Backend, MemoryBackend, SecretName, SecretStore};
use tokenward_test_support::stats::median_duration;

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn aws() {
    let Some(moto) = tokenward_test_support::Moto::start(3) else { return };
    let admin = moto.client(moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await);
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", "bench".into())]).await.unwrap();
    let target = AwsAccessKeyTarget::new(admin.clone(), "bench").deletion_grace(TimeDelta::zero());
    let (mut create, mut test, mut revoke, mut whole, mut sts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..20 {
        let t = Instant::now();
        let c = target.create(i, None).await.unwrap();
        create.push(t.elapsed());
        let t = Instant::now();
        target.test(&c).await.unwrap();
        test.push(t.elapsed());
        let t = Instant::now();
        admin
            .with_credentials(AwsCredentials::new(c.handle.clone(), c.secret.clone()))
            .caller_arn()
            .await
            .unwrap();
        sts.push(t.elapsed());
        let t = Instant::now();
        target.revoke(&c).await.unwrap();
        revoke.push(t.elapsed());
    }
    let backend = Arc::new(MemoryBackend::new()) as Arc<dyn Backend>;
    let kek = Arc::new(LocalKek::from_key("kek", SecretBox::new(Box::new([3u8; 32]))).unwrap());
    let secrets = Arc::new(SecretStore::open(backend, kek).await.unwrap());
    let rotator = Rotator::new(secrets, TimeDelta::zero(), Arc::new(SystemClock));
    let name = SecretName::new("aws/bench").unwrap();
    for _ in 0..20 {
        let t = Instant::now();
        let _ = rotator.rotate(&name, &target).await.unwrap();
        let _ = rotator.revoke_previous_if_due(&name, &target).await.unwrap();
        whole.push(t.elapsed());
    }
    println!("\nAWS IAM access-key rotation against moto on loopback (median of 20):\n");
    println!("| step | median | what it calls |");
    println!("|---|---:|---|");
    println!(
        "| create | {} | ListAccessKeys, ListUserTags, (DeleteAccessKey), TagUser, CreateAccessKey |",
        ms(median_duration(&mut create))
    );
    println!(
        "| test | {} | ListAccessKeys, STS GetCallerIdentity signed with the new key |",
        ms(median_duration(&mut test))
    );
    println!(
        "| …of which one signed STS call (floor of a test) | {} | GetCallerIdentity |",
        ms(median_duration(&mut sts))
    );
    println!(
        "| revoke | {} | UpdateAccessKey Inactive, ListAccessKeys, DeleteAccessKey of the due |",
        ms(median_duration(&mut revoke))
    );
    println!(
        "| whole rotation + revoke-previous (store, audit-free) | {} | all of the above and the sealed store |",
        ms(median_duration(&mut whole))
    );
}

async fn transit() {
    let (Ok(addr), Ok(token)) = (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN"))
    else {
        eprintln!(
            "\n*** Transit skipped: TOKENWARD_BAO_ADDR is not set (scripts/services.sh start_openbao) ***"
        );
        return;
    };
    let http = token_http::HttpClient::builder(&addr).build().unwrap();
    let root = SecretString::from(token);
    let call = |path: String, body: serde_json::Value| {
        let http = http.clone();
        let root = root.clone();
        async move {
            http.send(token_http::Request::post(path).secret_header("X-Vault-Token", &root).json(&body))
                .await
                .unwrap()
        }
    };
    call("/v1/sys/mounts/transit".into(), serde_json::json!({"type": "transit"})).await;
    let key = format!("bench-{}", std::process::id());
    call(format!("/v1/transit/keys/{key}"), serde_json::json!({})).await;
    let transit = token_store::keys::TransitKeyProvider::connect(http.clone(), root.clone(), "transit", &key)
        .await
        .unwrap();
    let local = LocalKek::from_key("local", SecretBox::new(Box::new([4u8; 32]))).unwrap();
    let dek = SecretKey::generate().unwrap();
    let n = 300;
    let mut out = Vec::new();
    for (label, p) in [
        ("OpenBao Transit", &transit as &dyn KeyProvider),
        ("local AES-256-GCM KEK (floor)", &local as &dyn KeyProvider),
    ] {
        let (mut w, mut u) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for i in 0..n {
            let aad = format!("svc/k@{i}");
            let t = Instant::now();
            let sealed = p.wrap(&dek, aad.as_bytes()).await.unwrap();
            w.push(t.elapsed());
            let t = Instant::now();
            let _ = p.unwrap(p.current_kek(), &sealed, aad.as_bytes()).await.unwrap();
            u.push(t.elapsed());
        }
        out.push((label, median_duration(&mut w), median_duration(&mut u)));
    }
    println!("\nWrapping one data key (median of {n}, loopback):\n");
    println!("| provider | wrap | unwrap |");
    println!("|---|---:|---:|");
    for (label, w, u) in &out {
        println!("| {label} | {:.1} µs | {:.1} µs |", w.as_secs_f64() * 1e6, u.as_secs_f64() * 1e6);
    }
    println!(
        "\nTransit / local: wrap {:.0}×, unwrap {:.0}× (an HTTP round trip per data key; the store unwraps once per secret read)",
        out[0].1.as_secs_f64() / out[1].1.as_secs_f64(),
        out[0].2.as_secs_f64() / out[1].2.as_secs_f64()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    rt.block_on(async {
        aws().await;
        transit().await;
    });
}
