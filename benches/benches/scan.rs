//! token-scan beside its floors and peers, in one run, on a generated corpus of realistic source
//! files with planted secrets and near-miss decoys (`tokenward_test_support::corpus::write_corpus`, fixed
//! seed; `TOKENWARD_SCAN_MIB` sets its size, 200 MiB by default; generated once under
//! `target/`):
//! - floors: `cat` of every file, and ripgrep searching the same literal anchors token-scan's
//!   prefilter uses;
//! - token-scan (this binary, re-run as a child so its peak RSS is its own);
//! - peers found on `PATH` or in `TOKENWARD_PEERS` (a `:`-separated list of directories):
//!   kingfisher (PyPI `kingfisher-bin`), ripsecrets (`cargo install ripsecrets`), gitleaks,
//!   detect-secrets (only on corpora ≤ 20 MiB: it runs at well under 1 MiB/s).
//!
//! For each: wall time, MiB/s, peak RSS (`/usr/bin/time -v`), recall of the planted secrets (a
//! planted line reported, by path and line) and how many decoy lines it reported.
//!
//! Then a real repository's full history (`TOKENWARD_BENCH_REPO`, e.g. a `git clone --mirror` of
//! gitleaks: every commit reachable from every ref), token-scan in default mode beside kingfisher
//! `--git-history full --no-validate`: wall (median of 3 warm runs), peak RSS, findings per rule
//! kind, and the findings of the kinds both support matched by value (compared in memory, never
//! printed): both, only kingfisher, only token-scan.
//!
//! `cargo bench -p tokenward-bench --bench scan` (all three sections), or `… --bench scan -- repo`
//! (only those whose name holds the argument: `corpus`, `git`, `repo`). The real repository:
//! `TOKENWARD_BENCH_REPO=/tmp/gitleaks cargo bench -p tokenward-bench --bench scan -- repo`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use tokenward::scan::{RuleSet, Scanner, TreeOptions};

const CHILD: &str = "TOKENWARD_SCAN_CHILD";
/// The same, with the generic detector off (what the default was before it was on).
const CHILD_NO_GENERIC: &str = "TOKENWARD_SCAN_CHILD_NO_GENERIC";
const GIT_CHILD: &str = "TOKENWARD_SCAN_GIT_CHILD";

fn main() {
    if let Ok(repo) = std::env::var(GIT_CHILD) {
        let report = Scanner::new()
            .unwrap()
            .scan_git(Path::new(&repo), &tokenward::scan::GitOptions::default())
            .unwrap();
        for f in &report.findings {
            println!("{}\t{}\t{}", f.location.path(), f.location, f.rule);
        }
        eprintln!(
            "token-scan git: {} findings, {} blobs, {} bytes",
            report.findings.len(),
            report.files,
            report.bytes
        );
        return;
    }
    let child = std::env::var(CHILD).map(|d| (d, true));
    if let Ok((dir, generic)) = child.or_else(|_| std::env::var(CHILD_NO_GENERIC).map(|d| (d, false))) {
        // The measured scan: the whole tree, findings as `path\tline` lines; default mode (the
        // generic detector on) unless the child is the `--no-generic` one.
        let scanner = Scanner::builder().rules(RuleSet::builtin().with_generic(generic)).build().unwrap();
        let report = scanner.scan_tree(Path::new(&dir), &TreeOptions::default()).unwrap();
        let mut out = String::new();
        for f in &report.findings {
            out.push_str(&format!("{}\t{}\t{}\n", f.location.path(), f.location.line(), f.rule));
        }
        print!("{out}");
        eprintln!(
            "token-scan: {} findings, {} files, {} bytes",
            report.findings.len(),
            report.files,
            report.bytes
        );
        return;
    }
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    // `cargo bench --bench scan -- repo`: only the sections whose name holds the argument
    // (`corpus`, `git`, `repo`).
    let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let wants = |section: &str| filter.as_deref().is_none_or(|f| section.contains(f));
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    let peers_path = std::env::var("TOKENWARD_PEERS").unwrap_or_default();
    let find = |name: &str| -> Option<PathBuf> {
        let path = std::env::var("PATH").unwrap_or_default();
        peers_path
            .split(':')
            .chain(path.split(':'))
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(name))
            .find(|p| p.is_file())
    };
    if wants("corpus") {
        corpus(&target, &find);
    }
    if wants("git") {
        git_history(&target, &find);
    }
    if wants("repo") {
        real_repository(&target, &find);
    }
}

/// The generated corpus: token-scan beside `cat`, ripgrep and the peers found.
fn corpus(target: &Path, find: &dyn Fn(&str) -> Option<PathBuf>) {
    let mib: u64 = std::env::var("TOKENWARD_SCAN_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    // v2: generic secrets and their decoys planted too.
    let corpus = target.join(format!("scan-corpus-v2-{mib}"));
    let manifest_path = corpus.join("manifest.json");
    if !manifest_path.exists() {
        let _ = std::fs::remove_dir_all(&corpus);
        let files = corpus.join("files");
        std::fs::create_dir_all(&files).unwrap();
        let start = Instant::now();
        let m =
            tokenward_test_support::corpus::write_corpus(&files, 20_261_201, mib << 20, 96 << 10).unwrap();
        std::fs::write(&manifest_path, serde_json::to_string(&m).unwrap()).unwrap();
        eprintln!("generated {} files, {} planted, in {:?}", m.files, m.planted.len(), start.elapsed());
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    // Canonical: secretlint and detect-secrets print canonical paths, which must strip to the
    // manifest's relative ones (with `../..` left in, they never did: 0% recall).
    let files = std::fs::canonicalize(corpus.join("files")).unwrap();
    let planted: Vec<(String, u64)> = manifest["planted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let line = p[1].as_u64().unwrap();
            // An AWS pair is reported at its secret key, the next line.
            let line = if p[2] == "aws-access-key" { line + 1 } else { line };
            (p[0].as_str().unwrap().to_owned(), line)
        })
        .collect();
    let decoys: HashSet<(String, u64)> = manifest["decoys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d[0].as_str().unwrap().to_owned(), d[1].as_u64().unwrap()))
        .collect();
    let bytes = manifest["bytes"].as_u64().unwrap();
    let mib_f = bytes as f64 / f64::from(1 << 20);
    println!(
        "corpus: {} files, {mib_f:.0} MiB, {} planted secrets, {} decoys",
        manifest["files"],
        planted.len(),
        decoys.len()
    );

    let anchors: Vec<String> =
        RuleSet::builtin().rules().iter().filter(|r| r.enabled).flat_map(|r| r.anchors.clone()).collect();
    let dir = files.to_str().unwrap().to_owned();
    let mut tools: Vec<(&str, Vec<String>, Parse)> = vec![(
        "cat (floor)",
        vec!["sh".into(), "-c".into(), format!("find '{dir}' -type f -print0 | xargs -0 cat > /dev/null")],
        Parse::None,
    )];
    if let Some(rg) = find("rg") {
        let mut cmd = vec![
            rg.display().to_string(),
            "-c".into(),
            "-F".into(),
            "-i".into(),
            "--no-ignore".into(),
            "--hidden".into(),
        ];
        for a in &anchors {
            cmd.push("-e".into());
            cmd.push(a.clone());
        }
        cmd.push(dir.clone());
        tools.push(("ripgrep, same anchors (floor)", cmd, Parse::None));
    }
    let me = std::env::current_exe().unwrap().display().to_string();
    tools.push(("token-scan", vec![me.clone()], Parse::Tsv));
    tools.push(("token-scan --no-generic", vec![me], Parse::Tsv));
    if let Some(k) = find("kingfisher") {
        tools.push((
            "kingfisher 2.14",
            vec![
                k.display().to_string(),
                "scan".into(),
                dir.clone(),
                "--format".into(),
                "json".into(),
                "--no-update-check".into(),
                "--no-validate".into(),
            ],
            Parse::Kingfisher,
        ));
    }
    if let Some(r) = find("ripsecrets") {
        tools.push(("ripsecrets 0.1", vec![r.display().to_string(), dir.clone()], Parse::PathLine));
    }
    if let Some(g) = find("gitleaks") {
        tools.push((
            "gitleaks",
            vec![
                g.display().to_string(),
                "dir".into(),
                dir.clone(),
                "--no-banner".into(),
                "--report-format".into(),
                "csv".into(),
                "--report-path".into(),
                "/dev/stdout".into(),
            ],
            Parse::PathLine,
        ));
    }
    if let Some(sl) = find("secretlint") {
        // The recommended preset, from a config next to its node_modules.
        let rc =
            sl.parent().and_then(Path::parent).and_then(Path::parent).map(|d| d.join(".secretlintrc.json"));
        if let Some(rc) = rc.filter(|p| p.is_file()) {
            tools.push((
                "secretlint (recommended preset)",
                vec![
                    sl.display().to_string(),
                    "--secretlintrc".into(),
                    rc.display().to_string(),
                    "--format".into(),
                    "json".into(),
                    format!("{dir}/**/*"),
                ],
                Parse::Secretlint,
            ));
        }
    }
    if mib <= 20
        && let Some(d) = find("detect-secrets")
    {
        tools.push((
            "detect-secrets",
            // From inside the corpus: given an absolute path under a git work tree that ignores
            // it (target/), detect-secrets skips every file, `--all-files` or not.
            vec![
                "sh".into(),
                "-c".into(),
                format!("cd '{dir}' && exec '{}' scan --all-files .", d.display()),
            ],
            Parse::DetectSecrets,
        ));
    }

    // Warm the page cache.
    let _ = Command::new("sh")
        .args(["-c", &format!("find '{dir}' -type f -print0 | xargs -0 cat > /dev/null")])
        .status();
    println!("\n| tool | wall | MiB/s | peak RSS | recall | decoys reported | other reports |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut rates = Vec::new();
    for (name, cmd, parse) in &tools {
        let out_path = corpus.join(format!("out-{}.txt", name.replace(' ', "")));
        let env = match *name {
            "token-scan" => Some((CHILD, dir.as_str())),
            "token-scan --no-generic" => Some((CHILD_NO_GENERIC, dir.as_str())),
            _ => None,
        };
        let Run { status, wall, rss_kb, output } = measure(cmd, env, &out_path);
        let reported = parse.locations(&output, &dir);
        let (recall, on_decoys, other) = if matches!(parse, Parse::None) {
            ("—".to_owned(), "—".to_owned(), "—".to_owned())
        } else {
            let hit = planted.iter().filter(|p| reported.contains(*p)).count();
            let d = reported.iter().filter(|r| decoys.contains(*r)).count();
            let planted_set: HashSet<&(String, u64)> = planted.iter().collect();
            let o = reported.iter().filter(|r| !decoys.contains(*r) && !planted_set.contains(r)).count();
            (
                format!("{:.1}%", 100.0 * hit as f64 / planted.len() as f64),
                format!("{d} ({:.1}%)", 100.0 * d as f64 / decoys.len() as f64),
                o.to_string(),
            )
        };
        let rate = mib_f / wall;
        rates.push((*name, rate));
        println!(
            "| {name}{} | {wall:.2} s | {rate:.0} | {:.0} MiB | {recall} | {on_decoys} | {other} |",
            if status.success() || status.code() == Some(1) || status.code() == Some(200) {
                ""
            } else {
                " (exit status not clean)"
            },
            rss_kb / 1024.0
        );
    }
    let ours = rates.iter().find(|(n, _)| *n == "token-scan").map(|r| r.1).unwrap_or(0.0);
    let peers: Vec<f64> = rates
        .iter()
        .filter(|(n, _)| !n.contains("floor") && !n.starts_with("token-scan"))
        .map(|r| r.1)
        .collect();
    if let Some(best) = peers.iter().copied().reduce(f64::max) {
        println!("\ntoken-scan / fastest peer: {:.2}× (target ≥ 3×)", ours / best);
    }
    if let Some((_, rg)) = rates.iter().find(|(n, _)| n.starts_with("ripgrep")) {
        println!("token-scan / ripgrep with the same anchors: {:.0}% (target ≥ 40%)", 100.0 * ours / rg);
    }
}

/// A generated repository of `TOKENWARD_SCAN_GIT_COMMITS` (5,000) commits — source files edited
/// in every commit, a unique secret added every 50th and deleted 10 commits later — scanned by
/// token-scan and kingfisher (`--git-history full`): wall, peak RSS, and which planted files each
/// reports.
fn git_history(target: &Path, find: &dyn Fn(&str) -> Option<PathBuf>) {
    let commits: usize =
        std::env::var("TOKENWARD_SCAN_GIT_COMMITS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000);
    let repo = target.join(format!("scan-git-{commits}"));
    let planted_path = repo.join(".planted");
    if !planted_path.exists() {
        let _ = std::fs::remove_dir_all(&repo);
        std::fs::create_dir_all(&repo).unwrap();
        assert!(
            Command::new("git")
                .arg("-C")
                .arg(&repo)
                .args(["init", "-q", "-b", "main"])
                .status()
                .unwrap()
                .success()
        );
        let mut rng = tokenward_test_support::corpus::Rng(7);
        let mut stream = Vec::new();
        let mut planted = Vec::new();
        let filler = "fn handle(req: &Request) -> Result<Response, Error> { let id = req.id(); Ok(Response::ok(id)) }\n".repeat(20);
        for i in 0..commits {
            let mut ops = String::new();
            let file = format!("src/mod{}.rs", i % 50);
            let content = format!("// revision {i}\n{filler}");
            ops.push_str(&format!("M 100644 inline {file}\ndata {}\n{content}\n", content.len()));
            if i % 50 == 7 {
                let t = tokenward_test_support::corpus::github(&mut rng, "ghp_");
                let path = format!("config/secret{i}.env");
                let c = format!("TOKEN={t}\n");
                ops.push_str(&format!("M 100644 inline {path}\ndata {}\n{c}\n", c.len()));
                planted.push(path);
            }
            if i % 50 == 17 {
                ops.push_str(&format!("D config/secret{}.env\n", i - 10));
            }
            let msg = format!("commit {i}");
            stream.extend_from_slice(
                format!(
                    "commit refs/heads/main\nmark :{}\ncommitter t <t@example.invalid> {} +0000\ndata {}\n{msg}\n{}{ops}\n",
                    i + 1,
                    1_700_000_000 + i,
                    msg.len(),
                    if i == 0 { String::new() } else { format!("from :{i}\n") }
                )
                .as_bytes(),
            );
        }
        let mut fi = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(["fast-import", "--quiet"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        fi.stdin.take().unwrap().write_all(&stream).unwrap();
        assert!(fi.wait().unwrap().success());
        let _ = Command::new("git").arg("-C").arg(&repo).args(["gc", "-q"]).status();
        std::fs::write(&planted_path, planted.join("\n")).unwrap();
    }
    let planted: Vec<String> =
        std::fs::read_to_string(&planted_path).unwrap().lines().map(str::to_owned).collect();
    println!(
        "\ngit history: {commits} commits, {} secrets each added then deleted 10 commits later",
        planted.len()
    );
    println!("\n| tool | wall | peak RSS | planted files reported | reports |");
    println!("|---|---:|---:|---:|---:|");
    let me = std::env::current_exe().unwrap().display().to_string();
    let r = repo.display().to_string();
    let mut tools: Vec<(&str, Vec<String>, bool)> = vec![("token-scan", vec![me], true)];
    if let Some(k) = find("kingfisher") {
        tools.push((
            "kingfisher 2.14",
            vec![
                k.display().to_string(),
                "scan".into(),
                r.clone(),
                "--git-history".into(),
                "full".into(),
                "--format".into(),
                "json".into(),
                "--no-update-check".into(),
                "--no-validate".into(),
            ],
            false,
        ));
    }
    for (name, cmd, ours) in tools {
        let env = ours.then_some((GIT_CHILD, r.as_str()));
        let Run { wall, rss_kb: rss, output, .. } = measure(&cmd, env, &target.join("scan-git-out.txt"));
        let reports = if ours {
            output.lines().count()
        } else {
            output
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .map(|v| v["findings"].as_array().map_or(0, Vec::len))
                .sum()
        };
        let found = planted.iter().filter(|p| output.contains(p.as_str())).count();
        println!(
            "| {name} | {wall:.2} s | {:.0} MiB | {found}/{} | {reports} |",
            rss / 1024.0,
            planted.len()
        );
    }
}

/// The kinds both scanners support: a label, kingfisher's rule ids (without their
/// `betterleaks.`/`veles.secrets/` namespace and `.N` variant suffix), ours.
const SHARED_KINDS: &[(&str, &[&str], &[&str])] = &[
    (
        "1Password",
        &["1password-secret-key", "1password-service-account-token"],
        &["1password-secret-key", "1password-service-account-token"],
    ),
    ("age", &["age-secret-key"], &["age-secret-key"]),
    (
        "Anthropic",
        &["anthropic-api-key", "anthropic-admin-api-key"],
        &["anthropic-api-key", "anthropic-admin-key"],
    ),
    ("Atlassian", &["atlassian-api-token"], &["atlassian-api-token"]),
    (
        "AWS",
        &["aws-access-token", "aws-secret-access-key", "aws-session-token"],
        &["aws-access-key", "aws-session-token"],
    ),
    (
        "Azure",
        &["azure-ad-client-secret", "azure-servicebus-connection-string", "azure-storage-account-key"],
        &[
            "azure-ad-client-secret",
            "azure-shared-access-key",
            "azure-storage-connection-string",
            "azure-storage-key",
            "azure-sas-token",
        ],
    ),
    (
        "Cloudflare",
        &[
            "cloudflare-api-key",
            "cloudflareapitoken",
            "cloudflare-global-api-key",
            "cloudflare-origin-ca-key",
        ],
        &["cloudflare-api-token", "cloudflare-global-api-key", "cloudflare-origin-ca-key"],
    ),
    ("Databricks", &["databricks-api-token"], &["databricks-token"]),
    ("Datadog", &["datadog-api-key", "datadog-application-key"], &["datadog-api-key", "datadog-app-key"]),
    (
        "DigitalOcean",
        &[
            "digitalocean-access-token",
            "digitalocean-pat",
            "digitalocean-refresh-token",
            "digitaloceanapikey",
        ],
        &["digitalocean-pat", "digitalocean-oauth-token", "digitalocean-refresh-token"],
    ),
    ("Fly.io", &["flyio-access-token"], &["fly-access-token"]),
    ("GCP", &["gcp-api-key", "gcp-service-account"], &["gcp-api-key", "gcp-service-account"]),
    (
        "GitHub",
        &[
            "github-pat",
            "github-oauth",
            "github-app-token",
            "github-refresh-token",
            "github-fine-grained-pat",
        ],
        &["github-classic", "github-fine-grained"],
    ),
    (
        "GitLab",
        &["gitlab-pat", "gitlab-deploy-token", "gitlab-runner-authentication-token", "gitlab-cicd-job-token"],
        &["gitlab-pat", "gitlab-deploy-token", "gitlab-runner-token", "gitlab-ci-job-token"],
    ),
    (
        "Grafana",
        &["grafana-api-key", "grafana-cloud-api-token", "grafana-service-account-token"],
        &["grafana-api-key", "grafana-cloud-token", "grafana-service-account-token"],
    ),
    ("HashiCorp Terraform", &["hashicorp-tf-api-token"], &["terraform-cloud-token"]),
    (
        "Heroku",
        &["heroku-api-key", "heroku-api-key-v2", "herokuplatformkey"],
        &["heroku-api-key", "heroku-api-key-legacy"],
    ),
    (
        "Hugging Face",
        &["huggingface-access-token", "huggingface-organization-api-token"],
        &["huggingface-token"],
    ),
    ("JWT", &["jwt"], &["jwt"]),
    ("Mailchimp", &["mailchimp-api-key"], &["mailchimp-api-key"]),
    ("npm", &["npm-access-token", "npmjsaccesstoken"], &["npm-token"]),
    ("Notion", &["notion-api-token"], &["notion-token"]),
    ("Okta", &["okta-access-token"], &["okta-api-token"]),
    ("OpenAI", &["openai-api-key"], &["openai-api-key"]),
    ("OpenRouter", &["openrouter"], &["openrouter-api-key"]),
    ("Perplexity", &["perplexity-api-key"], &["perplexity-api-key"]),
    ("private keys", &["private-key"], &["private-key", "pgp-private-key", "putty-private-key"]),
    ("PyPI", &["pypi-upload-token"], &["pypi-token"]),
    ("SendGrid", &["sendgrid-api-token", "sendgrid"], &["sendgrid-api-key"]),
    ("Sentry", &["sentry-org-token", "sentry-user-token"], &["sentry-org-token", "sentry-user-token"]),
    (
        "Slack tokens",
        &[
            "slack-app-token",
            "slackappleveltoken",
            "slack-bot-token",
            "slack-user-token",
            "slack-legacy-bot-token",
            "slack-legacy-token",
            "slack-legacy-workspace-token",
            "slack-config-access-token",
            "slack-config-refresh-token",
            "slackappconfigaccesstoken",
            "slackappconfigrefreshtoken",
        ],
        &["slack-token", "slack-app-token", "slack-config-token"],
    ),
    ("Slack webhooks", &["slack-webhook-url"], &["slack-webhook", "slack-workflow-webhook"]),
    ("Square", &["square-access-token"], &["square-access-token", "square-oauth-secret"]),
    ("Stripe", &["stripe-access-token"], &["stripe-live-key"]),
    (
        "Vault / OpenBao",
        &["vault-service-token", "vault-batch-token"],
        &["vault-token", "vault-token-legacy"],
    ),
    ("xAI", &["grokxaiapikey"], &["xai-api-key"]),
    (
        "URLs with credentials",
        &["generic-credential-uri", "mongodb-connection-string"],
        &["database-url", "jdbc-password", "sqlserver-connection-string"],
    ),
    ("generic (curl auth, assignments)", &["curl-auth-header", "curl-auth-user"], &["generic-assignment"]),
];

/// Kingfisher's rule id without its namespace and variant suffix (`betterleaks.cloudflare-api-key.1`
/// → `cloudflare-api-key`).
fn kingfisher_kind(id: &str) -> &str {
    let id = id.rsplit(['/']).next().unwrap_or(id);
    let id = id.strip_prefix("betterleaks.").unwrap_or(id);
    match id.rsplit_once('.') {
        Some((base, n)) if n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => id,
    }
}

/// Two scanners' values for one secret: equal, or one inside the other (a PEM body inside the
/// whole block, a password inside `user:password`), at least 8 bytes; or so once a base64 value
/// is decoded (token-scan reports an `Authorization: Basic` value decoded, kingfisher as written).
fn same_secret(a: &str, b: &str) -> bool {
    let one = |a: &str, b: &str| {
        let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
        a == b || (short.len() >= 8 && long.contains(short))
    };
    let decoded = |v: &str| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.decode(v).ok().and_then(|d| String::from_utf8(d).ok())
    };
    one(a, b) || decoded(a).is_some_and(|a| one(&a, b)) || decoded(b).is_some_and(|b| one(a, &b))
}

/// `TOKENWARD_BENCH_REPO`: a real repository's full history, token-scan (default mode) beside
/// kingfisher, same run.
fn real_repository(target: &Path, find: &dyn Fn(&str) -> Option<PathBuf>) {
    use sha2::{Digest, Sha256};
    use token_scan::secrecy::ExposeSecret;
    let Ok(repo) = std::env::var("TOKENWARD_BENCH_REPO") else {
        println!(
            "\nreal repository: skipped (set TOKENWARD_BENCH_REPO to a clone, e.g. \
             `git clone --mirror https://github.com/gitleaks/gitleaks /tmp/gitleaks`)"
        );
        return;
    };
    let count = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    };
    std::fs::create_dir_all(target).unwrap();
    let commits = count(&["rev-list", "--all", "--count"]);
    let refs = count(&["for-each-ref", "--format=x"]).lines().count();
    let me = std::env::current_exe().unwrap().display().to_string();
    let mut tools: Vec<(&str, Vec<String>, bool)> =
        vec![("token-scan (default: generic on)", vec![me], true)];
    match find("kingfisher") {
        Some(k) => tools.push((
            "kingfisher 2.14 --git-history full --no-validate",
            vec![
                k.display().to_string(),
                "scan".into(),
                repo.clone(),
                "--git-history".into(),
                "full".into(),
                "--format".into(),
                "json".into(),
                "--no-update-check".into(),
                "--no-validate".into(),
            ],
            false,
        )),
        None => println!("\n(kingfisher not on PATH nor in TOKENWARD_PEERS: token-scan alone)"),
    }
    // A warm-up run each, then 3 measured ones, interleaved.
    let mut walls = vec![Vec::new(); tools.len()];
    let mut rss = vec![0f64; tools.len()];
    let mut outputs = vec![String::new(); tools.len()];
    for round in 0..4 {
        for (i, (_, cmd, ours)) in tools.iter().enumerate() {
            let env = ours.then_some((GIT_CHILD, repo.as_str()));
            let out_path = target.join(format!("scan-repo-out-{i}.txt"));
            let run = measure(cmd, env, &out_path);
            // kingfisher's report holds the secrets it found: not left on disk.
            let _ = std::fs::remove_file(&out_path);
            let _ = std::fs::remove_file(out_path.with_extension("time"));
            if round > 0 {
                walls[i].push(run.wall);
                rss[i] = rss[i].max(run.rss_kb);
            }
            outputs[i] = run.output;
        }
    }
    // The comparison's values: our findings' secrets from the same scan in this process, and
    // kingfisher's snippets; held in memory only.
    let report =
        Scanner::new().unwrap().scan_git(Path::new(&repo), &tokenward::scan::GitOptions::default()).unwrap();
    let ours: Vec<(String, String)> =
        report.findings.iter().map(|f| (f.rule.clone(), f.secret().expose_secret().to_owned())).collect();
    println!(
        "\nreal repository: {repo} — {commits} commits from {refs} refs, {} blobs, {:.0} MiB of text scanned \
         by token-scan",
        report.files,
        report.bytes as f64 / f64::from(1 << 20)
    );
    println!("\n| tool | wall (median of 3 warm) | peak RSS | findings | rule kinds |");
    println!("|---|---:|---:|---:|---:|");
    // kingfisher's findings: (its kind, value, location).
    let mut theirs: Vec<(String, String, String)> = Vec::new();
    if let Some(out) = outputs.get(1) {
        for l in out.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
            for f in v["findings"].as_array().into_iter().flatten() {
                let (Some(id), Some(snippet)) = (f["rule"]["id"].as_str(), f["finding"]["snippet"].as_str())
                else {
                    continue;
                };
                let commit = f["finding"]["git_metadata"]["commit"]["id"].as_str().unwrap_or("-");
                let location = format!(
                    "{}:{}:{}",
                    &commit[..commit.len().min(12)],
                    f["finding"]["path"].as_str().unwrap_or("?"),
                    f["finding"]["line"]
                );
                theirs.push((kingfisher_kind(id).to_owned(), snippet.to_owned(), location));
            }
        }
    }
    let mut medians = Vec::new();
    for (i, (name, _, is_ours)) in tools.iter().enumerate() {
        let m = tokenward_test_support::stats::median(&mut walls[i]);
        medians.push(m);
        let (n, kinds) = if *is_ours {
            (ours.len(), ours.iter().map(|o| o.0.as_str()).collect::<HashSet<_>>().len())
        } else {
            (theirs.len(), theirs.iter().map(|t| t.0.as_str()).collect::<HashSet<_>>().len())
        };
        println!("| {name} | {m:.2} s | {:.0} MiB | {n} | {kinds} |", rss[i] / 1024.0);
    }
    if let [ours_s, theirs_s] = medians[..] {
        println!(
            "\ntoken-scan is {:.1}× faster than kingfisher on this history (target ≥ 5×)",
            theirs_s / ours_s
        );
    } else {
        return;
    }

    println!(
        "\nfindings by kind (distinct values; kingfisher's matched against all of ours, ours against all of its):"
    );
    println!("\n| kind both support | kingfisher | token-scan | both | only kingfisher | only token-scan |");
    println!("|---|---:|---:|---:|---:|---:|");
    let dedup = |v: Vec<&str>| -> Vec<String> {
        let mut v: Vec<String> = v.into_iter().map(str::to_owned).collect();
        v.sort();
        v.dedup();
        v
    };
    let all_ours: Vec<&str> = ours.iter().map(|o| o.1.as_str()).collect();
    let all_theirs: Vec<&str> = theirs.iter().map(|t| t.1.as_str()).collect();
    let mut totals = [0usize; 5];
    let mut missed = Vec::new();
    for (kind, kf_ids, our_ids) in SHARED_KINDS {
        let k =
            dedup(theirs.iter().filter(|t| kf_ids.contains(&t.0.as_str())).map(|t| t.1.as_str()).collect());
        let o =
            dedup(ours.iter().filter(|o| our_ids.contains(&o.0.as_str())).map(|o| o.1.as_str()).collect());
        if k.is_empty() && o.is_empty() {
            continue;
        }
        let both = k.iter().filter(|v| all_ours.iter().any(|u| same_secret(v, u))).count();
        let only_us = o.iter().filter(|v| !all_theirs.iter().any(|t| same_secret(v, t))).count();
        for v in k.iter().filter(|v| !all_ours.iter().any(|u| same_secret(v, u))) {
            let (id, _, loc) = theirs.iter().find(|t| &t.1 == v).unwrap();
            let digest = Sha256::digest(v.as_bytes());
            missed.push(format!(
                "{kind}: {id} at {loc} ({} bytes, sha256 {:02x}{:02x}{:02x}{:02x}…)",
                v.len(),
                digest[0],
                digest[1],
                digest[2],
                digest[3]
            ));
        }
        let row = [k.len(), o.len(), both, k.len() - both, only_us];
        for (t, r) in totals.iter_mut().zip(row) {
            *t += r;
        }
        println!("| {kind} | {} | {} | {} | {} | {} |", row[0], row[1], row[2], row[3], row[4]);
    }
    println!("| **total** | {} | {} | {} | {} | {} |", totals[0], totals[1], totals[2], totals[3], totals[4]);
    let shared_kf: HashSet<&str> = SHARED_KINDS.iter().flat_map(|k| k.1.iter().copied()).collect();
    let shared_ours: HashSet<&str> = SHARED_KINDS.iter().flat_map(|k| k.2.iter().copied()).collect();
    let mut other_kf: std::collections::BTreeMap<&str, (usize, usize)> = std::collections::BTreeMap::new();
    for (id, v, _) in theirs.iter().filter(|t| !shared_kf.contains(t.0.as_str())) {
        let e = other_kf.entry(id.as_str()).or_default();
        e.0 += 1;
        e.1 += usize::from(all_ours.iter().any(|u| same_secret(v, u)));
    }
    let mut other_ours: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (id, _) in ours.iter().filter(|o| !shared_ours.contains(o.0.as_str())) {
        *other_ours.entry(id.as_str()).or_default() += 1;
    }
    println!(
        "\nkingfisher's other kinds (findings, of which token-scan reports the value under another rule): {}",
        other_kf.iter().map(|(k, (n, f))| format!("{k} {n} ({f})")).collect::<Vec<_>>().join(", ")
    );
    println!(
        "token-scan's other kinds: {}",
        other_ours.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")
    );
    println!("\nonly kingfisher, in the kinds both support (location; no value):");
    for m in &missed {
        println!("- {m}");
    }
}

/// One measured run of a tool.
struct Run {
    status: std::process::ExitStatus,
    wall: f64,
    rss_kb: f64,
    output: String,
}

/// Runs `cmd` under `/usr/bin/time -v` (with `env` set), its stdout to `out`: wall time, peak RSS
/// and what it printed.
fn measure(cmd: &[String], env: Option<(&str, &str)>, out: &Path) -> Run {
    let time_path = out.with_extension("time");
    let start = Instant::now();
    let mut c = Command::new("/usr/bin/time");
    c.arg("-v")
        .args(cmd)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(std::fs::File::create(&time_path).unwrap())
        .stdin(Stdio::null());
    if let Some((k, v)) = env {
        c.env(k, v);
    }
    let status = c.status().unwrap();
    let wall = start.elapsed().as_secs_f64();
    let rss_kb = std::fs::read_to_string(&time_path)
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.trim().strip_prefix("Maximum resident set size (kbytes): ").and_then(|v| v.parse().ok())
        })
        .unwrap_or(0.0);
    Run { status, wall, rss_kb, output: std::fs::read_to_string(out).unwrap_or_default() }
}

enum Parse {
    None,
    Tsv,
    Kingfisher,
    PathLine,
    DetectSecrets,
    Secretlint,
}

impl Parse {
    /// (relative path, line) of everything a tool reported.
    fn locations(&self, output: &str, dir: &str) -> HashSet<(String, u64)> {
        let rel = |p: &str| p.strip_prefix(dir).unwrap_or(p).trim_start_matches('/').to_owned();
        let mut out = HashSet::new();
        match self {
            Parse::None => {}
            Parse::Tsv => {
                for l in output.lines() {
                    let mut it = l.split('\t');
                    if let (Some(p), Some(n)) = (it.next(), it.next().and_then(|n| n.parse().ok())) {
                        out.insert((p.to_owned(), n));
                    }
                }
            }
            Parse::Kingfisher => {
                for l in output.lines() {
                    let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else { continue };
                    for f in v["findings"].as_array().into_iter().flatten() {
                        if let (Some(p), Some(n)) =
                            (f["finding"]["path"].as_str(), f["finding"]["line"].as_u64())
                        {
                            out.insert((rel(p), n));
                        }
                    }
                }
            }
            Parse::PathLine => {
                // `path:line:…` (ripsecrets) or CSV with path and line columns (gitleaks).
                for l in output.lines() {
                    let parts: Vec<&str> = l.split([':', ',']).collect();
                    for w in parts.windows(2) {
                        if (w[0].contains(dir) || w[0].starts_with("pkg"))
                            && let Ok(n) = w[1].trim().parse()
                        {
                            out.insert((rel(w[0].trim()), n));
                            break;
                        }
                    }
                }
            }
            Parse::Secretlint => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(output) {
                    for file in v.as_array().into_iter().flatten() {
                        let Some(p) = file["filePath"].as_str() else { continue };
                        for m in file["messages"].as_array().into_iter().flatten() {
                            if let Some(n) = m["loc"]["start"]["line"].as_u64() {
                                out.insert((rel(p), n));
                            }
                        }
                    }
                }
            }
            Parse::DetectSecrets => {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(output) {
                    for (p, list) in v["results"].as_object().into_iter().flatten() {
                        for f in list.as_array().into_iter().flatten() {
                            if let Some(n) = f["line_number"].as_u64() {
                                out.insert((rel(p), n));
                            }
                        }
                    }
                }
            }
        }
        out
    }
}
