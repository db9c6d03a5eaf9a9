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
//!   configured address, which is the only place the token is sent (HTTPS with the platform's
//!   roots or a given CA, or plain HTTP to loopback only). It needs the token's `default` policy
//!   and consumes one use of a use-limited token; a refusal (403) is `Unknown`, since OpenBao
//!   refuses alike a revoked token, another server's live one and one that may not look itself up;
//! - a Tokenward token: by the store that issued it, through the front door
//!   (`Tokenward::live_check`), with no network at all.
//!
//! A tool author adds a provider by implementing [`LiveCheck`] in one file and registering it with
//! [`LiveValidatorBuilder::check`]. The validator bounds what it does: one request per distinct
//! credential, at most `rate` requests a second, a timeout per request, a total time budget and a
//! request cap; what is left when a bound is reached is `Unknown`, with the bound named. A local
//! check ([`LiveCheck::is_local`]: our store) sends no request, so neither the rate nor the cap
//! applies to it.
//!
//! An `Invalid` verdict is given only on an answer that proves the credential dead (an unknown key
//! id, a revoked or expired record); anything less certain is `Unknown` with the reason, since a
//! live credential called dead is the dangerous mistake.
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
    /// The provider's answer proves it dead (an unknown key id, a revoked, expired or used-up token).
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
    /// What makes the credential less dangerous than its kind, when the check knows it (a
    /// Tokenward token bound to a key: a copy is useless without the key's proofs). A finding
    /// with one is reported one level lower (SARIF `warning`, not `error`); it is a leak all the
    /// same, and a leak response revokes it all the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mitigation: Option<String>,
}

impl Validation {
    /// The provider accepts it.
    pub fn valid(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Valid, by: by.into(), detail: detail.into(), mitigation: None }
    }

    /// The provider refuses it.
    pub fn invalid(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Invalid, by: by.into(), detail: detail.into(), mitigation: None }
    }

    /// Not known, and why.
    pub fn unknown(by: impl Into<String>, detail: impl Into<String>) -> Self {
        Self { validity: Validity::Unknown, by: by.into(), detail: detail.into(), mitigation: None }
    }

    /// With what makes the credential less dangerous than its kind ([`Validation::mitigation`]).
    #[must_use]
    pub fn mitigated(mut self, why: impl Into<String>) -> Self {
        self.mitigation = Some(why.into());
        self
    }

    /// Whether the finding is reported one level lower: the check named a mitigation.
    pub fn is_mitigated(&self) -> bool {
        self.mitigation.is_some()
    }
}

/// `text` made safe to print on one line: control characters (newlines, escapes) and the
/// characters that reorder text (bidirectional overrides) dropped, at most `max` characters kept
/// (`…` when cut). For what a provider says (a display name, an error message), which a report
/// prints.
pub(crate) fn printable(text: &str, max: usize) -> String {
    let mut kept = text
        .chars()
        .filter(|c| !c.is_control() && !matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'));
    let mut out: String = kept.by_ref().take(max).collect();
    if kept.next().is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_text_is_one_line_and_bounded() {
        assert_eq!(super::printable("ci\n  evil: line\u{1b}[31m\u{202e}x", 100), "ci  evil: line[31mx");
        assert_eq!(super::printable("abcdef", 3), "abc…");
        assert_eq!(super::printable("abc", 3), "abc");
    }
}
