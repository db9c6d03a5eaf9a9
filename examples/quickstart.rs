//! The Tokenward quickstart: open a deployment on the embedded store in one call, issue a
//! least-privilege token, verify it, watch it be denied out of scope and after expiry, seal a
//! cloud credential, revoke a token tree, reopen under the passphrase, rotate a token while a
//! consumer keeps calling with it, declare emergencies in both orders, check the files hold no
//! secret, and print what the hash-chained audit log says the token did.
//! Exits non-zero if any step does not behave. `RUST_LOG=info` shows the library's tracing.
//!
//! `cargo run --release --example quickstart`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokenward::audit::{Action, AuditQuery, CheckpointSigner, FileLog, LogStorage, verify_file};
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::limits::{CHECKSUM_LEN, SECRET_LEN};
use tokenward::core::*;
use tokenward::rotate::{Rotation, Step};
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward::{EmergencyOrder, FailureMode, Tokenward, TokenwardBuilder, Upkeep};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(format!("step did not behave: {what}").into()) }
}

fn policy() -> Result<Policy> {
    Ok(Policy::builder()
        .role(Role::parse("log-reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
        .max_ttl(TimeDelta::days(30))
        .build()?)
}

/// The whole deployment: embedded store, passphrase, token format and policy, a fail-closed audit
/// log with signed checkpoints. Upkeep sweeps often so the demo's 200 ms overlaps end on time.
fn deployment(dir: &Path, pass: &SecretString, signer: &CheckpointSigner) -> Result<TokenwardBuilder> {
    Ok(Tokenward::embedded(dir.join("tokenward.db"))
        .passphrase(pass.clone())
        .prefix("acme_prod")
        .policy(policy()?)
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .checkpoint_signer(CheckpointSigner::from_seed(&signer.to_seed()), "quickstart")
        .overlap(TimeDelta::milliseconds(200))
        .upkeep(Upkeep::new().sweep_every(Duration::from_millis(20))))
}

async fn run(dir: &Path) -> Result<()> {
    let pass = SecretString::from(
        std::env::var("TOKENWARD_PASSPHRASE").unwrap_or_else(|_| "demo passphrase, change me".into()),
    );
    let signer = CheckpointSigner::generate()?;
    let tw = deployment(dir, &pass, &signer)?.open().await?;
    println!(
        "1. opened the embedded store under a passphrase (Argon2id → AES-256-GCM key), audit log attached"
    );
    println!(
        "   role `log-reader` grants s3:bucket/prod-logs/**:read for at most 1h; `billing-api` holds it"
    );
    let principal = Principal::parse("billing-api", ["log-reader"])?;

    // Issue a token for one purpose: narrower than the role, 15 minutes.
    let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
    let token = tw.issue(&principal, &request).await?;
    let text = token.expose_secret().to_owned();
    let shown =
        format!("{}…{}", &text[..text.len() - SECRET_LEN - CHECKSUM_LEN], &text[text.len() - CHECKSUM_LEN..]);
    println!(
        "2. issued {shown} (id {}, secret withheld), expires {}",
        token.id(),
        token.expires_at().format("%H:%M:%S")
    );
    let stored = tw.backend().token(token.id()).await?.ok_or("issued token not stored")?;
    println!("   the store keeps only {:?}", stored.record.digest);

    // Verify: allowed for its scope, denied outside it, refused when mistyped, denied after expiry.
    let verifier = tw.verifier();
    let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
    let d = verifier.verify(&text, &read);
    println!("3. {read} → {d}");
    check(d.is_allowed(), "in-scope read allowed")?;
    let write = Request::parse("s3:bucket/prod-logs/app.log:write")?;
    let d = verifier.verify(&text, &write);
    println!("4. {write} → {d}");
    check(d.reason() == Some(&DenyReason::OutOfScope), "out-of-scope write denied")?;
    let last = if text.ends_with('x') { 'y' } else { 'x' };
    let typo = format!("{}{last}", &text[..text.len() - 1]);
    let d = verifier.verify(&typo, &read);
    println!("5. the token with its last character changed → {d}");
    check(matches!(d.reason(), Some(DenyReason::Malformed(_))), "mistyped token refused")?;
    let later = Arc::new(clocks::ManualClock::new(Utc::now() + TimeDelta::minutes(16)));
    let d = verifier.with_clock(later).verify(&text, &read);
    println!("6. 16 minutes later → {d}");
    check(matches!(d.reason(), Some(DenyReason::Expired { .. })), "expired token denied")?;

    // Seal a cloud credential the service must present upstream, as current.
    let cloud_key = "AKIAQUICKSTART0EXAMPLE/wJalrXUtnFEMI/K7MDENG";
    let name = SecretName::new("billing-api/aws-access-key")?;
    let v = tw.seal_current(&name, cloud_key.as_bytes()).await?;
    println!(
        "7. sealed the service's cloud key as {name} v{v} (own data key, wrapped by the passphrase key)"
    );

    // Revoke a second token (and its child) durably.
    let deploy =
        IssueRequest::parse("deploy", "s3:bucket/prod-logs/releases/*:read", TimeDelta::minutes(30))?;
    let doomed = tw.issue(&principal, &deploy).await?;
    let child = tw
        .issue_child(
            doomed.expose_secret(),
            &ChildRequest::parse(
                "one-release",
                "s3:bucket/prod-logs/releases/v1:read",
                TimeDelta::minutes(5),
            )?,
        )
        .await?;
    let revoked = tw.revoke(doomed.id()).await?;
    println!(
        "8. revoked token {} and its child: {} tokens, fsynced before the call returned",
        doomed.id(),
        revoked.len()
    );
    check(revoked.len() == 2, "revoking a parent revokes its child")?;
    let (doomed, child) = (doomed.into_secret(), child.into_secret());
    // A checkpoint of the audit log, signed: kept elsewhere, it pins the log's length and head.
    let checkpoint = tw.checkpoint().await?.ok_or("no checkpoint")?;
    tw.shutdown().await?;
    drop(tw);

    // Reopen under the passphrase: the revoked stay denied, the good token still verifies, the
    // sealed key opens, a wrong passphrase is refused.
    let tw = deployment(dir, &pass, &signer)?.open().await?;
    let verifier = tw.verifier();
    let release = Request::parse("s3:bucket/prod-logs/releases/v1:read")?;
    let d1 = verifier.verify(doomed.expose_secret(), &release);
    let d2 = verifier.verify(child.expose_secret(), &release);
    println!("9. reopened: the revoked token → {d1}; its child → {d2}");
    check(!d1.is_allowed() && !d2.is_allowed(), "revoked tokens denied after reopening")?;
    check(verifier.verify(&text, &read).is_allowed(), "the good token still verifies after reopening")?;
    let opened = tw.read_current(&name).await?.ok_or("sealed key missing")?;
    check(opened.expose_secret().as_slice() == cloud_key.as_bytes(), "sealed key opens after reopening")?;
    let wrong = Tokenward::embedded(dir.join("tokenward.db"))
        .passphrase(SecretString::from("wrong"))
        .policy(policy()?)
        .open()
        .await;
    println!("   a wrong passphrase → {}", wrong.err().map(|e| e.to_string()).unwrap_or_default());
    let leaked = rotation(&tw, &principal).await?;
    tw.shutdown().await?;
    drop(tw);

    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let data = std::fs::read(entry?.path())?;
        bytes += data.len();
        for (what, needle) in [
            ("token", text.as_bytes()),
            ("cloud key", cloud_key.as_bytes()),
            ("secret part", &text.as_bytes()[text.len() - 49..text.len() - 6]),
            ("mistyped token", typo.as_bytes()),
            ("passphrase", pass.expose_secret().as_bytes()),
        ]
        .into_iter()
        .chain(leaked.iter().map(|l| ("rotated token", l.as_bytes())))
        {
            check(
                !data.windows(needle.len()).any(|w| w == needle),
                &format!("no plaintext {what} in the store's files"),
            )?;
        }
    }
    println!(
        "13. searched the store's and audit log's files ({bytes} bytes): no token, token secret, cloud key \
         or passphrase in plaintext"
    );

    // What did the token do? The audit log answers, and proves it was not edited or cut.
    let log_path = dir.join("audit.jsonl");
    let log = FileLog::open(&log_path)?;
    let trail = log.query(&AuditQuery::new().token(token.id())).await?;
    println!("14. the audit trail of token {}:", token.id());
    for e in &trail {
        println!("      #{:<3} {}", e.seq, e.event);
    }
    let actions: Vec<&str> = trail.iter().map(|e| e.event.action.name()).collect();
    check(
        actions == ["issue", "verify_allowed", "verify_denied", "verify_denied", "verify_allowed"],
        "the trail holds the issue and every verification",
    )?;
    check(
        trail.iter().any(|e| e.event.action == Action::VerifyDenied("out_of_scope".into())),
        "reason kept",
    )?;
    let steps = log.query(&AuditQuery::new().action("rotate")).await?;
    let declared = steps.iter().filter(|e| e.event.action == Action::Rotate("emergency".into())).count();
    check(declared == 2, "both emergencies are in the log")?;
    let pinned = signer.public_key().verify_for(&checkpoint, "quickstart")?.chain_head();
    let head = verify_file(&log_path, &[pinned])?;
    println!(
        "    the log's {} entries verify from the first, and against the checkpoint signed at step 8 \
         (entry {}, key {}…)",
        head.len,
        pinned.len - 1,
        &signer.public_key().to_string()[..16]
    );
    Ok(())
}

/// Steps 10 to 12: rotate a token while a consumer keeps calling with it, then emergencies in both
/// orders. Returns the rotated tokens' texts, for the file search.
async fn rotation(tw: &Tokenward, principal: &Principal) -> Result<Vec<String>> {
    let target = tw.token_target(
        principal.clone(),
        IssueRequest::parse("ship-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?,
    );
    let name = SecretName::new("billing-api/ship-logs-token")?;
    let _ = tw.rotate(&name, target.clone()).await?;
    let handle = Arc::new(tw.follow(&name).await?);
    let mut texts = vec![handle.get().secret.expose_secret().to_owned()];
    // A consumer: a protected call in a loop on a thread of its own, always with the current token.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let consumer = std::thread::spawn({
        let (verifier, handle, stop, calls, failed) =
            (tw.tokens().verifier(), handle.clone(), stop.clone(), calls.clone(), failed.clone());
        let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
        move || {
            while !stop.load(Ordering::Relaxed) {
                let cred = handle.get();
                if !verifier.verify(cred.secret.expose_secret(), &read).is_allowed() {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
                std::thread::yield_now();
            }
        }
    });
    let idle = || async {
        // The handle's upkeep revokes the previous token when its overlap ends.
        for _ in 0..200 {
            if tw.rotator().record(&name).await?.step == Step::Idle {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err::<(), Box<dyn std::error::Error>>("the previous token was not revoked after its overlap".into())
    };
    let mut took = Vec::new();
    for _ in 0..3 {
        idle().await?;
        let started = std::time::Instant::now();
        let outcome = tw.rotate(&name, target.clone()).await?;
        took.push(started.elapsed());
        check(matches!(outcome, Rotation::Promoted { .. }), "rotation promoted")?;
        texts
            .push(tw.current_credential(&name).await?.ok_or("no current")?.secret.expose_secret().to_owned());
    }
    idle().await?;
    let during = (calls.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "10. rotated `{name}` 3 times (create → deploy → test → promote; the previous revoked by the upkeep \
         after a 200 ms overlap), each in {}; a consumer made {} calls meanwhile, {} failed",
        took.iter().map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", "),
        during.0,
        during.1
    );
    check(during.1 == 0, "no consumer call fails during rotations")?;

    // The token leaks: revoke it and replace it through the same state machine, in each order.
    for (step, order) in [(11, EmergencyOrder::RevokeFirst), (12, EmergencyOrder::ReplaceFirst)] {
        let leaked = tw.current_credential(&name).await?.ok_or("no current token")?;
        let failed_before = failed.load(Ordering::Relaxed);
        let report = tw.revoke_and_replace(&name, target.clone(), order).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let verifier = tw.tokens().verifier();
        let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
        let new = tw.current_credential(&name).await?.ok_or("no replacement")?;
        check(!verifier.verify(leaked.secret.expose_secret(), &read).is_allowed(), "leaked token denied")?;
        check(verifier.verify(new.secret.expose_secret(), &read).is_allowed(), "replacement works")?;
        check(handle.get().handle == new.handle, "the consumer picked up the replacement")?;
        texts.push(new.secret.expose_secret().to_owned());
        println!(
            "{step}. emergency, {}: token {} revoked after {:.2} ms, replacement {} current after {:.2} ms; \
             consumer calls denied meanwhile: {}",
            order.name().replace('_', " "),
            report.revoked,
            report.revoked_after.as_secs_f64() * 1e3,
            new.handle,
            report.replaced_after.as_secs_f64() * 1e3,
            failed.load(Ordering::Relaxed) - failed_before
        );
    }
    stop.store(true, Ordering::Relaxed);
    consumer.join().map_err(|_| "consumer thread panicked")?;
    Ok(texts)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    }
    println!("Tokenward quickstart: least privilege, mandatory expiry, sealed at rest, durable revocation\n");
    let dir = std::env::temp_dir().join(format!("tokenward-quickstart-{}", std::process::id()));
    let result = match std::fs::create_dir_all(&dir) {
        Ok(()) => run(&dir).await,
        Err(e) => Err(e.into()),
    };
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(()) => {
            println!("\nquickstart: every step behaved");
            println!(
                "next: the same from a shell — `cargo run -p tokenward-cli -- --help`, a tour in docs/cli.md \
                 (policy as code, run, scan --revoke, report, drill)"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nquickstart FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
