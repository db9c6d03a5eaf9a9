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
//! `cargo bench -p tokenward-bench --bench scan`

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
            println!("{}\t{}", f.location.path(), f.location);
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
    let mib: u64 = std::env::var("TOKENWARD_SCAN_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
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
    git_history(&target, &find);
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
