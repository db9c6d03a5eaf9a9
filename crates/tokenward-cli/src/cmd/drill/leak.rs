//! One rehearsed leak: a consumer and a prober running, the token written into a tree, a commit
//! (and a bucket), found by the scan, revoked and replaced in the credential's order; each step
//! and the risk window measured.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokenward::core::private_fs;
use tokenward::core::{DenyReason, Request};
use tokenward::rotate::RotationTarget;
use tokenward::scan::{GitOptions, Report, S3Options, Scanner, TreeOptions};
use tokenward::secrecy::ExposeSecret;
use tokenward::store::SecretName;
use tokenward::{EmergencyOrder, LeakOutcome, Tokenward};

use super::bucket::Bucket;
use super::{MOVE_TIMEOUT, Run, ms};
use crate::error::{CliError, Result};

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

/// What the drill works on.
pub(super) struct Drill<'a> {
    pub(super) tw: &'a Tokenward,
    pub(super) name: &'a SecretName,
    pub(super) target: Arc<dyn RotationTarget>,
    pub(super) order: EmergencyOrder,
    pub(super) request: &'a Request,
    pub(super) dir: &'a Path,
    pub(super) bucket: Option<&'a Bucket>,
}

impl Drill<'_> {
    pub(super) async fn once(&self, n: u32) -> Result<Run> {
        let object = self.bucket.map(|b| format!("{}orders.env", b.run_prefix(n)));
        let result = self.once_inner(self.bucket.zip(object.as_deref()), n).await;
        if let (Some(b), Some(key)) = (self.bucket, &object) {
            b.delete(key).await;
        }
        result
    }

    /// The response, in the credential's order. Revoke-first is the leak response itself (as
    /// `scan --revoke` runs it: each finding judged, the token revoked and replaced, each finding
    /// audited); replace-first replaces the credential first, which revokes the leaked token at
    /// the promotion, and then the leak response audits each finding (the token already revoked).
    async fn respond(&self, report: &Report) -> Result<()> {
        if self.order == EmergencyOrder::ReplaceFirst {
            self.tw.revoke_and_replace(self.name, self.target.clone(), self.order).await?;
        }
        let response = self.tw.respond_to_leaks(report).await?;
        let done = |o: &LeakOutcome| match self.order {
            EmergencyOrder::ReplaceFirst => matches!(o, LeakOutcome::AlreadyRevoked { .. }),
            _ => matches!(o, LeakOutcome::Replaced { .. }),
        };
        if !response.actions.iter().any(|a| done(&a.outcome)) {
            return Err(CliError::new(format!(
                "the leak response did not replace the token: {:?}",
                response.actions.iter().map(|a| &a.outcome).collect::<Vec<_>>()
            )));
        }
        Ok(())
    }

    async fn once_inner(&self, bucket: Option<(&Bucket, &str)>, n: u32) -> Result<Run> {
        let (tw, request) = (self.tw, self.request.clone());
        let current = tw.follow(self.name).await?;
        let leaked = current.get();
        let leaked_handle = leaked.handle.clone();
        let stop = Arc::new(AtomicBool::new(false));
        // The consumer: calls every millisecond with whatever credential is current, counting refusals.
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
                            moved_at
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert_with(Instant::now);
                        }
                    } else {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        // The prober: presents the leaked token every millisecond, as its finder would, and notes
        // when it is first refused — the end of the risk window.
        let dead_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
        let prober = {
            let (stop, dead_at) = (stop.clone(), dead_at.clone());
            let verifier = tw.verifier();
            let secret = leaked.secret.clone();
            let request = request.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    if !verifier.unaudited().verify(secret.expose_secret(), &request).is_allowed() {
                        dead_at.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert_with(Instant::now);
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;

        // The leak: a config file in a tree, and the same file committed to a repository.
        let tree = self.dir.join(format!("leak-{n}/tree"));
        let repo = self.dir.join(format!("leak-{n}/repo"));
        let config = tree.join("config");
        private_fs::create_dir_all(&config).map_err(CliError::create(&config))?;
        private_fs::create_dir_all(&repo).map_err(CliError::create(&repo))?;
        let line = format!("ORDERS_API_TOKEN={}\n", leaked.secret.expose_secret());
        let start = Instant::now();
        let planted = tree.join("config/orders.env");
        private_fs::write(&planted, &line).map_err(CliError::write(&planted))?;
        // Written: the risk window opens.
        let written = Instant::now();
        let git_ok = git(&repo, &["init", "-q"]).is_ok();
        if git_ok {
            let committed = repo.join("orders.env");
            private_fs::write(&committed, &line).map_err(CliError::write(&committed))?;
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
        let found = Instant::now();
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

        // Respond: revoke and replace, in the declared order.
        if let Err(e) = self.respond(&report).await {
            stop.store(true, Ordering::Relaxed);
            return Err(e);
        }
        let responded = start.elapsed();
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
        // The prober has seen the refusal by now, or sees it within a poll.
        let dead = loop {
            if let Some(t) = *dead_at.lock().unwrap_or_else(|p| p.into_inner()) {
                break Some(t);
            }
            if !denied || Instant::now() > wait_until {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        stop.store(true, Ordering::Relaxed);
        let _ = consumer.await;
        let _ = prober.await;
        let moved =
            moved.ok_or_else(|| CliError::new("the consumer did not move to the replacement within 5 s"))?;
        let dead = dead.unwrap_or_else(Instant::now);
        let replacement = tw.current_credential(self.name).await?.map(|c| c.handle).unwrap_or_default();
        Ok(Run {
            leaked_token: leaked_handle,
            replacement,
            leak_ms: ms(leak),
            detect_ms: ms(detect - leak),
            respond_ms: ms(responded - detect),
            pipeline_ms: ms(responded - leak),
            risk_window_ms: ms(dead.saturating_duration_since(written)),
            dead_after_found_ms: ms(dead.saturating_duration_since(found)),
            consumer_moved_ms: ms(moved.saturating_duration_since(written)),
            consumer_calls: calls.load(Ordering::Relaxed),
            consumer_failures: failures.load(Ordering::Relaxed),
            leaked_token_denied: denied,
            found_in,
        })
    }
}
