//! Every key provider through the same conformance kit (`token_store::testing::run_key_provider_suite`):
//! the local keyring here; OpenBao Transit against the real dev server (`scripts/test.sh` starts
//! it); AWS KMS against moto with signatures on.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use std::sync::Arc;

use token_store::backend::{Sealed, SecretKey};
use token_store::keys::{AwsKmsKeyProvider, LocalKeyring, TransitKeyProvider};
use token_store::secrecy::SecretBox;
use token_store::testing::run_key_provider_suite;
use token_store::*;

fn kek(id: &str, byte: u8) -> LocalKek {
    LocalKek::from_key(id, SecretBox::new(Box::new([byte; 32]))).unwrap()
}

#[tokio::test]
async fn the_local_keyring_passes_the_kit() {
    run_key_provider_suite(
        Arc::new(kek("k1", 1)),
        Arc::new(LocalKeyring::new(kek("k2", 2)).with_older(kek("k1", 1))),
    )
    .await;
}

#[cfg(feature = "openbao-transit")]
mod transit {
    use token_store::secrecy::SecretString;

    use super::*;

    fn bao() -> Option<(String, String)> {
        match (std::env::var("TOKENWARD_BAO_ADDR"), std::env::var("TOKENWARD_BAO_TOKEN")) {
            (Ok(a), Ok(t)) => Some((a, t)),
            _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
                panic!("CI=true but TOKENWARD_BAO_ADDR is not set")
            }
            _ => {
                eprintln!("\n*** SKIPPED: OpenBao Transit tests (TOKENWARD_BAO_ADDR is not set) ***\n");
                None
            }
        }
    }

    async fn call(
        addr: &str,
        root: &str,
        method: token_http::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let http = token_http::HttpClient::builder(addr).build().unwrap();
        let mut req = token_http::Request::new(method, path)
            .secret_header("X-Vault-Token", &SecretString::from(root.to_owned()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = http.send(req).await.unwrap();
        let v = r.json().unwrap();
        (r.status, v)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transit_passes_the_kit_and_refuses_wraps_below_its_minimum_version() {
        let Some((addr, root)) = bao() else { return };
        use token_http::Method::{Get, Post};
        let _ =
            call(&addr, &root, Post, "/v1/sys/mounts/transit", Some(serde_json::json!({"type": "transit"})))
                .await;
        let key = format!("tw-kek-{}", std::process::id());
        let (s, _) =
            call(&addr, &root, Post, &format!("/v1/transit/keys/{key}"), Some(serde_json::json!({}))).await;
        assert!(s == 200 || s == 204, "{s}");
        let http = || token_http::HttpClient::builder(&addr).build().unwrap();
        let token = || SecretString::from(root.clone());
        let before = Arc::new(TransitKeyProvider::connect(http(), token(), "transit", &key).await.unwrap());
        assert!(before.current_kek().ends_with(":v1"), "{}", before.current_kek());
        // The key rotates in Transit; reconnecting sees version 2.
        let (s, _) =
            call(&addr, &root, Post, &format!("/v1/transit/keys/{key}/rotate"), Some(serde_json::json!({})))
                .await;
        assert!(s == 200 || s == 204, "{s}");
        let after = Arc::new(TransitKeyProvider::connect(http(), token(), "transit", &key).await.unwrap());
        assert!(after.current_kek().ends_with(":v2"));
        // Wrapped under v1, still readable: the kit (round trip, binding, rewrap, resume).
        run_key_provider_suite(before.clone(), after.clone()).await;

        // A store under v2; a wrap made under v1 then refused once v1 is below the minimum.
        let dek = SecretKey::generate().unwrap();
        let old = before.wrap(&dek, b"svc/x@1").await.unwrap();
        assert!(
            String::from_utf8_lossy(&old.0).starts_with("vault:v2:"),
            "Transit encrypts with its latest version"
        );
        let v1_wrap = {
            // A v1 ciphertext: rewrap down is impossible, so take one from before the rotation.
            let k2 = format!("{key}-b");
            call(&addr, &root, Post, &format!("/v1/transit/keys/{k2}"), Some(serde_json::json!({}))).await;
            let p = TransitKeyProvider::connect(http(), token(), "transit", &k2).await.unwrap();
            let w = p.wrap(&dek, b"svc/x@1").await.unwrap();
            call(&addr, &root, Post, &format!("/v1/transit/keys/{k2}/rotate"), Some(serde_json::json!({})))
                .await;
            call(
                &addr,
                &root,
                Post,
                &format!("/v1/transit/keys/{k2}/config"),
                Some(serde_json::json!({"min_decryption_version": 2})),
            )
            .await;
            let p2 = TransitKeyProvider::connect(http(), token(), "transit", &k2).await.unwrap();
            (p2, w)
        };
        let (p2, w) = v1_wrap;
        let e = p2.unwrap(&format!("transit:transit/{key}-b:v1"), &w, b"svc/x@1").await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains("OpenBao Transit key") && text.contains("decrypt"), "{text}");
        // A token without the policy: a typed, named error, not a panic.
        let nobody = TransitKeyProvider::connect(
            http(),
            SecretString::from("not-a-token".to_owned()),
            "transit",
            &key,
        )
        .await
        .unwrap_err();
        assert!(nobody.to_string().contains("OpenBao Transit key"), "{nobody}");
        let _ = Get;
    }
}

#[cfg(feature = "aws-kms")]
mod kms {
    use token_http::aws::AwsCredentials;
    use token_store::secrecy::SecretString;
    use tokenward_test_support::Moto;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn aws_kms_passes_the_kit_and_a_denied_or_missing_kms_is_a_clear_error() {
        let Some(moto) = Moto::start(3) else { return };
        let kms_only =
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#;
        let client = moto.client(moto.setup_user("store", kms_only).await);
        let k1 = client.json("kms", "TrentService.CreateKey", &serde_json::json!({})).await.unwrap();
        let k2 = client.json("kms", "TrentService.CreateKey", &serde_json::json!({})).await.unwrap();
        let (k1, k2) = (
            k1["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned(),
            k2["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned(),
        );
        // Moving the store from one KMS key to another: the kit's `after` wraps under the second
        // key and unwraps either (KMS's own rotation of one key is transparent to its ciphertexts).
        let p1 = Arc::new(AwsKmsKeyProvider::new(client.clone(), &k1));
        let both = Arc::new(KmsPair {
            current: AwsKmsKeyProvider::new(client.clone(), &k2),
            older: AwsKmsKeyProvider::new(client.clone(), &k1),
        });
        run_key_provider_suite(p1.clone(), both).await;
        // Bad credentials: a typed error naming the provider, never the secret.
        let wrong = AwsKmsKeyProvider::new(
            client.with_credentials(AwsCredentials::new(
                "AKIAUNKNOWN000000000",
                SecretString::from("y".repeat(40)),
            )),
            &k1,
        );
        let e = wrong.wrap(&SecretKey::generate().unwrap(), b"a").await.unwrap_err().to_string();
        assert!(e.contains("AWS KMS key") && !e.contains(&"y".repeat(40)), "{e}");
        // An unreachable KMS: the same, no panic.
        let nowhere = AwsKmsKeyProvider::new(client.clone().endpoint("http://127.0.0.1:9"), &k1);
        assert!(
            nowhere
                .wrap(&SecretKey::generate().unwrap(), b"a")
                .await
                .unwrap_err()
                .to_string()
                .contains("AWS KMS key")
        );
    }

    /// Two KMS keys as one provider: wraps under `current`, unwraps under either (what moving a
    /// store from one KMS key to another looks like).
    #[derive(Debug)]
    struct KmsPair {
        current: AwsKmsKeyProvider,
        older: AwsKmsKeyProvider,
    }

    #[async_trait::async_trait]
    impl KeyProvider for KmsPair {
        fn current_kek(&self) -> &str {
            self.current.current_kek()
        }
        async fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> token_store::Result<Sealed> {
            self.current.wrap(dek, aad).await
        }
        async fn unwrap(&self, kek_id: &str, wrapped: &Sealed, aad: &[u8]) -> token_store::Result<SecretKey> {
            if kek_id == self.older.current_kek() {
                self.older.unwrap(kek_id, wrapped, aad).await
            } else {
                self.current.unwrap(kek_id, wrapped, aad).await
            }
        }
    }
}
