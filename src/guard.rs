//! The store's hold on its audit log: the sealed binding (which log, how far it had come) checked
//! at every open with a log and advanced as the log grows, and the witness the log's signed tree
//! heads are pushed to and every open is checked against.
//!
//! When the binding moves, and why not on every issue: it is a sealed metadata write (a store
//! commit, an fsync), so it is advanced after each revocation (with the witness push), by the
//! upkeep ([`crate::Upkeep::bind_every`], when the log grew), at shutdown, and at the open that
//! first binds a store — not per issued token, whose cost it would double. It only ever moves to
//! a position this process saw committed and never backwards (a compare-and-swap on the newer of
//! two positions), so writers sharing one log never make each other's check fail. What it costs:
//! a log's last few seconds of appends are bound only at the next of those moments.
//!
//! After each push the log's tree at the pushed head is sealed too ([`AUDIT_TREE_META`]), so an
//! open checks the witness from there (`token_audit::witnesses::check_log_marked`): O(entries since), not
//! O(log); without a mark that holds for the log, the full check.

use std::sync::Arc;

use token_audit::chains::{ChainHash, ChainHead};
use token_audit::checkpoints::CheckpointKey;
use token_audit::witnesses::{entry_hash_at, extend_compact};
use token_audit::{
    Action, Actor, AuditEvent, AuditWriter, Auditor, CheckpointSigner, merkle::CompactTree,
    witnesses::BindingError, witnesses::LogBinding, witnesses::TreeMark, witnesses::Witness,
    witnesses::WitnessedHead,
};
use token_store::reserved::AUDIT_BINDING_META;
use token_store::secrecy::{ExposeSecret, SecretBox};
use token_store::{Label, LabelChange, SecretName, SecretStore, StoreError};

use crate::error::{Error, Result};

/// The name the store's own checkpoint and tree-head signer is sealed under (its 32-byte seed).
pub const AUDIT_SIGNER_SECRET: &str = "tokenward/audit-signer";
/// The sealed metadata holding that signer's public key (hex): the key its heads are checked with.
pub const AUDIT_SIGNER_KEY_META: &str = "tokenward/audit-signer-key";
/// The sealed metadata holding the log's tree at the last head pushed to the witness
/// ([`TreeMark`]: epoch, size, chain hash, compact range), so that an open checks the witness in
/// O(entries since) rather than O(log). Absent (a store from before it, or never pushed): the
/// full check.
pub const AUDIT_TREE_META: &str = "tokenward/audit-tree";
/// The log name (and signed-note key name) of the store's checkpoints and tree heads.
pub const AUDIT_LOG_NAME: &str = "tokenward";

/// The store's binding, and its stored bytes (the expectation of the next compare-and-swap).
pub(crate) async fn read_binding(secrets: &SecretStore) -> Result<Option<(LogBinding, Vec<u8>)>> {
    match secrets.sealed_meta(AUDIT_BINDING_META).await? {
        Some((value, raw)) => Ok(Some((LogBinding::decode(&value)?, raw))),
        None => Ok(None),
    }
}

/// The store's sealed tree mark and its stored bytes. A mark that authenticates but does not decode
/// (another version's form) is taken as none: the full check runs, nothing is skipped.
pub(crate) async fn read_mark(secrets: &SecretStore) -> Result<Option<(Option<TreeMark>, Vec<u8>)>> {
    Ok(secrets.sealed_meta(AUDIT_TREE_META).await?.map(|(value, raw)| {
        let mark = TreeMark::decode(&value);
        if mark.is_none() {
            tracing::warn!("the store's audit tree mark does not decode: checking the witness in full");
        }
        (mark, raw)
    }))
}

/// Seals `mark` unless the store holds one as far or further in the same epoch (or a later
/// epoch's): it only moves forward, as the binding does.
pub(crate) async fn seal_mark(secrets: &SecretStore, mark: &TreeMark) -> Result<()> {
    for _ in 0..32 {
        let current = read_mark(secrets).await?;
        if let Some((Some(c), _)) = &current
            && (c.epoch > mark.epoch || (c.epoch == mark.epoch && c.size >= mark.size))
        {
            return Ok(());
        }
        let expect = current.as_ref().map(|(_, raw)| raw.as_slice());
        match secrets.set_sealed_meta(AUDIT_TREE_META, expect, &mark.encode()).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict(_)) => continue, // another writer moved it: read again
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::Conflict("the audit tree mark keeps moving".into()).into())
}

/// The store's signer: the sealed one, or (with `create`) a new one sealed now, its public key
/// recorded. Read directly, as the store's other own keys are (not a user's secret access).
pub(crate) async fn stored_signer(secrets: &SecretStore, create: bool) -> Result<Option<CheckpointSigner>> {
    let name = SecretName::new(AUDIT_SIGNER_SECRET)?;
    let signer = match secrets.get_labeled(&name, Label::Current).await? {
        Some((_, seed)) => {
            let bytes: [u8; 32] =
                seed.expose_secret().as_slice().try_into().map_err(|_| StoreError::Corrupted {
                    id: Some(AUDIT_SIGNER_SECRET.into()),
                    what: "sealed key",
                    detail: "not 32 bytes".into(),
                })?;
            CheckpointSigner::from_seed(&SecretBox::new(Box::new(bytes)))
        }
        None if !create => return Ok(None),
        None => {
            let signer = CheckpointSigner::generate().map_err(token_audit::AuditError::from)?;
            let v = secrets.put(&name, signer.to_seed().expose_secret()).await?;
            match secrets
                .update_labels(&name, &[LabelChange { label: Label::Current, expect: None, set: Some(v) }])
                .await
            {
                Ok(()) => signer,
                // Another instance made one first: use it.
                Err(StoreError::Conflict(_)) => return Box::pin(stored_signer(secrets, false)).await,
                Err(e) => return Err(e.into()),
            }
        }
    };
    let key = signer.public_key().to_string();
    match secrets.sealed_meta(AUDIT_SIGNER_KEY_META).await? {
        Some((stored, _)) if stored == key.as_bytes() => {}
        Some(_) => {
            return Err(Error::Config("the stored checkpoint key does not match the store's signer".into()));
        }
        None => match secrets.set_sealed_meta(AUDIT_SIGNER_KEY_META, None, key.as_bytes()).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        },
    }
    Ok(Some(signer))
}

/// The key the store's tree heads are checked with (`None` if it has signed none).
pub(crate) async fn stored_key(secrets: &SecretStore) -> Result<Option<CheckpointKey>> {
    let Some((bytes, _)) = secrets.sealed_meta(AUDIT_SIGNER_KEY_META).await? else { return Ok(None) };
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::Config("the stored checkpoint key is not text".into()))?;
    Ok(Some(text.parse().map_err(token_audit::AuditError::from)?))
}

/// Checks `storage` (read only, standing where it stands) against the store's binding and, with
/// `witness`, against the newest head it holds, signed by the store's key.
pub(crate) async fn check_read_only(
    secrets: &SecretStore,
    storage: &dyn token_audit::LogStorage,
    witness: Option<&dyn Witness>,
) -> Result<()> {
    let Some((binding, _)) = read_binding(secrets).await? else { return Err(BindingError::Unbound.into()) };
    let head = storage.head().await?;
    binding.check(storage, head).await?;
    if let Some(w) = witness {
        match stored_key(secrets).await? {
            Some(key) => {
                let mark = read_mark(secrets).await?.and_then(|(m, _)| m);
                token_audit::witnesses::check_log_marked(
                    w,
                    &key,
                    AUDIT_LOG_NAME,
                    binding.epoch,
                    storage,
                    head,
                    mark.as_ref(),
                )
                .await?;
                // As an open does: the witness check proves the prefix at the mark only.
                token_audit::witnesses::read_chain(storage, 0, ChainHead::EMPTY, None, |_| {}).await?;
            }
            // No key, so no head was ever signed by this store: a witness holding one is not ours.
            None if w.newest().await?.is_some() => {
                return Err(token_audit::witnesses::WitnessError::BadRecord {
                    location: w.location(),
                    detail: "the store has no signing key, yet the witness holds a head".into(),
                }
                .into());
            }
            None => {}
        }
    }
    Ok(())
}

/// A witness, the signer whose heads it keeps, and the name they are signed under.
pub(crate) struct WitnessSetup {
    pub(crate) witness: Arc<dyn Witness>,
    pub(crate) signer: Arc<CheckpointSigner>,
    pub(crate) log: String,
}

/// What [`Guard`] tracks between calls.
struct State {
    /// The epoch this handle writes in.
    epoch: u64,
    /// The hash of the log's first entry, once known.
    first: Option<ChainHash>,
    /// The compact tree of the log as far as `tree_head`.
    tree: CompactTree,
    tree_head: ChainHead,
    /// The size last pushed to the witness by this handle.
    pushed: u64,
}

/// The binding and the witness of one deployment's log.
pub(crate) struct Guard {
    writer: Arc<AuditWriter>,
    witness: Option<WitnessSetup>,
    state: tokio::sync::Mutex<State>,
}

/// Why a new log is started, for [`Guard::open`].
pub(crate) struct NewLog {
    pub(crate) reason: String,
    pub(crate) actor: Actor,
    pub(crate) now: token_core::chrono::DateTime<token_core::chrono::Utc>,
}

impl Guard {
    /// Checks the log `writer` appends to against the store's binding and the witness, or (with
    /// `new_log`) starts a new log deliberately; fails closed.
    pub(crate) async fn open(
        secrets: &SecretStore,
        writer: Arc<AuditWriter>,
        auditor: &Auditor,
        witness: Option<WitnessSetup>,
        new_log: Option<NewLog>,
    ) -> Result<Self> {
        let storage = writer.storage().clone();
        let head = writer.head();
        let stored = read_binding(secrets).await?;
        let first = if head.len > 0 { Some(entry_hash_at(storage.as_ref(), 0).await?) } else { None };
        let guard = |epoch, tree, tree_head| Self {
            writer: writer.clone(),
            witness: None,
            state: tokio::sync::Mutex::new(State { epoch, first, tree, tree_head, pushed: 0 }),
        };
        if let Some(n) = new_log {
            let mut g = guard(0, CompactTree::new(), ChainHead::EMPTY);
            g.witness = witness;
            g.start_new_log(secrets, auditor, stored, n).await?;
            return Ok(g);
        }
        let Some((binding, _)) = stored else { return Err(BindingError::Unbound.into()) };
        binding.check(storage.as_ref(), head).await?;
        let (tree, tree_head) = match &witness {
            Some(w) => {
                let key = w.signer.public_key();
                let mark = read_mark(secrets).await?.and_then(|(m, _)| m);
                let checked = token_audit::witnesses::check_log_marked(
                    w.witness.as_ref(),
                    &key,
                    &w.log,
                    binding.epoch,
                    storage.as_ref(),
                    head,
                    mark.as_ref(),
                )
                .await?;
                // The witnessed size established by reading entries the store had no mark for
                // (a store from before marks, a push whose mark was not sealed, another
                // writer's): mark it, so that the next open need not read them again.
                if checked.entries_read > 0
                    && checked.newest.as_ref().is_some_and(|n| n.epoch == binding.epoch)
                    && let Some(m) = TreeMark::new(binding.epoch, checked.at, &checked.tree)
                {
                    seal_mark(secrets, &m).await?;
                }
                (checked.tree, checked.at)
            }
            None => (CompactTree::new(), ChainHead::EMPTY),
        };
        let mut g = guard(binding.epoch, tree, tree_head);
        g.witness = witness;
        // A store bound to nothing yet (new, or just migrated) is bound at once.
        if binding.len == 0 && head.len > 0 {
            g.advance(secrets, head).await?;
        }
        Ok(g)
    }

    async fn start_new_log(
        &self,
        secrets: &SecretStore,
        auditor: &Auditor,
        stored: Option<(LogBinding, Vec<u8>)>,
        n: NewLog,
    ) -> Result<()> {
        let storage = self.writer.storage().clone();
        let head = self.writer.head();
        let (found, previous) = match &stored {
            Some((b, _)) => {
                let found = match b.check(storage.as_ref(), head).await {
                    Ok(()) => "the bound log".to_owned(),
                    Err(e) => e.to_string(),
                };
                (found, Some(*b))
            }
            None => ("no binding".to_owned(), None),
        };
        let mut epoch = previous.map_or(0, |b| b.epoch + 1);
        if let Some(w) = &self.witness
            && let Some(newest) = w.witness.newest().await?
        {
            epoch = epoch.max(newest.epoch + 1);
        }
        let mut event = AuditEvent::new(n.now, n.actor, Action::Store("new-log".into()))
            .attr("reason", n.reason)
            .attr("epoch", epoch.to_string())
            .attr("found", found);
        if let Some(b) = previous {
            event = event
                .attr("previous_epoch", b.epoch.to_string())
                .attr("previous_len", b.len.to_string())
                .attr("previous_head", b.head.to_string());
        }
        auditor.emit_durable(event).await?;
        let head = self.writer.flush().await?;
        let first = Some(entry_hash_at(storage.as_ref(), 0).await?);
        let next = LogBinding::new(epoch, first, head);
        secrets
            .set_sealed_meta(
                AUDIT_BINDING_META,
                stored.as_ref().map(|(_, raw)| raw.as_slice()),
                &next.encode(),
            )
            .await?;
        {
            let mut st = self.state.lock().await;
            st.epoch = epoch;
            st.first = first;
        }
        if self.witness.is_some() {
            self.push(secrets, head).await?;
        }
        Ok(())
    }

    /// Moves the binding forward to `head` (never back; another writer's newer position stands).
    async fn advance(&self, secrets: &SecretStore, head: ChainHead) -> Result<()> {
        let (epoch, mut first) = {
            let st = self.state.lock().await;
            (st.epoch, st.first)
        };
        if first.is_none() && head.len > 0 {
            let f = entry_hash_at(self.writer.storage().as_ref(), 0).await?;
            first = Some(f);
            self.state.lock().await.first = first;
        }
        for _ in 0..32 {
            let Some((current, raw)) = read_binding(secrets).await? else {
                return Err(BindingError::Unbound.into());
            };
            if current.epoch != epoch {
                return Err(Error::Config(format!(
                    "the store was bound to a new audit log (epoch {}) while this handle wrote to epoch {epoch}",
                    current.epoch
                )));
            }
            let Some(next) = current.advanced(first, head) else { return Ok(()) };
            match secrets.set_sealed_meta(AUDIT_BINDING_META, Some(&raw), &next.encode()).await {
                Ok(_) => return Ok(()),
                Err(StoreError::Conflict(_)) => continue, // another writer moved it: read again
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Conflict("the audit-log binding keeps moving".into()).into())
    }

    /// Signs the tree head at `head` and pushes it to the witness (if any, and if not pushed yet).
    /// Then seals the tree mark at it, for the next open's check.
    async fn push(&self, secrets: &SecretStore, head: ChainHead) -> Result<()> {
        let Some(w) = &self.witness else { return Ok(()) };
        let record = {
            let mut st = self.state.lock().await;
            if head.len <= st.pushed || head.len == 0 {
                return Ok(());
            }
            if st.tree_head.len > head.len {
                // Past the head (another writer's entries, read at open): start over.
                st.tree = CompactTree::new();
                st.tree_head = ChainHead::EMPTY;
            }
            if st.tree_head.len < head.len {
                let tree = std::mem::take(&mut st.tree);
                let (tree, reached) =
                    extend_compact(self.writer.storage().as_ref(), tree, st.tree_head, head.len).await?;
                st.tree = tree;
                st.tree_head = reached;
            }
            if st.tree_head != head {
                return Err(token_audit::AuditError::Corrupt {
                    line: head.len,
                    detail: "the log read back does not end where the writer committed".into(),
                }
                .into());
            }
            let record = WitnessedHead::sign_root(&w.signer, &w.log, st.epoch, head.len, st.tree.root())?;
            (record, TreeMark::new(st.epoch, head, &st.tree))
        };
        let (record, mark) = record;
        w.witness.push(&record).await?;
        {
            let mut st = self.state.lock().await;
            st.pushed = st.pushed.max(head.len);
        }
        match mark {
            Some(m) => seal_mark(secrets, &m).await,
            None => Ok(()),
        }
    }

    /// Flushes the log, advances the binding to where it stands, and (with `witness`) pushes its
    /// signed tree head.
    pub(crate) async fn seal(&self, secrets: &SecretStore, witness: bool) -> Result<ChainHead> {
        let head = self.writer.flush().await?;
        self.advance(secrets, head).await?;
        if witness {
            self.push(secrets, head).await?;
        }
        Ok(head)
    }

    /// The witness's location.
    pub(crate) fn witness_location(&self) -> Option<String> {
        self.witness.as_ref().map(|w| w.witness.location())
    }
}

/// The entries of `storage` matching `query`, the whole chain verified as it is read. With a
/// witness, every open reads the log this way (and a read-only check reads it so too): the
/// witness check proves the log's prefix at the store's sealed mark (one entry's chain hash), so
/// an edit that breaks the chain earlier — a revocation turned into another token's while the
/// victim's row is rolled back — must be caught by this read.
pub(crate) async fn verified_matches(
    storage: &dyn token_audit::LogStorage,
    query: &token_audit::AuditQuery,
) -> std::result::Result<Vec<token_audit::chains::Entry>, token_audit::AuditError> {
    let mut out = Vec::new();
    token_audit::witnesses::read_chain(storage, 0, ChainHead::EMPTY, None, |e| {
        if query.matches(e) {
            out.push(e.clone());
        }
    })
    .await?;
    Ok(out)
}
