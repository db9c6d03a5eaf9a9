//! `secret put|get|list`: values only through stdin and stdout, never argv.

use std::io::{IsTerminal, Read, Write};

use clap::{Args, Subcommand};
use serde_json::json;
use tokenward::secrecy::ExposeSecret;
use tokenward::store::SecretName;
use zeroize::Zeroizing;

use crate::cli::{Global, Output};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCmd {
    /// Seal a new version from stdin and make it current.
    Put {
        name: String,
        #[command(flatten)]
        output: Output,
    },
    /// Print the current version (only to a pipe or file, or with --reveal); `--format json`: a
    /// JSON object with the value in `value` (UTF-8) or `value_hex`.
    Get {
        name: String,
        /// Print it to a terminal too.
        #[arg(long)]
        reveal: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List secret names and versions (never a value).
    List {
        #[command(flatten)]
        output: Output,
    },
}

/// `rekey`.
#[derive(Debug, Args)]
pub(crate) struct RekeyArgs {
    /// The KMS key to move to: `aws-kms:KEY` or `transit:MOUNT/KEY` (reached with the same
    /// environment settings as `--kms`).
    #[arg(long)]
    pub(crate) to: tokenward::KmsKey,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// The largest value `secret put` takes.
const MAX_SECRET: usize = 1 << 20;

/// A user secret's name: valid, and outside the store's own `tokenward/` names (its record key,
/// its digest key: `token_store::reserved`), which no command reads, writes or hands a child.
pub(crate) fn user_name(name: &str) -> Result<SecretName> {
    if name.starts_with(tokenward::Tokenward::RESERVED_SECRET_PREFIX) {
        return Err(CliError::new(format!(
            "{name}: names under {} are the store's own",
            tokenward::Tokenward::RESERVED_SECRET_PREFIX
        )));
    }
    Ok(SecretName::new(name)?)
}

/// A secret value from stdin: typed with the echo off on a terminal, else piped (at most
/// [`MAX_SECRET`] bytes, one trailing newline dropped). Zeroized on drop.
pub(crate) fn value_from_stdin() -> Result<Zeroizing<Vec<u8>>> {
    let mut value = if std::io::stdin().is_terminal() {
        // Typed: one line with the terminal's echo off (a multi-line value is piped).
        let line = rpassword::prompt_password("the value (one line, not echoed): ")
            .map_err(|e| CliError::new(format!("reading the value from the terminal: {e}")))?;
        Zeroizing::new(line.into_bytes())
    } else {
        let mut value = Zeroizing::new(Vec::new());
        std::io::stdin()
            .take(MAX_SECRET as u64 + 1)
            .read_to_end(&mut value)
            .map_err(|e| CliError::new(format!("reading the value from stdin: {e}")))?;
        value
    };
    if value.len() > MAX_SECRET {
        return Err(CliError::new(format!("the value is over {MAX_SECRET} bytes")));
    }
    // One trailing newline is dropped (what `echo` and here-strings add).
    if value.last() == Some(&b'\n') {
        value.pop();
        if value.last() == Some(&b'\r') {
            value.pop();
        }
    }
    if value.is_empty() {
        return Err(CliError::new("no value on stdin"));
    }
    Ok(value)
}

pub(crate) async fn run(g: &Global, c: SecretCmd) -> Result<u8> {
    match c {
        SecretCmd::Put { name, output } => {
            let name = user_name(&name)?;
            let value = value_from_stdin()?;
            let tw = open::open(g, Need::Audited).await?;
            let v = tw.seal_current(&name, &value).await;
            tw.shutdown().await?;
            let v = v?;
            if output.json() {
                println!("{}", json!({"name": name.as_str(), "version": v}));
            } else {
                eprintln!("sealed {name} version {v} (current)");
            }
            Ok(0)
        }
        SecretCmd::Get { name, reveal, output } => {
            let name = user_name(&name)?;
            let mut stdout = crate::out::Stdout;
            if std::io::stdout().is_terminal() && !reveal {
                return Err(CliError::new(
                    "refusing to print a secret to a terminal: pipe it (`| …`, `> file`) or pass --reveal",
                ));
            }
            let tw = open::open(g, Need::Audited).await?;
            let value = tw.read_current(&name).await;
            tw.shutdown().await?;
            let Some(value) = value? else { return Err(CliError::new(format!("no secret {name}"))) };
            if output.json() {
                // The value is the point of the command: printed once, as text prints it, in
                // `value` (UTF-8) or `value_hex`; every copy of it is wiped after.
                let bytes = value.expose_secret();
                let (field, encoded) = match std::str::from_utf8(bytes) {
                    Ok(text) => ("value", Zeroizing::new(serde_json::to_string(text)?)),
                    Err(_) => {
                        let hex = Zeroizing::new(tokenward::core::hex::encode(bytes));
                        ("value_hex", Zeroizing::new(format!("\"{}\"", hex.as_str())))
                    }
                };
                let line = Zeroizing::new(format!(
                    "{{\"name\":{},\"{field}\":{}}}\n",
                    serde_json::to_string(name.as_str())?,
                    encoded.as_str()
                ));
                stdout.write_all(line.as_bytes()).map_err(CliError::output(None))?;
            } else {
                stdout.write_all(value.expose_secret()).map_err(CliError::output(None))?;
            }
            stdout.flush().map_err(CliError::output(None))?;
            Ok(0)
        }
        SecretCmd::List { output } => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let names = tw.secret_names().await;
            tw.shutdown().await?;
            for (name, version) in names? {
                if output.json() {
                    println!("{}", json!({"name": name.as_str(), "latest_version": version}));
                } else {
                    println!("{name}  v{version}");
                }
            }
            Ok(0)
        }
    }
}

/// `rewrap`: every data key under the KEK the store is opened with now, audited as a key rotation.
/// `migrate`: the operator's deliberate upgrade of a store written by an older Tokenward.
pub(crate) async fn migrate(g: &Global, output: Output) -> Result<u8> {
    let tw = open::open_with(g, Need::Audited, open::builder(g, false)?.migrate()).await?;
    let done = tw.migration().cloned().unwrap_or_default();
    tw.shutdown().await?;
    if output.json() {
        println!(
            "{}",
            json!({"changed": done.changed(), "records_rewritten": done.records_rewritten,
                   "markers_written": done.markers_written, "digest_key_created": done.digest_key_created})
        );
    } else if done.changed() {
        eprintln!(
            "migrated: {} record(s) rewritten, marker(s) written: {}{}",
            done.records_rewritten,
            if done.markers_written.is_empty() { "none".into() } else { done.markers_written.join(", ") },
            if done.digest_key_created { ", digest key created" } else { "" }
        );
    } else {
        eprintln!("nothing to migrate: the store is current");
    }
    Ok(0)
}

pub(crate) async fn rewrap(g: &Global, output: Output) -> Result<u8> {
    let tw = open::open(g, Need::Audited).await?;
    let report = tw.secrets().rotate_kek(256).await?;
    let kek = tw.secrets().current_kek().to_owned();
    tw.shutdown().await?;
    if output.json() {
        println!("{}", json!({"rewrapped": report.rewrapped, "kek": kek}));
    } else {
        eprintln!("rewrapped {} data key(s) under {kek}", report.rewrapped);
    }
    Ok(0)
}

/// `rekey --to KMS`: the store moved to another KEK (see [`tokenward::Tokenward::move_kek`]).
pub(crate) async fn rekey(g: &Global, a: RekeyArgs) -> Result<u8> {
    let to = a.to.to_string();
    let tw = open::open_with(g, Need::Audited, open::builder(g, false)?.moving_kek_to(a.to)).await?;
    let moved = tw.move_kek().await;
    tw.shutdown().await?;
    let report = moved?;
    if a.output.json() {
        println!("{}", json!({"to": to, "rewrapped": report.rewrapped}));
        return Ok(0);
    }
    eprintln!(
        "moved to {to}: {} data key(s) rewrapped; open the store with --kms {to} from now on",
        report.rewrapped
    );
    Ok(0)
}
