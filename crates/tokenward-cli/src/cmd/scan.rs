//! `scan PATH|git:REPO|image:TAR|s3://BUCKET[/PREFIX]`: findings out in text, JSON lines or SARIF;
//! exit 0 clean, 1 findings, 2 an error; `--revoke` revokes and replaces our own on sight.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use tokenward::core::private_fs;
use tokenward::scan::{
    Baseline, GitOptions, ImageOptions, Progress, Report, RuleSet, S3Options, Scanner, TreeOptions,
};
use tokenward::{EmergencyOrder, LeakOutcome};

use crate::cli::{Global, ScanArgs, ScanFormat};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

enum Target {
    Tree(PathBuf),
    Git(PathBuf),
    Image(PathBuf),
    S3 { bucket: String, prefix: Option<String> },
}

fn target(text: &str) -> Result<Target> {
    if let Some(rest) = text.strip_prefix("git:") {
        return Ok(Target::Git(PathBuf::from(rest)));
    }
    if let Some(rest) = text.strip_prefix("image:") {
        return Ok(Target::Image(PathBuf::from(rest)));
    }
    if let Some(rest) = text.strip_prefix("s3://") {
        let (bucket, prefix) = match rest.split_once('/') {
            Some((b, p)) if !p.is_empty() => (b, Some(p.to_owned())),
            Some((b, _)) => (b, None),
            None => (rest, None),
        };
        if bucket.is_empty() {
            return Err(CliError::new("s3://: no bucket named"));
        }
        return Ok(Target::S3 { bucket: bucket.to_owned(), prefix });
    }
    Ok(Target::Tree(PathBuf::from(text)))
}

/// Progress on stderr (files and bytes so far) while the scan runs, when it is shown at all.
fn progress(g: &Global, off: bool) -> Option<(indicatif::ProgressBar, tokenward::scan::ProgressFn)> {
    if off || !crate::progress::shown(g) {
        return None;
    }
    let spinner = crate::progress::spinner(g, "scanning");
    let s = spinner.clone();
    let f: tokenward::scan::ProgressFn = Arc::new(move |p: &Progress| {
        s.set_message(format!("scanned {} file(s), {:.1} MiB", p.files, p.bytes as f64 / (1 << 20) as f64));
    });
    Some((spinner, f))
}

pub(crate) async fn run(g: &Global, a: ScanArgs) -> Result<u8> {
    let target = target(&a.target)?;
    // SARIF's `%SRCROOT%`: the directory or repository scanned (its paths are relative to it);
    // a file is shown as given, relative to here.
    let root = match &target {
        Target::Tree(p) if !p.is_file() => p.clone(),
        Target::Git(p) => p.clone(),
        Target::Tree(_) => PathBuf::from("."),
        Target::Image(_) | Target::S3 { .. } => PathBuf::from("."),
    };
    let mut rules = RuleSet::builtin().with_generic(!a.no_generic);
    if let Some(path) = &a.rules {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("reading rules {}: {e}", path.display())))?;
        rules = rules.with_toml(&text)?;
    }
    let mut builder = Scanner::builder().rules(rules);
    if let Some(path) = &a.baseline {
        let text = std::fs::read_to_string(path)
            .map_err(|e| CliError::new(format!("reading baseline {}: {e}", path.display())))?;
        builder = builder.baseline(Baseline::parse(&text)?.fingerprints().cloned());
    }
    let scanner = builder.build()?;
    let (spinner, progress) = progress(g, a.no_progress).unzip();
    let unreachable = a.unreachable;
    let gitignore = a.gitignore;
    let (scanner, report) = tokio::task::spawn_blocking(move || {
        let report = match target {
            Target::Tree(p) => {
                let mut o = TreeOptions::default().gitignore(gitignore);
                if let Some(f) = progress {
                    o = o.progress(f);
                }
                scanner.scan_tree(&p, &o)
            }
            Target::Git(p) => {
                let mut o = GitOptions::default().unreachable(unreachable);
                if let Some(f) = progress {
                    o = o.progress(f);
                }
                scanner.scan_git(&p, &o)
            }
            Target::Image(p) => scanner.scan_image(&p, &ImageOptions::default()),
            Target::S3 { bucket, prefix } => S3Options::from_env().and_then(|o| {
                let o = match &prefix {
                    Some(p) => o.prefix(p),
                    None => o,
                };
                scanner.scan_s3(&bucket, &o)
            }),
        };
        (scanner, report)
    })
    .await
    .map_err(|e| CliError::new(format!("the scan stopped: {e}")))?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let report: Report = report?;
    if let Some(path) = &a.write_baseline {
        private_fs::write(path, Baseline::from_report(&report).to_json())
            .map_err(|e| CliError::new(format!("writing baseline {}: {e}", path.display())))?;
        eprintln!("wrote {} fingerprint(s) to {}", report.findings.len(), path.display());
    }
    // A token of ours revoked from under a suppression is a finding all the same (exit 1).
    let revoked = if a.revoke { revoke(g, &report).await? } else { 0 };
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(
            private_fs::create(p).map_err(|e| CliError::new(format!("creating {}: {e}", p.display())))?,
        )),
        None => Box::new(std::io::BufWriter::new(crate::out::Stdout)),
    };
    match a.format {
        ScanFormat::Text => report.write_text(&mut sink, a.out.is_none() && crate::out::color(g))?,
        ScanFormat::Json => report.write_jsonl(&mut sink)?,
        ScanFormat::Sarif => report.write_sarif(&mut sink, scanner.rule_set(), &root)?,
    }
    sink.flush()?;
    Ok(if report.findings.is_empty() && revoked == 0 { 0 } else { 1 })
}

/// Revokes (or, for a declared credential, revokes and replaces) every token of this store the
/// report holds — suppressed ones too — and says what it did on stderr. How many were revoked.
async fn revoke(g: &Global, report: &Report) -> Result<usize> {
    let tw = open::open(g, Need::Audited).await?;
    let response = async {
        let (file, _) = stored(&tw).await?;
        tw.manage_declared(&file, false).await?;
        Ok::<_, CliError>(tw.respond_to_leaks(report).await?)
    }
    .await;
    tw.shutdown().await?;
    let response = response?;
    let revoked = response.revoked();
    for action in response.actions {
        let after =
            action.time_to_revoke.map(|d| format!(" in {:.1} ms", d.as_secs_f64() * 1e3)).unwrap_or_default();
        let what = match &action.outcome {
            LeakOutcome::Replaced { id, name, order: EmergencyOrder::ReplaceFirst } => {
                format!("token {id} replaced and revoked ({name}, replace first){after}")
            }
            LeakOutcome::Replaced { id, name, .. } => {
                format!("token {id} revoked and replaced ({name}){after}")
            }
            LeakOutcome::Revoked { id, revoked } => {
                format!("token {id} revoked ({} with its children){after}", revoked.len())
            }
            LeakOutcome::AlreadyRevoked { id } => format!("token {id} was revoked already"),
            LeakOutcome::Quarantined { id } => format!("token {id} has a tampered record (refused already)"),
            LeakOutcome::NotOurs => "not a token of this store".into(),
            other => format!("{other:?}"),
        };
        let suppressed = action.suppressed.map(|why| format!(" (in spite of the {why})")).unwrap_or_default();
        eprintln!("{}: {what}{suppressed}", action.location);
    }
    Ok(revoked)
}
