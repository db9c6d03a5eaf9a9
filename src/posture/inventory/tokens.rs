//! Tokenward's own tokens as an inventory source: every unexpired token in the store, with its
//! principal, purpose, expiry and last use (a record that fails its integrity check is listed as
//! tampered, with that finding).

use token_core::chrono::{DateTime, Utc};
use token_core::lookup::TokenStatus;
use token_store::TokenQuery;

use super::entry::{CredentialStatus, Finding, InventoryEntry, LastUse, Managed, SourceKind};
use crate::Tokenward;
use crate::error::Result;

pub(super) async fn read(tw: &Tokenward, now: DateTime<Utc>) -> Result<Vec<InventoryEntry>> {
    let listed = tw.tokens().tokens(&TokenQuery::Unexpired { at: now }).await?;
    Ok(listed
        .into_iter()
        .map(|l| {
            let r = &l.row.record;
            let status = if l.tampered.is_some() {
                CredentialStatus::Tampered
            } else {
                match r.status_at(now) {
                    TokenStatus::NotYetValid => CredentialStatus::NotYetValid,
                    TokenStatus::Revoked => CredentialStatus::Revoked,
                    TokenStatus::Expired => CredentialStatus::Expired,
                    _ => CredentialStatus::Active,
                }
            };
            let mut e = InventoryEntry::new(
                SourceKind::Tokenward,
                r.id.to_string(),
                r.principal.as_str().to_owned(),
                status,
            );
            e.purpose = Some(r.purpose.as_str().to_owned());
            e.created = Some(r.created_at);
            e.expires = Some(r.expires_at);
            e.last_used = l.row.last_used.map(|at| LastUse { at, service: None, region: None });
            e.managed = Some(Managed::Issued);
            if l.tampered.is_some() {
                e.findings.push(Finding::Tampered);
            }
            e
        })
        .collect())
}
