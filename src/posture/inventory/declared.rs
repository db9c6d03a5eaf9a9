//! The inventory's sources a deployment's stored policy implies: every account and server its
//! declared credentials reach, read with the admin access they declare, each declared credential
//! marked as managing its keys or tokens.

use super::InventorySources;
use crate::Tokenward;
use crate::error::Result;

impl InventorySources {
    /// The sources the stored policy implies, with Tokenward's own tokens:
    /// - one AWS IAM source per admin access key its `aws-iam-access-key` credentials declare
    ///   (feature `aws`), the credential managing its `user`'s keys;
    /// - one OpenBao source per server its `openbao-token` credentials name (feature `vault`),
    ///   read with the credential's own token or AppRole (listing accessors needs `sudo` on
    ///   `auth/token/accessors`), the credential managing its tokens.
    ///
    /// The admin secrets are read from the store (audited), as a rotation reads them. Without a
    /// stored policy, Tokenward's tokens only.
    pub async fn declared(tw: &Tokenward) -> Result<Self> {
        #[cfg_attr(not(any(feature = "aws", feature = "vault")), allow(unused_mut))]
        let mut sources = Self::new().tokenward_tokens();
        #[cfg(any(feature = "aws", feature = "vault"))]
        sources.add_declared(tw).await?;
        #[cfg(not(any(feature = "aws", feature = "vault")))]
        let _ = tw;
        Ok(sources)
    }

    /// Adds a source per account and server the stored policy's credentials reach.
    #[cfg(any(feature = "aws", feature = "vault"))]
    async fn add_declared(&mut self, tw: &Tokenward) -> Result<()> {
        let Some(record) = tw.stored_policy().await? else { return Ok(()) };
        let file = record.file()?;
        for spec in &file.credentials {
            let name = spec.secret_name()?;
            #[cfg(feature = "aws")]
            if let Some(key) = spec.target.settings::<token_rotate::declare::AwsIamAccessKeySpec>() {
                let access = &key.access;
                let at = self.aws_iam.iter().position(|(id, _)| {
                    id == &(
                        access.endpoint.clone(),
                        access.region.clone(),
                        access.admin_access_key_id.clone(),
                    )
                });
                let i = match at {
                    Some(i) => i,
                    None => {
                        let client = access.client(&tw.deploying(&file, spec)).await?;
                        let id = (
                            access.endpoint.clone(),
                            access.region.clone(),
                            access.admin_access_key_id.clone(),
                        );
                        self.aws_iam.push((id, super::AwsIamSource::new(client)));
                        self.aws_iam.len() - 1
                    }
                };
                let source = &mut self.aws_iam[i].1;
                *source = source.clone().managed(key.user.clone(), name.clone());
            }
            #[cfg(feature = "vault")]
            if let Some(bao) = spec.target.settings::<token_rotate::declare::OpenBaoTokenSpec>() {
                let at = self.openbao.iter().position(|(address, _)| address == &bao.address);
                let i = match at {
                    Some(i) => i,
                    None => {
                        let ctx = tw.deploying(&file, spec);
                        let client = bao.connect.client(&bao.address, &ctx).await?;
                        self.openbao.push((bao.address.clone(), super::OpenBaoSource::new(client)));
                        self.openbao.len() - 1
                    }
                };
                let source = &mut self.openbao[i].1;
                *source = source.clone().managed(name.clone());
            }
        }
        Ok(())
    }
}
