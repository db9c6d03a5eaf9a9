//! A leaked Tokenward token in a scanned tree is revoked (or, when it is a rotated credential,
//! revoked and replaced) in one call, and denied at once; a forged token that names a real id
//! but not its secret revokes nothing; every finding is audited without the token.

#![cfg(feature = "scan")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use tokenward::audit::{AuditQuery, FileLog, LogStorage};
use tokenward::rotate::RotationTarget;
use tokenward::scan::{Scanner, TreeOptions};
use tokenward::secrecy::ExposeSecret;
use tokenward::store::SecretName;
use tokenward::{LeakOutcome, core::DenyReason};

use common::*;

/// The same token with another secret and a CRC-32 that checks (what a forger can make).
fn forged(token: &str) -> String {
    const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut body = token.as_bytes()[..token.len() - 6].to_vec();
    let i = body.len() - 5;
    body[i] = if body[i] == b'Q' { b'R' } else { b'Q' };
    let mut v = crc32fast::hash(&body);
    let mut sum = [b'0'; 6];
    for s in sum.iter_mut().rev() {
        *s = A[(v % 62) as usize];
        v /= 62;
    }
    format!("{}{}", String::from_utf8(body).unwrap(), String::from_utf8(sum.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_token_is_revoked_or_replaced_in_one_call_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let plain = tw.issue(&principal(), &request("plain")).await.unwrap();
    let name = SecretName::new("billing/api-token").unwrap();
    let target = tw.token_target(principal(), request("rotated"));
    let _ = tw.rotate(&name, target.clone() as std::sync::Arc<dyn RotationTarget>).await.unwrap();
    let rotated = tw.current_credential(&name).await.unwrap().unwrap();
    let rotated_text = rotated.secret.expose_secret().to_owned();
    let fake = forged(plain.expose_secret());

    let tree = dir.path().join("repo");
    std::fs::create_dir_all(tree.join("src")).unwrap();
    std::fs::write(tree.join("src/config.rs"), format!("const T: &str = \"{}\";\n", plain.expose_secret()))
        .unwrap();
    std::fs::write(tree.join(".env"), format!("BILLING_TOKEN={rotated_text}\nOTHER={fake}\n")).unwrap();

    let report = Scanner::new().unwrap().scan_tree(&tree, &TreeOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 3, "the forged token's checksum checks too: {:?}", report.findings);
    let response = tw.respond_to_leaks(&report).await.unwrap();
    assert_eq!(response.revoked(), 2);
    let outcome = |path: &str, line: u64| {
        response
            .actions
            .iter()
            .find(|a| a.location.starts_with(&format!("{path}:{line}:")))
            .map(|a| a.outcome.clone())
            .unwrap()
    };
    assert!(matches!(outcome("src/config.rs", 1), LeakOutcome::Revoked { id, .. } if id == plain.id()));
    assert!(matches!(outcome(".env", 1), LeakOutcome::Replaced { name: n, .. } if n == name));
    assert_eq!(outcome(".env", 2), LeakOutcome::NotOurs, "a forged secret revokes nothing");
    for a in &response.actions {
        if !matches!(a.outcome, LeakOutcome::NotOurs) {
            let took = a.time_to_revoke.unwrap();
            eprintln!("{}: revoked {took:?} after the response started", a.location);
        }
    }

    let v = tw.verifier();
    for leaked in [plain.expose_secret(), rotated_text.as_str()] {
        let d = v.verify(leaked, &read());
        assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "denied at once: {d}");
    }
    let fresh = tw.current_credential(&name).await.unwrap().unwrap();
    assert_ne!(fresh.handle, rotated.handle);
    assert!(v.verify(fresh.secret.expose_secret(), &read()).is_allowed(), "the replacement works");

    // Responding again finds them revoked already.
    let again = tw.respond_to_leaks(&report).await.unwrap();
    assert_eq!(again.revoked(), 0);
    assert!(again.actions.iter().any(|a| matches!(a.outcome, LeakOutcome::AlreadyRevoked { .. })));
    tw.shutdown().await.unwrap();
    drop(tw);

    let log = FileLog::open(dir.path().join("audit.jsonl")).unwrap();
    let found = log.query(&AuditQuery::new().action("scan_finding")).await.unwrap();
    assert_eq!(found.len(), 6, "every finding, both times");
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    for secret in [plain.expose_secret(), rotated_text.as_str(), fake.as_str()] {
        assert!(!raw.contains(secret), "no token in the audit log");
        assert!(!raw.contains(&secret[secret.len() - 49..secret.len() - 6]), "no secret part either");
    }
    assert!(raw.contains("src/config.rs:1:18"), "the location is audited");
}

#[cfg(feature = "github-alerts")]
mod partner_alerts {
    use super::*;
    use base64::Engine as _;
    use p256::ecdsa::signature::Signer as _;
    use p256::ecdsa::{Signature, SigningKey};
    use p256::pkcs8::{EncodePublicKey, LineEnding};
    use tokenward::scan::alerts::{AlertError, AlertVerifier};

    fn sign(key: &SigningKey, body: &[u8]) -> String {
        let sig: Signature = key.sign(body);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn signed_alerts_revoke_ours_and_bad_deliveries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let tw = builder(dir.path()).open().await.unwrap();
        let ours = tw.issue(&principal(), &request("alerted")).await.unwrap();
        let github = SigningKey::from_slice(&[7u8; 32]).unwrap();
        let pem = github.verifying_key().to_public_key_pem(LineEnding::LF).unwrap();
        let published =
            serde_json::json!({"public_keys": [{"key_identifier": "k1", "key": pem, "is_current": true}]});
        let verifier =
            AlertVerifier::new().with_published_keys(&published.to_string()).unwrap().max_body(4096);
        let body = serde_json::json!([
            {"token": ours.expose_secret(), "type": "tokenward_token", "url": "https://github.com/o/r/blob/x/a.env", "source": "content"},
            {"token": "ghp_notours", "type": "tokenward_token", "url": "", "source": "commit"}
        ])
        .to_string();
        let sig = sign(&github, body.as_bytes());
        let (answer, done) =
            tw.respond_to_github_alerts(&verifier, body.as_bytes(), Some("k1"), Some(&sig)).await.unwrap();
        assert_eq!(done.revoked(), 1);
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer[0]["label"], "true_positive");
        assert_eq!(answer[1]["label"], "false_positive");
        assert_eq!(answer[0]["token_hash"].as_str().unwrap().len(), 64);
        assert!(!answer.to_string().contains(ours.expose_secret()), "hashes, never tokens");
        assert!(matches!(
            tw.verifier().verify(ours.expose_secret(), &read()).reason(),
            Some(DenyReason::Revoked { .. })
        ));

        let refused =
            |body: &[u8], key: Option<&str>, sig: Option<&str>| verifier.verify(body, key, sig).unwrap_err();
        assert!(matches!(refused(body.as_bytes(), Some("k1"), Some(&sig)), AlertError::Replayed));
        let other = SigningKey::from_slice(&[9u8; 32]).unwrap();
        let fresh = format!("{body} ");
        assert!(matches!(
            refused(fresh.as_bytes(), Some("k1"), Some(&sign(&other, fresh.as_bytes()))),
            AlertError::BadSignature
        ));
        assert!(matches!(
            refused(fresh.as_bytes(), Some("k1"), Some("not base64!")),
            AlertError::BadSignature
        ));
        assert!(matches!(refused(fresh.as_bytes(), Some("k2"), Some(&sig)), AlertError::UnknownKey));
        assert!(matches!(refused(fresh.as_bytes(), None, Some(&sig)), AlertError::MissingHeader(_)));
        assert!(matches!(refused(fresh.as_bytes(), Some("k1"), None), AlertError::MissingHeader(_)));
        let big = vec![b' '; 5000];
        assert!(matches!(refused(&big, Some("k1"), Some(&sign(&github, &big))), AlertError::TooLarge { .. }));
        let junk = b"{\"token\": 1}";
        assert!(matches!(refused(junk, Some("k1"), Some(&sign(&github, junk))), AlertError::Malformed(_)));
        tw.shutdown().await.unwrap();
    }
}

/// Issue 24 §4: nothing about a leaked token of ours keeps it alive — not a `not_before` in the
/// future, not a bounded cache that does not hold it, not a `# tokenward:allow` comment or a
/// baseline entry that whoever committed the leak added beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leaked_token_of_ours_survives_timing_a_cold_cache_or_a_suppression() {
    use tokenward::core::chrono::{TimeDelta, Utc};
    use tokenward::scan::Fingerprint;
    use tokenward::store::cache::BoundedCache;

    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let later = request("later").not_before(Utc::now() + TimeDelta::minutes(30));
    let future = tw.issue(&principal(), &later).await.unwrap();
    let allowed = tw.issue(&principal(), &request("allowed")).await.unwrap();
    let baselined = tw.issue(&principal(), &request("baselined")).await.unwrap();
    let cold = tw.issue(&principal(), &request("cold")).await.unwrap();
    tw.shutdown().await.unwrap();
    drop(tw);

    // Reopened with a cache of one entry: at most one of the four is held.
    let tw = builder(dir.path()).bounded_cache(BoundedCache::new(1)).open().await.unwrap();
    let tree = dir.path().join("repo");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join("later.env"), format!("LATER={}\n", future.expose_secret())).unwrap();
    std::fs::write(tree.join("cold.env"), format!("COLD={}\n", cold.expose_secret())).unwrap();
    std::fs::write(
        tree.join("allowed.rs"),
        format!("const T: &str = \"{}\"; // tokenward:allow test fixture\n", allowed.expose_secret()),
    )
    .unwrap();
    std::fs::write(tree.join("baselined.env"), format!("B={}\n", baselined.expose_secret())).unwrap();

    let scanner = Scanner::builder()
        .baseline([Fingerprint::sha256(baselined.expose_secret().as_bytes())])
        .build()
        .unwrap();
    let report = scanner.scan_tree(&tree, &TreeOptions::default()).unwrap();
    assert_eq!(report.findings.len(), 2, "the suppressed two are not reported: {:?}", report.findings);
    assert_eq!(report.suppressed.get("allow comment"), Some(&1));
    assert_eq!(report.suppressed.get("baseline"), Some(&1));
    assert_eq!(report.suppressed_tokens.len(), 2, "but kept for the response");

    let response = tw.respond_to_leaks(&report).await.unwrap();
    assert_eq!(response.revoked(), 4, "all four revoked: {:?}", response.actions);
    let action = |path: &str| response.actions.iter().find(|a| a.location.starts_with(path)).unwrap();
    assert_eq!(action("allowed.rs").suppressed.as_deref(), Some("allow comment"));
    assert_eq!(action("baselined.env").suppressed.as_deref(), Some("baseline"));
    assert_eq!(action("cold.env").suppressed, None);

    let v = tw.verifier();
    for (what, leaked) in
        [("future", &future), ("allowed", &allowed), ("baselined", &baselined), ("cold", &cold)]
    {
        let d = v.verify_async(leaked.expose_secret(), &read()).await;
        assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "{what}: {d}");
    }
    tw.shutdown().await.unwrap();
    drop(tw);

    // And it stays revoked when its not_before comes: judged on a reopened store 31 minutes on.
    let tw = builder(dir.path()).open().await.unwrap();
    let d = tw
        .verifier()
        .unaudited()
        .authenticate_at(future.expose_secret(), Utc::now() + TimeDelta::minutes(31));
    assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "{d}");
    tw.shutdown().await.unwrap();

    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains("\"suppressed\":\"allow comment\""), "the audit says a suppression was overruled");
    assert!(!raw.contains(allowed.expose_secret()));
}

/// The response answers a leak in the credential's emergency order: replace first keeps every
/// consumer served (a verification of the leaked token is never refused before the replacement
/// is current), then the leaked token is dead all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_credential_is_replaced_in_its_declared_emergency_order() {
    use tokenward::EmergencyOrder;
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let name = SecretName::new("billing/replace-first").unwrap();
    assert_eq!(tw.emergency_order(&name), EmergencyOrder::RevokeFirst, "revoke first unless said");
    tw.set_emergency_order(&name, EmergencyOrder::ReplaceFirst);
    let target = tw.token_target(principal(), request("replaced-first"));
    let _ = tw.rotate(&name, target as std::sync::Arc<dyn RotationTarget>).await.unwrap();
    let leaked = tw.current_credential(&name).await.unwrap().unwrap();

    let tree = dir.path().join("repo");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(tree.join(".env"), format!("TOKEN={}\n", leaked.secret.expose_secret())).unwrap();
    let report = Scanner::new().unwrap().scan_tree(&tree, &TreeOptions::default()).unwrap();
    let response = tw.respond_to_leaks(&report).await.unwrap();
    assert!(
        matches!(&response.actions[0].outcome,
            LeakOutcome::Replaced { name: n, order: EmergencyOrder::ReplaceFirst, .. } if *n == name),
        "{:?}",
        response.actions
    );
    let d = tw.verifier().verify(leaked.secret.expose_secret(), &read());
    assert!(matches!(d.reason(), Some(DenyReason::Revoked { .. })), "dead after the response: {d}");
    let fresh = tw.current_credential(&name).await.unwrap().unwrap();
    assert_ne!(fresh.handle, leaked.handle);
    assert!(tw.verifier().verify(fresh.secret.expose_secret(), &read()).is_allowed());
    tw.shutdown().await.unwrap();
    drop(tw);
    // The audit trail says which order ran.
    let raw = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(raw.contains("replace_first"), "the emergency's order is audited");
    assert!(!raw.contains(leaked.secret.expose_secret()), "and never the token");
}
