//! The Tokenward quickstart: define a role, issue a least-privilege token, verify it, watch it be
//! denied out of scope and after expiry. Exits non-zero if any step does not behave.
//!
//! `cargo run --release --example quickstart`

#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::sync::Arc;

use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::*;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(format!("step did not behave: {what}").into()) }
}

fn run() -> Result<()> {
    // 1. A role grants least privilege with a cap on token lifetime; a principal holds the role.
    let policy = Policy::builder()
        .role(Role::parse("log-reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
        .max_ttl(TimeDelta::days(30))
        .build()?;
    let principal = Principal::parse("billing-api", ["log-reader"])?;
    println!(
        "1. role `log-reader` grants s3:bucket/prod-logs/**:read for at most 1h; `billing-api` holds it"
    );

    // 2. Issue a token for one purpose: narrower than the role, 15 minutes.
    let format = TokenFormat::new(TokenPrefix::new("acme_prod")?);
    let keys = DigestKeyring::new(DigestKey::generate(1)?);
    let issuer = Issuer::new(format.clone(), keys.clone(), policy);
    let tokens = Arc::new(MemoryTokens::new());
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let request = IssueRequest::parse("read-logs", "s3:bucket/prod-logs/*:read", TimeDelta::minutes(15))?;
    let token = tokens.issue_at(&issuer, &principal, &request, clock.now())?;
    let text = token.expose_secret();
    let shown =
        format!("{}…{}", &text[..text.len() - SECRET_LEN - CHECKSUM_LEN], &text[text.len() - CHECKSUM_LEN..]);
    println!(
        "2. issued {shown} (id {}, secret withheld), expires {}",
        token.id(),
        token.expires_at().format("%H:%M:%S")
    );
    let record = tokens.get(token.id()).ok_or("issued token not stored")?;
    check(
        !format!("{record:?}").contains(&text[text.len() - SECRET_LEN - CHECKSUM_LEN..]),
        "record holds no secret",
    )?;
    println!("   the store keeps only {:?}", record.digest);

    // 3. Verify: allowed for the scope it carries.
    let verifier = Verifier::new(format, keys, Arc::clone(&tokens)).with_clock(clock.clone());
    let read = Request::parse("s3:bucket/prod-logs/app.log:read")?;
    let d = verifier.verify(text, &read);
    println!("3. {read} → {d}");
    check(d.is_allowed(), "in-scope read allowed")?;

    // 4. Out of scope: denied, with its reason.
    let write = Request::parse("s3:bucket/prod-logs/app.log:write")?;
    let d = verifier.verify(text, &write);
    println!("4. {write} → {d}");
    check(d.reason() == Some(&DenyReason::OutOfScope), "out-of-scope write denied")?;

    // 5. A forged or mistyped token is refused before any lookup.
    let typo = format!("{}x", &text[..text.len() - 1]);
    let d = verifier.verify(&typo, &read);
    println!("5. a token with its last character changed → {d}");
    check(matches!(d.reason(), Some(DenyReason::Malformed(_))), "mistyped token refused")?;

    // 6. Move the clock past expiry: denied.
    clock.advance(TimeDelta::minutes(16));
    let d = verifier.verify(text, &read);
    println!("6. 16 minutes later, {read} → {d}");
    check(matches!(d.reason(), Some(DenyReason::Expired { .. })), "expired token denied")?;
    Ok(())
}

fn main() -> ExitCode {
    println!("Tokenward quickstart: least privilege, mandatory expiry, clear denials\n");
    match run() {
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
