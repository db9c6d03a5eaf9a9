//! Issue 24 §2 through the command: the store remembers its audit log (`rm` the log, or point
//! `--audit-log` elsewhere, and every command refuses), a new log is started only with `audit
//! rebind` (audited in both logs), and with `--witness` a store and log rolled back together are
//! caught by `issue`, `audit verify` and `alerts check`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

const SCOPE: &str = "s3:bucket/prod-logs/app/x:read";

fn save(cli: &Cli, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for (name, bytes) in cli.store_digest() {
        std::fs::write(to.join(name), bytes).unwrap();
    }
}

fn restore(cli: &Cli, from: &std::path::Path) {
    for (name, _) in cli.store_digest() {
        std::fs::remove_file(cli.path(&name)).unwrap();
    }
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), cli.path(&e.file_name().to_string_lossy())).unwrap();
    }
}

#[test]
fn a_removed_or_other_log_stops_every_command_until_a_deliberate_rebind() {
    let cli = Cli::new();
    cli.init();
    let (token, _) = cli.issue("billing-api", "read-logs", "s3:bucket/prod-logs/app/*:read", "30m");
    let log = cli.path("tokenward.audit.jsonl");
    std::fs::rename(&log, cli.path("archive.jsonl")).unwrap();
    for args in [
        &["list"][..],
        &[
            "issue",
            "--principal",
            "ci",
            "--purpose",
            "x",
            "--scope",
            "deploy:service/billing/a:release",
            "--ttl",
            "5m",
        ][..],
    ] {
        let r = cli.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.error_line().contains("the audit log is missing"), "{}", r.stderr);
    }
    let r = cli.run(&["audit", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = cli.run(&[
        "--audit-log",
        "elsewhere.jsonl",
        "issue",
        "--principal",
        "ci",
        "--purpose",
        "y",
        "--scope",
        "deploy:service/billing/a:release",
        "--ttl",
        "5m",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    let r = cli.run(&["audit", "rebind", "--reason", "archived", "--old-log", "archive.jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(cli.run_stdin(&["verify", "--scope", SCOPE], token.as_bytes()).code, 0);
    assert!(cli.run(&["audit", "verify"]).ok().contains("bound to"));
    let new = cli.run(&["audit", "show", "--action", "store"]);
    assert!(new.ok().contains("new-log") && new.stdout.contains("archived"), "{}", new.stdout);
    let old = std::fs::read_to_string(cli.path("archive.jsonl")).unwrap();
    assert!(old.lines().last().unwrap().contains("new-log"), "the old log records where it went on");
    // The archived log is no longer the store's.
    assert_eq!(cli.run(&["--audit-log", "archive.jsonl", "list"]).code, 2);
}

#[test]
fn store_and_log_rolled_back_together_are_caught_by_the_witness() {
    let cli = Cli::new();
    let mount = tempfile::tempdir().unwrap();
    let witness = format!("dir:{}", mount.path().join("heads").display());
    let with = |args: &[&str]| {
        let mut v = vec!["--witness", witness.as_str()];
        v.extend_from_slice(args);
        cli.run(&v.iter().map(|s| &**s).collect::<Vec<_>>())
    };
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    with(&["init", "--prefix", "acme", "--policy", "policy.toml"]).ok();
    let issued = with(&[
        "issue",
        "--principal",
        "billing-api",
        "--purpose",
        "read-logs",
        "--scope",
        "s3:bucket/prod-logs/app/*:read",
        "--ttl",
        "30m",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(issued.ok()).unwrap();
    let (token, id) = (v["token"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned());
    with(&["audit", "witness"]).ok();
    let before = cli.path("before");
    save(&cli, &before);
    with(&["revoke", &id]).ok();
    assert!(with(&["audit", "verify"]).ok().contains("consistent with the newest head"));

    restore(&cli, &before);
    // Without the witness the restored pair is consistent and the revoked token is alive…
    assert_eq!(cli.run_stdin(&["verify", "--scope", SCOPE], token.as_bytes()).code, 0);
    restore(&cli, &before);
    // …with it, every command fails closed, naming the rollback.
    let r = with(&[
        "issue",
        "--principal",
        "ci",
        "--purpose",
        "x",
        "--scope",
        "deploy:service/billing/a:release",
        "--ttl",
        "5m",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("rollback"), "{}", r.stderr);
    let r = with(&["audit", "verify"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.error_line().contains("rollback"), "{}", r.stderr);
    let r = with(&["alerts", "check"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("rollback"), "{}", r.stderr);
    let r = with(&["list"]);
    assert!(r.code == 2 && r.error_line().contains("rollback"), "{}", r.stderr);
    assert_ne!(
        cli.run_in(&["--witness", &witness, "verify", "--scope", SCOPE], Some(token.as_bytes()), |_| {}).code,
        0
    );
}
