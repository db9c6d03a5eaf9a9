//! Stored token records read back, each checked against its integrity tag.

use token_core::TokenId;

use super::TokenService;
use crate::error::{Result, StoreError};
use crate::model::{TokenQuery, TokenRow};

/// A stored token as listed ([`TokenService::tokens`]): its row, and why it is refused if it fails
/// its integrity check (its fields then are not to be believed).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ListedToken {
    /// The row as stored.
    pub row: TokenRow,
    /// Why the record is refused (edited outside Tokenward, or unreadable), if it is.
    pub tampered: Option<String>,
}

impl TokenService {
    /// A token's stored record, checked: one that fails its integrity check is
    /// [`StoreError::Corrupted`] with its id.
    pub async fn token(&self, id: TokenId) -> Result<Option<TokenRow>> {
        match self.backend.token(id).await? {
            None => Ok(None),
            Some(t) => {
                self.record_key.check_token(&t)?;
                Ok(Some(t))
            }
        }
    }

    /// Stored records answering `query`, each with its integrity: one that fails its check is
    /// listed as tampered (and never used), the rest as they are — one bad record does not hide
    /// the others.
    pub async fn tokens(&self, query: &TokenQuery) -> Result<Vec<ListedToken>> {
        let found = self.backend.tokens(query).await?;
        Ok(found
            .into_iter()
            .map(|row| {
                let tampered = self.record_key.check_token(&row).err().map(|e| match e {
                    StoreError::Corrupted { detail, .. } => detail,
                    other => other.to_string(),
                });
                ListedToken { row, tampered }
            })
            .collect())
    }
}
