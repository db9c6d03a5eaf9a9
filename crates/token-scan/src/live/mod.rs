//! Live validation, opt-in: asking a credential's own provider whether a found credential still
//! works, for the kinds whose provider can be asked safely.
//!
//! Each finding of a validated report says [`Validity::Valid`], [`Validity::Invalid`] or
//! [`Validity::Unknown`], with which check said so and a short detail that never holds the
//! secret. The checks (feature `validate`):
//!
//! - an AWS access key pair ([`AwsCallerIdentity`]): STS `GetCallerIdentity` *signed* with the
//!   found pair at a configured STS endpoint — the secret key never leaves the process, only a
//!   SigV4 signature does;
//! - an OpenBao / Vault token ([`OpenBaoLookupSelf`]): `auth/token/lookup-self` at the one
//!   configured address, which is the only place the token is sent (TLS, or plain HTTP to
//!   loopback only);
//! - a Tokenward token: by the store that issued it, through the front door
//!   (`Tokenward::live_check`), with no network at all.
//!
//! A tool author adds a provider by implementing [`LiveCheck`] in one file and registering it with
//! [`LiveValidatorBuilder::check`]. The validator bounds what it does: one request per distinct
//! credential, at most `rate` requests a second, a timeout per request, a total time budget and a
//! request cap; what is left when a bound is reached is `Unknown`, with the bound named.
//!
//! ```
//! use token_scan::live::{Validation, Validity};
//!
//! let v = Validation::unknown("none", "no provider check for this kind");
//! assert_eq!(v.validity, Validity::Unknown);
//! assert_eq!(v.validity.as_str(), "unknown");
//! ```

use serde::Serialize;

#[cfg(feature = "validate")]
mod aws;
#[cfg(feature = "validate")]
mod openbao;
#[cfg(feature = "validate")]
mod validator;

#[cfg(feature = "validate")]
pub use aws::AwsCallerIdentity;
#[cfg(feature = "validate")]
pub use openbao::OpenBaoLookupSelf;
#[cfg(feature = "validate")]
pub use validator::{LiveCheck, LiveValidator, LiveValidatorBuilder, ValidationSummary};

/// What a provider said of a found credential.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Validity {
    /// The provider accepts it: the leak is live.
    Valid,
    /// The provider refuses it (revoked, deleted, expired, a wrong secret).
    Invalid,
    /// Not known: no check for this kind, the provider did not answer clearly, or a bound (time,
    /// rate, requests) was reached first.
    Unknown,
}

impl Validity {
    /// `valid`, `invalid` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Invalid => "invalid",
            Validity::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Validity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check's answer about one finding: never the secret, only what the provider said of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Validation {
    /// The verdict.
    pub validity: Validity,
    /// Which check answered (`aws-sts`, `openbao`, `tokenward-store`, `none`).
    pub by: String,
    /// A short detail: the identity it acts as (an ARN, a display name), the provider's error code,
    /// or the bound that left it unknown.
    pub detail: String,
}

impl Validation {
    /// The provider accepts it.
    pub fn valid(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Valid, by: by.into(), detail: detail.into() }
    }

    /// The provider refuses it.
    pub fn invalid(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Invalid, by: by.into(), detail: detail.into() }
    }

    /// Not known, and why.
    pub fn unknown(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Unknown, by: by.into(), detail: detail.into() }
    }
}
