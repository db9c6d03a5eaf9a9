//! `tokenward policy …`, `role …`, `principal …`: policy as code, stored versioned.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::json;
use tokenward::Tokenward;
use tokenward::policy::{ApplyOptions, PolicyFile, PrincipalSpec, RoleSpec};

use crate::cli::{Global, Output};
use crate::error::{CliError, Result};
use crate::open::{self, Need};

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyCmd {
    /// Check a policy file, show what it changes, and store it as the next version.
    Apply {
        /// The policy file (TOML).
        file: PathBuf,
        /// Only show the changes.
        #[arg(long)]
        dry_run: bool,
        /// Refuse unless the stored version is this one (0: none yet).
        #[arg(long)]
        expect_version: Option<u64>,
        /// Apply even if active tokens would be orphaned.
        #[arg(long)]
        allow_orphans: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Check a policy file without a store (for CI on the policy repository).
    Check {
        /// The policy file (TOML).
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Print the stored policy (or one version of it) as TOML.
    Show {
        /// A version from `policy history` (default: the current one).
        #[arg(value_name = "VERSION")]
        at: Option<u64>,
        #[command(flatten)]
        output: Output,
    },
    /// Every stored version: when, by whom, its SHA-256.
    History {
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum RoleCmd {
    /// Add (or replace) a role.
    Add {
        name: String,
        /// A scope it grants (repeat for more).
        #[arg(long = "grant", required = true)]
        grants: Vec<String>,
        /// The longest token it allows (e.g. 1h, 7d).
        #[arg(long)]
        max_ttl: String,
        /// Apply even if active tokens would be orphaned.
        #[arg(long)]
        allow_orphans: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List roles.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Remove a role (refused while a principal holds it).
    Remove {
        name: String,
        #[arg(long)]
        allow_orphans: bool,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrincipalCmd {
    /// Add (or replace) a principal.
    Add {
        name: String,
        /// A role it holds (repeat for more).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        #[arg(long)]
        allow_orphans: bool,
        #[command(flatten)]
        output: Output,
    },
    /// List principals.
    List {
        #[command(flatten)]
        output: Output,
    },
    /// Remove a principal (refused while it holds active tokens, unless told).
    Remove {
        name: String,
        #[arg(long)]
        allow_orphans: bool,
        #[command(flatten)]
        output: Output,
    },
}

pub(crate) fn read_file(path: &Path) -> Result<PolicyFile> {
    let text = std::fs::read_to_string(path).map_err(CliError::read(path))?;
    PolicyFile::parse(&text).map_err(|e| CliError::new(format!("{}: {e}", path.display())))
}

/// The stored policy file and its version (an empty file, version 0, if none).
pub(crate) async fn stored(tw: &Tokenward) -> Result<(PolicyFile, u64)> {
    match tw.stored_policy().await? {
        Some(r) => Ok((r.file()?, r.version)),
        None => Ok((PolicyFile::default(), 0)),
    }
}

/// What `apply` did: the changes, the active tokens they orphan, the version stored (or, in a
/// dry run or when nothing changed, the version that stays), and whether a version was stored.
pub(crate) struct Applied {
    changes: Vec<String>,
    orphans: Vec<tokenward::policy::Orphan>,
    version: u64,
    dry_run: bool,
    stored: bool,
}

impl Applied {
    /// As JSON: `{"changes", "orphans", "version", "dry_run", "applied"}`.
    pub(crate) fn json(&self) -> serde_json::Value {
        json!({
            "changes": self.changes,
            "orphans": self.orphans.iter().map(orphan_json).collect::<Vec<_>>(),
            "version": self.version,
            "dry_run": self.dry_run,
            "applied": self.stored,
        })
    }

    /// Prints it: JSON, or the changes (stdout), the orphans (stderr) and the outcome (stdout).
    pub(crate) fn print(&self, output: Output) {
        if output.json() {
            println!("{}", self.json());
            return;
        }
        for line in &self.changes {
            println!("{line}");
        }
        print_orphans(&self.orphans);
        if self.dry_run {
            println!("dry run: nothing stored (stored version {})", self.version);
        } else if self.stored {
            println!("applied: policy version {}", self.version);
        } else {
            println!("no changes (stored version {})", self.version);
        }
    }
}

fn orphan_json(o: &tokenward::policy::Orphan) -> serde_json::Value {
    json!({"token": o.token.to_string(), "principal": o.principal, "purpose": o.purpose, "why": o.why})
}

fn print_orphans(orphans: &[tokenward::policy::Orphan]) {
    for o in orphans {
        eprintln!("orphaned: token {} ({} / {}): {}", o.token, o.principal, o.purpose, o.why);
    }
}

/// Works out what applying `file` changes, then applies it (unless `dry_run`); refuses (naming
/// the tokens on stderr) when it orphans active tokens, unless `allow_orphans`.
pub(crate) async fn apply(
    tw: &Tokenward,
    file: &PolicyFile,
    expect: Option<u64>,
    dry_run: bool,
    allow_orphans: bool,
) -> Result<Applied> {
    if dry_run {
        let (old, version) = stored(tw).await?;
        let changes = file.diff(&old);
        let orphans = tw.policy_orphans(file).await?;
        return Ok(Applied { changes, orphans, version, dry_run, stored: false });
    }
    // The library decides (expected version, orphans, no change) and writes; this only shows it.
    let mut options = ApplyOptions::new().allow_orphans(allow_orphans);
    if let Some(v) = expect {
        options = options.expect_version(v);
    }
    match tw.apply_policy(file, options).await {
        Ok(applied) if applied.diff.is_empty() => Ok(Applied {
            changes: Vec::new(),
            orphans: Vec::new(),
            version: applied.version,
            dry_run,
            stored: false,
        }),
        Ok(applied) => Ok(Applied {
            changes: applied.diff,
            orphans: applied.orphans,
            version: applied.version,
            dry_run,
            stored: true,
        }),
        Err(e @ tokenward::Error::PolicyOrphans(_)) => {
            print_orphans(&tw.policy_orphans(file).await?);
            Err(CliError::new(format!("refusing: {e}; revoke them first, or pass --allow-orphans")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Reads `path` and checks it whole (what `init` does before it creates anything).
pub(crate) fn read_checked(path: &Path) -> Result<PolicyFile> {
    let file = read_file(path)?;
    file.check().map_err(|e| CliError::new(format!("{}: {e}", path.display())))?;
    Ok(file)
}

pub(crate) async fn run(g: &Global, c: PolicyCmd) -> Result<u8> {
    match c {
        PolicyCmd::Check { file, output } => {
            let f = read_file(&file)?;
            if output.json() {
                println!(
                    "{}",
                    json!({"file": file.display().to_string(), "ok": true, "roles": f.roles.len(),
                           "principals": f.principals.len(), "credentials": f.credentials.len()})
                );
                return Ok(0);
            }
            println!(
                "{}: ok ({} role(s), {} principal(s), {} credential(s))",
                file.display(),
                f.roles.len(),
                f.principals.len(),
                f.credentials.len()
            );
            Ok(0)
        }
        PolicyCmd::Apply { file, dry_run, expect_version, allow_orphans, output } => {
            let need = if dry_run { Need::ReadOnly } else { Need::Audited };
            let tw = open::open(g, need).await?;
            let r = async {
                let file = read_file(&file)?;
                apply(&tw, &file, expect_version, dry_run, allow_orphans).await
            }
            .await;
            tw.shutdown().await?;
            r?.print(output);
            Ok(0)
        }
        PolicyCmd::Show { at: version, output } => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let history = tw.policy_history().await?;
            tw.shutdown().await?;
            let record = match version {
                Some(v) => history.into_iter().find(|r| r.version == v),
                None => history.into_iter().last(),
            };
            match record {
                Some(r) if output.json() => {
                    println!(
                        "{}",
                        json!({"version": r.version, "applied_at": r.applied_at, "actor": r.actor,
                               "sha256": r.sha256, "text": r.text})
                    );
                    Ok(0)
                }
                Some(r) => {
                    println!(
                        "# policy version {} applied {} by {} (sha256 {})",
                        r.version, r.applied_at, r.actor, r.sha256
                    );
                    print!("{}", r.text);
                    Ok(0)
                }
                None => Err(CliError::new(match version {
                    Some(v) => format!("no policy version {v}"),
                    None => "no policy stored yet: `tokenward policy apply FILE`".into(),
                })),
            }
        }
        PolicyCmd::History { output } => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let history = tw.policy_history().await?;
            tw.shutdown().await?;
            for r in &history {
                if output.json() {
                    println!(
                        "{}",
                        json!({"version": r.version, "applied_at": r.applied_at, "actor": r.actor, "sha256": r.sha256})
                    );
                } else {
                    println!(
                        "v{}  {}  {}  sha256:{}",
                        r.version,
                        crate::out::time(r.applied_at),
                        r.actor,
                        r.sha256
                    );
                }
            }
            Ok(0)
        }
    }
}

/// Edits the stored policy with `edit` and applies the result (compare-and-swap on the version
/// read).
async fn edit(
    g: &Global,
    allow_orphans: bool,
    output: Output,
    edit: impl FnOnce(&mut PolicyFile) -> Result<()>,
) -> Result<u8> {
    let tw = open::open(g, Need::Audited).await?;
    let result = async {
        let (mut file, version) = stored(&tw).await?;
        edit(&mut file)?;
        file.check()?;
        apply(&tw, &file, Some(version), false, allow_orphans).await
    }
    .await;
    tw.shutdown().await?;
    result?.print(output);
    Ok(0)
}

pub(crate) async fn role(g: &Global, c: RoleCmd) -> Result<u8> {
    match c {
        RoleCmd::Add { name, grants, max_ttl, allow_orphans, output } => {
            edit(g, allow_orphans, output, |f| {
                let spec = RoleSpec::new(name.clone(), grants, max_ttl);
                match f.roles.iter_mut().find(|r| r.name == name) {
                    Some(r) => *r = spec,
                    None => f.roles.push(spec),
                }
                Ok(())
            })
            .await
        }
        RoleCmd::Remove { name, allow_orphans, output } => {
            edit(g, allow_orphans, output, |f| {
                if let Some(p) = f.principals.iter().find(|p| p.roles.contains(&name)) {
                    return Err(CliError::new(format!(
                        "principal {} holds role {name}: remove it there first",
                        p.name
                    )));
                }
                let before = f.roles.len();
                f.roles.retain(|r| r.name != name);
                if f.roles.len() == before {
                    return Err(CliError::new(format!("no role {name}")));
                }
                Ok(())
            })
            .await
        }
        RoleCmd::List { output } => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let (file, _) = stored(&tw).await?;
            tw.shutdown().await?;
            for r in &file.roles {
                if output.json() {
                    println!("{}", json!({"name": r.name, "grants": r.grants, "max_ttl": r.max_ttl}));
                } else {
                    println!("{}  max {}  {}", r.name, r.max_ttl, r.grants.join(" "));
                }
            }
            Ok(0)
        }
    }
}

pub(crate) async fn principal(g: &Global, c: PrincipalCmd) -> Result<u8> {
    match c {
        PrincipalCmd::Add { name, roles, allow_orphans, output } => {
            edit(g, allow_orphans, output, |f| {
                let spec = PrincipalSpec::new(name.clone(), roles);
                match f.principals.iter_mut().find(|p| p.name == name) {
                    Some(p) => *p = spec,
                    None => f.principals.push(spec),
                }
                Ok(())
            })
            .await
        }
        PrincipalCmd::Remove { name, allow_orphans, output } => {
            edit(g, allow_orphans, output, |f| {
                let before = f.principals.len();
                f.principals.retain(|p| p.name != name);
                if f.principals.len() == before {
                    return Err(CliError::new(format!("no principal {name}")));
                }
                Ok(())
            })
            .await
        }
        PrincipalCmd::List { output } => {
            let tw = open::open(g, Need::ReadOnly).await?;
            let (file, _) = stored(&tw).await?;
            tw.shutdown().await?;
            for p in &file.principals {
                if output.json() {
                    println!("{}", json!({"name": p.name, "roles": p.roles}));
                } else {
                    println!("{}  {}", p.name, p.roles.join(" "));
                }
            }
            Ok(0)
        }
    }
}
