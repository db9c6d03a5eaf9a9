//! Secrets, `run`, rotation, the daemon, scans with leak response, the drill and the posture
//! report, through the real binary — and a planted-secret sweep of everything they printed and
//! wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const DB_PASSWORD: &str = "s3cr3t-Db-Passw0rd-7f9c2e41";

fn sha256_hex(bytes: &[u8]) -> String {
    let out =
        std::process::Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write as _;
    let mut child = out;
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let o = child.wait_with_output().unwrap();
    String::from_utf8(o.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

#[test]
fn secrets_go_in_by_stdin_come_out_to_pipes_and_into_a_command_environment() {
    let cli = Cli::new();
    cli.init();
    let put = cli.run_stdin(&["secret", "put", "billing/db-password"], format!("{DB_PASSWORD}\n").as_bytes());
    put.ok();
    assert!(put.stderr.contains("version 1"));
    assert!(
        cli.run_stdin(&["secret", "put", "tokenward/digest-key"], b"x").error_line().contains("store's own")
    );
    assert_eq!(cli.run_stdin(&["secret", "put", "billing/empty"], b"").code, 2);
    let list = cli.run(&["secret", "list", "--format", "json"]);
    let names: Vec<serde_json::Value> = list.ok().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(names.len(), 1, "the store's own secrets are not listed: {names:?}");
    assert_eq!(names[0]["name"], "billing/db-password");
    // `get` to a pipe: the exact value (its trailing newline was dropped on the way in).
    assert_eq!(cli.run(&["secret", "get", "billing/db-password"]).ok(), DB_PASSWORD);
    assert!(cli.run(&["secret", "get", "billing/nope"]).error_line().contains("no secret"));

    // `run`: the child sees the value in its environment (it prints a hash of it), not the
    // passphrase; nothing is written to disk.
    let files_before: Vec<_> = all_files(cli.dir.path()).into_iter().map(|(p, _)| p).collect();
    let r = cli.run(&[
        "run",
        "--secret",
        "billing/db-password=DB_PASSWORD",
        "--",
        "sh",
        "-c",
        "printf %s \"$DB_PASSWORD\" | sha256sum; echo \"pass=${TOKENWARD_PASSPHRASE:-unset}\"; exit 7",
    ]);
    assert_eq!(r.code, 7, "the command's exit status is passed on: {}", r.stderr);
    assert!(r.stdout.contains(&sha256_hex(DB_PASSWORD.as_bytes())), "{}", r.stdout);
    assert!(r.stdout.contains("pass=unset"), "the passphrase is not passed on: {}", r.stdout);
    let files_after: Vec<_> = all_files(cli.dir.path()).into_iter().map(|(p, _)| p).collect();
    let new: Vec<_> = files_after.iter().filter(|p| !files_before.contains(p)).collect();
    assert!(
        new.iter().all(|p| p.to_string_lossy().contains("-wal") || p.to_string_lossy().contains("-shm")),
        "{new:?}"
    );
    assert_eq!(cli.run(&["run", "--secret", "billing/db-password=1BAD", "--", "true"]).code, 2);
    assert_eq!(cli.run(&["run", "--secret", "billing/nope=X", "--", "true"]).code, 2);

    // Every access was audited, by name and version, never by value.
    let accesses = cli.run(&["audit", "show", "--action", "secret_access"]);
    assert!(accesses.ok().lines().count() >= 3, "{}", accesses.stdout);
    assert!(accesses.stdout.contains("secret=\"billing/db-password\""));

    // Nothing but `secret get`'s own stdout ever held the value: transcript, files, audit log.
    let transcript = cli.transcript.borrow();
    assert_eq!(transcript.matches(DB_PASSWORD).count(), 1, "only `secret get` printed it");
    for (path, bytes) in all_files(cli.dir.path()) {
        assert!(!contains(&bytes, DB_PASSWORD.as_bytes()), "{} holds the secret", path.display());
    }
}

#[test]
fn run_restarts_the_command_when_its_secret_rotates() {
    let cli = Cli::new();
    cli.init();
    cli.run_stdin(&["secret", "put", "app/api-key"], b"first-value-1111").ok();
    let mut child = cli
        .command()
        .args([
            "run",
            "--restart-on-rotate",
            "--poll",
            "100ms",
            "--secret",
            "app/api-key=API_KEY",
            "--",
            "sh",
            "-c",
            "echo \"started $(printf %s \"$API_KEY\" | sha256sum | cut -c1-16)\"; exec sleep 30",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, format!("started {}", &sha256_hex(b"first-value-1111")[..16]));
    // Another process rotates the secret (a new current version).
    cli.run_stdin(&["secret", "put", "app/api-key"], b"second-value-2222").ok();
    let deadline = Instant::now() + Duration::from_secs(15);
    let second = lines.next().unwrap().unwrap();
    assert!(Instant::now() < deadline);
    assert_eq!(second, format!("started {}", &sha256_hex(b"second-value-2222")[..16]));
    // SIGTERM to `run` stops the command and ends.
    let pid = nix_pid(&child);
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(15));
    assert!(status.is_some(), "run ended after SIGTERM");
}

fn nix_pid(child: &std::process::Child) -> String {
    child.id().to_string()
}

fn wait_bounded(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    None
}

#[test]
fn declared_credentials_rotate_by_name_when_due_and_in_an_emergency() {
    let cli = Cli::new();
    cli.init();
    let r = cli.run(&["rotate", "billing-api/logs-token"]);
    assert!(r.ok().contains("promoted version 1"), "{}", r.stdout);
    // Issue 24 §6: during the overlap nothing starts, and a script can tell (it was exit 0, ok).
    let again = cli.run(&["rotate", "billing-api/logs-token", "--format", "json"]);
    assert_eq!(again.code, 3, "{}{}", again.stdout, again.stderr);
    let v: serde_json::Value = serde_json::from_str(again.stdout.trim()).unwrap();
    assert_eq!(
        (&v["ok"], &v["status"], &v["started"]),
        (&false.into(), &"nothing_started".into(), &false.into())
    );
    let plain = cli.run(&["rotate", "billing-api/logs-token"]);
    assert!(plain.code == 3 && plain.stdout.contains("nothing started"), "{}", plain.stdout);
    let emergency = cli.run(&["rotate", "billing-api/logs-token", "--emergency", "--format", "json"]);
    let e: serde_json::Value = serde_json::from_str(emergency.ok().trim()).unwrap();
    assert_eq!(e["emergency"], true);
    let revoked = e["revoked"].as_str().unwrap().to_owned();
    let show = cli.run(&["show", &revoked, "--format", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(show.ok()).unwrap()["status"], "revoked");
    // Nothing is due right after a rotation.
    assert!(cli.run(&["rotate", "--due"]).ok().contains("0 promoted"));
    assert!(cli.run(&["rotate", "nope"]).error_line().contains("no credential nope"));
    let steps = cli.run(&["audit", "show", "--action", "rotate"]);
    assert!(steps.ok().contains("promote") && steps.stdout.contains("emergency"), "{}", steps.stdout);
}

#[test]
fn the_daemon_runs_alone_and_drains_on_sigterm() {
    let cli = Cli::new();
    cli.init();
    let mut daemon = cli
        .command()
        .args(["daemon", "--tick", "100ms"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(daemon.stderr.take().unwrap()).lines();
    let first = err.next().unwrap().unwrap();
    assert!(first.contains("1 credential(s) under rotation"), "{first}");
    // A second daemon on the same store is refused.
    let second = cli.run(&["daemon"]);
    assert_eq!(second.code, 2);
    assert!(second.error_line().contains("another tokenward daemon"), "{}", second.stderr);
    // The daemon's scheduler rotated the never-rotated credential; other commands run beside it
    // and append to the same audit chain.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !cli.run(&["secret", "list"]).stdout.contains("billing-api/logs-token")
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(cli.run(&["secret", "list"]).ok().contains("billing-api/logs-token  v1"));
    cli.issue("ci", "release", "deploy:service/billing/api:release", "10m");
    std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    let status = wait_bounded(&mut daemon, Duration::from_secs(20)).expect("the daemon stops after SIGTERM");
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = err.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    assert!(cli.run(&["audit", "verify"]).ok().contains("verified"));
}

#[test]
fn scans_gate_ci_and_revoke_our_leaked_tokens() {
    let cli = Cli::new();
    cli.init();
    let (token, id) = cli.issue("billing-api", "leaky", "s3:bucket/prod-logs/a/*:read", "30m");
    std::fs::create_dir_all(cli.path("repo/config")).unwrap();
    // Beside our token, a generic secret (an unquoted `.env` value under a secret's name).
    let generic = "Vq7Lr2Xw9Tb4KpN8mYcZ3h";
    std::fs::write(cli.path("repo/config/app.env"), format!("LOGS_TOKEN={token}\nAPI_SECRET={generic}\n"))
        .unwrap();
    std::fs::write(cli.path("repo/clean.rs"), "fn main() {}\n").unwrap();
    // Findings: exit 1; JSON lines and SARIF hold the redacted form only. Generic secrets are
    // found by default, at their value's column; `--no-generic` turns them off.
    let text = cli.run(&["scan", "repo"]);
    assert_eq!(text.code, 1, "{}", text.stderr);
    assert!(
        text.stdout.contains("config/app.env:1:12")
            && text.stdout.contains("tokenward")
            && text.stdout.contains("config/app.env:2:12  generic-assignment  low"),
        "{}",
        text.stdout
    );
    let strict = cli.run(&["scan", "repo", "--no-generic", "--format", "json"]);
    assert_eq!(strict.stdout.matches("\"type\":\"finding\"").count(), 1, "{}", strict.stdout);
    assert_eq!(cli.run(&["scan", "repo", "--generic", "--format", "json"]).stdout, {
        cli.run(&["scan", "repo", "--format", "json"]).stdout
    });
    let sarif = cli.run(&["scan", "repo", "--format", "sarif"]);
    assert_eq!(sarif.code, 1);
    let log: serde_json::Value = serde_json::from_str(&sarif.stdout).unwrap();
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["results"].as_array().unwrap().len(), 2);
    let root = run["originalUriBaseIds"]["%SRCROOT%"]["uri"].as_str().unwrap();
    assert!(root.starts_with("file:///") && root.ends_with("/repo/"), "{root}");
    for r in run["results"].as_array().unwrap() {
        let at = &r["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(
            (at["uri"].as_str(), at["uriBaseId"].as_str()),
            (Some("config/app.env"), Some("%SRCROOT%"))
        );
        let rule = &run["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize];
        assert_eq!(rule["id"], r["ruleId"]);
    }
    // A baseline suppresses what it holds: exit 0.
    cli.run(&["scan", "repo", "--write-baseline", "baseline.json", "--no-progress"]);
    assert_eq!(cli.run(&["scan", "repo", "--baseline", "baseline.json"]).code, 0);
    // Clean tree: 0. Missing path or a broken repository: 2.
    std::fs::create_dir_all(cli.path("clean")).unwrap();
    assert_eq!(cli.run(&["scan", "clean"]).code, 0);
    assert_eq!(cli.run(&["scan", "git:clean"]).code, 2);
    // --revoke: ours and active, so revoked at once; the token is denied afterwards.
    let revoked = cli.run(&["scan", "repo", "--revoke", "--format", "json"]);
    assert_eq!(revoked.code, 1);
    assert!(revoked.stderr.contains(&format!("token {id} revoked")), "{}", revoked.stderr);
    let v = cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/a/x:read"], token.as_bytes());
    assert!(v.stderr.contains("revoked"), "{}", v.stderr);
    let findings = cli.run(&["audit", "show", "--action", "scan_finding"]);
    assert!(findings.ok().contains("config/app.env"), "{}", findings.stdout);
    // A `# tokenward:allow` comment (or a baseline entry) committed beside a live token of ours
    // quiets the report, never the revocation: revoked all the same, and said so (exit 1).
    let (hidden, hidden_id) = cli.issue("billing-api", "hidden", "s3:bucket/prod-logs/a/*:read", "30m");
    std::fs::create_dir_all(cli.path("sneaky")).unwrap();
    std::fs::write(
        cli.path("sneaky/fixture.rs"),
        format!("const T: &str = \"{hidden}\"; // tokenward:allow\n"),
    )
    .unwrap();
    assert_eq!(cli.run(&["scan", "sneaky"]).code, 0, "not reported");
    let overruled = cli.run(&["scan", "sneaky", "--revoke"]);
    assert_eq!(overruled.code, 1, "{}", overruled.stderr);
    assert!(
        overruled.stderr.contains(&format!("fixture.rs:1:18: token {hidden_id} revoked"))
            && overruled.stderr.contains("in spite of the allow comment"),
        "{}",
        overruled.stderr
    );
    let v = cli.run_stdin(&["verify", "--scope", "s3:bucket/prod-logs/a/x:read"], hidden.as_bytes());
    assert!(v.stderr.contains("revoked"), "{}", v.stderr);
    // Only the issue's own stdout and the planted file hold the token.
    let transcript = cli.transcript.borrow();
    let secret = &token[token.len() - 30..token.len() - 6];
    assert_eq!(transcript.matches(secret).count(), 1);
    assert!(!transcript.contains(&generic[..18]), "the generic secret is in no output");
    assert!(!contains(&std::fs::read(cli.path("tokenward.audit.jsonl")).unwrap(), secret.as_bytes()));
}

#[test]
fn the_drill_measures_the_risk_window_and_is_audited() {
    let cli = Cli::new();
    cli.init();
    let r =
        cli.run(&["drill", "--repeat", "3", "--format", "json", "--dir", "drill", "--html", "drill.html"]);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(v["summary"]["runs"], 3);
    assert_eq!(v["summary"]["leaked_tokens_denied"], true);
    let p50 = v["summary"]["risk_window_ms"]["p50"].as_f64().unwrap();
    assert!(p50 > 0.0);
    eprintln!(
        "drill risk window p50 {p50:.1} ms, max {:.1} ms",
        v["summary"]["risk_window_ms"]["max"].as_f64().unwrap()
    );
    for run in v["runs"].as_array().unwrap() {
        assert_eq!(run["found_in"].as_array().unwrap().len(), 2, "found in the tree and in the commit");
        assert_ne!(run["leaked_token"], run["replacement"]);
    }
    assert!(std::fs::read_to_string(cli.path("drill.html")).unwrap().contains("risk window"));
    // On a declared credential of the store itself (staging): audited as a drill there.
    let staged = cli.run(&["drill", "--credential", "billing-api/logs-token"]);
    assert!(staged.ok().contains("risk window"), "{}", staged.stdout);
    let drills = cli.run(&["audit", "show", "--action", "drill"]);
    assert!(drills.ok().contains("drill(finished)"), "{}", drills.stdout);
}

#[test]
fn the_drill_runs_the_declared_emergency_order() {
    let cli = Cli::new();
    cli.init();
    let mut failures = Vec::new();
    for order in ["revoke-first", "replace-first"] {
        let r = cli.run(&[
            "drill",
            "--emergency",
            order,
            "--format",
            "json",
            "--dir",
            order,
            "--html",
            "drill.html",
        ]);
        let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
        assert_eq!(v["drill"]["emergency_order"], order.replace('-', "_"));
        assert_eq!(v["summary"]["leaked_tokens_denied"], true);
        let run = &v["runs"][0];
        let (window, pipeline) =
            (run["risk_window_ms"].as_f64().unwrap(), run["pipeline_ms"].as_f64().unwrap());
        assert!(window > 0.0 && pipeline > 0.0);
        assert!(run["dead_after_found_ms"].as_f64().unwrap() <= window, "{run}");
        failures.push(v["summary"]["consumer_failures"].as_u64().unwrap());
        let page = std::fs::read_to_string(cli.path("drill.html")).unwrap();
        assert!(
            page.contains("drill/orders-api-token") && page.contains(&order.to_string()),
            "store, credential, order"
        );
    }
    // Replace-first: the replacement is current before the leaked token is refused.
    assert_eq!(failures[1], 0, "replace-first refuses no consumer call");
    // A declared credential runs its declared order (billing-api/logs-token: replace-first).
    let staged = cli.run(&["drill", "--credential", "billing-api/logs-token", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(staged.ok()).unwrap();
    assert_eq!(v["drill"]["emergency_order"], "replace_first");
    assert_eq!(v["drill"]["credential"], "billing-api/logs-token");
    assert_eq!(
        cli.run(&["drill", "--credential", "billing-api/logs-token", "--emergency", "revoke-first"]).code,
        2
    );
    // The page in a real browser (kept when TOKENWARD_DRILL_SCREENSHOT names a path).
    if chromium().is_some() {
        let shot =
            std::env::var_os("TOKENWARD_DRILL_SCREENSHOT").map_or_else(|| cli.path("drill.png"), Into::into);
        screenshot(&cli.path("drill.html"), std::path::Path::new(&shot), 700);
    }
}

#[test]
fn sigterm_as_the_daemon_starts_its_first_rotation_leaves_a_consistent_store() {
    let cli = Cli::new();
    cli.init();
    for _ in 0..3 {
        let mut daemon =
            cli.command().args(["daemon"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let mut err = BufReader::new(daemon.stderr.take().unwrap()).lines();
        let _ = err.next();
        // At once: the scheduler is starting the never-rotated credential's first rotation.
        std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
        let status = wait_bounded(&mut daemon, Duration::from_secs(20)).expect("stops after SIGTERM");
        assert!(status.success(), "{status:?}");
    }
    // Whatever step it reached, the rotation completes (or resumes) and the log verifies.
    // (Promoted now, or — the daemon finished it — nothing to start during the overlap: exit 3.)
    let r = cli.run(&["rotate", "billing-api/logs-token", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert!(
        (r.code == 0 && v["status"] == "promoted") || (r.code == 3 && v["status"] == "nothing_started"),
        "{v} ({})",
        r.code
    );
    assert!(cli.run(&["secret", "list"]).ok().contains("billing-api/logs-token"));
    assert!(cli.run(&["audit", "verify"]).ok().contains("verified"));
    let active = cli.run(&["list", "--principal", "billing-api", "--format", "json"]);
    let n = active.ok().lines().filter(|l| l.contains("\"read-logs\"")).count();
    assert!((1..=2).contains(&n), "the credential's token, and at most its predecessor in overlap: {n}");
}

/// Progress is drawn on a terminal (a pseudo-terminal from util-linux's `script`) and never in a
/// pipe or with `--quiet`: scans, `rotate --due` and the report.
#[test]
fn progress_shows_on_a_terminal_only() {
    if std::process::Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have util-linux's script");
        eprintln!("script(1) is not installed: the terminal half is skipped here");
        return;
    }
    let cli = Cli::new();
    cli.init();
    std::fs::create_dir_all(cli.path("tree")).unwrap();
    for i in 0..200 {
        std::fs::write(cli.path(&format!("tree/f{i}.txt")), "x = 1\n".repeat(2000)).unwrap();
    }
    let bin = env!("CARGO_BIN_EXE_tokenward");
    // The binary under a pseudo-terminal, with the test store's environment.
    let tty = |args: &str| -> String {
        let mut c = cli.command();
        let c = c.env("TERM", "xterm");
        let out = std::process::Command::new("script")
            .current_dir(cli.dir.path())
            .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .args(["-qec", &format!("{bin} {args}"), "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let scan = tty("scan tree");
    assert!(scan.contains("scanned") && scan.contains("file(s)"), "progress on a terminal: {scan:?}");
    assert!(!tty("-q scan tree").contains("scanned "), "--quiet hides progress");
    let piped = cli.run(&["scan", "tree"]);
    assert!(!piped.stderr.contains("scanned ") && !piped.stderr.contains('\r'), "{:?}", piped.stderr);
    let due = tty("rotate --due");
    assert!(due.contains("rotating due credentials"), "{due:?}");
    assert!(!cli.run(&["rotate", "--due"]).stderr.contains("rotating due"), "no progress in a pipe");
    assert!(!cli.run(&["report"]).stderr.contains("reading"), "no progress in a pipe");
}

/// The store's own secrets (`token_store::reserved`: the record key, the digest key) are no
/// user's: `secret get` and `run` refuse their names with a clear error, print nothing of them
/// and start no child with them.
#[test]
fn the_store_s_own_secrets_are_never_read_out() {
    let cli = Cli::new();
    cli.init();
    for name in ["tokenward/record-key", "tokenward/digest-key"] {
        let r = cli.run(&["secret", "get", name]);
        assert_eq!(r.code, 2, "secret get {name} read the store's own key ({} bytes out)", r.stdout.len());
        assert!(r.stdout.is_empty(), "secret get {name} printed {} bytes", r.stdout.len());
        assert!(r.error_line().contains("are the store's own"), "{}", r.stderr);
        let r =
            cli.run(&["run", "--secret", &format!("{name}=K"), "--", "sh", "-c", "printf 'ran %s' \"$K\""]);
        assert_eq!(r.code, 2, "run {name} started the child ({} bytes out)", r.stdout.len());
        assert!(!r.stdout.contains("ran"), "the child ran with {name}");
        assert!(r.error_line().contains("are the store's own"), "{}", r.stderr);
    }
}

/// `tokenward … | head`: output to a pipe whose reader has gone is the end of the output, not a
/// panic or an error — nothing on stderr, the command's own status (0 here).
#[test]
fn a_closed_pipe_ends_the_output_quietly() {
    let cli = Cli::new();
    cli.init();
    for purpose in ["a", "b", "c"] {
        cli.issue("billing-api", purpose, "s3:bucket/prod-logs/a:read", "30m");
    }
    for args in [
        &["completions", "bash"][..],
        &["audit", "show"],
        &["audit", "show", "--format", "json"],
        &["audit", "export"],
        &["list", "--format", "json"],
        &["list"],
        &["report"],
    ] {
        let mut c = cli.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        // The reader goes before the first line is written.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        // Stderr says what it says when stdout is read to the end (a count, say), nothing more.
        let open = cli.command().args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
        let code = open.status.code();
        let (closed, open) = (String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&open.stderr));
        let strip = |s: &str| {
            s.lines().filter(|l| !l.starts_with("exported ")).map(str::to_owned).collect::<Vec<_>>()
        };
        assert_eq!(strip(&closed), strip(&open), "tokenward {}", args.join(" "));
        // The command's own status (`report` says 1 for what it found).
        assert!(code == Some(0) || args[0] == "report", "tokenward {}: {code:?}", args.join(" "));
        assert_eq!(out.status.code(), code, "tokenward {}: {closed}", args.join(" "));
    }
}

/// In its overlap, `rotate` says who still uses the previous token: its last use, and the sources
/// the audit log saw presenting it.
#[test]
fn rotate_names_the_sources_still_presenting_the_previous_token() {
    let cli = Cli::new();
    let policy = POLICY
        .replace("emergency = \"replace-first\"\n", "emergency = \"replace-first\"\noverlap = \"4s\"\n");
    assert_ne!(policy, POLICY);
    std::fs::write(cli.path("policy.toml"), policy).unwrap();
    cli.run(&["init", "--prefix", "acme", "--policy", "policy.toml"]).ok();
    assert!(cli.run(&["rotate", "billing-api/logs-token"]).ok().contains("promoted version 1"));
    let first: serde_json::Value =
        serde_json::from_str(cli.run(&["secret", "get", "billing-api/logs-token"]).ok()).unwrap();
    std::thread::sleep(Duration::from_millis(4100));
    assert!(cli.run(&["rotate", "billing-api/logs-token"]).ok().contains("promoted version 2"));
    // A consumer at 10.0.0.7 still presents the first token, in its overlap.
    let token = first["secret"].as_str().unwrap();
    let v = cli.run_stdin(
        &["verify", "--scope", "s3:bucket/prod-logs/app.log:read", "--source", "10.0.0.7"],
        token.as_bytes(),
    );
    assert_eq!(v.code, 0, "{}", v.stderr);
    let r = cli.run(&["rotate", "billing-api/logs-token", "--format", "json"]);
    assert_eq!(r.code, 3, "in the overlap: {}{}", r.stdout, r.stderr);
    let r: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert_eq!(r["previous"]["handle"], first["handle"]);
    assert_eq!(r["previous"]["presented_by"][0]["source"], "10.0.0.7", "{r}");
    let text = cli.run(&["rotate", "billing-api/logs-token"]);
    assert!(text.stdout.contains("presented from 10.0.0.7"), "{}", text.stdout);
    assert!(!text.stdout.contains(token) && !r.to_string().contains(token));
}
