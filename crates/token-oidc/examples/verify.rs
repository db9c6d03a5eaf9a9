//! token-oidc in a few steps, on the crate's test vectors (made by jwcrypto): pin an issuer's
//! JWKS, validate a GitHub Actions OIDC token, match its claims against rules, see a replay, an
//! `alg: none` token and an HS256 token signed with the public key refused; then verify the
//! RFC 9449 example DPoP proof and bind to its key's thumbprint. Exits non-zero if any step does
//! not behave.
//!
//! `cargo run -p token-oidc --example verify`
//!
//! With arguments it validates a real token from stdin, now, against a JWKS file:
//! `cargo run -p token-oidc --example verify -- JWKS_FILE ISSUER AUDIENCE < token.jwt`

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Read as _;
use std::process::ExitCode;

use serde_json::Value;
use token_core::chrono::{DateTime, Utc};
use token_oidc::{
    ClaimError, ClaimRules, DpopError, DpopErrorCode, DpopRequest, DpopVerifier, IssuerKeys, JwtError,
    JwtValidator, Preset, Thumbprint,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn check(ok: bool, what: &str) -> Result<()> {
    if ok { Ok(()) } else { Err(format!("step did not behave: {what}").into()) }
}

fn vectors(name: &str) -> Result<Value> {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    Ok(serde_json::from_slice(&std::fs::read(path)?)?)
}

fn case<'a>(v: &'a Value, name: &str) -> Result<(&'a str, DateTime<Utc>)> {
    let c =
        v["cases"].as_array().and_then(|cs| cs.iter().find(|c| c["name"] == name)).ok_or("no such case")?;
    let token = c["token"].as_str().ok_or("no token")?;
    let now = c["now"].as_i64().and_then(|s| DateTime::from_timestamp(s, 0)).ok_or("no time")?;
    Ok((token, now))
}

async fn tour() -> Result<()> {
    // 1. The issuer's keys, pinned from a file (air-gapped); `IssuerKeys::remote(url)` fetches.
    let keys = IssuerKeys::pinned_file(format!("{}/tests/vectors/jwks.json", env!("CARGO_MANIFEST_DIR")))?;
    println!("pinned {} keys", keys.current().keys().len());
    let github = JwtValidator::builder(
        Preset::GitHubActions.issuer().ok_or("GitHub has one issuer")?,
        "tokenward",
        keys,
    )
    .build()?;

    // 2. A GitHub Actions token (GitHub's documented claim set), at the instant it was made for.
    let v = vectors("jwt.json")?;
    let (token, now) = case(&v, "github_rs256")?;
    let verified = github.validate_at(token, now).await?;
    println!(
        "valid: sub={} alg={} expires {}",
        verified.subject(),
        verified.algorithm(),
        verified.expires_at()
    );

    // 3. Claim rules, exact or `*` globs, by the preset's documented names.
    let deploy = ClaimRules::new(Preset::GitHubActions)
        .require("repository", "octo-org/octo-repo")?
        .require("environment", "prod")?
        .require_glob("ref", "refs/heads/*")?;
    println!("matched: {:?}", deploy.check(&verified)?);
    let other = ClaimRules::new(Preset::GitHubActions).require("repository", "octo-org/payments")?;
    check(
        matches!(other.check(&verified), Err(ClaimError::Mismatch { .. })),
        "another repository's rule refuses",
    )?;

    // 4. The same token again: its jti was seen.
    let again = github.validate_at(token, now).await;
    check(matches!(again, Err(JwtError::Replayed)), "a replay is refused")?;
    // 5. Forgeries: unsigned, and HS256 keyed with the issuer's public key.
    for (name, want) in [("alg_none", "AlgNone"), ("hs256_with_the_public_key_as_secret", "Hmac")] {
        let (forged, now) = case(&v, name)?;
        match github.validate_at(forged, now).await {
            Err(e @ (JwtError::AlgNone | JwtError::Hmac { .. })) => println!("{want}: refused: {e}"),
            other => return Err(format!("{name}: {other:?}").into()),
        }
    }

    // 6. The RFC 9449 example proof (Figure 3), verified at its own `iat`.
    let rfc = vectors("rfc.json")?;
    let p = &rfc["rfc9449"]["proofs"][0];
    let proof = p["proof"].as_str().ok_or("no proof")?;
    let at = p["now"].as_i64().and_then(|s| DateTime::from_timestamp(s, 0)).ok_or("no time")?;
    let dpop = DpopVerifier::builder().build()?;
    let checked = dpop.verify_at(proof, &DpopRequest::new("POST", "https://server.example.com/token"), at)?;
    let jkt = Thumbprint::parse(rfc["rfc9449"]["jkt"].as_str().ok_or("no jkt")?).ok_or("bad jkt")?;
    check(checked.thumbprint() == jkt, "the thumbprint is RFC 9449's cnf.jkt")?;
    println!("DPoP proof valid; bind the token to jkt {}", checked.thumbprint());
    let wrong = dpop.verify_at(proof, &DpopRequest::new("GET", "https://server.example.com/token"), at);
    match wrong {
        Err(e @ DpopError::WrongMethod { .. }) => {
            check(e.code() == DpopErrorCode::InvalidDpopProof, "answered with invalid_dpop_proof")?;
            println!("another method: {} ({})", e, e.code().as_str());
        }
        other => return Err(format!("wrong method: {other:?}").into()),
    }
    Ok(())
}

/// `JWKS_FILE ISSUER AUDIENCE`, the token on stdin: validated now.
async fn one(args: &[String]) -> Result<()> {
    let [jwks, issuer, audience] = args else {
        return Err("usage: verify [JWKS_FILE ISSUER AUDIENCE < token]".into());
    };
    let mut token = String::new();
    std::io::stdin().read_to_string(&mut token)?;
    let validator = JwtValidator::builder(issuer, audience, IssuerKeys::pinned_file(jwks)?).build()?;
    let verified = validator.validate(token.trim()).await?;
    println!("{}", serde_json::to_string_pretty(verified.claims())?);
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = if args.is_empty() { tour().await } else { one(&args).await };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
