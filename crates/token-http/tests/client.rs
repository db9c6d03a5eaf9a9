//! The client's rules against a real socket on loopback: no redirects, bounded answers, retries
//! only for idempotent calls, timeouts, plain HTTP only to loopback, secrets out of `Debug`.
//! (TLS, a custom CA and a wrong one are exercised against OpenBao's TLS dev server in
//! token-rotate's tests.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use token_http::secrecy::SecretString;
use token_http::{HttpClient, HttpError, Request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server answering each connection with `answer(n)` (n counts from 0); it records the
/// requests' heads.
async fn server(
    answer: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, h) = (count.clone(), heads.clone());
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                h.lock().unwrap().push(String::from_utf8_lossy(&got).into_owned());
                let _ = s.write_all(&answer(n)).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (url, count, heads)
}

fn reply(status: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len())
        .into_bytes()
}

#[tokio::test]
async fn answers_are_read_and_secret_headers_are_sent_but_never_shown() {
    let (url, _, heads) = server(|_| reply("200 OK", "{\"ok\":true}")).await;
    let client = HttpClient::builder(&url).build().unwrap();
    let token = SecretString::from("hvs.super-secret-token-value".to_owned());
    let req = Request::get("/v1/x?list=true")
        .secret_header("X-Vault-Token", &token)
        .header("Accept", "application/json");
    assert!(!format!("{req:?}").contains("super-secret"), "{req:?}");
    let r = client.send(req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["ok"], true);
    assert!(!format!("{r:?}").contains("ok"), "a response's Debug shows no body");
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    assert!(head.contains("x-vault-token: hvs.super-secret-token-value"), "{head}");
}

#[tokio::test]
async fn redirects_are_never_followed() {
    let (url, count, _) = server(|_| {
        b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:1/steal\r\ncontent-length: 0\r\n\r\n"
            .to_vec()
    })
    .await;
    let client = HttpClient::builder(&url).build().unwrap();
    let token = SecretString::from("t".to_owned());
    let e = client.send(Request::get("/a").secret_header("X-Vault-Token", &token)).await.unwrap_err();
    assert!(matches!(e, HttpError::Redirect { status: 307, .. }), "{e}");
    assert_eq!(count.load(Ordering::SeqCst), 1, "not retried, not followed");
}

#[tokio::test]
async fn answers_over_the_bound_are_refused_declared_or_not() {
    let big = "x".repeat(10_000);
    let body = big.clone();
    let (url, _, _) = server(move |n| {
        if n == 0 {
            reply("200 OK", &body)
        } else {
            // No content-length: read until close, refused past the bound as it streams.
            format!("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{body}").into_bytes()
        }
    })
    .await;
    let client = HttpClient::builder(&url).max_response(4096).retries(0, Duration::ZERO).build().unwrap();
    for _ in 0..2 {
        let e = client.send(Request::get("/big")).await.unwrap_err();
        assert!(matches!(e, HttpError::TooLarge { max: 4096, .. }), "{e}");
    }
    let roomy = HttpClient::builder(&url).max_response(1 << 20).build().unwrap();
    assert_eq!(roomy.send(Request::get("/big")).await.unwrap().body.len(), big.len());
}

#[tokio::test]
async fn idempotent_calls_are_retried_and_others_are_not() {
    let (url, count, _) =
        server(|n| if n < 2 { reply("503 Service Unavailable", "") } else { reply("200 OK", "{}") }).await;
    let client = HttpClient::builder(&url).retries(3, Duration::from_millis(5)).build().unwrap();
    assert_eq!(client.send(Request::get("/r")).await.unwrap().status, 200);
    assert_eq!(count.load(Ordering::SeqCst), 3, "two 503s, then the answer");
    let (url, count, _) = server(|_| reply("503 Service Unavailable", "")).await;
    let client = HttpClient::builder(&url).retries(3, Duration::from_millis(5)).build().unwrap();
    assert_eq!(client.send(Request::post("/create")).await.unwrap().status, 503);
    assert_eq!(count.load(Ordering::SeqCst), 1, "a POST is not retried");
    assert_eq!(client.send(Request::post("/cas-write").idempotent(true)).await.unwrap().status, 503);
    assert_eq!(count.load(Ordering::SeqCst), 5, "unless the caller says it is idempotent");
}

#[tokio::test]
async fn silence_times_out_and_a_closed_port_is_a_transport_error() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s); // accept and never answer
        }
    });
    let client = HttpClient::builder(&url)
        .timeout(Duration::from_millis(200))
        .retries(1, Duration::from_millis(5))
        .build()
        .unwrap();
    let e = client.send(Request::get("/slow")).await.unwrap_err();
    assert!(matches!(e, HttpError::Timeout { attempts: 2, connecting: false, .. }), "{e}");
    // It says what was waited: each attempt's bound, and both attempts in all (issue 24 §6).
    assert!(e.to_string().contains("no answer within 200ms (2 attempts, 0.4s in all)"), "{e}");
    let once = client.send(Request::post("/slow")).await.unwrap_err();
    assert!(once.to_string().ends_with("no answer within 200ms"), "{once}");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed =
        HttpClient::builder(format!("http://127.0.0.1:{port}")).retries(0, Duration::ZERO).build().unwrap();
    let e = closed.send(Request::get("/x")).await.unwrap_err();
    assert!(matches!(e, HttpError::Transport { .. }) && e.is_transient(), "{e}");
}

#[test]
fn plain_http_goes_only_to_loopback_unless_allowed() {
    for ok in ["http://127.0.0.1:8200", "http://localhost:1", "http://[::1]:8200", "https://bao.example.com"]
    {
        assert!(HttpClient::builder(ok).build().is_ok(), "{ok}");
    }
    for bad in ["http://bao.example.com:8200", "http://10.0.0.5", "ftp://127.0.0.1", "not a url", "https://"]
    {
        assert!(matches!(HttpClient::builder(bad).build(), Err(HttpError::Config(_))), "{bad}");
    }
    assert!(HttpClient::builder("http://10.0.0.5").allow_plain_http(true).build().is_ok());
    // TLS material that does not parse is a configuration error, and never quotes a key.
    let e = HttpClient::builder("https://x.example").ca_pem(b"not pem".to_vec()).build().unwrap_err();
    assert!(matches!(e, HttpError::Config(_)), "{e}");
    let key = token_http::secrecy::SecretBox::new(Box::new(
        b"-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n".to_vec(),
    ));
    let e = HttpClient::builder("https://x.example")
        .client_identity_pem(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec(), key)
        .build()
        .unwrap_err();
    assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
}

/// `HTTP_PROXY` (and `ALL_PROXY`) set to a listener recording connections: a call to a loopback
/// API (OpenBao on 127.0.0.1, say, with its token in a header) goes straight there, never through
/// the proxy. The variables are set for a child run of this test binary (the environment is the
/// process's), which makes the call; this run holds the proxy and counts its connections.
#[test]
fn a_loopback_api_is_never_reached_through_a_proxy() {
    if std::env::var_os("TOKEN_HTTP_PROXY_CHILD").is_some() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (url, count, _) = server(|_| reply("200 OK", "{}")).await;
            let token = SecretString::from("hvs.must-not-reach-a-proxy".to_owned());
            for base in [url.clone(), url.replace("127.0.0.1", "localhost")] {
                let client = HttpClient::builder(&base)
                    .timeout(Duration::from_secs(5))
                    .retries(0, Duration::ZERO)
                    .build();
                let request = Request::get("/v1/sys/health").secret_header("X-Vault-Token", &token);
                assert_eq!(client.unwrap().send(request).await.unwrap().status, 200, "{base}");
            }
            assert_eq!(count.load(Ordering::SeqCst), 2);
        });
        return;
    }
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    proxy.set_nonblocking(true).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_loopback_api_is_never_reached_through_a_proxy",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TOKEN_HTTP_PROXY_CHILD", "1")
        .env("HTTP_PROXY", &proxy_url)
        .env("http_proxy", &proxy_url)
        .env("HTTPS_PROXY", &proxy_url)
        .env("ALL_PROXY", &proxy_url)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let mut through_proxy = 0;
    while proxy.accept().is_ok() {
        through_proxy += 1;
    }
    assert_eq!(through_proxy, 0, "a loopback call went through the proxy");
    assert!(out.status.success(), "the child run failed: {}", String::from_utf8_lossy(&out.stdout));
}
