//! Alerts: `alerts check` sends what needs a person to stdout (JSON lines), a signed webhook
//! (retried after a 5xx) and a command hook.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

use common::*;
use hmac::{KeyInit, Mac};

/// A webhook receiver on loopback: answers 503 to the first request, 200 after; hands over
/// (signature header, body) of each.
fn receiver() -> (String, mpsc::Receiver<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate().take(20) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut sig) = (0usize, String::new());
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let lower = l.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if lower.starts_with("x-tokenward-signature:") {
                    sig = l.split_once(':').unwrap().1.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let status = if n == 0 { "503 Service Unavailable" } else { "200 OK" };
            write!(stream, "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").unwrap();
            let _ = tx.send((sig, String::from_utf8(body).unwrap()));
        }
    });
    (url, rx)
}

#[test]
fn alerts_go_to_stdout_a_signed_webhook_and_a_command() {
    let cli = Cli::new();
    cli.init();
    const KEY: &[u8] = b"webhook-hmac-key-0123456789abcdef";
    cli.run_stdin(&["secret", "put", "alerts/hmac-key"], KEY).ok();
    // A leaked token in a watched tree; a declared credential never rotated (overdue).
    let (token, _) = cli.issue("billing-api", "leaky", "s3:bucket/prod-logs/a:read", "30m");
    std::fs::create_dir_all(cli.path("deploy")).unwrap();
    std::fs::write(cli.path("deploy/app.env"), format!("T={token}\n")).unwrap();
    let (url, rx) = receiver();
    let r = cli.run(&[
        "alerts",
        "check",
        "--scan",
        "deploy",
        "--webhook",
        &url,
        "--webhook-secret",
        "alerts/hmac-key",
        "--alert-command",
        "cat >> hook.jsonl",
    ]);
    assert_eq!(r.code, 1, "alerts: exit 1; {}", r.stderr);
    let alerts: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let kinds: Vec<&str> = alerts.iter().map(|a| a["alert"]["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"rotation_overdue") && kinds.contains(&"scan_finding"), "{kinds:?}");
    // The webhook got each alert, signed over the exact body (the first one after a retry).
    let mut got = Vec::new();
    while let Ok(x) = rx.recv_timeout(std::time::Duration::from_secs(10)) {
        got.push(x);
        if got.len() == alerts.len() + 1 {
            break;
        }
    }
    assert_eq!(got.len(), alerts.len() + 1, "one retry after the 503");
    for (sig, body) in &got {
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(KEY).unwrap();
        mac.update(body.as_bytes());
        let hex: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sig, &format!("sha256={hex}"));
    }
    // The command hook got them too, one per line.
    let hooked = std::fs::read_to_string(cli.path("hook.jsonl")).unwrap();
    assert_eq!(hooked.lines().count(), alerts.len());
    // No sink ever saw the token's secret.
    let secret = &token[token.len() - 30..token.len() - 6];
    assert!(!r.stdout.contains(secret) && !hooked.contains(secret));
    assert!(got.iter().all(|(_, b)| !b.contains(secret)));
    // Plain http elsewhere than loopback is refused.
    let bad = cli.run(&[
        "alerts",
        "check",
        "--webhook",
        "http://hooks.example.com/x",
        "--webhook-secret",
        "alerts/hmac-key",
    ]);
    assert_eq!(bad.code, 2);
    assert!(bad.error_line().contains("https only"));
}

/// A webhook URL carries its secret in the path (Slack's do): no output shows more than
/// `scheme://host:port/…` — not the "https only" refusal, not an unreachable hook, not a hook
/// answering 500 after its retries, not the debug log.
#[test]
fn a_webhook_url_s_path_is_never_shown() {
    const PATH: &str = "/services/T0SECRETT/B0SECRETB/xoxSECRETPATHxyz";
    let cli = Cli::new();
    cli.init();
    cli.run_stdin(&["secret", "put", "alerts/hmac-key"], b"webhook-hmac-key-0123456789abcdef").ok();
    // A hook answering 500 to everything.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let failing = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                line.clear();
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            );
        }
    });
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut shown = Vec::new();
    for (base, expect) in [
        ("http://user:pass@hooks.example.com".to_owned(), "http://hooks.example.com/…"),
        (failing.clone(), "answered 500"),
        (closed.clone(), "/…"),
    ] {
        let url = format!("{base}{PATH}?token=xoxSECRETQUERY");
        let r = cli.run_in(
            &["-vv", "alerts", "check", "--webhook", &url, "--webhook-secret", "alerts/hmac-key"],
            None,
            |c| {
                c.env("TOKENWARD_LOG", "trace");
            },
        );
        assert_eq!(r.code, 2, "{url}: {}", r.stderr);
        assert!(r.stderr.contains(expect), "{expect} in {}", r.stderr);
        shown.push(format!("{}{}", r.stdout, r.stderr));
    }
    for out in &shown {
        for secret in ["SECRET", "pass@"] {
            assert!(!out.contains(secret), "{secret} shown: {out}");
        }
    }
}
