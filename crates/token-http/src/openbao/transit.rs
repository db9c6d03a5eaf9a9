//! Transit: a key's latest version, encrypt and decrypt with it (the key never leaves OpenBao).

use base64::Engine as _;
use serde_json::json;
use zeroize::Zeroizing;

use super::client::OpenBao;
use super::error::{OpenBaoError, refused};
use crate::Request;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl OpenBao {
    /// The latest version of key `key` of the Transit engine mounted at `mount`.
    pub async fn transit_latest_version(&self, mount: &str, key: &str) -> Result<u64, OpenBaoError> {
        let (status, v) = self.call(Request::get(format!("/v1/{mount}/keys/{key}"))).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        v["data"]["latest_version"].as_u64().ok_or(OpenBaoError::Malformed("the key has no latest_version"))
    }

    /// Encrypts `plaintext` with the key's latest version; returns the ciphertext
    /// (`vault:v<version>:…`). Retried like an idempotent call (it changes nothing).
    pub async fn transit_encrypt(
        &self,
        mount: &str,
        key: &str,
        plaintext: &[u8],
    ) -> Result<String, OpenBaoError> {
        // The base64 of the plaintext travels in the request body (and reqwest's buffers, which
        // are not zeroized): the price of a remote KMS.
        let body = json!({ "plaintext": Zeroizing::new(B64.encode(plaintext)).as_str() });
        let request = Request::post(format!("/v1/{mount}/encrypt/{key}")).json(&body).idempotent(true);
        let (status, v) = self.call(request).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        v["data"]["ciphertext"]
            .as_str()
            .map(str::to_owned)
            .ok_or(OpenBaoError::Malformed("encrypt's answer lacks the ciphertext"))
    }

    /// Decrypts `ciphertext` (an answer without a plaintext decrypts to nothing). Retried like an
    /// idempotent call.
    pub async fn transit_decrypt(
        &self,
        mount: &str,
        key: &str,
        ciphertext: &str,
    ) -> Result<Zeroizing<Vec<u8>>, OpenBaoError> {
        let body = json!({ "ciphertext": ciphertext });
        let request = Request::post(format!("/v1/{mount}/decrypt/{key}")).json(&body).idempotent(true);
        let (status, v) = self.call(request).await?;
        if status != 200 {
            return Err(refused(status, &v));
        }
        let plain = Zeroizing::new(v["data"]["plaintext"].as_str().unwrap_or_default().to_owned());
        B64.decode(plain.as_bytes())
            .map(Zeroizing::new)
            .map_err(|_| OpenBaoError::Malformed("decrypt's plaintext is not base64"))
    }
}
