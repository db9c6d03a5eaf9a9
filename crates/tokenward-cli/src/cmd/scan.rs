//! `scan TARGET…`, each a PATH, `git:REPO`, `image:TAR`, `s3://BUCKET[/PREFIX]`, `-` (stdin) or a
//! PostgreSQL database (`postgres://…`, `postgresql://…`, `pg:KEY=VALUE…`): one merged report in
//! text, JSON lines or SARIF; exit 0 clean, 1 findings, 2 an error; `--revoke` revokes and replaces
//! our own on sight.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use tokenward::core::private_fs;
use tokenward::scan::live::LiveValidatorBuilder;
use tokenward::scan::secrecy::SecretString;
use tokenward::scan::{
    Baseline, GitOptions, ImageOptions, Location, PostgresOptions, Progress, Report, RuleSet, S3Options,
    ScanError, Scanner, TreeOptions,
};
use tokenward::{EmergencyOrder, LeakOutcome};

use crate::cli::Global;
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// One or more: PATH, git:REPO, image:TAR_OR_OCI_DIR, s3://BUCKET[/PREFIX], - (stdin),
    /// postgres://USER@HOST:PORT/DB (the port optional; or postgresql://…, or pg:KEY=VALUE…; the password from the
    /// URL or PGPASSWORD). One merged report, one exit code.
    #[arg(required = true, value_name = "TARGET")]
    pub(crate) targets: Vec<String>,
    /// With a database: only this schema (repeatable; default every non-system schema).
    #[arg(long = "schema", value_name = "SCHEMA")]
    pub(crate) schemas: Vec<String>,
    /// With a database: at most this many rows per run (default 10,000,000).
    #[arg(long)]
    pub(crate) max_rows: Option<u64>,
    /// With a database: at most this many bytes of values per run (default 4 GiB).
    #[arg(long)]
    pub(crate) max_bytes: Option<u64>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    pub(crate) format: ScanFormat,
    /// Suppress findings whose fingerprints this baseline holds.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// Write the findings' fingerprints as a baseline.
    #[arg(long)]
    pub(crate) write_baseline: Option<PathBuf>,
    /// Revoke and replace Tokenward tokens of this store that are found, and any declared
    /// credential whose secret is found (its current one replaced in its emergency order, its
    /// previous one revoked); nothing else is touched.
    #[arg(long)]
    pub(crate) revoke: bool,
    /// Ask each found credential's provider whether it still works (opt-in; never by default):
    /// AWS key pairs by STS GetCallerIdentity signed with the pair (the secret key is never sent),
    /// OpenBao/Vault tokens by lookup-self at --openbao-addr only, Tokenward tokens by this store.
    /// Every finding then says valid, invalid (only when the answer proves it dead) or unknown.
    /// The flags are checked before the scan (a bad one: exit 2).
    #[arg(long)]
    pub(crate) validate: bool,
    /// With --validate: the STS endpoint (default AWS's own, in --aws-region): HTTPS, or plain HTTP
    /// to loopback. Requests are signed for REGION when it is an sts.REGION.amazonaws.com URL,
    /// else for --aws-region.
    #[arg(long, value_name = "URL", requires = "validate")]
    pub(crate) aws_sts_endpoint: Option<String>,
    /// With --validate: the region of AWS's STS endpoint, and the one requests are signed for
    /// unless --aws-sts-endpoint names its own.
    #[arg(long, default_value = "us-east-1", requires = "validate")]
    pub(crate) aws_region: String,
    /// With --validate: the one OpenBao/Vault server found tokens are looked up at (without it,
    /// they are not sent anywhere and stay unknown): HTTPS with the platform's roots or
    /// --openbao-ca, or plain HTTP to loopback. lookup-self needs the token's default policy and
    /// consumes one use of a use-limited token; a refusal (403) is unknown, not invalid.
    #[arg(long, value_name = "URL", requires = "validate")]
    pub(crate) openbao_addr: Option<String>,
    /// With --validate: trust this CA (PEM) for --openbao-addr.
    #[arg(long, value_name = "FILE", requires = "openbao_addr")]
    pub(crate) openbao_ca: Option<PathBuf>,
    /// With --validate: at most this many requests a second (1 to 50).
    #[arg(long, default_value_t = 5, value_name = "N", requires = "validate")]
    pub(crate) validate_rate: u32,
    /// With --validate: at most this long in all (up to 1h); what is left is unknown.
    #[arg(long, default_value = "60s", value_name = "DURATION", requires = "validate")]
    pub(crate) validate_budget: String,
    /// With --validate: at most this many requests in all.
    #[arg(long, default_value_t = 200, value_name = "N", requires = "validate")]
    pub(crate) validate_max: usize,
    /// Extra rules (TOML `[[rule]]` tables).
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Do not report generic secrets (high-entropy values assigned to secret-named keys, URL
    /// passwords, Authorization headers; low confidence, on by default).
    #[arg(long)]
    pub(crate) no_generic: bool,
    /// Accepted for compatibility: generic detection is on by default (see --no-generic).
    #[arg(long, hide = true, conflicts_with = "no_generic")]
    pub(crate) generic: bool,
    /// Respect .gitignore files in a tree.
    #[arg(long)]
    pub(crate) gitignore: bool,
    /// With git: also unreachable objects.
    #[arg(long)]
    pub(crate) unreachable: bool,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

enum Target {
    Tree(PathBuf),
    Git(PathBuf),
    Image(PathBuf),
    S3 { bucket: String, prefix: Option<String> },
    Stdin,
    Postgres(Box<PostgresOptions>),
}

impl Target {
    /// How an error names it (a database without its password).
    fn shown(&self) -> String {
        match self {
            Target::Tree(p) => p.display().to_string(),
            Target::Git(p) => format!("git:{}", p.display()),
            Target::Image(p) => format!("image:{}", p.display()),
            Target::S3 { bucket, prefix } => {
                format!("s3://{bucket}/{}", prefix.as_deref().unwrap_or_default())
            }
            Target::Stdin => "stdin".into(),
            Target::Postgres(o) => o.place(),
        }
    }
}

fn target(text: &str, a: &ScanArgs) -> Result<Target> {
    if text == "-" {
        return Ok(Target::Stdin);
    }
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
    let conninfo = if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        Some(text)
    } else {
        text.strip_prefix("pg:")
    };
    if let Some(conninfo) = conninfo {
        let mut o = PostgresOptions::parse(conninfo)?;
        if !o.has_password()
            && let Ok(p) = std::env::var("PGPASSWORD")
        {
            o = o.password(&SecretString::from(p));
        }
        for s in &a.schemas {
            o = o.schema(s);
        }
        if let Some(n) = a.max_rows {
            o = o.max_rows(n);
        }
        if let Some(n) = a.max_bytes {
            o = o.max_bytes(n);
        }
        return Ok(Target::Postgres(Box::new(o)));
    }
    Ok(Target::Tree(PathBuf::from(text)))
}

/// With several targets, a tree's paths are shown from where the scan runs (`dir/a.env`, not
/// `a.env`), so that two trees' findings cannot be told apart only by their order.
fn rooted(report: &mut Report, root: &Path) {
    if !root.is_dir() || root == Path::new(".") {
        return;
    }
    let join = |p: &mut String| *p = root.join(&*p).to_string_lossy().into_owned();
    for f in report.findings.iter_mut().chain(report.suppressed_tokens.iter_mut()) {
        if let Location::File { path, .. } = &mut f.location {
            join(path);
        }
    }
    for s in &mut report.skipped {
        join(&mut s.what);
    }
}

/// Scans one target (blocking); `(gitignore, unreachable)` as the flags say.
fn scan_one(
    scanner: &Scanner,
    target: &Target,
    (gitignore, unreachable): (bool, bool),
    progress: Option<&tokenward::scan::ProgressFn>,
    several: bool,
) -> std::result::Result<Report, ScanError> {
    match target {
        Target::Tree(p) => {
            let mut o = TreeOptions::default().gitignore(gitignore);
            if let Some(f) = progress {
                o = o.progress(f.clone());
            }
            let mut report = scanner.scan_tree(p, &o)?;
            if several {
                rooted(&mut report, p);
            }
            Ok(report)
        }
        Target::Git(p) => {
            let mut o = GitOptions::default().unreachable(unreachable);
            if let Some(f) = progress {
                o = o.progress(f.clone());
            }
            scanner.scan_git(p, &o)
        }
        Target::Image(p) => scanner.scan_image(p, &ImageOptions::default()),
        Target::S3 { bucket, prefix } => S3Options::from_env().and_then(|o| {
            let o = match prefix {
                Some(p) => o.prefix(p),
                None => o,
            };
            scanner.scan_s3(bucket, &o)
        }),
        // Streamed in bounded chunks, whatever its size.
        Target::Stdin => scanner.scan_reader("stdin", std::io::stdin().lock()),
        Target::Postgres(o) => scanner.scan_postgres(o),
    }
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
    // Every target parsed before any is scanned: a typo fails at once.
    let targets = a.targets.iter().map(|t| target(t, &a)).collect::<Result<Vec<_>>>()?;
    if targets.iter().filter(|t| matches!(t, Target::Stdin)).count() > 1 {
        return Err(CliError::new("stdin (-) named more than once"));
    }
    // SARIF's `%SRCROOT%`: the one directory or repository scanned (its paths are relative to it);
    // with several targets, or a file, an image, a bucket, stdin or a database, here (a tree's
    // paths then start with its directory).
    let root = match targets.as_slice() {
        [Target::Tree(p)] if !p.is_file() => p.clone(),
        [Target::Git(p)] => p.clone(),
        _ => PathBuf::from("."),
    };
    let mut rules = RuleSet::builtin().with_generic(!a.no_generic);
    if let Some(path) = &a.rules {
        let text = std::fs::read_to_string(path).map_err(CliError::read(path))?;
        rules = rules.with_toml(&text)?;
    }
    // The validator too (its bounds, its providers' addresses): a bad flag fails before the scan.
    let live = if a.validate { Some(live_validator(&a)?) } else { None };
    let mut builder = Scanner::builder().rules(rules);
    if let Some(path) = &a.baseline {
        let text = std::fs::read_to_string(path).map_err(CliError::read(path))?;
        builder = builder.baseline(Baseline::parse(&text)?.fingerprints().cloned());
    }
    let scanner = builder.build()?;
    let (spinner, progress) = progress(g, a.no_progress).unzip();
    let options = (a.gitignore, a.unreachable);
    // One target's failure stops the run (exit 2, nothing reported): a gate never passes on a
    // target it could not read.
    let (scanner, report) = tokio::task::spawn_blocking(move || {
        let several = targets.len() > 1;
        let mut all = Report::default();
        for t in &targets {
            match scan_one(&scanner, t, options, progress.as_ref(), several) {
                Ok(r) => all.merge(r),
                Err(e) if several => return (scanner, Err(CliError::new(format!("{}: {e}", t.shown())))),
                Err(e) => return (scanner, Err(e.into())),
            }
        }
        (scanner, Ok(all))
    })
    .await
    .map_err(|e| CliError::new(format!("the scan stopped: {e}")))?;
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let report: Report = report?;
    if let Some(path) = &a.write_baseline {
        private_fs::write(path, Baseline::from_report(&report).to_json()).map_err(CliError::write(path))?;
        eprintln!("wrote {} fingerprint(s) to {}", report.findings.len(), path.display());
    }
    let mut report = report;
    if let Some(live) = live {
        validate(g, live, &mut report).await;
    }
    // A token of ours revoked from under a suppression is a finding all the same (exit 1).
    let revoked = if a.revoke { revoke(g, &report).await? } else { 0 };
    let mut sink: Box<dyn Write> = match &a.out {
        Some(p) => Box::new(std::io::BufWriter::new(private_fs::create(p).map_err(CliError::create(p))?)),
        None => Box::new(std::io::BufWriter::new(crate::out::Stdout)),
    };
    let written = match a.format {
        ScanFormat::Text => report.write_text(&mut sink, a.out.is_none() && crate::out::color(g)),
        ScanFormat::Json => report.write_jsonl(&mut sink),
        ScanFormat::Sarif => report.write_sarif(&mut sink, scanner.rule_set(), &root),
    };
    written.and_then(|()| sink.flush()).map_err(CliError::output(a.out.as_deref()))?;
    Ok(if report.findings.is_empty() && revoked == 0 { 0 } else { 1 })
}

/// The providers' checks and the bounds `--validate` asks them within, checked (a bound out of
/// range, an address or CA the client refuses: a usage error, before anything is scanned). Our
/// store's check is added after the scan, when a token of ours is found.
fn live_validator(a: &ScanArgs) -> Result<LiveValidatorBuilder> {
    use std::time::Duration;
    use tokenward::scan::live::{AwsCallerIdentity, LiveValidator, OpenBaoLookupSelf};
    let budget = crate::out::duration(&a.validate_budget, "--validate-budget")?;
    let budget = budget.to_std().map_err(|_| CliError::new("--validate-budget: a positive duration"))?;
    let mut sts = AwsCallerIdentity::new(a.aws_region.clone()).timeout(Duration::from_secs(5));
    if let Some(e) = &a.aws_sts_endpoint {
        sts = sts.endpoint(e).map_err(|e| CliError::new(format!("--aws-sts-endpoint: {e}")))?;
    }
    let mut builder = LiveValidator::builder()
        .check(Arc::new(sts))
        .rate_per_second(a.validate_rate)
        .budget(budget)
        .max_requests(a.validate_max);
    if let Some(addr) = &a.openbao_addr {
        let pem = match &a.openbao_ca {
            Some(ca) => Some(std::fs::read(ca).map_err(CliError::read(ca))?),
            None => None,
        };
        let bao =
            OpenBaoLookupSelf::new(addr, pem).map_err(|e| CliError::new(format!("--openbao-addr: {e}")))?;
        builder = builder.check(Arc::new(bao));
    }
    builder.clone().build()?;
    Ok(builder)
}

/// Asks each finding's provider whether it still works (`--validate`), and says on stderr how
/// many are valid, invalid and unknown. Tokenward tokens are judged by this store when one is
/// found and the store exists; else they stay unknown. Nothing here fails the run: a store that
/// does not open leaves ours unknown, with a warning, and the report (and `--revoke`) go on.
async fn validate(g: &Global, mut builder: LiveValidatorBuilder, report: &mut Report) {
    let ours = report.findings.iter().any(|f| f.rule == tokenward::scan::TOKENWARD_RULE);
    let tw = if ours && (g.database_url().is_some() || g.store.exists()) {
        match open::open(g, Need::ReadOnly).await {
            Ok(tw) => Some(tw),
            Err(e) => {
                tracing::warn!("--validate: our tokens stay unknown: the store did not open: {e}");
                None
            }
        }
    } else {
        None
    };
    if let Some(tw) = &tw {
        builder = builder.check(tw.live_check());
    }
    let summary = match builder.build() {
        Ok(v) => v.validate(report).await,
        // Checked before the scan with the same bounds; a check added since changes none.
        Err(e) => {
            tracing::warn!("--validate: not validated: {e}");
            return;
        }
    };
    if let Some(tw) = tw
        && let Err(e) = tw.shutdown().await
    {
        tracing::warn!("--validate: closing the store: {e}");
    }
    eprintln!(
        "validated: {} valid, {} invalid, {} unknown ({} request(s))",
        summary.valid, summary.invalid, summary.unknown, summary.requests
    );
}

/// Revokes (or, for a declared credential, revokes and replaces) every token of this store the
/// report holds — suppressed ones too — and every found secret of a declared credential (its
/// current one replaced in its emergency order, its previous one revoked), and says what it did
/// on stderr, with the risk window. How many were revoked.
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
            LeakOutcome::CredentialReplaced { name, handle, order: EmergencyOrder::ReplaceFirst } => {
                format!("credential {name} ({handle}) replaced and revoked (replace first){after}")
            }
            LeakOutcome::CredentialReplaced { name, handle, .. } => {
                format!("credential {name} ({handle}) revoked and replaced{after}")
            }
            LeakOutcome::PreviousRevoked { name, handle } => {
                format!("previous credential {name} ({handle}) revoked before its overlap ended{after}")
            }
            LeakOutcome::AlreadyAnswered { name, handle } => {
                format!("credential {name} ({handle}) answered above")
            }
            LeakOutcome::Failed { name, handle, error } => {
                format!("credential {name} ({handle}): the emergency did not finish: {error}")
            }
            LeakOutcome::NotOurs => "not ours (no token of this store, no credential it manages)".into(),
            other => format!("{other:?}"),
        };
        let suppressed = action.suppressed.map(|why| format!(" (in spite of the {why})")).unwrap_or_default();
        // Lower severity, the same answer: the key may have leaked with it.
        let bound = action
            .bound_to
            .map(|key| {
                format!("; lower severity: bound to a key (DPoP, thumbprint {key}), useless without it")
            })
            .unwrap_or_default();
        eprintln!("{}: {what}{suppressed}{bound}", action.location);
    }
    Ok(revoked)
}
