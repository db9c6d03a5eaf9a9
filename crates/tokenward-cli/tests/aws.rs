//! A declared AWS IAM access key rotated from the CLI against a local AWS API (moto, signatures
//! and IAM policies on), injected into a command by `run` (id and secret), and revoked and
//! replaced in an emergency.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use token_http::aws::{AwsClient, xml};
use token_http::secrecy::ExposeSecret;
use tokenward_test_support::Moto;

const IAM: &str = "2010-05-08";

/// `run` with `aws/billing-key`'s id (`#handle`) and secret key in the environment, `script` run
/// by `sh -c`.
fn run_with_key(cli: &Cli, script: &str) -> Run {
    cli.run(&[
        "run",
        "--secret",
        "aws/billing-key#handle=AWS_ACCESS_KEY_ID",
        "--secret",
        "aws/billing-key=AWS_SECRET_ACCESS_KEY",
        "--",
        "sh",
        "-c",
        script,
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_key_is_declared_rotated_injected_and_replaced_in_an_emergency() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", "billing".into())]).await.unwrap();

    let cli = Cli::new();
    let policy = format!(
        "{POLICY}\n[[credential]]\nname = \"aws/billing-key\"\nschedule = \"30d\"\nemergency = \"replace-first\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"billing\", endpoint = \"{e}\", admin_access_key_id = \"{admin_id}\", \
         admin_secret_key_secret = \"aws/admin-secret\", deletion_grace = \"1s\" }}\n\
         deploy = [{{ kind = \"aws-secrets-manager\", secret_id = \"billing/aws-key\", endpoint = \"{e}\", \
         admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\", format = \"aws-access-key\" }}]\n",
        e = moto.endpoint()
    );
    std::fs::write(cli.path("policy.toml"), policy).unwrap();
    cli.run(&["init", "--policy", "policy.toml"]).ok();
    cli.run_stdin(&["secret", "put", "aws/admin-secret"], admin_secret.as_bytes()).ok();
    let r = cli.run(&["rotate", "aws/billing-key"]);
    assert!(r.ok().contains("promoted version 1"), "{}{}", r.stdout, r.stderr);

    let active = |keys: String| -> Vec<(String, bool)> {
        xml::blocks(&keys, "member")
            .into_iter()
            .map(|m| (xml::tag(m, "AccessKeyId").unwrap(), xml::tag(m, "Status").unwrap() == "Active"))
            .collect()
    };
    let keys =
        active(admin.query("iam", v, "ListAccessKeys", &[("UserName", "billing".into())]).await.unwrap());
    assert_eq!(keys.len(), 1);
    // Deployed where non-Rust consumers read it: Secrets Manager's AWSCURRENT.
    let in_sm = |admin: AwsClient| async move {
        let v = admin
            // AWSCURRENT by name (AWS's default; moto's default version does not follow
            // UpdateSecretVersionStage).
            .json(
                "secretsmanager",
                "secretsmanager.GetSecretValue",
                &serde_json::json!({"SecretId": "billing/aws-key", "VersionStage": "AWSCURRENT"}),
            )
            .await
            .unwrap();
        let value: serde_json::Value = serde_json::from_str(v["SecretString"].as_str().unwrap()).unwrap();
        value["AccessKeyId"].as_str().unwrap().to_owned()
    };
    assert_eq!(in_sm(admin.clone()).await, keys[0].0);
    // `run` puts the key id and the secret key into the command's environment.
    let ran = run_with_key(&cli, "echo \"id=$AWS_ACCESS_KEY_ID len=${#AWS_SECRET_ACCESS_KEY}\"");
    assert_eq!(ran.ok().trim(), format!("id={} len=40", keys[0].0));

    // An emergency: the leaked key is deactivated once the replacement is current.
    let e = cli.run(&["rotate", "aws/billing-key", "--emergency", "--format", "json"]);
    let report: serde_json::Value = serde_json::from_str(e.ok().trim()).unwrap();
    assert_eq!(report["revoked"], keys[0].0.as_str());
    let after =
        active(admin.query("iam", v, "ListAccessKeys", &[("UserName", "billing".into())]).await.unwrap());
    // Inactive, or deleted already: its deletion grace (1 s) may have ended while the emergency
    // probed it (a local API still accepts an inactive key; it refuses a deleted one).
    assert!(!after.contains(&(keys[0].0.clone(), true)), "the leaked key is not active: {after:?}");
    assert_eq!(after.iter().filter(|(_, a)| *a).count(), 1, "one active key: the replacement");
    let replacement = after.iter().find(|(_, a)| *a).unwrap().0.clone();
    assert_eq!(in_sm(admin.clone()).await, replacement, "Secrets Manager holds the replacement");
    assert!(cli.run(&["audit", "verify"]).ok().contains("verified"));

    // The admin's secret key never appears in anything printed or written.
    let transcript = cli.transcript.borrow();
    assert!(!transcript.contains(&admin_secret));
    for (path, bytes) in all_files(cli.dir.path()) {
        assert!(
            !contains(&bytes, admin_secret.as_bytes()),
            "{} holds the admin's secret key",
            path.display()
        );
    }
}

/// The drill leaks into a bucket too (`--bucket`), finds the token there, and deletes its object;
/// `scan s3://` finds a planted token and exits 1. Signatures checked by moto throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drill_leaks_into_a_bucket_and_scan_reads_buckets() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("drill", tokenward_test_support::ALLOW_ALL).await;
    let (id, secret) = (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let s3 = moto.client(creds);
    let (status, _) = s3.rest_put("s3", "/drill-bucket", Vec::new()).await.unwrap();
    assert_eq!(status, 200);
    let cli = Cli::new();
    let env = |c: &mut std::process::Command| {
        c.env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_ENDPOINT_URL", moto.endpoint());
    };
    let r = cli.run_in(
        &["drill", "--bucket", "drill-bucket/leaks", "--repeat", "2", "--format", "json"],
        None,
        env,
    );
    let out: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    for run in out["runs"].as_array().unwrap() {
        let found: Vec<&str> =
            run["found_in"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert!(
            found.iter().any(|l| l.contains("s3://drill-bucket/leaks")),
            "found in the bucket: {found:?}"
        );
        assert_eq!(found.len(), 3, "a tree, a commit and an object: {found:?}");
        assert_eq!(run["leaked_token_denied"], true);
    }
    let (_, listing) = s3.rest_get("s3", "/drill-bucket", &[("list-type", "2".into())]).await.unwrap();
    assert!(!listing.contains("<Key>"), "the drill deleted its objects: {listing}");

    // A bucket the credentials cannot find: one error line, exit 2.
    let missing = cli.run_in(&["drill", "--bucket", "no-such-bucket"], None, env);
    assert_eq!(missing.code, 2, "{}", missing.stderr);
    assert!(missing.error_line().contains("no-such-bucket"), "{}", missing.stderr);

    // `scan s3://`: our token planted in an object is found (exit 1), and never printed.
    cli.init();
    let (token, _) = cli.issue("billing-api", "logs", "s3:bucket/prod-logs/**:read", "1h");
    let (status, _) =
        s3.rest_put("s3", "/drill-bucket/config.env", format!("TOKEN={token}\n").into_bytes()).await.unwrap();
    assert_eq!(status, 200);
    let scan = cli.run_in(&["scan", "s3://drill-bucket", "--format", "json"], None, env);
    assert_eq!(scan.code, 1, "{}", scan.stderr);
    assert!(
        scan.stdout.contains(r#""bucket":"drill-bucket","column":7,"key":"config.env","kind":"s3""#),
        "{}",
        scan.stdout
    );
    assert!(!scan.stdout.contains(&token) && !scan.stderr.contains(&token), "the token is never printed");
    assert!(!cli.transcript.borrow().contains(&secret), "the AWS secret key is never printed");
}

/// The policy's `overlap` and `deletion_grace` (issue 24 §6), honoured through the CLI and the
/// daemon, in real time on seconds: the previous key keeps working for the overlap (`rotate`
/// exits 3, nothing started); after it, `rotate` deactivates it but does not delete it, and — the
/// key in its grace holding IAM's second slot — starts nothing and says until when (exit 3,
/// `waiting`); the daemon deletes it once its grace has passed, not before and not at the next
/// rotation; then a rotation goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overlap_and_the_deletion_grace_are_honoured_by_rotate_and_the_daemon() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
    let (admin_id, admin_secret) =
        (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let admin = moto.client(creds);
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", "graced".into())]).await.unwrap();
    let cli = Cli::new();
    let policy = format!(
        "{POLICY}\n[[credential]]\nname = \"aws/graced\"\nschedule = \"30d\"\noverlap = \"2s\"\ndeletion_grace = \"4s\"\n\
         target = {{ kind = \"aws-iam-access-key\", user = \"graced\", endpoint = \"{e}\", admin_access_key_id = \"{admin_id}\", \
         admin_secret_key_secret = \"aws/admin-secret\" }}\n",
        e = moto.endpoint()
    );
    std::fs::write(cli.path("policy.toml"), &policy).unwrap();
    cli.run(&["init", "--policy", "policy.toml"]).ok();
    cli.run_stdin(&["secret", "put", "aws/admin-secret"], admin_secret.as_bytes()).ok();
    let keys = || {
        let admin = admin.clone();
        async move {
            let x = admin.query("iam", v, "ListAccessKeys", &[("UserName", "graced".into())]).await.unwrap();
            let mut k: Vec<(String, bool)> = xml::blocks(&x, "member")
                .into_iter()
                .map(|m| (xml::tag(m, "AccessKeyId").unwrap(), xml::tag(m, "Status").unwrap() == "Active"))
                .collect();
            k.sort();
            k
        }
    };
    let rotate = || {
        let r = cli.run(&["rotate", "aws/graced", "--format", "json"]);
        let v: serde_json::Value =
            serde_json::from_str(r.stdout.trim()).unwrap_or_else(|_| panic!("{}", r.stderr));
        (r.code, v)
    };
    assert_eq!(rotate().0, 0);
    let first = keys().await[0].0.clone();
    std::thread::sleep(Duration::from_millis(2_100)); // (the bootstrap's overlap, with no previous key)
    let (code, _) = rotate();
    assert_eq!(code, 0);
    let promoted_at = Instant::now();
    // The overlap: nothing started, the previous key still active.
    let (code, v) = rotate();
    assert_eq!((code, v["status"].as_str()), (3, Some("nothing_started")), "{v}");
    assert!(v["until"].is_string() && v["started"] == false, "{v}");
    let both = keys().await;
    assert_eq!(both.len(), 2);
    assert!(both.contains(&(first.clone(), true)), "the previous key is active in its overlap: {both:?}");
    // After the overlap: deactivated, not deleted, and the rotation waits for its grace.
    std::thread::sleep(Duration::from_millis(2_100).saturating_sub(promoted_at.elapsed()));
    // The deactivation happens within this call (which then goes on proving the revocation: a
    // local API accepts an inactive key, so that waits for the deletion).
    let revoked_at = tokenward::core::chrono::Utc::now();
    let (code, v) = rotate();
    let returned_at = tokenward::core::chrono::Utc::now();
    assert_eq!((code, v["status"].as_str()), (3, Some("waiting")), "{v}");
    let text = v["result"].as_str().unwrap();
    assert!(text.contains(&first) && text.contains("deletion grace") && v["until"].is_string(), "{v}");
    let until = tokenward::core::chrono::DateTime::parse_from_rfc3339(v["until"].as_str().unwrap()).unwrap();
    let ahead = (until.with_timezone(&tokenward::core::chrono::Utc) - revoked_at).num_milliseconds();
    let call = (returned_at - revoked_at).num_milliseconds();
    // (`until` is printed to the second.)
    assert!((2_900..=4_500 + call).contains(&ahead), "until is the grace's end ({ahead} ms ahead)");
    assert!(keys().await.contains(&(first.clone(), false)), "deactivated, kept for its grace");
    // Again at once: still waiting, still kept (a rotation never deletes it early).
    assert_eq!(rotate().1["status"], "waiting");
    assert!(keys().await.contains(&(first.clone(), false)));

    // The daemon deletes it when its grace is over, not at the next rotation (30 days away).
    let mut daemon = cli
        .command()
        .args(["daemon", "--tick", "100ms"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let _ = err.next();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut gone_after = None;
    while Instant::now() < deadline {
        let k = keys().await;
        if !k.iter().any(|(id, _)| *id == first) {
            gone_after = Some((tokenward::core::chrono::Utc::now() - revoked_at).num_milliseconds());
            break;
        }
        assert_eq!(k.len(), 2, "{k:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let stop = Instant::now() + Duration::from_secs(20);
    while daemon.try_wait().unwrap().is_none() && Instant::now() < stop {
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = daemon.try_wait().unwrap();
    if status.is_none() {
        let _ = daemon.kill();
    }
    let gone_after = gone_after.expect("the daemon deleted the key after its grace");
    assert!(gone_after >= 3_900, "deleted {gone_after} ms after its deactivation: before its 4 s grace");
    assert!(gone_after <= 9_000, "deleted {gone_after} ms after its deactivation: late");
    assert!(status.is_some_and(|s| s.success()), "the daemon stops after SIGTERM: {status:?}");
    // Room again: the rotation goes through.
    let (code, v) = rotate();
    assert_eq!((code, v["status"].as_str()), (0, Some("promoted")), "{v}");
    assert!(cli.run(&["audit", "verify"]).ok().contains("verified"));
    assert!(!cli.transcript.borrow().contains(&admin_secret));
}

/// moto (signatures and IAM on) with an admin allowed everything and the IAM users `users`; a
/// store whose policy declares `aws/billing-key` (user `billing`, `extra` target settings) with the
/// admin's secret key sealed.
struct Declared {
    /// Kept: the server stops when it is dropped.
    _moto: Moto,
    admin: AwsClient,
    admin_id: String,
    admin_secret: String,
    cli: Cli,
}

impl Declared {
    async fn start(users: &[&str], extra: &str) -> Option<Self> {
        let moto = Moto::start(3)?;
        let creds = moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await;
        let (admin_id, admin_secret) =
            (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
        let admin = moto.client(creds);
        for user in users {
            admin.query("iam", IAM, "CreateUser", &[("UserName", (*user).into())]).await.unwrap();
        }
        let cli = Cli::new();
        let policy = format!(
            "{POLICY}\n[[credential]]\nname = \"aws/billing-key\"\n\
             target = {{ kind = \"aws-iam-access-key\", user = \"billing\", endpoint = \"{e}\", \
             admin_access_key_id = \"{admin_id}\", admin_secret_key_secret = \"aws/admin-secret\"{extra} }}\n",
            e = moto.endpoint()
        );
        std::fs::write(cli.path("policy.toml"), policy).unwrap();
        cli.run(&["init", "--policy", "policy.toml"]).ok();
        cli.run_stdin(&["secret", "put", "aws/admin-secret"], admin_secret.as_bytes()).ok();
        Some(Self { _moto: moto, admin, admin_id, admin_secret, cli })
    }

    /// A new access key of `user`, made by hand: (id, secret key).
    async fn make_key(&self, user: &str) -> (String, String) {
        let k = self.admin.query("iam", IAM, "CreateAccessKey", &[("UserName", user.into())]).await.unwrap();
        (xml::tag(&k, "AccessKeyId").unwrap(), xml::tag(&k, "SecretAccessKey").unwrap())
    }

    /// `user`'s keys: (id, status).
    async fn keys(&self, user: &str) -> Vec<(String, String)> {
        let x = self.admin.query("iam", IAM, "ListAccessKeys", &[("UserName", user.into())]).await.unwrap();
        xml::blocks(&x, "member")
            .into_iter()
            .map(|m| (xml::tag(m, "AccessKeyId").unwrap(), xml::tag(m, "Status").unwrap()))
            .collect()
    }
}

/// `inventory` lists every IAM user's keys with the admin access the stored policy declares,
/// tells the declared credential's key from one made by hand beside it (drifted), counts a user's
/// active keys, lists the store's own tokens, and prints no secret; exit 1 for the findings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_lists_every_key_and_token_with_its_findings() {
    let Some(aws) = Declared::start(&["billing", "ops"], "").await else { return };
    let (cli, admin_id) = (&aws.cli, aws.admin_id.clone());
    let mut secrets = vec![aws.admin_secret.clone()];
    let (ops_a, secret) = aws.make_key("ops").await;
    secrets.push(secret);
    let (ops_b, secret) = aws.make_key("ops").await;
    secrets.push(secret);
    assert!(cli.run(&["rotate", "aws/billing-key"]).ok().contains("promoted version 1"));
    // A key made by hand beside the managed one.
    let (by_hand, secret) = aws.make_key("billing").await;
    secrets.push(secret);
    let token = cli.run(&[
        "issue",
        "--principal",
        "billing-api",
        "--purpose",
        "read-logs",
        "--scope",
        "s3:bucket/prod-logs/*:read",
        "--ttl",
        "1h",
    ]);
    let token = token.ok().trim().to_owned();

    let r = cli.run(&["inventory", "--format", "json"]);
    assert_eq!(r.code, 1, "findings: exit 1\n{}{}", r.stdout, r.stderr);
    let inv: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let entries = inv["entries"].as_array().unwrap();
    let find = |id: &str| entries.iter().find(|e| e["id"] == id).unwrap_or_else(|| panic!("{id} listed"));
    let kinds = |e: &serde_json::Value| -> Vec<String> {
        e["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap().to_owned()).collect()
    };
    let managed: Vec<&serde_json::Value> =
        entries.iter().filter(|e| e["managed"]["credential"] == "aws/billing-key").collect();
    assert_eq!(managed.len(), 1, "the declared credential's key: {managed:?}");
    assert_eq!(managed[0]["managed"]["as"], "current");
    assert_eq!(managed[0]["owner"], "billing");
    assert!(managed[0]["expires"].is_string(), "a managed key expires when its record says");
    assert!(!kinds(managed[0]).contains(&"no-expiry".to_owned()));
    let hand = find(&by_hand);
    assert_eq!(hand["managed"], serde_json::Value::Null);
    assert!(kinds(hand).contains(&"drifted".to_owned()), "{hand}");
    assert!(kinds(hand).contains(&"several-active-keys".to_owned()), "{hand}");
    for id in [&ops_a, &ops_b] {
        let e = find(id);
        assert_eq!(e["owner"], "ops");
        assert_eq!(kinds(e), ["no-expiry", "several-active-keys"], "{e}");
    }
    assert!(find(&admin_id)["source"] == "aws-iam");
    let ours: Vec<&serde_json::Value> = entries.iter().filter(|e| e["source"] == "tokenward").collect();
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0]["owner"], "billing-api");
    assert_eq!(ours[0]["managed"]["as"], "issued");

    let text = cli.run(&["inventory"]);
    assert_eq!(text.code, 1);
    let line = |id: &str| text.stdout.lines().find(|l| l.contains(id)).unwrap_or_default().to_owned();
    assert!(line(&by_hand).starts_with("aws-iam "), "{}", text.stdout);
    assert!(line(&by_hand).contains("drifted from aws/billing-key"), "{}", text.stdout);
    assert!(line(&admin_id).contains("no-expiry"), "{}", text.stdout);
    assert!(text.stdout.contains("aws/billing-key (current)"), "{}", text.stdout);
    assert!(text.stdout.contains("findings:"), "{}", text.stdout);

    // The posture report's section, and the alerts: one per finding kind, naming the credentials.
    let report = cli.run(&["report", "--inventory", "--format", "json"]);
    assert_eq!(report.code, 1);
    let posture: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(posture["inventory"]["entries"].as_array().unwrap().len(), entries.len());
    let html = cli.run(&["report", "--inventory", "--html", "report.html"]);
    assert_eq!(html.code, 1, "{}", html.stderr);
    let page = std::fs::read_to_string(cli.path("report.html")).unwrap();
    assert!(page.contains("<h2>Inventory") && page.contains(&by_hand), "the HTML's inventory section");
    assert!(!cli.run(&["report", "--format", "json"]).stdout.contains("\"inventory\""), "only when asked");
    let alerts = cli.run(&["alerts", "check", "--inventory"]);
    assert_eq!(alerts.code, 1, "{}", alerts.stderr);
    let alerts: Vec<serde_json::Value> = alerts
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert"].clone())
        .collect();
    let drifted = alerts.iter().find(|a| a["kind"] == "inventory_drifted").expect("a drifted alert");
    assert_eq!(drifted["severity"], "high");
    assert_eq!(drifted["credentials"], serde_json::json!([format!("aws-iam:{by_hand}")]));
    let several = alerts.iter().find(|a| a["kind"] == "inventory_several_active_keys").unwrap();
    assert_eq!(several["credentials"].as_array().unwrap().len(), 4, "{several}");

    // The hand-made key removed, an emergency: the old key is deactivated and kept for its
    // deletion grace (1 h). It is Tokenward's own retired key, not drift, and no finding.
    aws.admin
        .query(
            "iam",
            IAM,
            "DeleteAccessKey",
            &[("UserName", "billing".into()), ("AccessKeyId", by_hand.clone())],
        )
        .await
        .unwrap();
    let old = managed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(cli.run(&["rotate", "aws/billing-key", "--emergency"]).code, 0);
    let after: serde_json::Value =
        serde_json::from_str(&cli.run(&["inventory", "--format", "json"]).stdout).unwrap();
    let billing: Vec<&serde_json::Value> =
        after["entries"].as_array().unwrap().iter().filter(|e| e["owner"] == "billing").collect();
    assert_eq!(billing.len(), 2, "{billing:?}");
    let retired = billing.iter().find(|e| e["id"] == old.as_str()).unwrap();
    assert_eq!((&retired["status"], &retired["managed"]["as"]), (&"inactive".into(), &"attributed".into()));
    assert!(billing.iter().all(|e| e["findings"] == serde_json::json!([])), "{billing:?}");

    // No secret — the admin's, a listed key's, the token — in the inventory, nor a key's in
    // anything printed or written.
    for out in [&r.stdout, &r.stderr, &text.stdout, &text.stderr, &report.stdout, &page] {
        for s in secrets.iter().chain([&token]) {
            assert!(!out.contains(s.as_str()), "a secret in the inventory");
        }
    }
    let transcript = cli.transcript.borrow();
    for s in &secrets {
        assert!(!transcript.contains(s.as_str()), "a secret in the output");
    }
    for (path, bytes) in all_files(cli.dir.path()) {
        for s in &secrets {
            assert!(!contains(&bytes, s.as_bytes()), "{} holds a secret", path.display());
        }
    }
}

/// `adopt` takes a key made by hand under a declared credential with no gap: a wrong secret, a
/// key of another user and a second adoption are refused; the adopted key is what `run` gives;
/// the next rotation replaces it like any other and leaves another user's hand-made key alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_made_by_hand_is_adopted_then_rotated_like_any_other() {
    let Some(aws) = Declared::start(&["billing", "ops"], ", deletion_grace = \"0s\"").await else { return };
    let cli = &aws.cli;
    let (key, secret) = aws.make_key("billing").await;
    let (ops_key, ops_secret) = aws.make_key("ops").await;
    // Rotating first is refused: the user holds a key Tokenward did not create.
    let refused = cli.run(&["rotate", "aws/billing-key"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stdout.contains(&key) || refused.stderr.contains(&key),
        "{}{}",
        refused.stdout,
        refused.stderr
    );

    // Refused: a wrong secret, another user's key, no key id.
    let wrong = cli.run_stdin(
        &["adopt", "aws/billing-key", "--handle", &key],
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    );
    assert_eq!(wrong.code, 2, "{}", wrong.stderr);
    let other = cli.run_stdin(&["adopt", "aws/billing-key", "--handle", &ops_key], ops_secret.as_bytes());
    assert_eq!(other.code, 2);
    assert!(other.stderr.contains("is not one of IAM user billing's"), "{}", other.stderr);
    // Swapped: the secret key as --handle, the id on stdin. Refused, and the secret repeated
    // nowhere (not in the error, not in the audit log).
    let swapped = cli.run_stdin(&["adopt", "aws/billing-key", "--handle", &secret], key.as_bytes());
    assert_eq!(swapped.code, 2);
    assert!(swapped.stderr.contains("not an access key id"), "{}", swapped.stderr);
    assert!(!swapped.stderr.contains(&secret) && !swapped.stdout.contains(&secret));
    let log = std::fs::read_to_string(cli.path("tokenward.audit.jsonl")).unwrap();
    assert!(log.contains("\"adopt\"") && !log.contains(&secret), "audited, with no secret");
    let no_id = cli.run_stdin(&["adopt", "aws/billing-key"], secret.as_bytes());
    assert_eq!(no_id.code, 2);
    assert!(no_id.stderr.contains("access key id"), "{}", no_id.stderr);

    let adopted =
        cli.run_stdin(&["adopt", "aws/billing-key", "--handle", &key, "--format", "json"], secret.as_bytes());
    let adopted: serde_json::Value = serde_json::from_str(adopted.ok().trim()).unwrap();
    assert_eq!(adopted["adopted"], key.as_str());
    assert_eq!(adopted["version"], 1);
    let again = cli.run_stdin(&["adopt", "aws/billing-key", "--handle", &key], secret.as_bytes());
    assert_eq!(again.code, 2);
    assert!(again.stderr.contains("managed already"), "{}", again.stderr);
    // The documented shape: `#handle` is the key id, the value the secret key.
    let ran = run_with_key(cli, "echo \"$AWS_ACCESS_KEY_ID $AWS_SECRET_ACCESS_KEY\"");
    assert_eq!(ran.ok().trim(), format!("{key} {secret}"));
    // `secret get` gives the stored shape: handle, secret, expiry (Unix ms).
    let stored = cli.run(&["secret", "get", "aws/billing-key"]);
    let stored: serde_json::Value = serde_json::from_str(stored.ok()).unwrap();
    assert_eq!(
        (stored["handle"].as_str(), stored["secret"].as_str()),
        (Some(key.as_str()), Some(secret.as_str()))
    );
    assert!(stored["expires_at"].as_i64().unwrap() > 0);
    let inv: serde_json::Value =
        serde_json::from_str(&cli.run(&["inventory", "--format", "json"]).stdout).unwrap();
    let entry = inv["entries"].as_array().unwrap().iter().find(|e| e["id"] == key.as_str()).unwrap().clone();
    assert_eq!(entry["managed"]["as"], "current", "{entry}");

    // The first rotation replaces it like any other; the overlap keeps it alive.
    let r = cli.run(&["rotate", "aws/billing-key"]);
    assert!(r.ok().contains("promoted version 2"), "{}", r.stdout);
    let billing = aws.keys("billing").await;
    assert_eq!(billing.len(), 2, "{billing:?}");
    assert!(billing.contains(&(key.clone(), "Active".into())), "alive in its overlap: {billing:?}");
    // An emergency retires it at once (no overlap): the adopted key is Tokenward's to retire.
    let e = cli.run(&["rotate", "aws/billing-key", "--emergency", "--format", "json"]);
    assert_eq!(e.code, 0, "{}{}", e.stdout, e.stderr);
    let billing = aws.keys("billing").await;
    assert!(!billing.contains(&(key.clone(), "Active".into())), "the adopted key is retired: {billing:?}");
    assert_eq!(
        aws.keys("ops").await,
        [(ops_key.clone(), "Active".to_owned())],
        "another user's key untouched"
    );
    let report: serde_json::Value = serde_json::from_str(e.stdout.trim()).unwrap();
    assert!(report["confirmed_after_ms"].is_number(), "the emergency proved the key refused: {report}");
    let log = cli.run(&["audit", "show", "--format", "json"]).ok().to_owned();
    assert!(log.contains("\"adopt\""), "adoption is audited");
    assert!(log.contains("revocation_confirmed"), "the revocation's proof is audited");
    // The posture report shows it: the step with how long after the revocation, and a line.
    let report = cli.run(&["report", "--format", "json"]);
    let posture: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    let all: Vec<serde_json::Value> = posture["rotation"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["history"].as_array().unwrap().clone())
        .collect();
    let proof = all.iter().find(|s| s["step"] == "revocation_confirmed").expect("a proof in the history");
    assert!(proof["after_ms"].is_number() && proof["handle"].is_string(), "{proof}");
    let text = cli.run(&["report"]);
    assert!(text.stdout.contains("credential aws/billing-key: last revocation ("), "{}", text.stdout);
    assert!(!log.contains(&secret) && !log.contains(&ops_secret));
}
