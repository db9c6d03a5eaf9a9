//! `tokenward init`: a new store, its key, token prefix, audit log and signer, and a first policy.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::Args;
use rand::TryRng;
use zeroize::Zeroizing;

use crate::cli::{Global, Output};
use crate::cmd::{audit, policy};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The issuer prefix of every token (lowercase letters, digits, `_`).
    #[arg(long, default_value = "tw")]
    pub(crate) prefix: String,
    /// A policy file to apply right away.
    #[arg(long)]
    pub(crate) policy: Option<PathBuf>,
    /// Generate a new 256-bit key into this file (mode 0600) and use it as the store's key.
    #[arg(long, conflicts_with = "key_file")]
    pub(crate) new_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// Writes 32 random bytes as 64 hex characters to a new file only its owner can read.
fn new_key_file(path: &Path) -> Result<()> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| CliError::new("the operating system's random number generator failed"))?;
    let mut hex = Zeroizing::new(String::with_capacity(65));
    tokenward::core::hex::push(&mut hex, key.as_ref());
    hex.push('\n');
    let mut f = tokenward::core::private_fs::options()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CliError::new(format!("creating key file {}: {e}", path.display())))?;
    f.write_all(hex.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CliError::new(format!("writing key file {}: {e}", path.display())))
}

/// The files `init` creates for an embedded store that do not exist yet (removed again if `init`
/// fails); none for PostgreSQL.
fn created_files(g: &Global) -> Vec<std::path::PathBuf> {
    if g.database_url().is_some() {
        return Vec::new();
    }
    let store = g.store.as_os_str().to_owned();
    let with = |suffix: &str| {
        let mut p = store.clone();
        p.push(suffix);
        std::path::PathBuf::from(p)
    };
    [g.store.clone(), with("-wal"), with("-shm"), with("-journal"), g.audit_path()]
        .into_iter()
        .filter(|p| !p.exists())
        .collect()
}

pub(crate) async fn run(g: &Global, a: InitArgs) -> Result<u8> {
    let mut g = g.clone();
    if let Some(path) = &a.new_key_file {
        if g.kms.is_some() {
            return Err(CliError::new("--new-key-file and --kms are two different keys: choose one"));
        }
        new_key_file(path)?;
        g.key_file = Some(path.clone());
        // In JSON, the key file is a field of the one document printed.
        if !a.output.json() {
            eprintln!(
                "wrote a new 256-bit key to {} (mode 0600): keep it apart from the store",
                path.display()
            );
        }
    }
    // All or nothing: everything that can be checked is checked before anything is created, and
    // a failure after that removes what this command created (an embedded store and its log).
    tokenward::core::TokenPrefix::new(&a.prefix).map_err(|e| CliError::new(format!("--prefix: {e}")))?;
    let file = a.policy.as_deref().map(policy::read_checked).transpose()?;
    let b = open::builder(&g, true)?.prefix(&a.prefix);
    let made = created_files(&g);
    let result = async {
        let tw = open::open_with(&g, Need::Audited, b).await?;
        let applied = async {
            audit::signer(&tw).await?;
            match &file {
                Some(file) => Ok::<_, CliError>(Some(policy::apply(&tw, file, None, false, false).await?)),
                None => Ok(None),
            }
        }
        .await;
        let closed = tw.shutdown().await;
        let applied = applied?;
        closed?;
        Ok::<_, CliError>(applied)
    }
    .await;
    let applied = match result {
        Ok(applied) => applied,
        Err(e) => {
            for path in made {
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    if a.output.json() {
        println!(
            "{}",
            serde_json::json!({
                "store": g.store_name(),
                "prefix": a.prefix,
                "audit_log": g.audit_path().display().to_string(),
                "new_key_file": a.new_key_file.as_ref().map(|p| p.display().to_string()),
                "policy": applied.as_ref().map(policy::Applied::json),
            })
        );
        return Ok(0);
    }
    if let Some(applied) = &applied {
        applied.print(a.output);
    }
    eprintln!(
        "initialised {}: tokens `{}_…`, audit log {}",
        g.store_name(),
        a.prefix,
        g.audit_path().display()
    );
    Ok(0)
}
