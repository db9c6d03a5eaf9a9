//! `audit verify|show|export|checkpoint`: the hash-chained log, read without the store's key
//! except where a signature is made or checked.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;

use tokenward::Tokenward;
use tokenward::audit::chains::{ChainHead, ChainVerifier};
use tokenward::audit::checkpoints::CheckpointKey;
use tokenward::audit::{
    AuditQuery, CheckpointSigner, chains::Entry, checkpoints::SignedCheckpoint, file::LogReader,
    merkle::MerkleTree, merkle::TreeHead, merkle::leaf_hash, merkle::verify_consistency,
    merkle::verify_inclusion,
};
use tokenward::core::chrono::Utc;
use tokenward::core::private_fs;
use tokenward::secrecy::{ExposeSecret, SecretBox};
use tokenward::store::SecretName;

use crate::cli::{AuditCmd, Global};
use crate::cmd::tokens::token_id;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

/// The name checkpoints of this log carry.
pub(crate) const LOG_NAME: &str = tokenward::AUDIT_LOG_NAME;
const SIGNER_SECRET: &str = tokenward::AUDIT_SIGNER_SECRET;
const SIGNER_KEY_META: &str = tokenward::AUDIT_SIGNER_KEY_META;

/// The store's checkpoint signer, made (and its public key recorded) on first use.
pub(crate) async fn signer(tw: &Tokenward) -> Result<CheckpointSigner> {
    let name = SecretName::new(SIGNER_SECRET)?;
    let signer = match tw.read_current(&name).await? {
        Some(seed) => {
            let bytes: [u8; 32] = seed
                .expose_secret()
                .as_slice()
                .try_into()
                .map_err(|_| CliError::new(format!("{SIGNER_SECRET} is not a 32-byte seed")))?;
            CheckpointSigner::from_seed(&SecretBox::new(Box::new(bytes)))
        }
        None => {
            let signer = CheckpointSigner::generate()
                .map_err(|e| CliError::new(format!("making the checkpoint signer: {e}")))?;
            tw.seal_current(&name, signer.to_seed().expose_secret()).await?;
            signer
        }
    };
    let key = signer.public_key().to_string();
    match tw.secrets().sealed_meta(SIGNER_KEY_META).await? {
        Some((stored, _)) if stored == key.as_bytes() => {}
        Some(_) => return Err(CliError::new("the stored checkpoint key does not match the signer")),
        None => {
            tw.secrets().set_sealed_meta(SIGNER_KEY_META, None, key.as_bytes()).await?;
        }
    }
    Ok(signer)
}

/// The public key this store's checkpoints are signed with.
async fn trusted_key(tw: &Tokenward) -> Result<CheckpointKey> {
    let (bytes, _) = tw.secrets().sealed_meta(SIGNER_KEY_META).await?.ok_or_else(|| {
        CliError::new("this store has signed no checkpoint yet (`tokenward audit checkpoint`)")
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| CliError::new("the stored checkpoint key is not text"))?;
    CheckpointKey::try_from(text).map_err(|e| CliError::new(format!("the stored checkpoint key: {e}")))
}

/// The audit log's entries in order: the file's, read strictly line by line, or (with
/// `--database-url`) the PostgreSQL log's, read in pages.
pub(crate) enum Entries {
    File(LogReader),
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    Pages(std::vec::IntoIter<Entry>),
}

impl Iterator for Entries {
    type Item = Result<Entry, tokenward::audit::AuditError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::File(r) => r.next(),
            Entries::Pages(p) => p.next().map(Ok),
        }
    }
}

pub(crate) async fn entries(g: &Global) -> Result<Entries> {
    #[cfg(feature = "postgres")]
    if let Some(url) = &g.database_url {
        use tokenward::audit::LogStorage as _;
        let log = tokenward::audit::PostgresLog::connect(url, 2).await?;
        let len = log.head().await?.len;
        let mut all = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        while (all.len() as u64) < len {
            let page = log.read(all.len() as u64, 10_000).await?;
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        return Ok(Entries::Pages(all.into_iter()));
    }
    let path = g.audit_path();
    if !path.exists() {
        return Err(CliError::new(format!("no audit log at {}", path.display())));
    }
    Ok(Entries::File(LogReader::open(&path)?))
}

fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let text = std::fs::read_to_string(path).map_err(CliError::read(path))?;
    serde_json::from_str(&text).map_err(|e| CliError::new(format!("checkpoint {}: {e}", path.display())))
}

/// One entry as a line of text: when, who, what, which token, how it ended, its attributes.
fn entry_line(e: &Entry) -> String {
    let ev = &e.event;
    let action = match ev.action.detail() {
        Some(d) => format!("{}({d})", ev.action.name()),
        None => ev.action.name().to_owned(),
    };
    let actor = match &ev.actor {
        tokenward::audit::Actor::Principal(p) => format!("principal:{p}"),
        tokenward::audit::Actor::Operator(o) => format!("operator:{o}"),
        tokenward::audit::Actor::System => "system".into(),
        tokenward::audit::Actor::Anonymous => "anonymous".into(),
        other => format!("{other:?}"),
    };
    let outcome = match &ev.outcome {
        tokenward::audit::Outcome::Success => "ok".to_owned(),
        tokenward::audit::Outcome::Failure(r) => format!("failed: {r}"),
    };
    let attrs: Vec<String> = ev.attrs.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!(
        "{:>6}  {}  {actor}  {action}  {}  {outcome}{}{}",
        e.seq,
        out::time(ev.time),
        ev.token.map(|t| t.to_string()).unwrap_or_else(|| "-".into()),
        ev.source.as_deref().map(|s| format!("  from {s}")).unwrap_or_default(),
        if attrs.is_empty() { String::new() } else { format!("  {}", attrs.join(" ")) }
    )
}

pub(crate) async fn run(g: &Global, c: AuditCmd) -> Result<u8> {
    match c {
        AuditCmd::Verify { checkpoint, log_only, output } => {
            let mut heads: Vec<ChainHead> = Vec::new();
            if !log_only {
                // The store's binding and the witness: a read-only open checks both (exit 1 here,
                // where they are the answer to the question asked).
                let tw = open::open(g, Need::ReadOnly).await.map_err(CliError::denied_if_log_mismatch)?;
                let key = match &checkpoint {
                    Some(_) => Some(trusted_key(&tw).await),
                    None => None,
                };
                tw.shutdown().await?;
                if let (Some(path), Some(key)) = (&checkpoint, key) {
                    let signed = read_checkpoint(path)?;
                    let c = key?
                        .verify_for(&signed, LOG_NAME)
                        .map_err(|e| CliError::denied(format!("checkpoint {}: {e}", path.display())))?;
                    heads.push(c.chain_head());
                }
            }
            let mut v = ChainVerifier::new(ChainHead::EMPTY).with_checkpoints(heads.iter().copied());
            for e in entries(g).await? {
                let e = e.map_err(|e| CliError::denied(format!("audit log: {e}")))?;
                v.push(&e).map_err(|e| CliError::denied(format!("audit log: {e}")))?;
            }
            let head = v.finish().map_err(|e| CliError::denied(format!("audit log: {e}")))?;
            if output.json() {
                println!(
                    "{}",
                    serde_json::json!({
                        "verified": true,
                        "entries": head.len,
                        "head": head.head.to_string(),
                        "bound_to_store": (!log_only).then_some(true),
                        "witness": if log_only { None } else { g.witness.as_deref() },
                        "checkpoint_entries": heads.first().map(|h| h.len),
                    })
                );
                return Ok(0);
            }
            println!("audit log verified: {} entries, head {}", head.len, head.head);
            if !log_only {
                println!("it is the log the store is bound to");
                if let Some(w) = &g.witness {
                    println!("consistent with the newest head the witness ({w}) holds");
                }
            }
            if let Some(h) = heads.first() {
                println!("the signed checkpoint of {} entries holds: the log still contains it", h.len);
            }
            Ok(0)
        }
        AuditCmd::Witness { output } => {
            if g.witness.is_none() {
                return Err(CliError::new(
                    "no witness: give --witness dir:PATH or s3://BUCKET/PREFIX/ (or TOKENWARD_WITNESS)",
                ));
            }
            let tw = open::open(g, Need::Audited).await?;
            let pushed = tw.witness_now().await;
            let location = tw.witness_location().unwrap_or_default();
            tw.shutdown().await?;
            let head = pushed?.ok_or_else(|| CliError::new("no audit log attached"))?;
            if output.json() {
                println!(
                    "{}",
                    serde_json::json!({"entries": head.len, "head": head.head.to_string(), "witness": location})
                );
                return Ok(0);
            }
            eprintln!(
                "bound the store to the log's {} entries and pushed its signed tree head to {location}",
                head.len
            );
            Ok(0)
        }
        AuditCmd::Rebind { reason, old_log, output } => {
            if reason.trim().is_empty() {
                return Err(CliError::new("--reason: say why a new log is started"));
            }
            if let Some(old) = &old_log
                && std::fs::canonicalize(old).ok() == std::fs::canonicalize(g.audit_path()).ok()
            {
                return Err(CliError::new("--old-log is the log being bound: move the old one away first"));
            }
            let b = open::builder(g, false)?.new_audit_log(reason.clone());
            let tw = open::open_with(g, Need::Audited, b).await?;
            let head = tw.audit_writer().map(|w| w.head());
            let actor = tw.actor().clone();
            let now = tw.clock().now();
            tw.shutdown().await?;
            let head = head.ok_or_else(|| CliError::new("no audit log attached"))?;
            if let Some(old) = &old_log {
                use tokenward::audit::{Action, AuditEvent, FileLog, file::FileSync};
                let log = FileLog::open_shared(old, FileSync::Data)?;
                let event = AuditEvent::new(now, actor, Action::Store("new-log".into()))
                    .attr("reason", reason.as_str())
                    .attr("continued_in", g.audit_path().display().to_string())
                    .attr("new_log_entries", head.len.to_string())
                    .attr("new_log_head", head.head.to_string());
                log.append_now(&[event])?;
                if !output.json() {
                    eprintln!("recorded the new log in {}", old.display());
                }
            }
            if output.json() {
                println!(
                    "{}",
                    serde_json::json!({
                        "audit_log": g.audit_path().display().to_string(),
                        "entries": head.len,
                        "head": head.head.to_string(),
                        "old_log": old_log.as_ref().map(|p| p.display().to_string()),
                    })
                );
                return Ok(0);
            }
            eprintln!(
                "the store is bound to a new audit log, {} ({} entries, head {}); the reason is recorded in it",
                g.audit_path().display(),
                head.len,
                head.head
            );
            Ok(0)
        }
        AuditCmd::Show { token, since, action, limit, output } => {
            let mut q = AuditQuery::new();
            if let Some(t) = &token {
                q = q.token(token_id(t)?);
            }
            if let Some(a) = &action {
                q = q.action(a.clone());
            }
            if let Some(s) = &since {
                let now = Utc::now();
                q = q.between(out::since(s, now)?, now + tokenward::core::chrono::TimeDelta::days(36_500));
            }
            let mut kept: VecDeque<Entry> = VecDeque::new();
            for e in entries(g).await? {
                let e = e?;
                if q.matches(&e) {
                    kept.push_back(e);
                    if limit.is_some_and(|l| kept.len() > l) {
                        kept.pop_front();
                    }
                }
            }
            let mut stdout = crate::out::Stdout;
            for e in &kept {
                let line = if output.json() { serde_json::to_string(e)? } else { entry_line(e) };
                writeln!(stdout, "{line}").map_err(CliError::output(None))?;
            }
            Ok(0)
        }
        AuditCmd::Export { out: dest } => {
            // Every entry, checked link by link as it goes out: an export is of a verified log.
            let mut v = ChainVerifier::new(ChainHead::EMPTY);
            let mut sink: Box<dyn Write> = match &dest {
                Some(p) => {
                    Box::new(std::io::BufWriter::new(private_fs::create(p).map_err(CliError::create(p))?))
                }
                None => Box::new(std::io::BufWriter::new(crate::out::Stdout)),
            };
            let mut line = Vec::with_capacity(512);
            for e in entries(g).await? {
                let e = e?;
                v.push(&e).map_err(|e| CliError::new(format!("audit log: {e}; export stopped")))?;
                line.clear();
                e.json_line_into(&mut line);
                sink.write_all(&line).map_err(CliError::output(dest.as_deref()))?;
            }
            sink.flush().map_err(CliError::output(dest.as_deref()))?;
            let head = v.finish().map_err(|e| CliError::new(format!("audit log: {e}")))?;
            eprintln!("exported {} verified entries, head {}", head.len, head.head);
            Ok(0)
        }
        AuditCmd::TreeHead { out: dest } => {
            let tw = open::open(g, Need::Audited).await?;
            let made = async {
                let signer = signer(&tw).await?;
                let writer = tw.audit_writer().ok_or_else(|| CliError::new("no audit log attached"))?;
                writer.flush().await?;
                let tree = MerkleTree::from_storage(writer.storage().as_ref()).await?;
                let head = TreeHead { origin: LOG_NAME.to_owned(), size: tree.size(), root: tree.root() };
                head.sign(&signer, LOG_NAME).map_err(|e| CliError::new(e.to_string()))
            }
            .await;
            tw.shutdown().await?;
            let note = made?;
            match &dest {
                Some(p) => {
                    private_fs::write(p, &note).map_err(CliError::write(p))?;
                    eprintln!(
                        "signed a tree head of {} entries to {}",
                        note.lines().nth(1).unwrap_or("?"),
                        p.display()
                    );
                }
                None => print!("{note}"),
            }
            Ok(0)
        }
        AuditCmd::Prove { seq, from, size } => {
            let mut tree = MerkleTree::new();
            let mut hashes = Vec::new();
            for e in entries(g).await? {
                let e = e.map_err(|e| CliError::denied(format!("audit log: {e}")))?;
                tree.push_entry(&e);
                hashes.push(e.hash);
            }
            let size = size.unwrap_or(tree.size());
            let hex = |h: &[u8; 32]| tokenward::core::hex::encode(h);
            let proof_err = |e: tokenward::audit::merkle::ProofError| CliError::new(e.to_string());
            let v = match (seq, from) {
                (Some(seq), _) => {
                    let proof = tree.inclusion_proof(seq, size).map_err(proof_err)?;
                    let entry = hashes[seq as usize];
                    serde_json::json!({
                        "kind": "inclusion", "seq": seq, "size": size,
                        "entry_hash": entry.to_string(), "leaf": hex(&leaf_hash(&entry)),
                        "root": hex(&tree.root_at(size).map_err(proof_err)?),
                        "proof": proof.iter().map(hex).collect::<Vec<_>>(),
                    })
                }
                (None, Some(old)) => {
                    let proof = tree.consistency_proof(old, size).map_err(proof_err)?;
                    serde_json::json!({
                        "kind": "consistency", "old": old, "size": size,
                        "old_root": hex(&tree.root_at(old).map_err(proof_err)?),
                        "root": hex(&tree.root_at(size).map_err(proof_err)?),
                        "proof": proof.iter().map(hex).collect::<Vec<_>>(),
                    })
                }
                (None, None) => return Err(CliError::new("give SEQ or --from M")),
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        AuditCmd::CheckProof { proof, tree_head, old_tree_head, key, output } => {
            let key = match key {
                Some(k) => CheckpointKey::try_from(k).map_err(|e| CliError::new(format!("--key: {e}")))?,
                None => {
                    let tw = open::open(g, Need::ReadOnly).await?;
                    let k = trusted_key(&tw).await;
                    tw.shutdown().await?;
                    k?
                }
            };
            let read = |p: &Path| {
                let meta = std::fs::metadata(p).map_err(CliError::read(p))?;
                if meta.len() > 1 << 20 {
                    return Err(CliError::new(format!("{}: larger than 1 MiB", p.display())));
                }
                std::fs::read_to_string(p).map_err(CliError::read(p))
            };
            let head_of = |p: &Path| {
                TreeHead::verify_note(&read(p)?, LOG_NAME, &key, Some(LOG_NAME))
                    .map_err(|e| CliError::denied(format!("{}: {e}", p.display())))
            };
            let head = head_of(&tree_head)?;
            let v: serde_json::Value = serde_json::from_str(&read(&proof)?)
                .map_err(|e| CliError::new(format!("{}: not JSON: {e}", proof.display())))?;
            let bad = |what: &str| CliError::new(format!("{}: {what}", proof.display()));
            let h32 = |v: &serde_json::Value| -> Result<[u8; 32]> {
                let s = v.as_str().ok_or_else(|| bad("a hash is not a string"))?;
                tokenward::audit::chains::ChainHash::try_from(s.to_owned())
                    .map(|h| h.0)
                    .map_err(|_| bad("a hash is not 64 hex"))
            };
            let hashes: Vec<[u8; 32]> = v["proof"]
                .as_array()
                .ok_or_else(|| bad("no proof"))?
                .iter()
                .map(h32)
                .collect::<Result<_>>()?;
            let n = |k: &str| v[k].as_u64().ok_or_else(|| bad(&format!("no {k}")));
            if n("size")? != head.size {
                return Err(CliError::denied(format!(
                    "the proof is for size {}, the tree head for {}",
                    n("size")?,
                    head.size
                )));
            }
            let outcome = match v["kind"].as_str() {
                Some("inclusion") => {
                    let leaf = leaf_hash(&tokenward::audit::chains::ChainHash(h32(&v["entry_hash"])?));
                    verify_inclusion(&leaf, n("seq")?, head.size, &hashes, &head.root).map(|()| {
                        format!(
                            "entry {} ({}) is in the log of {} entries",
                            n("seq").unwrap_or(0),
                            v["entry_hash"].as_str().unwrap_or(""),
                            head.size
                        )
                    })
                }
                Some("consistency") => {
                    let old_path = old_tree_head
                        .as_deref()
                        .ok_or_else(|| CliError::new("a consistency proof needs --old-tree-head"))?;
                    let old = head_of(old_path)?;
                    if old.size != n("old")? {
                        return Err(CliError::denied(format!(
                            "the proof is from size {}, the old tree head is of {}",
                            n("old")?,
                            old.size
                        )));
                    }
                    verify_consistency(old.size, head.size, &old.root, &head.root, &hashes).map(|()| {
                        format!("the log of {} entries is a prefix of the log of {}", old.size, head.size)
                    })
                }
                _ => return Err(bad("kind is neither inclusion nor consistency")),
            };
            match outcome {
                Ok(msg) if output.json() => {
                    println!(
                        "{}",
                        serde_json::json!({"holds": true, "kind": v["kind"], "size": head.size, "detail": msg})
                    );
                    Ok(0)
                }
                Ok(msg) => {
                    println!("proof holds: {msg}");
                    Ok(0)
                }
                Err(e) => Err(CliError::denied(format!("proof does not hold: {e}"))),
            }
        }
        AuditCmd::Checkpoint { out: dest } => {
            let tw = open::open(g, Need::Audited).await?;
            let signed = async {
                let signer = signer(&tw).await?;
                let writer = tw.audit_writer().ok_or_else(|| CliError::new("no audit log attached"))?;
                Ok::<_, CliError>(writer.checkpoint(&signer, LOG_NAME, tw.clock().now()).await?)
            }
            .await;
            tw.shutdown().await?;
            let signed = signed?;
            let text = serde_json::to_string_pretty(&signed)?;
            match &dest {
                Some(p) => {
                    private_fs::write(p, format!("{text}\n")).map_err(CliError::write(p))?;
                    eprintln!(
                        "signed a checkpoint of {} entries to {} (keep it away from the log)",
                        signed.checkpoint.len,
                        p.display()
                    );
                }
                None => println!("{text}"),
            }
            Ok(0)
        }
    }
}
