//! `tokenward drill`: rehearse a leak end to end. A consumer keeps calling with a rotated token;
//! the token is leaked into a tree, a git commit and, with `--bucket`, an S3 object; the scan finds it; the leak response revokes
//! and replaces it; the drill checks the leaked token is denied and the consumer moved to the
//! replacement, and measures each step and the risk window (leak written → revoked everywhere).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokenward::audit::{Action, AuditEvent, Outcome};
use tokenward::core::chrono::TimeDelta;
use tokenward::core::private_fs;
use tokenward::core::{DenyReason, IssueRequest, Policy, Principal, Request, Role};
use tokenward::rotate::declare::TokenwardTokenSpec;
use tokenward::scan::{GitOptions, Report, S3Options, Scanner, TreeOptions};
use tokenward::secrecy::{ExposeSecret, ExposeSecretMut, SecretBox};
use tokenward::store::{LocalKek, SecretName};
use tokenward::{LeakOutcome, Tokenward};

use crate::cli::{DrillArgs, Global};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

/// How long the drill waits for the consumer to move to the replacement.
const MOVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
struct Run {
    leaked_token: String,
    replacement: String,
    /// Writing the leak (a file, then a git commit).
    leak_ms: f64,
    /// Scanning the tree and the repository until the token was found.
    detect_ms: f64,
    /// The leak response: revoke (durable) and replace.
    respond_ms: f64,
    /// From the leak written until the token was revoked (durably, in the store every instance
    /// reads): the risk window.
    risk_window_ms: f64,
    /// From the leak written until the consumer called with the replacement.
    consumer_moved_ms: f64,
    /// Consumer calls during the drill, and how many were refused.
    consumer_calls: u64,
    consumer_failures: u64,
    leaked_token_denied: bool,
    found_in: Vec<String>,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn git(dir: &Path, args: &[&str]) -> Result<()> {
    let mut git = std::process::Command::new("git");
    // Hooks (a global core.hooksPath) run with git's environment: no key in it.
    crate::child::withhold_keys(&mut git, &[]);
    let out = git
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=tokenward drill",
            "-c",
            "user.email=drill@tokenward.invalid",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .map_err(|e| CliError::new(format!("running git: {e}")))?;
    if !out.status.success() {
        return Err(CliError::new(format!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A bucket to leak into (`--bucket BUCKET[/PREFIX]`), reached with the standard `AWS_*`
/// environment. The drill's object is deleted again after each run.
struct Bucket {
    client: token_http::aws::AwsClient,
    name: String,
    prefix: String,
}

impl Bucket {
    fn from_arg(text: &str) -> Result<Self> {
        let text = text.strip_prefix("s3://").unwrap_or(text);
        let (name, prefix) = text.split_once('/').unwrap_or((text, ""));
        if name.is_empty() {
            return Err(CliError::new("--bucket: no bucket named (BUCKET or BUCKET/PREFIX)"));
        }
        let creds = token_http::aws::AwsCredentials::from_env()
            .map_err(|e| CliError::new(format!("--bucket {name}: {e}")))?;
        let region = token_http::aws::env_region().unwrap_or_else(|| "us-east-1".to_owned());
        let mut client = token_http::aws::AwsClient::new(region, creds);
        if let Some(endpoint) = token_http::aws::env_endpoint("s3") {
            client = client.endpoint(endpoint);
        }
        Ok(Self { client, name: name.to_owned(), prefix: prefix.to_owned() })
    }

    /// This run's object key prefix: no `/` of our own in it, so a listing's prefix stays plain.
    fn run_prefix(&self, n: u32) -> String {
        format!("{}tokenward-drill-{}-{n}-", self.prefix, std::process::id())
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        let (status, text) = self
            .client
            .rest_put("s3", &format!("/{}/{key}", self.name), body.to_vec())
            .await
            .map_err(|e| CliError::new(format!("leaking into s3://{}: {e}", self.name)))?;
        if !(200..300).contains(&status) {
            let code = token_http::aws::xml::tag(&text, "Code").unwrap_or_else(|| status.to_string());
            return Err(CliError::new(format!("leaking into s3://{}/{key}: {code}", self.name)));
        }
        Ok(())
    }

    async fn delete(&self, key: &str) {
        match self.client.rest_delete("s3", &format!("/{}/{key}", self.name)).await {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, _)) => {
                tracing::warn!(bucket = %self.name, key, status, "the drill's object was not deleted")
            }
            Err(e) => {
                tracing::warn!(bucket = %self.name, key, error = %e, "the drill's object was not deleted")
            }
        }
    }
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
        tokenward::audit::FileSync::Data,
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

async fn once(
    tw: &Tokenward,
    name: &SecretName,
    request: &Request,
    dir: &Path,
    bucket: Option<&Bucket>,
    n: u32,
) -> Result<Run> {
    let object = bucket.map(|b| format!("{}orders.env", b.run_prefix(n)));
    let result = once_inner(tw, name, request, dir, bucket.zip(object.as_deref()), n).await;
    if let (Some(b), Some(key)) = (bucket, &object) {
        b.delete(key).await;
    }
    result
}

async fn once_inner(
    tw: &Tokenward,
    name: &SecretName,
    request: &Request,
    dir: &Path,
    bucket: Option<(&Bucket, &str)>,
    n: u32,
) -> Result<Run> {
    let request = request.clone();
    let current = tw.follow(name).await?;
    let leaked = current.get();
    let leaked_handle = leaked.handle.clone();
    // The consumer: calls every millisecond with whatever credential is current, counting refusals.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let moved_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let consumer = {
        let (stop, calls, failures, moved_at) =
            (stop.clone(), calls.clone(), failures.clone(), moved_at.clone());
        let verifier = tw.verifier();
        let leaked_handle = leaked_handle.clone();
        let request = request.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let c = current.get();
                calls.fetch_add(1, Ordering::Relaxed);
                if verifier.unaudited().verify(c.secret.expose_secret(), &request).is_allowed() {
                    if c.handle != leaked_handle {
                        moved_at.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Instant::now);
                    }
                } else {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;

    // The leak: a config file in a tree, and the same file committed to a repository.
    let tree = dir.join(format!("leak-{n}/tree"));
    let repo = dir.join(format!("leak-{n}/repo"));
    private_fs::create_dir_all(tree.join("config"))?;
    private_fs::create_dir_all(&repo)?;
    let line = format!("ORDERS_API_TOKEN={}\n", leaked.secret.expose_secret());
    let start = Instant::now();
    private_fs::write(tree.join("config/orders.env"), &line)?;
    let git_ok = git(&repo, &["init", "-q"]).is_ok();
    if git_ok {
        private_fs::write(repo.join("orders.env"), &line)?;
        git(&repo, &["add", "."])?;
        git(&repo, &["commit", "-q", "-m", "add orders config"])?;
    }
    if let Some((b, key)) = bucket {
        b.put(key, line.as_bytes()).await?;
    }
    drop(line);
    let leak = start.elapsed();

    // Detect.
    let scanner = Scanner::new()?;
    let (tree2, repo2) = (tree.clone(), repo.clone());
    let s3 = match bucket {
        Some((b, _)) => Some((b.name.clone(), S3Options::from_env()?.prefix(&b.run_prefix(n)))),
        None => None,
    };
    let report: Report = tokio::task::spawn_blocking(move || -> Result<Report> {
        let mut r = scanner.scan_tree(&tree2, &TreeOptions::default())?;
        if git_ok {
            r.merge(scanner.scan_git(&repo2, &GitOptions::default())?);
        }
        if let Some((bucket, options)) = s3 {
            r.merge(scanner.scan_s3(&bucket, &options)?);
        }
        Ok(r)
    })
    .await
    .map_err(|e| CliError::new(format!("the scan stopped: {e}")))??;
    let detect = start.elapsed();
    let found_in: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule == tokenward::scan::TOKENWARD_RULE)
        .map(|f| f.location.to_string())
        .collect();
    if found_in.is_empty() {
        stop.store(true, Ordering::Relaxed);
        return Err(CliError::new("the scan did not find the leaked token"));
    }

    // Respond: revoke and replace.
    let response = tw.respond_to_leaks(&report).await?;
    let revoked = start.elapsed();
    let replaced = response.actions.iter().any(|a| matches!(a.outcome, LeakOutcome::Replaced { .. }));
    if !replaced {
        stop.store(true, Ordering::Relaxed);
        return Err(CliError::new(format!(
            "the leak response did not replace the token: {:?}",
            response.actions.iter().map(|a| &a.outcome).collect::<Vec<_>>()
        )));
    }
    let denied = matches!(
        tw.verifier().unaudited().verify(leaked.secret.expose_secret(), &request).reason(),
        Some(DenyReason::Revoked { .. })
    );
    // The consumer moves to the replacement.
    let wait_until = Instant::now() + MOVE_TIMEOUT;
    let moved = loop {
        if let Some(t) = *moved_at.lock().unwrap_or_else(|p| p.into_inner()) {
            break Some(t);
        }
        if Instant::now() > wait_until {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    stop.store(true, Ordering::Relaxed);
    let _ = consumer.await;
    let moved =
        moved.ok_or_else(|| CliError::new("the consumer did not move to the replacement within 5 s"))?;
    let replacement = tw.current_credential(name).await?.map(|c| c.handle).unwrap_or_default();
    Ok(Run {
        leaked_token: leaked_handle,
        replacement,
        leak_ms: ms(leak),
        detect_ms: ms(detect - leak),
        respond_ms: ms(revoked - detect),
        risk_window_ms: ms(revoked),
        consumer_moved_ms: ms(moved.duration_since(start)),
        consumer_calls: calls.load(Ordering::Relaxed),
        consumer_failures: failures.load(Ordering::Relaxed),
        leaked_token_denied: denied,
        found_in,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn html(runs: &[Run], summary: &serde_json::Value) -> String {
    let mut h = String::from(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Tokenward leak drill</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<style>body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1000px;color:#1d2433;background:#f7f8fa}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #e1e5ec}td,th{padding:6px 10px;border-bottom:1px solid #eef1f5;text-align:right}
th{background:#f0f2f6}td:first-child,th:first-child{text-align:left}.ok{color:#067647;font-weight:600}.bad{color:#b42318;font-weight:600}</style></head><body>
<h1>Tokenward leak drill</h1>"#,
    );
    let _ = write!(
        h,
        "<p>{} run(s); risk window p50 <b>{:.1} ms</b>, p90 {:.1} ms, max {:.1} ms; consumer failures {}.</p>",
        runs.len(),
        summary["risk_window_ms"]["p50"].as_f64().unwrap_or(0.0),
        summary["risk_window_ms"]["p90"].as_f64().unwrap_or(0.0),
        summary["risk_window_ms"]["max"].as_f64().unwrap_or(0.0),
        summary["consumer_failures"]
    );
    h.push_str("<table><tr><th>run</th><th>leak ms</th><th>detect ms</th><th>revoke+replace ms</th><th>risk window ms</th><th>consumer moved ms</th><th>calls</th><th>failures</th><th>leaked denied</th></tr>");
    for (i, r) in runs.iter().enumerate() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td><td><b>{:.1}</b></td><td>{:.1}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            i + 1,
            r.leak_ms,
            r.detect_ms,
            r.respond_ms,
            r.risk_window_ms,
            r.consumer_moved_ms,
            r.consumer_calls,
            r.consumer_failures,
            if r.leaked_token_denied { "ok" } else { "bad" },
            if r.leaked_token_denied { "yes" } else { "NO" }
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

pub(crate) async fn run(g: &Global, a: DrillArgs) -> Result<u8> {
    let temp;
    let dir: PathBuf = match &a.dir {
        Some(d) => {
            private_fs::create_dir_all(d)?;
            d.clone()
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let (tw, name, request) = match &a.credential {
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
            let target = tw.declared_target(&file, spec).await?;
            if tw.current_credential(&name).await?.is_none() {
                let _ = tw.rotate(&name, target).await?;
            } else {
                tw.manage_declared(&file, false).await?;
            }
            (tw, name, request)
        }
        None => {
            let tw = scratch(&dir).await?;
            let name = SecretName::new("drill/orders-api-token")?;
            let principal = Principal::parse("drill-consumer", ["drill-caller"])?;
            let request = IssueRequest::parse("orders-api", "drill:api/orders:call", TimeDelta::minutes(30))?;
            let _ = tw.rotate(&name, tw.token_target(principal, request)).await?;
            (tw, name, Request::parse("drill:api/orders:call")?)
        }
    };
    let bucket = match &a.bucket {
        Some(text) => Some(Bucket::from_arg(text)?),
        None => None,
    };
    let mut runs = Vec::new();
    let mut failure = None;
    for n in 0..a.repeat.max(1) {
        match once(&tw, &name, &request, &dir, bucket.as_ref(), n).await {
            Ok(r) => runs.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let mut risk: Vec<f64> = runs.iter().map(|r| r.risk_window_ms).collect();
    risk.sort_by(f64::total_cmp);
    let summary = json!({
        "runs": runs.len(),
        "risk_window_ms": {"p50": percentile(&risk, 0.5), "p90": percentile(&risk, 0.9), "max": risk.last().copied().unwrap_or(0.0)},
        "consumer_failures": runs.iter().map(|r| r.consumer_failures).sum::<u64>(),
        "consumer_calls": runs.iter().map(|r| r.consumer_calls).sum::<u64>(),
        "leaked_tokens_denied": runs.iter().all(|r| r.leaked_token_denied),
    });
    if let Some(auditor) = tw.auditor() {
        let mut e = AuditEvent::new(
            tw.clock().now(),
            tw.actor().clone(),
            Action::Drill(if failure.is_none() { "finished" } else { "failed" }.into()),
        )
        .attr("credential", name.as_str())
        .attr("runs", runs.len().to_string())
        .attr("risk_window_p50_ms", format!("{:.1}", percentile(&risk, 0.5)))
        .attr("consumer_failures", summary["consumer_failures"].to_string());
        if let Some(f) = &failure {
            e = e.outcome(Outcome::Failure(f.to_string()));
        }
        auditor.emit_durable(e).await?;
    }
    tw.shutdown().await?;
    if let Some(path) = &a.html {
        private_fs::write(path, html(&runs, &summary))
            .map_err(|e| CliError::new(format!("writing {}: {e}", path.display())))?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&json!({"summary": summary, "runs": runs}))?);
    } else {
        for (i, r) in runs.iter().enumerate() {
            println!(
                "run {}: leak {:.1} ms → detected +{:.1} ms → revoked and replaced +{:.1} ms; risk window {:.1} ms; consumer on the replacement at {:.1} ms, {} of {} calls refused; leaked token denied: {}",
                i + 1,
                r.leak_ms,
                r.detect_ms,
                r.respond_ms,
                r.risk_window_ms,
                r.consumer_moved_ms,
                r.consumer_failures,
                r.consumer_calls,
                r.leaked_token_denied
            );
        }
        println!(
            "risk window p50 {:.1} ms, p90 {:.1} ms, max {:.1} ms over {} run(s)",
            percentile(&risk, 0.5),
            percentile(&risk, 0.9),
            risk.last().copied().unwrap_or(0.0),
            runs.len()
        );
    }
    match failure {
        Some(e) => Err(e),
        None if runs.iter().all(|r| r.leaked_token_denied) => Ok(0),
        None => Err(CliError::new("a leaked token was not denied after the response")),
    }
}
