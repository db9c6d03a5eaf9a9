//! Policy as code: roles, principals, issuing rules and the credentials under rotation, in one
//! TOML file an operator keeps in git ([`PolicyFile`]), stored versioned in the store
//! ([`Tokenward::apply_policy`], compare-and-swap, audited as `policy_change`) and read back when a
//! deployment opens ([`crate::TokenwardBuilder::stored_policy`]).
//!
//! ```toml
//! [rules]
//! max_ttl = "30d"                  # the hard cap on any token (default 90d)
//! allow_bare_wildcards = false     # `*:…`-style grants refused (default)
//! one_active_per_purpose = true    # default
//! # idle_timeout = "7d"
//!
//! [[role]]
//! name = "log-reader"
//! grants = ["s3:bucket/prod-logs/**:read"]
//! max_ttl = "1h"
//!
//! [[principal]]
//! name = "billing-api"
//! roles = ["log-reader"]
//!
//! [[credential]]
//! name = "billing-api/logs-token"  # a secret name in the store
//! schedule = "7d"                  # rotate every 7 days …
//! # at_lifetime = 0.5               # … or at half the credential's lifetime, whichever is first
//! emergency = "replace-first"      # or "revoke-first"
//! overlap = "5m"                   # the previous credential keeps working this long after a
//!                                  # promotion (default: the deployment's, 5m; "0s": none)
//! # deletion_grace = "1h"          # aws-iam-access-key only: a deactivated key is deleted this
//!                                  # long after its deactivation, never before (default 1h)
//! target = { kind = "tokenward-token", principal = "billing-api", purpose = "read-logs",
//!            scopes = ["s3:bucket/prod-logs/*:read"], ttl = "1h" }
//! # target = { kind = "openbao-token", address = "https://bao:8200", token_secret = "openbao/admin",
//! #            ca_file = "/etc/bao/ca.pem", policies = ["default"], ttl = "1h", display_name = "ci" }
//! # (or approle_role_id = "…", approle_secret_id_secret = "openbao/secret-id" instead of a token)
//! # target = { kind = "aws-iam-access-key", user = "billing", admin_access_key_id = "AKIA…",
//! #            admin_secret_key_secret = "aws/admin-secret", lifetime = "90d" }
//! # target = { kind = "openbao-kv", address = "…", token_secret = "…", mount = "secret",
//! #            path = "app/db", field = "password", lifetime = "30d" }
//! ```
//!
//! Secrets a target needs (an OpenBao token) are named by `token_secret`, a secret in the store,
//! never written in the file. The stored copy is sealed (authenticated under the store's record
//! key): a policy edited in the database is refused when read, not obeyed.
//!
//! # Layout
//!
//! One concern per module, importing only downwards (`tests/module_graph.rs` keeps `src/` a DAG):
//!
//! - `error`: [`PolicyFileError`], a leaf ([`crate::Error`] wraps it without importing the rest).
//! - `duration`: [`parse_duration`], [`format_duration`]; a duration field is a [`Duration`],
//!   parsed once when the file is read and written back as given (the rule itself is
//!   `token_rotate::declare`'s, since a target's declaration has durations too).
//! - `schema`: [`PolicyFile`] and its rules, roles and principals, defaults, [`PolicyFile::parse`]
//!   and [`PolicyFile::check`].
//! - `credential`: [`CredentialSpec`] (schedule, emergency order, overlap, deletion grace, its
//!   target and where it is deployed).
//! - `kinds`: the registry of rotation target and deploy destination kinds, and [`TargetSpec`] and
//!   [`DestinationSpec`], a credential's target and destinations read into their kinds'
//!   declarations. Each kind owns its declaration (`token_rotate::declare`: its fields, check and
//!   build, and the one line that lists it); the registry knows no kind's fields.
//! - `federation`: [`FederationSpec`], the `[[federation]]` tables (trusted OIDC issuers) and
//!   their checks; the exchange that obeys them is `crate::federation` (feature `federation`).
//! - `diff`: [`PolicyFile::diff`], what changes from one file to the next.
//! - `stored`: the versioned policy in the store ([`Tokenward::apply_policy`], history, orphans).
//! - `declared`: a declared credential built in a deployment ([`Tokenward::declared_target`],
//!   [`Tokenward::manage_declared`]), the deployment handed to the kinds as their build context.
//!
//! [`Tokenward::apply_policy`]: crate::Tokenward::apply_policy
//! [`Tokenward::declared_target`]: crate::Tokenward::declared_target
//! [`Tokenward::manage_declared`]: crate::Tokenward::manage_declared

mod credential;
pub(crate) mod declared;
mod diff;
mod duration;
pub(crate) mod error;
pub(crate) mod federation;
mod kinds;
mod schema;
pub(crate) mod stored;

pub use credential::{CredentialSpec, DEFAULT_DELETION_GRACE, MAX_DELETION_GRACE, MAX_OVERLAP};
pub use duration::{Duration, format_duration, parse_duration};
pub use error::PolicyFileError;
pub use federation::{ClaimSpec, FederationSpec, JwksSpec, MAX_EXCHANGE_TTL};
pub use kinds::{DestinationSpec, TargetSpec, register_destination_kind, register_kind};
pub use schema::{PolicyFile, PrincipalSpec, RoleSpec, Rules};
pub use stored::{ApplyOptions, Orphan, PolicyApplied, PolicyRecord};
