//! Driving the real `tokenward` binary: one store per test in a temporary directory.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASS: &str = "correct horse battery staple";

pub const POLICY: &str = r#"
[rules]
max_ttl = "30d"

[[role]]
name = "log-reader"
grants = ["s3:bucket/prod-logs/**:read"]
max_ttl = "1h"

[[role]]
name = "deployer"
grants = ["deploy:service/billing/*:release"]
max_ttl = "15m"

[[principal]]
name = "billing-api"
roles = ["log-reader"]

[[principal]]
name = "ci"
roles = ["deployer"]

[[credential]]
name = "billing-api/logs-token"
schedule = "7d"
emergency = "replace-first"
target = { kind = "tokenward-token", principal = "billing-api", purpose = "read-logs", scopes = ["s3:bucket/prod-logs/*:read"], ttl = "1h" }
"#;

/// What a command did.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Succeeded; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "stdout: {}\nstderr: {}", self.stdout, self.stderr);
        &self.stdout
    }

    /// The one line of error a failed command prints (`tokenward: …`).
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().filter(|l| l.starts_with("tokenward: ")).collect();
        assert_eq!(lines.len(), 1, "one error line, got stderr: {}", self.stderr);
        lines[0]
    }
}

/// A store in a temporary directory, and every output of every command run on it.
pub struct Cli {
    pub dir: tempfile::TempDir,
    pub transcript: std::cell::RefCell<String>,
}

impl Cli {
    pub fn new() -> Self {
        Self { dir: tempfile::tempdir().unwrap(), transcript: Default::default() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn store(&self) -> PathBuf {
        self.path("tokenward.db")
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tokenward"));
        c.current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TOKENWARD_STORE", self.store())
            .env("TOKENWARD_PASSPHRASE", PASS)
            .env("TOKENWARD_ACTOR", "alice")
            .stdin(Stdio::null());
        c
    }

    /// Runs `args` with `stdin`, recording its output in the transcript.
    pub fn run_in(&self, args: &[&str], stdin: Option<&[u8]>, configure: impl FnOnce(&mut Command)) -> Run {
        let mut c = self.command();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        configure(&mut c);
        let mut child = c.spawn().unwrap();
        if let Some(input) = stdin {
            child.stdin.take().unwrap().write_all(input).unwrap();
        }
        let r = Run::from(child.wait_with_output().unwrap());
        let mut t = self.transcript.borrow_mut();
        t.push_str(&format!("$ tokenward {}\n{}{}", args.join(" "), r.stdout, r.stderr));
        r
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_in(args, None, |_| {})
    }

    pub fn run_stdin(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_in(args, Some(stdin), |_| {})
    }

    /// `init` with the test policy.
    pub fn init(&self) {
        std::fs::write(self.path("policy.toml"), POLICY).unwrap();
        self.run(&["init", "--prefix", "acme", "--policy", "policy.toml"]).ok();
    }

    /// Issues a token; returns (token, id).
    pub fn issue(&self, principal: &str, purpose: &str, scope: &str, ttl: &str) -> (String, String) {
        let r = self.run(&[
            "issue",
            "--principal",
            principal,
            "--purpose",
            purpose,
            "--scope",
            scope,
            "--ttl",
            ttl,
            "--format",
            "json",
        ]);
        let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
        (v["token"].as_str().unwrap().to_owned(), v["id"].as_str().unwrap().to_owned())
    }

    /// A digest of every file the store is made of (to show a failed command changed nothing).
    pub fn store_digest(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(self.dir.path()).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("tokenward.db") || name.ends_with(".audit.jsonl") {
                out.push((name, std::fs::read(e.path()).unwrap()));
            }
        }
        out.sort();
        out
    }
}

/// Every file under `dir`, as bytes.
pub fn all_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Headless Chromium, if installed (`scripts/services.sh` `ensure_chromium`).
pub fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(p) = std::env::var_os("PATH")
            .and_then(|path| std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()))
        {
            return Some(p);
        }
    }
    None
}

/// Renders `html` with headless Chromium into the PNG `shot` (1140 px wide, `height` high).
pub fn screenshot(html: &Path, shot: &Path, height: u32) {
    let chromium = chromium().expect("chromium");
    let out = Command::new(chromium)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"])
        .arg(format!("--window-size=1140,{height}"))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a rendered page, not a blank one ({} bytes)", png.len());
}
