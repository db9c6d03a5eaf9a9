//! `audit …`: the hash-chained log, read without the store's key except where a signature is
//! made or checked. The arguments and the dispatch are here with the log reader every subcommand
//! shares; `chain` checks the chain, the store's binding and the witness, `read` shows and exports
//! entries, `signed` signs checkpoints and tree heads, `proof` makes and checks Merkle proofs.

mod chain;
mod proof;
mod read;
mod signed;

use std::path::PathBuf;

use clap::Subcommand;
use tokenward::audit::chains::Entry;
use tokenward::audit::file::LogReader;

pub(crate) use self::signed::signer;
use crate::cli::{Global, Output};
use crate::error::{CliError, Result};

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Verify the hash chain, that it is the log the store is bound to (not missing, shorter,
    /// another or a fork), that it is consistent with the newest head the witness holds (with
    /// --witness), and a signed checkpoint (the log must still hold what it attests). Exit 1 when
    /// any does not hold.
    Verify {
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Only the chain (and --checkpoint): no store, no key, no binding or witness check.
        #[arg(long, conflicts_with = "checkpoint")]
        log_only: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Bind the store to its log's head now and push the signed tree head to the witness (what
    /// each revocation and the daemon do).
    Witness {
        #[command(flatten)]
        output: Output,
    },
    /// Start a new audit log deliberately (after archiving the old one, or to recover from a lost
    /// one): records why in the new log (and in --old-log), binds the store to it in a new epoch,
    /// and pushes that to the witness. Needs the store's key.
    #[command(
        after_help = "Example:\n  mv tokenward.audit.jsonl archive/2026-q1.audit.jsonl\n  tokenward audit rebind --reason 'archived to archive/2026-q1' --old-log archive/2026-q1.audit.jsonl"
    )]
    Rebind {
        /// Why (recorded in both logs).
        #[arg(long)]
        reason: String,
        /// The previous log, if it is still there: a `store`/`new-log` entry is appended to it too.
        #[arg(long)]
        old_log: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
    /// Show entries.
    Show {
        /// Only entries about this token.
        #[arg(long)]
        token: Option<String>,
        /// Only entries since (RFC 3339 time, or a duration ago such as 1h).
        #[arg(long)]
        since: Option<String>,
        /// Only this action (issue, verify_denied, revoke, rotate, policy_change, …).
        #[arg(long)]
        action: Option<String>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        output: Output,
    },
    /// Export the verified log as JSON lines (to stdout or --out).
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a checkpoint of the log's current head (keep it away from the log).
    Checkpoint {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a tree head of the log's Merkle tree (RFC 6962), as a C2SP tlog-checkpoint signed note.
    #[command(after_help = "Example:\n  tokenward audit tree-head --out head.note")]
    TreeHead {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A Merkle proof as JSON: that entry SEQ is in the log, or (--from M) that the log of M
    /// entries is a prefix of this one.
    #[command(
        after_help = "Examples:\n  tokenward audit prove 41 > entry41.proof.json\n  tokenward audit prove --from 1000 > growth.proof.json"
    )]
    Prove {
        /// The entry's sequence number.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        seq: Option<u64>,
        /// A consistency proof from the tree of this many entries.
        #[arg(long)]
        from: Option<u64>,
        /// The tree size to prove against (default: the whole log now; use a signed tree head's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Check a proof from `prove` against a signed tree head, with no access to the log (exit 1
    /// when it does not hold). For a consistency proof, --old-tree-head is the earlier head.
    CheckProof {
        /// The proof (JSON from `prove`).
        proof: PathBuf,
        /// The signed tree head the proof is for.
        #[arg(long)]
        tree_head: PathBuf,
        /// The earlier signed tree head (consistency proofs).
        #[arg(long)]
        old_tree_head: Option<PathBuf>,
        /// The signer's public key (64 hex); default: this store's.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        output: Output,
    },
}

/// The name checkpoints of this log carry.
pub(crate) const LOG_NAME: &str = tokenward::AUDIT_LOG_NAME;

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

pub(crate) async fn run(g: &Global, c: AuditCmd) -> Result<u8> {
    match c {
        AuditCmd::Verify { checkpoint, log_only, output } => {
            chain::verify(g, checkpoint, log_only, output).await
        }
        AuditCmd::Witness { output } => chain::witness(g, output).await,
        AuditCmd::Rebind { reason, old_log, output } => chain::rebind(g, reason, old_log, output).await,
        AuditCmd::Show { token, since, action, limit, output } => {
            read::show(g, token, since, action, limit, output).await
        }
        AuditCmd::Export { out: dest } => read::export(g, dest).await,
        AuditCmd::TreeHead { out: dest } => signed::tree_head(g, dest).await,
        AuditCmd::Prove { seq, from, size } => proof::prove(g, seq, from, size).await,
        AuditCmd::CheckProof { proof, tree_head, old_tree_head, key, output } => {
            proof::check_proof(g, proof, tree_head, old_tree_head, key, output).await
        }
        AuditCmd::Checkpoint { out: dest } => signed::checkpoint(g, dest).await,
    }
}
