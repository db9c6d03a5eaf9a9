//! The Tokenward quickstart: define a role, issue a least-privilege token into the embedded store,
//! verify it, watch it be denied out of scope and after expiry, seal a cloud credential, revoke a
//! token, reopen the store under its passphrase, check the files hold no secret, and print what the
//! hash-chained audit log says the token did. Between, it rotates a token while a consumer keeps
//! calling with it, and performs an emergency revoke-and-replace.
//! Exits non-zero if any step does not behave.
//!
//! `cargo run --release --example quickstart`

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokenward::audit::{
    Action, AuditWriter, AuditedVerifier, Auditor, CheckpointSigner, FailureMode, FileLog, LogStorage, Query,
    SubjectKey, WriterConfig, verify_file,
};
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::*;
use tokenward::rotate::{CurrentCredential, Rotation, Rotator, TokenTarget};
use tokenward::store::secrecy::{ExposeSecret, SecretString};
use tokenward::store::{Backend, Label, LabelChange, SecretName, SecretStore, SqliteBackend, Tokens};

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

async fn open(path: &std::path::Path, pass: &SecretString, audit: &Auditor) -> Result<(Tokens, SecretStore)> {
    let backend = Arc::new(SqliteBackend::open(path)?) as Arc<dyn Backend>;
    let secrets = SecretStore::open_with_passphrase(Arc::clone(&backend), pass, None).await?;
    let format = TokenFormat::new(TokenPrefix::new("acme_prod")?);
    let tokens = Tokens::open(backend, &secrets, format, policy()?, 100_000).await?.with_audit(audit.clone());
    Ok((tokens, secrets))
}

/// The audit log: a file of hash-chained JSON lines, group-committed, failing closed.
fn audit_log(path: &std::path::Path) -> Result<(Arc<AuditWriter>, Auditor)> {
    let writer = Arc::new(AuditWriter::start(Arc::new(FileLog::open(path)?), WriterConfig::default())?);
    let auditor = Auditor::new(writer.clone(), FailureMode::FailClosed);
    Ok((writer, auditor))
}

async fn run(dir: &std::path::Path) -> Result<()> {
    let path = dir.join("tokenward.db");
    let pass = SecretString::from(
        std::env::var("TOKENWARD_PASSPHRASE").unwrap_or_else(|_| "demo passphrase, change me".into()),
    );
    let log_path = dir.join("audit.jsonl");
    let (writer, auditor) = audit_log(&log_path)?;
    let (tokens, secrets) = open(&path, &pass, &auditor).await?;
    println!(
        "1. opened the embedded store {} under a passphrase (Argon2id → AES-256-GCM key)",
        path.display()
    );
    println!(
        "   role `log-reader` grants s3:bucket/prod-logs/**:read for at most 1h; `billing-api` holds it"
    );
    let principal = Principal::parse("billing-api", ["log-reader"])?;

    // Issue a token for one purpose: narrower than the role, 15 minutes.
    let now = Utc::now();
    let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
    let token = tokens.issue_at(&principal, &request, now).await?;
    let text = token.expose_secret().to_owned();
    let shown =
        format!("{}…{}", &text[..text.len() - SECRET_LEN - CHECKSUM_LEN], &text[text.len() - CHECKSUM_LEN..]);
    println!(
        "2. issued {shown} (id {}, secret withheld), expires {}",
        token.id(),
        token.expires_at().format("%H:%M:%S")
    );
    let stored = tokens.backend().token(token.id()).await?.ok_or("issued token not stored")?;
    println!("   the store keeps only {:?}", stored.record.digest);

    // Verify: allowed for its scope, denied outside it, refused when mistyped, denied after expiry.
    let clock = Arc::new(ManualClock::new(now));
    let verifier = AuditedVerifier::new(tokens.verifier().with_clock(clock.clone()), auditor.clone())
        .with_subject_key(SubjectKey::generate()?);
    let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
    let d = verifier.verify(&text, &read);
    println!("3. {read} → {d}");
    check(d.is_allowed(), "in-scope read allowed")?;
    let write = Request::parse("s3:bucket/prod-logs/app.log:write")?;
    let d = verifier.verify(&text, &write);
    println!("4. {write} → {d}");
    check(d.reason() == Some(&DenyReason::OutOfScope), "out-of-scope write denied")?;
    let typo = format!("{}x", &text[..text.len() - 1]);
    let d = verifier.verify(&typo, &read);
    println!("5. the token with its last character changed → {d}");
    check(matches!(d.reason(), Some(DenyReason::Malformed(_))), "mistyped token refused")?;
    clock.advance(TimeDelta::minutes(16));
    let d = verifier.verify(&text, &read);
    println!("6. 16 minutes later → {d}");
    check(matches!(d.reason(), Some(DenyReason::Expired { .. })), "expired token denied")?;

    // Seal a cloud credential the service must present upstream, and label it current.
    let cloud_key = "AKIAQUICKSTART0EXAMPLE/wJalrXUtnFEMI/K7MDENG";
    let name = SecretName::new("billing-api/aws-access-key")?;
    let v = secrets.put(&name, cloud_key.as_bytes()).await?;
    secrets
        .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
        .await?;
    println!(
        "7. sealed the service's cloud key as {name} v{v} (own data key, wrapped by the passphrase key)"
    );

    // Revoke a second token (and its child) durably.
    let deploy =
        IssueRequest::parse("deploy", "s3:bucket/prod-logs/releases/*:read", TimeDelta::minutes(30))?;
    let doomed = tokens.issue_at(&principal, &deploy, now).await?;
    let child = tokens
        .issue_child_at(
            doomed.expose_secret(),
            &ChildRequest::parse(
                "one-release",
                "s3:bucket/prod-logs/releases/v1:read",
                TimeDelta::minutes(5),
            )?,
            now,
        )
        .await?;
    let revoked = tokens.revoke_at(doomed.id(), now).await?;
    println!(
        "8. revoked token {} and its child: {} tokens, fsynced before the call returned",
        doomed.id(),
        revoked.len()
    );
    check(revoked.len() == 2, "revoking a parent revokes its child")?;
    let (doomed, child) = (doomed.into_secret(), child.into_secret());
    // A checkpoint of the audit log, signed: kept elsewhere, it pins the log's length and head.
    let signer = CheckpointSigner::generate()?;
    let checkpoint = writer.checkpoint(&signer, "quickstart", Utc::now()).await?;
    drop((tokens, secrets, verifier, auditor));
    writer.close()?;
    drop(writer); // releases the log file for the next writer

    // Reopen under the passphrase: the revoked stay denied, the good token still verifies, the
    // sealed key opens, and no secret is in the store's files.
    let (writer, auditor) = audit_log(&log_path)?;
    let (tokens, secrets) = open(&path, &pass, &auditor).await?;
    let verifier = tokens.audited_verifier().ok_or("no auditor")?;
    let release = Request::parse("s3:bucket/prod-logs/releases/v1:read")?;
    let d1 = verifier.verify(doomed.expose_secret(), &release);
    let d2 = verifier.verify(child.expose_secret(), &release);
    println!("9. reopened: the revoked token → {d1}; its child → {d2}");
    check(!d1.is_allowed() && !d2.is_allowed(), "revoked tokens denied after reopening")?;
    check(verifier.verify(&text, &read).is_allowed(), "the good token still verifies after reopening")?;
    drop(verifier);
    let (_, opened) = secrets.get_labeled(&name, Label::Current).await?.ok_or("sealed key missing")?;
    check(opened.expose_secret().as_slice() == cloud_key.as_bytes(), "sealed key opens after reopening")?;
    let wrong =
        SecretStore::open_with_passphrase(tokens.backend().clone(), &SecretString::from("wrong"), None).await;
    println!("   a wrong passphrase → {}", wrong.err().map(|e| e.to_string()).unwrap_or_default());
    let (tokens, secrets) = (Arc::new(tokens), Arc::new(secrets));
    let leaked = rotation(&tokens, &secrets, &auditor, &principal).await?;
    drop((tokens, secrets, auditor));
    writer.close()?;
    drop(writer);
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
            ("rotated token", leaked.as_bytes()),
        ] {
            check(
                !data.windows(needle.len()).any(|w| w == needle),
                &format!("no plaintext {what} in the store's files"),
            )?;
        }
    }
    println!(
        "12. searched the store's and audit log's files ({bytes} bytes): no token, token secret, cloud key \
         or passphrase in plaintext"
    );

    // What did the token do? The audit log answers, and proves it was not edited or cut.
    let log = FileLog::open(&log_path)?;
    let trail = log.query(&Query::new().token(token.id())).await?;
    println!("13. the audit trail of token {}:", token.id());
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

/// Steps 10 and 11: rotate a token while a consumer keeps calling with it, then an emergency
/// revoke-and-replace. Returns the leaked (revoked) token's text, for the file search.
async fn rotation(
    tokens: &Arc<Tokens>,
    secrets: &Arc<SecretStore>,
    auditor: &Auditor,
    principal: &Principal,
) -> Result<String> {
    let target = Arc::new(TokenTarget::new(
        tokens.clone(),
        principal.clone(),
        IssueRequest::parse("ship-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?,
    ));
    let overlap = TimeDelta::milliseconds(200);
    let rotator = Rotator::new(secrets.clone(), overlap, Arc::new(SystemClock)).with_audit(auditor.clone());
    let name = SecretName::new("billing-api/ship-logs-token")?;
    let _ = rotator.rotate(&name, target.as_ref()).await?;
    let handle = Arc::new(
        CurrentCredential::follow(
            secrets.clone(),
            name.clone(),
            Some(rotator.subscribe()),
            std::time::Duration::from_millis(50),
        )
        .await?,
    );
    // A consumer: a protected call in a loop on a thread of its own, always with the current token.
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let consumer = std::thread::spawn({
        let (verifier, handle, stop, calls, failed) =
            (tokens.verifier(), handle.clone(), stop.clone(), calls.clone(), failed.clone());
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
    let mut took = Vec::new();
    for _ in 0..3 {
        // The last promotion's overlap ends; its previous token is revoked; the next rotation runs.
        tokio::time::sleep((overlap + TimeDelta::milliseconds(20)).to_std()?).await;
        check(rotator.revoke_previous_if_due(&name, target.as_ref()).await?, "previous revoked")?;
        let started = std::time::Instant::now();
        let outcome = rotator.rotate(&name, target.as_ref()).await?;
        took.push(started.elapsed());
        check(matches!(outcome, Rotation::Promoted { .. }), "rotation promoted")?;
    }
    let during = (calls.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "10. rotated `{name}` 3 times (create → deploy → test → promote; the previous revoked after a {} ms \
         overlap), each in {}; a consumer made {} calls meanwhile, {} failed",
        overlap.num_milliseconds(),
        took.iter().map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3)).collect::<Vec<_>>().join(", "),
        during.0,
        during.1
    );
    check(during.1 == 0, "no consumer call fails during rotations")?;

    // The token leaks: revoke it now and replace it through the same protocol.
    let leaked = rotator.current(&name).await?.ok_or("no current token")?;
    let report = rotator.revoke_and_replace(&name, target.as_ref()).await?;
    let verifier = tokens.verifier();
    let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
    let new = rotator.current(&name).await?.ok_or("no replacement")?;
    check(!verifier.verify(leaked.secret.expose_secret(), &read).is_allowed(), "leaked token denied")?;
    check(verifier.verify(new.secret.expose_secret(), &read).is_allowed(), "replacement works")?;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    stop.store(true, Ordering::Relaxed);
    consumer.join().map_err(|_| "consumer thread panicked")?;
    println!(
        "11. emergency: token {} revoked after {:.2} ms, replacement {} current after {:.2} ms; \
         the consumer picked it up (version {})",
        report.revoked,
        report.revoked_after.as_secs_f64() * 1e3,
        new.handle,
        report.replaced_after.as_secs_f64() * 1e3,
        handle.version()
    );
    Ok(leaked.secret.expose_secret().to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\nquickstart FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
