//! KV v2: read a version, write one with check-and-set, destroy versions, delete a secret.

use serde_json::{Map, Value, json};

use super::client::OpenBao;
use super::error::{OpenBaoError, refused};
use crate::{Method, Request};

/// One version of a KV v2 secret as read ([`OpenBao::kv_read`]). Its `Debug` shows the version
/// and the field names, never a value.
pub struct KvSecret {
    /// The version (0 if the answer does not say).
    pub version: u64,
    data: Map<String, Value>,
}

impl std::fmt::Debug for KvSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvSecret")
            .field("version", &self.version)
            .field("fields", &self.data.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl KvSecret {
    /// A field's text, if the field is there and is a string.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.data.get(name).and_then(Value::as_str)
    }
}

impl OpenBao {
    /// The current version of the secret at `mount`/`path` (its metadata), 0 when there is no
    /// such secret (KV v2's check-and-set value for "must not exist yet").
    pub async fn kv_current_version(&self, mount: &str, path: &str) -> Result<u64, OpenBaoError> {
        let (status, v) = self.call(Request::get(format!("/v1/{mount}/metadata/{path}"))).await?;
        match status {
            200 => Ok(v["data"]["current_version"].as_u64().unwrap_or(0)),
            404 => Ok(0),
            _ => Err(refused(status, &v)),
        }
    }

    /// Reads the secret at `mount`/`path`: `version`, or the latest. `None` when OpenBao answers
    /// 404 (no such secret, or that version is deleted or destroyed).
    pub async fn kv_read(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<KvSecret>, OpenBaoError> {
        let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
        let (status, mut v) = self.call(Request::get(format!("/v1/{mount}/data/{path}{query}"))).await?;
        match status {
            200 => Ok(Some(KvSecret {
                version: v["data"]["metadata"]["version"].as_u64().unwrap_or(0),
                data: match v["data"]["data"].take() {
                    Value::Object(m) => m,
                    _ => Map::new(),
                },
            })),
            404 => Ok(None),
            _ => Err(refused(status, &v)),
        }
    }

    /// Writes `data` as a new version of the secret at `mount`/`path`, with check-and-set: `cas`
    /// is the version the secret must be at (0: must not exist), so a concurrent writer fails
    /// the write instead of being overwritten. Returns the new version.
    pub async fn kv_write(
        &self,
        mount: &str,
        path: &str,
        cas: u64,
        data: &Map<String, Value>,
    ) -> Result<u64, OpenBaoError> {
        let body = json!({ "options": { "cas": cas }, "data": data });
        let (status, v) = self.call(Request::post(format!("/v1/{mount}/data/{path}")).json(&body)).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        v["data"]["version"].as_u64().ok_or(OpenBaoError::Malformed("OpenBao's answer lacks the version"))
    }

    /// Destroys `versions` of the secret at `mount`/`path` (their data is gone for good).
    pub async fn kv_destroy(&self, mount: &str, path: &str, versions: &[u64]) -> Result<(), OpenBaoError> {
        let body = json!({ "versions": versions });
        let (status, v) = self.call(Request::post(format!("/v1/{mount}/destroy/{path}")).json(&body)).await?;
        match status {
            200 | 204 => Ok(()),
            _ => Err(refused(status, &v)),
        }
    }

    /// Deletes the secret at `mount`/`path` with all its versions and metadata; one that does
    /// not exist is no error.
    pub async fn kv_delete_all(&self, mount: &str, path: &str) -> Result<(), OpenBaoError> {
        let (status, v) =
            self.call(Request::new(Method::Delete, format!("/v1/{mount}/metadata/{path}"))).await?;
        match status {
            200 | 204 | 404 => Ok(()),
            _ => Err(refused(status, &v)),
        }
    }
}
