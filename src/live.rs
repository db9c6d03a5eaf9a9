//! Live validation of this deployment's own tokens (feature `validate`): a found Tokenward token
//! is judged by the store that issued it — no network, nothing sent anywhere, nothing changed
//! (the token is checked against its record and its ancestors', and its use limits against the
//! uses the store last counted; no use is counted). A token bound to a key is said to be
//! ([`Validation::mitigation`]): a copy cannot be used without the key's proofs, so the report
//! shows it one level lower.

use std::sync::Arc;

use token_core::lookup::TokenView;
use token_core::secrecy::ExposeSecret;
use token_core::{Decision, DenyReason};
use token_scan::live::{LiveCheck, Validation};
use token_scan::{Finding, TOKENWARD_RULE};

use crate::deployment::Tokenward;

/// Its name in a [`Validation`].
const NAME: &str = "tokenward-store";

/// Judges found Tokenward tokens by this deployment's store.
struct StoreCheck {
    tw: Tokenward,
}

#[async_trait::async_trait]
impl LiveCheck for StoreCheck {
    fn name(&self) -> &str {
        NAME
    }

    fn judges(&self, finding: &Finding) -> bool {
        finding.rule == TOKENWARD_RULE
    }

    /// The store, not the network: no request is sent.
    fn is_local(&self) -> bool {
        true
    }

    async fn check(&self, finding: &Finding) -> Validation {
        let text = finding.secret().expose_secret();
        let verifier = self.tw.tokens().verifier();
        let Ok(parsed) = verifier.format().parse(text) else {
            return Validation::unknown(NAME, "not in this deployment's token format");
        };
        let id = parsed.id();
        let row = match self.tw.tokens().token(id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Validation::unknown(NAME, "not issued by this store"),
            Err(e) => return Validation::unknown(NAME, format!("the store: {e}")),
        };
        // The record and its ancestors' (a child lives only while its whole line does), as the
        // verifier sees them; a missing one is left out, and the verifier says so.
        let line = token_core::lookup::InMemoryLookup::new();
        let mut up = row.record.parent;
        line.insert(row.record.clone());
        for _ in 0..token_core::limits::MAX_ANCESTRY {
            let Some(parent) = up else { break };
            match self.tw.tokens().token(parent).await {
                Ok(Some(p)) => {
                    up = p.record.parent;
                    line.insert(p.record);
                }
                Ok(None) => break,
                Err(e) => {
                    return Validation::unknown(NAME, format!("token {id}: its ancestor {parent}: {e}"));
                }
            }
        }
        let now = self.tw.clock().now();
        let decision = verifier.over(line).authenticate_at(text, now);
        // What the store knows beyond the text: a token bound to a key (its secret matching its
        // record) cannot be used without that key's proofs.
        let bound = match (&decision, &row.record.bound_to) {
            (
                Decision::Allowed(_)
                | Decision::Denied(
                    DenyReason::NotYetValid { .. }
                    | DenyReason::Revoked { .. }
                    | DenyReason::Expired { .. }
                    | DenyReason::UsesExhausted { .. }
                    | DenyReason::IdleTimeout { .. },
                ),
                Some(key),
            ) => Some(key.to_string()),
            _ => None,
        };
        let verdict = match decision {
            // Authentic and active; its use limits, as the store last counted them, may still
            // refuse every use (authentication counts none and does not look at them).
            Decision::Allowed(_) => {
                let usage = TokenView::with_usage(&row.record, row.uses, row.last_used);
                match usage.limits_deny_at(now.timestamp_millis()) {
                    Some(r) => Validation::invalid(NAME, format!("token {id}: {r}")),
                    None => Validation::valid(NAME, format!("token {id} is active")),
                }
            }
            // Not valid yet is live all the same: it will authenticate when its time comes.
            Decision::Denied(r @ DenyReason::NotYetValid { .. }) => {
                Validation::valid(NAME, format!("token {id}: {r}"))
            }
            // What proves it dead: the store's own record says so.
            Decision::Denied(
                r @ (DenyReason::Revoked { .. }
                | DenyReason::Expired { .. }
                | DenyReason::UsesExhausted { .. }
                | DenyReason::IdleTimeout { .. }),
            ) => Validation::invalid(NAME, format!("token {id}: {r}")),
            // Our id with another secret: a forged or altered token, which never authenticates.
            Decision::Denied(DenyReason::BadSecret) => {
                Validation::invalid(NAME, format!("token {id}: not its secret (forged or altered)"))
            }
            Decision::Denied(
                DenyReason::UnknownToken | DenyReason::Malformed(_) | DenyReason::UnknownDigestKey { .. },
            ) => Validation::unknown(NAME, "not issued by this store"),
            // Not a verdict on the token (an ancestor's record missing, the store or the audit
            // log unavailable; a key binding's proof is not asked for by authentication).
            Decision::Denied(r) => Validation::unknown(NAME, format!("token {id}: {r}")),
        };
        match bound {
            Some(key) => verdict.mitigated(format!(
                "bound to a key (DPoP, thumbprint {key}): a copy is useless without that key's proofs"
            )),
            None => verdict,
        }
    }
}

impl Tokenward {
    /// A [`LiveCheck`] that judges found Tokenward tokens by this deployment's store, to register
    /// with [`token_scan::live::LiveValidator::builder`] beside the providers' checks.
    pub fn live_check(&self) -> Arc<dyn LiveCheck> {
        Arc::new(StoreCheck { tw: self.clone() })
    }
}
