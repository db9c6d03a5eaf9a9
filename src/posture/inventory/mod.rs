//! The inventory: every non-human credential Tokenward can see, from each source it is given —
//! AWS IAM access keys, Tokenward's own tokens — with who owns it, when it was created and last
//! used, when it expires, whether Tokenward manages it, and what needs attention.
//!
//! [`Tokenward::inventory_at`] reads every source of an [`InventorySources`] and returns an
//! [`Inventory`]; the findings ([`Finding`]) are a pure function of the entries, the time and the
//! [`InventoryThresholds`]. An entry names a credential by its id (an access key
//! id, a token id), never by its secret. A source is one module here and one line in the
//! function that reads them.

#[cfg(feature = "aws")]
mod aws_iam;
mod declared;
mod entry;
pub(crate) mod error;
mod findings;
#[cfg(feature = "vault")]
mod openbao;
mod tokens;

use token_core::chrono::{DateTime, Utc};

use crate::Tokenward;
use crate::error::Result;

#[cfg(feature = "aws")]
pub use aws_iam::AwsIamSource;
pub use entry::{CredentialStatus, Finding, Inventory, InventoryEntry, LastUse, Managed, SourceKind};
pub use error::InventoryError;
pub use findings::InventoryThresholds;
#[cfg(feature = "vault")]
pub use openbao::OpenBaoSource;

/// What tells AWS accounts apart in a policy: endpoint, region, admin access key id.
#[cfg(feature = "aws")]
type AccountKey = (Option<String>, String, String);

/// What to read, and the thresholds of the findings.
#[derive(Debug, Clone, Default)]
pub struct InventorySources {
    /// Each with what tells accounts apart.
    #[cfg(feature = "aws")]
    aws_iam: Vec<(AccountKey, AwsIamSource)>,
    /// Each with its server's address.
    #[cfg(feature = "vault")]
    openbao: Vec<(String, OpenBaoSource)>,
    tokens: bool,
    thresholds: InventoryThresholds,
}

impl InventorySources {
    /// No source yet, the default thresholds.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads every IAM user's access keys (of one more account, when called again).
    #[cfg(feature = "aws")]
    #[must_use]
    pub fn aws_iam(mut self, source: AwsIamSource) -> Self {
        self.aws_iam.push(((None, String::new(), String::new()), source));
        self
    }

    /// Reads every OpenBao token's accessor (of one more server, when called again).
    #[cfg(feature = "vault")]
    #[must_use]
    pub fn openbao(mut self, source: OpenBaoSource) -> Self {
        self.openbao.push((String::new(), source));
        self
    }

    /// Reads Tokenward's own unexpired tokens from the store.
    #[must_use]
    pub fn tokenward_tokens(mut self) -> Self {
        self.tokens = true;
        self
    }

    /// The findings' thresholds.
    #[must_use]
    pub fn thresholds(mut self, t: InventoryThresholds) -> Self {
        self.thresholds = t;
        self
    }
}

/// Reads each configured source, one line each.
async fn read_sources(
    tw: &Tokenward,
    s: &InventorySources,
    now: DateTime<Utc>,
) -> Result<Vec<InventoryEntry>> {
    let mut out = Vec::new();
    #[cfg(feature = "aws")]
    for (_, aws) in &s.aws_iam {
        out.extend(aws.read(tw, now).await?);
    }
    #[cfg(feature = "vault")]
    for (_, bao) in &s.openbao {
        out.extend(bao.read(tw, now).await?);
    }
    if s.tokens {
        out.extend(tokens::read(tw, now).await?);
    }
    Ok(out)
}

impl Tokenward {
    /// Every credential `sources` show, as of `now`, with their findings.
    pub async fn inventory_at(&self, now: DateTime<Utc>, sources: &InventorySources) -> Result<Inventory> {
        let mut entries = read_sources(self, sources, now).await?;
        findings::assess(&mut entries, now, &sources.thresholds);
        entries.sort_by(|a, b| (a.source, &a.owner, &a.id).cmp(&(b.source, &b.owner, &b.id)));
        Ok(Inventory { generated_at: now, entries })
    }

    /// [`Tokenward::inventory_at`] as of the deployment's clock.
    pub async fn inventory(&self, sources: &InventorySources) -> Result<Inventory> {
        self.inventory_at(self.clock().now(), sources).await
    }
}
