//! Sources against the real thing: a directory tree on disk (ignore files, binaries, oversized
//! files) and a git repository built with the git CLI (a secret committed then deleted is found
//! with its introducing commit; one secret in many commits is reported once; unreachable blobs on
//! request; not a repository is a typed error).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use token_scan::*;

/// GitHub tokens with valid checksums (from tests/vectors/github-tokens.json).
fn tokens() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/github-tokens.json")).unwrap();
    v["valid"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn a_tree_is_walked_with_ignore_files_on_request_and_skips_are_reported() {
    let t = tokens();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/deep")).unwrap();
    std::fs::write(root.join("src/deep/main.rs"), format!("const T: &str = \"{}\";\n", t[0])).unwrap();
    std::fs::write(root.join(".env"), format!("TOKEN={}\n", t[1])).unwrap();
    std::fs::write(root.join(".gitignore"), ".env\n").unwrap();
    std::fs::write(root.join("image.png"), [&[0u8, 1, 2][..], t[2].as_bytes()].concat()).unwrap();
    std::fs::write(root.join("huge.log"), vec![b'a'; 2 << 20]).unwrap();
    std::fs::create_dir_all(root.join(".git")).unwrap();
    std::fs::write(root.join(".git/config"), format!("token = {}\n", t[3])).unwrap();
    let scanner = Scanner::new().unwrap();
    let all = scanner.scan_tree(root, &TreeOptions::default().max_file_size(1 << 20)).unwrap();
    let mut paths: Vec<&str> = all.findings.iter().map(|f| f.location.path()).collect();
    paths.sort();
    assert_eq!(paths, [".env", "src/deep/main.rs"], "ignored files are scanned by default; .git never");
    assert!(all.skipped.iter().any(|s| s.what == "image.png" && s.reason == "binary"), "{:?}", all.skipped);
    assert!(
        all.skipped.iter().any(|s| s.what == "huge.log" && s.reason.contains("larger")),
        "{:?}",
        all.skipped
    );
    let f = all.findings.iter().find(|f| f.location.path() == "src/deep/main.rs").unwrap();
    assert_eq!((f.location.line(), f.location.column()), (1, 18));
    let respecting = scanner.scan_tree(root, &TreeOptions::default().gitignore(true)).unwrap();
    assert_eq!(respecting.findings.len(), 1, "with .gitignore respected, .env is skipped");
    // One file as the root; a missing root is a typed error.
    let one = scanner.scan_tree(&root.join(".env"), &TreeOptions::default()).unwrap();
    assert_eq!(one.findings.len(), 1);
    assert!(matches!(
        scanner.scan_tree(&root.join("missing"), &TreeOptions::default()),
        Err(ScanError::NotFound(_))
    ));
}

#[test]
fn progress_is_reported_while_a_tree_is_scanned() {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(dir.path().join(format!("f{i}.txt")), "hello world\n").unwrap();
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Progress::default()));
    let s2 = seen.clone();
    let opts = TreeOptions::default().progress(std::sync::Arc::new(move |p: &Progress| {
        *s2.lock().unwrap() = *p;
    }));
    let r = Scanner::new().unwrap().scan_tree(dir.path(), &opts).unwrap();
    assert_eq!(r.files, 20);
    let last = *seen.lock().unwrap();
    assert_eq!((last.files, last.bytes), (20, 240));
}

#[test]
fn git_history_reports_each_secret_once_with_the_commit_that_introduced_it() {
    let t = tokens();
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path();
    git(repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "first"]);
    // A secret committed, then deleted two commits later.
    std::fs::write(repo.join("config.yml"), format!("token: {}\n", t[0])).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "add config"]);
    let introduced = git(repo, &["rev-parse", "HEAD"]);
    // Another secret that stays in a file edited by many commits.
    for i in 0..12 {
        std::fs::write(repo.join("app.env"), format!("# rev {i}\nKEY={}\n", t[1])).unwrap();
        git(repo, &["add", "."]);
        git(repo, &["commit", "-q", "-m", &format!("edit {i}")]);
    }
    let first_env =
        git(repo, &["log", "--reverse", "--format=%H", "--", "app.env"]).lines().next().unwrap().to_owned();
    std::fs::remove_file(repo.join("config.yml")).unwrap();
    git(repo, &["commit", "-q", "-am", "remove the secret"]);
    // A branch with its own secret, merged.
    git(repo, &["checkout", "-q", "-b", "feature"]);
    std::fs::write(repo.join("feature.txt"), format!("x={}\n", t[2])).unwrap();
    git(repo, &["add", "."]);
    git(repo, &["commit", "-q", "-m", "feature"]);
    git(repo, &["checkout", "-q", "main"]);
    git(repo, &["merge", "-q", "--no-ff", "feature", "-m", "merge"]);
    // An unreachable blob.
    let mut hash = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["hash-object", "-w", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    hash.stdin.take().unwrap().write_all(format!("lost {}\n", t[3]).as_bytes()).unwrap();
    assert!(hash.wait_with_output().unwrap().status.success());

    let scanner = Scanner::new().unwrap();
    let report = scanner.scan_git(repo, &GitOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 3, "{:#?}", report.findings);
    let at = |path: &str| report.findings.iter().find(|f| f.location.path() == path).unwrap();
    let Location::Git { commit, line, .. } = &at("config.yml").location else { panic!() };
    assert_eq!(
        (commit.as_deref(), *line),
        (Some(introduced.as_str()), 1),
        "the deleted secret, where it came in"
    );
    let Location::Git { commit, line, .. } = &at("app.env").location else { panic!() };
    assert_eq!((commit.as_deref(), *line), (Some(first_env.as_str()), 2), "once, in its first commit");
    assert!(report.suppressed["seen in an earlier commit"] >= 11, "{:?}", report.suppressed);
    assert!(at("feature.txt").location.to_string().contains("feature.txt:1:3"));

    let with_lost = scanner.scan_git(repo, &GitOptions::default().unreachable(true)).unwrap();
    assert_eq!(with_lost.findings.len(), 4);
    assert!(with_lost.findings.iter().any(|f| matches!(&f.location, Location::Git { commit: None, .. })));

    let not_repo = tempfile::tempdir().unwrap();
    assert!(matches!(scanner.scan_git(not_repo.path(), &GitOptions::default()), Err(ScanError::Git(_))));
}
