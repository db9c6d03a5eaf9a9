//! A JWKS served on loopback and fetched through token-http: one fetch serves many validations,
//! a flood of unknown `kid`s makes a bounded number of fetches (one per minimum interval, one
//! for many concurrent callers), a rotated key is found after a refetch, an answer over the
//! size cap is refused, the last good set outlives a failing issuer up to its staleness bound,
//! and a pinned file works with no network at all — refused if others may write it, if it is
//! too large, or if its SHA-256 is not the one pinned.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::PermissionsExt as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_oidc::{ConfigError, IssuerKeys, JwksError, JwtError, JwtValidator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server answers with: a status and a body, changeable while it runs.
type Answer = Arc<Mutex<(u16, Vec<u8>)>>;

/// A tiny HTTP/1.1 server answering every request with the current answer; counts requests.
async fn serve(answer: Answer) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&count);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let answer = Arc::clone(&answer);
            let c = Arc::clone(&c);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
                let (status, body) = answer.lock().unwrap().clone();
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, count)
}

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn case(name: &str) -> (String, String, DateTime<Utc>) {
    let v: Value = serde_json::from_slice(&file("jwt.json")).unwrap();
    let c = v["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap();
    (
        c["token"].as_str().unwrap().to_owned(),
        c["issuer"].as_str().unwrap().to_owned(),
        DateTime::from_timestamp(c["now"].as_i64().unwrap(), 0).unwrap(),
    )
}

fn validator(issuer: &str, keys: &IssuerKeys) -> JwtValidator {
    JwtValidator::builder(issuer, "tokenward", keys.clone()).build().unwrap()
}

#[tokio::test]
async fn one_fetch_serves_many_and_unknown_kids_refetch_at_a_bounded_rate() {
    let answer: Answer = Arc::new(Mutex::new((200, file("jwks.json"))));
    let (url, served) = serve(Arc::clone(&answer)).await;
    let keys = IssuerKeys::remote(&url).min_refetch_interval(TimeDelta::seconds(60)).build().unwrap();
    assert_eq!(keys.fetches(), 0, "nothing is fetched before it is needed");

    let (token, issuer, t0) = case("github_rs256");
    let v = validator(&issuer, &keys);
    assert!(v.validate_at(&token, t0).await.is_ok());
    for _ in 0..50 {
        // The key is cached: the replay is found after the key lookup and signature, no fetch.
        assert!(matches!(v.validate_at(&token, t0).await, Err(JwtError::Replayed)));
    }
    assert_eq!((keys.fetches(), served.load(Ordering::SeqCst)), (1, 1));

    // A flood of unknown kids at one instant: no fetch (the last attempt is too recent).
    let (unknown, _, _) = case("unknown_kid");
    for _ in 0..1000 {
        assert!(matches!(v.validate_at(&unknown, t0).await, Err(JwtError::UnknownKey { .. })));
    }
    assert_eq!(keys.fetches(), 1);
    // A minute later: exactly one refetch, however many unknown kids arrive.
    let t1 = t0 + TimeDelta::seconds(61);
    for _ in 0..1000 {
        assert!(matches!(v.validate_at(&unknown, t1).await, Err(JwtError::UnknownKey { .. })));
    }
    assert_eq!(keys.fetches(), 2);
    // Callers whose clock reads a moment behind the last attempt (concurrent requests read the
    // clock in any order) make no fetch either.
    for _ in 0..100 {
        assert!(matches!(
            v.validate_at(&unknown, t1 - TimeDelta::seconds(1)).await,
            Err(JwtError::UnknownKey { .. })
        ));
    }
    assert_eq!(keys.fetches(), 2);
    // Two hundred concurrent callers with unknown kids, another minute on: one fetch among them.
    let t2 = t1 + TimeDelta::seconds(61);
    let v = Arc::new(v);
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (v, unknown) = (Arc::clone(&v), unknown.clone());
        tasks.push(tokio::spawn(async move { v.validate_at(&unknown, t2).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap(), Err(JwtError::UnknownKey { .. })));
    }
    assert_eq!((keys.fetches(), served.load(Ordering::SeqCst)), (3, 3));
    // Bounded over a window: 10 minutes of floods make at most one fetch per minute.
    for minute in 3..13 {
        let t = t0 + TimeDelta::seconds(61 * minute);
        for _ in 0..100 {
            let _ = v.validate_at(&unknown, t).await;
        }
    }
    assert_eq!(keys.fetches(), 13);
}

#[tokio::test]
async fn callers_arriving_during_the_first_fetch_wait_for_it() {
    let answer: Answer = Arc::new(Mutex::new((200, file("jwks.json"))));
    let (url, served) = serve(Arc::clone(&answer)).await;
    let keys = IssuerKeys::remote(&url).build().unwrap();
    let (token, issuer, t0) = case("github_rs256");
    let v = Arc::new(validator(&issuer, &keys));
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (v, token) = (Arc::clone(&v), token.clone());
            tokio::spawn(async move { v.validate_at(&token, t0).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => accepted += 1,
            // The same token a hundred times: the first is accepted, the rest are replays —
            // none is refused for want of keys while the first fetch runs.
            Err(JwtError::Replayed) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!((keys.fetches(), served.load(Ordering::SeqCst)), (1, 1));
}

#[tokio::test]
async fn a_rotated_key_is_found_after_a_refetch() {
    let answer: Answer = Arc::new(Mutex::new((200, file("jwks.json"))));
    let (url, _) = serve(Arc::clone(&answer)).await;
    let keys = IssuerKeys::remote(&url).min_refetch_interval(TimeDelta::seconds(30)).build().unwrap();
    let (token, issuer, t0) = case("rotated_key_after_refetch");
    let v = validator(&issuer, &keys);
    keys.refresh_at(t0).await.unwrap();
    answer.lock().unwrap().1 = file("jwks_rotated.json");
    assert!(
        matches!(v.validate_at(&token, t0).await, Err(JwtError::UnknownKey { .. })),
        "within the interval"
    );
    // Thirty seconds on, fifty jobs at once present the token of the new key: one refetch, and
    // none of them is refused as "unknown kid" while it runs (one is accepted, the rest are the
    // same token replayed).
    let v = Arc::new(v);
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let (v, token) = (Arc::clone(&v), token.clone());
            tokio::spawn(async move { v.validate_at(&token, t0 + TimeDelta::seconds(31)).await })
        })
        .collect();
    let mut accepted = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(t) => {
                assert_eq!(t.key_id(), Some("ec-2"));
                accepted += 1;
            }
            Err(JwtError::Replayed) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn an_answer_over_the_size_cap_is_refused() {
    let mut big = br#"{"keys":[],"padding":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 100 * 1024));
    big.extend_from_slice(b"\"}");
    let answer: Answer = Arc::new(Mutex::new((200, big)));
    let (url, _) = serve(answer).await;
    let keys = IssuerKeys::remote(&url).max_bytes(64 * 1024).build().unwrap();
    let (token, issuer, t0) = case("github_rs256");
    match validator(&issuer, &keys).validate_at(&token, t0).await {
        Err(JwtError::KeysUnavailable(JwksError::Unavailable { fetched_at: None, last_error })) => {
            assert!(last_error.contains("over 65536 bytes"), "{last_error}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(keys.fetches(), 1);
}

#[tokio::test]
async fn the_last_good_set_outlives_a_failing_issuer_up_to_its_staleness_bound() {
    let answer: Answer = Arc::new(Mutex::new((200, file("jwks.json"))));
    let (url, _) = serve(Arc::clone(&answer)).await;
    let keys =
        IssuerKeys::remote(&url).refresh(TimeDelta::hours(1)).max_stale(TimeDelta::hours(6)).build().unwrap();
    let (_, issuer, t0) = case("github_rs256");
    keys.refresh_at(t0).await.unwrap();
    answer.lock().unwrap().0 = 503;
    let v = JwtValidator::builder(&issuer, "tokenward", keys.clone()).build().unwrap();
    // Two hours on: a refresh is due and fails; the keys held still verify.
    let (token, ..) = case("github_rs256");
    let r = v.validate_at(&token, t0 + TimeDelta::hours(2)).await;
    // The token itself expired by then; what matters is that the failure is about the token.
    assert!(matches!(r, Err(JwtError::Expired { .. })), "{r:?}");
    assert_eq!(keys.fetches(), 2);
    let r = v.validate_at(&token, t0 + TimeDelta::hours(7)).await;
    match r {
        Err(JwtError::KeysUnavailable(JwksError::Unavailable { fetched_at: Some(_), last_error })) => {
            assert!(last_error.contains("503"), "{last_error}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn plain_http_to_a_remote_host_and_a_pinned_file() {
    assert!(matches!(
        IssuerKeys::remote("http://issuer.example.com/jwks").build(),
        Err(ConfigError::Http(_))
    ));
    assert!(matches!(IssuerKeys::remote("not a url").build(), Err(ConfigError::BadUrl(_))));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, file("jwks.json")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let keys = IssuerKeys::pinned_file(&path).unwrap();
    let (token, issuer, t0) = case("generic_eddsa");
    assert_eq!(validator(&issuer, &keys).validate_at(&token, t0).await.unwrap().subject(), "svc-42");
    assert_eq!(keys.fetches(), 0);
    assert!(matches!(IssuerKeys::pinned_file(dir.path().join("absent")), Err(JwksError::File { .. })));

    // Pinned by its SHA-256: the same bytes are accepted, an edited file is refused.
    use sha2::Digest as _;
    let pin: [u8; 32] = sha2::Sha256::digest(file("jwks.json")).into();
    let keys = IssuerKeys::pinned_file_sha256(&path, &pin).unwrap();
    assert_eq!(validator(&issuer, &keys).validate_at(&token, t0).await.unwrap().subject(), "svc-42");
    std::fs::write(&path, [file("jwks.json"), b" ".to_vec()].concat()).unwrap();
    assert!(matches!(IssuerKeys::pinned_file_sha256(&path, &pin), Err(JwksError::DigestMismatch { .. })));
    IssuerKeys::pinned_file(&path).unwrap();
    // A file its group or others may write is refused, pinned or not.
    for mode in [0o664, 0o646, 0o666] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        assert!(matches!(IssuerKeys::pinned_file(&path), Err(JwksError::Writable { .. })), "{mode:o}");
        assert!(matches!(IssuerKeys::pinned_file_sha256(&path, &pin), Err(JwksError::Writable { .. })));
    }
    // Over the cap: refused without reading past it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, vec![b' '; token_oidc::limits::MAX_JWKS_BYTES + 1]).unwrap();
    assert!(matches!(IssuerKeys::pinned_file(&path), Err(JwksError::TooLarge { .. })));
}
