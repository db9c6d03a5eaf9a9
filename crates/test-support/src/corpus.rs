//! Fixtures for rule authors and benchmarks: a deterministic generator of planted secrets (one or
//! more per built-in rule) and near-miss decoys, and a corpus writer that mixes them into
//! realistic source files. Used by token-scan's own tests and by the scan benchmark (here, not in
//! token-scan, so that no user's build compiles it).
//!
//! Secrets are drawn from the generator below for the first rules (GitHub's checksummed tokens,
//! Tokenward tokens, AWS pairs, …), and taken from token-scan's rule vectors
//! (`crates/token-scan/tests/vectors/rules.json`: a positive and a negative per built-in rule) for
//! every other rule: each rule is planted, each negative is a decoy, with no second list to keep.

#![allow(clippy::expect_used, clippy::missing_panics_doc)]

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use token_core::chrono::{TimeDelta, Utc};
use token_core::{IssueRequest, Issuer, Policy, Principal, Role, TokenFormat, TokenPrefix};

/// A small deterministic generator (xorshift), so a corpus is the same for a seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// `n` characters drawn from `alphabet`.
    pub fn pick(&mut self, alphabet: &[u8], n: usize) -> String {
        (0..n).map(|_| char::from(alphabet[(self.next_u64() % alphabet.len() as u64) as usize])).collect()
    }
}

const ALNUM: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const UPPER_NUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const HEX: &[u8] = b"0123456789abcdef";

/// A GitHub classic token with a valid checksum.
pub fn github(rng: &mut Rng, prefix: &str) -> String {
    // GitHub's checksum, written here independently of token-scan (vectors check both).
    let random = rng.pick(ALNUM, 30);
    let mut v = crc32fast::hash(random.as_bytes());
    let mut sum = [b'0'; 6];
    for s in sum.iter_mut().rev() {
        *s = ALNUM[(v % 62) as usize];
        v /= 62;
    }
    format!("{prefix}{random}{}", String::from_utf8(sum.to_vec()).expect("fixture"))
}

/// A real Tokenward token of `prefix`, issued by a throwaway issuer.
pub fn tokenward(prefix: &str) -> String {
    let policy = Policy::builder()
        .role(Role::parse("r", "svc:data/**:read", TimeDelta::days(1)).expect("fixture"))
        .build()
        .expect("fixture");
    let issuer = Issuer::new(
        TokenFormat::new(TokenPrefix::new(prefix).expect("fixture")),
        token_core::digest::DigestKeyring::new(token_core::digest::DigestKey::generate(1).expect("fixture")),
        policy,
    );
    let principal = Principal::parse("svc", ["r"]).expect("fixture");
    let req = IssueRequest::parse("p", "svc:data/x:read", TimeDelta::hours(1)).expect("fixture");
    let (t, _) = issuer.issue_at(&principal, &req, &[], Utc::now()).expect("fixture");
    t.expose_secret().to_owned()
}

/// token-scan's rule vectors: (rule id, positive text, its secret, negative text).
fn vectors() -> &'static [(String, String, String, String)] {
    static VECTORS: OnceLock<Vec<(String, String, String, String)>> = OnceLock::new();
    VECTORS.get_or_init(|| {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../../token-scan/tests/vectors/rules.json"))
                .expect("vectors parse");
        v["vectors"]
            .as_array()
            .expect("a vector list")
            .iter()
            .map(|v| {
                let field = |k: &str| v[k].as_str().expect("a vector field").to_owned();
                (field("rule"), field("positive"), field("secret"), field("negative"))
            })
            .collect()
    })
}

/// The rules whose secrets [`planted`] draws itself (the others' come from the vectors).
const GENERATED: &[&str] = &[
    "github-classic",
    "tokenward",
    "github-fine-grained",
    "gitlab-pat",
    "slack-token",
    "slack-webhook",
    "stripe-live-key",
    "vault-token",
    "aws-access-key",
    "gcp-service-account",
    "azure-storage-connection-string",
    "azure-storage-key",
    "private-key",
    "database-url",
];

/// A value the generic detector must find: random base62 that no vendor's format starts with.
fn generic_value(rng: &mut Rng) -> String {
    format!("{}{}{}", rng.pick(b"GHJKMNPRTVWXYZ", 1), rng.pick(b"23456789", 1), rng.pick(ALNUM, 22))
}

/// Standard base64 (with padding), written here independently of token-scan.
fn base64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Generic secrets, one per syntax the generic detector reads: unquoted `.env`, shell `export`,
/// YAML, JSON, Dockerfile `ENV`, a Kubernetes `Secret`'s base64 `data:`, a URL's password, a curl
/// `Authorization` header, a one-line Terraform variable.
fn generic_planted(rng: &mut Rng, out: &mut Vec<(&'static str, String, String)>) {
    const G: &str = "generic-assignment";
    let v = generic_value(rng);
    out.push((G, format!("API_KEY={v}"), v));
    let v = generic_value(rng);
    out.push((G, format!("export SERVICE_TOKEN={v}"), v));
    let v = generic_value(rng);
    out.push((G, format!("  client_secret: {v}"), v));
    let v = generic_value(rng);
    out.push((G, format!("  \"db_password\": \"{v}\","), v));
    let v = generic_value(rng);
    out.push((G, format!("ENV DEPLOY_TOKEN {v}"), v));
    let v = generic_value(rng);
    out.push((G, format!("  password: {}", base64(v.as_bytes())), v));
    let v = generic_value(rng);
    out.push((G, format!("SMTP_URL=smtps://mailer:{v}@smtp.internal:465"), v));
    let v = generic_value(rng);
    out.push((G, format!("curl -H \"Authorization: Bearer {v}\" https://api.internal/v1/jobs"), v));
    let v = generic_value(rng);
    out.push((G, format!("variable \"admin_password\" {{ default = \"{v}\" }}"), v));
}

/// Near misses of the generic detector: placeholders, templates, masks, words, code, paths, a
/// UUID a key holds, hashes and checksums named as such.
fn generic_decoys(rng: &mut Rng, out: &mut Vec<String>) {
    out.push("API_KEY=changeme".into());
    out.push("API_TOKEN=${API_TOKEN}".into());
    out.push("  api_key: <your-key>".into());
    out.push("SECRET_KEY=xxxxxxxxxxxxxxxxxxxxxxxx".into());
    out.push("  password: mysecretpassword".into());
    out.push("DB_PASSWORD=postgres".into());
    out.push("  private_key: ./certs/client-key.pem".into());
    out.push(format!(
        "SESSION_KEY={}-{}-4{}-a{}-{}",
        rng.pick(HEX, 8),
        rng.pick(HEX, 4),
        rng.pick(HEX, 3),
        rng.pick(HEX, 3),
        rng.pick(HEX, 12)
    ));
    out.push(format!("password_hash = \"{}\"", rng.pick(HEX, 64)));
    out.push(format!("token_checksum: {}", rng.pick(HEX, 64)));
    out.push("    token = self.auth_token".into());
    out.push("api_key = os.environ[\"API_KEY\"]".into());
    out.push("SECRET_KEY_BASE=$(openssl rand -hex 64)".into());
    out.push("docs: https://user:password@example.com/".into());
    out.push("curl -H \"Authorization: Bearer $TOKEN\" https://api.internal/v1/jobs".into());
    out.push("MAPBOX_PUBLIC_TOKEN=pk.q8Zr2LmXw9Tb4KpV7nYc".into());
}

/// One planted secret per built-in rule kind (several for some) and per syntax the generic
/// detector reads: (rule id, the text holding it, the secret the finding must carry). A planted
/// secret is reported on the first line of its text, except an AWS pair's (on the next: the
/// secret key).
pub fn planted(rng: &mut Rng) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    generic_planted(rng, &mut out);
    for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        let t = github(rng, p);
        out.push(("github-classic", format!("GITHUB_TOKEN={t}"), t));
    }
    for prefix in ["tw", "acme_prod", "a1_b2_c3"] {
        let t = tokenward(prefix);
        out.push(("tokenward", format!("let token = \"{t}\";"), t));
    }
    let t = format!("github_pat_{}_{}", rng.pick(ALNUM, 22), rng.pick(ALNUM, 59));
    out.push(("github-fine-grained", format!("token: {t}"), t));
    let t = format!("glpat-{}", rng.pick(ALNUM, 20));
    out.push(("gitlab-pat", format!("CI_TOKEN='{t}'"), t));
    let t = format!(
        "xoxb-{}-{}-{}",
        rng.pick(b"0123456789", 12),
        rng.pick(b"0123456789", 13),
        rng.pick(ALNUM, 24)
    );
    out.push(("slack-token", format!("slack = \"{t}\""), t));
    let t = format!(
        "https://hooks.slack.com/services/T{}/B{}/{}",
        rng.pick(UPPER_NUM, 8),
        rng.pick(UPPER_NUM, 10),
        rng.pick(ALNUM, 24)
    );
    out.push(("slack-webhook", format!("webhook: {t}"), t));
    let t = format!("sk_live_{}", rng.pick(ALNUM, 24));
    out.push(("stripe-live-key", format!("Stripe.api_key = '{t}'"), t));
    let t = format!("rk_live_{}", rng.pick(ALNUM, 32));
    out.push(("stripe-live-key", format!("STRIPE={t}"), t));
    let t = format!("hvs.{}", rng.pick(ALNUM, 24));
    out.push(("vault-token", format!("export VAULT_TOKEN={t}"), t));
    let id = format!("AKIA{}", rng.pick(UPPER_NUM, 16));
    let secret = format!("{}/{}+{}", rng.pick(ALNUM, 20), rng.pick(ALNUM, 9), rng.pick(ALNUM, 9));
    out.push((
        "aws-access-key",
        format!("aws_access_key_id = {id}\naws_secret_access_key = {secret}"),
        secret,
    ));
    let t = rng.pick(HEX, 40);
    out.push((
        "gcp-service-account",
        format!("{{\"type\": \"service_account\", \"project_id\": \"p\", \"private_key_id\": \"{t}\"}}"),
        t,
    ));
    let t = format!("{}==", rng.pick(B64, 86));
    out.push((
        "azure-storage-connection-string",
        format!(
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={t};EndpointSuffix=core.windows.net"
        ),
        t,
    ));
    let t = format!("{}==", rng.pick(B64, 86));
    out.push(("azure-storage-key", format!("AZURE_STORAGE_KEY=\"{t}\""), t));
    let body: Vec<String> = (0..12).map(|_| rng.pick(B64, 64)).collect();
    let body = format!("{}\n", body.join("\n"));
    out.push((
        "private-key",
        format!("-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----"),
        body,
    ));
    let pw = rng.pick(ALNUM, 18);
    out.push(("database-url", format!("DATABASE_URL=postgres://app:{pw}@db.internal:5432/app"), pw));
    let pw = rng.pick(ALNUM, 14);
    out.push(("database-url", format!("url: \"mongodb+srv://svc:{pw}@cluster0.example.net/db\""), pw));
    for (rule, positive, secret, _) in vectors() {
        if !GENERATED.contains(&rule.as_str()) && rule != "generic-assignment" {
            out.push((rule.as_str(), positive.clone(), secret.clone()));
        }
    }
    out
}

/// Near misses — bad checksums, documented examples, placeholders, public keys, hashes, and the
/// generic detector's — none of which should be a finding (the generic detector may take a few
/// rules' negatives, values of a wrong shape under a secret's name, for secrets).
pub fn decoys(rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    generic_decoys(rng, &mut out);
    for _ in 0..5 {
        let t = github(rng, "ghp_");
        let last = if t.ends_with('A') { 'B' } else { 'A' };
        out.push(format!("GITHUB_TOKEN={}{last}", &t[..t.len() - 1]));
    }
    let t = tokenward("tw");
    let last = if t.ends_with('A') { 'B' } else { 'A' };
    out.push(format!("token = \"{}{last}\"", &t[..t.len() - 1]));
    out.push("aws_access_key_id = AKIAIOSFODNN7EXAMPLE".into());
    out.push("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into());
    out.push(format!("key_id = AKIA{} (no secret here)", rng.pick(UPPER_NUM, 16)));
    out.push("DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app".into());
    out.push("DATABASE_URL=postgres://app:changeme@db:5432/app".into());
    out.push("DATABASE_URL=postgres://db.internal:5432/app".into());
    out.push("stripe_key = sk_test_4eC39HqLyjWDarjtT1zdp7dc".into());
    out.push("VAULT_TOKEN=hvs.xxxxxxxxxxxxxxxxxxxxxxxxxxxx".into());
    out.push("slack = \"xoxb-your-token-here\"".into());
    out.push(
        "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----"
            .into(),
    );
    out.push("password = \"<your-password>\"".into());
    out.push("api_key = \"aaaaaaaaaaaaaaaaaaaa\"".into());
    out.push(format!("sha = \"{}\"", rng.pick(HEX, 40)));
    out.push(format!("let ident_{} = 1;", rng.pick(ALNUM, 66)));
    for (rule, _, _, negative) in vectors() {
        if rule != "generic-assignment" {
            out.push(negative.clone());
        }
    }
    out
}

/// What a generated corpus holds: every planted secret's place, and the decoys' count.
#[derive(Debug, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Manifest {
    /// (relative path, 1-based line, rule id) of every planted secret.
    pub planted: Vec<(String, u64, String)>,
    /// (relative path, 1-based line) of every decoy.
    pub decoys: Vec<(String, u64)>,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

const FILLER: &[&str] = &[
    "fn handle_request(req: &Request, state: &AppState) -> Result<Response, Error> {",
    "    let user_id = req.headers().get(\"x-user-id\").and_then(|v| v.to_str().ok());",
    "    if let Some(cache_entry) = state.cache.get(&key) { return Ok(cache_entry.clone()); }",
    "def parse_config(path: str, *, strict: bool = False) -> dict[str, Any]:",
    "    with open(path, encoding=\"utf-8\") as fh: data = yaml.safe_load(fh)",
    "const apiBase = process.env.API_BASE_URL || 'https://api.internal.example.com/v2';",
    "export async function fetchOrders(customerId, { limit = 50, cursor } = {}) {",
    "  - name: build_and_test\n    runs-on: ubuntu-latest",
    "SELECT o.order_id, o.created_at, c.customer_name FROM orders o JOIN customers c ON c.id = o.customer_id;",
    "// TODO(perf): batch these writes; see https://github.com/example/service/issues/4211",
    "    assert_eq!(parsed.token_count, 3, \"three tokens in {input:?}\");",
    "    logger.info(\"retrying request_id=%s attempt=%d backoff_ms=%d\", rid, attempt, delay)",
    "commit 3f9a1c2e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 Merge pull request #881 from feature/token_refresh",
    "    private static final String DEFAULT_CHARSET_NAME = StandardCharsets.UTF_8.name();",
    "  \"integrity\": \"sha512-9c2b3a1f0e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8\",",
    "    let mut buffer_pool = BufferPool::with_capacity(max_in_flight * 2, DEFAULT_BUFFER_SIZE);",
];

/// Writes a corpus of about `bytes` bytes into `dir`: source-like files of 4–200 KiB, with the
/// [`planted`] secrets and [`decoys`] mixed in (about one of each per `secret_every` bytes), all
/// determined by `seed`.
pub fn write_corpus(dir: &Path, seed: u64, bytes: u64, secret_every: u64) -> std::io::Result<Manifest> {
    let mut rng = Rng(seed | 1);
    let mut m = Manifest::default();
    let exts = ["rs", "py", "js", "ts", "go", "yaml", "json", "java", "md", "env"];
    let mut since_secret = 0u64;
    while m.bytes < bytes {
        let sub = format!("pkg{:03}/mod{:02}", rng.next_u64() % 200, rng.next_u64() % 20);
        std::fs::create_dir_all(dir.join(&sub))?;
        let name = format!("{sub}/file{}.{}", m.files, exts[(rng.next_u64() % exts.len() as u64) as usize]);
        let size = 4096 + rng.next_u64() % (200 << 10);
        let mut out = std::io::BufWriter::new(std::fs::File::create(dir.join(&name))?);
        let (mut written, mut line) = (0u64, 1u64);
        while written < size {
            let text = if since_secret >= secret_every {
                since_secret = 0;
                let p = planted(&mut rng);
                let (rule, t, _) = &p[(rng.next_u64() % p.len() as u64) as usize];
                m.planted.push((name.clone(), line, (*rule).to_owned()));
                let d = decoys(&mut rng);
                let decoy = &d[(rng.next_u64() % d.len() as u64) as usize];
                // Filler between them wider than any rule's window, so that a decoy shaped like a
                // secret without its context cannot borrow the planted one's.
                let gap = [FILLER[0], FILLER[1], FILLER[3], FILLER[8], FILLER[12], FILLER[14]];
                m.decoys.push((name.clone(), line + t.matches('\n').count() as u64 + 1 + gap.len() as u64));
                format!("{t}\n{}\n{decoy}\n{}", gap.join("\n"), FILLER[1])
            } else {
                FILLER[(rng.next_u64() % FILLER.len() as u64) as usize].to_owned()
            };
            out.write_all(text.as_bytes())?;
            out.write_all(b"\n")?;
            line += text.matches('\n').count() as u64 + 1;
            let n = text.len() as u64 + 1;
            written += n;
            since_secret += n;
        }
        out.flush()?;
        m.files += 1;
        m.bytes += written;
    }
    Ok(m)
}
