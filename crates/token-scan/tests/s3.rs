//! S3 against a real S3 API on loopback: PyPI's `moto` in server mode, started by this test with
//! signature checks on after the setup calls (`INITIAL_NO_AUTH_ACTION_COUNT`): an IAM user and
//! key are made, a bucket and objects planted, then the scan must sign every request correctly.
//! A missing bucket and refused credentials are clear errors.
//!
//! `scripts/test.sh` installs moto (`TOKENWARD_MOTO_SERVER` names its `moto_server`). Without it
//! the test skips loudly, except under CI.

#![cfg(feature = "s3")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use token_scan::secrecy::SecretString;
use token_scan::*;

struct Moto(Child);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto_server() -> Option<String> {
    if let Ok(p) = std::env::var("TOKENWARD_MOTO_SERVER") {
        return Some(p);
    }
    if Command::new("moto_server")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Some("moto_server".into());
    }
    assert!(std::env::var("CI").map_or(true, |v| v != "true"), "CI=true but moto_server is not installed");
    eprintln!("\n*** SKIPPED: S3 tests (no moto_server; scripts/test.sh installs it) ***\n");
    None
}

fn start(auth_after: u32) -> Option<(Moto, String)> {
    let bin = moto_server()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", auth_after.to_string())
        .stdout(Stdio::null())
        .stderr(if std::env::var("MOTO_DEBUG").is_ok() { Stdio::inherit() } else { Stdio::null() })
        .spawn()
        .expect("moto_server starts");
    let moto = Moto(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((moto, format!("http://127.0.0.1:{port}")))
}

/// An unsigned call inside the no-auth window (moto routes by the credential scope's service).
fn call(endpoint: &str, method: &str, path: &str, service: &str, body: &[u8]) -> String {
    use token_http::{HttpClient, Method, Request};
    let method_ = match method {
        "POST" => Method::Post,
        "PUT" => Method::Put,
        _ => Method::Get,
    };
    let mut req = Request::new(method_, path)
        .header(
            "authorization",
            format!("AWS4-HMAC-SHA256 Credential=AKIASETUP0000000000/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"),
        )
        .body(body.to_vec());
    if service == "iam" {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let resp = rt.block_on(HttpClient::builder(endpoint).build().unwrap().send(req)).unwrap();
    let text = String::from_utf8_lossy(&resp.body).into_owned();
    assert!(resp.is_success(), "{method} {path}: {} {text}", resp.status);
    text
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml.find(&format!("<{tag}>")).unwrap() + tag.len() + 2;
    &xml[start..start + xml[start..].find(&format!("</{tag}>")).unwrap()]
}

fn tokens() -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(include_str!("vectors/github-tokens.json")).unwrap();
    v["valid"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect()
}

#[test]
fn secrets_in_bucket_objects_are_found_through_signed_requests() {
    let Some((_moto, endpoint)) = start(6) else { return };
    let t = tokens();
    call(&endpoint, "POST", "/", "iam", b"Action=CreateUser&UserName=scanner&Version=2010-05-08");
    let key =
        call(&endpoint, "POST", "/", "iam", b"Action=CreateAccessKey&UserName=scanner&Version=2010-05-08");
    let policy =
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}"#;
    let form = format!(
        "Action=PutUserPolicy&UserName=scanner&PolicyName=read&PolicyDocument={}&Version=2010-05-08",
        policy
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
            .collect::<String>()
    );
    call(&endpoint, "POST", "/", "iam", form.as_bytes());
    call(&endpoint, "PUT", "/planted", "s3", b"");
    call(&endpoint, "PUT", "/planted/app/config.env", "s3", format!("TOKEN={}\n", t[0]).as_bytes());
    call(
        &endpoint,
        "PUT",
        "/planted/deep/a%20b/notes.txt",
        "s3",
        format!("hello\nkey: {}\n", t[1]).as_bytes(),
    );
    // From here on, moto checks every signature.
    let id = between(&key, "AccessKeyId").to_owned();
    let secret = between(&key, "SecretAccessKey").to_owned();
    let options = S3Options::new(&endpoint, "us-east-1", &id, SecretString::from(secret.clone()));
    let scanner = Scanner::new().unwrap();
    let report = scanner.scan_s3("planted", &options).unwrap();
    assert_eq!(report.files, 2, "{:?}", report.skipped);
    let found: Vec<String> = report.findings.iter().map(|f| f.location.to_string()).collect();
    assert_eq!(found, ["s3://planted/app/config.env:1:7", "s3://planted/deep/a b/notes.txt:2:6"]);
    // A prefix without `/`: moto 5's signature check mis-encodes `/` in query values (boto3's own
    // ListObjectsV2 with Prefix="deep/" gets SignatureDoesNotMatch from it too).
    let only = scanner.scan_s3("planted", &options.clone().prefix("deep")).unwrap();
    assert_eq!(only.findings.len(), 1);

    let missing = scanner.scan_s3("no-such-bucket", &options).unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
    let wrong = S3Options::new(&endpoint, "us-east-1", &id, SecretString::from(format!("{secret}x")));
    let refused = scanner.scan_s3("planted", &wrong).unwrap_err();
    assert!(refused.to_string().contains("credentials are refused"), "{refused}");
    assert!(
        !refused.to_string().contains(&secret) && !format!("{wrong:?}").contains(&secret),
        "no secret in errors"
    );
    let stranger =
        S3Options::new(&endpoint, "us-east-1", "AKIAUNKNOWN000000000", SecretString::from("x".repeat(40)));
    assert!(
        scanner.scan_s3("planted", &stranger).unwrap_err().to_string().contains("credentials are refused")
    );
    let nowhere = S3Options::new("http://127.0.0.1:9", "us-east-1", &id, SecretString::from(secret));
    assert!(matches!(scanner.scan_s3("planted", &nowhere), Err(ScanError::S3(_))));
}

/// The scan's HTTP is token-http's: plain HTTP to an endpoint that is not loopback is refused
/// before any connection (the credentials would travel in the clear).
#[test]
fn plain_http_to_a_remote_endpoint_is_refused() {
    let remote = S3Options::new(
        "http://192.0.2.10:9000",
        "us-east-1",
        "AKIAEXAMPLE",
        SecretString::from("s".repeat(40)),
    );
    let e = Scanner::new().unwrap().scan_s3("b", &remote).unwrap_err();
    assert!(matches!(&e, ScanError::S3(m) if m.contains("plain HTTP")), "{e}");
}

/// An object's body is bounded by `max_object_size` as it is read, whatever the listing said: an
/// endpoint listing 10 bytes and sending a megabyte has the object skipped and reported (not
/// scanned in part, not held whole).
#[test]
fn an_object_over_its_bound_is_skipped_whatever_the_listing_says() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&head);
            let body = if head.starts_with("GET /b?") {
                "<ListBucketResult><Contents><Key>big</Key><Size>10</Size></Contents><IsTruncated>false</IsTruncated></ListBucketResult>".to_owned()
            } else {
                "a".repeat(1 << 20)
            };
            let _ = write!(
                conn,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let mut options =
        S3Options::new(&endpoint, "us-east-1", "AKIAEXAMPLE", SecretString::from("s".repeat(40)));
    options.max_object_size = 1000;
    let report = Scanner::new().unwrap().scan_s3("b", &options).unwrap();
    assert_eq!(report.files, 0, "{:?}", report.skipped);
    assert!(
        report.skipped.iter().any(|s| s.what == "s3://b/big" && s.reason.contains("over 1000 bytes")),
        "{:?}",
        report.skipped
    );
}
