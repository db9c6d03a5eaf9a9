//! `tokenward scan` over several targets at once, stdin, and a PostgreSQL database (the real server
//! `scripts/test.sh` starts): one merged report and one exit code, each finding's location naming
//! its source; the database's password in no output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::*;

/// GitHub tokens with valid checksums (token-scan's vectors).
fn tokens() -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(include_str!("../../token-scan/tests/vectors/github-tokens.json")).unwrap();
    v["valid"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

fn locations(jsonl: &str) -> Vec<String> {
    let mut out: Vec<String> = jsonl
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "finding")
        .map(|v| {
            let l = &v["location"];
            match l["kind"].as_str().unwrap() {
                "file" => format!("{}:{}:{}", l["path"].as_str().unwrap(), l["line"], l["column"]),
                "git" => format!("git:{}:{}", l["path"].as_str().unwrap(), l["line"]),
                "postgres" => format!(
                    "postgres:{}.{}:{}:{}",
                    l["schema"].as_str().unwrap(),
                    l["table"].as_str().unwrap(),
                    l["field"].as_str().unwrap(),
                    l["row"].as_str().unwrap()
                ),
                other => panic!("{other}"),
            }
        })
        .collect();
    out.sort();
    out
}

#[test]
fn several_targets_make_one_report_and_stdin_is_a_target() {
    let t = tokens();
    let cli = Cli::new();
    for (dir, file, token) in [("a", "x.env", &t[0]), ("b", "y.env", &t[1])] {
        std::fs::create_dir_all(cli.path(dir)).unwrap();
        std::fs::write(cli.path(dir).join(file), format!("TOKEN={token}\n")).unwrap();
    }
    std::fs::create_dir_all(cli.path("repo")).unwrap();
    std::fs::write(cli.path("repo/old.cfg"), format!("gh = {}\n", t[2])).unwrap();
    for args in [&["init", "-q"][..], &["add", "."], &["commit", "-qm", "x"]] {
        let ok = Command::new("git")
            .arg("-C")
            .arg(cli.path("repo"))
            .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
            .args(args)
            .status()
            .unwrap();
        assert!(ok.success());
    }
    std::fs::remove_file(cli.path("repo/old.cfg")).unwrap();
    let run = cli.run(&["scan", "a", "b", "git:repo", "--format", "json", "--no-progress"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(locations(&run.stdout), ["a/x.env:1:7", "b/y.env:1:7", "git:old.cfg:1"], "{}", run.stdout);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["findings"], 3);
    // SARIF and text: the same shape, one run.
    let sarif = cli.run(&["scan", "a", "b", "--format", "sarif"]);
    let log: serde_json::Value = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(log["runs"].as_array().unwrap().len(), 1);
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 2);
    let text = cli.run(&["scan", "a", "b"]);
    assert!(text.stdout.contains("a/x.env:1:7") && text.stdout.contains("2 finding(s)"), "{}", text.stdout);
    // One target alone keeps its paths relative to it, as before.
    assert!(cli.run(&["scan", "a"]).stdout.starts_with("x.env:1:7"));
    // A target that fails stops the run (exit 2) and is named; a malformed one before any scan.
    let missing = cli.run(&["scan", "a", "git:nowhere"]);
    assert_eq!(missing.code, 2);
    assert!(missing.error_line().contains("git:nowhere"), "{}", missing.stderr);
    assert_eq!(cli.run(&["scan", "a", "s3://"]).code, 2);
    assert_eq!(cli.run(&["scan", "-", "-"]).code, 2);

    // stdin: streamed, located as stdin:LINE:COL; clean is 0; binary is skipped.
    let piped =
        cli.run_stdin(&["scan", "-", "--format", "json"], format!("# config\nkey: {}\n", t[3]).as_bytes());
    assert_eq!(piped.code, 1, "{}", piped.stderr);
    assert_eq!(locations(&piped.stdout), ["stdin:2:6"]);
    let big: Vec<u8> = [vec![b'x'; 9 << 20], format!("\nlate = {}\n", t[4]).into_bytes()].concat();
    let late = cli.run_stdin(&["scan", "-", "--format", "json"], &big);
    assert_eq!(locations(&late.stdout), ["stdin:2:8"], "past the first chunks too");
    assert_eq!(cli.run_stdin(&["scan", "-"], b"nothing to see\n").code, 0);
    let binary = cli.run_stdin(&["scan", "-"], &[0u8, 1, 2, 3]);
    assert_eq!(binary.code, 0);
    assert!(binary.stdout.contains("skipped stdin: binary"), "{}", binary.stdout);
    // stdin beside a tree: one report.
    let both = cli.run_in(&["scan", "a", "-", "--format", "json"], Some(t[3].as_bytes()), |_| {});
    assert_eq!(locations(&both.stdout), ["a/x.env:1:7", "stdin:1:1"]);
}

#[test]
fn a_postgresql_database_is_a_target_and_its_password_is_never_shown() {
    let Some(schema) = tokenward_test_support::FreshSchema::create("twscanpg") else { return };
    let t = tokens();
    let s = schema.name();
    let password = "cli-Pg-pw-5e1f";
    let role = format!("{s}_cli");
    let setup = format!(
        "CREATE TABLE {s}.settings (key text PRIMARY KEY, value text, doc json);
         INSERT INTO {s}.settings VALUES ('ci', 'token={t0}', '{{\"k\": \"v\"}}'), ('x', 'clean', '{{\"t\": \"{t1}\"}}');
         CREATE ROLE {role} LOGIN PASSWORD '{password}';
         GRANT USAGE ON SCHEMA {s} TO {role};
         GRANT SELECT ON {s}.settings TO {role};",
        t0 = t[0],
        t1 = t[1]
    );
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let run_sql = |sql: String| {
        rt.block_on(async {
            let (client, conn) =
                tokio_postgres::connect(schema.server(), tokio_postgres::NoTls).await.unwrap();
            let driver = tokio::spawn(conn);
            let r = client.batch_execute(&sql).await;
            drop(client);
            let _ = driver.await;
            r
        })
    };
    run_sql(setup).unwrap();
    struct OnDrop<F: FnMut()>(F);
    impl<F: FnMut()> Drop for OnDrop<F> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let _role = OnDrop(|| {
        let _ = run_sql(format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"));
    });
    let server: tokio_postgres::Config = schema.server().parse().unwrap();
    let tokio_postgres::config::Host::Tcp(host) = &server.get_hosts()[0] else { panic!() };
    let (port, db) = (server.get_ports()[0], server.get_dbname().unwrap());
    let cli = Cli::new();
    let want = [format!("postgres:{s}.settings:doc:key=x"), format!("postgres:{s}.settings:value:key=ci")];
    // The key=value form, with the password in it.
    let kv = format!("pg:host={host} port={port} user={role} password={password} dbname={db}");
    let run = cli.run(&["scan", &kv, "--schema", s, "--format", "json"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(locations(&run.stdout), want, "{}", run.stdout);
    // A URL, the password from PGPASSWORD, text output.
    let url = format!("postgres://{role}@{host}:{port}/{db}");
    let text = cli.run_in(&["scan", &url, "--schema", s], None, |c| {
        c.env("PGPASSWORD", password);
    });
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert!(
        text.stdout.contains(&format!("postgres:{s}.settings:value:key=ci  github-classic")),
        "{}",
        text.stdout
    );
    // The row limit is reported; a refused password is an error without it.
    let limited = cli.run(&["scan", &kv, "--schema", s, "--max-rows", "1"]);
    assert!(limited.stdout.contains("limit"), "{}", limited.stdout);
    let wrong = "Wr0ng-pw-cli-77";
    let refused = cli.run(&["scan", &format!("postgresql://{role}:{wrong}@{host}:{port}/{db}")]);
    assert_eq!(refused.code, 2);
    assert!(refused.error_line().contains("password authentication failed"), "{}", refused.stderr);
    // Several targets: the database's error is named by its place, without the password.
    std::fs::create_dir_all(cli.path("clean")).unwrap();
    let named = cli.run(&["scan", "clean", &format!("postgres://{role}:{wrong}@{host}:{port}/{db}")]);
    assert_eq!(named.code, 2);
    assert!(
        named.error_line().contains(&format!("postgres://{role}@{host}:{port}/{db}")),
        "{}",
        named.stderr
    );
    let transcript = cli.transcript.borrow();
    let outputs: String = transcript.lines().filter(|l| !l.starts_with("$ tokenward")).collect();
    assert!(!outputs.contains(password) && !outputs.contains(wrong), "{transcript}");
}
