//! Federation (feature `federation`): a workload with no stored secret — a CI job, a pod — trades
//! its platform's signed OIDC token for a short-lived, narrowly scoped Tokenward token
//! ([`Tokenward::exchange`]), under the policy's `[[federation]]` tables
//! ([`crate::policy::FederationSpec`], made live by [`Tokenward::federate`]).
//!
//! The subject token is validated by `token-oidc` (RS256, ES256 or EdDSA by the issuer's keys;
//! `iss`, `aud`, `exp`, `nbf`, `iat` with a bounded skew; a `jti` never accepted twice, in one
//! replay cache shared by every issuer of the handle, so one subject token is exchanged at most
//! once). Then every claim the federation binds must match, the token is issued to the
//! federation's principal — bounded by its roles, the federation's `scopes` and `max_ttl` — and
//! bound to the caller's key when asked (or when the federation requires it). Every exchange is
//! audited (`exchange`: granted with the token, issuer, subject and the matched claims; or
//! denied with why), never the subject token itself.

pub(crate) mod refusal;
pub(crate) mod trusted;

use std::collections::HashMap;
use std::sync::Arc;

use token_audit::{Action, Actor, AuditEvent, Outcome};
use token_core::chrono::{DateTime, TimeDelta, Utc};
use token_core::errors::PolicyViolation;
use token_core::names::Purpose;
use token_core::{IssueRequest, IssuedToken, ScopeSet, Thumbprint};
use token_oidc::{
    Algorithm, ClaimRules, DpopProof, DpopVerifier, IssuerKeys, JwtValidator, Preset, ReplayCache,
};

use crate::deployment::Tokenward;
use crate::error::{Error, Result};
use crate::policy::{ClaimSpec, FederationSpec, PolicyFile};
pub use refusal::ExchangeError;
use trusted::Trust;

/// An exchange: the scopes and lifetime asked for, and the key to bind the token to.
#[derive(Clone, Debug)]
pub struct ExchangeRequest {
    scopes: ScopeSet,
    /// `None`: the federation's `max_ttl`.
    ttl: Option<TimeDelta>,
    bind: Option<Thumbprint>,
    /// The DPoP proof the key was shown with, to spend once the exchange is granted.
    proof: Option<(DpopProof, Arc<DpopVerifier>)>,
    source: Option<String>,
}

impl ExchangeRequest {
    /// Asks for `scopes` for `ttl` (at most the federation's `max_ttl`).
    pub fn new(scopes: ScopeSet, ttl: TimeDelta) -> Self {
        Self { scopes, ttl: Some(ttl), bind: None, proof: None, source: None }
    }

    /// Asks for `scopes` for as long as the federation grants (its `max_ttl`).
    pub fn longest(scopes: ScopeSet) -> Self {
        Self { scopes, ttl: None, bind: None, proof: None, source: None }
    }

    /// Binds the token to the key whose RFC 7638 thumbprint is `key` (the key of the caller's
    /// DPoP proof): then it is accepted only with a proof by that key.
    pub fn bound_to(mut self, key: Thumbprint) -> Self {
        self.bind = Some(key);
        self
    }

    /// Binds the token to the key of `proof`, a DPoP proof `verifier` accepted unspent
    /// ([`DpopVerifier::verify_unspent`]): its `jti` is spent only once everything else about
    /// the exchange is accepted, right before the token is issued (as the subject token's is), so
    /// proofs sent with refused exchanges take no room in the replay cache; a proof spent
    /// meanwhile (a replay) refuses the exchange ([`ExchangeError::Proof`]).
    pub fn proven_by(mut self, proof: DpopProof, verifier: Arc<DpopVerifier>) -> Self {
        self.bind = Some(proof.thumbprint());
        self.proof = Some((proof, verifier));
        self
    }

    /// Where the request came from (an address), for the audit entry.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }
}

/// A granted exchange: the token (shown once), and what it was granted on.
#[derive(Debug)]
#[non_exhaustive]
pub struct Exchanged {
    /// The token: give it to the caller, never log it.
    pub token: IssuedToken,
    /// The federation that granted it.
    pub federation: String,
    /// The subject token's issuer and subject.
    pub issuer: String,
    /// The subject (`sub`).
    pub subject: String,
    /// Each bound claim and the value it matched.
    pub matched: Vec<(String, String)>,
    /// When the token expires.
    pub expires_at: DateTime<Utc>,
    /// The key it is bound to, if it is.
    pub bound_to: Option<Thumbprint>,
}

fn config(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{what}: {e}"))
}

impl Tokenward {
    /// Trusts the issuers of `file`'s `[[federation]]` tables (replacing what was trusted
    /// before): builds each one's validator (keys fetched through `token-http`, or pinned from a
    /// file), its claim rules and its principal. Returns the federations' names.
    pub fn federate(&self, file: &PolicyFile) -> Result<Vec<String>> {
        file.check()?;
        let federations = &self.inner.federations;
        let mut validators: HashMap<(String, String), (JwksKey, Arc<JwtValidator>)> = HashMap::new();
        let mut trusts = Vec::new();
        for spec in &file.federations {
            let what = format!("federation {}", spec.name);
            let preset = Preset::from_name(&spec.preset).ok_or_else(|| config(&what, "unknown preset"))?;
            let mut rules = ClaimRules::new(preset);
            for (claim, value) in &spec.claims {
                rules = match value {
                    ClaimSpec::Exact(v) => rules.require(claim, v),
                    ClaimSpec::Glob { glob } => rules.require_glob(claim, glob),
                }
                .map_err(|e| config(&what, e))?;
            }
            let key = (spec.issuer.clone(), spec.audience.clone());
            let jwks = JwksKey::of(spec);
            let validator = match validators.get(&key) {
                Some((same, v)) if *same == jwks => Arc::clone(v),
                Some(_) => {
                    return Err(config(
                        &what,
                        "another federation of this issuer and audience names other keys or algorithms",
                    ));
                }
                None => {
                    let v = Arc::new(
                        self.validator(spec, Arc::clone(&federations.replay))
                            .map_err(|e| config(&what, e))?,
                    );
                    validators.insert(key, (jwks, Arc::clone(&v)));
                    v
                }
            };
            let scopes = if spec.scopes.is_empty() {
                None
            } else {
                Some(ScopeSet::parse(&spec.scopes.join(" ")).map_err(|e| config(&what, e))?)
            };
            trusts.push(Arc::new(Trust {
                principal: file
                    .principal(&spec.principal)
                    .ok_or_else(|| config(&what, "no such principal"))?,
                max_ttl: spec.max_ttl.get().map_err(|e| config(&what, e))?,
                scopes,
                rules,
                validator,
                spec: spec.clone(),
            }));
        }
        let names = trusts.iter().map(|t| t.spec.name.clone()).collect();
        match federations.trusts.write() {
            Ok(mut g) => *g = Arc::new(trusts),
            Err(p) => *p.into_inner() = Arc::new(trusts),
        }
        Ok(names)
    }

    fn validator(&self, spec: &FederationSpec, replay: Arc<ReplayCache>) -> Result<JwtValidator, String> {
        let keys = match (&spec.jwks.url, &spec.jwks.file) {
            (Some(url), _) => {
                let mut b = IssuerKeys::remote(url.clone());
                if let Some(r) = &spec.jwks.refresh {
                    b = b.refresh(r.get().map_err(|e| e.to_string())?);
                }
                if let Some(ca) = &spec.jwks.ca_file {
                    let pem = std::fs::read(ca).map_err(|e| format!("reading {}: {e}", ca.display()))?;
                    b = b.ca_pem(pem);
                }
                b.build().map_err(|e| e.to_string())?
            }
            // A trust anchor: its mode, its size and the SHA-256 the (sealed) policy pins are
            // token-oidc's checks.
            (None, Some(file)) => match &spec.jwks.sha256 {
                Some(hex) => {
                    let pin = token_core::hex::decode(&hex.to_ascii_lowercase())
                        .ok_or("jwks.sha256: 64 hex digits")?;
                    IssuerKeys::pinned_file_sha256(file, &pin)
                }
                None => IssuerKeys::pinned_file(file),
            }
            .map_err(|e| e.to_string())?,
            (None, None) => return Err("no jwks".into()),
        };
        let mut b = JwtValidator::builder(&spec.issuer, &spec.audience, keys);
        if let Some(d) = &spec.max_subject_lifetime {
            b = b.max_lifetime(d.get().map_err(|e| e.to_string())?);
        }
        let mut b = b.replay_cache(replay).clock(Arc::clone(self.clock()));
        if !spec.algorithms.is_empty() {
            let algs: Option<Vec<Algorithm>> =
                spec.algorithms.iter().map(|a| Algorithm::from_name(a)).collect();
            b = b.algorithms(algs.ok_or("an unknown algorithm")?);
        }
        b.build().map_err(|e| e.to_string())
    }

    /// Exchanges `subject_token` — a workload's OIDC token — for a Tokenward token (RFC 8693's
    /// token exchange, as a library call): see the [module](crate::federation). Audited either
    /// way; the subject token is never logged or recorded.
    pub async fn exchange(&self, subject_token: &str, request: &ExchangeRequest) -> Result<Exchanged> {
        match self.try_exchange(subject_token, request).await {
            Ok(done) => Ok(done),
            Err(Denied::Failed(e)) => Err(e),
            Err(Denied::Refused(federation, error)) => {
                let error = *error;
                let mut event =
                    AuditEvent::new(self.clock().now(), Actor::Anonymous, Action::Exchange("denied".into()))
                        .outcome(Outcome::Failure(error.code().into()))
                        .attr("reason", error.to_string());
                if let Some(f) = federation {
                    event = event.attr("federation", f);
                }
                if let Some(s) = &request.source {
                    event = event.source(s.clone());
                }
                if let Some(audit) = &self.inner.auditor {
                    audit.emit_durable(event).await?;
                }
                Err(Error::Exchange(error))
            }
        }
    }

    async fn try_exchange(
        &self,
        subject_token: &str,
        request: &ExchangeRequest,
    ) -> std::result::Result<Exchanged, Denied> {
        let trusts = self.inner.federations.current();
        if trusts.is_empty() {
            return Err(Denied::refused(None, ExchangeError::NotConfigured));
        }
        let claimed = JwtValidator::claimed_issuer(subject_token).unwrap_or_default();
        let of_issuer: Vec<&Arc<Trust>> = trusts.iter().filter(|t| t.spec.issuer == claimed).collect();
        let Some(first) = of_issuer.first() else {
            return Err(Denied::refused(None, ExchangeError::UntrustedIssuer(shown(&claimed))));
        };
        let first_name = Some(first.spec.name.clone());
        // One validation per distinct validator of the issuer (its audiences); the first that
        // accepts the token decides. The replay cache is shared: a token is accepted once.
        let mut verified = None;
        let mut refusal = None;
        for t in &of_issuer {
            if verified.as_ref().is_some_and(|(v, _): &(Arc<JwtValidator>, _)| Arc::ptr_eq(v, &t.validator)) {
                continue;
            }
            if verified.is_some() {
                break;
            }
            // Unspent: the jti is recorded only once the claims and the request are accepted, so
            // tokens of other identities of the issuer cannot fill the replay cache.
            match t.validator.validate_unspent_at(subject_token, self.clock().now()).await {
                Ok(jwt) => verified = Some((Arc::clone(&t.validator), jwt)),
                Err(e) => refusal = refusal.or(Some(e)),
            }
        }
        let Some((validator, jwt)) = verified else {
            let Some(refusal) = refusal else {
                return Err(Denied::refused(first_name, ExchangeError::NotConfigured));
            };
            return Err(Denied::refused(first_name, ExchangeError::Subject(refusal)));
        };
        let mut mismatch = None;
        let mut chosen = None;
        for t in of_issuer.iter().filter(|t| Arc::ptr_eq(&t.validator, &validator)) {
            match t.rules.check(&jwt) {
                Ok(matched) => {
                    chosen = Some((Arc::clone(t), matched));
                    break;
                }
                Err(e) => mismatch = mismatch.or(Some((t.spec.name.clone(), e))),
            }
        }
        let Some((trust, matched)) = chosen else {
            let Some((federation, error)) = mismatch else {
                return Err(Denied::refused(first_name, ExchangeError::NotConfigured));
            };
            return Err(Denied::refused(
                Some(federation.clone()),
                ExchangeError::Claims { federation, error },
            ));
        };
        let name = trust.spec.name.clone();
        let deny = |e| Err(Denied::refused(Some(name.clone()), e));
        if trust.spec.binding_required() && request.bind.is_none() {
            return deny(ExchangeError::BindingRequired(name.clone()));
        }
        let ttl = request.ttl.unwrap_or(trust.max_ttl);
        if ttl > trust.max_ttl {
            return deny(ExchangeError::TtlTooLong {
                federation: name.clone(),
                requested: crate::policy::format_duration(ttl),
                max: trust.spec.max_ttl.as_str().to_owned(),
            });
        }
        if let Some(allowed) = &trust.scopes
            && let Some(s) = request
                .scopes
                .iter()
                .find(|s| !ScopeSet::new([(*s).clone()]).is_ok_and(|one| one.is_subset(allowed)))
        {
            return deny(ExchangeError::ScopeNotAllowed { federation: name.clone(), scope: s.to_string() });
        }
        // Each exchange gets a purpose of its own (the federation's name and 64 random bits), so
        // concurrent jobs of one identity each hold a token.
        let purpose =
            Purpose::new(&format!("{name}.{}", token_core::hex::encode(&random8().map_err(Denied::Failed)?)))
                .map_err(|e| Denied::Failed(Error::Config(format!("federation {name}: {e}"))))?;
        let asking = |ttl| {
            let issue = IssueRequest::new(purpose.clone(), request.scopes.clone(), ttl);
            match request.bind {
                Some(key) => issue.bound_to(key),
                None => issue,
            }
        };
        // What the principal's roles allow, checked before anything is spent: an exchange they
        // refuse burns neither the subject token nor the DPoP proof. Asked for the longest: if the
        // roles allow less than `max_ttl`, the token lives what they allow (asked for a length,
        // the caller gets that or a refusal).
        let policy = self.inner.tokens.issuer().policy();
        let refused =
            |v: PolicyViolation| deny(ExchangeError::Issue { federation: name.clone(), error: v.into() });
        let mut issue = asking(ttl);
        match policy.check_issue(&trust.principal, &issue, &[], self.clock().now()) {
            Ok(_) => {}
            Err(PolicyViolation::TtlTooLong { max_secs, .. }) if request.ttl.is_none() && max_secs > 0 => {
                issue = asking(TimeDelta::seconds(max_secs));
                if let Err(v) = policy.check_issue(&trust.principal, &issue, &[], self.clock().now()) {
                    return refused(v);
                }
            }
            Err(v) => return refused(v),
        }
        // Everything checked: now the DPoP proof (first: a replayed proof leaves the subject token
        // unspent, for a retry with a fresh proof) and the subject token count as used (once
        // each; a concurrent replay loses here).
        if let Some((proof, verifier)) = &request.proof
            && let Err(e) = verifier.spend(proof)
        {
            return deny(ExchangeError::Proof(e));
        }
        if let Err(e) = validator.spend_at(&jwt, self.clock().now()) {
            return deny(ExchangeError::Subject(e));
        }
        let outcome = self.issue(&trust.principal, &issue).await;
        let token = match outcome {
            Ok(t) => t,
            // The policy's refusal (a scope the principal's roles do not grant, a lifetime above
            // a role's), however the store wraps it.
            Err(Error::Issue(error) | Error::Store(token_store::StoreError::Issue(error))) => {
                return deny(ExchangeError::Issue { federation: name.clone(), error });
            }
            Err(other) => return Err(Denied::Failed(other)),
        };
        let expires_at = token.expires_at();
        let claims = matched.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ");
        let mut event = AuditEvent::new(
            self.clock().now(),
            Actor::Principal(trust.principal.id().as_str().to_owned()),
            Action::Exchange("granted".into()),
        )
        .token(token.id())
        .attr("federation", name.clone())
        .attr("issuer", jwt.issuer())
        .attr("subject", shown(jwt.subject()))
        .attr("claims", claims);
        if let Some(key) = request.bind {
            event = event.attr("bound_to", key.to_string());
        }
        if let Some(s) = &request.source {
            event = event.source(s.clone());
        }
        if let Some(audit) = &self.inner.auditor
            && let Err(e) = audit.emit_durable(event).await
        {
            // The token was issued (and its issue audited): withdraw it rather than hand out a
            // token whose exchange is not on record.
            tracing::error!(federation = %name, error = %e, "the exchange could not be audited; its token is revoked");
            if let Err(r) = self.revoke(token.id()).await {
                tracing::error!(token = %token.id(), error = %r, "an unaudited exchange's token could not be revoked");
            }
            return Err(Denied::Failed(e.into()));
        }
        Ok(Exchanged {
            token,
            federation: name,
            issuer: jwt.issuer().to_owned(),
            subject: jwt.subject().to_owned(),
            matched,
            expires_at,
            bound_to: request.bind,
        })
    }
}

/// How an exchange did not happen: refused (audited as a denial), or failed (the store, the log).
enum Denied {
    Refused(Option<String>, Box<ExchangeError>),
    Failed(Error),
}

impl Denied {
    fn refused(federation: Option<String>, error: ExchangeError) -> Self {
        Self::Refused(federation, Box::new(error))
    }
}

/// What decides whether two federations of one issuer and audience can share a validator.
#[derive(PartialEq, Eq)]
struct JwksKey(String);

impl JwksKey {
    fn of(spec: &FederationSpec) -> Self {
        Self(format!("{:?}|{:?}|{:?}", spec.jwks, spec.algorithms, spec.max_subject_lifetime))
    }
}

/// Text from a token, for an error or an audit entry: printable, at most 128 characters.
fn shown(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// 64 random bits from the OS (a purpose's suffix: unique, not secret).
fn random8() -> std::result::Result<[u8; 8], Error> {
    use rand::TryRng;
    let mut b = [0u8; 8];
    rand::rngs::SysRng
        .try_fill_bytes(&mut b)
        .map_err(|_| Error::Config("the OS random source failed".into()))?;
    Ok(b)
}
