//! The command line (clap derive): the global options, the output convention every command
//! shares, and the list of commands. Each command's own arguments live beside its code in
//! `cmd/` (see `cmd/mod.rs`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cmd::alerts::AlertsCmd;
use crate::cmd::audit::AuditCmd;
use crate::cmd::completions::CompletionsArgs;
use crate::cmd::drill::DrillArgs;
use crate::cmd::init::InitArgs;
use crate::cmd::inventory::InventoryArgs;
use crate::cmd::policy::{PolicyCmd, PrincipalCmd, RoleCmd};
use crate::cmd::report::ReportArgs;
use crate::cmd::rotate::{AdoptArgs, DaemonArgs, RotateArgs};
use crate::cmd::run::RunArgs;
use crate::cmd::scan::ScanArgs;
use crate::cmd::secrets::{RekeyArgs, SecretCmd};
use crate::cmd::serve::{ExchangeArgs, ServeArgs};
use crate::cmd::tokens::{IssueArgs, ListArgs, RevokeArgs, ShowArgs, VerifyArgs};

/// Least-privilege, expiring, rotatable API tokens: issue, verify, store, rotate, audit and scan.
///
/// Exit status: 0 success (allowed, clean); 1 denied, findings, or report findings; 2 an error.
#[derive(Debug, Parser)]
#[command(name = "tokenward", version, about, long_about = None, propagate_version = true, after_help = TOUR)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

const TOUR: &str = "\
Examples:
  export TOKENWARD_PASSPHRASE=…            # or --key-file, or be asked on a terminal
  tokenward init --prefix acme --policy policy.toml
  tokenward issue --principal billing-api --purpose read-logs --scope 's3:bucket/logs/*:read' --ttl 1h
  echo \"$TOKEN\" | tokenward verify --scope s3:bucket/logs/app.log:read
  tokenward list --expiring-within 7d
  tokenward scan . --format sarif --revoke > findings.sarif
  tokenward run --secret billing/db-password=DB_PASSWORD -- ./server
  tokenward report --html posture.html

Exit status: 0 success, 1 denied or findings, 2 an error.";

/// Where the store and the audit log are, and how the key is found.
#[derive(Debug, Clone, Args)]
pub(crate) struct Global {
    /// The embedded store (one SQLite file).
    #[arg(long, global = true, env = "TOKENWARD_STORE", default_value = "tokenward.db")]
    pub(crate) store: PathBuf,
    /// A PostgreSQL store (and audit log) instead of the embedded one.
    #[cfg(feature = "postgres")]
    #[arg(long, global = true, env = "TOKENWARD_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<String>,
    /// A file holding the 256-bit key (64 hex or 44 base64 characters) instead of a passphrase.
    /// Without it the passphrase comes from TOKENWARD_PASSPHRASE or, on a terminal, a prompt.
    #[arg(long, global = true, env = "TOKENWARD_KEY_FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// The key-encryption key in a KMS instead: `transit:MOUNT/KEY` (OpenBao/Vault Transit; the
    /// server from BAO_ADDR, the token from BAO_TOKEN, a CA from BAO_CACERT) or `aws-kms:KEY`
    /// (AWS KMS; region and credentials from AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, AWS_ENDPOINT_URL). A store keeps the KEK it was created with.
    #[arg(long, global = true, env = "TOKENWARD_KMS", conflicts_with = "key_file")]
    pub(crate) kms: Option<tokenward::KmsKey>,
    /// The audit log (default: next to the store, `<store stem>.audit.jsonl`).
    #[arg(long, global = true, env = "TOKENWARD_AUDIT_LOG")]
    pub(crate) audit_log: Option<PathBuf>,
    /// A witness for the audit log's signed tree heads, out of the store writer's reach:
    /// `dir:PATH` (a directory on another mount) or `s3://BUCKET/PREFIX/` (a bucket created with
    /// object lock; region, credentials and endpoint from the AWS_* environment). Heads are
    /// pushed after each revocation and by the daemon; every open, `audit verify` and `alerts
    /// check` fail closed when the log is behind what it holds.
    #[arg(long, global = true, env = "TOKENWARD_WITNESS")]
    pub(crate) witness: Option<String>,
    /// How long an S3 witness retains each head (object lock, compliance mode), in days.
    #[arg(long, global = true, env = "TOKENWARD_WITNESS_RETAIN_DAYS", default_value_t = 365)]
    pub(crate) witness_retain_days: u32,
    /// Who you are, in audit entries (default: $USER).
    #[arg(long, global = true, env = "TOKENWARD_ACTOR")]
    pub(crate) actor: Option<String>,
    /// Colour: auto (a terminal), always, never.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
    /// More log lines on stderr (-v info, -vv debug); TOKENWARD_LOG takes a full filter.
    #[arg(long, short, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Only errors on stderr.
    #[arg(long, short, global = true, conflicts_with = "verbose")]
    pub(crate) quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create a store: key check, token prefix, audit log, an optional first policy. A passphrase
    /// must be at least 12 characters, not a repeat, a run or a common password.
    Init(InitArgs),
    /// Policy as code: roles, principals, rules and credentials under rotation.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Add, list or remove roles (edits the stored policy, as `policy apply` does).
    #[command(subcommand)]
    Role(RoleCmd),
    /// Add, list or remove principals (edits the stored policy, as `policy apply` does).
    #[command(subcommand)]
    Principal(PrincipalCmd),
    /// Issue a token (printed once, to stdout only).
    #[command(
        after_help = "Example:\n  tokenward issue --principal billing-api --purpose read-logs --scope 's3:bucket/logs/*:read' --ttl 1h --format json"
    )]
    Issue(IssueArgs),
    /// Verify a token read from stdin for a request scope (exit 0 allowed, 1 denied).
    #[command(
        after_help = "Example:\n  printf %s \"$TOKEN\" | tokenward verify --scope s3:bucket/logs/app.log:read --source 10.0.0.7"
    )]
    Verify(VerifyArgs),
    /// List tokens (never a secret).
    #[command(
        after_help = "Examples:\n  tokenward list --expiring-within 7d\n  tokenward list --unused-since 30d --format json\n  tokenward list --principal billing-api --all"
    )]
    List(ListArgs),
    /// Show one token's record.
    Show(ShowArgs),
    /// Revoke a token and every token under it.
    #[command(after_help = "Example:\n  tokenward revoke IANXjZgxg46quGmC9 --reason 'leaked in a CI log'")]
    Revoke(RevokeArgs),
    /// Secrets sealed in the store.
    #[command(subcommand)]
    Secret(SecretCmd),
    /// Rewrap every data key under the current key-encryption key (run after rotating the KMS
    /// key, e.g. `bao write -f transit/keys/KEY/rotate`; resumable, safe to run twice).
    Rewrap {
        #[command(flatten)]
        output: Output,
    },
    /// Move the store to another key-encryption key (another KMS key, or from a passphrase or key
    /// file to a KMS): opened with the current key as usual, every data key and the key check
    /// rewrapped under `--to` (audited; resumable: after a crash, run it again with the same
    /// keys). Afterwards open the store with `--kms <to>`; the old key no longer opens it.
    #[command(after_help = "Example:\n  tokenward --kms aws-kms:alias/old rekey --to aws-kms:alias/new")]
    Rekey(RekeyArgs),
    /// Upgrade a store written by an older Tokenward (audited): records in the older form whose
    /// integrity tag holds are rewritten, the integrity markers written. An open never does this
    /// by itself; nothing that fails its tag is ever accepted.
    Migrate {
        #[command(flatten)]
        output: Output,
    },
    /// Rotate a declared credential now, or every one that is due.
    Rotate(RotateArgs),
    /// Take a credential made outside Tokenward (an IAM access key, an OpenBao token) under a
    /// declared credential, as its current version, with no gap: its secret is read from stdin,
    /// proven at the target (the key acts as the declared user; the token authenticates) and
    /// sealed. The next rotation replaces it like any other. Refused when the credential already
    /// has a version.
    #[command(
        after_help = "Examples:\n  printf %s \"$AWS_SECRET_ACCESS_KEY\" | tokenward adopt aws/billing-key --handle AKIA…\n  printf %s \"$BAO_TOKEN\" | tokenward adopt openbao/ci-token"
    )]
    Adopt(AdoptArgs),
    /// Run the scheduler, upkeep and alerts until SIGTERM or SIGINT, then drain.
    Daemon(DaemonArgs),
    /// Serve the token exchange (RFC 8693: a workload's OIDC token for a short-lived token, under
    /// the stored policy's federation tables) and a forward-auth endpoint, until SIGTERM/SIGINT.
    #[command(
        after_help = "Endpoints:\n  POST /token                RFC 8693 token exchange (DPoP-bound when the request has a DPoP proof)\n  GET|POST /authorize/SCOPE  200 if the Bearer or DPoP token allows SCOPE (401/403 otherwise), for a proxy's auth_request\n\nExample:\n  tokenward serve --listen 127.0.0.1:8787 --public-url https://auth.example.com"
    )]
    Serve(ServeArgs),
    /// Exchange an OIDC token (a CI job's, a pod's) for a Tokenward token at a `serve` endpoint:
    /// reads the subject token from a file or stdin, prints only the new token.
    #[command(
        after_help = "Example (GitHub Actions):\n  curl -sH \"Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN\" \"$ACTIONS_ID_TOKEN_REQUEST_URL&audience=tokenward\" | jq -r .value \\\n    | tokenward exchange --url https://auth.example.com/token --scope deploy:service/api/*:release"
    )]
    Exchange(ExchangeArgs),
    /// Start a command with current secrets in its environment (nothing written to disk).
    #[command(
        after_help = "Example:\n  tokenward run --secret billing/db-password=DB_PASSWORD --restart-on-rotate -- ./server --port 8080"
    )]
    Run(RunArgs),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Scan a tree, git history, an image or an S3 bucket for leaked credentials.
    #[command(
        after_help = "Examples:\n  tokenward scan . --format sarif > findings.sarif\n  tokenward scan git:. --baseline .tokenward-baseline.json\n  tokenward scan image:app.tar --revoke\n  AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… tokenward scan s3://artifacts/builds/\n  tokenward scan . git:. image:app.tar\n  git show HEAD:config.env | tokenward scan -\n  PGPASSWORD=… tokenward scan postgres://scanner@db.internal/app --schema public\n\nExit status: 0 clean, 1 findings, 2 an error."
    )]
    Scan(ScanArgs),
    /// The posture report: what an auditor asks about these tokens.
    #[command(
        after_help = "Examples:\n  tokenward report\n  tokenward report --format json > posture.json\n  tokenward report --html posture.html --expiring-within 14d"
    )]
    Report(ReportArgs),
    /// Every non-human credential the deployment can see: the AWS accounts' access keys and the
    /// OpenBao servers' tokens its declared credentials reach (with their declared admin access),
    /// and its own tokens — owner, age, last use, expiry, managed or not, findings (exit 1 when
    /// there is one). Never a secret.
    #[command(
        after_help = "Examples:\n  tokenward inventory\n  tokenward inventory --format json --unused-for 30d\n\nFindings: never-used, unused, too-old, no-expiry, several-active-keys, drifted (a key of a declared credential's IAM user its record does not know)."
    )]
    Inventory(InventoryArgs),
    /// Rehearse a leak: plant a live token, scan, revoke and replace, measure the risk window.
    #[command(
        after_help = "Examples:\n  tokenward drill --repeat 10 --format json\n  tokenward drill --credential billing-api/logs-token --html drill.html"
    )]
    Drill(DrillArgs),
    /// Alerts for cron: tokens about to expire, rotations overdue or rolled back, a broken audit
    /// chain, scan findings, revoked tokens still presented (exit 1 when there is one).
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// How a command prints what it has to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// Lines for people.
    Text,
    /// JSON for programs (`docs/cli.md` documents each command's).
    Json,
}

/// The output convention every command with output shares: `--format text|json`.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct Output {
    /// Print text for people, or JSON for programs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

impl Output {
    /// Whether JSON was asked for.
    pub(crate) fn json(self) -> bool {
        self.format == Format::Json
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
