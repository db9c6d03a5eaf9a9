//! Files and processes: every file Tokenward writes is its owner's alone whatever the umask; a
//! weak passphrase is refused at `init`; the commands `run` and alert hooks start get their secrets
//! and no key; `run` passes signals on and its command dies with it; `secret put` on a terminal
//! does not echo the value; a file that cannot be read or written is named in the error.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const BIN: &str = env!("CARGO_BIN_EXE_tokenward");

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `tokenward ARGS` under `umask 022` (the common default), with the test store's environment.
fn under_umask_022(cli: &Cli, args: &[&str]) -> Command {
    let mut c = cli.command();
    c.args(args);
    let mut sh = Command::new("sh");
    sh.current_dir(cli.dir.path())
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(["-c", "umask 022; exec \"$0\" \"$@\"", BIN])
        .args(c.get_args())
        .stdin(Stdio::null());
    sh
}

fn ok_under_umask_022(cli: &Cli, args: &[&str], stdin: &[u8]) -> String {
    let mut c = under_umask_022(cli, args);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // 0, or 1 for a report's or a scan's findings; 2 is an error.
    assert!(matches!(out.status.code(), Some(0 | 1)), "{args:?}: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every file and directory under `dir` that is not under a `.git` (git's own, in the drill's
/// 0700 directory) nor one of `skip` (the test's own inputs).
fn everything_under(dir: &Path, skip: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if skip.iter().any(|s| rel == *s || rel.starts_with(&format!("{s}/"))) || rel.ends_with(".git") {
                continue;
            }
            if p.is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn every_file_tokenward_writes_is_its_owners_alone_under_umask_022() {
    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    std::fs::create_dir_all(cli.path("tree")).unwrap();
    std::fs::write(cli.path("tree/app.env"), "X=1\n").unwrap();
    // The umask holds in the wrapper: a file it makes is 0644.
    Command::new("sh").current_dir(cli.dir.path()).args(["-c", "umask 022; : > control"]).status().unwrap();
    assert_eq!(mode(&cli.path("control")), 0o644, "the wrapper's umask is 022");
    std::fs::remove_file(cli.path("control")).unwrap();

    ok_under_umask_022(&cli, &["init", "--prefix", "acme", "--policy", "policy.toml"], b"");
    ok_under_umask_022(
        &cli,
        &[
            "issue",
            "--principal",
            "billing-api",
            "--purpose",
            "p",
            "--scope",
            "s3:bucket/prod-logs/a:read",
            "--ttl",
            "30m",
        ],
        b"",
    );
    ok_under_umask_022(&cli, &["secret", "put", "app/db"], b"a-secret-value-0123");
    ok_under_umask_022(&cli, &["audit", "checkpoint", "--out", "checkpoint.json"], b"");
    ok_under_umask_022(&cli, &["audit", "tree-head", "--out", "head.note"], b"");
    ok_under_umask_022(&cli, &["audit", "export", "--out", "export.jsonl"], b"");
    ok_under_umask_022(&cli, &["report", "--html", "posture.html"], b"");
    ok_under_umask_022(
        &cli,
        &["scan", "tree", "--write-baseline", "baseline.json", "--out", "findings.txt"],
        b"",
    );
    ok_under_umask_022(&cli, &["drill", "--dir", "drill/here", "--html", "drill.html"], b"");

    // The daemon: its lock, its report, and the store's WAL and shared memory while it is open.
    let mut daemon =
        under_umask_022(&cli, &["daemon", "--report", "daemon.html", "--report-every", "1s", "--tick", "1s"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
    let expected = [
        "tokenward.db",
        "tokenward.db-wal",
        "tokenward.db-shm",
        "tokenward.db.daemon.lock",
        "tokenward.audit.jsonl",
        "checkpoint.json",
        "head.note",
        "export.jsonl",
        "posture.html",
        "baseline.json",
        "findings.txt",
        "drill",
        "drill/here",
        "drill.html",
        "daemon.html",
    ];
    wait_for("the daemon's files", Duration::from_secs(30), || expected.iter().all(|f| cli.path(f).exists()));
    // Stated while the daemon runs (the WAL and shared memory go when the store closes).
    let found: Vec<(String, u32, bool)> = everything_under(cli.dir.path(), &["policy.toml", "tree"])
        .iter()
        .map(|p| (p.strip_prefix(cli.dir.path()).unwrap().display().to_string(), mode(p), p.is_dir()))
        .collect();
    std::process::Command::new("kill").args(["-TERM", &daemon.id().to_string()]).status().unwrap();
    daemon.wait().unwrap();

    assert!(found.len() > expected.len(), "the drill's tree and repository are there too: {found:?}");
    let open: Vec<String> =
        found.iter().filter(|(_, m, _)| m & 0o077 != 0).map(|(p, m, _)| format!("{p} {m:o}")).collect();
    assert!(open.is_empty(), "open to others under umask 022: {open:?}");
    for (path, mode, dir) in &found {
        assert_eq!(*mode, if *dir { 0o700 } else { 0o600 }, "{path}");
    }
}

#[test]
fn a_file_that_cannot_be_read_or_written_is_named() {
    let cli = Cli::new();
    let missing = cli.path("no-such-dir/policy.toml");
    let shown = missing.display().to_string();
    let r = cli.run(&["policy", "check", &shown]);
    assert_eq!(r.code, 2);
    let line = r.error_line();
    assert!(line.starts_with(&format!("tokenward: cannot read {shown}: ")), "{line}");
    assert!(line.contains("No such file"), "{line}");

    std::fs::write(cli.path("clean.txt"), "nothing here\n").unwrap();
    let rules = cli.path("no-such-rules.toml").display().to_string();
    let r = cli.run(&["scan", "clean.txt", "--rules", &rules]);
    assert!(r.error_line().starts_with(&format!("tokenward: cannot read {rules}: ")), "{}", r.stderr);
    let out = cli.path("no-such-dir/report.json").display().to_string();
    let r = cli.run(&["scan", "clean.txt", "--out", &out]);
    assert!(r.error_line().starts_with(&format!("tokenward: cannot create {out}: ")), "{}", r.stderr);
}

#[test]
fn opening_a_store_others_can_read_warns() {
    let cli = Cli::new();
    cli.init();
    let quiet = cli.run(&["list"]);
    quiet.ok();
    assert!(!quiet.stderr.contains("open to other users"), "{}", quiet.stderr);
    std::fs::set_permissions(cli.store(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = cli.run(&["list"]);
    warned.ok();
    assert!(
        warned.stderr.contains("WARN") && warned.stderr.contains("open to other users (mode 0644)"),
        "{}",
        warned.stderr
    );
    assert!(warned.stderr.contains("chmod 600"), "{}", warned.stderr);
}

#[test]
fn init_refuses_a_trivially_weak_passphrase() {
    for weak in ["a", "aaaaaaaaaaaaaaaa", "123456789012", "Password1234"] {
        let cli = Cli::new();
        let r = cli.run_in(&["init", "--prefix", "acme"], None, |c| {
            c.env("TOKENWARD_PASSPHRASE", weak);
        });
        assert_eq!(r.code, 2, "{weak:?}: {}", r.stderr);
        assert!(r.error_line().contains("weak passphrase"), "{}", r.stderr);
        assert!(!cli.store().exists(), "no store is made under {weak:?}");
    }
    // The test suite's own passphrase passes.
    Cli::new().init();
}

/// Variables that unlock a store, its KEK or its database, set in the parent; the values are
/// recognisable in a dump of the child's environment.
fn key_variables(cli: &Cli) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("TOKENWARD_PASSPHRASE", PASS.to_owned()),
        ("TOKENWARD_KEY_FILE", cli.path("key.hex").display().to_string()),
        ("TOKENWARD_AUDIT_LOG", cli.path("tokenward.audit.jsonl").display().to_string()),
        ("TOKENWARD_SIGNING_KEY", "leak-tokenward-signing".to_owned()),
        ("BAO_TOKEN", "leak-bao-token".to_owned()),
        ("VAULT_TOKEN", "leak-vault-token".to_owned()),
        ("AWS_ACCESS_KEY_ID", "AKIALEAKLEAKLEAKLEAK".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "leak-aws-secret-access-key".to_owned()),
        ("AWS_SESSION_TOKEN", "leak-aws-session-token".to_owned()),
        ("AWS_PROFILE", "leak-aws-profile".to_owned()),
    ];
    // With PostgreSQL support the parent would connect to it; without, it only sits there.
    if !cfg!(feature = "postgres") {
        v.push(("TOKENWARD_DATABASE_URL", "postgres://tw:leak-db-password@db.invalid/tw".to_owned()));
    }
    v
}

fn with_keys(cli: &Cli, c: &mut Command) {
    for (k, v) in key_variables(cli) {
        c.env(k, v);
    }
    c.env("HARMLESS", "kept");
}

#[test]
fn run_and_alert_hooks_hand_on_their_secrets_and_no_key() {
    let cli = Cli::new();
    std::fs::write(cli.path("policy.toml"), POLICY).unwrap();
    // A store under a key file, so that every key variable can be set while `run` opens it.
    cli.run(&["init", "--prefix", "acme", "--policy", "policy.toml", "--new-key-file", "key.hex"]).ok();
    let keyed = |args: &[&str], stdin: Option<&[u8]>| cli.run_in(args, stdin, |c| with_keys(&cli, c));
    keyed(&["secret", "put", "app/mine"], Some(b"mine-value-1111")).ok();
    keyed(&["secret", "put", "other/secret"], Some(b"another-services-secret-2222")).ok();

    // The attack: a command given one secret asks tokenward for another.
    let steal = format!("env > child.env; {BIN} secret get other/secret > stolen.txt 2> stolen.err");
    let r = keyed(&["run", "--secret", "app/mine=MINE", "--", "sh", "-c", &steal], None);
    assert_eq!(r.code, 2, "the command's `secret get` failed: {}", r.stderr);
    let stolen = std::fs::read_to_string(cli.path("stolen.txt")).unwrap();
    assert!(stolen.is_empty(), "another service's secret reached the command: {stolen:?}");
    let why = std::fs::read_to_string(cli.path("stolen.err")).unwrap();
    assert!(why.contains("no key"), "{why}");
    let env = std::fs::read_to_string(cli.path("child.env")).unwrap();
    assert!(env.lines().any(|l| l == "MINE=mine-value-1111"), "its own secret: {env}");
    assert!(env.lines().any(|l| l == "HARMLESS=kept"), "the rest of the environment: {env}");
    for (k, v) in key_variables(&cli) {
        assert!(!env.contains(k) && !env.contains(&v), "{k} reached the command:\n{env}");
    }
    assert!(!env.contains("TOKENWARD_"), "{env}");

    // `--pass-env` hands one on, by name, and only that one.
    let r = keyed(
        &[
            "run",
            "--pass-env",
            "AWS_PROFILE",
            "--secret",
            "app/mine=MINE",
            "--",
            "sh",
            "-c",
            "env > passed.env",
        ],
        None,
    );
    r.ok();
    let passed = std::fs::read_to_string(cli.path("passed.env")).unwrap();
    assert!(passed.lines().any(|l| l == "AWS_PROFILE=leak-aws-profile"), "{passed}");
    assert!(!passed.contains("AWS_SECRET_ACCESS_KEY") && !passed.contains("TOKENWARD_KEY_FILE"), "{passed}");
    let r = keyed(&["run", "--pass-env", "HOME", "--secret", "app/mine=MINE", "--", "true"], None);
    assert_eq!(r.code, 2);
    assert!(r.error_line().contains("--pass-env HOME"), "{}", r.stderr);

    // An alert hook (a declared credential never rotated is overdue) gets no key either.
    let r = keyed(&["alerts", "check", "--alert-command", "env > hook.env"], None);
    assert_eq!(r.code, 1, "an alert: {}", r.stderr);
    let hooked = std::fs::read_to_string(cli.path("hook.env")).unwrap();
    assert!(hooked.lines().any(|l| l == "HARMLESS=kept"), "{hooked}");
    for (k, v) in key_variables(&cli) {
        assert!(!hooked.contains(k) && !hooked.contains(&v), "{k} reached the hook:\n{hooked}");
    }

    // Nor does a git hook the drill's commit runs (a global core.hooksPath).
    std::fs::create_dir_all(cli.path("hooks")).unwrap();
    std::fs::write(
        cli.path("hooks/pre-commit"),
        format!("#!/bin/sh\nenv > {}\n", cli.path("git.env").display()),
    )
    .unwrap();
    std::fs::set_permissions(cli.path("hooks/pre-commit"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(cli.path("gitconfig"), format!("[core]\n\thooksPath = {}\n", cli.path("hooks").display()))
        .unwrap();
    let r = cli.run_in(&["drill", "--dir", "drill"], None, |c| {
        with_keys(&cli, c);
        c.env("GIT_CONFIG_GLOBAL", cli.path("gitconfig"));
    });
    r.ok();
    let git = std::fs::read_to_string(cli.path("git.env")).unwrap();
    assert!(git.lines().any(|l| l == "HARMLESS=kept"), "{git}");
    for (k, v) in key_variables(&cli) {
        assert!(!git.contains(k) && !git.contains(&v), "{k} reached a git hook:\n{git}");
    }
}

/// The state letter of `/proc/PID/stat` (`None`: no such process).
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

fn signal(pid: u32, name: &str) {
    assert!(Command::new("kill").args([&format!("-{name}"), &pid.to_string()]).status().unwrap().success());
}

#[test]
fn run_passes_signals_on_to_its_command() {
    let cli = Cli::new();
    cli.init();
    cli.run_stdin(&["secret", "put", "app/mine"], b"mine-value-1111").ok();
    let script = "for s in HUP QUIT USR1 USR2 WINCH; do trap \"echo $s >> signals.log\" $s; done; \
                  trap 'echo TERM >> signals.log; exit 7' TERM; \
                  : > ready; while :; do sleep 0.05; done";
    let mut run = cli
        .command()
        .args(["run", "--secret", "app/mine=MINE", "--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the command to start", Duration::from_secs(20), || cli.path("ready").exists());
    let log = || std::fs::read_to_string(cli.path("signals.log")).unwrap_or_default();
    for name in ["HUP", "QUIT", "USR1", "USR2", "WINCH"] {
        signal(run.id(), name);
        wait_for(&format!("SIG{name} to reach the command"), Duration::from_secs(10), || {
            log().lines().any(|l| l == name)
        });
        assert!(run.try_wait().unwrap().is_none(), "`run` goes on after SIG{name}");
    }
    // SIGTERM is passed on, and `run` ends with the command's status.
    signal(run.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "run did not end after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(log().lines().collect::<Vec<_>>(), ["HUP", "QUIT", "USR1", "USR2", "WINCH", "TERM"]);
    assert_eq!(status.code(), Some(7), "the command's exit status");
}

#[test]
fn the_command_dies_with_a_killed_run() {
    let cli = Cli::new();
    cli.init();
    cli.run_stdin(&["secret", "put", "app/mine"], b"mine-value-1111").ok();
    // The command ignores SIGTERM and SIGHUP: only SIGKILL ends it.
    let script = "trap '' TERM HUP INT; echo $$ > child.pid; while :; do sleep 0.05; done";
    let mut run = cli
        .command()
        .args(["run", "--secret", "app/mine=MINE", "--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid_file = cli.path("child.pid");
    wait_for("the command to start", Duration::from_secs(20), || {
        std::fs::read_to_string(&pid_file).is_ok_and(|s| s.ends_with('\n'))
    });
    let child: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    assert!(matches!(proc_state(child), Some(s) if s != 'Z'), "the command runs");
    signal(run.id(), "KILL");
    run.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while matches!(proc_state(child), Some(s) if s != 'Z') {
        if Instant::now() > deadline {
            signal(child, "KILL");
            panic!("the command outlived `run` killed with SIGKILL");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn secret_put_on_a_terminal_does_not_echo_the_value() {
    if Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI must have util-linux's script");
        eprintln!("script(1) is not installed: skipped here");
        return;
    }
    const VALUE: &str = "typed-on-the-terminal-7c41e9";
    let cli = Cli::new();
    cli.init();
    // `secret put` under a pseudo-terminal; the value typed once it has asked for it.
    let c = cli.command();
    let mut tty = Command::new("script")
        .current_dir(cli.dir.path())
        .env_clear()
        .envs(c.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("TERM", "dumb")
        .args(["-qec", &format!("{BIN} secret put app/typed"), "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = tty.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut screen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&screen).contains("not echoed") {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no prompt: {:?}", String::from_utf8_lossy(&screen));
        if let Ok(bytes) = rx.recv_timeout(left) {
            screen.extend(bytes);
        }
    }
    // The prompt is written just before the echo is turned off: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let mut input = tty.stdin.take().unwrap();
    input.write_all(format!("{VALUE}\n").as_bytes()).unwrap();
    input.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let _ = input.write_all(b"\x04");
    let _ = input.flush();
    let deadline = Instant::now() + Duration::from_secs(20);
    while tty.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "secret put did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(input);
    reader.join().unwrap();
    screen.extend(rx.try_iter().flatten());
    let screen = String::from_utf8_lossy(&screen).into_owned();
    assert!(screen.contains("sealed app/typed"), "{screen:?}");
    assert!(!screen.contains(VALUE), "the typed value was echoed: {screen:?}");
    // And it is what was sealed.
    let got = cli.run(&["secret", "get", "app/typed"]);
    assert_eq!(got.ok(), VALUE);
}
