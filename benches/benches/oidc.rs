//! Federation's verification core (token-oidc), each beside its floor in the same run:
//!
//! - JWT validation with a warm key cache — a JWKS fetched once from a loopback server, then every
//!   check of `JwtValidator::validate_at` (strict parse, key selection, signature, `iss`, `aud`,
//!   times, lifetime, `jti` recorded in the replay cache) — for ES256, RS256 (2048-bit) and
//!   EdDSA, beside the **floor**: the bare signature verification of the same algorithm with a
//!   pre-parsed key over the same bytes (p256 0.14, rsa 0.10, ed25519-dalek 3), and beside the
//!   peer jsonwebtoken 12's `decode` (signature, `iss`, `aud`, `exp`; no replay check, no
//!   duplicate-member check).
//! - DPoP proof verification (`DpopVerifier::verify_at`, with `ath` and the `jti` recorded) for
//!   the same three algorithms, beside the same floors.
//!
//! - An unknown `kid`'s refusal (no signature math, no fetch), and a flood of them over ten
//!   minutes of clock through a fresh cache: the JWKS fetches it causes (one per minimum interval).
//!
//! Every token and proof carries its own `jti`, so each is accepted (not refused as a replay):
//! when a pool is used up, a fresh replay cache takes over, outside the timed region.
//!
//! `cargo bench --bench oidc`; the ratios are printed at the end.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

#[allow(dead_code)] // paired_ratio is not used here
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group};
use rsa::signature::{SignatureEncoding as _, Signer as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use token_oidc::{Algorithm, DpopRequest, DpopVerifier, IssuerKeys, JwtValidator, ReplayCache};
use tokenward::core::chrono::Utc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "tokenward";
const HTU: &str = "https://tokenward.example.com/v1/token";
const ACCESS_TOKEN: &str = "acme_prod_3fQmExampleAccessToken0123456789";
/// Tokens (and proofs) per algorithm; each is valid once per replay cache.
const POOL: usize = 512;
const GROUP: &str = "oidc";

/// A bare signature check: (signing input, signature) → valid.
type Floor = Box<dyn Fn(&[u8], &[u8]) -> bool>;

/// A signing key of one algorithm, with its public JWK and a bare verifier (the floor).
enum Key {
    Es256(p256::ecdsa::SigningKey),
    Rs256(Box<rsa::pkcs1v15::SigningKey<sha2::Sha256>>, rsa::pkcs1v15::VerifyingKey<sha2::Sha256>),
    EdDsa(ed25519_dalek::SigningKey),
}

impl Key {
    fn alg(&self) -> Algorithm {
        match self {
            Key::Es256(_) => Algorithm::ES256,
            Key::Rs256(..) => Algorithm::RS256,
            Key::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Key::Es256(_) => "es256",
            Key::Rs256(..) => "rs256",
            Key::EdDsa(_) => "eddsa",
        }
    }

    fn jwk(&self) -> Value {
        match self {
            Key::Es256(k) => {
                let point = k.verifying_key().to_sec1_point(false);
                let b = point.as_bytes();
                json!({"kty": "EC", "crv": "P-256", "x": B64.encode(&b[1..33]), "y": B64.encode(&b[33..65])})
            }
            Key::Rs256(_, v) => {
                let public: &rsa::PublicKey = v.as_ref();
                let strip = |b: Box<[u8]>| b.iter().copied().skip_while(|x| *x == 0).collect::<Vec<u8>>();
                json!({"kty": "RSA", "n": B64.encode(strip(public.n().to_be_bytes())), "e": B64.encode(strip(public.e().to_be_bytes()))})
            }
            Key::EdDsa(k) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(k.verifying_key().to_bytes())})
            }
        }
    }

    fn sign(&self, input: &[u8]) -> Vec<u8> {
        match self {
            Key::Es256(k) => {
                let s: p256::ecdsa::Signature = k.sign(input);
                s.to_bytes().to_vec()
            }
            Key::Rs256(k, _) => k.sign(input).to_vec(),
            Key::EdDsa(k) => k.sign(input).to_bytes().to_vec(),
        }
    }

    /// The floor: a verifier of this key, pre-parsed, checking `signature` over `input`.
    fn floor(&self) -> Floor {
        match self {
            Key::Es256(k) => {
                let v = *k.verifying_key();
                Box::new(move |m, s| {
                    p256::ecdsa::Signature::from_slice(s).is_ok_and(|s| {
                        p256::ecdsa::signature::Verifier::<p256::ecdsa::Signature>::verify(&v, m, &s).is_ok()
                    })
                })
            }
            Key::Rs256(_, v) => {
                let v = v.clone();
                Box::new(move |m, s| {
                    rsa::pkcs1v15::Signature::try_from(s).is_ok_and(|s| v.verify(m, &s).is_ok())
                })
            }
            Key::EdDsa(k) => {
                let v = k.verifying_key();
                Box::new(move |m, s| {
                    ed25519_dalek::Signature::from_slice(s).is_ok_and(|s| v.verify(m, &s).is_ok())
                })
            }
        }
    }
}

fn compact(key: &Key, header: &Value, payload: &Value) -> String {
    let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(payload.to_string()));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

/// The signing input and the signature of a compact JWS: what the floor verifies.
fn parts(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (input, sig) = token.rsplit_once('.').unwrap();
    (input.as_bytes().to_vec(), B64.decode(sig).unwrap())
}

/// A tiny HTTP/1.1 server answering every request with `body`.
async fn serve(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/.well-known/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { return };
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(k) => got.extend_from_slice(&buf[..k]),
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
                let _ = s.shutdown().await;
            });
        }
    });
    url
}

/// Times `run(state, n)` over `iters` items in all, `n` at most `pool` at a time; before each
/// run, `make()` builds a fresh state (a fresh replay cache) outside the timed region.
fn timed<T>(iters: u64, pool: usize, make: impl Fn() -> T, mut run: impl FnMut(&T, usize)) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters as usize;
    while left > 0 {
        let state = make();
        let n = left.min(pool);
        let t = Instant::now();
        run(&state, n);
        total += t.elapsed();
        left -= n;
    }
    total
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let setup = Instant::now();
    let rsa_key = rsa::PrivateKey::new(&mut rand::rngs::SysRng, 2048).unwrap();
    let rsa_verifier = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(rsa_key.to_public_key());
    let keys = [
        Key::Es256(p256::ecdsa::SigningKey::from_slice(&[0x11; 32]).unwrap()),
        Key::Rs256(Box::new(rsa::pkcs1v15::SigningKey::<sha2::Sha256>::new(rsa_key)), rsa_verifier),
        Key::EdDsa(ed25519_dalek::SigningKey::from_bytes(&[0x22; 32])),
    ];
    let jwks = json!({"keys": keys.iter().map(|k| {
        let mut j = k.jwk();
        j["kid"] = json!(k.name());
        j
    }).collect::<Vec<_>>()});
    let url = rt.block_on(serve(jwks.to_string().into_bytes()));
    let issuer_keys = IssuerKeys::remote(&url).build().unwrap();
    let now = Utc::now();
    let now_s = now.timestamp();
    rt.block_on(issuer_keys.refresh_at(now)).unwrap();

    let mut g = c.benchmark_group(GROUP);
    g.warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(4)).sample_size(30);
    for key in &keys {
        let alg = key.alg();
        let name = key.name();
        let tokens: Vec<String> = (0..POOL)
            .map(|i| {
                let header = json!({"typ": "JWT", "alg": alg.as_str(), "kid": name});
                let claims = json!({
                    "iss": ISSUER, "sub": "repo:acme/api:ref:refs/heads/main", "aud": AUDIENCE,
                    "iat": now_s - 10, "nbf": now_s - 10, "exp": now_s + 290, "jti": format!("{name}-{i}"),
                    "repository": "acme/api", "ref": "refs/heads/main", "environment": "production",
                });
                compact(key, &header, &claims)
            })
            .collect();
        let floor_parts: Vec<(Vec<u8>, Vec<u8>)> = tokens.iter().map(|t| parts(t)).collect();
        let floor = key.floor();
        assert!(floor_parts.iter().all(|(m, s)| floor(m, s)));

        // The floor: the bare signature check over the same bytes.
        let mut i = 0;
        g.bench_function(format!("floor_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                let (m, s) = &floor_parts[i];
                assert!(floor(black_box(m), black_box(s)));
            })
        });

        // Ours: the whole validation, keys warm in the cache (fetched once above).
        let make = || {
            JwtValidator::builder(ISSUER, AUDIENCE, issuer_keys.clone())
                .algorithms([alg])
                .replay_cache(Arc::new(ReplayCache::new(POOL)))
                .build()
                .unwrap()
        };
        g.bench_function(format!("validate_{name}"), |b| {
            b.iter_custom(|iters| {
                timed(iters, POOL, make, |v, n| {
                    rt.block_on(async {
                        for token in &tokens[..n] {
                            let t = v.validate_at(black_box(token), now).await.unwrap();
                            black_box(t.subject());
                        }
                    })
                })
            })
        });

        // The peer: jsonwebtoken 12's decode (RustCrypto backend), signature, iss, aud, exp.
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.jwk()).unwrap();
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let peer_alg = match alg {
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
            _ => jsonwebtoken::Algorithm::EdDSA,
        };
        let mut validation = jsonwebtoken::Validation::new(peer_alg);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let mut i = 0;
        g.bench_function(format!("jsonwebtoken_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % POOL;
                let t = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
                    black_box(&tokens[i]),
                    &decoding,
                    &validation,
                )
                .unwrap();
                black_box(t.claims.len());
            })
        });

        // DPoP proofs of this algorithm, for a request presenting an access token.
        let ath = token_oidc::access_token_hash(ACCESS_TOKEN);
        let proofs: Vec<String> = (0..POOL)
            .map(|i| {
                let header = json!({"typ": "dpop+jwt", "alg": alg.as_str(), "jwk": key.jwk()});
                let claims = json!({"jti": format!("p-{name}-{i}"), "htm": "POST", "htu": HTU, "iat": now_s - 1, "ath": ath});
                compact(key, &header, &claims)
            })
            .collect();
        let request = DpopRequest::new("POST", HTU).access_token(ACCESS_TOKEN);
        let make = || {
            DpopVerifier::builder()
                .algorithms([alg])
                .replay_cache(Arc::new(ReplayCache::new(POOL)))
                .build()
                .unwrap()
        };
        g.bench_function(format!("dpop_{name}"), |b| {
            b.iter_custom(|iters| {
                timed(iters, POOL, make, |v, n| {
                    for proof in &proofs[..n] {
                        let p = v.verify_at(black_box(proof), &request, now).unwrap();
                        black_box(p.thumbprint());
                    }
                })
            })
        });
    }

    // A flood of tokens naming a kid the issuer does not have (signed by a key of ours, so the
    // fault is only the kid): each is refused before any signature math, and makes no fetch.
    let flood: Vec<String> = (0..POOL)
        .map(|i| {
            let header = json!({"typ": "JWT", "alg": "ES256", "kid": format!("unknown-{i}")});
            let claims = json!({"iss": ISSUER, "sub": "x", "aud": AUDIENCE, "iat": now_s, "exp": now_s + 60, "jti": i});
            compact(&keys[0], &header, &claims)
        })
        .collect();
    let validator = JwtValidator::builder(ISSUER, AUDIENCE, issuer_keys.clone()).build().unwrap();
    let mut i = 0;
    g.bench_function("unknown_kid_es256", |b| {
        b.iter(|| {
            i = (i + 1) % POOL;
            let r = rt.block_on(validator.validate_at(black_box(&flood[i]), now));
            assert!(matches!(r, Err(token_oidc::JwtError::UnknownKey { .. })));
        })
    });
    g.finish();
    assert_eq!(issuer_keys.fetches(), 1, "every validation used the cached keys; the flood fetched nothing");

    // The same flood over ten minutes of clock (100 tokens a second): the refetches it causes.
    let flooded = IssuerKeys::remote(&url).build().unwrap();
    rt.block_on(flooded.refresh_at(now)).unwrap();
    let validator = JwtValidator::builder(ISSUER, AUDIENCE, flooded.clone()).build().unwrap();
    let started = Instant::now();
    let mut sent = 0;
    for second in 0..600 {
        let t = now + tokenward::core::chrono::TimeDelta::seconds(second);
        for token in flood.iter().take(100) {
            let _ = rt.block_on(validator.validate_at(token, t));
            sent += 1;
        }
    }
    println!(
        "flood: {sent} unknown-kid tokens over 10 minutes of clock (100/s) made {} JWKS fetches after the first \
         (minimum interval 1 min), in {:.2?} of wall time",
        flooded.fetches() - 1,
        started.elapsed()
    );
    println!("setup (an RSA key, {} tokens and proofs) took {:.1?}", POOL * 6, setup.elapsed());
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    println!("\noidc summary (criterion medians, this run)");
    println!(
        "  {:<22} {:>10} {:>10} {:>10} {:>14} {:>10} {:>14}",
        "", "floor", "ours", "÷ floor", "jsonwebtoken", "÷ ours", "dpop ÷ floor"
    );
    if let Some(ns) = support::median_ns(GROUP, "unknown_kid_es256") {
        println!("  unknown kid (ES256 token) refused in {:.2} µs, no fetch", ns / 1e3);
    }
    for name in ["es256", "rs256", "eddsa"] {
        let m = |id: String| support::median_ns(GROUP, &id);
        let (Some(floor), Some(ours)) = (m(format!("floor_{name}")), m(format!("validate_{name}"))) else {
            continue;
        };
        let peer = m(format!("jsonwebtoken_{name}"));
        let dpop = m(format!("dpop_{name}"));
        println!(
            "  {:<22} {:>8.1}µs {:>8.1}µs {:>9.2}× {:>12.1}µs {:>9.2}× {:>8.1}µs {:>5.2}×",
            format!("JWT {name}"),
            floor / 1e3,
            ours / 1e3,
            ours / floor,
            peer.unwrap_or(f64::NAN) / 1e3,
            peer.map_or(f64::NAN, |p| p / ours),
            dpop.unwrap_or(f64::NAN) / 1e3,
            dpop.map_or(f64::NAN, |d| d / floor),
        );
    }
}
