//! The policy's `[[federation]]` tables: which OIDC issuers are trusted, and what each identity
//! they vouch for may get ([`FederationSpec`]). Data and checks only; the exchange that obeys them
//! is [`crate::Tokenward::exchange`] (feature `federation`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use token_core::ScopeSet;
use token_core::names::Purpose;

use super::duration::Duration;
use super::error::PolicyFileError;

/// The longest token an exchange may grant, whatever a federation says: exchanged tokens are
/// short-lived by design (a CI job, a workload's next minutes).
pub const MAX_EXCHANGE_TTL: &str = "24h";

/// The presets a federation may name: an issuer family's documented claim names
/// (`token_oidc::Preset`).
const PRESETS: [&str; 4] = ["github-actions", "gitlab-ci", "kubernetes", "generic"];

/// A trusted OIDC issuer and the identity it may vouch for:
///
/// ```toml
/// [[federation]]
/// name = "github-deploy"
/// preset = "github-actions"                     # or gitlab-ci, kubernetes, generic (default)
/// issuer = "https://token.actions.githubusercontent.com"
/// audience = "tokenward"                        # required; exact; no wildcard
/// jwks = { url = "https://token.actions.githubusercontent.com/.well-known/jwks", refresh = "1h" }
/// # jwks = { file = "/etc/tokenward/github-jwks.json" }   # pinned, for air-gapped use
/// principal = "deploy-bot"                      # whose roles bound what is granted
/// max_ttl = "15m"
/// # scopes = ["deploy:service/api/*:release"]   # a narrower allow-list (default: the roles')
/// # bind = "required"                           # only key-bound (DPoP) tokens; default "optional"
/// [federation.claims]                           # every one must match
/// repository = "acme/api"
/// ref = "refs/heads/main"
/// environment = { glob = "prod-*" }             # `*` only, where said with `glob`
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct FederationSpec {
    /// Its name: in audit entries and the purpose of the tokens it grants.
    pub name: String,
    /// The issuer family whose documented claim names the rules may use.
    #[serde(default = "generic")]
    pub preset: String,
    /// The `iss` every subject token must carry (HTTPS; plain HTTP only to loopback).
    pub issuer: String,
    /// The `aud` every subject token must carry, exactly.
    pub audience: String,
    /// Where the issuer's keys come from.
    pub jwks: JwksSpec,
    /// The principal whose roles bound what is granted.
    pub principal: String,
    /// The longest token granted (at most [`MAX_EXCHANGE_TTL`]).
    pub max_ttl: Duration,
    /// The scopes that may be granted, if narrower than the principal's roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// `optional` (default): a token is bound to a key when the exchange asks; `required`: only
    /// key-bound tokens are granted.
    #[serde(default = "optional")]
    pub bind: String,
    /// The longest-lived subject token accepted (`exp` − `iat`; default 1h, at most 24h): GitLab's
    /// ID tokens live as long as the job's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_subject_lifetime: Option<Duration>,
    /// The signature algorithms accepted (`RS256`, `ES256`, `EdDSA`; default all three).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// What the subject token's claims must say: every entry must match.
    pub claims: BTreeMap<String, ClaimSpec>,
}

/// A claim's expected value: exact text, or a glob in which `*` stands for any run of characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClaimSpec {
    /// Exactly this text.
    Exact(String),
    /// A `*` glob.
    Glob {
        /// The pattern.
        glob: String,
    },
}

/// An issuer's keys: fetched from `url` (refreshed every `refresh`, default 1h), or pinned from a
/// JWKS `file`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct JwksSpec {
    /// The JWKS URL (HTTPS; plain HTTP only to loopback).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// How often the fetched keys are refreshed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh: Option<Duration>,
    /// A CA (PEM) to trust for `url`, besides the platform's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// A pinned JWKS file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The SHA-256 (hex) the pinned file must have: the stored policy is sealed, the file is not,
    /// so this makes an edit of the file (a key added to mint identities) refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

fn generic() -> String {
    "generic".into()
}
fn optional() -> String {
    "optional".into()
}

impl FederationSpec {
    /// Whether only key-bound tokens are granted.
    pub fn binding_required(&self) -> bool {
        self.bind == "required"
    }

    /// Checks the table against the rest of the file (what `PolicyFile::check` does for it):
    /// `principal` finds a declared principal by name.
    pub(crate) fn check(
        &self,
        principal: &dyn Fn(&str) -> Option<token_core::Principal>,
        policy: &token_core::Policy,
    ) -> Result<(), PolicyFileError> {
        let what = format!("federation {}", self.name);
        let err = |m: String| PolicyFileError::new(format!("{what}: {m}"));
        // Its name prefixes the purpose of every token it grants.
        Purpose::new(&self.name).map_err(|e| err(format!("its name: {e}")))?;
        if !PRESETS.contains(&self.preset.as_str()) {
            return Err(err(format!("preset {:?}: one of {}", self.preset, PRESETS.join(", "))));
        }
        check_url(&self.issuer).map_err(|m| err(format!("issuer: {m}")))?;
        if self.audience.trim().is_empty() || self.audience.contains('*') {
            return Err(err("audience: required, exact, with no wildcard".into()));
        }
        match (&self.jwks.url, &self.jwks.file) {
            (Some(_), None) if self.jwks.sha256.is_some() => {
                return Err(err("jwks: sha256 goes with file, not url".into()));
            }
            (Some(url), None) => check_url(url).map_err(|m| err(format!("jwks.url: {m}")))?,
            (None, Some(_)) if self.jwks.refresh.is_none() && self.jwks.ca_file.is_none() => {}
            (None, Some(_)) => return Err(err("jwks: refresh and ca_file go with url, not file".into())),
            _ => return Err(err("jwks: exactly one of url or file".into())),
        }
        if let Some(h) = &self.jwks.sha256
            && (h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(err("jwks.sha256: 64 hex digits".into()));
        }
        if let Some(r) = &self.jwks.refresh {
            r.get().map_err(|e| err(format!("jwks.refresh: {e}")))?;
        }
        let principal =
            principal(&self.principal).ok_or_else(|| err(format!("no principal {}", self.principal)))?;
        let ttl = self.max_ttl.get().map_err(|e| err(format!("max_ttl: {e}")))?;
        let cap = Duration::new(MAX_EXCHANGE_TTL).get().map_err(|e| err(e.to_string()))?;
        if ttl > cap {
            return Err(err(format!(
                "max_ttl {} is above the exchange's cap of {MAX_EXCHANGE_TTL}",
                self.max_ttl.as_str()
            )));
        }
        if !self.scopes.is_empty() {
            let scopes = ScopeSet::parse(&self.scopes.join(" ")).map_err(|e| err(format!("scopes: {e}")))?;
            // The principal's roles must cover every scope (a one-second probe of the issue rule).
            let probe = token_core::IssueRequest::new(
                Purpose::new(&self.name).map_err(|e| err(e.to_string()))?,
                scopes,
                token_core::chrono::TimeDelta::seconds(1),
            );
            let _approved = policy
                .check_issue(&principal, &probe, &[], token_core::chrono::Utc::now())
                .map_err(|e| err(format!("scopes: {e}")))?;
        }
        if let Some(d) = &self.max_subject_lifetime {
            let d = d.get().map_err(|e| err(format!("max_subject_lifetime: {e}")))?;
            if d > cap {
                return Err(err(format!("max_subject_lifetime is above {MAX_EXCHANGE_TTL}")));
            }
        }
        if !matches!(self.bind.as_str(), "optional" | "required") {
            return Err(err(format!("bind {:?}: \"optional\" or \"required\"", self.bind)));
        }
        for a in &self.algorithms {
            if !matches!(a.as_str(), "RS256" | "ES256" | "EdDSA") {
                return Err(err(format!("algorithm {a:?}: RS256, ES256 or EdDSA")));
            }
        }
        // Never every token of an issuer: GitHub's issuer vouches for every repository on GitHub,
        // and a job chooses its audience. A claim any of them can set (`environment`, `ref`,
        // `event_name`) identifies nobody: one claim that names who the workload is must be bound.
        if self.claims.is_empty() {
            return Err(err(
                "claims: at least one claim must be bound (an issuer alone vouches for all its users)".into(),
            ));
        }
        for (claim, spec) in &self.claims {
            if let ClaimSpec::Glob { glob } = spec
                && glob.chars().all(|c| c == '*')
            {
                return Err(err(format!("claims.{claim}: a glob of only `*` matches anything")));
            }
            if matches!(spec, ClaimSpec::Exact(v) if v.is_empty()) {
                return Err(err(format!("claims.{claim}: an empty value")));
            }
        }
        let names = identifying(&self.preset);
        if !self.claims.iter().any(|(claim, spec)| identifies(&self.preset, claim, spec)) {
            return Err(err(format!(
                "claims: none names who the workload is; bind one of {} exactly (or by a glob that names the owner in full, e.g. \"acme/*\") — any {} user can set the others",
                names.join(", "),
                self.preset
            )));
        }
        if self.name.len() > MAX_NAME {
            return Err(err(format!("its name is longer than {MAX_NAME} characters")));
        }
        Ok(())
    }
}

/// The longest federation name (its tokens' purpose is the name, a dot and 16 hex digits, within
/// a purpose's 128 characters).
const MAX_NAME: usize = 111;

/// The claims that say who a workload is, per preset: one of them must be bound.
fn identifying(preset: &str) -> &'static [&'static str] {
    match preset {
        "github-actions" => &[
            "repository",
            "repository_id",
            "repository_owner",
            "repository_owner_id",
            "sub",
            "job_workflow_ref",
        ],
        "gitlab-ci" => &["project_path", "project_id", "namespace_path", "namespace_id", "sub"],
        "kubernetes" => &["sub", "/kubernetes.io/namespace", "/kubernetes.io/serviceaccount/name"],
        _ => &["sub"],
    }
}

/// Whether `claim` = `spec` names who the workload is: an identifying claim bound exactly, or by
/// a glob whose text before its first `*` names the owner in full — a `/` in it on GitHub and
/// GitLab (`acme/*`, `repo:acme/*`), any text on a cluster's or another issuer's (`system:…`).
/// An id (`repository_id`, `project_id`, …) must be exact.
fn identifies(preset: &str, claim: &str, spec: &ClaimSpec) -> bool {
    if !identifying(preset).contains(&claim) {
        return false;
    }
    match spec {
        ClaimSpec::Exact(v) => !v.is_empty(),
        ClaimSpec::Glob { glob } => {
            let prefix = glob.split('*').next().unwrap_or_default();
            if claim.ends_with("_id") || prefix.is_empty() {
                return false;
            }
            match preset {
                "github-actions" | "gitlab-ci" => prefix.contains('/'),
                _ => true,
            }
        }
    }
}

/// HTTPS, or plain HTTP to a loopback host.
fn check_url(url: &str) -> Result<(), String> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let host = host
            .rsplit_once(':')
            .map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return Err(format!("{url}: HTTPS, or plain HTTP to loopback only"));
        }
        rest
    } else {
        return Err(format!("{url}: not an https:// URL"));
    };
    if rest.is_empty() || rest.starts_with('/') || rest.contains('@') {
        return Err(format!("{url}: no host, or credentials in it"));
    }
    Ok(())
}

/// Checks every federation, and that no name is declared twice.
pub(crate) fn check_all(
    feds: &[FederationSpec],
    principal: &dyn Fn(&str) -> Option<token_core::Principal>,
    policy: &token_core::Policy,
) -> Result<(), PolicyFileError> {
    let mut names = BTreeSet::new();
    for f in feds {
        if !names.insert(f.name.as_str()) {
            return Err(PolicyFileError::new(format!("federation {} is declared twice", f.name)));
        }
        f.check(principal, policy)?;
    }
    Ok(())
}
