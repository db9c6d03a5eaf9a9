//! A credential gateway: clients hold only short-lived, scoped Tokenward tokens; the gateway
//! verifies them with `tokenward-tower`'s layer, then forwards to an upstream API with the
//! upstream's **own** credential injected from the store, so the cloud credential never reaches
//! a client (the access-gateway pattern). The upstream credential rotates underneath with no
//! failed request: the gateway reads it through a `CurrentCredential` (a lock and a clone per
//! request, refreshed at once on every promotion), and the previous one keeps working for the
//! rotation's overlap.
//!
//! Every request is audited by the layer's verification entry: principal, token, the route's
//! scope (`request`), the client's address (`source`) and the outcome (allowed, or denied with
//! the reason).
//!
//! `cargo run --example gateway` starts a demo upstream (an API that checks its own key and lets
//! an admin mint and revoke keys, as a cloud IAM does), the gateway in front of it, issues a
//! client token, calls through the gateway, rotates the upstream key underneath, and shows the
//! overhead per request against a direct call. The pieces are `pub` for
//! `tests/gateway.rs`, which runs them under load through 20 rotations.

#![allow(dead_code, unreachable_pub, clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::routing::{any, post};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokenward::Tokenward;
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::rotate::{Credential, CurrentCredential, RotationTarget, TargetError};
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward_tower::{RouteTable, TokenAuthLayer};

/// The HTTP client the gateway and the demo share (keep-alive, plain HTTP on loopback).
pub type HttpClient = Client<HttpConnector, Body>;

/// A keep-alive HTTP/1.1 client.
pub fn http_client() -> HttpClient {
    let mut c = HttpConnector::new();
    c.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_max_idle_per_host(64).build(c)
}

// ---------------------------------------------------------------------------------------------
// The gateway.

/// Where the gateway forwards, and with which credential.
pub struct Upstream {
    /// `http://host:port` of the upstream API.
    pub base: String,
    /// The upstream's credential, as the store has it now.
    pub credential: CurrentCredential,
    /// The client forwarding uses.
    pub client: HttpClient,
}

/// The gateway's router: every path through the layer (`routes` says which scope each needs),
/// then forwarded.
pub fn gateway(tw: &Tokenward, routes: RouteTable, upstream: Arc<Upstream>) -> Router {
    let layer = TokenAuthLayer::new(tw.verifier(), routes)
        .source(|ext, _| ext.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(a)| a.ip().to_string()));
    Router::new().fallback(forward).with_state(upstream).layer(layer)
}

/// Forwards `req` upstream: the client's `Authorization` replaced by the upstream credential;
/// method, path, query, `content-type` and the body kept; the answer streamed back. The layer
/// authorised all of what is forwarded: the path, and a query only where the route names each of
/// its parameters (`GET /objects/x?acl` reads the ACL, not the object: no route here names
/// `acl`, so it never gets this far).
async fn forward(State(up): State<Arc<Upstream>>, req: Request<Body>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // `/x?` carries no parameter; the route table takes it as `/x`, and so is it sent.
    let path = path.strip_suffix('?').unwrap_or(path);
    let credential = up.credential.get();
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", credential.secret.expose_secret()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    auth.set_sensitive(true);
    let mut out = Request::builder().method(parts.method).uri(format!("{}{path}", up.base));
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        out = out.header(header::CONTENT_TYPE, ct);
    }
    let Ok(out) = out.header(header::AUTHORIZATION, auth).body(body) else {
        return status(StatusCode::BAD_REQUEST);
    };
    match up.client.request(out).await {
        Ok(r) => {
            let (p, b) = r.into_parts();
            let mut resp = Response::new(Body::new(b));
            *resp.status_mut() = p.status;
            if let Some(ct) = p.headers.get(header::CONTENT_TYPE) {
                resp.headers_mut().insert(header::CONTENT_TYPE, ct.clone());
            }
            resp
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream call failed");
            status(StatusCode::BAD_GATEWAY)
        }
    }
}

fn status(s: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = s;
    r
}

// ---------------------------------------------------------------------------------------------
// A demo upstream: an API checking its own bearer keys, with an admin endpoint minting and
// revoking them (as a cloud provider's IAM does).

/// The upstream's keys, and what it saw.
#[derive(Default)]
pub struct UpstreamState {
    keys: Mutex<HashSet<String>>,
    /// Requests with a key it did not accept.
    pub refused: std::sync::atomic::AtomicU64,
    /// Requests served.
    pub served: std::sync::atomic::AtomicU64,
    admin: String,
}

impl UpstreamState {
    /// A state whose admin endpoint takes `admin` as its bearer key.
    pub fn new(admin: &str) -> Arc<Self> {
        Arc::new(Self { admin: admin.to_owned(), ..Self::default() })
    }

    /// Keys currently accepted.
    pub fn key_count(&self) -> usize {
        self.keys.lock().unwrap().len()
    }
}

fn bearer(req: &Request<Body>) -> Option<&str> {
    req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ")
}

/// The upstream's router: `POST /admin/keys` mints a key, `DELETE /admin/keys/{key}` revokes
/// one (admin key); everything else answers `200 object <path>` to an accepted key.
pub fn upstream(state: Arc<UpstreamState>) -> Router {
    async fn mint(State(s): State<Arc<UpstreamState>>, req: Request<Body>) -> Response<Body> {
        if bearer(&req) != Some(s.admin.as_str()) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let mut bytes = [0u8; 24];
        getrandom_fill(&mut bytes);
        let key = format!("upk_{}", tokenward::core::hex::encode(&bytes));
        s.keys.lock().unwrap().insert(key.clone());
        Response::new(Body::from(key))
    }
    async fn revoke(State(s): State<Arc<UpstreamState>>, req: Request<Body>) -> Response<Body> {
        if bearer(&req) != Some(s.admin.as_str()) {
            return status(StatusCode::UNAUTHORIZED);
        }
        let key = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        s.keys.lock().unwrap().remove(&key);
        status(StatusCode::NO_CONTENT)
    }
    async fn serve(State(s): State<Arc<UpstreamState>>, req: Request<Body>) -> Response<Body> {
        let ok = bearer(&req).is_some_and(|k| s.keys.lock().unwrap().contains(k));
        if !ok {
            s.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return status(StatusCode::UNAUTHORIZED);
        }
        s.served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Response::new(Body::from(format!("object {}", req.uri().path())))
    }
    Router::new()
        .route("/admin/keys", post(mint))
        .route("/admin/keys/{key}", any(revoke))
        .fallback(serve)
        .with_state(state)
}

fn getrandom_fill(buf: &mut [u8]) {
    use rand::TryRng;
    rand::rngs::SysRng.try_fill_bytes(buf).expect("the OS random source");
}

/// The upstream's keys as a rotation target: `create` mints one through the admin endpoint,
/// `test` calls the API with it, `revoke` deletes it.
pub struct UpstreamKeys {
    /// `http://host:port` of the upstream.
    pub base: String,
    /// The admin key.
    pub admin: SecretString,
    /// The client.
    pub client: HttpClient,
}

impl UpstreamKeys {
    async fn call(&self, method: &str, path: &str, key: &str) -> Result<(StatusCode, String), String> {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .map_err(|e| e.to_string())?;
        let r = self.client.request(req).await.map_err(|e| e.to_string())?;
        let s = r.status();
        let body =
            http_body_util::BodyExt::collect(r.into_body()).await.map_err(|e| e.to_string())?.to_bytes();
        Ok((s, String::from_utf8_lossy(&body).into_owned()))
    }
}

#[async_trait::async_trait]
impl RotationTarget for UpstreamKeys {
    fn kind(&self) -> &str {
        "demo-upstream-key"
    }

    async fn create(&self, _rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let (s, key) = self
            .call("POST", "/admin/keys", self.admin.expose_secret())
            .await
            .map_err(|e| TargetError::new("create", e))?;
        if s != StatusCode::OK {
            return Err(TargetError::new("create", format!("the upstream answered {s}")));
        }
        let handle = format!("upk-…{}", &key[key.len() - 4..]);
        Ok(Credential::new(handle, SecretString::from(key), Utc::now() + TimeDelta::days(30)))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let (s, _) = self
            .call("GET", "/health", pending.secret.expose_secret())
            .await
            .map_err(|e| TargetError::new("test", e))?;
        if s == StatusCode::OK {
            Ok(())
        } else {
            Err(TargetError::new("test", format!("the upstream answered {s}")))
        }
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let path = format!("/admin/keys/{}", credential.secret.expose_secret());
        let (s, _) = self
            .call("DELETE", &path, self.admin.expose_secret())
            .await
            .map_err(|e| TargetError::new("revoke", e))?;
        if s.is_success() {
            Ok(())
        } else {
            Err(TargetError::new("revoke", format!("the upstream answered {s}")))
        }
    }
}

/// Serves `router` on a loopback port (with the peer address for sources); returns the address.
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    addr
}

/// One `GET` with `bearer`; the status.
pub async fn get(client: &HttpClient, url: &str, bearer: Option<&str>) -> StatusCode {
    let mut b = Request::get(url);
    if let Some(t) = bearer {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    match client.request(b.body(Body::empty()).expect("a request")).await {
        Ok(r) => {
            let s = r.status();
            let _ = http_body_util::BodyExt::collect(r.into_body()).await;
            s
        }
        Err(_) => StatusCode::BAD_GATEWAY,
    }
}

/// The routes clients may call through the gateway (no query: a route names the query
/// parameters it lets through, with `RouteTable::route_with_query`).
pub fn routes() -> RouteTable {
    RouteTable::new()
        .route(Some(axum::http::Method::GET), "/objects/{*path}", "s3:bucket/prod-logs/{path}:read")
        .expect("a valid route")
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use tokenward::core::{IssueRequest, Policy, Principal, Role};
    use tokenward::store::SecretName;

    let dir = tempfile::tempdir()?;
    let state = UpstreamState::new("upstream-admin-demo-key");
    let up_addr = serve(upstream(state.clone())).await;
    let client = http_client();

    let tw = Tokenward::embedded(dir.path().join("gateway.db"))
        .passphrase(SecretString::from("demo passphrase, use a real one"))
        .policy(
            Policy::builder()
                .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::hours(1))?)
                .build()?,
        )
        .audit_file(dir.path().join("audit.jsonl"), tokenward::FailureMode::FailClosed)
        .overlap(TimeDelta::seconds(2))
        .open()
        .await?;
    let name = SecretName::new("upstream/api-key")?;
    let target = Arc::new(UpstreamKeys {
        base: format!("http://{up_addr}"),
        admin: SecretString::from("upstream-admin-demo-key"),
        client: client.clone(),
    });
    println!("upstream key: {:?}", tw.rotate(&name, target.clone()).await?);
    let up = Arc::new(Upstream {
        base: format!("http://{up_addr}"),
        credential: tw.follow(&name).await?,
        client: client.clone(),
    });
    let gw_addr = serve(gateway(&tw, routes(), up.clone())).await;
    let token = tw
        .issue(
            &Principal::parse("billing-api", ["reader"])?,
            &IssueRequest::parse("logs", "s3:bucket/prod-logs/**:read", TimeDelta::minutes(15))?,
        )
        .await?;
    let url = format!("http://{gw_addr}/objects/2026/app.log");
    println!(
        "through the gateway with a client token: {}",
        get(&client, &url, Some(token.expose_secret())).await
    );
    println!("without one: {}", get(&client, &url, None).await);
    println!("rotated: {:?}", tw.rotate(&name, target).await?);
    println!("after rotating the upstream key: {}", get(&client, &url, Some(token.expose_secret())).await);

    // Overhead per request: through the gateway vs straight to the upstream (sequential, medians).
    let direct_url = format!("http://{up_addr}/objects/2026/app.log");
    let key = up.credential.get().secret.expose_secret().to_owned();
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (mut via, mut direct) = (Vec::new(), Vec::new());
    for _ in 0..2000 {
        let t = Instant::now();
        get(&client, &url, Some(token.expose_secret())).await;
        via.push(t.elapsed());
        let t = Instant::now();
        get(&client, &direct_url, Some(&key)).await;
        direct.push(t.elapsed());
    }
    let (v, d) = (median(via), median(direct));
    println!(
        "median per request: via the gateway {v:?}, direct {d:?}: the gateway adds {:?}",
        v.saturating_sub(d)
    );
    tw.shutdown().await?;
    Ok(())
}
