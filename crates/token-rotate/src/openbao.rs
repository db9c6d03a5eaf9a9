//! OpenBao (and Vault) as rotation targets: a token of the token auth method, and a KV v2 secret.
//!
//! The client speaks plain HTTP/1.1 and only to a loopback address — a local OpenBao, or an
//! OpenBao/Vault agent that holds the TLS connection to a remote cluster — so no TLS stack is
//! pulled in and no token ever crosses a network in the clear. Anything else is refused.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeDelta, Utc};
use rand::TryRng;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::credential::Credential;
use crate::error::TargetError;
use crate::target::RotationTarget;

/// A minimal OpenBao HTTP API client (loopback only).
pub struct OpenBao {
    host: String,
    port: u16,
    token: SecretString,
    timeout: Duration,
}

impl std::fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenBao")
            .field("addr", &format_args!("http://{}:{}", self.host, self.port))
            .finish_non_exhaustive()
    }
}

impl OpenBao {
    /// A client of the server at `addr` (`http://127.0.0.1:8200`, `http://[::1]:8200`,
    /// `http://localhost:8200`), acting with `token` (which needs the policies the targets use).
    pub fn new(addr: &str, token: SecretString) -> Result<Self, TargetError> {
        let bad = || TargetError::new("connect", "OpenBao address must be http://<loopback host>:<port>");
        let rest = addr.strip_prefix("http://").ok_or_else(bad)?.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback =
            host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(TargetError::new(
                "connect",
                "refusing plain HTTP to a non-loopback OpenBao address: run an OpenBao agent locally",
            ));
        }
        let port = port.parse().map_err(|_| bad())?;
        Ok(Self { host: host.to_owned(), port, token, timeout: Duration::from_secs(10) })
    }

    /// Sends one request; returns the status and the JSON body (`null` when empty).
    async fn call(
        &self,
        step: &'static str,
        method: &str,
        path: &str,
        token: &SecretString,
        body: Option<&Value>,
    ) -> Result<(u16, Value), TargetError> {
        let fut = async {
            let io = |e: std::io::Error| TargetError::with_source(step, "OpenBao connection failed", e);
            let mut s = TcpStream::connect((self.host.as_str(), self.port)).await.map_err(io)?;
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let mut req = format!(
                "{method} {path} HTTP/1.1\r\nHost: {}:{}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Vault-Token: ",
                self.host,
                self.port,
                body.len()
            )
            .into_bytes();
            req.extend_from_slice(token.expose_secret().as_bytes());
            req.extend_from_slice(b"\r\n\r\n");
            req.extend_from_slice(body.as_bytes());
            s.write_all(&req).await.map_err(io)?;
            zeroize::Zeroize::zeroize(&mut req);
            let mut resp = Vec::new();
            s.read_to_end(&mut resp).await.map_err(io)?;
            parse_response(step, &resp)
        };
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| TargetError::new(step, "OpenBao did not answer in time"))?
    }

    async fn admin(
        &self,
        step: &'static str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value), TargetError> {
        self.call(step, method, path, &self.token, body).await
    }
}

pub(crate) fn parse_response(step: &'static str, resp: &[u8]) -> Result<(u16, Value), TargetError> {
    let bad = |d: &str| TargetError::new(step, format!("OpenBao response: {d}"));
    let split = resp.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no header end"))?;
    let head = std::str::from_utf8(&resp[..split]).map_err(|_| bad("headers are not text"))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("no status"))?;
    let chunked =
        lines.any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:") && l.contains("chunked"));
    let raw = &resp[split + 4..];
    let body = if chunked { dechunk(raw).ok_or_else(|| bad("bad chunked body"))? } else { raw.to_vec() };
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(&body).map_err(|_| bad("body is not JSON"))?
    };
    Ok((status, value))
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).ok()?.split(';').next()?.trim(), 16)
            .ok()?;
        raw = &raw[nl + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// OpenBao's own error messages (they never echo tokens).
fn errors(v: &Value) -> String {
    v.get("errors").map(|e| e.to_string()).unwrap_or_else(|| "no detail".into())
}

/// Rotates an OpenBao token of the token auth method: each rotation creates a token with the
/// given policies and TTL (an orphan, so revoking it revokes nothing else), tests it with
/// `lookup-self`, and revokes the old one by its accessor (the handle: an accessor can look up and
/// revoke a token but not authenticate with it, so it is safe to log).
#[derive(Debug)]
pub struct OpenBaoTokenTarget {
    bao: OpenBao,
    policies: Vec<String>,
    ttl: TimeDelta,
    display_name: String,
}

impl OpenBaoTokenTarget {
    /// TokenService with `policies`, living `ttl`, named `display_name` in OpenBao.
    pub fn new(bao: OpenBao, policies: &[&str], ttl: TimeDelta, display_name: &str) -> Self {
        Self {
            bao,
            policies: policies.iter().map(|p| (*p).to_owned()).collect(),
            ttl,
            display_name: display_name.to_owned(),
        }
    }
}

#[async_trait]
impl RotationTarget for OpenBaoTokenTarget {
    fn kind(&self) -> &str {
        "openbao-token"
    }

    async fn create(&self, rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let body = json!({
            "policies": self.policies,
            "ttl": format!("{}s", self.ttl.num_seconds()),
            "explicit_max_ttl": format!("{}s", self.ttl.num_seconds()),
            "renewable": false,
            "no_parent": true,
            "display_name": self.display_name,
            "meta": { "tokenward_rotation": rotation.to_string() },
        });
        let now = Utc::now();
        let (status, v) =
            self.bao.admin("create", "POST", "/v1/auth/token/create-orphan", Some(&body)).await?;
        if status != 200 {
            return Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v))));
        }
        let auth = &v["auth"];
        let (Some(token), Some(accessor), Some(lease)) =
            (auth["client_token"].as_str(), auth["accessor"].as_str(), auth["lease_duration"].as_i64())
        else {
            return Err(TargetError::new("create", "OpenBao's answer lacks the token, accessor or lease"));
        };
        Ok(Credential::new(accessor, SecretString::from(token.to_owned()), now + TimeDelta::seconds(lease)))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let (status, v) =
            self.bao.call("test", "GET", "/v1/auth/token/lookup-self", &pending.secret, None).await?;
        if status != 200 {
            return Err(TargetError::new("test", format!("the new token does not authenticate ({status})")));
        }
        if v["data"]["accessor"].as_str() != Some(pending.handle.as_str()) {
            return Err(TargetError::new("test", "the new token looks up as another token"));
        }
        Ok(())
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let body = json!({ "accessor": credential.handle });
        let (status, v) =
            self.bao.admin("revoke", "POST", "/v1/auth/token/revoke-accessor", Some(&body)).await?;
        match status {
            200 | 204 => Ok(()),
            // Already revoked or expired: the accessor is gone.
            400 if errors(&v).contains("invalid accessor") => Ok(()),
            _ => Err(TargetError::new("revoke", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

/// Rotates a KV v2 secret: each rotation writes a fresh random value as a new version (with
/// check-and-set, so a concurrent writer is detected), tests by reading that version back, and
/// revokes an old value by destroying its version. The handle is the version number.
#[derive(Debug)]
pub struct OpenBaoKvTarget {
    bao: OpenBao,
    mount: String,
    path: String,
    field: String,
    lifetime: TimeDelta,
}

impl OpenBaoKvTarget {
    /// The secret at `mount`/`path` (e.g. `secret`, `billing/db`), its value in `field`; each value
    /// is considered to expire after `lifetime` (KV values have no TTL of their own).
    pub fn new(bao: OpenBao, mount: &str, path: &str, field: &str, lifetime: TimeDelta) -> Self {
        Self { bao, mount: mount.to_owned(), path: path.to_owned(), field: field.to_owned(), lifetime }
    }

    async fn latest_version(&self) -> Result<u64, TargetError> {
        let (status, v) = self
            .bao
            .admin("create", "GET", &format!("/v1/{}/metadata/{}", self.mount, self.path), None)
            .await?;
        match status {
            200 => Ok(v["data"]["current_version"].as_u64().unwrap_or(0)),
            404 => Ok(0),
            _ => Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

#[async_trait]
impl RotationTarget for OpenBaoKvTarget {
    fn kind(&self) -> &str {
        "openbao-kv"
    }

    async fn create(&self, _rotation: u64, _current: Option<&Credential>) -> Result<Credential, TargetError> {
        let mut raw = [0u8; 32];
        rand::rngs::SysRng
            .try_fill_bytes(&mut raw)
            .map_err(|_| TargetError::new("create", "the OS random number generator failed"))?;
        // Hex into one buffer sized once (no intermediate strings holding pieces of the secret).
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(64);
        for &b in &raw {
            text.push(char::from(DIGITS[usize::from(b >> 4)]));
            text.push(char::from(DIGITS[usize::from(b & 0xf)]));
        }
        let value = SecretString::from(text);
        zeroize::Zeroize::zeroize(&mut raw);
        let cas = self.latest_version().await?;
        let body =
            json!({ "options": { "cas": cas }, "data": { self.field.as_str(): value.expose_secret() } });
        let (status, v) = self
            .bao
            .admin("create", "POST", &format!("/v1/{}/data/{}", self.mount, self.path), Some(&body))
            .await?;
        if status != 200 {
            return Err(TargetError::new("create", format!("OpenBao answered {status}: {}", errors(&v))));
        }
        let version = v["data"]["version"]
            .as_u64()
            .ok_or_else(|| TargetError::new("create", "OpenBao's answer lacks the version"))?;
        Ok(Credential::new(version.to_string(), value, Utc::now() + self.lifetime))
    }

    async fn test(&self, pending: &Credential) -> Result<(), TargetError> {
        let path = format!("/v1/{}/data/{}?version={}", self.mount, self.path, pending.handle);
        let (status, v) = self.bao.admin("test", "GET", &path, None).await?;
        if status != 200 {
            return Err(TargetError::new(
                "test",
                format!("version {} cannot be read ({status})", pending.handle),
            ));
        }
        let stored = v["data"]["data"][self.field.as_str()].as_str().unwrap_or_default();
        let same: bool =
            subtle::ConstantTimeEq::ct_eq(stored.as_bytes(), pending.secret.expose_secret().as_bytes())
                .into();
        if !same {
            return Err(TargetError::new(
                "test",
                format!("version {} does not hold the new value", pending.handle),
            ));
        }
        Ok(())
    }

    async fn revoke(&self, credential: &Credential) -> Result<(), TargetError> {
        let version: u64 = credential
            .handle
            .parse()
            .map_err(|_| TargetError::new("revoke", "the handle is not a version"))?;
        let body = json!({ "versions": [version] });
        let (status, v) = self
            .bao
            .admin("revoke", "POST", &format!("/v1/{}/destroy/{}", self.mount, self.path), Some(&body))
            .await?;
        match status {
            200 | 204 => Ok(()),
            _ => Err(TargetError::new("revoke", format!("OpenBao answered {status}: {}", errors(&v)))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn responses_parse() {
        let (s, v) = parse_response("t", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\": 1}").unwrap();
        assert_eq!((s, v["a"].as_i64()), (200, Some(1)));
        let (s, v) = parse_response("t", b"HTTP/1.1 204 No Content\r\n\r\n").unwrap();
        assert_eq!((s, v), (204, Value::Null));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"b\"\r\n3\r\n:2}\r\n0\r\n\r\n";
        assert_eq!(parse_response("t", chunked).unwrap().1["b"].as_i64(), Some(2));
        for bad in [&b""[..], b"HTTP/1.1", b"HTTP/1.1 abc\r\n\r\n", b"HTTP/1.1 200\r\n\r\n{nope"] {
            assert!(parse_response("t", bad).is_err());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_response_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_response("t", &bytes);
            let _ = dechunk(&bytes);
        }

        #[test]
        fn chunked_bodies_round_trip(body in proptest::collection::vec(any::<u8>(), 0..200), cut in 1usize..50) {
            let mut raw = Vec::new();
            for chunk in body.chunks(cut) {
                raw.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                raw.extend_from_slice(chunk);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"0\r\n\r\n");
            prop_assert_eq!(dechunk(&raw), Some(body));
        }
    }
}
