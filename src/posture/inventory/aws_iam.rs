//! AWS IAM as an inventory source: every user's access keys (`ListUsers`, `ListAccessKeys`,
//! `GetAccessKeyLastUsed`, each paged by `Marker` while `IsTruncated`), through token-http's
//! signed client with admin credentials the caller gives. A key under a declared credential's
//! user is managed when the credential's record knows it (current or previous), drifted when not.

use std::collections::HashMap;

use token_core::chrono::{DateTime, Utc};
use token_http::aws::{AwsClient, KeyLastUse, xml};
use token_store::SecretName;

use super::entry::{CredentialStatus, Finding, InventoryEntry, LastUse, Managed, SourceKind};
use super::error::InventoryError;
use crate::Tokenward;
use crate::error::Result;

/// The most pages one list is followed for (10,000 users at the smallest page).
const MAX_PAGES: usize = 10_000;

const IAM: &str = "2010-05-08";

/// Every IAM user's access keys, read with an admin's client (`iam:ListUsers`,
/// `iam:ListAccessKeys`, `iam:GetAccessKeyLastUsed`; for a managed user, `iam:ListUserTags`).
#[derive(Debug, Clone)]
pub struct AwsIamSource {
    client: AwsClient,
    managed: Vec<(String, SecretName)>,
    page_size: u32,
}

impl AwsIamSource {
    /// Reads with `client` (its credentials are the admin's).
    #[must_use]
    pub fn new(client: AwsClient) -> Self {
        Self { client, managed: Vec::new(), page_size: 100 }
    }

    /// The declared credential `credential` rotates the keys of IAM user `user`: its record's
    /// current and previous key ids are managed, any other key of `user` is drifted.
    #[must_use]
    pub fn managed(mut self, user: impl Into<String>, credential: SecretName) -> Self {
        self.managed.push((user.into(), credential));
        self
    }

    /// Items asked for per page (`MaxItems`, 1–1000; default 100).
    #[must_use]
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n.clamp(1, 1000);
        self
    }

    /// Every page of `action`'s `list` element's members.
    async fn paged(&self, action: &str, list: &str, params: &[(&str, String)]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        // Bounded: IAM holds at most 5,000 users per account and 2 keys per user; an endpoint that
        // hands out markers for ever (or in a circle) is refused, never followed.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..MAX_PAGES {
            let mut p: Vec<(&str, String)> = params.to_vec();
            p.push(("MaxItems", self.page_size.to_string()));
            if let Some(m) = &marker {
                p.push(("Marker", m.clone()));
            }
            let text = self.client.query("iam", IAM, action, &p).await.map_err(InventoryError::from)?;
            let members = xml::tag(&text, list).unwrap_or_default();
            out.extend(xml::blocks(&members, "member").into_iter().map(str::to_owned));
            if xml::tag(&text, "IsTruncated").as_deref() != Some("true") {
                return Ok(out);
            }
            let next = xml::tag(&text, "Marker").filter(|m| !m.is_empty());
            if next.is_none() || next == marker || !seen.insert(next.clone()) {
                return Err(malformed(format!("{action}: truncated without a new Marker")));
            }
            marker = next;
        }
        Err(malformed(format!("{action}: more than {MAX_PAGES} pages")))
    }

    pub(super) async fn read(&self, tw: &Tokenward, _now: DateTime<Utc>) -> Result<Vec<InventoryEntry>> {
        let mut declared: HashMap<&str, Vec<Declared>> = HashMap::new();
        for (user, name) in &self.managed {
            let current = tw.rotator().current(name).await?.map(|c| (c.handle.clone(), c.expires_at));
            let previous = tw.rotator().previous(name).await?.map(|c| (c.handle.clone(), c.expires_at));
            // The keys Tokenward attributed to itself on the user (`tokenward:key:<id>` tags).
            let tags = self
                .client
                .query("iam", IAM, "ListUserTags", &[("UserName", user.clone())])
                .await
                .map_err(InventoryError::from)?;
            let ours = xml::blocks(&tags, "member")
                .into_iter()
                .filter_map(|m| xml::tag(m, "Key")?.strip_prefix("tokenward:key:").map(str::to_owned))
                .collect();
            declared.entry(user.as_str()).or_default().push(Declared {
                credential: name.as_str().to_owned(),
                current,
                previous,
                ours,
            });
        }
        let mut out = Vec::new();
        for user in self.paged("ListUsers", "Users", &[]).await? {
            let user =
                xml::tag(&user, "UserName").ok_or_else(|| malformed("ListUsers: a user without UserName"))?;
            let keys =
                self.paged("ListAccessKeys", "AccessKeyMetadata", &[("UserName", user.clone())]).await?;
            for k in keys {
                let id =
                    xml::tag(&k, "AccessKeyId").ok_or_else(|| malformed("ListAccessKeys: no AccessKeyId"))?;
                let status = match xml::tag(&k, "Status").as_deref() {
                    Some("Active") => CredentialStatus::Active,
                    _ => CredentialStatus::Inactive,
                };
                let mut e = InventoryEntry::new(SourceKind::AwsIam, id.clone(), user.clone(), status);
                e.created = xml::tag(&k, "CreateDate").as_deref().and_then(time);
                e.last_used = self.last_used(&id).await?;
                for d in declared.get(user.as_str()).into_iter().flatten() {
                    // A managed key expires when its record says: the rotation replaces it then.
                    if let Some((_, expires)) = d.current.as_ref().filter(|(h, _)| *h == id) {
                        e.managed = Some(Managed::Current { credential: d.credential.clone() });
                        e.expires = Some(*expires);
                    } else if let Some((_, expires)) = d.previous.as_ref().filter(|(h, _)| *h == id) {
                        e.managed = Some(Managed::Previous { credential: d.credential.clone() });
                        e.expires = Some(*expires);
                    }
                }
                for d in declared.get(user.as_str()).into_iter().flatten() {
                    if e.managed.is_none() && d.ours.contains(&id) {
                        e.managed = Some(Managed::Attributed { credential: d.credential.clone() });
                    }
                }
                // Active or not: an unknown key of a managed user stops its rotations too.
                if e.managed.is_none()
                    && let Some(d) = declared.get(user.as_str()).and_then(|d| d.first())
                {
                    e.findings.push(Finding::Drifted { credential: d.credential.clone() });
                }
                out.push(e);
            }
        }
        Ok(out)
    }

    /// `GetAccessKeyLastUsed` (read strictly by token-http): `None` when never used.
    async fn last_used(&self, id: &str) -> Result<Option<LastUse>> {
        Ok(match self.client.access_key_last_used(id).await.map_err(InventoryError::from)? {
            KeyLastUse::At { at, service, region } => Some(LastUse { at, service, region }),
            _ => None,
        })
    }
}

/// A declared credential's record: the key ids it knows under its user.
struct Declared {
    credential: String,
    /// Each version's key id and expiry.
    current: Option<(String, DateTime<Utc>)>,
    previous: Option<(String, DateTime<Utc>)>,
    /// The key ids Tokenward attributed to itself on the user.
    ours: std::collections::HashSet<String>,
}

fn time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim()).ok().map(|t| t.with_timezone(&Utc))
}

fn malformed(detail: impl Into<String>) -> crate::Error {
    InventoryError::Malformed { source_name: "aws-iam", detail: detail.into() }.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    use token_http::aws::AwsCredentials;
    use token_http::secrecy::SecretString;

    use super::*;

    /// The form field `name` of a request body.
    fn field(body: &str, name: &str) -> Option<String> {
        body.split('&').find_map(|kv| kv.strip_prefix(&format!("{name}="))).map(str::to_owned)
    }

    /// An IAM that pages as AWS does: 7 users, 3 a page; 2 keys a user, 1 a page (`Marker` is the
    /// next index). With `stuck`, every page is truncated with the same marker.
    fn paging_iam(stuck: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                reader.read_exact(&mut body).unwrap();
                let body = String::from_utf8(body).unwrap();
                let at: usize =
                    field(&body, "Marker").map_or(0, |m| m.trim_start_matches('m').parse().unwrap());
                let per: usize = field(&body, "MaxItems").unwrap().parse().unwrap();
                let (list, all): (&str, Vec<String>) = match field(&body, "Action").as_deref() {
                    Some("ListUsers") => (
                        "Users",
                        (0..7).map(|i| format!("<member><UserName>u{i}</UserName></member>")).collect(),
                    ),
                    _ => {
                        let user = field(&body, "UserName").unwrap();
                        let key = |k| {
                            format!(
                                "<member><UserName>{user}</UserName><AccessKeyId>AKIA{user}K{k}</AccessKeyId>\
                                 <Status>Active</Status></member>"
                            )
                        };
                        ("AccessKeyMetadata", (0..2).map(key).collect())
                    }
                };
                let end = (at + per).min(all.len());
                let truncated = stuck || end < all.len();
                let marker = if stuck { "m1".to_owned() } else { format!("m{end}") };
                let xml = format!(
                    "<R><Result><{list}>{}</{list}><IsTruncated>{truncated}</IsTruncated>{}</Result></R>",
                    all[at..end].concat(),
                    if truncated { format!("<Marker>{marker}</Marker>") } else { String::new() }
                );
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            }
        });
        format!("http://{addr}")
    }

    fn source(endpoint: String, page: u32) -> AwsIamSource {
        let creds = AwsCredentials::new("AKIATEST", SecretString::from("s".repeat(40)));
        AwsIamSource::new(AwsClient::new("us-east-1", creds).endpoint(endpoint)).page_size(page)
    }

    #[tokio::test]
    async fn every_page_is_followed_by_its_marker() {
        let endpoint = paging_iam(false);
        let iam = source(endpoint.clone(), 3);
        let users = iam.paged("ListUsers", "Users", &[]).await.unwrap();
        let names: Vec<_> = users.iter().filter_map(|u| xml::tag(u, "UserName")).collect();
        assert_eq!(names, ["u0", "u1", "u2", "u3", "u4", "u5", "u6"]);
        let iam = source(endpoint, 1);
        let keys =
            iam.paged("ListAccessKeys", "AccessKeyMetadata", &[("UserName", "u4".into())]).await.unwrap();
        let ids: Vec<_> = keys.iter().filter_map(|k| xml::tag(k, "AccessKeyId")).collect();
        assert_eq!(ids, ["AKIAu4K0", "AKIAu4K1"]);
    }

    #[tokio::test]
    async fn a_page_truncated_without_a_new_marker_is_an_error_not_a_loop() {
        let iam = source(paging_iam(true), 3);
        let err = iam.paged("ListUsers", "Users", &[]).await.unwrap_err();
        assert!(err.to_string().contains("truncated without a new Marker"), "{err}");
    }
}
