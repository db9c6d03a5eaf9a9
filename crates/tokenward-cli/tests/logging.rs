//! Log lines on stderr: one human line per warning by default (no timestamp, no module path),
//! tracing's own lines with `-v`; never on stdout, so `--format json` output stays pure JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;

#[test]
fn drill_json_is_pure_json_and_its_warnings_are_one_human_line_each() {
    let cli = Cli::new();
    cli.init();
    let run = |args: &[&str]| {
        cli.run_in(args, None, |c| {
            c.env_remove("TOKENWARD_LOG");
        })
    };
    let r = run(&["drill", "--repeat", "1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(r.ok()).unwrap();
    assert_eq!(v["summary"]["runs"], 1);
    assert!(!r.stderr.contains("WARN token_") && !r.stderr.contains("token_rotate::"), "{}", r.stderr);
    // The drill's emergency is a warning, said in one line a person reads.
    assert!(
        r.stderr.lines().any(|l| l.starts_with("WARNING: emergency declared (credential=")),
        "{}",
        r.stderr
    );
    for line in r.stderr.lines().filter(|l| l.contains("emergency declared")) {
        assert!(!line.contains("::") && !line.contains("Z "), "no module path, no timestamp: {line}");
    }

    // -v: tracing's own lines (level, target), still on stderr only.
    let verbose = run(&["drill", "--repeat", "1", "--format", "json", "-v"]);
    let v: serde_json::Value = serde_json::from_str(verbose.ok()).unwrap();
    assert_eq!(v["summary"]["runs"], 1);
    assert!(verbose.stderr.contains("WARN token_rotate::rotator: emergency declared"), "{}", verbose.stderr);
    assert!(verbose.stderr.contains(" INFO "), "{}", verbose.stderr);

    // --quiet: errors only.
    let quiet = run(&["drill", "--repeat", "1", "--format", "json", "--quiet"]);
    serde_json::from_str::<serde_json::Value>(quiet.ok()).unwrap();
    assert!(!quiet.stderr.contains("emergency declared"), "{}", quiet.stderr);
}
