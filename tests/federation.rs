//! `Tokenward::exchange` (issue 27): subject tokens minted by an independent JOSE implementation
//! (jwcrypto, `crates/token-oidc/tests/vectors/gen_vectors.py`) with GitHub's and Kubernetes'
//! documented claim sets are exchanged for Tokenward tokens only when every bound claim matches;
//! each refusal is typed and audited as a denial; no subject token reaches the audit log; tokens
//! bound to a key need that key's proof.

#![cfg(feature = "federation")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::core::chrono::{DateTime, TimeDelta};
use tokenward::core::clocks::ManualClock;
use tokenward::core::{DenyReason, Request, ScopeSet, Thumbprint};
use tokenward::federation::{ExchangeError, ExchangeRequest};
use tokenward::policy::PolicyFile;
use tokenward::secrecy::SecretString;
use tokenward::{Error, FailureMode, Tokenward};

/// The instant every vector is valid at.
const NOW: i64 = 1_765_000_000;

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/token-oidc/tests/vectors")
}

/// The vectors' JWKS, copied private (0644 whatever the checkout's umask: a pinned JWKS that others
/// may write is refused) into `dir`.
fn jwks_in(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("jwks.json");
    std::fs::write(&path, std::fs::read(vectors().join("jwks.json")).unwrap()).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

fn subject(name: &str) -> String {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vectors().join("jwt.json")).unwrap()).unwrap();
    let case = doc["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    case["token"].as_str().unwrap().to_owned()
}

fn policy(jwks: &Path, github_claims: &str) -> String {
    format!(
        r#"
[[role]]
name = "deployer"
grants = ["deploy:service/api/*:release", "deploy:service/web/*:release"]
max_ttl = "1h"

[[principal]]
name = "deploy-bot"
roles = ["deployer"]

[[principal]]
name = "k8s-deployer"
roles = ["deployer"]

[[federation]]
name = "github-deploy"
preset = "github-actions"
issuer = "https://token.actions.githubusercontent.com"
audience = "tokenward"
jwks = {{ file = "{jwks}" }}
principal = "deploy-bot"
max_ttl = "15m"
scopes = ["deploy:service/api/*:release"]
[federation.claims]
{github_claims}

[[federation]]
name = "k8s-ci"
preset = "kubernetes"
issuer = "https://kubernetes.default.svc.cluster.local"
audience = "tokenward"
jwks = {{ file = "{jwks}" }}
principal = "k8s-deployer"
max_ttl = "10m"
bind = "required"
[federation.claims]
sub = "system:serviceaccount:ci:deployer"
"/kubernetes.io/namespace" = "ci"
"#,
        jwks = jwks.display()
    )
}

const GITHUB_CLAIMS: &str =
    "repository = \"octo-org/octo-repo\"\nref = { glob = \"refs/heads/*\" }\nenvironment = \"prod\"";

async fn open(dir: &Path, file: &PolicyFile) -> Tokenward {
    let clock = Arc::new(ManualClock::new(DateTime::from_timestamp(NOW, 0).unwrap()));
    let tw = Tokenward::embedded(dir.join("tw.db"))
        .passphrase(SecretString::from("federation test passphrase"))
        .prefix("fx")
        .policy(file.to_policy().unwrap())
        .clock(clock)
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .open()
        .await
        .unwrap();
    tw.federate(file).unwrap();
    tw
}

fn ask(scopes: &str, ttl: TimeDelta) -> ExchangeRequest {
    ExchangeRequest::new(ScopeSet::parse(scopes).unwrap(), ttl).source("203.0.113.7")
}

fn refused(r: Result<tokenward::federation::Exchanged, Error>) -> ExchangeError {
    match r {
        Err(Error::Exchange(e)) => e,
        other => panic!("refused, not {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oidc_token_is_exchanged_only_when_every_bound_claim_matches_and_every_refusal_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let jwks = jwks_in(dir.path());
    let file = PolicyFile::parse(&policy(&jwks, GITHUB_CLAIMS)).unwrap();
    let tw = open(dir.path(), &file).await;
    let release = "deploy:service/api/v2:release";

    // GitHub Actions, every claim matching: a token for the principal, within the federation.
    let github = subject("github_rs256");
    let got = tw.exchange(&github, &ask(release, TimeDelta::minutes(10))).await.unwrap();
    assert_eq!(got.federation, "github-deploy");
    assert_eq!(got.subject, "repo:octo-org/octo-repo:environment:prod");
    assert!(got.matched.contains(&("repository".into(), "octo-org/octo-repo".into())), "{:?}", got.matched);
    let v = tw.verifier();
    let token = got.token.expose_secret().to_owned();
    let d = v.verify(&token, &Request::parse(release).unwrap());
    assert!(d.is_allowed(), "{d:?}");
    assert_eq!(d.grant().unwrap().principal().as_str(), "deploy-bot");
    assert_eq!(
        v.verify(&token, &Request::parse("deploy:service/web/v2:release").unwrap()).reason(),
        Some(&DenyReason::OutOfScope),
        "nothing outside what was asked"
    );
    // The same subject token twice: its jti is spent.
    let again = refused(tw.exchange(&github, &ask(release, TimeDelta::minutes(10))).await);
    assert!(matches!(again, ExchangeError::Subject(_)), "{again}");
    assert!(again.to_string().contains("replay") || again.to_string().contains("jti"), "{again}");

    // Every failure case minted by jwcrypto: refused, typed.
    for case in [
        "wrong_audience",
        "expired",
        "not_yet_valid",
        "wrong_issuer",
        "unknown_kid",
        "alg_none",
        "hs256_with_the_public_key_as_secret",
        "forged_signature",
        "tampered_payload",
        "missing_jti",
        "dpop_proof_as_subject_token",
    ] {
        let e = refused(tw.exchange(&subject(case), &ask(release, TimeDelta::minutes(5))).await);
        assert!(matches!(e, ExchangeError::Subject(_) | ExchangeError::UntrustedIssuer(_)), "{case}: {e}");
    }
    // An issuer no federation names.
    let e = refused(tw.exchange(&subject("generic_es256"), &ask(release, TimeDelta::minutes(5))).await);
    assert!(matches!(e, ExchangeError::UntrustedIssuer(ref i) if i == "https://issuer.example.com"), "{e}");
    // Not a JWT at all.
    assert!(matches!(
        refused(tw.exchange("not-a-jwt", &ask(release, TimeDelta::minutes(5))).await),
        ExchangeError::UntrustedIssuer(_)
    ));

    // Kubernetes: the federation requires a key binding.
    let k8s = subject("kubernetes_rs256_aud_array");
    let e = refused(tw.exchange(&k8s, &ask(release, TimeDelta::minutes(5))).await);
    assert!(matches!(e, ExchangeError::BindingRequired(ref f) if f == "k8s-ci"), "{e}");
    // A refusal spends nothing (the jti is recorded only for a granted exchange): the same token,
    // asked for with a key, is granted once — and then never again.
    let key = Thumbprint::parse("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs").unwrap();
    let bound = tw.exchange(&k8s, &ask(release, TimeDelta::minutes(5)).bound_to(key)).await.unwrap();
    assert_eq!(bound.bound_to, Some(key));
    let bound_token = bound.token.expose_secret().to_owned();
    let twice = refused(tw.exchange(&k8s, &ask(release, TimeDelta::minutes(5)).bound_to(key)).await);
    assert!(twice.to_string().contains("replay") || twice.to_string().contains("jti"), "{twice}");
    let v = tw.verifier();
    let r = Request::parse(release).unwrap();
    assert_eq!(v.verify(&bound_token, &r).reason(), Some(&DenyReason::ProofRequired), "useless as a bearer");
    assert!(v.verify_with_proof_from(&bound_token, Some(&key), &r, None).is_allowed());
    assert_eq!(
        v.verify_with_proof_from(&bound_token, Some(&Thumbprint::from_bytes([1; 32])), &r, None).reason(),
        Some(&DenyReason::WrongProofKey)
    );

    // Asking for more than the federation allows.
    let file2 = PolicyFile::parse(&policy(&jwks, GITHUB_CLAIMS)).unwrap();
    tw.federate(&file2).unwrap();
    let e =
        refused(tw.exchange(&subject("expired_within_skew"), &ask(release, TimeDelta::minutes(16))).await);
    assert!(matches!(e, ExchangeError::TtlTooLong { .. }), "{e}");
    // Asking for the longest when the principal's role allows less than max_ttl: the role's cap.
    let capped =
        PolicyFile::parse(&policy(&jwks, GITHUB_CLAIMS).replacen("max_ttl = \"1h\"", "max_ttl = \"10m\"", 1))
            .unwrap();
    tw.shutdown().await.unwrap();
    drop(tw);
    let tw = open(dir.path(), &capped).await;
    let longest = ExchangeRequest::longest(ScopeSet::parse(release).unwrap());
    let got = tw.exchange(&subject("expired_within_skew"), &longest).await.unwrap();
    assert_eq!(got.expires_at, DateTime::from_timestamp(NOW, 0).unwrap() + TimeDelta::minutes(10));
    tw.shutdown().await.unwrap();
    drop(tw);

    // The audit log: one grant per exchange with the matched claims; a denial per refusal; never
    // a subject token (nor its signature).
    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let all = log.query(&AuditQuery::new().action("exchange")).await.unwrap();
    let granted: Vec<_> = all.iter().filter(|e| e.event.action.detail() == Some("granted")).collect();
    let denied: Vec<_> = all.iter().filter(|e| e.event.action.detail() == Some("denied")).collect();
    assert_eq!(granted.len(), 3, "{all:#?}");
    assert_eq!(denied.len(), 1 + 11 + 2 + 1 + 1 + 1, "every refusal");
    let g = &granted[0].event;
    assert_eq!(g.attrs["federation"], "github-deploy");
    assert!(g.attrs["claims"].contains("repository=octo-org/octo-repo"), "{:?}", g.attrs);
    assert_eq!(g.source.as_deref(), Some("203.0.113.7"));
    assert_eq!(granted[1].event.attrs["bound_to"], key.to_string());
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    for t in [github.as_str(), k8s.as_str(), token.as_str(), bound_token.as_str()] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!raw.contains(t) && !raw.contains(signature), "no token in the audit log");
    }
}

#[tokio::test]
async fn a_federation_that_binds_no_identifying_claim_or_trusts_a_wildcard_is_refused() {
    let jwks = vectors().join("jwks.json");
    for (claims, why) in [
        ("", "at least one claim"),
        ("repository = { glob = \"*\" }", "matches anything"),
        // Claims any GitHub user can set name nobody.
        ("environment = \"production\"", "names who the workload is"),
        ("ref = \"refs/heads/main\"\nevent_name = \"push\"", "names who the workload is"),
        ("repository = { glob = \"*/api\" }", "names who the workload is"),
        ("repository_owner = { glob = \"acme*\" }", "names who the workload is"),
        ("repository_id = { glob = \"74*\" }", "names who the workload is"),
        ("sub = { glob = \"repo:*\" }", "names who the workload is"),
        ("repository = \"\"", "empty value"),
    ] {
        let text = policy(&jwks, claims);
        let e = PolicyFile::parse(&text).unwrap_err().to_string();
        assert!(e.contains(why), "{e}");
    }
    // A glob that names the owner in full identifies: accepted.
    PolicyFile::parse(&policy(&jwks, "repository = { glob = \"octo-org/*\" }")).unwrap();
    PolicyFile::parse(&policy(&jwks, "repository_owner_id = \"65\"")).unwrap();
    let text = policy(&jwks, GITHUB_CLAIMS)
        .replace("audience = \"tokenward\"\njwks = { file", "audience = \"*\"\njwks = { file");
    assert!(PolicyFile::parse(&text).unwrap_err().to_string().contains("wildcard"));
    let text = policy(&jwks, GITHUB_CLAIMS).replace("https://token.actions", "http://token.actions");
    assert!(PolicyFile::parse(&text).unwrap_err().to_string().contains("HTTPS"));
    let text = policy(&jwks, GITHUB_CLAIMS).replace("max_ttl = \"15m\"", "max_ttl = \"2d\"");
    assert!(PolicyFile::parse(&text).unwrap_err().to_string().contains("cap"));
    let text = policy(&jwks, GITHUB_CLAIMS)
        .replace("scopes = [\"deploy:service/api/*:release\"]", "scopes = [\"admin:everything/*:write\"]");
    assert!(PolicyFile::parse(&text).unwrap_err().to_string().contains("scopes"));
}

/// A pinned JWKS file is a trust anchor: pinned by its SHA-256 in the (sealed) policy, an edited
/// file is refused; a file others may write is refused whatever the policy says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_jwks_file_that_was_changed_or_is_writable_by_others_is_refused() {
    use sha2::Digest as _;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let doc = std::fs::read(vectors().join("jwks.json")).unwrap();
    std::fs::write(&jwks, &doc).unwrap();
    std::fs::set_permissions(&jwks, std::fs::Permissions::from_mode(0o644)).unwrap();
    let hash: String = sha2::Sha256::digest(&doc).iter().map(|b| format!("{b:02x}")).collect();
    let pinned = |h: &str| {
        PolicyFile::parse(
            &policy(&jwks, GITHUB_CLAIMS)
                .replace("jwks = { file = ", &format!("jwks = {{ sha256 = \"{h}\", file = ")),
        )
        .unwrap()
    };
    let tw = open(dir.path(), &PolicyFile::parse(&policy(&jwks, GITHUB_CLAIMS)).unwrap()).await;
    tw.federate(&pinned(&hash)).unwrap();
    let wrong = "0".repeat(64);
    let e = tw.federate(&pinned(&wrong)).unwrap_err().to_string();
    assert!(e.contains("SHA-256"), "{e}");
    // Someone adds a key to the file: the pinned hash no longer matches.
    std::fs::write(&jwks, [&doc[..], b" "].concat()).unwrap();
    assert!(tw.federate(&pinned(&hash)).unwrap_err().to_string().contains("SHA-256"));
    std::fs::write(&jwks, &doc).unwrap();
    std::fs::set_permissions(&jwks, std::fs::Permissions::from_mode(0o666)).unwrap();
    let e = tw.federate(&pinned(&hash)).unwrap_err().to_string();
    assert!(e.contains("writable"), "{e}");
    assert!(
        PolicyFile::parse(
            &policy(&jwks, GITHUB_CLAIMS).replace("jwks = { file = ", "jwks = { sha256 = \"xyz\", file = ")
        )
        .is_err()
    );
    tw.shutdown().await.unwrap();
}
