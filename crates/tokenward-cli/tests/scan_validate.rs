//! `scan --validate`: each found credential's provider is asked whether it still works — AWS key
//! pairs by STS on a local AWS API (moto, signatures on), our own tokens by the store (a used-up
//! one invalid) — and every finding says valid, invalid or unknown; no secret is printed; the
//! flags are opt-in and checked before the scan.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use token_http::aws::xml;
use tokenward_test_support::Moto;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn found_credentials_are_judged_by_their_providers_and_no_secret_is_printed() {
    let Some(moto) = Moto::start(3) else { return };
    let admin = moto.client(moto.setup_user("admin", tokenward_test_support::ALLOW_ALL).await);
    let v = "2010-05-08";
    admin.query("iam", v, "CreateUser", &[("UserName", "billing".into())]).await.unwrap();
    let mut pairs = Vec::new();
    for _ in 0..2 {
        let k = admin.query("iam", v, "CreateAccessKey", &[("UserName", "billing".into())]).await.unwrap();
        pairs.push((xml::tag(&k, "AccessKeyId").unwrap(), xml::tag(&k, "SecretAccessKey").unwrap()));
    }
    // The second key is deleted at IAM: its leak is dead.
    admin
        .query(
            "iam",
            v,
            "DeleteAccessKey",
            &[("UserName", "billing".into()), ("AccessKeyId", pairs[1].0.clone())],
        )
        .await
        .unwrap();

    let cli = Cli::new();
    cli.init();
    let (live, live_id) = cli.issue("billing-api", "logs", "s3:bucket/prod-logs/**:read", "1h");
    let (dead, dead_id) = cli.issue("billing-api", "old", "s3:bucket/prod-logs/**:read", "1h");
    cli.run(&["revoke", &dead_id, "--reason", "retired"]).ok();
    // A token allowed one use, used once: dead, though active by its dates.
    let used = cli.run(&[
        "issue",
        "--principal",
        "billing-api",
        "--purpose",
        "once",
        "--scope",
        "s3:bucket/prod-logs/**:read",
        "--ttl",
        "1h",
        "--max-uses",
        "1",
        "--format",
        "json",
    ]);
    let used: serde_json::Value = serde_json::from_str(used.ok()).unwrap();
    let used = used["token"].as_str().unwrap().to_owned();
    cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/app.log:read"], used.as_bytes()).ok();

    let tree = cli.path("tree");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("live.env"), format!("TOKENWARD_TOKEN={live}\n")).unwrap();
    std::fs::write(tree.join("dead.env"), format!("TOKENWARD_TOKEN={dead}\n")).unwrap();
    std::fs::write(tree.join("used.env"), format!("TOKENWARD_TOKEN={used}\n")).unwrap();
    for (i, (id, secret)) in pairs.iter().enumerate() {
        std::fs::write(
            tree.join(format!("aws{i}.env")),
            format!("AWS_ACCESS_KEY_ID={id}\nAWS_SECRET_ACCESS_KEY={secret}\n"),
        )
        .unwrap();
    }
    let tree = tree.to_str().unwrap();
    let sts = ["--aws-sts-endpoint", moto.endpoint()];

    let r = cli.run(&[&["scan", tree, "--validate", "--format", "json"][..], &sts[..]].concat());
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    // JSON lines: one object per finding, then a summary.
    let findings: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["type"] == "finding")
        .collect();
    let verdict = |file: &str| -> (String, String, String) {
        let f = findings
            .iter()
            .find(|f| {
                f["location"]["path"].as_str().is_some_and(|p| p.ends_with(file))
                    && f["validation"].is_object()
            })
            .unwrap_or_else(|| panic!("a validated finding in {file}: {}", r.stdout));
        let v = &f["validation"];
        (
            v["validity"].as_str().unwrap().into(),
            v["by"].as_str().unwrap().into(),
            v["detail"].as_str().unwrap().into(),
        )
    };
    let (validity, by, detail) = verdict("live.env");
    assert_eq!((validity.as_str(), by.as_str()), ("valid", "tokenward-store"), "{detail}");
    assert!(detail.contains(&live_id), "{detail}");
    let (validity, by, detail) = verdict("dead.env");
    assert_eq!((validity.as_str(), by.as_str()), ("invalid", "tokenward-store"), "{detail}");
    assert!(detail.contains("revoked"), "{detail}");
    let (validity, by, detail) = verdict("used.env");
    assert_eq!((validity.as_str(), by.as_str()), ("invalid", "tokenward-store"), "{detail}");
    assert!(detail.contains("maximum of 1"), "{detail}");
    let (validity, by, detail) = verdict("aws0.env");
    assert_eq!((validity.as_str(), by.as_str()), ("valid", "aws-sts"), "{detail}");
    assert!(detail.contains("user/billing"), "the identity it acts as: {detail}");
    let (validity, by, _) = verdict("aws1.env");
    assert_eq!((validity.as_str(), by.as_str()), ("invalid", "aws-sts"));
    assert!(
        r.stderr.contains("validated: 2 valid, 3 invalid, ") && r.stderr.contains(" unknown (2 request(s))"),
        "a one-line summary on stderr (the store's checks are not requests): {}",
        r.stderr
    );

    // A store that does not open (a wrong passphrase) leaves ours unknown, with a warning; the
    // report is printed all the same.
    let args = [&["scan", tree, "--validate", "--format", "json"][..], &sts[..]].concat();
    let locked = cli.run_in(&args, None, |c| {
        c.env("TOKENWARD_PASSPHRASE", "not the passphrase");
    });
    assert_eq!(locked.code, 1, "{}{}", locked.stdout, locked.stderr);
    assert!(locked.stderr.contains("our tokens stay unknown"), "{}", locked.stderr);
    let ours: Vec<serde_json::Value> = locked
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "finding" && v["rule"] == "tokenward")
        .collect();
    assert_eq!(ours.len(), 3, "{}", locked.stdout);
    assert!(ours.iter().all(|f| f["validation"]["validity"] == "unknown"), "{}", locked.stdout);

    // The text format says it on each finding's line.
    let text = cli.run(&[&["scan", tree, "--validate"][..], &sts[..]].concat());
    assert_eq!(text.code, 1, "{}", text.stderr);
    let line = text.stdout.lines().find(|l| l.contains("aws0.env") && l.contains("aws-sts")).unwrap();
    assert!(line.contains("valid (aws-sts: arn:"), "{line}");

    // Opt-in: without --validate nothing is asked and no finding carries a verdict; the
    // validation flags alone are a usage error.
    let plain = cli.run(&["scan", tree, "--format", "json"]);
    assert_eq!(plain.code, 1);
    assert!(!plain.stdout.contains("\"validation\""), "{}", plain.stdout);
    for flags in [&["--openbao-addr", "http://127.0.0.1:1"][..], &sts[..], &["--validate-rate", "9"][..]] {
        let r = cli.run(&[&["scan", tree][..], flags].concat());
        assert_eq!(r.code, 2, "{flags:?} without --validate: {}", r.stderr);
        assert!(r.stderr.contains("--validate"), "{}", r.stderr);
    }
    // Its bounds are refused out of range, with the flag named; so is an address its client
    // refuses (plain HTTP to another host), with the cause — before anything is scanned.
    let r = cli.run(&[&["scan", tree, "--validate", "--validate-rate", "500"][..], &sts[..]].concat());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("rate"), "{}", r.stderr);
    for (flag, addr) in [
        ("--openbao-addr", "http://ops:hunter2@bao.example.com:8200"),
        ("--aws-sts-endpoint", "http://sts.example.com"),
    ] {
        let r = cli.run(&["scan", tree, "--validate", flag, addr]);
        assert_eq!(r.code, 2, "{flag} {addr}: {}{}", r.stdout, r.stderr);
        assert!(r.stdout.is_empty(), "no report: {}", r.stdout);
        let line = r.error_line();
        assert!(line.contains(flag) && line.contains("plain HTTP"), "{}", r.stderr);
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }

    // No secret in any output of any scan (`issue` alone printed the tokens, once each).
    let transcript = cli.transcript.borrow();
    for secret in [live.as_str(), dead.as_str(), used.as_str()] {
        assert_eq!(transcript.matches(secret).count(), 1, "a token was printed again");
    }
    for secret in [pairs[0].1.as_str(), pairs[1].1.as_str()] {
        assert!(!transcript.contains(secret), "an AWS secret key was printed");
    }
}
