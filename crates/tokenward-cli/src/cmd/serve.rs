//! `serve`: the token exchange (RFC 8693) and a forward-auth endpoint over this store; and
//! `exchange`: the client a CI step runs.

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request as AxumRequest};
use axum::response::IntoResponse;
use axum::routing::any;
use clap::Args;
use tokenward::core::{Grant, Request};
use tokenward::oidc::DpopVerifier;
use tokenward_tower::{TokenAuthLayer, TokenEndpoint};

use crate::cli::Global;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (loopback by default; put TLS in front of it, e.g. a proxy).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub(crate) listen: std::net::SocketAddr,
    /// The URL clients reach this server at (`https://auth.example.com`): what DPoP proofs name.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExchangeArgs {
    /// The token endpoint (`https://auth.example.com/token`; plain HTTP to loopback only).
    #[arg(long, value_name = "URL")]
    pub(crate) url: String,
    /// The scopes asked for (repeatable, or space-separated).
    #[arg(long = "scope", required = true, value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// How long the token should live (at most the federation's max_ttl; default that).
    #[arg(long, value_name = "DURATION")]
    pub(crate) ttl: Option<String>,
    /// Read the subject token from this file (default: stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) subject_token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the endpoint, besides the platform's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Write the token to this file (created private, 0600) instead of stdout: keeps it out of a
    /// CI job's log.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// The largest subject token read from a file or stdin.
const MAX_SUBJECT: u64 = 64 * 1024;
/// The path forward-auth requests name their scope under.
const AUTHORIZE: &str = "/authorize/";

/// Where a request came from: the peer's address.
fn peer(ext: &http::Extensions, _: &http::HeaderMap) -> Option<String> {
    ext.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip().to_string())
}

/// The scope a forward-auth request asks about: its path after `/authorize/`, percent-decoded
/// (UTF-8 or nothing; a malformed escape is left as it is, and a `%` is in no scope's grammar, so
/// it is refused by the scope's parser).
fn asked<B>(req: &http::Request<B>) -> Option<Request> {
    let raw = req.uri().path().strip_prefix(AUTHORIZE)?;
    Request::parse(&percent_encoding::percent_decode_str(raw).decode_utf8().ok()?).ok()
}

pub(crate) async fn serve(g: &Global, a: ServeArgs) -> Result<u8> {
    let mut signals = crate::signals::Signals::catch()?;
    let tw = open::open(g, Need::Audited).await?;
    let (file, version) = crate::cmd::policy::stored(&tw).await?;
    let names = tw.federate(&file)?;
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| CliError::new(format!("listening on {}: {e}", a.listen)))?;
    let local =
        listener.local_addr().map_err(|e| CliError::new(format!("listening on {}: {e}", a.listen)))?;
    let public = a.public_url.unwrap_or_else(|| format!("http://{local}")).trim_end_matches('/').to_owned();
    let dpop = || {
        DpopVerifier::builder()
            .clock(std::sync::Arc::clone(tw.clock()))
            .build()
            .map_err(|e| CliError::new(format!("DPoP: {e}")))
    };
    let token = TokenEndpoint::new(tw.clone())
        .dpop(dpop()?, format!("{public}/token"))
        .source(peer)
        .into_router("/token");
    let auth = Router::new().route("/authorize/{*scope}", any(authorized)).route_layer(
        TokenAuthLayer::new(tw.verifier(), asked::<axum::body::Body>)
            .dpop(dpop()?, public.clone())
            .source(peer),
    );
    let app = token.merge(auth).into_make_service_with_connect_info::<SocketAddr>();
    eprintln!(
        "tokenward serve: listening on {local} for {public} (policy version {version}, {} federation(s): {}); SIGTERM or Ctrl-C stops",
        names.len(),
        names.join(", ")
    );
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            signals.recv().await;
        })
        .await;
    eprintln!("tokenward serve: stopping");
    tw.shutdown().await?;
    served.map_err(|e| CliError::new(format!("serving: {e}")))?;
    Ok(0)
}

/// A forward-auth answer: the layer let the request through, so the token allows the scope.
async fn authorized(req: AxumRequest) -> axum::response::Response {
    let Some(g) = req.extensions().get::<Grant>() else {
        return http::StatusCode::UNAUTHORIZED.into_response();
    };
    let body = serde_json::json!({
        "principal": g.principal().as_str(),
        "token": g.id().to_string(),
        "scopes": g.scopes().to_string(),
        "bound": g.bound_to().is_some(),
    });
    ([(http::header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

pub(crate) async fn exchange(_g: &Global, a: ExchangeArgs) -> Result<u8> {
    let subject = match &a.subject_token_file {
        Some(path) => {
            let f = std::fs::File::open(path).map_err(CliError::read(path))?;
            read_subject(f, &path.display().to_string())?
        }
        None => read_subject(std::io::stdin().lock(), "stdin")?,
    };
    let url = url::Url::parse(&a.url).map_err(|e| CliError::new(format!("--url {}: {e}", a.url)))?;
    let host = url.host_str().ok_or_else(|| CliError::new(format!("--url {}: no host", a.url)))?;
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let base = format!("{}://{host}{port}", url.scheme());
    let mut client =
        token_http::HttpClient::builder(base).timeout(Duration::from_secs(15)).retries(0, Duration::ZERO);
    if let Some(ca) = &a.ca {
        let pem = std::fs::read(ca).map_err(CliError::read(ca))?;
        client = client.ca_pem(pem);
    }
    let client = client.build().map_err(|e| CliError::new(format!("--url {}: {e}", a.url)))?;
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange")
        .append_pair("subject_token", &subject)
        .append_pair("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
        .append_pair("requested_token_type", "urn:ietf:params:oauth:token-type:access_token")
        .append_pair("scope", &a.scopes.join(" "));
    if let Some(ttl) = &a.ttl {
        let ttl = crate::out::duration(ttl, "--ttl")?;
        form.append_pair("expires_in", &ttl.num_seconds().max(1).to_string());
    }
    let body = zeroize::Zeroizing::new(form.finish().into_bytes());
    let request = token_http::Request::post(url.path())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body.to_vec());
    let response = client.send(request).await.map_err(|e| CliError::new(format!("{}: {e}", a.url)))?;
    let answer: serde_json::Value = serde_json::from_slice(&response.body).unwrap_or_default();
    if response.status != 200 {
        let error = answer["error"].as_str().unwrap_or("no error code");
        let why = answer["error_description"].as_str().unwrap_or("");
        if (400..500).contains(&response.status) {
            // Refused: a denial (exit 1), like `verify`'s.
            eprintln!(
                "tokenward: the token endpoint refused the exchange (status {}): {error}: {why}",
                response.status
            );
            return Ok(1);
        }
        return Err(CliError::new(format!(
            "{}: the token endpoint failed (status {}): {error}: {why}",
            a.url, response.status
        )));
    }
    let Some(token) = answer["access_token"].as_str() else {
        return Err(CliError::new(format!("{}: the answer has no access_token", a.url)));
    };
    match &a.output {
        Some(path) => {
            tokenward::core::private_fs::write(path, format!("{token}\n")).map_err(CliError::write(path))?;
            eprintln!("wrote the token to {}", path.display());
        }
        None => println!("{token}"),
    }
    Ok(0)
}

/// The subject token: at most [`MAX_SUBJECT`] bytes, surrounding whitespace trimmed.
fn read_subject(r: impl std::io::Read, what: &str) -> Result<zeroize::Zeroizing<String>> {
    let mut text = zeroize::Zeroizing::new(String::new());
    r.take(MAX_SUBJECT + 1)
        .read_to_string(&mut text)
        .map_err(|e| CliError::new(format!("reading the subject token from {what}: {e}")))?;
    if text.len() as u64 > MAX_SUBJECT {
        return Err(CliError::new(format!("the subject token in {what} is larger than 64 KiB")));
    }
    let trimmed = zeroize::Zeroizing::new(text.trim().to_owned());
    if trimmed.is_empty() {
        return Err(CliError::new(format!("no subject token in {what}")));
    }
    Ok(trimmed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_forward_auth_path_is_percent_decoded_into_a_scope_or_refused() {
        let asked_for =
            |path: &str| asked(&http::Request::get(path).body(()).unwrap()).map(|r| r.to_string());
        let want = Some(Request::parse("s3:bucket/logs/x:read").unwrap().to_string());
        assert_eq!(asked_for("/authorize/s3:bucket/logs/x:read"), want);
        assert_eq!(asked_for("/authorize/s3%3Abucket%2Flogs%2Fx%3aread"), want);
        for refused in [
            "/authorize/s3:bucket/logs/x%zz:read", // a malformed escape
            "/authorize/s3:bucket/logs/x%:read",
            "/authorize/s3:bucket/logs/%ff:read",   // not UTF-8
            "/authorize/s3:bucket/logs/%2525:read", // decoded once: a `%` stays
            "/authorize/",
            "/other/s3:bucket/logs/x:read",
        ] {
            assert_eq!(asked_for(refused), None, "{refused}");
        }
    }
}
