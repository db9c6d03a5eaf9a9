//! Issuing tokens and their children under a policy.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::error::TokenFormatError;
use crate::format::{TokenFormat, TokenId};
use crate::policy::{Approval, ChildRequest, IssueRequest, Policy, PolicyViolation};
use crate::record::TokenRecord;
use crate::role::Principal;
use crate::secret::IssuedToken;
use crate::verify::DigestKeyring;

/// Issuing failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// A policy rule refused it.
    #[error("policy refused the token: {0}")]
    Policy(#[from] PolicyViolation),
    /// A malformed parent token.
    #[error(transparent)]
    Format(#[from] TokenFormatError),
    /// The operating system's random number generator failed.
    #[error(transparent)]
    Randomness(#[from] crate::error::RandomnessUnavailable),
}

/// Issues tokens: generates them from the OS CSPRNG, checks the policy, and returns the plaintext
/// once with the record to store (which holds only a keyed digest).
///
/// It keeps no state about issued tokens: the caller supplies the active tokens for the purpose and
/// stores the record (an in-memory [`crate::lookup::InMemoryLookup`] or a `token-store` backend does both).
pub struct Issuer {
    format: TokenFormat,
    keys: DigestKeyring,
    policy: Policy,
}

impl Issuer {
    /// An issuer of `format` tokens, digesting under `keys.current()`, enforcing `policy`.
    pub fn new(format: TokenFormat, keys: DigestKeyring, policy: Policy) -> Self {
        Self { format, keys, policy }
    }

    /// The token format.
    pub fn format(&self) -> &TokenFormat {
        &self.format
    }

    /// The digest keys.
    pub fn keys(&self) -> &DigestKeyring {
        &self.keys
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Issues a token to `principal` at `now`; `active_for_purpose` lists the ids of its tokens for
    /// the same purpose that are active now (for the one-active-per-purpose rule).
    pub fn issue_at(
        &self,
        principal: &Principal,
        request: &IssueRequest,
        active_for_purpose: &[TokenId],
        now: DateTime<Utc>,
    ) -> Result<(IssuedToken, TokenRecord), IssueError> {
        let now = whole_millis(now);
        let approval = self.policy.check_issue(principal, request, active_for_purpose, now)?;
        self.mint(approval, |id, digest| TokenRecord {
            id,
            principal: principal.id().clone(),
            purpose: request.purpose().clone(),
            scopes: request.scopes().clone(),
            digest,
            created_at: now,
            not_before: approval.not_before,
            expires_at: approval.expires_at,
            revoked_at: None,
            parent: None,
            replaces: request.replaces(),
            limits: approval.limits,
            bound_to: request.binding(),
        })
    }

    /// Mints a child of `parent` at `now`. `parent_token` proves possession: it must be the
    /// parent's own token text. The child's scopes must lie within the parent's and it may not
    /// outlive it; it belongs to the parent's principal and records the parent.
    pub fn issue_child_at(
        &self,
        parent_token: &str,
        parent: &TokenRecord,
        request: &ChildRequest,
        now: DateTime<Utc>,
    ) -> Result<(IssuedToken, TokenRecord), IssueError> {
        let parsed = self.format.parse(parent_token)?;
        let proven = parsed.id() == parent.id
            && self
                .keys
                .get(parent.digest.key_id())
                .is_some_and(|k| bool::from(k.digest(parsed.secret_chars()).ct_eq(&parent.digest)));
        if !proven {
            return Err(
                PolicyViolation::ParentNotUsable("the presented token is not the parent".into()).into()
            );
        }
        // A bound token's text alone proves nothing: a thief holding a copy must not mint.
        if parent.bound_to.is_some() {
            return Err(PolicyViolation::ParentNotUsable(
                "it is bound to a key: its text alone does not prove possession".into(),
            )
            .into());
        }
        let now = whole_millis(now);
        let approval = self.policy.check_child(parent, request, now)?;
        self.mint(approval, |id, digest| TokenRecord {
            id,
            principal: parent.principal.clone(),
            purpose: request.purpose().clone(),
            scopes: request.scopes().clone(),
            digest,
            created_at: now,
            not_before: approval.not_before,
            expires_at: approval.expires_at,
            revoked_at: None,
            parent: Some(parent.id),
            replaces: None,
            limits: approval.limits,
            // Bound parents mint nothing (above); the field stays tied to the parent's all the same.
            bound_to: parent.bound_to,
        })
    }

    fn mint(
        &self,
        approval: Approval,
        record: impl FnOnce(TokenId, crate::digest::TokenDigest) -> TokenRecord,
    ) -> Result<(IssuedToken, TokenRecord), IssueError> {
        let (id, text) = self.format.generate()?;
        let digest = {
            use secrecy::ExposeSecret;
            let body = &text.expose_secret().as_bytes()[self.format.prefix().as_str().len() + 1..];
            self.keys
                .current()
                .digest(&body[crate::format::ID_LEN..crate::format::ID_LEN + crate::format::SECRET_LEN])
        };
        Ok((IssuedToken::new(id, text, approval.expires_at), record(id, digest)))
    }
}

/// Records keep whole milliseconds, the resolution the verifier decides at.
fn whole_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

impl fmt::Debug for Issuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issuer")
            .field("format", &self.format)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}
