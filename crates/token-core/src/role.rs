//! Roles (named grants of scopes with a TTL cap) and the principals that hold them.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use chrono::TimeDelta;
use serde::{Deserialize, Serialize};

use crate::scope::{Scope, ScopeSet};

/// Error for a malformed name (role, principal or purpose).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} name must be 1 to 128 characters of [A-Za-z0-9._:@-]")]
pub struct NameError {
    kind: &'static str,
}

fn check_name(kind: &'static str, s: &str) -> Result<(), NameError> {
    let ok = !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'@' | b'-'));
    if ok { Ok(()) } else { Err(NameError { kind }) }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<String>);

        impl $name {
            /// Validates and wraps a name: 1 to 128 characters of `[A-Za-z0-9._:@-]`.
            pub fn new(s: &str) -> Result<Self, NameError> {
                check_name($kind, s)?;
                Ok(Self(Arc::new(s.to_owned())))
            }

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(n: $name) -> String {
                n.0.as_ref().clone()
            }
        }
    };
}

name_type!(
    /// The name of a role, such as `log-reader`.
    RoleName,
    "role"
);
name_type!(
    /// Who holds tokens: a service or an automation, such as `billing-api`.
    PrincipalId,
    "principal"
);
name_type!(
    /// What a token is for, such as `upload-logs`: a principal holds one active token per purpose.
    Purpose,
    "purpose"
);

/// A named grant of scopes with the longest lifetime a token justified by it may have.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    name: RoleName,
    grants: ScopeSet,
    #[serde(with = "crate::record::delta_secs")]
    max_ttl: TimeDelta,
}

impl Role {
    /// A role granting `grants` to tokens living at most `max_ttl`.
    pub fn new(name: RoleName, grants: ScopeSet, max_ttl: TimeDelta) -> Self {
        Self { name, grants, max_ttl }
    }

    /// Parses the grants from text: `Role::parse("log-reader", "s3:logs/**:read", ttl)`.
    pub fn parse(name: &str, grants: &str, max_ttl: TimeDelta) -> Result<Self, crate::errors::PolicyError> {
        Ok(Self::new(RoleName::new(name)?, ScopeSet::parse(grants)?, max_ttl))
    }

    /// The role's name.
    pub fn name(&self) -> &RoleName {
        &self.name
    }

    /// The scopes it grants.
    pub fn grants(&self) -> &ScopeSet {
        &self.grants
    }

    /// The longest lifetime of a token it justifies.
    pub fn max_ttl(&self) -> TimeDelta {
        self.max_ttl
    }

    pub(crate) fn covers(&self, scope: &Scope) -> bool {
        self.grants.iter().any(|g| scope.is_subset(g))
    }
}

/// A service or automation that holds roles.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    id: PrincipalId,
    roles: BTreeSet<RoleName>,
}

impl Principal {
    /// A principal holding `roles`.
    pub fn new(id: PrincipalId, roles: impl IntoIterator<Item = RoleName>) -> Self {
        Self { id, roles: roles.into_iter().collect() }
    }

    /// Parses names: `Principal::parse("billing-api", ["log-reader"])`.
    pub fn parse<'a>(id: &str, roles: impl IntoIterator<Item = &'a str>) -> Result<Self, NameError> {
        Ok(Self::new(
            PrincipalId::new(id)?,
            roles.into_iter().map(RoleName::new).collect::<Result<Vec<_>, _>>()?,
        ))
    }

    /// Its id.
    pub fn id(&self) -> &PrincipalId {
        &self.id
    }

    /// The roles it holds.
    pub fn roles(&self) -> impl Iterator<Item = &RoleName> {
        self.roles.iter()
    }
}
