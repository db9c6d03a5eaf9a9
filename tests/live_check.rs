//! `Tokenward::live_check` (feature `validate`): a found token of ours is judged by the store — a
//! child with its whole line (live while its ancestors are), a token with use limits by the uses
//! and last use the store counted (used up, idle too long: invalid), never counting a use itself.

#![cfg(feature = "validate")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use tokenward::core::ChildRequest;
use tokenward::core::chrono::{DateTime, TimeDelta, Utc};
use tokenward::core::clocks::ManualClock;
use tokenward::scan::live::{LiveValidator, Validation, Validity};
use tokenward::scan::{Report, Scanner};

mod common;

use common::*;

/// Each token's verdict, in the order given.
async fn verdicts(tw: &tokenward::Tokenward, tokens: &[&str]) -> Vec<Validation> {
    let text: String = tokens.iter().enumerate().map(|(i, t)| format!("T{i}={t}\n")).collect();
    let mut report: Report = Scanner::new().unwrap().scan_bytes("found.env", text.as_bytes());
    assert_eq!(report.findings.len(), tokens.len(), "{:?}", report.findings);
    let summary =
        LiveValidator::builder().check(tw.live_check()).build().unwrap().validate(&mut report).await;
    assert_eq!(summary.requests, 0, "the store is not the network");
    report.findings.iter().map(|f| f.validation.clone().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_is_judged_with_its_line_and_a_used_up_or_idle_token_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let tw = builder(dir.path()).clock(clock.clone()).open().await.unwrap();
    let parent = tw.issue(&principal(), &request("parent")).await.unwrap();
    let child = tw
        .issue_child(
            parent.expose_secret(),
            &ChildRequest::parse("child", "kv:app/x:read", TimeDelta::minutes(30)).unwrap(),
        )
        .await
        .unwrap();
    let once = tw.issue(&principal(), &request("once").max_uses(1)).await.unwrap();
    let idle = tw.issue(&principal(), &request("idle").idle_timeout(TimeDelta::minutes(10))).await.unwrap();
    // `once` is used once, and the store counts it.
    assert!(tw.verifier().verify(once.expose_secret(), &read()).is_allowed());
    assert!(tw.tokens().flush_usage(DateTime::UNIX_EPOCH).await.unwrap() >= 1);

    let all = [parent.expose_secret(), child.expose_secret(), once.expose_secret(), idle.expose_secret()];
    let v = verdicts(&tw, &all).await;
    let got: Vec<Validity> = v.iter().map(|v| v.validity).collect();
    assert_eq!(got, [Validity::Valid, Validity::Valid, Validity::Invalid, Validity::Valid], "{v:?}");
    assert!(v[1].detail.contains(&child.id().to_string()), "{v:?}");
    assert!(v[2].detail.contains("use"), "used up: {}", v[2].detail);
    // Asking counted no use: the child is still allowed, `once` still refused.
    assert!(tw.verifier().verify(child.expose_secret(), &read()).is_allowed());

    // Unused past its idle timeout: dead, as the verifier would say.
    clock.advance(TimeDelta::minutes(11));
    let v = verdicts(&tw, &[idle.expose_secret(), child.expose_secret()]).await;
    assert_eq!(v[0].validity, Validity::Invalid, "{v:?}");
    assert!(v[0].detail.contains("idle") || v[0].detail.contains("unused"), "{}", v[0].detail);
    assert_eq!(v[1].validity, Validity::Valid, "{v:?}");

    // The parent revoked: the child with it.
    tw.revoke(parent.id()).await.unwrap();
    let v = verdicts(&tw, &[child.expose_secret()]).await;
    assert_eq!(v[0].validity, Validity::Invalid, "{v:?}");
    assert!(v[0].detail.contains("revoked"), "{}", v[0].detail);
    tw.shutdown().await.unwrap();
}

/// A token bound to a key is judged live all the same, with the key named as its mitigation (a
/// copy is useless without the key's proofs); a bearer token has none; revoked, it is dead and
/// still bound. The leak response revokes it all the same, and says it was bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_token_is_live_but_mitigated_and_revoked_all_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let tw = builder(dir.path()).open().await.unwrap();
    let key = tokenward::core::Thumbprint::parse("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k").unwrap();
    let bound = tw.issue(&principal(), &request("bound").bound_to(key)).await.unwrap();
    let bearer = tw.issue(&principal(), &request("bearer")).await.unwrap();
    let v = verdicts(&tw, &[bound.expose_secret(), bearer.expose_secret()]).await;
    assert_eq!((v[0].validity, v[1].validity), (Validity::Valid, Validity::Valid), "{v:?}");
    let why = v[0].mitigation.as_deref().unwrap_or_default();
    assert!(why.contains("bound to a key") && why.contains(&key.to_string()), "{v:?}");
    assert!(v[1].mitigation.is_none(), "{v:?}");

    // The leak response: both revoked; the bound one's action names its key.
    let text = format!("A={}\nB={}\n", bound.expose_secret(), bearer.expose_secret());
    let report = Scanner::new().unwrap().scan_bytes("leak.env", text.as_bytes());
    let response = tw.respond_to_leaks(&report).await.unwrap();
    assert_eq!(response.revoked(), 2, "{response:?}");
    assert_eq!(response.actions[0].bound_to, Some(key));
    assert!(
        matches!(response.actions[0].outcome, tokenward::LeakOutcome::Revoked { id, .. } if id == bound.id())
    );
    assert_eq!(response.actions[1].bound_to, None);
    let v = verdicts(&tw, &[bound.expose_secret()]).await;
    assert_eq!(v[0].validity, Validity::Invalid, "{v:?}");
    assert!(v[0].mitigation.is_some(), "still bound: {v:?}");
    tw.shutdown().await.unwrap();
}
