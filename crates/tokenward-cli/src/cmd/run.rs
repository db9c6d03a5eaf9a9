//! `run --secret NAME=ENV… -- CMD`: start a command with the current secrets in its environment,
//! nothing written to disk, restarted when one rotates (with `--restart-on-rotate`).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::time::Duration;

use clap::Args;
use tokenward::Tokenward;
use tokenward::secrecy::ExposeSecret;
use tokenward::store::{Label, SecretName};
use zeroize::Zeroizing;

use crate::cli::Global;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// `SECRET=ENV`: put the current value of SECRET in the variable ENV (repeat for more). For a
    /// credential under rotation, its secret; `SECRET#handle=ENV` puts its handle (an AWS access
    /// key id).
    #[arg(long = "secret", required = true)]
    pub(crate) secrets: Vec<String>,
    /// Restart the command when one of its secrets rotates.
    #[arg(long)]
    pub(crate) restart_on_rotate: bool,
    /// How often to look for a rotation (with --restart-on-rotate).
    #[arg(long, default_value = "1s")]
    pub(crate) poll: String,
    /// Hand this variable on to the command although it can unlock the store, its key or its
    /// database (repeat for more). The command gets this environment minus every `TOKENWARD_*`,
    /// `AWS_*`, `BAO_*` and `VAULT_*` variable, plus its secrets.
    #[arg(long = "pass-env", value_name = "NAME")]
    pub(crate) pass_env: Vec<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true)]
    pub(crate) command: Vec<String>,
}

/// How long a restarted command gets to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

struct Binding {
    name: SecretName,
    env: String,
    /// For a rotated credential: its secret (default) or its handle (`NAME#handle=ENV`: an AWS
    /// access key id, an OpenBao accessor).
    part: Part,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Secret,
    Handle,
}

fn bindings(specs: &[String]) -> Result<Vec<Binding>> {
    specs
        .iter()
        .map(|s| {
            let (name, env) = s
                .split_once('=')
                .ok_or_else(|| CliError::new(format!("--secret {s}: expected SECRET=ENV_VAR")))?;
            if env.is_empty()
                || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                || env.as_bytes()[0].is_ascii_digit()
            {
                return Err(CliError::new(format!(
                    "--secret {s}: {env:?} is not an environment variable name"
                )));
            }
            let (name, part) = match name.rsplit_once('#') {
                Some((n, "handle")) => (n, Part::Handle),
                Some((n, "secret")) => (n, Part::Secret),
                Some((_, other)) => {
                    return Err(CliError::new(format!(
                        "--secret {s}: #{other}: expected #handle or #secret"
                    )));
                }
                None => (name, Part::Secret),
            };
            Ok(Binding { name: crate::cmd::secrets::user_name(name)?, env: env.to_owned(), part })
        })
        .collect()
}

/// The secrets' current values (each read audited), as environment values, and their versions.
async fn values(
    tw: &Tokenward,
    bindings: &[Binding],
) -> Result<(Vec<(String, Zeroizing<Vec<u8>>)>, Vec<u64>)> {
    let mut env = Vec::new();
    let mut versions = Vec::new();
    for b in bindings {
        let version = tw.secrets().labels(&b.name).await?.get(&Label::Current).copied();
        // A credential under rotation: its secret (or handle); a plain secret: its bytes.
        let value: Zeroizing<Vec<u8>> = match tw.read_credential(&b.name).await {
            Ok(Some(c)) => Zeroizing::new(match b.part {
                Part::Secret => c.secret.expose_secret().as_bytes().to_vec(),
                Part::Handle => c.handle.as_bytes().to_vec(),
            }),
            _ if b.part == Part::Handle => {
                return Err(CliError::new(format!(
                    "{}#handle: {} is not a credential under rotation",
                    b.name, b.name
                )));
            }
            _ => {
                let (_, value) = tw.read_current_version(&b.name).await?.ok_or_else(|| {
                    CliError::new(format!("no secret {} (or it has no current version)", b.name))
                })?;
                Zeroizing::new(value.expose_secret().clone())
            }
        };
        if value.contains(&0) {
            return Err(CliError::new(format!(
                "{}: a value with a NUL byte cannot be an environment variable",
                b.name
            )));
        }
        env.push((b.env.clone(), value));
        versions.push(version.unwrap_or(0));
    }
    Ok((env, versions))
}

/// Current versions without reading any value (labels only).
async fn versions(tw: &Tokenward, bindings: &[Binding]) -> Result<Vec<Option<u64>>> {
    let mut out = Vec::new();
    for b in bindings {
        out.push(tw.secrets().labels(&b.name).await?.get(&Label::Current).copied());
    }
    Ok(out)
}

/// Starts the command: the environment minus every key variable (bar `--pass-env`), plus its
/// secrets; it dies with this process.
fn spawn(
    command: &[String],
    env: &[(String, Zeroizing<Vec<u8>>)],
    pass_env: &[String],
) -> Result<tokio::process::Child> {
    let mut c = crate::child::command(&command[0], pass_env);
    c.args(&command[1..]);
    for (k, v) in env {
        #[cfg(unix)]
        let value: OsString =
            <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(v.as_slice()).to_owned();
        #[cfg(not(unix))]
        let value: OsString = String::from_utf8_lossy(v).into_owned().into();
        c.env(k, value);
    }
    c.spawn().map_err(|e| CliError::new(format!("starting {}: {e}", command[0])))
}

#[cfg(unix)]
fn signal(child: &tokio::process::Child, sig: nix::sys::signal::Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

/// Stops the child: SIGTERM, then SIGKILL after the grace period.
async fn stop(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    signal(child, nix::sys::signal::Signal::SIGTERM);
    wait_or_kill(child).await;
}

/// Waits the grace period for the child to exit, then kills it.
async fn wait_or_kill(child: &mut tokio::process::Child) {
    if tokio::time::timeout(GRACE, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

/// Waiting for the command failed.
fn waiting(e: std::io::Error) -> CliError {
    CliError::new(format!("waiting for the command: {e}"))
}

fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return u8::try_from(code).unwrap_or(1);
    }
    #[cfg(unix)]
    if let Some(sig) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return u8::try_from(128 + sig).unwrap_or(1);
    }
    1
}

pub(crate) async fn run(g: &Global, a: RunArgs) -> Result<u8> {
    let mut signals = crate::signals::Signals::catch_for_child()?;
    let bindings = bindings(&a.secrets)?;
    for name in &a.pass_env {
        if !crate::child::unlocks_the_store(name.as_ref()) {
            return Err(CliError::new(format!(
                "--pass-env {name}: the command inherits it anyway (only key variables are withheld)"
            )));
        }
    }
    let poll = out::duration(&a.poll, "--poll")?.to_std().unwrap_or(Duration::from_secs(1));
    let tw = open::open(g, Need::Audited).await?;
    let (env, mut current) = match values(&tw, &bindings).await {
        Ok(v) => v,
        Err(e) => {
            tw.shutdown().await?;
            return Err(e);
        }
    };
    let mut child = spawn(&a.command, &env, &a.pass_env)?;
    drop(env);
    let mut seen: BTreeMap<usize, u64> = current.iter().copied().enumerate().collect();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let code = loop {
        tokio::select! {
            status = child.wait() => {
                break exit_code(status.map_err(waiting)?);
            }
            caught = signals.recv() => {
                // Pass the signal on; on SIGTERM or SIGINT, wait for the command to finish.
                #[cfg(unix)]
                if let Some(pid) = child.id() {
                    caught.send_to(pid);
                }
                if caught.stops() {
                    wait_or_kill(&mut child).await;
                    break exit_code(child.wait().await.map_err(waiting)?);
                }
            }
            _ = ticker.tick(), if a.restart_on_rotate => {
                let now = match versions(&tw, &bindings).await {
                    Ok(v) => v,
                    Err(e) => { eprintln!("tokenward run: checking for rotations: {e}"); continue; }
                };
                let changed: Vec<&str> = now
                    .iter()
                    .enumerate()
                    .filter(|(i, v)| v.is_some() && **v != seen.get(i).copied())
                    .map(|(i, _)| bindings[i].name.as_str())
                    .collect();
                if changed.is_empty() {
                    continue;
                }
                eprintln!("tokenward run: {} rotated; restarting the command", changed.join(", "));
                match values(&tw, &bindings).await {
                    Ok((env, versions)) => {
                        stop(&mut child).await;
                        child = spawn(&a.command, &env, &a.pass_env)?;
                        current = versions;
                        seen = current.iter().copied().enumerate().collect();
                    }
                    Err(e) => eprintln!("tokenward run: reading the rotated secrets: {e}; keeping the command running"),
                }
            }
        }
    };
    tw.shutdown().await?;
    Ok(code)
}
