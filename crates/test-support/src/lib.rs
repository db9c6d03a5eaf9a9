//! # tokenward-test-support
//!
//! What Tokenward's own test suites share, so that no crate writes it again: the SIGKILL harness
//! ([`kill_child_at_random`]), the rule for finding the test PostgreSQL ([`postgres_url`]), and a
//! schema of a test's own that is dropped when the test ends ([`FreshSchema`]), and a local AWS API
//! ([`Moto`]), and a writer capturing tracing output ([`Captured`]), and the scanner's corpus of
//! planted secrets and decoys ([`corpus`]), and the percentiles and medians measurements report
//! ([`stats`]).
//! Not published; not part of any public API. The `tokenward` command depends on it for [`stats`]
//! alone (its leak drill reports percentiles the way the benchmarks do).
//!
//! ```
//! // Outside `scripts/test.sh` (and outside CI) a PostgreSQL test is skipped, loudly.
//! if std::env::var("CI").is_err() && std::env::var("TOKENWARD_PG_URL").is_err() {
//!     assert!(tokenward_test_support::postgres_url().is_none());
//! }
//! ```

#![allow(clippy::panic, clippy::print_stderr, clippy::expect_used)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::TryRng;

pub mod corpus;
pub mod dpop;
pub mod stats;

/// The environment variable naming the test PostgreSQL server's URL.
pub const POSTGRES_URL_ENV: &str = "TOKENWARD_PG_URL";

/// The test PostgreSQL's URL, from `TOKENWARD_PG_URL` (which `scripts/test.sh` sets after starting
/// a server). Without it a test skips loudly — except with `CI=true`, where skipping would hide a
/// missing server, so it panics.
pub fn postgres_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_ENV) {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {POSTGRES_URL_ENV} is not set: PostgreSQL tests cannot be skipped in CI")
        }
        Err(_) => {
            eprintln!(
                "\n*** SKIPPED: PostgreSQL tests ({POSTGRES_URL_ENV} is not set; scripts/test.sh starts a server) ***\n"
            );
            None
        }
    }
}

/// A PostgreSQL schema of one test's own, created empty and dropped (with everything in it) when
/// the guard goes — also when the test fails. Connect with [`FreshSchema::url`], whose
/// `search_path` points into it.
pub struct FreshSchema {
    server: String,
    name: String,
    url: String,
}

impl FreshSchema {
    /// A new empty schema named `{prefix}_{pid}_{random}` on the test server; `None` (skipping
    /// loudly) without one, as [`postgres_url`].
    pub fn create(prefix: &str) -> Option<Self> {
        let server = postgres_url()?;
        let name = format!("{prefix}_{}_{}", std::process::id(), random_ms(0, 1_000_000_000));
        run_sql(&server, &format!("CREATE SCHEMA {name}"));
        let url = format!("{server} options='-c search_path={name}'");
        Some(Self { server, name, url })
    }

    /// The connection string into the schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's connection string (no schema set).
    pub fn server(&self) -> &str {
        &self.server
    }
}

impl Drop for FreshSchema {
    fn drop(&mut self) {
        run_sql(&self.server, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

/// Runs `sql` on the server from a thread and runtime of its own (so it works from a test's
/// runtime, outside one, and in `Drop`).
fn run_sql(server: &str, sql: &str) {
    let (server, sql) = (server.to_owned(), sql.to_owned());
    let done = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&server, tokio_postgres::NoTls).await?;
            let driver = tokio::spawn(conn);
            let result = client.batch_execute(&sql).await;
            drop(client);
            let _ = driver.await;
            result
        })
    })
    .join()
    .expect("schema thread");
    if let Err(e) = done {
        if std::thread::panicking() {
            eprintln!("test schema: {e}");
        } else {
            panic!("test schema: {e}");
        }
    }
}

/// A random number of milliseconds in `min..min + spread` (from the OS RNG).
pub fn random_ms(min: u64, spread: u64) -> u64 {
    let mut r = [0u8; 8];
    rand::rngs::SysRng.try_fill_bytes(&mut r).expect("OS RNG");
    min + u64::from_le_bytes(r) % spread.max(1)
}

/// Runs the test `child` of the current test binary (`--exact child --nocapture`) with `env` set,
/// lets it work for a random `min_ms..min_ms + spread_ms`, kills it with SIGKILL, and returns what
/// it acknowledged: the rest of every stdout line that starts with `ACK `, in order.
///
/// The child test should return at once unless its environment variable is set, print `ACK …`
/// only after the work it names is durable, and loop until killed.
pub fn kill_child_at_random(child: &str, env: &[(&str, &OsStr)], min_ms: u64, spread_ms: u64) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", child, "--nocapture", "--test-threads=1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut proc = cmd.spawn().expect("spawn the child test");
    let stdout = proc.stdout.take().expect("piped stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| l.strip_prefix("ACK ").map(str::to_owned))
            .collect::<Vec<_>>()
    });
    std::thread::sleep(Duration::from_millis(random_ms(min_ms, spread_ms)));
    proc.kill().expect("SIGKILL the child");
    proc.wait().expect("reap the child");
    reader.join().expect("reader thread")
}

/// A local AWS API: PyPI's `moto` in server mode on a free loopback port, killed when dropped.
/// The first `no_auth_actions` calls are accepted unsigned (setup: users, keys, policies); every
/// later call must be signed, and IAM policies apply.
pub struct Moto {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Moto {
    /// Starts moto (`TOKENWARD_MOTO_SERVER`, which `scripts/test.sh` sets, or `moto_server` on
    /// the path); `None`, skipping loudly, without it — except under CI, where it panics.
    pub fn start(no_auth_actions: u32) -> Option<Self> {
        let bin = match std::env::var("TOKENWARD_MOTO_SERVER") {
            Ok(p) => p,
            Err(_)
                if Command::new("moto_server")
                    .arg("--help")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success()) =>
            {
                "moto_server".into()
            }
            Err(_) => {
                assert!(
                    std::env::var("CI").map_or(true, |v| v != "true"),
                    "CI=true but moto_server is not installed"
                );
                eprintln!("\n*** SKIPPED: AWS tests (no moto_server; scripts/test.sh installs it) ***\n");
                return None;
            }
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("an address")
            .port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", no_auth_actions.to_string())
            .stdout(Stdio::null())
            .stderr(if std::env::var("MOTO_DEBUG").is_ok() { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("moto_server starts");
        let moto = Self { child, endpoint: format!("http://127.0.0.1:{port}") };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "moto_server did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(moto)
    }

    /// Its URL (`http://127.0.0.1:PORT`), for every service.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A signed client of every service, acting with `creds`.
    pub fn client(&self, creds: token_http::aws::AwsCredentials) -> token_http::aws::AwsClient {
        token_http::aws::AwsClient::new("us-east-1", creds).endpoint(self.endpoint.clone())
    }

    /// Spends the three unsigned setup calls of [`Moto::start`]`(3)`: an IAM user `name` allowed
    /// `policy` (an IAM policy document, e.g. [`ALLOW_ALL`]), and its access key.
    pub async fn setup_user(&self, name: &str, policy: &str) -> token_http::aws::AwsCredentials {
        use token_http::aws::{AwsCredentials, xml};
        use token_http::secrecy::SecretString;
        let setup =
            self.client(AwsCredentials::new("AKIASETUP00000000000", SecretString::from("x".repeat(40))));
        let v = "2010-05-08";
        setup.query("iam", v, "CreateUser", &[("UserName", name.into())]).await.expect("CreateUser");
        let key = setup
            .query("iam", v, "CreateAccessKey", &[("UserName", name.into())])
            .await
            .expect("CreateAccessKey");
        setup
            .query(
                "iam",
                v,
                "PutUserPolicy",
                &[
                    ("UserName", name.into()),
                    ("PolicyName", "setup".into()),
                    ("PolicyDocument", policy.into()),
                ],
            )
            .await
            .expect("PutUserPolicy");
        AwsCredentials::new(
            xml::tag(&key, "AccessKeyId").expect("a key id"),
            SecretString::from(xml::tag(&key, "SecretAccessKey").expect("a secret key")),
        )
    }
}

/// An IAM policy document allowing everything (the setup admin's).
pub const ALLOW_ALL: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// A writer that keeps everything written to it, for tests that capture tracing output (give
/// `move || captured.clone()` to a subscriber's `with_writer`) and search it for planted secrets.
#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// What was written so far, as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
