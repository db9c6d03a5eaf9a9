//! The policy file's schema, its defaults and its checks: what [`PolicyFile::parse`] accepts.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use token_core::{Policy, Principal, Role, ScopeSet};
use token_rotate::declare::{CheckContext, Duration};
use token_store::SecretName;

use super::credential::CredentialSpec;
use super::error::PolicyFileError;
use super::federation::FederationSpec;

/// A policy file: issuing rules, roles, principals and the credentials under rotation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyFile {
    /// The issuing rules.
    #[serde(default)]
    pub rules: Rules,
    /// Roles: what they grant, for how long at most.
    #[serde(default, rename = "role", skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<RoleSpec>,
    /// Principals (services, automations) and their roles.
    #[serde(default, rename = "principal", skip_serializing_if = "Vec::is_empty")]
    pub principals: Vec<PrincipalSpec>,
    /// Credentials under rotation.
    #[serde(default, rename = "credential", skip_serializing_if = "Vec::is_empty")]
    pub credentials: Vec<CredentialSpec>,
    /// Trusted OIDC issuers, and what the identities they vouch for may get by an exchange.
    #[serde(default, rename = "federation", skip_serializing_if = "Vec::is_empty")]
    pub federations: Vec<FederationSpec>,
}

/// The issuing rules ([`token_core::errors::PolicyBuilder`]'s settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Rules {
    /// The hard cap on any token's lifetime (`90d` by default).
    #[serde(default = "default_max_ttl")]
    pub max_ttl: Duration,
    /// Whether bare wildcards (`*:…`, `…:**:…`) may be granted.
    #[serde(default)]
    pub allow_bare_wildcards: bool,
    /// Whether a principal holds one active token per purpose (outside rotation overlaps).
    #[serde(default = "yes")]
    pub one_active_per_purpose: bool,
    /// An idle timeout for every token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<Duration>,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            max_ttl: default_max_ttl(),
            allow_bare_wildcards: false,
            one_active_per_purpose: true,
            idle_timeout: None,
        }
    }
}

fn default_max_ttl() -> Duration {
    Duration::new("90d")
}
fn yes() -> bool {
    true
}

/// A role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RoleSpec {
    /// Its name.
    pub name: String,
    /// The scopes it grants.
    pub grants: Vec<String>,
    /// The longest token it allows.
    pub max_ttl: Duration,
}

impl RoleSpec {
    /// A role granting `grants` for at most `max_ttl` (a duration such as `1h`).
    pub fn new(name: impl Into<String>, grants: Vec<String>, max_ttl: impl Into<String>) -> Self {
        Self { name: name.into(), grants, max_ttl: Duration::new(max_ttl.into()) }
    }
}

/// A principal and its roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PrincipalSpec {
    /// Its id.
    pub name: String,
    /// Its roles.
    pub roles: Vec<String>,
}

impl PrincipalSpec {
    /// A principal holding `roles`.
    pub fn new(name: impl Into<String>, roles: Vec<String>) -> Self {
        Self { name: name.into(), roles }
    }
}

fn scopes(list: &[String], what: &str) -> Result<ScopeSet, PolicyFileError> {
    ScopeSet::parse(&list.join(" ")).map_err(|e| PolicyFileError::new(format!("{what}: {e}")))
}

impl PolicyFile {
    /// Parses and checks a policy file: every duration and scope parses, the rules build a
    /// [`Policy`], every principal's role exists, names are unique, every credential names a
    /// valid secret and (for our tokens) a declared principal.
    pub fn parse(text: &str) -> Result<Self, PolicyFileError> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            // One line: where, then what (toml's own rendering spans several lines).
            let at = e.span().map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!("line {line}, column {column}: ")
            });
            PolicyFileError::new(format!("{}{}", at.unwrap_or_default(), e.message().trim()))
        })?;
        file.check()?;
        Ok(file)
    }

    /// Checks the file (what [`PolicyFile::parse`] does after parsing).
    pub fn check(&self) -> Result<(), PolicyFileError> {
        let policy = self.to_policy()?;
        let roles: BTreeSet<&str> = self.roles.iter().map(|r| r.name.as_str()).collect();
        let mut seen = BTreeSet::new();
        for p in &self.principals {
            if !seen.insert(p.name.as_str()) {
                return Err(PolicyFileError::new(format!("principal {} is declared twice", p.name)));
            }
            for r in &p.roles {
                if !roles.contains(r.as_str()) {
                    return Err(PolicyFileError::new(format!("principal {}: no role {r}", p.name)));
                }
            }
            Principal::parse(&p.name, p.roles.iter().map(String::as_str))
                .map_err(|e| PolicyFileError::new(format!("principal {}: {e}", p.name)))?;
        }
        let mut names = BTreeSet::new();
        for c in &self.credentials {
            let what = format!("credential {}", c.name);
            SecretName::new(&c.name).map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
            if !names.insert(c.name.as_str()) {
                return Err(PolicyFileError::new(format!("{what} is declared twice")));
            }
            c.schedule_spec().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            c.emergency_order().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            c.check_overlap_and_grace().map_err(|e| PolicyFileError::new(format!("{what}: {}", e.0)))?;
            let deploy = format!("{what}: deploy");
            for d in &c.deploy {
                d.check(&FileCheck { what: &deploy, file: self, policy: &policy })?;
            }
            c.target.check(&FileCheck { what: &what, file: self, policy: &policy })?;
        }
        super::federation::check_all(&self.federations, &|name| self.principal(name), &policy)?;
        Ok(())
    }

    /// The issuing [`Policy`] the file describes.
    pub fn to_policy(&self) -> Result<Policy, PolicyFileError> {
        let mut b = Policy::builder()
            .max_ttl(self.rules.max_ttl.get()?)
            .allow_bare_wildcards(self.rules.allow_bare_wildcards)
            .one_active_per_purpose(self.rules.one_active_per_purpose);
        if let Some(idle) = &self.rules.idle_timeout {
            b = b.idle_timeout(idle.get()?);
        }
        for r in &self.roles {
            let what = format!("role {}", r.name);
            let ttl = r.max_ttl.get().map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
            let role = Role::parse(&r.name, scopes(&r.grants, &what)?.as_str(), ttl)
                .map_err(|e| PolicyFileError::new(format!("{what}: {e}")))?;
            b = b.role(role);
        }
        b.build().map_err(|e| PolicyFileError::new(e.to_string()))
    }

    /// A declared principal, with its roles.
    pub fn principal(&self, name: &str) -> Option<Principal> {
        let p = self.principals.iter().find(|p| p.name == name)?;
        Principal::parse(&p.name, p.roles.iter().map(String::as_str)).ok()
    }

    /// A declared federation.
    pub fn federation(&self, name: &str) -> Option<&FederationSpec> {
        self.federations.iter().find(|f| f.name == name)
    }

    /// A declared credential.
    pub fn credential(&self, name: &str) -> Option<&CredentialSpec> {
        self.credentials.iter().find(|c| c.name == name)
    }

    /// The file in canonical TOML (what is stored and hashed).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }
}

/// A declared target is checked against the file it is in.
struct FileCheck<'a> {
    what: &'a str,
    file: &'a PolicyFile,
    policy: &'a Policy,
}

impl CheckContext for FileCheck<'_> {
    fn what(&self) -> &str {
        self.what
    }
    fn principal(&self, name: &str) -> Option<Principal> {
        self.file.principal(name)
    }
    fn policy(&self) -> &Policy {
        self.policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use token_core::chrono::TimeDelta;
    use token_rotate::declare::AwsIamAccessKeySpec;

    #[test]
    fn targets_with_flattened_settings_parse_and_unknown_fields_are_refused() {
        let t = r#"
[[credential]]
name = "x/y"
target = { kind = "openbao-token", address = "http://127.0.0.1:8200", token_secret = "openbao/admin", ttl = "1h" }
[[credential]]
name = "x/z"
target = { kind = "aws-iam-access-key", user = "u", admin_access_key_id = "AKIA", admin_secret_key_secret = "aws/s" }
deploy = [{ kind = "aws-secrets-manager", secret_id = "s", admin_access_key_id = "AKIA", admin_secret_key_secret = "aws/s" }]
"#;
        let f = PolicyFile::parse(t).unwrap();
        let Some(AwsIamAccessKeySpec { access, .. }) = f.credentials[1].target.settings() else { panic!() };
        assert_eq!(access.region, "us-east-1");
        assert_eq!(PolicyFile::parse(&f.to_toml()).unwrap(), f, "round-trips through its canonical TOML");
        for (from, to) in [
            ("ttl = \"1h\"", "ttl = \"1h\", bogus = 1"),
            ("user = \"u\"", "user = \"u\", bogus = 1"),
            ("secret_id = \"s\"", "secret_id = \"s\", bogus = 1"),
            ("admin_secret_key_secret = \"aws/s\" }\n", "admin_secret_key_secret = \"bad name!\" }\n"),
            ("token_secret = \"openbao/admin\", ", ""),
        ] {
            let bad = t.replacen(from, to, 1);
            assert_ne!(bad, t, "{from}");
            assert!(PolicyFile::parse(&bad).is_err(), "accepted: {to}");
        }
    }

    /// A file with both destination kinds, and its canonical TOML (what is stored, sealed, and
    /// hashed) as the enum-based destinations wrote it: the registry must write the same bytes.
    #[test]
    fn destinations_are_written_back_byte_for_byte_as_before() {
        let t = r#"
[[credential]]
name = "x/z"
target = { kind = "aws-iam-access-key", user = "u", admin_access_key_id = "AKIA", admin_secret_key_secret = "aws/s" }
deploy = [
  { kind = "aws-secrets-manager", format = "aws-access-key", secret_id = "s", admin_secret_key_secret = "aws/s", admin_access_key_id = "AKIA", endpoint = "http://127.0.0.1:5000" },
  { kind = "openbao-kv", handle_field = "id", address = "http://127.0.0.1:8200", token_secret = "o/t", mount = "secret", path = "app/k", field = "secret" },
]
"#;
        let f = PolicyFile::parse(t).unwrap();
        let text = f.to_toml();
        assert_eq!(
            text,
            concat!(
                "[rules]\n",
                "max_ttl = \"90d\"\n",
                "allow_bare_wildcards = false\n",
                "one_active_per_purpose = true\n",
                "\n",
                "[[credential]]\n",
                "name = \"x/z\"\n",
                "emergency = \"replace-first\"\n",
                "\n",
                "[credential.target]\n",
                "kind = \"aws-iam-access-key\"\n",
                "user = \"u\"\n",
                "region = \"us-east-1\"\n",
                "admin_access_key_id = \"AKIA\"\n",
                "admin_secret_key_secret = \"aws/s\"\n",
                "lifetime = \"90d\"\n",
                "\n",
                "[[credential.deploy]]\n",
                "kind = \"aws-secrets-manager\"\n",
                "secret_id = \"s\"\n",
                "region = \"us-east-1\"\n",
                "endpoint = \"http://127.0.0.1:5000\"\n",
                "admin_access_key_id = \"AKIA\"\n",
                "admin_secret_key_secret = \"aws/s\"\n",
                "format = \"aws-access-key\"\n",
                "\n",
                "[[credential.deploy]]\n",
                "kind = \"openbao-kv\"\n",
                "address = \"http://127.0.0.1:8200\"\n",
                "token_secret = \"o/t\"\n",
                "mount = \"secret\"\n",
                "path = \"app/k\"\n",
                "field = \"secret\"\n",
                "handle_field = \"id\"\n",
            )
        );
        use sha2::Digest as _;
        assert_eq!(
            token_core::hex::encode(&sha2::Sha256::digest(text.as_bytes())),
            "f8375abcf9a386d30a7938b4082ac673ab6a98d3bee87406d4285deb84307932"
        );
        assert_eq!(PolicyFile::parse(&text).unwrap(), f);
    }

    #[test]
    fn overlap_and_deletion_grace_are_checked_and_bounded() {
        let aws = |extra: &str, target_extra: &str| {
            format!(
                "[[credential]]\nname = \"aws/k\"\nschedule = \"1d\"\n{extra}\ntarget = {{ kind = \"aws-iam-access-key\", \
                 user = \"u\", admin_access_key_id = \"AKIA\", admin_secret_key_secret = \"aws/s\"{target_extra} }}\n"
            )
        };
        let spec = |text: &str| PolicyFile::parse(text).map(|f| f.credentials[0].clone());
        // Absent: the deployment's overlap, a grace of 1 hour.
        let c = spec(&aws("", "")).unwrap();
        assert_eq!(
            (c.overlap_spec().unwrap(), c.deletion_grace_spec().unwrap()),
            (None, Some(TimeDelta::hours(1)))
        );
        let c = spec(&aws("overlap = \"90s\"\ndeletion_grace = \"10m\"", "")).unwrap();
        assert_eq!(c.overlap_spec().unwrap(), Some(TimeDelta::seconds(90)));
        assert_eq!(c.deletion_grace_spec().unwrap(), Some(TimeDelta::minutes(10)));
        let c = spec(&aws("overlap = \"0s\"\ndeletion_grace = \"0\"", "")).unwrap();
        assert_eq!(
            (c.overlap_spec().unwrap(), c.deletion_grace_spec().unwrap()),
            (Some(TimeDelta::zero()), Some(TimeDelta::zero()))
        );
        // A quiet period shorter than the overlap (its maximum) is kept, and written back as given.
        let c = spec(&aws("overlap = \"1h\"\nquiet_period = \"15m\"", "")).unwrap();
        assert_eq!(c.quiet_period_spec().unwrap(), Some(TimeDelta::minutes(15)));
        assert!(
            PolicyFile::parse(&aws("overlap = \"1h\"\nquiet_period = \"15m\"", ""))
                .unwrap()
                .to_toml()
                .contains("quiet_period = \"15m\"")
        );
        // An older file's grace in the target still counts.
        let c = spec(&aws("", ", deletion_grace = \"2h\"")).unwrap();
        assert_eq!(c.deletion_grace_spec().unwrap(), Some(TimeDelta::hours(2)));
        assert_eq!(
            PolicyFile::parse(&PolicyFile::parse(&aws("overlap = \"1m\"", "")).unwrap().to_toml())
                .unwrap()
                .credentials[0]
                .overlap
                .as_ref()
                .map(Duration::as_str),
            Some("1m")
        );
        for (bad, why) in [
            (aws("overlap = \"8d\"", ""), "at most"),
            (aws("overlap = \"1d\"", ""), "shorter than the schedule"),
            (aws("overlap = \"soon\"", ""), "overlap"),
            (aws("overlap = \"-1s\"", ""), "overlap"),
            (aws("deletion_grace = \"31d\"", ""), "at most"),
            (aws("quiet_period = \"0s\"", ""), "quiet_period"),
            (aws("overlap = \"1m\"\nquiet_period = \"2m\"", ""), "shorter than the overlap"),
            (aws("quiet_period = \"later\"", ""), "quiet_period"),
            (aws("deletion_grace = \"00x\"", ""), "deletion_grace"),
            (aws("deletion_grace = \"1h\"", ", deletion_grace = \"1h\""), "twice"),
            (aws("", ", lifetime = \"1h\"").replace("schedule = \"1d\"\n", "overlap = \"2h\"\n"), "lifetime"),
            (
                "[[credential]]\nname = \"kv/x\"\ndeletion_grace = \"1h\"\ntarget = { kind = \"openbao-kv\", \
                 address = \"http://127.0.0.1:8200\", token_secret = \"o/t\", mount = \"m\", path = \"p\", field = \"f\", \
                 lifetime = \"1d\" }\n"
                    .to_owned(),
                "only an aws-iam-access-key",
            ),
        ] {
            let e = PolicyFile::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(why) && e.contains("credential"), "{bad}: {e}");
        }
    }
}
