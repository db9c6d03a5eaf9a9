//! The audit trail's hot paths beside their floors, in one run:
//!
//! - append in memory (chain + keep) vs raw SHA-256 of the same hashed bytes;
//! - append to a file with group commit (one write + one fdatasync per 1,000 entries) vs the raw
//!   floor: the same bytes written with one buffered write and one fdatasync per 1,000;
//! - verify 10,000 entries vs raw SHA-256 of the same hashed bytes (and the file's parse+verify);
//! - a verification with its audit event through the batched writer into a group-committed file,
//!   vs the same verification unaudited.
//!
//! `cargo bench --bench audit` (set `TOKENWARD_BENCH_TOKENS` for the verifier's store size).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, missing_docs)]

mod support;

use std::hint::black_box;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use sha2::{Digest, Sha256};
use tokenward::audit::chains::{ChainHash, ChainHead, Entry, verify};
use tokenward::audit::file::FileSync;
use tokenward::audit::merkle::{MerkleTree, leaf_hash, node_hash, verify_consistency, verify_inclusion};
use tokenward::audit::summary::{DEFAULT_SUMMARY_INTERVAL, VerificationSummary};
use tokenward::audit::*;
use tokenward::core::chrono::{TimeDelta, Utc};
use tokenward::core::clocks::{CachedClock, Clock};
use tokenward::core::digest::{DigestKey, DigestKeyring};
use tokenward::core::lookup::InMemoryLookup;
use tokenward::core::*;

const BATCH: usize = 1000;

fn event(i: usize) -> AuditEvent {
    AuditEvent::new(Utc::now(), Actor::Principal("billing-api".into()), Action::VerifyAllowed)
        .token(TokenId::from_u128(1_000_000 + i as u128).unwrap())
        .source("10.0.0.7")
        .attr("request", "s3:bucket/prod-logs/app.log:read")
}

/// The bytes the chain hashes for each event (domain, seq, prev, canonical event).
fn hashed_bytes(events: &[AuditEvent]) -> Vec<Vec<u8>> {
    let mut head = ChainHead::EMPTY;
    events
        .iter()
        .map(|e| {
            let mut b = b"tokenward-audit-v1\n".to_vec();
            b.extend_from_slice(&head.len.to_be_bytes());
            b.extend_from_slice(&head.head.0);
            b.extend_from_slice(&e.canonical());
            head.append(e.clone());
            b
        })
        .collect()
}

/// The file log's whole CPU path — chain hash and stored line, via the same `append_line` — with
/// nothing written: what auditing costs the processor apart from the device.
#[derive(Default)]
struct ChainOnly {
    state: std::sync::Mutex<(ChainHead, Vec<u8>, Vec<u8>)>,
}

#[async_trait::async_trait]
impl LogStorage for ChainOnly {
    async fn append(&self, events: &[AuditEvent]) -> Result<ChainHead, AuditError> {
        let mut g = self.state.lock().unwrap();
        let (head, buf, scratch) = &mut *g;
        buf.clear();
        for e in events {
            head.append_line(e, buf, scratch);
        }
        black_box(&buf);
        Ok(*head)
    }
    async fn head(&self) -> Result<ChainHead, AuditError> {
        Ok(self.state.lock().unwrap().0)
    }
    async fn read(&self, _: u64, _: usize) -> Result<Vec<Entry>, AuditError> {
        Ok(Vec::new())
    }
}

fn tokens_n() -> usize {
    std::env::var("TOKENWARD_BENCH_TOKENS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000)
}

fn bench(c: &mut Criterion) {
    let events: Vec<AuditEvent> = (0..BATCH).map(event).collect();
    let hashed = hashed_bytes(&events);
    let avg_hashed = hashed.iter().map(Vec::len).sum::<usize>() / BATCH;
    println!("each event hashes {avg_hashed} bytes and is stored as a {}-byte line", {
        let mut l = Vec::new();
        ChainHead::EMPTY.clone().append(events[0].clone()).json_line_into(&mut l);
        l.len()
    });
    let dir =
        tempfile::tempdir_in(std::env::var("TOKENWARD_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();

    // ---- append in memory ----
    let mut g = c.benchmark_group("audit_append");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.sample_size(50).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("memory_1000", |b| {
        b.iter_batched(
            MemoryLog::new,
            |log| {
                black_box(log.append_now(black_box(&events)));
                log
            },
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function("floor_sha256_1000", |b| {
        b.iter(|| {
            for h in &hashed {
                black_box(Sha256::digest(black_box(h)));
            }
        })
    });

    // ---- append to a file, group commit: one write + one fdatasync per 1,000 ----
    let log = FileLog::open(dir.path().join("bench.jsonl")).unwrap();
    g.bench_function("file_group_commit_1000", |b| b.iter(|| log.append_now(black_box(&events)).unwrap()));
    let mut lines = Vec::new();
    {
        let mut h = ChainHead::EMPTY;
        for e in &events {
            h.append(e.clone()).json_line_into(&mut lines);
        }
    }
    let mut raw =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.path().join("raw.jsonl")).unwrap();
    g.bench_function("floor_write_fdatasync_1000", |b| {
        b.iter(|| {
            raw.write_all(black_box(&lines)).unwrap();
            raw.sync_data().unwrap();
        })
    });
    // The same through the batched writer: record 1,000 events, wait for the group commit.
    let writer_log = Arc::new(FileLog::open(dir.path().join("writer.jsonl")).unwrap());
    let writer =
        AuditWriter::start(writer_log, WriterConfig::group_commit(BATCH, Duration::from_millis(5))).unwrap();
    g.bench_function("writer_file_group_commit_1000", |b| {
        b.iter(|| {
            for e in &events {
                writer.record(e.clone()).unwrap();
            }
            writer.flush_blocking().unwrap();
        })
    });
    g.finish();
    drop(writer);

    // ---- verify ----
    let mut head = ChainHead::EMPTY;
    let chain: Vec<Entry> = (0..10 * BATCH).map(|i| head.append(event(i))).collect();
    let chain_hashed = hashed_bytes(&chain.iter().map(|e| e.event.clone()).collect::<Vec<_>>());
    let vfile = dir.path().join("verify.jsonl");
    {
        let l = FileLog::open_with(&vfile, FileSync::Os).unwrap();
        l.append_now(&chain.iter().map(|e| e.event.clone()).collect::<Vec<_>>()).unwrap();
    }
    let mut g = c.benchmark_group("audit_verify");
    g.throughput(Throughput::Elements(chain.len() as u64));
    g.sample_size(30).measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    g.bench_function("chain_10k", |b| b.iter(|| verify(ChainHead::EMPTY, black_box(&chain)).unwrap()));
    g.bench_function("floor_sha256_10k", |b| {
        b.iter(|| {
            for h in &chain_hashed {
                black_box(Sha256::digest(black_box(h)));
            }
        })
    });
    g.bench_function("file_parse_and_verify_10k", |b| {
        b.iter(|| verify_file(black_box(&vfile), &[]).unwrap())
    });
    g.finish();

    // ---- Merkle proofs over 1,000,000 entries ----
    let n_leaves: u64 = 1_000_000;
    let built = Instant::now();
    let mut tree = MerkleTree::new();
    for i in 0..n_leaves {
        let mut h = [0u8; 32];
        h[..8].copy_from_slice(&i.to_be_bytes());
        tree.push_leaf(leaf_hash(&ChainHash(h)));
    }
    println!("merkle: {} leaves appended in {:.0} ms", n_leaves, built.elapsed().as_secs_f64() * 1e3);
    let root = tree.root();
    let old = 999_983u64;
    let old_root = tree.root_at(old).unwrap();
    let mut g = c.benchmark_group("merkle_1m");
    g.sample_size(50).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    let mut k = 0u64;
    g.bench_function("inclusion_proof", |b| {
        b.iter(|| {
            k = (k + 7919) % n_leaves;
            black_box(tree.inclusion_proof(k, n_leaves).unwrap())
        })
    });
    let idx = 123_457u64;
    let proof = tree.inclusion_proof(idx, n_leaves).unwrap();
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&idx.to_be_bytes());
    let leaf = leaf_hash(&ChainHash(h));
    g.bench_function("verify_inclusion", |b| {
        b.iter(|| verify_inclusion(black_box(&leaf), idx, n_leaves, black_box(&proof), &root).unwrap())
    });
    g.bench_function("consistency_proof", |b| {
        b.iter(|| black_box(tree.consistency_proof(old, n_leaves).unwrap()))
    });
    let cproof = tree.consistency_proof(old, n_leaves).unwrap();
    g.bench_function("verify_consistency", |b| {
        b.iter(|| verify_consistency(old, n_leaves, &old_root, &root, black_box(&cproof)).unwrap())
    });
    // The floor: the proof's node hashes alone (one 65-byte SHA-256 each).
    let nodes = proof.len();
    g.bench_function("floor_node_hashes", |b| {
        b.iter(|| {
            let mut r = leaf;
            for p in black_box(&proof) {
                r = node_hash(&r, p);
            }
            black_box(r)
        })
    });
    g.finish();
    println!("merkle: inclusion proof {} hashes, consistency proof {} hashes", nodes, cproof.len());

    // ---- audited verification ----
    let policy = Policy::builder()
        .role(Role::parse("reader", "s3:bucket/prod-logs/**:read", TimeDelta::days(1)).unwrap())
        .build()
        .unwrap();
    let format = TokenFormat::new(TokenPrefix::new("acme_prod").unwrap());
    let keys = DigestKeyring::new(DigestKey::generate(1).unwrap());
    let issuer = Issuer::new(format.clone(), keys.clone(), policy);
    let principal = Principal::parse("billing-api", ["reader"]).unwrap();
    let req = IssueRequest::parse("p", "s3:bucket/prod-logs/*:read", TimeDelta::hours(12)).unwrap();
    let store = Arc::new(InMemoryLookup::new());
    let now = Utc::now();
    let mut sample = Vec::new();
    let n = tokens_n();
    for i in 0..n {
        let (t, r) = issuer.issue_at(&principal, &req, &[], now).unwrap();
        if i % (n / 4096).max(1) == 0 && sample.len() < 4096 {
            sample.push(t.expose_secret().to_owned());
        }
        store.insert(r);
    }
    let request = Request::parse("s3:bucket/prod-logs/app.log:read").unwrap();
    let clock: Arc<dyn Clock> = Arc::new(CachedClock::start().unwrap());
    let plain =
        Verifier::new(format.clone(), keys.clone(), Arc::clone(&store)).with_clock(Arc::clone(&clock));
    let audit_log = Arc::new(FileLog::open(dir.path().join("audited.jsonl")).unwrap());
    let writer = Arc::new(
        AuditWriter::start(
            audit_log,
            WriterConfig::group_commit(BATCH, Duration::from_millis(5))
                .queue_capacity(1 << 16)
                .full_queue_wait(Duration::from_secs(5)),
        )
        .unwrap(),
    );
    let audited = AuditedVerifier::new(
        Verifier::new(format.clone(), keys.clone(), Arc::clone(&store)).with_clock(Arc::clone(&clock)),
        Auditor::new(writer.clone(), FailureMode::FailClosed),
    );
    let cpu_writer = Arc::new(
        AuditWriter::start(
            Arc::new(ChainOnly::default()),
            WriterConfig::group_commit(BATCH, Duration::from_millis(5))
                .queue_capacity(1 << 16)
                .full_queue_wait(Duration::from_secs(5)),
        )
        .unwrap(),
    );
    let audited_cpu = AuditedVerifier::new(
        Verifier::new(format.clone(), keys.clone(), Arc::clone(&store)).with_clock(Arc::clone(&clock)),
        Auditor::new(cpu_writer.clone(), FailureMode::FailClosed),
    );
    // Summarized: denials are entries at once; allowed verifications counted per token, request
    // and source, recorded every second, into a group-committed file.
    let sum_log = Arc::new(FileLog::open(dir.path().join("summarized.jsonl")).unwrap());
    let sum_writer = Arc::new(AuditWriter::start(sum_log, WriterConfig::default()).unwrap());
    let sum_auditor = Auditor::new(sum_writer.clone(), FailureMode::FailClosed);
    let summary = VerificationSummary::start(sum_auditor.clone(), DEFAULT_SUMMARY_INTERVAL).unwrap();
    let audited_sum = AuditedVerifier::new(
        Verifier::new(format.clone(), keys.clone(), Arc::clone(&store)).with_clock(Arc::clone(&clock)),
        sum_auditor,
    )
    .summarized(summary.clone());
    let mut g = c.benchmark_group("audited_verify");
    g.throughput(Throughput::Elements(1));
    g.sample_size(50).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    let mut i = 0usize;
    g.bench_function("unaudited", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                i = (i + 1) % sample.len();
                assert!(plain.verify(black_box(&sample[i]), &request).is_allowed());
            }
            t.elapsed()
        })
    });
    // Every event chained and serialised by the writer thread (no device) before the clock stops.
    g.bench_function("audited_writer_cpu", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                i = (i + 1) % sample.len();
                assert!(audited_cpu.verify(black_box(&sample[i]), &request).is_allowed());
            }
            cpu_writer.flush_blocking().unwrap();
            t.elapsed()
        })
    });
    // Every event written and fsynced (group commit) before the clock stops.
    g.bench_function("audited_file_group_commit", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                i = (i + 1) % sample.len();
                assert!(audited.verify(black_box(&sample[i]), &request).is_allowed());
            }
            writer.flush_blocking().unwrap();
            t.elapsed()
        })
    });
    g.bench_function("audited_summarized", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            for _ in 0..iters {
                i = (i + 1) % sample.len();
                assert!(audited_sum.verify(black_box(&sample[i]), &request).is_allowed());
            }
            t.elapsed()
        })
    });
    g.finish();
    // The same two, paired: alternating batches, so both see the same machine (steadier than two
    // separate criterion runs on a shared machine).
    let mut k = 0usize;
    let mut j = 0usize;
    let (sum_ns, plain_ns, ratio) = support::paired_ratio(
        101,
        20_000,
        || {
            k = (k + 1) % sample.len();
            assert!(audited_sum.verify(black_box(&sample[k]), &request).is_allowed());
        },
        || {
            j = (j + 1) % sample.len();
            assert!(plain.verify(black_box(&sample[j]), &request).is_allowed());
        },
    );
    let paired = format!(
        "paired (101 alternated batches of 20,000): summarized {sum_ns:.1} ns vs unaudited {plain_ns:.1} ns, \
         median ratio {:.1}% of unaudited throughput",
        100.0 / ratio
    );
    summary.close().unwrap();
    sum_writer.flush_blocking().unwrap();
    let (committed, batches) = writer.stats();
    println!("audited verify: {committed} events in {batches} group commits");

    // Full load on a healthy file log with the default writer (fail-closed): a tight loop of
    // audited verifications for one second; a busy log must slow it down, never refuse.
    let busy_log = Arc::new(FileLog::open(dir.path().join("busy.jsonl")).unwrap());
    let busy_writer = Arc::new(AuditWriter::start(busy_log, WriterConfig::default()).unwrap());
    let busy = AuditedVerifier::new(
        Verifier::new(format.clone(), keys.clone(), Arc::clone(&store)).with_clock(Arc::clone(&clock)),
        Auditor::new(busy_writer.clone(), FailureMode::FailClosed),
    );
    let (mut calls, mut refused) = (0u64, 0u64);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) && calls < 50_000_000 {
        i = (i + 1) % sample.len();
        match busy.verify(black_box(&sample[i]), &request) {
            Decision::Allowed(_) => {}
            Decision::Denied(_) => refused += 1,
        }
        calls += 1;
    }
    let elapsed = started.elapsed();
    busy_writer.flush_blocking().unwrap();
    let (bc, bb) = busy_writer.stats();
    println!(
        "full load, default writer, healthy file log: {calls} audited verifications in {:.2} s, {refused} refused \
         (target 0); {bc} entries in {bb} group commits",
        elapsed.as_secs_f64()
    );
    println!("summarized, {paired}");
}

fn report() {
    let m = |g: &str, id: &str| support::median_ns(g, id);
    println!("\n==== audit: medians of this run ====");
    if let (Some(ip), Some(iv), Some(cp), Some(cv), Some(floor)) = (
        m("merkle_1m", "inclusion_proof"),
        m("merkle_1m", "verify_inclusion"),
        m("merkle_1m", "consistency_proof"),
        m("merkle_1m", "verify_consistency"),
        m("merkle_1m", "floor_node_hashes"),
    ) {
        println!(
            "merkle, 1M entries: inclusion proof {ip:.0} ns, verify {iv:.0} ns (floor, its node hashes alone: {floor:.0} ns = \
             {:.0}%); consistency proof {cp:.0} ns, verify {cv:.0} ns",
            100.0 * floor / iv
        );
    }
    if let (Some(ours), Some(floor)) =
        (m("audit_append", "memory_1000"), m("audit_append", "floor_sha256_1000"))
    {
        println!(
            "append in memory: {:.0} entries/s (target ≥ 2,000,000); raw SHA-256 of the same bytes: {:.0}/s; ours = {:.0}% of the floor",
            1e9 * BATCH as f64 / ours,
            1e9 * BATCH as f64 / floor,
            100.0 * floor / ours
        );
    }
    if let (Some(ours), Some(floor)) =
        (m("audit_append", "file_group_commit_1000"), m("audit_append", "floor_write_fdatasync_1000"))
    {
        println!(
            "file, group commit per 1,000: {:.0} entries/s vs raw write+fdatasync {:.0}/s: {:.0}% of the floor (target ≥ 80%)",
            1e9 * BATCH as f64 / ours,
            1e9 * BATCH as f64 / floor,
            100.0 * floor / ours
        );
    }
    if let Some(w) = m("audit_append", "writer_file_group_commit_1000") {
        println!(
            "  through the batched writer (record ×1,000 + flush): {:.0} entries/s",
            1e9 * BATCH as f64 / w
        );
    }
    if let (Some(ours), Some(floor), Some(file)) = (
        m("audit_verify", "chain_10k"),
        m("audit_verify", "floor_sha256_10k"),
        m("audit_verify", "file_parse_and_verify_10k"),
    ) {
        println!(
            "verify: {:.0} entries/s vs raw SHA-256 {:.0}/s: {:.0}% (target ≥ 50%); from the file (parse + verify): {:.0} entries/s",
            1e13 / ours,
            1e13 / floor,
            100.0 * floor / ours,
            1e13 / file
        );
    }
    if let (Some(plain), Some(cpu), Some(file)) = (
        m("audited_verify", "unaudited"),
        m("audited_verify", "audited_writer_cpu"),
        m("audited_verify", "audited_file_group_commit"),
    ) {
        println!(
            "verify unaudited {plain:.1} ns; audited, event chained by the batched writer {cpu:.1} ns: \
             {:.0}% of unaudited throughput (target ≥ 35%); audited into a group-committed file {file:.1} ns: {:.0}%",
            100.0 * plain / cpu,
            100.0 * plain / file
        );
    }
    if let (Some(plain), Some(sum)) =
        (m("audited_verify", "unaudited"), m("audited_verify", "audited_summarized"))
    {
        println!(
            "verify audited, summarized (allowed counted, recorded every 1 s into a file) {sum:.1} ns: \
             {:.0}% of unaudited throughput (target ≥ 90%)",
            100.0 * plain / sum
        );
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    criterion::Criterion::default().configure_from_args().final_summary();
    report();
}
