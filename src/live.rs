//! Live validation of this deployment's own tokens (feature `validate`): a found Tokenward token
//! is judged by the store that issued it — no network, nothing sent anywhere, nothing changed
//! (the token is checked against its record alone; no use is counted).

use std::sync::Arc;

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
        let one = token_core::lookup::InMemoryLookup::new();
        one.insert(row.record);
        match verifier.over(one).authenticate_at(text, self.tw.clock().now()) {
            Decision::Allowed(_) => Validation::valid(NAME, format!("token {id} is active")),
            // Not valid yet is live all the same: it will authenticate when its time comes.
            Decision::Denied(r @ DenyReason::NotYetValid { .. }) => {
                Validation::valid(NAME, format!("token {id}: {r}"))
            }
            Decision::Denied(
                DenyReason::UnknownToken | DenyReason::Malformed(_) | DenyReason::UnknownDigestKey { .. },
            ) => Validation::unknown(NAME, "not issued by this store"),
            Decision::Denied(DenyReason::AuditUnavailable) => {
                Validation::unknown(NAME, "the audit log is unavailable")
            }
            Decision::Denied(r) => Validation::invalid(NAME, format!("token {id}: {r}")),
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
