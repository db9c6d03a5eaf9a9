//! Files and directories only their owner can read, whatever the umask.
//!
//! Every file Tokenward writes goes through here: the store and its WAL, the audit log, key files,
//! checkpoints, tree heads, exports, reports, baselines and lock files. A store readable by other
//! local users hands them the KDF salt, the key check and the wrapped keys to guess the passphrase
//! offline; a log or a report tells them which tokens exist and who holds them.
//!
//! On Unix a file is created `0600` and a directory `0700` (the umask can only remove bits from
//! those). An existing file keeps its mode: [`exposed_mode`] tells when it is open to others. On
//! other platforms these are the standard library's calls.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// The mode of a file Tokenward creates.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a directory Tokenward creates.
pub const DIR_MODE: u32 = 0o700;

/// [`OpenOptions`] whose `create` / `create_new` make the file `0600`; set the access on it.
pub fn options() -> OpenOptions {
    #[allow(unused_mut)]
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, FILE_MODE);
    opts
}

/// [`File::create`], the file made `0600`: created, or truncated if it exists.
pub fn create(path: impl AsRef<Path>) -> io::Result<File> {
    options().write(true).create(true).truncate(true).open(path)
}

/// [`std::fs::write`], the file made `0600`.
pub fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    create(path)?.write_all(contents.as_ref())
}

/// [`std::fs::create_dir_all`], each directory it makes `0700`.
pub fn create_dir_all(path: impl AsRef<Path>) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(path)
}

/// The permission bits of `path` when its group or others have any access to it (`None`: only
/// its owner, or not Unix).
pub fn exposed_mode(path: impl AsRef<Path>) -> io::Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
        Ok((mode & 0o077 != 0).then_some(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = std::fs::metadata(path)?;
        Ok(None)
    }
}

#[cfg(all(test, unix))]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_the_owners_alone() {
        let dir = std::env::temp_dir().join(format!("tokenward-private-fs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let nested = dir.join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let f = nested.join("f");
        write(&f, b"one").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(exposed_mode(&f).unwrap(), None);
        let g = nested.join("g");
        drop(options().append(true).create(true).open(&g).unwrap());
        assert_eq!(mode(&g), 0o600);
        // An existing file keeps its mode, and is reported when others can read it.
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(exposed_mode(&f).unwrap(), Some(0o644));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
