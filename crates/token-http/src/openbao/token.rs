//! The token auth method: look a token up, create an orphan token, revoke one by its accessor,
//! list every token's accessor and look one up by it.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};

use super::client::OpenBao;
use super::error::{OpenBaoError, refused};
use crate::Request;

/// An orphan token to create ([`OpenBao::create_orphan_token`]): not renewable, living `ttl`
/// at most.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Its policies.
    pub policies: Vec<String>,
    /// Its TTL, which is also its explicit maximum TTL.
    pub ttl: Duration,
    /// Its display name in OpenBao.
    pub display_name: String,
    /// Its metadata.
    pub meta: Vec<(String, String)>,
}

/// A token just created: the token itself (a secret), its accessor (a handle that can look it up
/// and revoke it but not act with it: safe to log) and its lease.
pub struct CreatedToken {
    /// The token.
    pub token: SecretString,
    /// Its accessor.
    pub accessor: String,
    /// Its lease.
    pub lease: Duration,
}

impl std::fmt::Debug for CreatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedToken")
            .field("accessor", &self.accessor)
            .field("lease", &self.lease)
            .finish_non_exhaustive()
    }
}

impl OpenBao {
    /// Looks up the acting token (`auth/token/lookup-self`): its `data` (accessor, policies,
    /// TTL, …). A quick check that the address, TLS and credentials work.
    pub async fn lookup_self(&self) -> Result<Value, OpenBaoError> {
        let (status, v) = self.call(Request::get("/v1/auth/token/lookup-self")).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        Ok(v["data"].clone())
    }

    /// Looks up `token` with itself (`auth/token/lookup-self` acting as `token`): its `data`. Any
    /// answer but 200 (a token that does not authenticate) is [`OpenBaoError::Api`].
    pub async fn lookup_as(&self, token: &SecretString) -> Result<Value, OpenBaoError> {
        let (status, v) = self.send(Request::get("/v1/auth/token/lookup-self"), Some(token)).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        Ok(v["data"].clone())
    }

    /// Creates an orphan token (`auth/token/create-orphan`: revoking it revokes nothing else).
    pub async fn create_orphan_token(&self, request: &TokenRequest) -> Result<CreatedToken, OpenBaoError> {
        let ttl = format!("{}s", request.ttl.as_secs());
        let meta: serde_json::Map<String, Value> =
            request.meta.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
        let body = json!({
            "policies": request.policies,
            "ttl": ttl,
            "explicit_max_ttl": ttl,
            "renewable": false,
            "no_parent": true,
            "display_name": request.display_name,
            "meta": meta,
        });
        let (status, v) = self.call(Request::post("/v1/auth/token/create-orphan").json(&body)).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        let auth = &v["auth"];
        let (Some(token), Some(accessor), Some(lease)) =
            (auth["client_token"].as_str(), auth["accessor"].as_str(), auth["lease_duration"].as_u64())
        else {
            return Err(OpenBaoError::Malformed("OpenBao's answer lacks the token, accessor or lease"));
        };
        Ok(CreatedToken {
            token: SecretString::from(token.to_owned()),
            accessor: accessor.to_owned(),
            lease: Duration::from_secs(lease),
        })
    }

    /// Revokes the token whose accessor is `accessor` (`auth/token/revoke-accessor`). Returns
    /// whether it was revoked now: `false` when the accessor is gone already (revoked or
    /// expired).
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<bool, OpenBaoError> {
        let body = json!({ "accessor": accessor });
        let (status, v) = self.call(Request::post("/v1/auth/token/revoke-accessor").json(&body)).await?;
        match status {
            200 | 204 => Ok(true),
            400 if super::error::errors(&v).contains("invalid accessor") => Ok(false),
            _ => Err(refused(status, &v)),
        }
    }

    /// Every token's accessor (`auth/token/accessors`, a LIST; sudo): handles, never tokens.
    /// None yet is an empty list.
    pub async fn token_accessors(&self) -> Result<Vec<String>, OpenBaoError> {
        let (status, v) = self.call(Request::new(crate::Method::List, "/v1/auth/token/accessors")).await?;
        match status {
            200 => Ok(v["data"]["keys"]
                .as_array()
                .map(|a| a.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()),
            404 => Ok(Vec::new()),
            _ => Err(refused(status, &v)),
        }
    }

    /// Looks a token up by its accessor (`auth/token/lookup-accessor`): its `data` (display name,
    /// policies, creation and expiry times, TTL, orphan) — OpenBao leaves the token's id out.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<Value, OpenBaoError> {
        let body = json!({ "accessor": accessor });
        let (status, v) = self.call(Request::post("/v1/auth/token/lookup-accessor").json(&body)).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        Ok(v["data"].clone())
    }
}
