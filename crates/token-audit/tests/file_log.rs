//! The file log: continuity across reopen, torn tails, one writer, byte-level tampering,
//! queries, the exporter, and the hand-written JSON against serde's.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use token_audit::chains::{ChainHead, Entry, GENESIS, parse_entry, verify};
use token_audit::file::{FileSync, LogReader};
use token_audit::*;
use token_core::TokenId;
use token_core::chrono::{DateTime, TimeDelta, Utc};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T06:00:00.000Z").unwrap().with_timezone(&Utc)
}

fn event(i: u64) -> AuditEvent {
    let action = match i % 4 {
        0 => Action::Issue,
        1 => Action::VerifyAllowed,
        2 => Action::VerifyDenied("expired".into()),
        _ => Action::Revoke,
    };
    let mut e = AuditEvent::new(
        t0() + TimeDelta::seconds(i as i64),
        Actor::Principal(format!("svc-{}", i % 3)),
        action,
    )
    .token(TokenId::from_u128(u128::from(i % 5) + 1).unwrap())
    .attr("n", i.to_string());
    if i % 4 == 2 {
        e = e.outcome(Outcome::Failure("token expired at \"then\"\n".into())).source("10.0.0.1");
    }
    e
}

#[test]
fn appends_survive_reopen_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    {
        let log = FileLog::open(&path).unwrap();
        let events: Vec<_> = (0..10).map(event).collect();
        assert_eq!(log.append_now(&events).unwrap().len, 10);
    }
    let log = FileLog::open(&path).unwrap();
    assert_eq!(log.torn_bytes_cut(), 0);
    assert_eq!(log.head_now().len, 10);
    let events: Vec<_> = (10..25).map(event).collect();
    let head = log.append_now(&events).unwrap();
    assert_eq!(head.len, 25);
    assert_eq!(log.verify(&[head]).unwrap(), head);
    let entries: Vec<Entry> = log.reader().unwrap().map(Result::unwrap).collect();
    assert_eq!(entries.len(), 25);
    assert_eq!(entries[12].event, event(12));
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let _first = FileLog::open(&path).unwrap();
    assert!(matches!(FileLog::open(&path), Err(AuditError::Locked(_))));
}

#[test]
fn a_torn_tail_is_cut_and_appending_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let head = {
        let log = FileLog::open(&path).unwrap();
        log.append_now(&(0..5).map(event).collect::<Vec<_>>()).unwrap()
    };
    let good = std::fs::read(&path).unwrap();
    // A half-written sixth line, as a crash mid-write leaves it.
    let mut line = Vec::new();
    let mut h = head;
    line.extend_from_slice(&{
        let e = h.append(event(5));
        let mut b = Vec::new();
        e.json_line_into(&mut b);
        b
    });
    for cut in [1, line.len() / 2, line.len() - 1] {
        std::fs::write(&path, [&good[..], &line[..cut]].concat()).unwrap();
        assert!(verify_file(&path, &[]).is_err(), "a reader reports the torn line");
        let log = FileLog::open(&path).unwrap();
        assert_eq!(log.torn_bytes_cut(), cut as u64);
        assert_eq!(log.head_now(), head);
        drop(log);
        assert_eq!(std::fs::read(&path).unwrap(), good);
    }
    let log = FileLog::open(&path).unwrap();
    log.append_now(&[event(5)]).unwrap();
    assert_eq!(log.verify(&[]).unwrap().len, 6);
}

#[test]
fn an_edited_last_line_is_not_cut_but_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    FileLog::open(&path).unwrap().append_now(&(0..3).map(event).collect::<Vec<_>>()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap().replace("\"n\":\"2\"", "\"n\":\"7\"");
    std::fs::write(&path, &text).unwrap();
    assert!(matches!(FileLog::open(&path), Err(AuditError::Corrupt { .. })));
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "nothing was cut");
}

/// Every single-byte change of a stored log (each byte replaced by three different values) is
/// detected by verification, and the error names an entry at or before the changed line.
#[test]
fn every_single_byte_change_of_the_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let head = FileLog::open(&path).unwrap().append_now(&(0..24).map(event).collect::<Vec<_>>()).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("b.jsonl");
    let mut tried = 0;
    for i in 0..good.len() {
        for delta in [1u8, 0x20, 0x80] {
            let mut b = good.clone();
            b[i] ^= delta;
            std::fs::write(&bad, &b).unwrap();
            assert!(verify_file(&bad, &[head]).is_err(), "a change of byte {i} (^{delta:#x}) went unnoticed");
            tried += 1;
        }
    }
    eprintln!("{tried} single-byte changes of a {}-byte log: all detected", good.len());
}

#[tokio::test]
async fn queries_answer_what_a_token_did() {
    let dir = tempfile::tempdir().unwrap();
    let log = FileLog::open(dir.path().join("a.jsonl")).unwrap();
    log.append_now(&(0..40).map(event).collect::<Vec<_>>()).unwrap();
    let memory = MemoryLog::new();
    memory.append_now(&(0..40).map(event).collect::<Vec<_>>());
    let id = TokenId::from_u128(3).unwrap();
    for storage in [&log as &dyn LogStorage, &memory] {
        let by_token = storage.query(&AuditQuery::new().token(id)).await.unwrap();
        assert_eq!(
            by_token.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (0..40).filter(|i| i % 5 == 2).collect::<Vec<_>>()
        );
        let denied = storage.query(&AuditQuery::new().action("verify_denied")).await.unwrap();
        assert_eq!(denied.len(), 10);
        let by_actor = storage
            .query(
                &AuditQuery::new()
                    .actor(Actor::Principal("svc-1".into()))
                    .between(t0(), t0() + TimeDelta::seconds(20)),
            )
            .await
            .unwrap();
        assert_eq!(by_actor.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 4, 7, 10, 13, 16, 19]);
        assert_eq!(storage.query(&AuditQuery::new().limit(3)).await.unwrap().len(), 3);
    }
}

#[tokio::test]
async fn the_exporter_streams_the_files_exact_lines_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.jsonl");
    let log = FileLog::open(&path).unwrap();
    log.append_now(&(0..10).map(event).collect::<Vec<_>>()).unwrap();
    let mut exporter = JsonlExporter::new();
    let mut out = Vec::new();
    assert_eq!(exporter.export_new(&log, &mut out).await.unwrap(), 10);
    assert_eq!(exporter.export_new(&log, &mut out).await.unwrap(), 0);
    log.append_now(&(10..15).map(event).collect::<Vec<_>>()).unwrap();
    let mut resumed = JsonlExporter::resume(exporter.position());
    assert_eq!(resumed.export_new(&log, &mut out).await.unwrap(), 5);
    assert_eq!(out, std::fs::read(&path).unwrap());
    // A log rewritten behind the exporter's back is reported, not forwarded.
    let other = MemoryLog::new();
    other.append_now(&(100..116).map(event).collect::<Vec<_>>());
    let mut sink = std::io::sink();
    assert!(matches!(resumed.export_new(&other, &mut sink).await, Err(AuditError::Chain(_))));
}

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[ -~]{0,20}", "[\\x00-\\x1f\"\\\\é€😀]{0,12}"]
}

fn arb_event() -> impl Strategy<Value = AuditEvent> {
    (
        any::<i32>(),
        0..4u8,
        arb_string(),
        0..8u8,
        arb_string(),
        proptest::option::of(0u128..1_000_000),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_string()),
        proptest::collection::btree_map(arb_string(), arb_string(), 0..4),
    )
        .prop_map(|(secs, a, name, act, detail, token, hmac, failure, source, attrs)| {
            let actor = match a {
                0 => Actor::Principal(name),
                1 => Actor::Operator(name),
                2 => Actor::System,
                _ => Actor::Anonymous,
            };
            let action = match act {
                0 => Action::Issue,
                1 => Action::VerifyAllowed,
                2 => Action::VerifyDenied(detail),
                3 => Action::Rotate(detail),
                4 => Action::Revoke,
                5 => Action::KeyRotation,
                6 => Action::ScanFinding,
                _ => Action::PolicyChange,
            };
            let time = DateTime::from_timestamp_millis(i64::from(secs) * 1000 + 7).unwrap();
            let mut e = AuditEvent::new(time, actor, action);
            e.token = token.and_then(TokenId::from_u128);
            e.subject_hmac = hmac;
            e.outcome = failure.map_or(Outcome::Success, Outcome::Failure);
            e.source = source;
            e.attrs = attrs;
            e
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The hand-written stored form is serde_json's, byte for byte, and parses back strictly.
    #[test]
    fn stored_lines_are_serde_json_and_round_trip(event in arb_event(), seq in any::<u32>()) {
        let mut head = ChainHead { len: u64::from(seq), head: GENESIS };
        let entry = head.append(event);
        let mut line = Vec::new();
        entry.json_line_into(&mut line);
        let mut serde_line = serde_json::to_vec(&entry).unwrap();
        serde_line.push(b'\n');
        prop_assert_eq!(&line, &serde_line);
        prop_assert_eq!(parse_entry(&line).unwrap(), entry);
    }

    /// The stored-entry parser never panics, and whatever it accepts it would write identically.
    #[test]
    fn the_entry_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(e) = parse_entry(&bytes) {
            let mut again = Vec::new();
            e.json_line_into(&mut again);
            prop_assert_eq!(again.strip_suffix(b"\n"), Some(bytes.strip_suffix(b"\n").unwrap_or(&bytes)));
        }
    }

    /// Near-miss lines (one byte of a real line changed) are either refused or mean something else.
    #[test]
    fn near_miss_lines_are_refused(event in arb_event(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let entry = ChainHead::default().append(event);
        let mut line = Vec::new();
        entry.json_line_into(&mut line);
        let i = pos.index(line.len() - 1);
        prop_assume!(line[i] != byte);
        line[i] = byte;
        if let Ok(e) = parse_entry(&line) {
            prop_assert!(e != entry);
            prop_assert!(verify(ChainHead::EMPTY, [&e]).is_err());
        }
    }
}

/// Not a test on its own: the writer process `shared_writers_in_several_processes_keep_one_chain`
/// starts (and kills with SIGKILL mid-batch). Without `TW_SHARED_LOG_CHILD` it returns at once.
#[test]
fn shared_writer_child_process() {
    let Ok(path) = std::env::var("TW_SHARED_LOG_CHILD") else { return };
    let log = FileLog::open_shared(&path, FileSync::Data).unwrap();
    for i in 0..100_000u64 {
        log.append_now(&[event(i), event(i + 1), event(i + 2)]).unwrap();
    }
}

#[test]
fn shared_writers_in_several_processes_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.jsonl");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args(["--exact", "shared_writer_child_process", "--nocapture", "--test-threads=1"])
                .env("TW_SHARED_LOG_CHILD", &path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    // The default patience (10 s) while the children hold the lock for their fsyncs: a loaded
    // machine can keep it busy for well over 300 ms.
    let log = FileLog::open_shared(&path, FileSync::Data).unwrap();
    // Interleave with the children for a while (bounded), then kill them mid-write.
    let mut mine = 0;
    let until = std::time::Instant::now() + std::time::Duration::from_millis(1500);
    while std::time::Instant::now() < until && mine < 400 {
        log.append_now(&[event(mine)]).unwrap();
        mine += 1;
    }
    for mut c in children {
        let _ = c.kill(); // SIGKILL
        let _ = c.wait();
    }
    // A torn tail from a killed writer (simulated as well, in case none was torn): cut by the
    // next batch, which chains on from the last complete entry.
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":").unwrap();
    }
    let head = log.append_now(&[event(9_999).attr("marker", "the parent's last batch")]).unwrap();
    let verified = verify_file(&path, &[]).unwrap();
    assert_eq!(verified, head, "one chain, ending at the last batch");
    let entries: Vec<Entry> = LogReader::open(&path).unwrap().map(Result::unwrap).collect();
    let ours = entries.iter().filter(|e| e.event.attrs.contains_key("marker")).count();
    assert_eq!(ours, 1);
    assert!(verified.len > mine, "the children appended too ({} entries, {mine} ours)", verified.len);
    // While an exclusive writer holds the file, a shared one gives up after its patience (a short
    // one here)… and appends again once it is gone.
    let impatient =
        FileLog::open_shared(&path, FileSync::Data).unwrap().lock_wait(std::time::Duration::from_millis(300));
    let exclusive = FileLog::open(&path).unwrap();
    assert!(matches!(impatient.append_now(&[event(1)]), Err(AuditError::Locked(_))));
    drop(exclusive);
    log.append_now(&[event(2)]).unwrap();
    verify_file(&path, &[]).unwrap();
}
