//! Signed checkpoints and tree heads: the store's signer, made on first use, and its public key.

use std::path::{Path, PathBuf};

use tokenward::Tokenward;
use tokenward::audit::CheckpointSigner;
use tokenward::audit::checkpoints::{CheckpointKey, SignedCheckpoint};
use tokenward::audit::merkle::{MerkleTree, TreeHead};
use tokenward::core::private_fs;
use tokenward::secrecy::{ExposeSecret, SecretBox};
use tokenward::store::SecretName;

use super::LOG_NAME;
use crate::cli::Global;
use crate::error::{CliError, Result};
use crate::open::{self, Need};

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
pub(super) async fn trusted_key(tw: &Tokenward) -> Result<CheckpointKey> {
    let (bytes, _) = tw.secrets().sealed_meta(SIGNER_KEY_META).await?.ok_or_else(|| {
        CliError::new("this store has signed no checkpoint yet (`tokenward audit checkpoint`)")
    })?;
    let text =
        String::from_utf8(bytes).map_err(|_| CliError::new("the stored checkpoint key is not text"))?;
    CheckpointKey::try_from(text).map_err(|e| CliError::new(format!("the stored checkpoint key: {e}")))
}

pub(super) fn read_checkpoint(path: &Path) -> Result<SignedCheckpoint> {
    let text = std::fs::read_to_string(path).map_err(CliError::read(path))?;
    serde_json::from_str(&text).map_err(|e| CliError::new(format!("checkpoint {}: {e}", path.display())))
}

/// `audit tree-head`: a signed note of the log's Merkle tree head.
pub(super) async fn tree_head(g: &Global, dest: Option<PathBuf>) -> Result<u8> {
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

/// `audit checkpoint`: a signed checkpoint of the log's current head.
pub(super) async fn checkpoint(g: &Global, dest: Option<PathBuf>) -> Result<u8> {
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
