//! SARIF output validated against the SARIF 2.1.0 JSON schema (`vectors/sarif-2.1.0-rtm.5.json`,
//! the copy npm's `@microsoft/jest-sarif` ships), for findings of every location kind a scan of
//! files and git history produces, with skipped inputs and suppressed matches; what consumers
//! need beyond the schema: `%SRCROOT%` in `originalUriBaseIds` (a `file://` URI ending in `/`) and
//! as the `uriBaseId` of every file's location (what is outside the root — an S3 object, an image's
//! file, a database value — is checked in `output.rs`'s unit test), and every result's rule at its `ruleIndex` in
//! `tool.driver.rules`, with descriptions, help and a default level.

use std::path::Path;
use std::process::Command;

use token_scan::*;
use tokenward_test_support::corpus::{Rng, planted};

fn schema_check(sarif: &[u8]) -> Result<(), String> {
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("vectors/sarif-2.1.0-rtm.5.json")).expect("schema parses");
    let log: serde_json::Value = serde_json::from_slice(sarif).map_err(|e| e.to_string())?;
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "urn:sarif-2.1.0-rtm.5";
    compiler.add_resource(url, schema).expect("schema is a resource");
    let index = compiler.compile(url, &mut schemas).expect("schema compiles");
    schemas.validate(&log, index).map_err(|e| format!("{e:#}"))
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn sarif_output_is_valid_sarif_2_1_0() {
    let scanner = Scanner::new().unwrap();
    let mut rng = Rng(7);
    let planted = planted(&mut rng);
    let text: String = planted.iter().map(|(_, l, _)| format!("{l}\n")).collect();

    // Files: a path that needs percent-encoding, a binary skipped, a documented example suppressed.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dir with space")).unwrap();
    std::fs::write(dir.path().join("dir with space/cönfig #1.env"), &text).unwrap();
    std::fs::write(dir.path().join("blob.bin"), b"\0\0\x01binary\0").unwrap();
    std::fs::write(dir.path().join("doc.md"), "AKIAIOSFODNN7EXAMPLE\n").unwrap();
    let mut report = scanner.scan_tree(dir.path(), &TreeOptions::default()).unwrap();
    assert_eq!(report.findings.len(), planted.len());
    assert!(!report.skipped.is_empty() && !report.suppressed.is_empty());

    // Git history: findings located by commit and path.
    let repo = tempfile::tempdir().unwrap();
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::write(repo.path().join("app.env"), &text).unwrap();
    git(repo.path(), &["add", "."]);
    git(repo.path(), &["commit", "-q", "-m", "secrets"]);
    let history = scanner.scan_git(repo.path(), &GitOptions::default()).unwrap();
    assert_eq!(history.findings.len(), planted.len());
    report.merge(history);

    let mut sarif = Vec::new();
    report.write_sarif(&mut sarif, scanner.rule_set(), dir.path()).unwrap();
    schema_check(&sarif).unwrap();
    let log: serde_json::Value = serde_json::from_slice(&sarif).unwrap();
    let run = &log["runs"][0];
    let base = run["originalUriBaseIds"]["%SRCROOT%"]["uri"].as_str().unwrap();
    let canonical = std::path::absolute(dir.path()).unwrap();
    assert_eq!(base, format!("file://{}/", canonical.display()).replace(' ', "%20"), "{base}");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), scanner.rule_set().rules().len() + 2, "every rule, Tokenward and generic too");
    for rule in rules {
        for field in ["id", "name"] {
            assert!(rule[field].is_string(), "{rule}");
        }
        for field in ["shortDescription", "fullDescription", "help"] {
            assert!(rule[field]["text"].as_str().is_some_and(|t| !t.is_empty()), "{rule}");
        }
        assert!(rule["defaultConfiguration"]["level"].is_string(), "{rule}");
    }
    let mut kinds = std::collections::BTreeSet::new();
    for result in run["results"].as_array().unwrap() {
        let index = usize::try_from(result["ruleIndex"].as_u64().unwrap()).unwrap();
        assert_eq!(rules[index]["id"], result["ruleId"], "ruleIndex matches");
        kinds.insert(result["ruleId"].as_str().unwrap().to_owned());
        let location = &result["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(location["uriBaseId"], "%SRCROOT%", "{location}");
    }
    assert!(kinds.contains(GENERIC_RULE) && kinds.contains(TOKENWARD_RULE), "{kinds:?}");
    assert_eq!(run["results"].as_array().unwrap().len(), 2 * planted.len());
    let notes = run["invocations"][0]["toolExecutionNotifications"].as_array().unwrap();
    assert!(notes.iter().any(|n| n["message"]["text"].as_str().unwrap().contains("blob.bin")));
    assert!(
        run["results"].as_array().unwrap().iter().any(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .unwrap()
                .starts_with("dir%20with%20space/c%C3%B6nfig%20%231.env")
        }),
        "paths are URI references"
    );

    // An empty report is valid SARIF too.
    let mut empty = Vec::new();
    Report::default().write_sarif(&mut empty, scanner.rule_set(), Path::new(".")).unwrap();
    schema_check(&empty).unwrap();

    // And the check itself fails on a log that breaks the schema.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("catastrophic");
    assert!(schema_check(serde_json::to_vec(&broken).unwrap().as_slice()).is_err());
    broken = log;
    broken["version"] = serde_json::json!("2.0.0");
    assert!(schema_check(serde_json::to_vec(&broken).unwrap().as_slice()).is_err());
}
