//! The inventory (issue 28 §1) against a local AWS API (moto, signatures and IAM on): many IAM
//! users and keys read across pages, a key used and one never used, a declared credential's key
//! managed and a key made by hand under its user drifted, and the deployment's own tokens — every
//! entry by id, never a secret. Skipped without moto.

#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use token_http::aws::xml;
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::policy::PolicyFile;
use tokenward::posture::inventory::{
    AwsIamSource, CredentialStatus, Finding, InventoryEntry, InventorySources, Managed, SourceKind,
};
use tokenward::rotate::aws::AwsCredentials;
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward_test_support::Moto;

use common::*;

const IAM: &str = "2010-05-08";

fn kinds(e: &InventoryEntry) -> Vec<&'static str> {
    e.findings.iter().map(Finding::kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_iam_key_across_pages_and_our_tokens_are_listed_with_their_findings() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);

    // 12 users with 1 or 2 keys each (18 keys), and their secrets, to look for in the output.
    let mut secrets = vec![admin_secret.clone()];
    let mut made = Vec::new();
    for u in 0..12 {
        let user = format!("svc-{u:02}");
        admin.query("iam", IAM, "CreateUser", &[("UserName", user.clone())]).await.unwrap();
        for _ in 0..(1 + u % 2) {
            let k = admin.query("iam", IAM, "CreateAccessKey", &[("UserName", user.clone())]).await.unwrap();
            secrets.push(xml::tag(&k, "SecretAccessKey").unwrap());
            made.push((
                user.clone(),
                xml::tag(&k, "AccessKeyId").unwrap(),
                xml::tag(&k, "SecretAccessKey").unwrap(),
            ));
        }
    }
    // One key used (signed calls with it), one made inactive.
    let (used_user, used_id, used_secret) = made[0].clone();
    let user_client = moto.client(AwsCredentials::new(used_id.clone(), SecretString::from(used_secret)));
    let _ = user_client.query("iam", IAM, "ListUsers", &[]).await;
    let _ = user_client.caller_arn().await;
    let inactive_id = made[1].1.clone();
    admin
        .query(
            "iam",
            IAM,
            "UpdateAccessKey",
            &[
                ("UserName", made[1].0.clone()),
                ("AccessKeyId", inactive_id.clone()),
                ("Status", "Inactive".into()),
            ],
        )
        .await
        .unwrap();

    // A declared credential rotates user `billing`'s key; a key made by hand beside it drifts.
    admin.query("iam", IAM, "CreateUser", &[("UserName", "billing".into())]).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    tw.seal_current(&SecretName::new("aws/admin-secret").unwrap(), admin_secret.as_bytes()).await.unwrap();
    let file = PolicyFile::parse(&format!(
        "[[credential]]\nname = \"aws/billing-key\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"billing\", endpoint = \"{e}\", \
         admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\", \
         deletion_grace = \"0s\" }}\n",
        e = moto.endpoint()
    ))
    .unwrap();
    let name = tw.manage_declared(&file, false).await.unwrap()[0].clone();
    let target = tw.declared_target(&file, &file.credentials[0]).await.unwrap();
    let _ = tw.rotate(&name, target).await.unwrap();
    let managed_id = tw.current_credential(&name).await.unwrap().unwrap().handle.clone();
    secrets.push(tw.current_credential(&name).await.unwrap().unwrap().secret.expose_secret().to_owned());
    let by_hand =
        admin.query("iam", IAM, "CreateAccessKey", &[("UserName", "billing".into())]).await.unwrap();
    let by_hand_id = xml::tag(&by_hand, "AccessKeyId").unwrap();
    secrets.push(xml::tag(&by_hand, "SecretAccessKey").unwrap());

    // And one of our own tokens.
    let token = tw.issue(&principal(), &request("read-logs")).await.unwrap();
    secrets.push(token.expose_secret().to_owned());

    // (moto answers every list in one page whatever MaxItems says; the paging itself is tested
    // against a paging server in src/inventory/aws_iam.rs.)
    let sources = InventorySources::new()
        .aws_iam(AwsIamSource::new(admin.clone()).managed("billing", name.clone()).page_size(3))
        .tokenward_tokens();
    let started = std::time::Instant::now();
    let now = Utc::now();
    let inv = tw.inventory_at(now, &sources).await.unwrap();
    let took = started.elapsed();

    let aws: Vec<&InventoryEntry> = inv.entries.iter().filter(|e| e.source == SourceKind::AwsIam).collect();
    // 18 made + admin's + billing's managed and hand-made: every one, across pages of 3 users.
    assert_eq!(aws.len(), 21, "{:?}", aws.iter().map(|e| &e.id).collect::<Vec<_>>());
    for (user, id, _) in &made {
        let e = aws.iter().find(|e| &e.id == id).unwrap_or_else(|| panic!("{id} listed"));
        assert_eq!(&e.owner, user);
        assert!(e.created.is_some_and(|c| (now - c).num_minutes().abs() < 10));
        assert_eq!(e.managed, None);
    }
    let entry = |id: &str| *aws.iter().find(|e| e.id == id).unwrap();

    let used = entry(&used_id);
    assert_eq!(used.owner, used_user);
    let last = used.last_used.as_ref().expect("moto records the key's last use");
    assert!((now - last.at).num_minutes().abs() < 10);
    assert_eq!(entry(&inactive_id).status, CredentialStatus::Inactive);
    assert!(entry(&inactive_id).findings.is_empty());

    // Managed and drifted.
    assert_eq!(entry(&managed_id).managed, Some(Managed::Current { credential: name.as_str().to_owned() }));
    assert!(!kinds(entry(&managed_id)).contains(&"drifted"));
    assert!(
        entry(&by_hand_id).findings.contains(&Finding::Drifted { credential: name.as_str().to_owned() }),
        "{:?}",
        entry(&by_hand_id).findings
    );
    assert!(entry(&by_hand_id).findings.contains(&Finding::SeveralActiveKeys { count: 2 }));
    // Odd users have two keys: svc-03's are both active and flagged; svc-01's first is inactive
    // (made[1]), so its second is its only active key and is not.
    let svc03: Vec<_> = aws.iter().filter(|e| e.owner == "svc-03").collect();
    assert_eq!(svc03.len(), 2);
    assert!(svc03.iter().all(|e| e.findings.contains(&Finding::SeveralActiveKeys { count: 2 })));
    assert!(!kinds(entry(&made[2].1)).contains(&"several-active-keys"));
    // Just made: nothing is "never used" or "too old" yet; IAM keys never expire.
    assert!(aws.iter().all(|e| !kinds(e).contains(&"never-used") && !kinds(e).contains(&"too-old")));
    assert!(kinds(entry(&made[4].1)).contains(&"no-expiry"));
    assert!(!kinds(entry(&managed_id)).contains(&"no-expiry"), "a managed key's expiry is its rotation");

    // Our own token: by id, its principal and purpose, an expiry, managed as issued.
    let ours: Vec<_> = inv.entries.iter().filter(|e| e.source == SourceKind::Tokenward).collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].id, token.id().to_string());
    assert_eq!(ours[0].owner, "billing");
    assert_eq!(ours[0].purpose.as_deref(), Some("read-logs"));
    assert!(ours[0].expires.is_some());
    assert_eq!(ours[0].managed, Some(Managed::Issued));

    // 100 days on: every active key is too old, the used one unused, the rest never used.
    let later = tw.inventory_at(now + TimeDelta::days(100), &sources).await.unwrap();
    let later_entry = |id: &str| later.entries.iter().find(|e| e.id == id).unwrap();
    assert_eq!(kinds(later_entry(&used_id))[..2], ["unused", "too-old"]);
    assert_eq!(kinds(later_entry(&made[4].1))[..2], ["never-used", "too-old"]);
    assert!(later_entry(&inactive_id).findings.is_empty());

    // Never a secret, in the JSON or the Debug form.
    let json = serde_json::to_string(&inv).unwrap();
    let debug = format!("{inv:?}");
    for s in &secrets {
        assert!(!json.contains(s.as_str()) && !debug.contains(s.as_str()), "a secret in the inventory");
    }
    assert!(json.contains(&managed_id) && json.contains("\"drifted\""));
    eprintln!("inventory: {} entries ({} IAM keys) in {took:?}", inv.entries.len(), aws.len());
    tw.shutdown().await.unwrap();
}

/// Issue 28's scale: 50 users with every key IAM allows them (two each but the admin's one): all
/// 99 listed in one call, timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_users_and_their_99_keys_in_one_inventory() {
    let Some(moto) = Moto::start(3) else { return };
    let admin = moto.client(moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await);
    for u in 0..49 {
        let user = format!("svc-{u:02}");
        admin.query("iam", IAM, "CreateUser", &[("UserName", user.clone())]).await.unwrap();
        for _ in 0..2 {
            admin.query("iam", IAM, "CreateAccessKey", &[("UserName", user.clone())]).await.unwrap();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let sources = InventorySources::new().aws_iam(AwsIamSource::new(admin));
    let started = std::time::Instant::now();
    let inv = tw.inventory_at(Utc::now(), &sources).await.unwrap();
    let took = started.elapsed();
    assert_eq!(inv.entries.len(), 99);
    let owners: std::collections::BTreeSet<_> = inv.entries.iter().map(|e| e.owner.as_str()).collect();
    assert_eq!(owners.len(), 50);
    assert_eq!(inv.entries.iter().filter(|e| kinds(e).contains(&"several-active-keys")).count(), 98);
    eprintln!("inventory: 50 users, 99 keys in {took:?}");
    tw.shutdown().await.unwrap();
}

/// OpenBao: every token by its accessor — the root token and three made here — with its display
/// name, policies, creation and expiry; never a token. Skipped without OpenBao.
#[cfg(feature = "vault")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_openbao_token_is_listed_by_its_accessor() {
    use tokenward::posture::inventory::OpenBaoSource;
    use tokenward::rotate::openbao::OpenBao;
    let (Ok(addr), Ok(root)) = (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN"))
    else {
        eprintln!(
            "\n*** SKIPPED: OpenBao inventory (no TOKENWARD_BAO_ADDR; scripts/services.sh start_openbao) ***\n"
        );
        return;
    };
    let mut made = Vec::new();
    for name in ["ci-deploy", "backup", "metrics"] {
        // Made with OpenBao's own CLI (the server's API, not ours).
        let out = std::process::Command::new("bao")
            .args(["token", "create", "-orphan", "-policy=default", "-ttl=1h", "-format=json"])
            .arg(format!("-display-name={name}"))
            .env("BAO_ADDR", &addr)
            .env("BAO_TOKEN", &root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let auth = &v["auth"];
        made.push((
            name,
            auth["accessor"].as_str().unwrap().to_owned(),
            auth["client_token"].as_str().unwrap().to_owned(),
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let sources = InventorySources::new()
        .openbao(OpenBaoSource::new(OpenBao::new(&addr, SecretString::from(root.clone())).unwrap()));
    let now = Utc::now();
    let inv = tw.inventory_at(now, &sources).await.unwrap();
    assert!(inv.entries.iter().all(|e| e.source == SourceKind::Openbao));
    for (name, accessor, _) in &made {
        let e = inv.entries.iter().find(|e| &e.id == accessor).unwrap_or_else(|| panic!("{name} listed"));
        assert!(e.owner.contains(name), "{}", e.owner);
        assert_eq!(e.purpose.as_deref(), Some("default"));
        assert!(e.created.is_some_and(|c| (now - c).num_minutes().abs() < 10));
        let left = e.expires.unwrap() - now;
        assert!(left > TimeDelta::minutes(50) && left <= TimeDelta::minutes(61), "{left}");
        assert_eq!(e.status, CredentialStatus::Active);
        assert!(e.findings.is_empty(), "OpenBao reports no last use: no never-used finding");
    }
    // The dev server's root token: no expiry.
    let root_entry = inv
        .entries
        .iter()
        .find(|e| e.purpose.as_deref() == Some("root"))
        .unwrap_or_else(|| panic!("{:?}", inv.entries));
    assert_eq!(kinds(root_entry), ["no-expiry"]);
    let json = serde_json::to_string(&inv).unwrap();
    assert!(!json.contains(&root) && made.iter().all(|(_, _, t)| !json.contains(t.as_str())));
    tw.shutdown().await.unwrap();
}

/// A token whose record was edited in the store's file (one byte of its body) is listed as
/// tampered, with that finding, beside the others; no secret is listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_token_record_is_listed_as_tampered() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let mut issued = Vec::new();
    for purpose in ["a", "b"] {
        let t = tw.issue(&principal(), &request(purpose)).await.unwrap();
        issued.push((t.expose_secret().to_owned(), t.id().to_string()));
    }
    tw.shutdown().await.unwrap();
    let conn = db(dir.path());
    let bad = &issued[0].1;
    let mut body: Vec<u8> =
        conn.query_row("SELECT body FROM tokens WHERE id = ?1", [bad], |r| r.get(0)).unwrap();
    body[1] ^= 0xff;
    conn.execute("UPDATE tokens SET body = ?2 WHERE id = ?1", rusqlite::params![bad, body]).unwrap();
    drop(conn);

    let tw = builder(dir.path()).open().await.unwrap();
    let inv = tw.inventory(&InventorySources::new().tokenward_tokens()).await.unwrap();
    let find = |id: &str| inv.entries.iter().find(|e| e.id == id).unwrap();
    assert_eq!(find(bad).status, CredentialStatus::Tampered);
    assert_eq!(kinds(find(bad)), ["tampered"]);
    assert_eq!(find(&issued[1].1).status, CredentialStatus::Active);
    let json = serde_json::to_string(&inv).unwrap();
    assert!(issued.iter().all(|(secret, _)| !json.contains(secret.as_str())));
    tw.shutdown().await.unwrap();
}
