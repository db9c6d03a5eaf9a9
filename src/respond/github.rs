//! A GitHub secret-scanning partner alert: its signature checked, each reported token answered.

use std::time::Instant;

use super::{Answering, LeakOutcome, LeakResponse, Seen};
use crate::deployment::Tokenward;
use crate::error::Result;

impl Tokenward {
    /// Handles a GitHub secret-scanning partner alert delivery: `verifier` checks the signature
    /// over the raw `body` (headers [`token_scan::alerts::KEY_ID_HEADER`] and
    /// [`token_scan::alerts::SIGNATURE_HEADER`]) before anything is parsed; every reported token that
    /// is ours and active is revoked (or replaced), and every reported secret of a credential this
    /// handle manages is answered, as in [`Tokenward::respond_to_leaks`], and audited; the answer is the partner response body GitHub expects (token hashes only).
    pub async fn respond_to_github_alerts(
        &self,
        verifier: &token_scan::alerts::AlertVerifier,
        body: &[u8],
        key_id: Option<&str>,
        signature: Option<&str>,
    ) -> Result<(String, LeakResponse)> {
        use token_core::secrecy::ExposeSecret;
        use token_scan::alerts::{Verdict, partner_response};
        let start = Instant::now();
        let alerts = verifier.verify(body, key_id, signature)?;
        let mut response = LeakResponse::default();
        let mut answering = Answering::default();
        let mut verdicts = Vec::with_capacity(alerts.len());
        for alert in &alerts {
            let text = alert.token.expose_secret();
            let seen = Seen {
                rule: "github-partner-alert",
                location: if alert.url.is_empty() {
                    format!("github:{}", alert.source)
                } else {
                    alert.url.clone()
                },
                fingerprint: token_scan::Fingerprint::sha256(text.as_bytes()).to_string(),
                suppressed: None,
            };
            // A Tokenward token by its shape, anything else against the managed credentials.
            let action =
                if self.tokens().verifier().format().parse(text).is_ok() || !self.manages_credentials() {
                    self.respond_to_token(text, seen, start, &mut answering).await?
                } else {
                    self.respond_to_credential(text, seen, start, &mut answering).await?
                };
            let verdict = match action.outcome {
                LeakOutcome::NotOurs => Verdict::FalsePositive,
                _ => Verdict::TruePositive,
            };
            verdicts.push((alert, verdict));
            response.actions.push(action);
        }
        Ok((partner_response(&verdicts), response))
    }
}
