//! Fixtures shared by the root crate's integration tests: one deployment on the embedded store in
//! a directory, a principal holding role `r` (`kv:app/**:read`, 2 h), requests for it.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use tokenward::core::chrono::TimeDelta;
use tokenward::core::{IssueRequest, Policy, Principal, Request, Role};
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward, TokenwardBuilder, Upkeep};

pub(crate) const PASSPHRASE: &str = "front door test passphrase";

pub(crate) fn policy() -> Policy {
    Policy::builder().role(Role::parse("r", "kv:app/**:read", TimeDelta::hours(2)).unwrap()).build().unwrap()
}

/// The deployment in `dir` (prefix `fd`, fail-closed audit file, 100 ms overlap, a quick sweep),
/// with the passphrase's Argon2id at `kdf` costs (`None`: OWASP's).
pub(crate) fn builder_with(dir: &Path, kdf: Option<tokenward::store::keys::KdfParams>) -> TokenwardBuilder {
    let pass = SecretString::from(PASSPHRASE);
    let b = Tokenward::embedded(dir.join("tw.db"));
    let b = match kdf {
        Some(p) => b.passphrase_with(pass, p),
        None => b.passphrase(pass),
    };
    b.prefix("fd")
        .policy(policy())
        .audit_file(dir.join("audit.jsonl"), FailureMode::FailClosed)
        .overlap(TimeDelta::milliseconds(100))
        .upkeep(Upkeep::new().sweep_every(Duration::from_millis(10)))
}

pub(crate) fn builder(dir: &Path) -> TokenwardBuilder {
    builder_with(dir, None)
}

pub(crate) fn principal() -> Principal {
    Principal::parse("billing", ["r"]).unwrap()
}

pub(crate) fn request(purpose: &str) -> IssueRequest {
    IssueRequest::parse(purpose, "kv:app/x:read", TimeDelta::hours(1)).unwrap()
}

pub(crate) fn read() -> Request {
    Request::parse("kv:app/x:read").unwrap()
}

pub(crate) fn db(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("tw.db")).unwrap()
}
