//! # token-scan
//!
//! Finds leaked credentials in directory trees, git history, byte streams, container images, S3
//! buckets and PostgreSQL databases (features `images`, `s3`, `postgres`). A Tokenward token is
//! recognised with certainty whatever its issuer prefix (its CRC-32 must check), GitHub classic
//! tokens likewise (GitHub's CRC-32 over the random part); other vendors' keys (GitLab, Slack,
//! Stripe, OpenBao/Vault, AWS key pairs, GCP and Azure keys), PEM private keys and database URLs
//! with passwords by their shape, and — by default, low confidence — generic secrets: high-entropy
//! values assigned to names that mean a secret, in `.env`, shell, YAML, JSON, TOML, INI,
//! Dockerfile, Kubernetes and Terraform syntax, URL passwords and `Authorization` headers. Known
//! example values and placeholders are suppressed and counted, never reported.
//!
//! Speed: one Aho-Corasick pass over every rule's literal anchors, each rule's regex only on the
//! windows around its anchors, files walked in parallel and streamed in bounded chunks.
//!
//! A finding never shows its secret — in `Debug`, in text, JSON lines or SARIF — only a redacted
//! form (a public prefix and at most the last four characters) and a fingerprint.
//!
//! ```
//! use token_scan::{Confidence, Scanner};
//!
//! let scanner = Scanner::new()?;
//! // A GitHub token whose CRC-32 checks, a copy with a wrong checksum, and AWS's example key.
//! let text = "token = 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\n\
//!             other = ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ01234WLnuX\n\
//!             aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n";
//! let report = scanner.scan_bytes("config.env", text.as_bytes());
//! assert_eq!(report.findings.len(), 1);
//! let f = &report.findings[0];
//! assert_eq!((f.rule.as_str(), f.confidence), ("github-classic", Confidence::Certain));
//! assert_eq!(f.location.to_string(), "config.env:1:9");
//! assert_eq!(f.redacted, "ghp_…LnuK");
//! assert_eq!(report.suppressed["checksum fails"], 1);
//! assert!(!format!("{f:?}").contains("aBcDeF"));
//! # Ok::<(), token_scan::ScanError>(())
//! ```

#[cfg(feature = "github-alerts")]
pub mod alerts;
mod baseline;
mod error;
mod finding;
mod generic;
pub mod live;
mod output;
mod rule;
mod rules;
mod scanner;
mod source;
mod validate;

pub use baseline::Baseline;
pub use error::ScanError;
pub use finding::{Finding, Fingerprint, Location, Report, Skipped};
pub use output::TOOL_NAME;
pub use rule::{Confidence, GENERIC_RULE, Pair, Rule, RuleSet, TOKENWARD_RULE, Validator};
pub use scanner::{ALLOW_MARKER, Scanner, ScannerBuilder};
pub use source::git::GitOptions;
#[cfg(feature = "images")]
pub use source::image::ImageOptions;
#[cfg(feature = "postgres")]
pub use source::postgres::PostgresOptions;
#[cfg(feature = "s3")]
pub use source::s3::S3Options;
#[cfg(feature = "tree")]
pub use source::tree::TreeOptions;
pub use source::{Progress, ProgressFn};

pub use secrecy;

/// Parser entry points for the fuzz targets (`cargo fuzz` builds with `--cfg fuzzing`).
#[cfg(fuzzing)]
pub mod fuzzing {
    /// A GitHub partner alert list, as [`crate::alerts::AlertVerifier::verify`] parses it once its
    /// signature has verified.
    #[cfg(feature = "github-alerts")]
    pub fn parse_alerts(body: &[u8]) -> Result<Vec<crate::alerts::Alert>, crate::alerts::AlertError> {
        crate::alerts::parse_alerts(body)
    }
}
