//! Revocation fan-out across instance processes sharing one PostgreSQL, at the scale the
//! figures in `docs/scaling.md` were measured at (the harness is `tokenward_bench::fanout`; its
//! test-scale run is `tests/fanout.rs`).
//!
//! ```text
//! TOKENWARD_PG_URL='host=127.0.0.1 port=5432 user=postgres dbname=postgres' \
//!   cargo run --release -p tokenward-bench --example fanout -- --tokens 1000000
//! ```
//! (`scripts/services.sh`'s `start_postgres` starts a server and sets the variable.) Options:
//! `--instances N`, `--revocations N`, `--rate PER_SECOND`, `--pause-ms MS`, `--settle-secs S`,
//! `--resync-secs S`; `--backstop` measures the periodic backstop instead.

#![allow(clippy::print_stdout, clippy::expect_used, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use tokenward_bench::fanout::{Config, backstop, instance_main, is_instance, run};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() {
    if is_instance() {
        return instance_main().await;
    }
    let mut config = Config::default();
    if let Some(n) = arg("--tokens") {
        config.tokens = n.parse().expect("--tokens N");
    }
    if let Some(n) = arg("--instances") {
        config.instances = n.parse().expect("--instances N");
    }
    if let Some(n) = arg("--revocations") {
        config.revocations = n.parse().expect("--revocations N");
    }
    if let Some(n) = arg("--pause-ms") {
        config.pause = Some(Duration::from_millis(n.parse().expect("--pause-ms MS")));
    }
    if let Some(n) = arg("--settle-secs") {
        config.settle = Duration::from_secs(n.parse().expect("--settle-secs S"));
    }
    if let Some(n) = arg("--resync-secs") {
        config.resync = Some(Duration::from_secs(n.parse().expect("--resync-secs S")));
    }
    if let Some(n) = arg("--rate") {
        config.rate = n.parse().expect("--rate PER_SECOND");
    }
    if std::env::args().any(|a| a == "--backstop") {
        return backstop(config.tokens).await;
    }
    let exe = std::env::current_exe().unwrap();
    let outcome = run(&config, || Command::new(&exe)).await;
    println!("{config:?}\n{outcome}");
}
