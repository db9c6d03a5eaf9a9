//! The CLI on the PostgreSQL store and audit log (`--database-url`, feature `postgres`), against
//! the real server `scripts/test.sh` starts.

#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn the_whole_lifecycle_runs_on_postgresql() {
    let Some(schema) = tokenward_test_support::FreshSchema::create("twcli") else { return };
    let cli = Cli::new();
    let pg = |c: &mut std::process::Command| {
        c.env("TOKENWARD_DATABASE_URL", schema.url());
    };
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    cli.run_in(&["init", "--prefix", "pgacme", "--policy", "policy.toml"], None, pg).ok();
    assert!(!cli.store().exists(), "no embedded store was made");
    let issued = cli.run_in(
        &[
            "issue",
            "--principal",
            "billing-api",
            "--purpose",
            "p",
            "--scope",
            "s3:bucket/prod-logs/x:read",
            "--ttl",
            "10m",
            "--format",
            "json",
        ],
        None,
        pg,
    );
    let v: serde_json::Value = serde_json::from_str(issued.ok()).unwrap();
    let (token, id) = (v["token"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned());
    assert!(token.starts_with("pgacme_"));
    let ok = cli.run_in(&["verify", "--scope", "s3:bucket/prod-logs/x:read"], Some(token.as_bytes()), pg);
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    cli.run_in(&["revoke", &id, "--reason", "test"], None, pg).ok();
    let denied = cli.run_in(&["verify", "--scope", "s3:bucket/prod-logs/x:read"], Some(token.as_bytes()), pg);
    assert_eq!(denied.code, 1);
    cli.run_in(&["rotate", "billing-api/logs-token"], None, pg).ok();
    // The audit commands read the PostgreSQL log.
    let verified = cli.run_in(&["audit", "verify"], None, pg);
    assert!(verified.ok().contains("verified"), "{}", verified.stdout);
    let shown = cli.run_in(&["audit", "show", "--token", &id, "--format", "json"], None, pg);
    assert!(shown.ok().lines().count() >= 3, "{}", shown.stdout);
    let report = cli.run_in(&["report", "--format", "json"], None, pg);
    let r: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(r["audit"]["verified"], true);
    assert_eq!(r["tokens"]["revoked"], 1);
    assert!(!cli.path("tokenward.audit.jsonl").exists(), "no file log either");
}
