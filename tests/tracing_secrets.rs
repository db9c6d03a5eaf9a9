//! Planted secrets — tokens, a mistyped token, rotated credentials, a sealed cloud key, the right
//! and a wrong passphrase — never reach tracing output, at TRACE level, through every front-door
//! operation: issue, verify, rotate, emergency, seal, revoke, a failed open, shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use tokenward_test_support::Captured;

mod common;

use common::*;
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::store::SecretName;
use tokenward::{EmergencyOrder, Tokenward};

/// A writer that keeps what tracing prints.
#[test]
fn planted_secrets_never_reach_tracing_output() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    // Global, in a test binary of its own: every thread's events (the store's workers too).
    tracing::subscriber::set_global_default(subscriber).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let planted: Vec<String> = {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let tw = builder(dir.path()).open().await.unwrap();
            let token = tw.issue(&principal(), &request("p")).await.unwrap();
            let t = token.expose_secret();
            let typo = format!("{}{}", &t[..t.len() - 1], if t.ends_with('x') { 'y' } else { 'x' });
            let _ = tw.verifier().verify(&typo, &read());
            let name = SecretName::new("svc/rot").unwrap();
            let target = tw.token_target(principal(), request("rot"));
            let _ = tw.rotate(&name, target.clone()).await.unwrap();
            let first =
                tw.current_credential(&name).await.unwrap().unwrap().secret.expose_secret().to_owned();
            tw.revoke_and_replace(&name, target.clone(), EmergencyOrder::RevokeFirst).await.unwrap();
            let second =
                tw.current_credential(&name).await.unwrap().unwrap().secret.expose_secret().to_owned();
            tw.seal_current(&SecretName::new("svc/cloud").unwrap(), b"AKIAPLANTEDCLOUDKEY0").await.unwrap();
            tw.revoke(token.id()).await.unwrap();
            // A wrong passphrase, and an open that fails, print errors too.
            let _ = Tokenward::embedded(dir.path().join("tw.db"))
                .passphrase(SecretString::from("wrong planted passphrase"))
                .policy(policy())
                .open()
                .await;
            tw.shutdown().await.unwrap();
            vec![
                token.expose_secret().to_owned(),
                typo,
                first,
                second,
                "AKIAPLANTEDCLOUDKEY0".into(),
                "front door test passphrase".into(),
                "wrong planted passphrase".into(),
            ]
        })
    };
    let out = captured.text();
    assert!(out.contains("issued") && out.contains("rotation step"), "tracing saw the operations:\n{out}");
    for p in &planted {
        assert!(!out.contains(p.as_str()), "a planted secret reached tracing output");
        // Nor the token's secret part alone.
        if p.len() > 49 && p.is_ascii() {
            assert!(!out.contains(&p[p.len() - 49..p.len() - 6]));
        }
    }
}
