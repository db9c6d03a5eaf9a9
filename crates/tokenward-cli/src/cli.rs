//! The command line: global options and every subcommand (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCmd {
    /// Check once and send what is found to the sinks.
    #[command(
        after_help = "Example (cron):\n  tokenward alerts check --webhook https://hooks.example/tw --webhook-secret alerts/hmac-key --scan /srv/deploy"
    )]
    Check(AlertArgs),
}

/// Where alerts go.
#[derive(Debug, Clone, Args)]
pub(crate) struct AlertSinks {
    /// POST each alert (JSON) here, signed: header X-Tokenward-Signature, sha256= and the hex HMAC-SHA256 of the body.
    #[arg(long)]
    pub(crate) webhook: Option<WebhookUrl>,
    /// The store secret holding the webhook's HMAC key.
    #[arg(long)]
    pub(crate) webhook_secret: Option<String>,
    /// Run this (through sh -c) for each alert, the alert's JSON on its stdin.
    #[arg(long = "alert-command")]
    pub(crate) command: Option<String>,
    /// Do not print alerts on stdout.
    #[arg(long)]
    pub(crate) no_stdout: bool,
    /// How alerts are printed on stdout: JSON lines (the default: stdout is one of the alert
    /// sinks, read by programs) or text, one line each.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct AlertArgs {
    #[command(flatten)]
    pub(crate) sinks: AlertSinks,
    /// A token expiring within this long is an alert.
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// Also scan these trees; every finding is an alert (repeat for more).
    #[arg(long)]
    pub(crate) scan: Vec<PathBuf>,
    /// Also read the inventory (`tokenward inventory`, default thresholds): one alert per finding
    /// kind, naming the credentials.
    #[arg(long)]
    pub(crate) inventory: bool,
}

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

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The principal (declared in the policy).
    #[arg(long)]
    pub(crate) principal: String,
    /// What the token is for (one active token per purpose).
    #[arg(long)]
    pub(crate) purpose: String,
    /// A scope (repeat for more), within the principal's roles.
    #[arg(long = "scope", required = true)]
    pub(crate) scopes: Vec<String>,
    /// Its lifetime (e.g. 15m, 1h, 7d), within the roles' caps.
    #[arg(long)]
    pub(crate) ttl: String,
    /// At most this many uses.
    #[arg(long)]
    pub(crate) max_uses: Option<u64>,
    /// Expires when unused this long.
    #[arg(long)]
    pub(crate) idle_timeout: Option<String>,
    /// Replaces this token (a rotation by hand: the old one may stay active alongside).
    #[arg(long)]
    pub(crate) replacing: Option<String>,
    /// `--format json`: a JSON object (with the token) instead of the token alone.
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The request scope to check (e.g. `s3:bucket/prod-logs/app.log:read`).
    #[arg(long)]
    pub(crate) scope: String,
    /// Where the token was presented from (recorded in the audit log).
    #[arg(long)]
    pub(crate) source: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// Only tokens expiring within this long (e.g. 7d).
    #[arg(long)]
    pub(crate) expiring_within: Option<String>,
    /// Only tokens not used for this long (never-used included).
    #[arg(long)]
    pub(crate) unused_since: Option<String>,
    /// Only revoked tokens.
    #[arg(long)]
    pub(crate) revoked: bool,
    /// Include expired and revoked tokens.
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The token's public id.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token's public id.
    pub(crate) id: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

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

#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// A credential declared in the policy.
    #[arg(required_unless_present = "due", conflicts_with = "due")]
    pub(crate) name: Option<String>,
    /// Rotate every declared credential whose schedule is due (one scheduler pass).
    #[arg(long)]
    pub(crate) due: bool,
    /// Emergency: revoke and replace now, in the declared order.
    #[arg(long, conflicts_with = "due")]
    pub(crate) emergency: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct AdoptArgs {
    /// A credential declared in the stored policy (`aws-iam-access-key`, `openbao-token`).
    pub(crate) name: String,
    /// The credential's public id when its secret does not name it: an access key id (`AKIA…`).
    /// For an OpenBao token, its accessor (optional: checked when given).
    #[arg(long)]
    pub(crate) handle: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (loopback by default; put TLS in front of it, e.g. a proxy).
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub(crate) listen: std::net::SocketAddr,
    /// The URL clients reach this server at (`https://auth.example.com`): what DPoP proofs name.
    #[arg(long, value_name = "URL")]
    pub(crate) public_url: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ExchangeArgs {
    /// The token endpoint (`https://auth.example.com/token`; plain HTTP to loopback only).
    #[arg(long, value_name = "URL")]
    pub(crate) url: String,
    /// The scopes asked for (repeatable, or space-separated).
    #[arg(long = "scope", required = true, value_name = "SCOPE")]
    pub(crate) scopes: Vec<String>,
    /// How long the token should live (at most the federation's max_ttl; default that).
    #[arg(long, value_name = "DURATION")]
    pub(crate) ttl: Option<String>,
    /// Read the subject token from this file (default: stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) subject_token_file: Option<PathBuf>,
    /// Trust this CA (PEM) for the endpoint, besides the platform's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Write the token to this file (created private, 0600) instead of stdout: keeps it out of a
    /// CI job's log.
    #[arg(long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// How often to print what the scheduler did.
    #[arg(long, default_value = "10s")]
    pub(crate) tick: String,
    /// Write the posture report (HTML) here every `--report-every`.
    #[arg(long)]
    pub(crate) report: Option<PathBuf>,
    #[arg(long, default_value = "1h")]
    pub(crate) report_every: String,
    /// Check for alerts this often (each alert is sent once while it lasts).
    #[arg(long, default_value = "5m")]
    pub(crate) alerts_every: String,
    /// A token expiring within this long is an alert.
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// Also read the inventory at every alert check (`alerts check --inventory`).
    #[arg(long)]
    pub(crate) inventory: bool,
    /// Also scan these trees at every alert check.
    #[arg(long)]
    pub(crate) scan: Vec<PathBuf>,
    #[command(flatten)]
    pub(crate) sinks: AlertSinks,
}

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

#[derive(Debug, Subcommand)]
pub(crate) enum AuditCmd {
    /// Verify the hash chain, that it is the log the store is bound to (not missing, shorter,
    /// another or a fork), that it is consistent with the newest head the witness holds (with
    /// --witness), and a signed checkpoint (the log must still hold what it attests). Exit 1 when
    /// any does not hold.
    Verify {
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Only the chain (and --checkpoint): no store, no key, no binding or witness check.
        #[arg(long, conflicts_with = "checkpoint")]
        log_only: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Bind the store to its log's head now and push the signed tree head to the witness (what
    /// each revocation and the daemon do).
    Witness {
        #[command(flatten)]
        output: Output,
    },
    /// Start a new audit log deliberately (after archiving the old one, or to recover from a lost
    /// one): records why in the new log (and in --old-log), binds the store to it in a new epoch,
    /// and pushes that to the witness. Needs the store's key.
    #[command(
        after_help = "Example:\n  mv tokenward.audit.jsonl archive/2026-q1.audit.jsonl\n  tokenward audit rebind --reason 'archived to archive/2026-q1' --old-log archive/2026-q1.audit.jsonl"
    )]
    Rebind {
        /// Why (recorded in both logs).
        #[arg(long)]
        reason: String,
        /// The previous log, if it is still there: a `store`/`new-log` entry is appended to it too.
        #[arg(long)]
        old_log: Option<PathBuf>,
        #[command(flatten)]
        output: Output,
    },
    /// Show entries.
    Show {
        /// Only entries about this token.
        #[arg(long)]
        token: Option<String>,
        /// Only entries since (RFC 3339 time, or a duration ago such as 1h).
        #[arg(long)]
        since: Option<String>,
        /// Only this action (issue, verify_denied, revoke, rotate, policy_change, …).
        #[arg(long)]
        action: Option<String>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        output: Output,
    },
    /// Export the verified log as JSON lines (to stdout or --out).
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a checkpoint of the log's current head (keep it away from the log).
    Checkpoint {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Sign a tree head of the log's Merkle tree (RFC 6962), as a C2SP tlog-checkpoint signed note.
    #[command(after_help = "Example:\n  tokenward audit tree-head --out head.note")]
    TreeHead {
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// A Merkle proof as JSON: that entry SEQ is in the log, or (--from M) that the log of M
    /// entries is a prefix of this one.
    #[command(
        after_help = "Examples:\n  tokenward audit prove 41 > entry41.proof.json\n  tokenward audit prove --from 1000 > growth.proof.json"
    )]
    Prove {
        /// The entry's sequence number.
        #[arg(required_unless_present = "from", conflicts_with = "from")]
        seq: Option<u64>,
        /// A consistency proof from the tree of this many entries.
        #[arg(long)]
        from: Option<u64>,
        /// The tree size to prove against (default: the whole log now; use a signed tree head's).
        #[arg(long)]
        size: Option<u64>,
    },
    /// Check a proof from `prove` against a signed tree head, with no access to the log (exit 1
    /// when it does not hold). For a consistency proof, --old-tree-head is the earlier head.
    CheckProof {
        /// The proof (JSON from `prove`).
        proof: PathBuf,
        /// The signed tree head the proof is for.
        #[arg(long)]
        tree_head: PathBuf,
        /// The earlier signed tree head (consistency proofs).
        #[arg(long)]
        old_tree_head: Option<PathBuf>,
        /// The signer's public key (64 hex); default: this store's.
        #[arg(long)]
        key: Option<String>,
        #[command(flatten)]
        output: Output,
    },
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ScanFormat {
    Text,
    Json,
    Sarif,
}

#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    /// One or more: PATH, git:REPO, image:TAR_OR_OCI_DIR, s3://BUCKET[/PREFIX], - (stdin),
    /// postgres://USER@HOST:PORT/DB (the port optional; or postgresql://…, or pg:KEY=VALUE…; the password from the
    /// URL or PGPASSWORD). One merged report, one exit code.
    #[arg(required = true, value_name = "TARGET")]
    pub(crate) targets: Vec<String>,
    /// With a database: only this schema (repeatable; default every non-system schema).
    #[arg(long = "schema", value_name = "SCHEMA")]
    pub(crate) schemas: Vec<String>,
    /// With a database: at most this many rows per run (default 10,000,000).
    #[arg(long)]
    pub(crate) max_rows: Option<u64>,
    /// With a database: at most this many bytes of values per run (default 4 GiB).
    #[arg(long)]
    pub(crate) max_bytes: Option<u64>,
    #[arg(long, value_enum, default_value_t = ScanFormat::Text)]
    pub(crate) format: ScanFormat,
    /// Suppress findings whose fingerprints this baseline holds.
    #[arg(long)]
    pub(crate) baseline: Option<PathBuf>,
    /// Write the findings' fingerprints as a baseline.
    #[arg(long)]
    pub(crate) write_baseline: Option<PathBuf>,
    /// Revoke and replace Tokenward tokens of this store that are found, and any declared
    /// credential whose secret is found (its current one replaced in its emergency order, its
    /// previous one revoked); nothing else is touched.
    #[arg(long)]
    pub(crate) revoke: bool,
    /// Ask each found credential's provider whether it still works (opt-in; never by default):
    /// AWS key pairs by STS GetCallerIdentity signed with the pair (the secret key is never sent),
    /// OpenBao/Vault tokens by lookup-self at --openbao-addr only, Tokenward tokens by this store.
    /// Every finding then says valid, invalid (only when the answer proves it dead) or unknown.
    /// The flags are checked before the scan (a bad one: exit 2).
    #[arg(long)]
    pub(crate) validate: bool,
    /// With --validate: the STS endpoint (default AWS's own, in --aws-region): HTTPS, or plain HTTP
    /// to loopback. Requests are signed for REGION when it is an sts.REGION.amazonaws.com URL,
    /// else for --aws-region.
    #[arg(long, value_name = "URL", requires = "validate")]
    pub(crate) aws_sts_endpoint: Option<String>,
    /// With --validate: the region of AWS's STS endpoint, and the one requests are signed for
    /// unless --aws-sts-endpoint names its own.
    #[arg(long, default_value = "us-east-1", requires = "validate")]
    pub(crate) aws_region: String,
    /// With --validate: the one OpenBao/Vault server found tokens are looked up at (without it,
    /// they are not sent anywhere and stay unknown): HTTPS with the platform's roots or
    /// --openbao-ca, or plain HTTP to loopback. lookup-self needs the token's default policy and
    /// consumes one use of a use-limited token; a refusal (403) is unknown, not invalid.
    #[arg(long, value_name = "URL", requires = "validate")]
    pub(crate) openbao_addr: Option<String>,
    /// With --validate: trust this CA (PEM) for --openbao-addr.
    #[arg(long, value_name = "FILE", requires = "openbao_addr")]
    pub(crate) openbao_ca: Option<PathBuf>,
    /// With --validate: at most this many requests a second (1 to 50).
    #[arg(long, default_value_t = 5, value_name = "N", requires = "validate")]
    pub(crate) validate_rate: u32,
    /// With --validate: at most this long in all (up to 1h); what is left is unknown.
    #[arg(long, default_value = "60s", value_name = "DURATION", requires = "validate")]
    pub(crate) validate_budget: String,
    /// With --validate: at most this many requests in all.
    #[arg(long, default_value_t = 200, value_name = "N", requires = "validate")]
    pub(crate) validate_max: usize,
    /// Extra rules (TOML `[[rule]]` tables).
    #[arg(long)]
    pub(crate) rules: Option<PathBuf>,
    /// Do not report generic secrets (high-entropy values assigned to secret-named keys, URL
    /// passwords, Authorization headers; low confidence, on by default).
    #[arg(long)]
    pub(crate) no_generic: bool,
    /// Accepted for compatibility: generic detection is on by default (see --no-generic).
    #[arg(long, hide = true, conflicts_with = "no_generic")]
    pub(crate) generic: bool,
    /// Respect .gitignore files in a tree.
    #[arg(long)]
    pub(crate) gitignore: bool,
    /// With git: also unreachable objects.
    #[arg(long)]
    pub(crate) unreachable: bool,
    /// Write the report here instead of stdout.
    #[arg(long)]
    pub(crate) out: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long)]
    pub(crate) no_progress: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// Write HTML here (otherwise text to stdout).
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) output: Output,
    /// A token expiring within this long is "close to expiry".
    #[arg(long, default_value = "7d")]
    pub(crate) expiring_within: String,
    /// A token unused this long is "unused".
    #[arg(long, default_value = "30d")]
    pub(crate) unused_for: String,
    /// Add the inventory (`tokenward inventory`, default thresholds): every credential the
    /// declared credentials' accounts and servers show (reads their admin secrets, audited).
    #[arg(long)]
    pub(crate) inventory: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InventoryArgs {
    #[command(flatten)]
    pub(crate) output: Output,
    /// An active credential last used longer ago than this is "unused".
    #[arg(long, default_value = "90d")]
    pub(crate) unused_for: String,
    /// An active credential older than this is "too old" (AWS and CIS advise rotating keys every
    /// 90 days).
    #[arg(long, default_value = "90d")]
    pub(crate) max_age: String,
    /// A credential never used is flagged once it is older than this.
    #[arg(long, default_value = "1d")]
    pub(crate) never_used_grace: String,
}

#[derive(Debug, Args)]
pub(crate) struct DrillArgs {
    /// Rehearse on this declared credential (a Tokenward token) of the store given by --store
    /// (staging); without it the drill makes a scratch store and throws it away.
    #[arg(long)]
    pub(crate) credential: Option<String>,
    /// Where to plant the leak (a tree and a git repository are made there; default: a temp dir).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Also leak into this S3 bucket (`BUCKET` or `BUCKET/PREFIX`; credentials, region and
    /// endpoint from the standard `AWS_*` variables). The drill deletes its object after each run.
    #[arg(long, value_name = "BUCKET[/PREFIX]")]
    pub(crate) bucket: Option<String>,
    /// Run the drill this many times (percentiles of the risk window).
    #[arg(long, default_value_t = 1)]
    pub(crate) repeat: u32,
    /// Also write an HTML page of the results.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// The emergency order of the scratch drill's credential (a `--credential` drill runs the one
    /// declared for it).
    #[arg(long, value_enum, default_value_t = DrillOrder::RevokeFirst, conflicts_with = "credential")]
    pub(crate) emergency: DrillOrder,
    #[command(flatten)]
    pub(crate) output: Output,
}

/// An emergency order, as declared in a policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DrillOrder {
    /// Revoke the leaked token, then replace it.
    RevokeFirst,
    /// Replace it, then revoke the leaked token.
    ReplaceFirst,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}

/// A webhook's URL. Slack-style URLs carry their secret in the path, so it is shown (`Debug`,
/// `Display`, errors) as `scheme://host[:port]/…` only; parsing never fails (clap would quote a
/// value it refuses), the URL is checked where it is used.
#[derive(Clone)]
pub(crate) struct WebhookUrl(String);

impl WebhookUrl {
    /// The whole URL, secret path included: for the request only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for WebhookUrl {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else { return f.write_str("…") };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        // Userinfo is a secret too.
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        write!(f, "{scheme}://{host}/…")
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

/// `rekey`.
#[derive(Debug, clap::Args)]
pub(crate) struct RekeyArgs {
    /// The KMS key to move to: `aws-kms:KEY` or `transit:MOUNT/KEY` (reached with the same
    /// environment settings as `--kms`).
    #[arg(long)]
    pub(crate) to: tokenward::KmsKey,
    #[command(flatten)]
    pub(crate) output: Output,
}
