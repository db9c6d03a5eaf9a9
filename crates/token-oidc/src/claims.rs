//! Claim rules: what a verified token's claims must say for an identity to be trusted. Every
//! listed claim must be present and match: exactly, or — where the rule says glob — a pattern
//! in which `*` (the only special character) stands for any run of characters, `/` included.
//! A claim is named by its top-level name (`repository`) or, for a nested one, by an RFC 6901
//! JSON pointer (`/kubernetes.io/namespace`). Strings match as they are; numbers and booleans
//! as their JSON text (`42`, `true`); anything else never matches.
//!
//! A preset is an issuer family's documented claim names: a rule naming another claim is a
//! configuration error (a typo such as `repo` for `repository` would otherwise never match —
//! or worse, be dropped).

use serde_json::Value;

use crate::error::{ClaimError, ConfigError, quote};
use crate::jwt::VerifiedJwt;

/// Claims the validator checks itself; a rule may not name them.
const RESERVED: [&str; 6] = ["iss", "aud", "exp", "nbf", "iat", "jti"];

/// An issuer family, with its documented claim names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preset {
    /// GitHub Actions (`https://token.actions.githubusercontent.com`): the claims of GitHub's
    /// "OpenID Connect reference" (`repository`, `ref`, `environment`, `job_workflow_ref`, …).
    GitHubActions,
    /// GitLab CI/CD ID tokens (`https://gitlab.com` or a self-managed instance): the claims of
    /// GitLab's "ID token authentication" (`project_path`, `ref`, `ref_protected`, …).
    GitLabCi,
    /// Kubernetes service-account tokens (the cluster's issuer): `sub`
    /// (`system:serviceaccount:NS:NAME`) and the `kubernetes.io` object's members, named by
    /// JSON pointer (`/kubernetes.io/namespace`, `/kubernetes.io/serviceaccount/name`, …).
    Kubernetes,
    /// Any OIDC issuer: any claim name.
    Generic,
}

const GITHUB: &[&str] = &[
    "sub",
    "actor",
    "actor_id",
    "base_ref",
    "check_run_id",
    "enterprise",
    "enterprise_id",
    "environment",
    "environment_node_id",
    "event_name",
    "head_ref",
    "job_workflow_ref",
    "job_workflow_sha",
    "ref",
    "ref_protected",
    "ref_type",
    "repository",
    "repository_id",
    "repository_owner",
    "repository_owner_id",
    "repository_visibility",
    "run_attempt",
    "run_id",
    "run_number",
    "runner_environment",
    "sha",
    "workflow",
    "workflow_ref",
    "workflow_sha",
];

const GITLAB: &[&str] = &[
    "sub",
    "ci_config_ref_uri",
    "ci_config_sha",
    "deployment_tier",
    "environment",
    "environment_action",
    "environment_protected",
    "groups_direct",
    "job_id",
    "job_project_id",
    "job_project_path",
    "namespace_id",
    "namespace_path",
    "pipeline_id",
    "pipeline_source",
    "project_id",
    "project_path",
    "project_visibility",
    "ref",
    "ref_path",
    "ref_protected",
    "ref_type",
    "runner_environment",
    "runner_id",
    "sha",
    "user_access_level",
    "user_email",
    "user_id",
    "user_identities",
    "user_login",
];

const KUBERNETES: &[&str] = &[
    "sub",
    "/kubernetes.io/namespace",
    "/kubernetes.io/serviceaccount/name",
    "/kubernetes.io/serviceaccount/uid",
    "/kubernetes.io/pod/name",
    "/kubernetes.io/pod/uid",
    "/kubernetes.io/node/name",
    "/kubernetes.io/node/uid",
    "/kubernetes.io/secret/name",
    "/kubernetes.io/secret/uid",
];

impl Preset {
    /// The documented claim names a rule may use (`None`: any, for [`Preset::Generic`]).
    pub fn claim_names(self) -> Option<&'static [&'static str]> {
        match self {
            Self::GitHubActions => Some(GITHUB),
            Self::GitLabCi => Some(GITLAB),
            Self::Kubernetes => Some(KUBERNETES),
            Self::Generic => None,
        }
    }

    /// The issuer every token of this family has, where there is one (GitHub's; GitLab.com's —
    /// a self-managed GitLab and every cluster have their own).
    pub fn issuer(self) -> Option<&'static str> {
        match self {
            Self::GitHubActions => Some("https://token.actions.githubusercontent.com"),
            Self::GitLabCi => Some("https://gitlab.com"),
            Self::Kubernetes | Self::Generic => None,
        }
    }

    /// Its name in configuration: `github-actions`, `gitlab-ci`, `kubernetes`, `generic`.
    pub fn name(self) -> &'static str {
        match self {
            Self::GitHubActions => "github-actions",
            Self::GitLabCi => "gitlab-ci",
            Self::Kubernetes => "kubernetes",
            Self::Generic => "generic",
        }
    }

    /// The preset named `name` (as [`Preset::name`] gives it).
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::GitHubActions, Self::GitLabCi, Self::Kubernetes, Self::Generic]
            .into_iter()
            .find(|p| p.name() == name)
    }
}

#[derive(Clone, Debug)]
enum Pattern {
    Exact(String),
    /// The text between the `*`s (so `a*b*c` is `["a", "b", "c"]`).
    Glob(Vec<String>),
}

#[derive(Clone, Debug)]
struct Rule {
    claim: String,
    pattern: Pattern,
}

/// The claims an identity's token must carry (every rule must match).
#[derive(Clone, Debug)]
pub struct ClaimRules {
    preset: Preset,
    rules: Vec<Rule>,
}

impl ClaimRules {
    /// No rules yet, for tokens of `preset`'s family.
    pub fn new(preset: Preset) -> Self {
        Self { preset, rules: Vec::new() }
    }

    /// `claim` must equal `value` exactly.
    pub fn require(self, claim: &str, value: &str) -> Result<Self, ConfigError> {
        self.add(claim, value, false)
    }

    /// `claim` must match `pattern`, in which `*` stands for any run of characters (and is the
    /// only special character: there is no escape, `?` or class). A pattern of only `*` is
    /// refused: it would match everything.
    pub fn require_glob(self, claim: &str, pattern: &str) -> Result<Self, ConfigError> {
        self.add(claim, pattern, true)
    }

    fn add(mut self, claim: &str, value: &str, glob: bool) -> Result<Self, ConfigError> {
        if RESERVED.contains(&claim) {
            return Err(ConfigError::ReservedClaim(claim.to_owned()));
        }
        if let Some(names) = self.preset.claim_names()
            && !names.contains(&claim)
        {
            return Err(ConfigError::UnknownClaim { preset: self.preset.name(), claim: claim.to_owned() });
        }
        if claim.is_empty() {
            return Err(ConfigError::BadPattern { claim: String::new(), why: "the claim name is empty" });
        }
        if value.is_empty() {
            return Err(ConfigError::BadPattern { claim: claim.to_owned(), why: "the value is empty" });
        }
        let pattern = if glob {
            if value.chars().all(|c| c == '*') {
                return Err(ConfigError::BadPattern {
                    claim: claim.to_owned(),
                    why: "a glob of only `*` matches everything",
                });
            }
            Pattern::Glob(value.split('*').map(str::to_owned).collect())
        } else {
            Pattern::Exact(value.to_owned())
        };
        self.rules.push(Rule { claim: claim.to_owned(), pattern });
        Ok(self)
    }

    /// The preset the rules were written for.
    pub fn preset(&self) -> Preset {
        self.preset
    }

    /// How many rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are none (every verified token of the issuer matches).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Checks every rule against `token`'s claims; on success, each rule's claim and the value
    /// it matched (for the audit record), in the rules' order.
    pub fn check(&self, token: &VerifiedJwt) -> Result<Vec<(String, String)>, ClaimError> {
        let mut matched = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let value = token.claim(&rule.claim).ok_or_else(|| ClaimError::Missing(rule.claim.clone()))?;
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
                _ => return Err(ClaimError::NotScalar(rule.claim.clone())),
            };
            let ok = match &rule.pattern {
                Pattern::Exact(v) => *v == text,
                Pattern::Glob(parts) => glob_match(parts, &text),
            };
            if !ok {
                return Err(ClaimError::Mismatch { claim: rule.claim.clone(), found: quote(&text) });
            }
            matched.push((rule.claim.clone(), text));
        }
        Ok(matched)
    }
}

/// Whether `text` matches the glob whose literal parts (between `*`s) are `parts`.
pub(crate) fn glob_match(parts: &[String], text: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|p| p == text);
    };
    let Some(mut rest) = text.strip_prefix(first.as_str()) else { return false };
    for part in middle {
        match rest.find(part.as_str()) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(p: &str, t: &str) -> bool {
        glob_match(&p.split('*').map(str::to_owned).collect::<Vec<_>>(), t)
    }

    #[test]
    fn globs_match_as_documented() {
        assert!(g("refs/heads/release-*", "refs/heads/release-1.2"));
        assert!(g("refs/heads/release-*", "refs/heads/release-"));
        assert!(!g("refs/heads/release-*", "refs/heads/main"));
        assert!(g("repo:acme/*:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/main"));
        assert!(!g("repo:acme/*:ref:refs/heads/main", "repo:acme/api:ref:refs/heads/dev"));
        assert!(g("a*b*c", "abc"));
        assert!(g("a*b*c", "a-b-b-c"));
        assert!(!g("ab*ba", "aba"), "prefix and suffix may not overlap");
        assert!(g("exact", "exact"));
        assert!(!g("exact", "exactly"));
    }

    #[test]
    fn rules_outside_the_preset_or_matching_everything_are_refused() {
        assert!(matches!(
            ClaimRules::new(Preset::GitHubActions).require("repo", "acme/api"),
            Err(ConfigError::UnknownClaim { .. })
        ));
        assert!(matches!(
            ClaimRules::new(Preset::Generic).require("aud", "x"),
            Err(ConfigError::ReservedClaim(_))
        ));
        assert!(matches!(
            ClaimRules::new(Preset::Generic).require_glob("team", "**"),
            Err(ConfigError::BadPattern { .. })
        ));
        assert!(ClaimRules::new(Preset::Kubernetes).require("/kubernetes.io/namespace", "ci").is_ok());
    }
}
