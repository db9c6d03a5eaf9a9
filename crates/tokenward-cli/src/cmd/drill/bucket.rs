//! `drill --bucket`: the S3 bucket a drill leaks into, and deletes its object from again.

use crate::error::{CliError, Result};

/// A bucket to leak into (`--bucket BUCKET[/PREFIX]`), reached with the standard `AWS_*`
/// environment. The drill's object is deleted again after each run.
pub(crate) struct Bucket {
    client: token_http::aws::AwsClient,
    pub(crate) name: String,
    prefix: String,
}

impl Bucket {
    pub(crate) fn from_arg(text: &str) -> Result<Self> {
        let text = text.strip_prefix("s3://").unwrap_or(text);
        let (name, prefix) = text.split_once('/').unwrap_or((text, ""));
        if name.is_empty() {
            return Err(CliError::new("--bucket: no bucket named (BUCKET or BUCKET/PREFIX)"));
        }
        let creds = token_http::aws::AwsCredentials::from_env()
            .map_err(|e| CliError::new(format!("--bucket {name}: {e}")))?;
        let region = token_http::aws::env_region().unwrap_or_else(|| "us-east-1".to_owned());
        let mut client = token_http::aws::AwsClient::new(region, creds);
        if let Some(endpoint) = token_http::aws::env_endpoint("s3") {
            client = client.endpoint(endpoint);
        }
        Ok(Self { client, name: name.to_owned(), prefix: prefix.to_owned() })
    }

    /// This run's object key prefix: no `/` of our own in it, so a listing's prefix stays plain.
    pub(crate) fn run_prefix(&self, n: u32) -> String {
        format!("{}tokenward-drill-{}-{n}-", self.prefix, std::process::id())
    }

    pub(crate) async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        let (status, text) = self
            .client
            .rest_put("s3", &format!("/{}/{key}", self.name), body.to_vec())
            .await
            .map_err(|e| CliError::new(format!("leaking into s3://{}: {e}", self.name)))?;
        if !(200..300).contains(&status) {
            let code = token_http::aws::xml::tag(&text, "Code").unwrap_or_else(|| status.to_string());
            return Err(CliError::new(format!("leaking into s3://{}/{key}: {code}", self.name)));
        }
        Ok(())
    }

    pub(crate) async fn delete(&self, key: &str) {
        match self.client.rest_delete("s3", &format!("/{}/{key}", self.name)).await {
            Ok((status, _)) if (200..300).contains(&status) => {}
            Ok((status, _)) => {
                tracing::warn!(bucket = %self.name, key, status, "the drill's object was not deleted")
            }
            Err(e) => {
                tracing::warn!(bucket = %self.name, key, error = %e, "the drill's object was not deleted")
            }
        }
    }
}
