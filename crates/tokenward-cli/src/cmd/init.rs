//! `tokenward init`: a new store, its key, token prefix, audit log and signer, and a first policy.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use rand::TryRng;
use zeroize::Zeroizing;

use crate::cli::{Global, InitArgs};
use crate::cmd::{audit, policy};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

/// Writes 32 random bytes as 64 hex characters to a new file only its owner can read.
fn new_key_file(path: &Path) -> Result<()> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| CliError::new("the operating system's random number generator failed"))?;
    let mut hex = Zeroizing::new(String::with_capacity(65));
    for b in key.iter() {
        let _ = write!(hex, "{b:02x}");
    }
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

pub(crate) async fn run(g: &Global, a: InitArgs) -> Result<u8> {
    let mut g = g.clone();
    if let Some(path) = &a.new_key_file {
        if g.kms.is_some() {
            return Err(CliError::new("--new-key-file and --kms are two different keys: choose one"));
        }
        new_key_file(path)?;
        g.key_file = Some(path.clone());
        eprintln!("wrote a new 256-bit key to {} (mode 0600): keep it apart from the store", path.display());
    }
    let b = open::builder(&g, true)?.prefix(&a.prefix);
    let tw = open::open_with(&g, Need::Audited, b).await?;
    audit::signer(&tw).await?;
    if let Some(file) = &a.policy {
        policy::apply_file(&tw, file, None, false, false).await?;
    }
    tw.shutdown().await?;
    eprintln!(
        "initialised {}: tokens `{}_…`, audit log {}",
        g.store_name(),
        a.prefix,
        g.audit_path().display()
    );
    Ok(0)
}
