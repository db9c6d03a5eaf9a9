//! One output convention (issue 25 §5): every command that prints a result takes `--format
//! text|json`, and with `json` prints one JSON document on stdout and nothing else there (JSON
//! lines for the streams: listings and alerts). Each command here is run with `--format json` and
//! its stdout parsed whole.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::Value;
use token_http::secrecy::ExposeSecret;
use tokenward_test_support::Moto;

/// Stdout of a successful run, parsed as one JSON document.
fn json(r: &Run) -> Value {
    serde_json::from_str(r.ok()).unwrap_or_else(|e| panic!("one JSON document ({e}): {:?}", r.stdout))
}

/// A JSON command whose stdout is one JSON document.
fn run_json(cli: &Cli, args: &[&str]) -> Value {
    let mut v = args.to_vec();
    v.extend(["--format", "json"]);
    json(&cli.run(&v))
}

#[test]
fn init_and_policy_commands_print_one_json_document() {
    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    let v = run_json(&cli, &["init", "--prefix", "acme", "--policy", "policy.toml"]);
    assert_eq!(v["prefix"], "acme");
    assert!(v["audit_log"].as_str().unwrap().ends_with("tokenward.audit.jsonl"), "{v}");
    assert_eq!(v["policy"]["version"], 1);
    assert_eq!(v["policy"]["applied"], true);
    assert!(!v["policy"]["changes"].as_array().unwrap().is_empty(), "{v}");

    let v = run_json(&cli, &["policy", "check", "policy.toml"]);
    assert_eq!(
        (v["ok"].as_bool(), v["roles"].as_u64(), v["principals"].as_u64()),
        (Some(true), Some(2), Some(2))
    );

    // Unchanged: nothing stored; a dry run of a change: the changes, nothing stored.
    let v = run_json(&cli, &["policy", "apply", "policy.toml"]);
    assert_eq!((v["applied"].as_bool(), v["version"].as_u64()), (Some(false), Some(1)), "{v}");
    let changed = POLICY.replace("max_ttl = \"1h\"", "max_ttl = \"2h\"");
    std::fs::write(cli.path("changed.toml"), changed).unwrap();
    let v = run_json(&cli, &["policy", "apply", "changed.toml", "--dry-run"]);
    assert_eq!((v["dry_run"].as_bool(), v["applied"].as_bool()), (Some(true), Some(false)), "{v}");
    assert!(!v["changes"].as_array().unwrap().is_empty(), "{v}");
    let v = run_json(&cli, &["policy", "apply", "changed.toml", "--expect-version", "1"]);
    assert_eq!((v["applied"].as_bool(), v["version"].as_u64()), (Some(true), Some(2)), "{v}");
    assert_eq!(v["orphans"], serde_json::json!([]));

    let v = run_json(&cli, &["policy", "show", "1"]);
    assert_eq!(v["version"], 1);
    assert!(v["text"].as_str().unwrap().contains("log-reader") && v["sha256"].is_string(), "{v}");

    let v = run_json(&cli, &["role", "add", "auditor", "--grant", "audit:log/*:read", "--max-ttl", "1h"]);
    assert_eq!((v["applied"].as_bool(), v["version"].as_u64()), (Some(true), Some(3)), "{v}");
    let v = run_json(&cli, &["principal", "add", "bob", "--role", "auditor"]);
    assert_eq!(v["version"], 4);
    let v = run_json(&cli, &["principal", "remove", "bob"]);
    assert_eq!(v["version"], 5);
    let v = run_json(&cli, &["role", "remove", "auditor"]);
    assert_eq!(v["version"], 6);
    // Text is what it was.
    assert!(cli.run(&["policy", "apply", "changed.toml"]).ok().starts_with("no changes (stored version 6)"));
}

#[test]
fn secret_store_and_audit_commands_print_one_json_document() {
    let cli = Cli::new();
    cli.init();
    let v = json(&cli.run_stdin(&["secret", "put", "app/db", "--format", "json"], b"hunter2-format\n"));
    assert_eq!((v["name"].as_str(), v["version"].as_u64()), (Some("app/db"), Some(1)));
    // `get` is the command that prints the value: in JSON it is the field `value`.
    let v = run_json(&cli, &["secret", "get", "app/db"]);
    assert_eq!((v["name"].as_str(), v["value"].as_str()), (Some("app/db"), Some("hunter2-format")));
    cli.run_stdin(&["secret", "put", "app/bin"], b"\xff\x00bin").ok();
    assert_eq!(run_json(&cli, &["secret", "get", "app/bin"])["value_hex"], "ff0062696e");

    let v = run_json(&cli, &["rewrap"]);
    assert!(v["rewrapped"].is_u64() && v["kek"].is_string(), "{v}");
    let v = run_json(&cli, &["migrate"]);
    assert_eq!(v["changed"], false, "{v}");
    let v = run_json(&cli, &["rotate", "--due"]);
    assert!(v["promoted"].is_u64() && v["rolled_back"] == 0 && v["failed_or_skipped"].is_u64(), "{v}");

    let v = run_json(&cli, &["audit", "verify"]);
    assert_eq!((v["verified"].as_bool(), v["bound_to_store"].as_bool()), (Some(true), Some(true)), "{v}");
    assert!(v["entries"].as_u64().unwrap() > 3 && v["head"].is_string(), "{v}");
    let v = run_json(&cli, &["audit", "verify", "--log-only"]);
    assert!(v["bound_to_store"].is_null() && v["verified"] == true, "{v}");

    cli.run(&["audit", "tree-head", "--out", "head.note"]).ok();
    std::fs::write(cli.path("entry.proof.json"), cli.run(&["audit", "prove", "1"]).ok()).unwrap();
    let v = run_json(&cli, &["audit", "check-proof", "entry.proof.json", "--tree-head", "head.note"]);
    assert_eq!((v["holds"].as_bool(), v["kind"].as_str()), (Some(true), Some("inclusion")), "{v}");
}

#[test]
fn witness_and_rebind_print_one_json_document() {
    let cli = Cli::new();
    cli.init();
    let mount = tempfile::tempdir().unwrap();
    let witness = format!("dir:{}", mount.path().join("heads").display());
    let v = run_json(&cli, &["--witness", &witness, "audit", "witness"]);
    assert!(v["entries"].as_u64().unwrap() > 0 && v["witness"].is_string(), "{v}");

    let cli = Cli::new();
    cli.init();
    std::fs::rename(cli.path("tokenward.audit.jsonl"), cli.path("archive.jsonl")).unwrap();
    let v = run_json(&cli, &["audit", "rebind", "--reason", "archived", "--old-log", "archive.jsonl"]);
    assert_eq!(v["old_log"], "archive.jsonl");
    assert!(v["entries"].as_u64().unwrap() > 0 && v["audit_log"].is_string(), "{v}");
}

#[test]
fn alerts_print_json_lines_by_default_and_text_when_asked() {
    let cli = Cli::new();
    cli.init();
    // The declared credential was never rotated: an alert (exit 1).
    let default = cli.run(&["alerts", "check"]);
    let as_json = cli.run(&["alerts", "check", "--format", "json"]);
    for r in [&default, &as_json] {
        assert_eq!(r.code, 1, "{}", r.stderr);
        let lines: Vec<Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert!(lines.iter().any(|a| a["alert"]["kind"] == "rotation_overdue"), "{}", r.stdout);
    }
    let text = cli.run(&["alerts", "check", "--format", "text"]);
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert!(
        text.stdout.lines().any(|l| l.contains("rotation_overdue") && !l.starts_with('{')),
        "{}",
        text.stdout
    );
}

/// `rekey --to` against moto's KMS (skipped without it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rekey_prints_one_json_document() {
    let Some(moto) = Moto::start(3) else { return };
    let creds = moto.setup_user("kms-admin", tokenward_test_support::ALLOW_ALL).await;
    let (id, secret) = (creds.access_key_id.clone(), creds.secret_access_key.expose_secret().to_owned());
    let client = moto.client(creds);
    let k = client.json("kms", "TrentService.CreateKey", &serde_json::json!({})).await.unwrap();
    let key = format!("aws-kms:{}", k["KeyMetadata"]["KeyId"].as_str().unwrap());
    let endpoint = moto.endpoint().to_owned();
    let cli = Cli::new();
    cli.init();
    let r = cli.run_in(&["rekey", "--to", &key, "--format", "json"], None, |c| {
        c.env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", &secret)
            .env("AWS_ENDPOINT_URL", &endpoint);
    });
    let v = json(&r);
    assert_eq!(v["to"], key.as_str());
    assert!(v["rewrapped"].as_u64().unwrap() > 0, "{v}");
}
