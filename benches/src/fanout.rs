//! Revocation fan-out across instance processes sharing one PostgreSQL: the harness behind
//! `examples/fanout.rs` (the figures at a million tokens) and `tests/fanout.rs` (the same at test
//! scale, in the suite); its bulk load also fills the `bounded` bench's table.
//!
//! [`run`] loads a schema with [`Config::tokens`] tokens, starts [`Config::instances`] processes
//! (the calling binary, re-executed: it calls [`instance_main`] when [`is_instance`]), each a full
//! Tokenward deployment with its own verifier cache and NOTIFY follower, verifying in a loop and
//! auditing into one PostgreSQL chain (allowed verifications summarized, denials and revocations
//! as entries), a prober thread checking the storms' tokens every 2 ms. Then three revocation
//! storms: [`Config::revocations`] tokens revoked at [`Config::rate`] a second from one instance,
//! as many again from all of them at once (the same total rate), and as many again from one
//! instance while the harness kills one follower's connection midway with
//! `pg_terminate_backend` (it must reconnect, catch up and miss nothing; a phase of its own, so
//! its catch-up is not counted in the first two).
//!
//! It reports ([`Outcome`]), per storm, the time from a revocation's start until every instance
//! denies the token (p50, p99, max), each instance's verification rate idle and during the storm,
//! and whether the shared audit chain verifies. [`backstop`] measures the periodic backstop (a
//! full resync against a catch-up).

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokenward::audit::{Actor, LogStorage, PostgresLog, chains::ChainHead, chains::ChainVerifier};
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::{DenyReason, IssueRequest, Policy, Principal, Request, Role, TokenId};
use tokenward::secrecy::SecretBox;
use tokenward::store::LocalKek;
use tokenward::{FailureMode, Tokenward, VerifyAuditMode};
use tokenward_test_support::stats::{median, percentile};

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tokens in the database.
    pub tokens: usize,
    /// Instance processes.
    pub instances: usize,
    /// Revocations per storm.
    pub revocations: usize,
    /// Revocations a second (in total) during a storm.
    pub rate: f64,
    /// Valid tokens each instance keeps verifying beside the storm's.
    pub background: usize,
    /// How long the idle measurement lasts.
    pub idle: Duration,
    /// How long to wait after the instances opened before the first storm (their first catch-up,
    /// and PostgreSQL's autovacuum of the freshly loaded table, run then).
    pub settle: Duration,
    /// The instances' periodic full resync (`None`: the default, 60 s).
    pub resync: Option<Duration>,
    /// How long to wait for every instance to deny every revoked token.
    pub deadline: Duration,
    /// A pause after each pass of an instance's verification loop: none keeps every core busy
    /// (on a machine with fewer cores than instances the followers then wait for CPU); a few
    /// milliseconds leaves headroom, as a deployment sized with spare CPU has.
    pub pause: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tokens: 1_000_000,
            instances: 4,
            revocations: 1_000,
            rate: 200.0,
            background: 1_000,
            idle: Duration::from_secs(2),
            settle: Duration::from_secs(2),
            resync: None,
            deadline: Duration::from_secs(300),
            pause: None,
        }
    }
}

/// One storm's figures.
#[derive(Clone, Debug)]
pub struct Storm {
    /// Which storm (one revoker, all of them, one with a follower cut off).
    pub name: &'static str,
    /// Revocation start → denied by every instance, sorted, in milliseconds.
    pub latencies_ms: Vec<f64>,
    /// Revocation start → acknowledged (durable) by the revoking instance, sorted.
    pub ack_ms: Vec<f64>,
    /// Revoked tokens some instance never denied.
    pub missed: usize,
    /// Each instance's verifications a second during the storm.
    pub storm_rate: Vec<f64>,
    /// Each instance's own p99 (revocation start → denied there), in milliseconds.
    pub instance_p99_ms: Vec<f64>,
}

/// The run's figures.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// How long the bulk load took.
    pub load_secs: f64,
    /// How long each instance took to open, in milliseconds.
    pub open_ms: Vec<f64>,
    /// Each instance's verifications a second, idle.
    pub idle_rate: Vec<f64>,
    /// The storms' figures, in order.
    pub storms: Vec<Storm>,
    /// Which instance's follower connection was terminated.
    pub terminated: usize,
    /// Whether that follower denied every token of the storm it was cut off in.
    pub terminated_missed_none: bool,
    /// Background (valid) tokens denied: must be 0.
    pub background_failures: u64,
    /// Entries in the shared audit chain.
    pub audit_entries: u64,
    /// Whether the shared chain verifies.
    pub audit_chain_verified: bool,
    /// Distinct instances whose revocation entries are in the shared chain.
    pub audit_revokers: usize,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "loaded in {:.1} s; instances opened in {:?} ms", self.load_secs, self.open_ms)?;
        for s in &self.storms {
            writeln!(
                f,
                "{}: denied everywhere p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} revocations, {} missed); \
                 revoke acknowledged p50 {:.1} ms",
                s.name,
                percentile(&s.latencies_ms, 0.5),
                percentile(&s.latencies_ms, 0.99),
                percentile(&s.latencies_ms, 1.0),
                s.latencies_ms.len(),
                s.missed,
                percentile(&s.ack_ms, 0.5)
            )?;
            let ratios: Vec<String> = s
                .storm_rate
                .iter()
                .zip(&self.idle_rate)
                .map(|(s, i)| format!("{:.0}k/s ({:.0}%)", s / 1e3, 100.0 * s / i))
                .collect();
            writeln!(f, "  verification during the storm vs idle: {}", ratios.join(", "))?;
            let own: Vec<String> = s.instance_p99_ms.iter().map(|p| format!("{p:.1}")).collect();
            writeln!(f, "  each instance's own p99 (ms): {}", own.join(", "))?;
        }
        let idle: Vec<String> = self.idle_rate.iter().map(|r| format!("{:.0}k/s", r / 1e3)).collect();
        writeln!(f, "idle verification rate per instance: {}", idle.join(", "))?;
        writeln!(
            f,
            "instance {}'s follower was terminated mid-storm: {}",
            self.terminated,
            if self.terminated_missed_none { "reconnected, resynced, missed none" } else { "MISSED SOME" }
        )?;
        write!(
            f,
            "shared audit chain: {} entries, {}, revocations from {} instances; valid tokens denied: {}",
            self.audit_entries,
            if self.audit_chain_verified { "verifies" } else { "DOES NOT VERIFY" },
            self.audit_revokers,
            self.background_failures
        )
    }
}

const ROLE_ENV: &str = "TOKENWARD_FANOUT_ROLE";
const SCOPE: &str = "fan:api/orders:call";

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn policy() -> Policy {
    Policy::builder()
        .role(Role::parse("caller", "fan:api/**:call", TimeDelta::days(2)).unwrap())
        .build()
        .unwrap()
}

fn deployment(url: &str) -> tokenward::TokenwardBuilder {
    let kek = LocalKek::from_key("fanout", SecretBox::new(Box::new([7u8; 32]))).unwrap();
    Tokenward::postgres(url).key_provider(Arc::new(kek)).policy(policy()).prefix("fo")
}

/// A deployment that only writes (the bulk load): a bounded cache of 16, so its open loads nothing.
async fn loader(url: &str) -> Tokenward {
    deployment(url)
        .cache_capacity(16)
        .bounded_cache(tokenward::store::cache::BoundedCache::new(16))
        .open()
        .await
        .unwrap()
}

/// Whether this process is an instance the harness started (then call [`instance_main`]).
pub fn is_instance() -> bool {
    std::env::var_os(ROLE_ENV).is_some()
}

/// An instance: open, say ready, verify in a loop, obey the harness's commands on stdin.
pub async fn instance_main() {
    if std::env::var_os("TOKENWARD_FANOUT_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter("info").try_init();
    }
    let url = std::env::var("TOKENWARD_FANOUT_URL").unwrap();
    let index: usize = std::env::var("TOKENWARD_FANOUT_INDEX").unwrap().parse().unwrap();
    let file = std::env::var("TOKENWARD_FANOUT_FILE").unwrap();
    let capacity: usize = std::env::var("TOKENWARD_FANOUT_CAPACITY").unwrap().parse().unwrap();
    let pause: Option<Duration> = std::env::var("TOKENWARD_FANOUT_PAUSE_US")
        .ok()
        .filter(|v| !v.is_empty())
        .map(|v| Duration::from_micros(v.parse().unwrap()));
    let tokens: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    let storm: Vec<(TokenId, String)> = tokens["storm"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t[0].as_str().unwrap().parse().unwrap(), t[1].as_str().unwrap().to_owned()))
        .collect();
    let background: Vec<String> =
        tokens["background"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()).collect();
    drop(tokens);

    let start = Instant::now();
    let log = PostgresLog::connect(&url, 4).await.unwrap();
    let mut upkeep = tokenward::Upkeep::default();
    if let Some(secs) = std::env::var("TOKENWARD_FANOUT_RESYNC_SECS").ok().and_then(|v| v.parse().ok()) {
        upkeep = upkeep.resync_every(Duration::from_secs(secs));
    }
    let tw = deployment(&url)
        .upkeep(upkeep)
        .cache_capacity(capacity)
        .actor(Actor::Operator(format!("instance-{index}")))
        .audit_storage(Arc::new(log), FailureMode::FailClosed)
        .verify_audit(VerifyAuditMode::Summarized { interval: Duration::from_secs(1) })
        .open()
        .await
        .unwrap();
    println!("FANOUT ready {:.1}", start.elapsed().as_secs_f64() * 1e3);

    // The verification loop: every not-yet-denied storm token, then a slice of the background.
    let stop = Arc::new(AtomicBool::new(false));
    let denied: Arc<Vec<AtomicU64>> = Arc::new((0..storm.len()).map(|_| AtomicU64::new(0)).collect());
    let denied_count = Arc::new(AtomicUsize::new(0));
    let count = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let samples: Arc<std::sync::Mutex<Vec<(u64, u64)>>> = Arc::default();
    // The prober: every not-yet-denied token of the current storm (the harness arms its range
    // first: probing later storms' still-valid tokens too would load the instance, and stretch
    // the pass, most in the first storm), then 2 ms of sleep (its resolution: a pass of ≤ 1,000
    // verifications plus the sleep); it timestamps the first denial it sees.
    let armed = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let prober = {
        let (stop, denied, denied_count) = (stop.clone(), denied.clone(), denied_count.clone());
        let armed = armed.clone();
        let verifier = tw.verifier();
        let storm: Vec<String> = storm.iter().map(|(_, t)| t.clone()).collect();
        std::thread::spawn(move || {
            let request = Request::parse(SCOPE).unwrap();
            // Bounded: at most ten minutes.
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                let (from, to) = (armed.0.load(Ordering::Acquire), armed.1.load(Ordering::Acquire));
                for (i, t) in storm.iter().enumerate().take(to).skip(from) {
                    if denied[i].load(Ordering::Relaxed) != 0 {
                        continue;
                    }
                    if let Some(DenyReason::Revoked { .. }) = verifier.verify(t, &request).reason() {
                        denied[i].store(now_ns(), Ordering::Relaxed);
                        denied_count.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    // The load: the background tokens in a loop (the same work whatever the storms do), counted.
    let looper = {
        let (stop, count, failures, samples) =
            (stop.clone(), count.clone(), failures.clone(), samples.clone());
        let verifier = tw.verifier();
        std::thread::spawn(move || {
            let request = Request::parse(SCOPE).unwrap();
            let mut next_sample = Instant::now();
            let mut b = 0;
            let deadline = Instant::now() + Duration::from_secs(600);
            while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                for _ in 0..256 {
                    let t = &background[b % background.len()];
                    b += 1;
                    if !verifier.verify(t, &request).is_allowed() {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let total = count.fetch_add(256, Ordering::Relaxed) + 256;
                if Instant::now() >= next_sample {
                    samples.lock().unwrap().push((now_ns(), total));
                    next_sample += Duration::from_millis(50);
                }
                match pause {
                    Some(p) => std::thread::sleep(p),
                    None => std::thread::yield_now(),
                }
            }
        })
    };

    let mut revocations: Vec<(usize, u64, u64)> = Vec::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["revoke", rate, from, to] => {
                let (rate, from, to): (f64, usize, usize) =
                    (rate.parse().unwrap(), from.parse().unwrap(), to.parse().unwrap());
                let begin = Instant::now();
                for (k, i) in (from..to).enumerate() {
                    let at = begin + Duration::from_secs_f64(k as f64 / rate);
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        tokio::time::sleep(wait).await;
                    }
                    let started = now_ns();
                    tw.revoke(storm[i].0).await.unwrap();
                    revocations.push((i, started, now_ns()));
                }
                println!("FANOUT revoked");
            }
            ["arm", from, to] => {
                armed.0.store(0, Ordering::Release);
                armed.1.store(to.parse().unwrap(), Ordering::Release);
                armed.0.store(from.parse().unwrap(), Ordering::Release);
                println!("FANOUT armed");
            }
            ["count"] => println!("FANOUT count {}", denied_count.load(Ordering::Relaxed)),
            ["stop"] => break,
            _ => panic!("unknown command {line}"),
        }
        std::io::stdout().flush().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    looper.join().unwrap();
    prober.join().unwrap();
    tw.shutdown().await.unwrap();
    let result = json!({
        "index": index,
        "denied_ns": denied.iter().map(|d| d.load(Ordering::Relaxed)).collect::<Vec<_>>(),
        "samples": *samples.lock().unwrap(),
        "failures": failures.load(Ordering::Relaxed),
        "revocations": revocations,
    });
    println!("FANOUT result {result}");
}

struct Instance {
    child: Child,
    stdin: ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Instance {
    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next `FANOUT <word> …` line's rest, within `limit`.
    fn expect(&self, word: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
            let line =
                self.lines.recv_timeout(left).unwrap_or_else(|_| panic!("no `{word}` from an instance"));
            // Anywhere in the line: a test harness may have begun it with the test's name.
            let tag = format!("FANOUT {word}");
            if let Some(at) = line.find(&tag) {
                return line[at + tag.len()..].trim().to_owned();
            }
        }
    }
}

/// A rate (per second) between two times from cumulative samples.
fn rate(samples: &[(u64, u64)], from_ns: u64, to_ns: u64) -> f64 {
    let inside: Vec<&(u64, u64)> = samples.iter().filter(|(t, _)| *t >= from_ns && *t <= to_ns).collect();
    match (inside.first(), inside.last()) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / ((b.0 - a.0) as f64 / 1e9),
        _ => f64::NAN,
    }
}

/// Writes `n` tokens for `principal` (one purpose each, `p0`, `p1`, …) straight into the
/// deployment's PostgreSQL table in batches of 20,000: records made by its issuer, encoded and
/// tagged with its record key — what an issue stores, without `n` one-row transactions (one
/// commit a batch, not waiting for the disk). Returns the texts of the tokens `keep` selects
/// (index, id, text), or of all of them.
pub async fn bulk_load(
    tw: &Tokenward,
    url: &str,
    principal: &Principal,
    scope: &str,
    n: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<(usize, TokenId, String)> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    client.batch_execute("SET synchronous_commit = off").await.unwrap();
    let key = tw.secrets().record_key().unwrap().clone();
    let issuer = tw.tokens().issuer();
    let insert = client
        .prepare(
            "INSERT INTO tokens (id, principal, purpose, parent, expires_ms, revoked_ms, body, mac)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                                  $6::bigint[], $7::bytea[], $8::bytea[])",
        )
        .await
        .unwrap();
    let now = Utc::now();
    let mut kept = Vec::new();
    for start in (0..n).step_by(20_000) {
        let (mut id, mut pr, mut pu, mut parent, mut exp, mut rev, mut body, mut mac) = (
            vec![],
            vec![],
            vec![],
            Vec::<Option<String>>::new(),
            vec![],
            Vec::<Option<i64>>::new(),
            vec![],
            vec![],
        );
        for i in start..(start + 20_000).min(n) {
            let req = IssueRequest::parse(&format!("p{i}"), scope, TimeDelta::hours(30)).unwrap();
            let (token, record) = issuer.issue_at(principal, &req, &[], now).unwrap();
            if keep(i) {
                kept.push((i, record.id, token.expose_secret().to_owned()));
            }
            id.push(record.id.to_string());
            pr.push(record.principal.as_str().to_owned());
            pu.push(record.purpose.as_str().to_owned());
            parent.push(None);
            exp.push(record.expires_at.timestamp_millis());
            rev.push(None);
            body.push(tokenward::store::backend::encode_token_record(&record));
            mac.push(key.seal_token(&record).0.to_vec());
        }
        client.execute(&insert, &[&id, &pr, &pu, &parent, &exp, &rev, &body, &mac]).await.unwrap();
    }
    client.batch_execute("ANALYZE tokens").await.unwrap();
    driver.abort();
    kept
}

/// Runs the harness. `spawn` makes the command that starts one instance process (this binary,
/// re-executed; a test binary adds the arguments that select its instance test).
pub async fn run(config: &Config, spawn: impl Fn() -> Command) -> Outcome {
    let schema = tokenward_test_support::FreshSchema::create("fanout").expect("TOKENWARD_PG_URL");
    let load_start = Instant::now();
    let loader = loader(schema.url()).await;
    let keep = 3 * config.revocations + config.background;
    let principal = Principal::parse("svc", ["caller"]).unwrap();
    let kept = bulk_load(&loader, schema.url(), &principal, SCOPE, config.tokens, |i| i < keep).await;
    loader.shutdown().await.unwrap();
    drop(loader);
    let load_secs = load_start.elapsed().as_secs_f64();
    eprintln!("loaded {} tokens in {load_secs:.1} s; starting {} instances", config.tokens, config.instances);
    let storm_tokens: Vec<Value> =
        kept[..3 * config.revocations].iter().map(|(_, id, t)| json!([id.to_string(), t])).collect();
    let background: Vec<&str> = kept[3 * config.revocations..].iter().map(|(_, _, t)| t.as_str()).collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tokens.json");
    std::fs::write(&file, json!({"storm": storm_tokens, "background": background}).to_string()).unwrap();

    let mut instances: Vec<Instance> = (0..config.instances)
        .map(|i| {
            let mut cmd = spawn();
            cmd.env(ROLE_ENV, "instance")
                .env("TOKENWARD_FANOUT_URL", format!("{} application_name=fanout-{i}", schema.url()))
                .env("TOKENWARD_FANOUT_INDEX", i.to_string())
                .env("TOKENWARD_FANOUT_FILE", &file)
                .env("TOKENWARD_FANOUT_CAPACITY", (config.tokens + 16).to_string())
                .env(
                    "TOKENWARD_FANOUT_RESYNC_SECS",
                    config.resync.map(|d| d.as_secs().to_string()).unwrap_or_default(),
                )
                .env(
                    "TOKENWARD_FANOUT_PAUSE_US",
                    config.pause.map(|p| p.as_micros().to_string()).unwrap_or_default(),
                )
                .stdin(Stdio::piped())
                .stdout(Stdio::piped());
            let mut child = cmd.spawn().unwrap();
            let stdin = child.stdin.take().unwrap();
            let out = child.stdout.take().unwrap();
            let (tx, lines) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
            Instance { child, stdin, lines }
        })
        .collect();
    let open_ms: Vec<f64> =
        instances.iter().map(|i| i.expect("ready", Duration::from_secs(300)).parse().unwrap()).collect();

    // Settle (each follower's first catch-up runs just after its open), then storm.
    tokio::time::sleep(config.settle).await;

    let wait_denied = |instances: &mut Vec<Instance>, expected: usize| {
        let deadline = Instant::now() + config.deadline;
        for inst in instances.iter_mut() {
            loop {
                inst.send("count");
                let n: usize = inst.expect("count", config.deadline).parse().unwrap();
                if n >= expected || Instant::now() > deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    };

    // Each storm's tokens are armed (probed) on every instance just before it.
    let arm = |instances: &mut Vec<Instance>, from: usize, to: usize| {
        for inst in instances.iter_mut() {
            inst.send(&format!("arm {from} {to}"));
            inst.expect("armed", config.deadline);
        }
    };

    // Storm A: from instance 0 alone.
    let terminated = config.instances - 1;
    let (r, rate_total) = (config.revocations, config.rate);
    arm(&mut instances, 0, r);
    let a_from = now_ns();
    instances[0].send(&format!("revoke {rate_total} 0 {r}"));
    instances[0].expect("revoked", config.deadline);
    let a_to = now_ns();
    wait_denied(&mut instances, r);

    // Storm B: all instances at once, the same total rate.
    arm(&mut instances, r, 2 * r);
    let b_from = now_ns();
    let share = r.div_ceil(config.instances);
    for (k, inst) in instances.iter_mut().enumerate() {
        let (from, to) = (r + k * share, (r + (k + 1) * share).min(2 * r));
        inst.send(&format!("revoke {} {from} {to}", rate_total / config.instances as f64));
    }
    for inst in &instances {
        inst.expect("revoked", config.deadline);
    }
    let b_to = now_ns();
    wait_denied(&mut instances, 2 * r);

    // Storm C: from instance 0 again; instance `terminated`'s follower is cut off midway (a phase
    // of its own, so the catch-up it runs is not counted in A or B).
    arm(&mut instances, 2 * r, 3 * r);
    let c_from = now_ns();
    instances[0].send(&format!("revoke {rate_total} {} {}", 2 * r, 3 * r));
    tokio::time::sleep(Duration::from_secs_f64(r as f64 / rate_total / 2.0)).await;
    let (client, conn) = tokio_postgres::connect(schema.server(), tokio_postgres::NoTls).await.unwrap();
    let driver = tokio::spawn(conn);
    let killed = client
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
            &[&format!("fanout-{terminated}")],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one follower connection terminated");
    instances[0].expect("revoked", config.deadline);
    let c_to = now_ns();
    wait_denied(&mut instances, 3 * r);
    // Idle, for the baseline of the verification rate: after the storms, nothing else running.
    let idle_from = now_ns();
    tokio::time::sleep(config.idle).await;
    let idle_to = now_ns();

    let mut results = Vec::new();
    for inst in instances.iter_mut() {
        inst.send("stop");
        let v: Value = serde_json::from_str(&inst.expect("result", Duration::from_secs(60))).unwrap();
        results.push(v);
    }
    for inst in instances.iter_mut() {
        let _ = inst.child.wait();
    }

    let samples: Vec<Vec<(u64, u64)>> = results
        .iter()
        .map(|v| {
            v["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
                .collect()
        })
        .collect();
    let denied: Vec<Vec<u64>> = results
        .iter()
        .map(|v| v["denied_ns"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect())
        .collect();
    let mut started = vec![(0u64, 0u64); 3 * r];
    for v in &results {
        for rv in v["revocations"].as_array().unwrap() {
            started[rv[0].as_u64().unwrap() as usize] = (rv[1].as_u64().unwrap(), rv[2].as_u64().unwrap());
        }
    }
    let storm = |name: &'static str, range: std::ops::Range<usize>, from: u64, to: u64| {
        let mut latencies = Vec::new();
        let mut ack = Vec::new();
        let mut missed = 0;
        for i in range.clone() {
            let (start, acked) = started[i];
            ack.push((acked.saturating_sub(start)) as f64 / 1e6);
            let times: Vec<u64> = denied.iter().map(|d| d[i]).collect();
            if times.iter().all(|t| *t != 0) {
                let last = times.iter().copied().max().unwrap_or(0);
                latencies.push(last.saturating_sub(start) as f64 / 1e6);
            } else {
                missed += 1;
            }
        }
        latencies.sort_by(f64::total_cmp);
        ack.sort_by(f64::total_cmp);
        let instance_p99_ms = denied
            .iter()
            .map(|d| {
                let mut own: Vec<f64> = range
                    .clone()
                    .filter(|i| d[*i] != 0)
                    .map(|i| d[i].saturating_sub(started[i].0) as f64 / 1e6)
                    .collect();
                own.sort_by(f64::total_cmp);
                percentile(&own, 0.99)
            })
            .collect();
        Storm {
            name,
            instance_p99_ms,
            latencies_ms: latencies,
            ack_ms: ack,
            missed,
            storm_rate: samples.iter().map(|s| rate(s, from, to)).collect(),
        }
    };
    let a = storm("one revoker", 0..r, a_from, a_to);
    let b = storm("all revoking at once", r..2 * r, b_from, b_to);
    let c = storm("one revoker, a follower cut off midway", 2 * r..3 * r, c_from, c_to);
    let terminated_missed_none = (0..3 * r).all(|i| denied[terminated][i] != 0);

    // The shared chain.
    let log = PostgresLog::connect(schema.url(), 2).await.unwrap();
    let mut verifier = ChainVerifier::new(ChainHead::EMPTY);
    let mut from = 0;
    let mut ok = true;
    let mut revokers = std::collections::BTreeSet::new();
    loop {
        let page = log.read(from, 10_000).await.unwrap();
        if page.is_empty() {
            break;
        }
        for e in &page {
            if verifier.push(e).is_err() {
                ok = false;
            }
            if e.event.action == tokenward::audit::Action::Revoke
                && let Actor::Operator(who) = &e.event.actor
            {
                revokers.insert(who.clone());
            }
        }
        from = page.last().unwrap().seq + 1;
    }
    driver.abort();
    Outcome {
        load_secs,
        open_ms,
        idle_rate: samples.iter().map(|s| rate(s, idle_from, idle_to)).collect(),
        storms: vec![a, b, c],
        terminated,
        terminated_missed_none,
        background_failures: results.iter().map(|v| v["failures"].as_u64().unwrap()).sum(),
        audit_entries: verifier.head().len,
        audit_chain_verified: ok,
        audit_revokers: revokers.len(),
    }
}

/// This process's CPU time so far (user + system, from `/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// `--backstop`: what the periodic backstop costs one instance holding `n` tokens in a full cache
/// — a full resync (every record read and its tag checked) against the catch-up that runs between
/// them (revocations since, one indexed query; ids scanned, the missing read) — three of each,
/// wall time and this process's CPU (the database's work is in the wall time only).
pub async fn backstop(n: usize) {
    let schema = tokenward_test_support::FreshSchema::create("fanout").expect("TOKENWARD_PG_URL");
    let loader = loader(schema.url()).await;
    let principal = Principal::parse("svc", ["caller"]).unwrap();
    let kept = bulk_load(&loader, schema.url(), &principal, SCOPE, n, |i| i < 100).await;
    loader.shutdown().await.unwrap();
    let tw = deployment(schema.url()).cache_capacity(n + 16).open().await.unwrap();
    for (_, id, _) in &kept[..10] {
        tw.revoke(*id).await.unwrap();
    }
    let tokens = tw.tokens();
    // [full resync, catch-up] × 3 runs: (wall, CPU) each.
    let mut figures = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for _ in 0..3 {
        for (which, (walls, cpus)) in figures.iter_mut().enumerate() {
            let (t, c) = (Instant::now(), cpu_secs());
            if which == 0 {
                tokens.resync_at(Utc::now()).await.unwrap();
            } else {
                tokens.catch_up_at(Utc::now(), Utc::now()).await.unwrap();
            }
            walls.push(t.elapsed().as_secs_f64());
            cpus.push(cpu_secs() - c);
        }
    }
    let [(fw, fc), (uw, uc)] = &mut figures;
    let (full_wall, full_cpu, up_wall, up_cpu) = (median(fw), median(fc), median(uw), median(uc));
    println!(
        "backstop at {n} tokens (medians of 3): full resync {full_wall:.2} s wall, {full_cpu:.2} s CPU here; \
         catch-up {up_wall:.2} s wall, {up_cpu:.2} s CPU here ({:.1}x less wall time)",
        full_wall / up_wall.max(1e-9)
    );
    tw.shutdown().await.unwrap();
}
