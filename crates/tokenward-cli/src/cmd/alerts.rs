//! Alerts: what needs a person now (a token about to expire, a rotation overdue or rolled back,
//! an audit chain that fails verification, a scan finding, a revoked token still presented),
//! sent as JSON lines to stdout, to a webhook (POST, `X-Tokenward-Signature: sha256=<HMAC-SHA256
//! of the body>`, retried with backoff) and to a command hook (the alert on its stdin).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use hmac::{KeyInit, Mac};
use serde::Serialize;
use serde_json::json;
use tokenward::Tokenward;
use tokenward::core::chrono::{DateTime, Utc};
use tokenward::posture::inventory::InventoryThresholds;
use tokenward::posture::{Posture, Thresholds};
use tokenward::scan::Scanner;
use tokenward::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::cli::{Format, Global};
use crate::cmd::report;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCmd {
    /// Check once and send what is found to the sinks.
    #[command(
        after_help = "Example (cron):\n  tokenward alerts check --webhook https://hooks.example/tw --webhook-secret alerts/hmac-key --scan /srv/deploy"
    )]
    Check(AlertArgs),
}

/// Where alerts go.
#[derive(Debug, Clone, Args)]
pub(crate) struct AlertSinks {
    /// POST each alert (JSON) here, signed: header X-Tokenward-Signature, sha256= and the hex HMAC-SHA256 of the body.
    #[arg(long)]
    pub(crate) webhook: Option<WebhookUrl>,
    /// The store secret holding the webhook's HMAC key.
    #[arg(long)]
    pub(crate) webhook_secret: Option<String>,
    /// Run this (through sh -c) for each alert, the alert's JSON on its stdin.
    #[arg(long = "alert-command")]
    pub(crate) command: Option<String>,
    /// Do not print alerts on stdout.
    #[arg(long)]
    pub(crate) no_stdout: bool,
    /// How alerts are printed on stdout: JSON lines (the default: stdout is one of the alert
    /// sinks, read by programs) or text, one line each.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct AlertArgs {
    #[command(flatten)]
    pub(crate) sinks: AlertSinks,
    /// A token expiring within this long is an alert.
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// Also scan these trees; every finding is an alert (repeat for more).
    #[arg(long)]
    pub(crate) scan: Vec<PathBuf>,
    /// Also read the inventory (`tokenward inventory`, default thresholds): one alert per finding
    /// kind, naming the credentials.
    #[arg(long)]
    pub(crate) inventory: bool,
}

/// A webhook's URL. Slack-style URLs carry their secret in the path, so it is shown (`Debug`,
/// `Display`, errors) as `scheme://host[:port]/…` only; parsing never fails (clap would quote a
/// value it refuses), the URL is checked where it is used.
#[derive(Clone)]
pub(crate) struct WebhookUrl(String);

impl WebhookUrl {
    /// The whole URL, secret path included: for the request only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for WebhookUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else { return f.write_str("…") };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Userinfo is a secret too.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        write!(f, "{scheme}://{host}/…")
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

/// The header carrying the webhook body's signature.
pub(crate) const SIGNATURE_HEADER: &str = "X-Tokenward-Signature";

/// One alert.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Alert {
    pub(crate) kind: String,
    pub(crate) severity: String,
    pub(crate) summary: String,
    pub(crate) tokens: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) credential: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) location: Option<String>,
    /// The inventory's credentials an alert names (`source:id`, never a secret).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) credentials: Vec<String>,
}

/// The posture's findings that call for a person ([`tokenward::posture::FindingKind::is_alert`]).
pub(crate) fn from_posture(p: &Posture) -> Vec<Alert> {
    p.findings
        .iter()
        .filter(|f| f.kind.is_alert())
        .map(|f| Alert {
            kind: f.kind.as_str().to_owned(),
            severity: f.severity.as_str().to_owned(),
            summary: f.summary.clone(),
            tokens: f.tokens.clone(),
            credential: f.credential.clone(),
            location: None,
            credentials: Vec::new(),
        })
        .collect()
}

/// Scans `paths` and turns each finding into an alert (its location and redacted form only).
pub(crate) async fn scan_alerts(paths: &[PathBuf]) -> Result<Vec<Alert>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let paths = paths.to_vec();
    tokio::task::spawn_blocking(move || -> Result<Vec<Alert>> {
        let scanner = Scanner::new()?;
        let mut out = Vec::new();
        for p in &paths {
            let r = scanner.scan_tree(p, &tokenward::scan::TreeOptions::default())?;
            for f in &r.findings {
                out.push(Alert {
                    kind: "scan_finding".into(),
                    severity: "high".into(),
                    summary: format!("{} found in {}: {}", f.rule, p.display(), f.redacted),
                    tokens: Vec::new(),
                    credential: None,
                    location: Some(format!("{}/{}", p.display(), f.location)),
                    credentials: Vec::new(),
                });
            }
        }
        Ok(out)
    })
    .await
    .map_err(|e| CliError::new(format!("the scan stopped: {e}")))?
}

/// Where alerts go, resolved (the webhook's key read from the store).
pub(crate) struct Sinks {
    /// Whether alerts go to stdout, and how (`--format`: JSON lines by default).
    stdout: Option<Format>,
    webhook: Option<(WebhookUrl, Zeroizing<Vec<u8>>)>,
    command: Option<String>,
}

impl Sinks {
    pub(crate) async fn resolve(tw: &Tokenward, a: &AlertSinks) -> Result<Self> {
        let webhook = match &a.webhook {
            None => None,
            Some(url) => {
                if !(url.expose().starts_with("https://") || loopback_http(url.expose())) {
                    return Err(CliError::new(format!(
                        "--webhook {url}: https only (plain http only to loopback)"
                    )));
                }
                let name = a.webhook_secret.as_deref().ok_or_else(|| {
                    CliError::new(
                        "--webhook needs --webhook-secret NAME (the HMAC key, a secret in the store)",
                    )
                })?;
                let key = tw
                    .read_current(&crate::cmd::secrets::user_name(name)?)
                    .await?
                    .ok_or_else(|| CliError::new(format!("--webhook-secret {name}: no such secret")))?;
                Some((url.clone(), Zeroizing::new(key.expose_secret().clone())))
            }
        };
        Ok(Self { stdout: (!a.no_stdout).then_some(a.format), webhook, command: a.command.clone() })
    }

    /// Sends every alert to every sink; a sink that fails is reported and the others still run.
    pub(crate) async fn send(&self, alerts: &[Alert], now: DateTime<Utc>) -> Result<()> {
        let mut failed = Vec::new();
        for alert in alerts {
            let body = json!({"type": "alert", "at": out::time(now), "alert": alert}).to_string();
            match self.stdout {
                Some(Format::Json) => println!("{body}"),
                Some(Format::Text) => println!("{}", alert_line(alert, now)),
                None => {}
            }
            if let Some((url, key)) = &self.webhook
                && let Err(e) = post(url, key.clone(), body.clone()).await
            {
                failed.push(format!("webhook: {e}"));
            }
            if let Some(cmd) = &self.command
                && let Err(e) = hook(cmd, &body).await
            {
                failed.push(format!("command: {e}"));
            }
        }
        if failed.is_empty() {
            Ok(())
        } else {
            Err(CliError::new(format!("alert sinks failed: {}", failed.join("; "))))
        }
    }
}

/// An alert as one line of text: when, severity, kind, summary, then its tokens, credential and
/// location.
fn alert_line(a: &Alert, now: DateTime<Utc>) -> String {
    let mut line = format!("{}  {:<6}  {:<27}  {}", out::time(now), a.severity, a.kind, a.summary);
    if !a.tokens.is_empty() {
        line.push_str(&format!("  tokens {}", a.tokens.join(" ")));
    }
    if let Some(c) = &a.credential {
        line.push_str(&format!("  credential {c}"));
    }
    if let Some(l) = &a.location {
        line.push_str(&format!("  at {l}"));
    }
    line
}

fn loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `sha256=<hex>` of HMAC-SHA256 over `body` under `key`.
pub(crate) fn signature(key: &[u8], body: &[u8]) -> Result<String> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|_| CliError::new("the webhook key is not a valid HMAC key"))?;
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let mut s = String::from("sha256=");
    tokenward::core::hex::push(&mut s, &tag);
    Ok(s)
}

/// POSTs `body`, signed, through token-http: no redirects, bounded answer, retried (4 attempts,
/// backoff from 200 ms) on transport errors, 429 and 5xx — the body carries its own time, so a
/// receiver can drop a repeat.
async fn post(url: &WebhookUrl, key: Zeroizing<Vec<u8>>, body: String) -> Result<()> {
    let (base, path) = split_url(url)?;
    let client = token_http::HttpClient::builder(base)
        .secret_path(true)
        .timeout(Duration::from_secs(10))
        .retries(3, Duration::from_millis(200))
        .max_response(64 << 10)
        .build()
        .map_err(|e| CliError::new(format!("--webhook: {e}")))?;
    let sig = signature(&key, body.as_bytes())?;
    let request = token_http::Request::post(path)
        .header("Content-Type", "application/json")
        .header(SIGNATURE_HEADER, sig)
        .body(body.into_bytes())
        .idempotent(true);
    let r = client.send(request).await.map_err(|e| CliError::new(e.to_string()))?;
    if r.is_success() { Ok(()) } else { Err(CliError::new(format!("{url} answered {}", r.status))) }
}

/// `https://host:port/path?q` → (`https://host:port`, `/path?q`).
fn split_url(shown: &WebhookUrl) -> Result<(String, String)> {
    let url = shown.expose();
    let scheme_end =
        url.find("://").ok_or_else(|| CliError::new(format!("--webhook {shown}: not a URL")))? + 3;
    match url[scheme_end..].find('/') {
        Some(i) => Ok((url[..scheme_end + i].to_owned(), url[scheme_end + i..].to_owned())),
        None => Ok((url.to_owned(), "/".to_owned())),
    }
}

/// Runs `cmd` (through `sh -c`) with the alert on its stdin, bounded to 30 s.
async fn hook(cmd: &str, body: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    // The environment minus every key variable: a hook never reads the store.
    let mut child = crate::child::command("sh", &[])
        .args(["-c", cmd])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::new(format!("starting {cmd:?}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        let sent = async {
            stdin.write_all(body.as_bytes()).await?;
            stdin.write_all(b"\n").await
        };
        match sent.await {
            // A hook that does not read the alert (it exited, or closed its stdin): its exit
            // status decides, not the race between its exit and this write.
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
            Err(e) => return Err(CliError::new(format!("writing the alert to {cmd:?}: {e}"))),
        }
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| CliError::new(format!("{cmd:?} ran over 30 s")))?
        .map_err(|e| CliError::new(format!("waiting for {cmd:?}: {e}")))?;
    if status.success() { Ok(()) } else { Err(CliError::new(format!("{cmd:?} exited with {status}"))) }
}

/// The alerts now: the posture's, and the scans'.
pub(crate) async fn current(
    tw: &Tokenward,
    g: &Global,
    t: &Thresholds,
    scan: &[PathBuf],
    inventory: bool,
) -> Result<Vec<Alert>> {
    let posture = report::build(tw, g, t).await?;
    let mut alerts = from_posture(&posture);
    alerts.extend(scan_alerts(scan).await?);
    // An inventory that cannot be read is an alert of its own, never the end of the others.
    if inventory {
        match crate::cmd::inventory::read(tw, InventoryThresholds::default()).await {
            Ok(inv) => alerts.extend(crate::cmd::inventory::alerts(&inv)),
            Err(e) => alerts.push(Alert {
                kind: "inventory_unavailable".into(),
                severity: "high".into(),
                summary: format!("the inventory could not be read: {e}"),
                tokens: Vec::new(),
                credential: None,
                location: None,
                credentials: Vec::new(),
            }),
        }
    }
    Ok(alerts)
}

/// Alerts not sent before (by kind, tokens, credential and location), remembered in `sent`.
pub(crate) fn fresh(alerts: Vec<Alert>, sent: &mut BTreeSet<String>) -> Vec<Alert> {
    alerts
        .into_iter()
        .filter(|a| {
            sent.insert(format!(
                "{}|{}|{:?}|{:?}|{}",
                a.kind,
                a.tokens.join(","),
                a.credential,
                a.location,
                a.credentials.join(",")
            ))
        })
        .collect()
}

/// `tokenward alerts check`: once, for cron. Exit 1 when there is an alert.
pub(crate) async fn check(g: &Global, a: AlertArgs) -> Result<u8> {
    let t = Thresholds {
        expiring_within: out::duration(&a.expiring_within, "--expiring-within")?,
        ..Thresholds::default()
    };
    let tw = open::open(g, Need::Audited).await?;
    let result = async {
        let sinks = Sinks::resolve(&tw, &a.sinks).await?;
        let alerts = current(&tw, g, &t, &a.scan, a.inventory).await?;
        sinks.send(&alerts, tw.clock().now()).await?;
        Ok::<_, CliError>(alerts.len())
    }
    .await;
    tw.shutdown().await?;
    let n = result?;
    eprintln!("{n} alert(s)");
    Ok(if n == 0 { 0 } else { 1 })
}
