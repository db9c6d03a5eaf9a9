//! Opening the deployment a command works on: the store, its key, the audit log.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use tokenward::audit::Actor;
use tokenward::secrecy::{ExposeSecret, SecretString};
use tokenward::{FailureMode, Tokenward, TokenwardBuilder};
use zeroize::Zeroizing;

use crate::cli::Global;
use crate::error::{CliError, Result};

/// The environment variable a passphrase may come from (never from the command line).
pub(crate) const PASSPHRASE_ENV: &str = "TOKENWARD_PASSPHRASE";

/// What a command needs of the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// It writes or reads secrets: the audit log attached, fail-closed.
    Audited,
    /// It only reads token records or the log itself: no audit writer (so it runs beside a daemon
    /// that holds the log).
    ReadOnly,
}

impl Global {
    /// The audit log's path.
    pub(crate) fn audit_path(&self) -> PathBuf {
        if let Some(p) = &self.audit_log {
            return p.clone();
        }
        let stem =
            self.store.file_stem().map_or_else(|| "tokenward".into(), |s| s.to_string_lossy().into_owned());
        self.store.with_file_name(format!("{stem}.audit.jsonl"))
    }

    /// The lock file a daemon holds beside the store.
    pub(crate) fn daemon_lock_path(&self) -> PathBuf {
        let name =
            self.store.file_name().map_or_else(|| "tokenward".into(), |s| s.to_string_lossy().into_owned());
        self.store.with_file_name(format!("{name}.daemon.lock"))
    }

    /// The operator's name for audit entries.
    pub(crate) fn actor_name(&self) -> String {
        self.actor
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "operator".into())
    }

    #[cfg(feature = "postgres")]
    pub(crate) fn database_url(&self) -> Option<&str> {
        self.database_url.as_deref()
    }

    #[cfg(not(feature = "postgres"))]
    pub(crate) fn database_url(&self) -> Option<&str> {
        None
    }

    /// Where the store is, for messages.
    pub(crate) fn store_name(&self) -> String {
        match self.database_url() {
            Some(_) => "the PostgreSQL store".into(),
            None => self.store.display().to_string(),
        }
    }
}

/// The shortest passphrase `init` takes.
pub(crate) const MIN_PASSPHRASE_CHARS: usize = 12;

/// Passphrases too common to take, however long (compared lowercased, spaces and punctuation
/// ignored).
const COMMON_PASSPHRASES: &[&str] = &[
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "passphrase123",
    "qwertyuiop123",
    "qwertyuiopasdf",
    "qwerty123456",
    "iloveyou1234",
    "letmeinletmein",
    "changemechangeme",
    "welcome123456",
    "administrator1",
    "tokenward1234",
    "tokenwardtokenward",
];

/// Refuses a trivially weak passphrase for a new store: fewer than [`MIN_PASSPHRASE_CHARS`]
/// characters, fewer than five different characters (`aaaaaaaaaaaa`, `abababababab`), a straight
/// run (`123456789012`, `abcdefghijkl`), or one of [`COMMON_PASSPHRASES`]. A guess costs an
/// attacker one Argon2id derivation (m = 19 MiB, t = 2, p = 1): this keeps the cheapest guesses out
/// of reach, it does not measure strength.
pub(crate) fn check_new_passphrase(p: &str) -> Result<()> {
    let chars: Zeroizing<Vec<char>> = Zeroizing::new(p.chars().collect());
    let refuse = |why: &str| {
        Err(CliError::new(format!(
            "refusing a weak passphrase for a new store: {why}; choose at least {MIN_PASSPHRASE_CHARS} \
             characters that are not a repeat, a run or a common password (a few random words will do)"
        )))
    };
    if chars.len() < MIN_PASSPHRASE_CHARS {
        return refuse(&format!("{} characters", chars.len()));
    }
    if chars.iter().collect::<std::collections::BTreeSet<_>>().len() < 5 {
        return refuse("fewer than five different characters");
    }
    // Each character the one after (or before) the last; digits wrap (`…7890123`).
    let step = |d: i64| {
        chars.windows(2).all(|w| {
            let wrap = matches!((w[0], w[1], d), ('9', '0', 1) | ('0', '9', -1));
            wrap || i64::from(u32::from(w[1])) - i64::from(u32::from(w[0])) == d
        })
    };
    if step(1) || step(-1) {
        return refuse("a run of consecutive characters");
    }
    let folded: Zeroizing<String> =
        Zeroizing::new(chars.iter().filter(|c| c.is_alphanumeric()).flat_map(|c| c.to_lowercase()).collect());
    if COMMON_PASSPHRASES.contains(&folded.as_str()) {
        return refuse("a common password");
    }
    Ok(())
}

/// The passphrase: from the environment, else a prompt on the terminal (never echoed); `new_store`
/// asks twice and refuses a weak one ([`check_new_passphrase`]).
fn passphrase(new_store: bool) -> Result<SecretString> {
    let p = read_passphrase(new_store)?;
    if new_store {
        check_new_passphrase(p.expose_secret())?;
    }
    Ok(p)
}

fn read_passphrase(confirm: bool) -> Result<SecretString> {
    if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
        if p.is_empty() {
            return Err(CliError::new(format!("{PASSPHRASE_ENV} is set but empty")));
        }
        return Ok(SecretString::from(p));
    }
    if !std::io::stderr().is_terminal() && !std::io::stdin().is_terminal() {
        return Err(CliError::new(format!(
            "no key: set {PASSPHRASE_ENV}, pass --key-file (or TOKENWARD_KEY_FILE), or run on a terminal to be asked"
        )));
    }
    let first = rpassword::prompt_password("tokenward passphrase: ")
        .map_err(|e| CliError::new(format!("reading the passphrase from the terminal: {e}")))?;
    if first.is_empty() {
        return Err(CliError::new("an empty passphrase is not a key"));
    }
    if confirm {
        let again = rpassword::prompt_password("again: ")
            .map_err(|e| CliError::new(format!("reading the passphrase from the terminal: {e}")))?;
        if again != first {
            return Err(CliError::new("the passphrases differ"));
        }
    }
    Ok(SecretString::from(first))
}

/// A builder for the store with its key and the operator as actor; `new_store` allows creating
/// it (`init`), otherwise a missing store is an error.
pub(crate) fn builder(g: &Global, new_store: bool) -> Result<TokenwardBuilder> {
    let b = match g.database_url() {
        #[cfg(feature = "postgres")]
        Some(url) => Tokenward::postgres(url),
        #[cfg(not(feature = "postgres"))]
        Some(_) => unreachable_postgres()?,
        None => {
            if !new_store && !g.store.exists() {
                return Err(CliError::new(format!(
                    "no store at {}: run `tokenward init` first (or pass --store / TOKENWARD_STORE)",
                    g.store.display()
                )));
            }
            if new_store && g.store.exists() {
                return Err(CliError::new(format!(
                    "{} already exists: it is initialised",
                    g.store.display()
                )));
            }
            Tokenward::embedded(&g.store)
        }
    };
    let b = b.stored_policy().actor(Actor::Operator(g.actor_name()));
    Ok(match (&g.key_file, &g.kms) {
        (Some(path), _) => b.key_file(path),
        (None, Some(kms)) => b.kms(kms.clone()),
        (None, None) => b.passphrase(passphrase(new_store)?),
    })
}

#[cfg(not(feature = "postgres"))]
fn unreachable_postgres() -> Result<TokenwardBuilder> {
    Err(CliError::new("this build has no PostgreSQL support (feature `postgres`)"))
}

/// Opens the deployment for a command.
pub(crate) async fn open(g: &Global, need: Need) -> Result<Tokenward> {
    open_with(g, need, builder(g, false)?).await
}

/// Opens `b` with the audit log `need` asks for. Either way the log is checked against the
/// store's binding and the witness (attached, or read beside a daemon that holds it).
pub(crate) async fn open_with(g: &Global, need: Need, b: TokenwardBuilder) -> Result<Tokenward> {
    let witness = witness(g).await?;
    let b = match need {
        Need::ReadOnly => b,
        Need::Audited => {
            let b = attach_audit(g, b).await?;
            match &witness {
                Some(w) => b.witness(w.clone()),
                None => b,
            }
        }
    };
    let tw = b.open().await.map_err(|e| hint(g, e))?;
    if need == Need::ReadOnly
        && let Err(e) = check_log(g, &tw, witness).await
    {
        let _ = tw.shutdown().await;
        return Err(e);
    }
    Ok(tw)
}

/// The witness `--witness` names (`dir:PATH`, `s3://BUCKET/PREFIX/`), connected.
pub(crate) async fn witness(g: &Global) -> Result<Option<Arc<dyn tokenward::audit::witnesses::Witness>>> {
    let Some(spec) = g.witness.as_deref().map(str::trim).filter(|s| !s.is_empty()) else { return Ok(None) };
    if let Some(dir) = spec.strip_prefix("dir:") {
        return Ok(Some(Arc::new(tokenward::audit::witnesses::FileWitness::open(dir)?)));
    }
    if let Some(rest) = spec.strip_prefix("s3://") {
        use token_http::aws::{AwsClient, AwsCredentials, env_endpoint, env_region};
        use tokenward::audit::witnesses::S3Witness;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let creds =
            AwsCredentials::from_env().map_err(|e| CliError::new(format!("--witness {spec}: {e}")))?;
        let mut client = AwsClient::new(env_region().unwrap_or_else(|| "us-east-1".into()), creds);
        if let Some(e) = env_endpoint("s3") {
            client = client.endpoint(e);
        }
        let w = S3Witness::connect(client, bucket, prefix, g.witness_retain_days).await?;
        return Ok(Some(Arc::new(w)));
    }
    Err(CliError::new(format!("--witness {spec:?}: give dir:PATH or s3://BUCKET/PREFIX/")))
}

/// For a command that does not attach the log: checks it, read only, against the store's binding
/// and the witness, as an open with the log does.
async fn check_log(
    g: &Global,
    tw: &Tokenward,
    witness: Option<Arc<dyn tokenward::audit::witnesses::Witness>>,
) -> Result<()> {
    let storage: Arc<dyn tokenward::audit::LogStorage> = match g.database_url() {
        #[cfg(feature = "postgres")]
        Some(url) => Arc::new(tokenward::audit::PostgresLog::connect(url, 2).await?),
        _ => {
            let path = g.audit_path();
            if path.exists() {
                Arc::new(tokenward::audit::FileLog::open_shared(
                    &path,
                    tokenward::audit::file::FileSync::Data,
                )?)
            } else {
                Arc::new(tokenward::audit::MemoryLog::new()) // missing: as empty
            }
        }
    };
    tw.check_audit_log(storage.as_ref(), witness.as_deref()).await.map_err(|e| hint(g, e))
}

/// The library's error, with what an operator does about it.
fn hint(g: &Global, e: tokenward::Error) -> CliError {
    use tokenward::store::StoreError;
    let store = g.store_name();
    match &e {
        tokenward::Error::Store(StoreError::WrongPassphrase) => CliError::new(format!(
            "wrong passphrase for {store} (set {PASSPHRASE_ENV}, or use --key-file if it was made with one)"
        )),
        tokenward::Error::Store(StoreError::WrongKey { .. }) => CliError::new(format!(
            "{e} ({store}: pass the key file it was made with, or {PASSPHRASE_ENV} if it was made with a passphrase)"
        )),
        tokenward::Error::Witness(tokenward::audit::witnesses::WitnessError::Unavailable { .. }) => {
            CliError::from(e)
        }
        tokenward::Error::Binding(_) | tokenward::Error::Witness(_) => {
            CliError::new(format!("{} (audit log {})", CliError::from(e), g.audit_path().display()))
                .log_mismatch()
        }
        _ => {
            let backend = matches!(&e, tokenward::Error::Store(StoreError::Backend(_)));
            let text = CliError::from(e).to_string();
            if text.contains("file is not a database") {
                CliError::new(format!("{store} is not a Tokenward store (SQLite: file is not a database)"))
            } else if backend && !text.contains(&store) {
                // The database's own words do not say which store: this one.
                CliError::new(format!("{store}: {text}"))
            } else {
                CliError::new(text)
            }
        }
    }
}

async fn attach_audit(g: &Global, b: TokenwardBuilder) -> Result<TokenwardBuilder> {
    match g.database_url() {
        #[cfg(feature = "postgres")]
        Some(url) => {
            let log = tokenward::audit::PostgresLog::connect(url, 4).await?;
            Ok(b.audit_storage(Arc::new(log), FailureMode::FailClosed))
        }
        // Shared: a daemon and the operator's commands append to one chain.
        _ => {
            let log = tokenward::audit::FileLog::open_shared(
                g.audit_path(),
                tokenward::audit::file::FileSync::Data,
            )?;
            Ok(b.audit_storage(Arc::new(log), FailureMode::FailClosed))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_new_passphrase;

    #[test]
    fn trivially_weak_passphrases_are_refused() {
        for weak in [
            "a",
            "hunter2",
            "elevenchars",
            "aaaaaaaaaaaaaaaa",
            "abababababababab",
            "123456789012",
            "abcdefghijklmnop",
            "zyxwvutsrqpo",
            "Password1234",
            "pass word 1234!",
            "qwertyuiop123",
        ] {
            let e = check_new_passphrase(weak).err().map(|e| e.to_string());
            assert!(e.as_deref().is_some_and(|e| e.contains("weak passphrase")), "{weak:?}: {e:?}");
            assert!(weak.len() < 4 || !e.unwrap_or_default().contains(weak), "not repeated back");
        }
        for fine in ["correct horse battery staple", "tr0ub4dor&3xyz", "démonstration-42"] {
            assert!(check_new_passphrase(fine).is_ok(), "{fine:?}");
        }
    }
}
