//! Opening the deployment a command works on: the store, its key, the audit log.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use tokenward::audit::Actor;
use tokenward::secrecy::SecretString;
use tokenward::{FailureMode, Tokenward, TokenwardBuilder};

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

/// The passphrase: from the environment, else a prompt on the terminal (never echoed); `confirm`
/// asks twice (a new store).
fn passphrase(confirm: bool) -> Result<SecretString> {
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

/// Opens `b` with the audit log `need` asks for.
pub(crate) async fn open_with(g: &Global, need: Need, b: TokenwardBuilder) -> Result<Tokenward> {
    let b = match need {
        Need::ReadOnly => b,
        Need::Audited => attach_audit(g, b).await?,
    };
    b.open().await.map_err(|e| hint(g, e))
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
        _ => {
            let text = CliError::from(e).to_string();
            if text.contains("file is not a database") {
                CliError::new(format!("{store} is not a Tokenward store (SQLite: file is not a database)"))
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
            let log =
                tokenward::audit::FileLog::open_shared(g.audit_path(), tokenward::audit::FileSync::Data)?;
            Ok(b.audit_storage(Arc::new(log), FailureMode::FailClosed))
        }
    }
}
