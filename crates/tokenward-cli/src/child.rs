//! The commands Tokenward starts (`run`'s command, alert hooks, the drill's git): what they
//! inherit, and that they do not outlive it.
//!
//! A child gets the environment minus every variable that unlocks the store, its key-encryption
//! key or its database ([`unlocks_the_store`]): with them, `run --secret app/mine=X -- sh -c
//! 'tokenward secret get other/secret'` would read any secret in the store. `run --pass-env NAME`
//! hands one of them on by name, where a command really needs it.

use std::ffi::OsStr;

/// Prefixes of the variables a child never inherits: `TOKENWARD_*` (the passphrase, the key file,
/// the KMS key, the database URL with its password, the store), `AWS_*` (the keys, session token,
/// profile, shared-credentials and web-identity files and the container-credential endpoints that
/// unlock an AWS KMS KEK), `BAO_*` and `VAULT_*` (the token that unlocks an OpenBao / Vault
/// Transit KEK, and the client key that logs in).
pub(crate) const KEY_VARIABLE_PREFIXES: [&str; 4] = ["TOKENWARD_", "AWS_", "BAO_", "VAULT_"];

/// Whether the environment variable `name` can unlock the store, its KEK or its database.
pub(crate) fn unlocks_the_store(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    KEY_VARIABLE_PREFIXES.iter().any(|p| name.starts_with(p.as_bytes()))
}

/// Takes every key variable but those named in `pass` out of the environment `c` will inherit.
pub(crate) fn withhold_keys(c: &mut std::process::Command, pass: &[String]) {
    for (name, _) in std::env::vars_os() {
        if unlocks_the_store(&name) && !pass.iter().any(|p| OsStr::new(p) == name) {
            c.env_remove(&name);
        }
    }
}

/// A command for `program` with this process's environment minus every key variable but those
/// named in `pass`, killed when its handle is dropped and (on Linux) when this process dies.
pub(crate) fn command(program: impl AsRef<OsStr>, pass: &[String]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    withhold_keys(c.as_std_mut(), pass);
    c.kill_on_drop(true);
    #[cfg(target_os = "linux")]
    die_with_parent(&mut c);
    c
}

/// SIGKILL to the child when this process dies, however it dies (`kill -9` included), through
/// `prctl(PR_SET_PDEATHSIG)` between fork and exec. The signal comes when the *thread* that
/// forked exits: commands are started from the runtime's main or worker threads, which live as
/// long as the process, never from a blocking-pool thread.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(c: &mut tokio::process::Command) {
    let parent = nix::unistd::Pid::this();
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes two system calls (prctl, getppid), and neither allocates nor
    // takes a lock; the error it may return is built from an errno, without allocating.
    unsafe {
        c.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(|e| std::io::Error::from_raw_os_error(e as i32))?;
            // This process died between the fork and the prctl: the signal will never come.
            if nix::unistd::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(nix::libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::unlocks_the_store;
    use std::ffi::OsStr;

    #[test]
    fn key_variables_are_known_by_prefix() {
        for key in [
            "TOKENWARD_PASSPHRASE",
            "TOKENWARD_KEY_FILE",
            "TOKENWARD_DATABASE_URL",
            "TOKENWARD_KMS",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "BAO_TOKEN",
            "VAULT_TOKEN",
        ] {
            assert!(unlocks_the_store(OsStr::new(key)), "{key}");
        }
        for other in ["PATH", "HOME", "DB_PASSWORD", "TOKENWARD", "XAWS_PROFILE"] {
            assert!(!unlocks_the_store(OsStr::new(other)), "{other}");
        }
    }
}
