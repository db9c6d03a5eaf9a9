//! `tokenward drill`: rehearse a leak end to end. A consumer keeps calling with a rotated token;
//! the token is leaked into a tree, a git commit and, with `--bucket`, an S3 object; the scan finds
//! it; the credential is revoked and replaced in its declared emergency order (`revoke-first` or
//! `replace-first`); the drill checks the leaked token is denied and the consumer moved to the
//! replacement. It measures the pipeline (writing, detection, response) and, apart from it, the
//! risk window: from the moment the leak is written to the moment the leaked token is refused, as
//! an independent prober presenting it every millisecond sees it.

mod bucket;
mod html;
mod leak;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use tokenward::audit::{Action, AuditEvent, Outcome};
use tokenward::core::chrono::{DateTime, TimeDelta, Utc};
use tokenward::core::private_fs;
use tokenward::core::{IssueRequest, Policy, Principal, Request, Role};
use tokenward::rotate::RotationTarget;
use tokenward::rotate::declare::TokenwardTokenSpec;
use tokenward::secrecy::{ExposeSecretMut, SecretBox};
use tokenward::store::{LocalKek, SecretName};
use tokenward::{EmergencyOrder, Tokenward};
use tokenward_test_support::stats::percentile;

use self::bucket::Bucket;
use self::leak::Drill;
use crate::cli::{Global, Output};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Args)]
pub(crate) struct DrillArgs {
    /// Rehearse on this declared credential (a Tokenward token) of the store given by --store
    /// (staging); without it the drill makes a scratch store and throws it away.
    #[arg(long)]
    pub(crate) credential: Option<String>,
    /// Where to plant the leak (a tree and a git repository are made there; default: a temp dir).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Also leak into this S3 bucket (`BUCKET` or `BUCKET/PREFIX`; credentials, region and
    /// endpoint from the standard `AWS_*` variables). The drill deletes its object after each run.
    #[arg(long, value_name = "BUCKET[/PREFIX]")]
    pub(crate) bucket: Option<String>,
    /// Run the drill this many times (percentiles of the risk window).
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: u32,
    /// Also write an HTML page of the results.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// The emergency order of the scratch drill's credential (a `--credential` drill runs the one
    /// declared for it).
    #[arg(long, value_enum, default_value_t = DrillOrder::RevokeFirst, conflicts_with = "credential")]
    pub(crate) emergency: DrillOrder,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// An emergency order, as declared in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DrillOrder {
    /// Revoke the leaked token, then replace it.
    RevokeFirst,
    /// Replace it, then revoke the leaked token.
    ReplaceFirst,
}

/// How long the drill waits for the consumer to move to the replacement.
const MOVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One rehearsed leak. Times are from the moment the leak was written (the first file holding
/// the token), except the pipeline's own steps, which are each step's duration.
#[derive(Debug, Clone, Serialize)]
struct Run {
    leaked_token: String,
    replacement: String,
    /// Writing the leak (a file, a git commit and, with `--bucket`, an object).
    leak_ms: f64,
    /// Scanning the tree, the repository (and the bucket) until the token was found.
    detect_ms: f64,
    /// The response: revoke and replace, in the credential's emergency order (durable).
    respond_ms: f64,
    /// The pipeline's own latency: detection and response (`detect_ms + respond_ms`).
    pipeline_ms: f64,
    /// The risk window: from the leak written until the leaked token was refused (revoked, as
    /// every verifier of the store sees it). Measured by a prober, not derived from the steps.
    risk_window_ms: f64,
    /// Of the risk window, the part after the token was found: what the emergency order sets
    /// (short for `revoke-first`, a whole replacement for `replace-first`).
    dead_after_found_ms: f64,
    /// From the leak written until the consumer called with the replacement.
    consumer_moved_ms: f64,
    /// Consumer calls during the drill, and how many were refused.
    consumer_calls: u64,
    consumer_failures: u64,
    leaked_token_denied: bool,
    found_in: Vec<String>,
}

/// What was drilled: where, on which credential, when, in which order.
#[derive(Debug, Clone, Serialize)]
struct Subject {
    /// The store (`scratch` for a thrown-away one, its path, or `postgres`).
    store: String,
    credential: String,
    /// `revoke_first` or `replace_first`.
    emergency_order: &'static str,
    started_at: DateTime<Utc>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The scratch deployment: a new store under a random key, a drill policy.
async fn scratch(dir: &Path) -> Result<Tokenward> {
    let mut key = SecretBox::new(Box::new([0u8; 32]));
    rand::TryRng::try_fill_bytes(&mut rand::rngs::SysRng, key.expose_secret_mut())
        .map_err(|_| CliError::new("the operating system's random number generator failed"))?;
    let kek = LocalKek::from_key("drill", key)?;
    let policy = Policy::builder()
        .role(Role::parse("drill-caller", "drill:api/**:call", TimeDelta::hours(1))?)
        .build()?;
    let log = tokenward::audit::FileLog::open_shared(
        dir.join("drill.audit.jsonl"),
        tokenward::audit::file::FileSync::Data,
    )?;
    Ok(Tokenward::embedded(dir.join("drill.db"))
        .key_provider(Arc::new(kek))
        .prefix("drill")
        .policy(policy)
        .overlap(TimeDelta::seconds(1))
        .audit_storage(Arc::new(log), tokenward::FailureMode::FailClosed)
        .open()
        .await?)
}

/// A concrete request one of `scope`'s grants allows: wildcards filled in.
fn request_within(scope: &str) -> Result<Request> {
    let filled: Vec<String> = scope
        .split(':')
        .map(|part| {
            part.split('/')
                .map(|seg| {
                    if seg.contains('*') {
                        seg.replace("**", "drill").replace('*', "drill")
                    } else {
                        seg.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    Ok(Request::parse(&filled.join(":"))?)
}

/// The summary of the runs.
#[derive(Debug, Clone, Serialize)]
struct Summary {
    runs: usize,
    risk_window_ms: Percentiles,
    pipeline_ms: Percentiles,
    consumer_failures: u64,
    consumer_calls: u64,
    leaked_tokens_denied: bool,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Percentiles {
    p50: f64,
    p90: f64,
    max: f64,
}

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self {
            p50: percentile(&values, 0.5),
            p90: percentile(&values, 0.9),
            max: values.last().copied().unwrap_or(0.0),
        }
    }
}

/// The store the drill names: never a database URL (it may hold a password).
fn store_name(g: &Global, scratch: bool, dir: &Path) -> String {
    if scratch { format!("scratch ({})", dir.join("drill.db").display()) } else { g.store_name() }
}

fn order_of(o: DrillOrder) -> EmergencyOrder {
    match o {
        DrillOrder::RevokeFirst => EmergencyOrder::RevokeFirst,
        DrillOrder::ReplaceFirst => EmergencyOrder::ReplaceFirst,
    }
}

pub(crate) async fn run(g: &Global, a: DrillArgs) -> Result<u8> {
    let temp;
    let dir: PathBuf = match &a.dir {
        Some(d) => {
            private_fs::create_dir_all(d).map_err(CliError::create(d))?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| CliError::new(format!("cannot create a temporary directory: {e}")))?;
            temp.path().to_path_buf()
        }
    };
    let (tw, name, request, target, order) = match &a.credential {
        Some(cred) => {
            let tw = open::open(g, Need::Audited).await?;
            let (file, _) = stored(&tw).await?;
            let spec = file.credential(cred).ok_or_else(|| {
                CliError::new(format!("no credential {cred} is declared in the stored policy"))
            })?;
            let Some(TokenwardTokenSpec { scopes, .. }) = spec.target.settings() else {
                return Err(CliError::new(format!("{cred}: a drill needs a Tokenward token credential")));
            };
            let request = request_within(scopes.first().map(String::as_str).unwrap_or_default())?;
            let name = spec.secret_name()?;
            let order = spec.emergency_order()?;
            let target = tw.declared_target(&file, spec).await?;
            if tw.current_credential(&name).await?.is_none() {
                let _ = tw.rotate(&name, target.clone()).await?;
            } else {
                tw.manage_declared(&file, false).await?;
            }
            (tw, name, request, target, order)
        }
        None => {
            let tw = scratch(&dir).await?;
            let name = SecretName::new("drill/orders-api-token")?;
            let principal = Principal::parse("drill-consumer", ["drill-caller"])?;
            let request = IssueRequest::parse("orders-api", "drill:api/orders:call", TimeDelta::minutes(30))?;
            let target: Arc<dyn RotationTarget> = tw.token_target(principal, request);
            let _ = tw.rotate(&name, target.clone()).await?;
            (tw, name, Request::parse("drill:api/orders:call")?, target, order_of(a.emergency))
        }
    };
    let subject = Subject {
        store: store_name(g, a.credential.is_none(), &dir),
        credential: a.credential.clone().unwrap_or_else(|| name.as_str().to_owned()),
        emergency_order: order.name(),
        started_at: tw.clock().now(),
    };
    let bucket = match &a.bucket {
        Some(text) => Some(Bucket::from_arg(text)?),
        None => None,
    };
    let drill =
        Drill { tw: &tw, name: &name, target, order, request: &request, dir: &dir, bucket: bucket.as_ref() };
    let mut runs = Vec::new();
    let mut failure = None;
    for n in 0..a.repeat.max(1) {
        match drill.once(n).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let summary = Summary {
        runs: runs.len(),
        risk_window_ms: Percentiles::of(runs.iter().map(|r| r.risk_window_ms).collect()),
        pipeline_ms: Percentiles::of(runs.iter().map(|r| r.pipeline_ms).collect()),
        consumer_failures: runs.iter().map(|r| r.consumer_failures).sum(),
        consumer_calls: runs.iter().map(|r| r.consumer_calls).sum(),
        leaked_tokens_denied: runs.iter().all(|r| r.leaked_token_denied),
    };
    if let Some(auditor) = tw.auditor() {
        let mut e = AuditEvent::new(
            tw.clock().now(),
            tw.actor().clone(),
            Action::Drill(if failure.is_none() { "finished" } else { "failed" }.into()),
        )
        .attr("credential", name.as_str())
        .attr("emergency_order", order.name())
        .attr("runs", runs.len().to_string())
        .attr("risk_window_p50_ms", format!("{:.1}", summary.risk_window_ms.p50))
        .attr("consumer_failures", summary.consumer_failures.to_string());
        if let Some(f) = &failure {
            e = e.outcome(Outcome::Failure(f.to_string()));
        }
        auditor.emit_durable(e).await?;
    }
    tw.shutdown().await?;
    if let Some(path) = &a.html {
        private_fs::write(path, html::page(&subject, &runs, &summary)).map_err(CliError::write(path))?;
    }
    if a.output.json() {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"drill": subject, "summary": summary, "runs": runs})
            )?
        );
    } else {
        println!(
            "drill of {} in {}, {} ({}):",
            subject.credential,
            subject.store,
            crate::out::time(subject.started_at),
            order.name().replace('_', "-")
        );
        for (i, r) in runs.iter().enumerate() {
            println!(
                "run {}: leak written in {:.1} ms → found +{:.1} ms → revoked and replaced +{:.1} ms (pipeline {:.1} ms); risk window {:.1} ms (leak written → token refused; {:.1} ms after it was found); consumer on the replacement at {:.1} ms, {} of {} calls refused; leaked token denied: {}",
                i + 1,
                r.leak_ms,
                r.detect_ms,
                r.respond_ms,
                r.pipeline_ms,
                r.risk_window_ms,
                r.dead_after_found_ms,
                r.consumer_moved_ms,
                r.consumer_failures,
                r.consumer_calls,
                r.leaked_token_denied
            );
        }
        let w = summary.risk_window_ms;
        println!(
            "risk window p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms over {} run(s); pipeline p50 {:.1} ms",
            w.p50,
            w.p90,
            w.max,
            runs.len(),
            summary.pipeline_ms.p50
        );
    }
    match failure {
        Some(e) => Err(e),
        None if runs.iter().all(|r| r.leaked_token_denied) => Ok(0),
        None => Err(CliError::new("a leaked token was not denied after the response")),
    }
}
