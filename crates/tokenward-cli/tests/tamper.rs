//! The store's file edited with SQL between two commands, as someone who can write it but holds no
//! key would: what every command then says and does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

fn db(cli: &Cli) -> rusqlite::Connection {
    rusqlite::Connection::open(cli.store()).unwrap()
}

#[test]
fn one_tampered_record_is_named_everywhere_and_the_rest_works() {
    let cli = Cli::new();
    cli.init();
    let (bad, bad_id) = cli.issue("billing-api", "read-logs", "s3:bucket/prod-logs/app/*:read", "30m");
    let (good, good_id) = cli.issue("billing-api", "read-more", "s3:bucket/prod-logs/app/*:read", "30m");
    let conn = db(&cli);
    let mut body: Vec<u8> =
        conn.query_row("SELECT body FROM tokens WHERE id = ?1", [&bad_id], |r| r.get(0)).unwrap();
    body[1] ^= 0xff;
    conn.execute("UPDATE tokens SET body = ?2 WHERE id = ?1", rusqlite::params![bad_id, body]).unwrap();
    drop(conn);

    let list = cli.run(&["list"]);
    assert_eq!(list.code, 1, "{}", list.stderr);
    let line = list.stdout.lines().find(|l| l.starts_with(&bad_id)).expect("the tampered record is listed");
    assert!(line.contains("tampered") && !line.contains("active"), "{line}");
    assert!(list.stdout.lines().any(|l| l.starts_with(&good_id) && l.contains("active")), "{}", list.stdout);
    let json = cli.run(&["list", "--format", "json", "--principal", "billing-api"]);
    assert!(json.stdout.contains("\"tampered\""), "no filter hides it: {}", json.stdout);

    let scope = "s3:bucket/prod-logs/app/x:read";
    assert_eq!(cli.run_stdin(&["verify", "--scope", scope], good.as_bytes()).code, 0);
    assert_eq!(cli.run_stdin(&["verify", "--scope", scope], bad.as_bytes()).code, 1);
    cli.issue("billing-api", "third", "s3:bucket/prod-logs/app/*:read", "30m");
    let report = cli.run(&["report", "--format", "json"]);
    assert!(
        report.stdout.contains("tampered_records") && report.stdout.contains(&bad_id),
        "{}",
        report.stdout
    );
    let alerts = cli.run(&["alerts", "check"]);
    assert_eq!(alerts.code, 1, "{}{}", alerts.stdout, alerts.stderr);
    assert!(format!("{}{}", alerts.stdout, alerts.stderr).contains("tampered_records"));
}

#[test]
fn missing_integrity_markers_stop_every_command_until_an_audited_migrate() {
    let cli = Cli::new();
    cli.init();
    let (token, _) = cli.issue("billing-api", "read-logs", "s3:bucket/prod-logs/app/*:read", "30m");
    db(&cli).execute("DELETE FROM meta WHERE key LIKE 'tokenward/tokens-%'", []).unwrap();
    let scope = "s3:bucket/prod-logs/app/x:read";
    for args in [&["list"][..], &["report"][..], &["verify", "--scope", scope][..]] {
        let r = cli.run_stdin(args, token.as_bytes());
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(
            r.error_line().contains("tampered store") && r.error_line().contains("migrate"),
            "{}",
            r.stderr
        );
    }
    let migrated = cli.run(&["migrate"]);
    assert_eq!(migrated.code, 0, "{}", migrated.stderr);
    assert!(migrated.stderr.contains("tokenward/tokens-tagged"), "{}", migrated.stderr);
    assert_eq!(cli.run_stdin(&["verify", "--scope", scope], token.as_bytes()).code, 0);
    let log = cli.run(&["audit", "show", "--format", "json"]);
    assert!(log.stdout.contains("migrate"), "{}", log.stdout);
    assert!(cli.run(&["migrate"]).stderr.contains("nothing to migrate"));
}

#[test]
fn init_is_all_or_nothing() {
    for (args, what) in [
        (vec!["init", "--prefix", "acme", "--policy", "missing.toml"], "missing.toml"),
        (vec!["init", "--prefix", "NOT A PREFIX"], "--prefix"),
    ] {
        let cli = Cli::new();
        let r = cli.run(&args);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.error_line().contains(what), "{}", r.stderr);
        let left: Vec<_> =
            std::fs::read_dir(cli.dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert!(left.is_empty(), "{args:?} left {left:?}");
        cli.init();
    }
    // A policy over the ceiling is refused before anything is created, too.
    let cli = Cli::new();
    std::fs::write(cli.path("p.toml"), "[rules]\nmax_ttl = \"36500d\"\n").unwrap();
    let r = cli.run(&["init", "--prefix", "acme", "--policy", "p.toml"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.error_line().contains("ceiling"), "{}", r.stderr);
    assert!(!cli.store().exists());
}

#[test]
fn no_policy_or_request_raises_the_ceiling_and_huge_times_are_errors_not_panics() {
    let cli = Cli::new();
    cli.init();
    std::fs::write(cli.path("p.toml"), POLICY.replace("max_ttl = \"30d\"", "max_ttl = \"36500d\"")).unwrap();
    for args in [&["policy", "check", "p.toml"][..], &["policy", "apply", "p.toml"][..]] {
        let r = cli.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.error_line().contains("ceiling"), "{}", r.stderr);
    }
    for ttl in ["36000d", "91d", "9223372036854775807ms", "100000000000d"] {
        let r = cli.run(&[
            "issue",
            "--principal",
            "billing-api",
            "--purpose",
            "p",
            "--scope",
            "s3:bucket/prod-logs/x:read",
            "--ttl",
            ttl,
        ]);
        assert_eq!(r.code, 2, "{ttl}: {}", r.stderr);
        assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    }
    for args in [
        &["list", "--expiring-within", "9223372036854775807ms"][..],
        &["list", "--unused-since", "100000000000d"][..],
        &["audit", "show", "--since", "100000000000d"][..],
    ] {
        let r = cli.run(args);
        assert!(!r.stderr.contains("panicked"), "{args:?}: {}", r.stderr);
    }
}
