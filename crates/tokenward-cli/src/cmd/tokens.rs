//! `issue`, `verify`, `list`, `show`, `revoke`.

use std::io::Read;

use clap::Args;
use serde_json::json;
use tokenward::core::chrono::DateTime;
use tokenward::core::limits::MAX_TOKEN_LEN;
use tokenward::core::{Decision, IssueRequest, Request, TokenId};
use tokenward::store::TokenQuery;
use zeroize::Zeroizing;

use crate::cli::{Global, Output};
use crate::cmd::policy::stored;
use crate::error::{CliError, Result};
use crate::open::{self, Need};
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct IssueArgs {
    /// The principal (declared in the policy).
    #[arg(long)]
    pub(crate) principal: String,
    /// What the token is for (one active token per purpose).
    #[arg(long)]
    pub(crate) purpose: String,
    /// A scope (repeat for more), within the principal's roles.
    #[arg(long = "scope", required = true)]
    pub(crate) scopes: Vec<String>,
    /// Its lifetime (e.g. 15m, 1h, 7d), within the roles' caps.
    #[arg(long)]
    pub(crate) ttl: String,
    /// At most this many uses.
    #[arg(long)]
    pub(crate) max_uses: Option<u64>,
    /// Expires when unused this long.
    #[arg(long)]
    pub(crate) idle_timeout: Option<String>,
    /// Replaces this token (a rotation by hand: the old one may stay active alongside).
    #[arg(long)]
    pub(crate) replacing: Option<String>,
    /// `--format json`: a JSON object (with the token) instead of the token alone.
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// The request scope to check (e.g. `s3:bucket/prod-logs/app.log:read`).
    #[arg(long)]
    pub(crate) scope: String,
    /// Where the token was presented from (recorded in the audit log).
    #[arg(long)]
    pub(crate) source: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[arg(long)]
    pub(crate) principal: Option<String>,
    /// Only tokens expiring within this long (e.g. 7d).
    #[arg(long)]
    pub(crate) expiring_within: Option<String>,
    /// Only tokens not used for this long (never-used included).
    #[arg(long)]
    pub(crate) unused_since: Option<String>,
    /// Only revoked tokens.
    #[arg(long)]
    pub(crate) revoked: bool,
    /// Include expired and revoked tokens.
    #[arg(long)]
    pub(crate) all: bool,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The token's public id.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) output: Output,
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    /// The token's public id.
    pub(crate) id: String,
    /// Why (recorded in the audit log).
    #[arg(long)]
    pub(crate) reason: Option<String>,
    #[command(flatten)]
    pub(crate) output: Output,
}

pub(crate) fn token_id(text: &str) -> Result<TokenId> {
    text.trim().parse().map_err(|e| CliError::new(format!("token id {:?}: {e}", text.trim())))
}

pub(crate) async fn issue(g: &Global, a: IssueArgs) -> Result<u8> {
    let ttl = out::duration(&a.ttl, "--ttl")?;
    let mut request = IssueRequest::parse(&a.purpose, &a.scopes.join(" "), ttl)?;
    if let Some(n) = a.max_uses {
        request = request.max_uses(n);
    }
    if let Some(idle) = &a.idle_timeout {
        request = request.idle_timeout(out::duration(idle, "--idle-timeout")?);
    }
    if let Some(old) = &a.replacing {
        request = request.replacing(token_id(old)?);
    }
    let tw = open::open(g, Need::Audited).await?;
    let result = async {
        let (file, version) = stored(&tw).await?;
        let principal = file.principal(&a.principal).ok_or_else(|| {
            CliError::new(if version == 0 {
                format!(
                    "no policy stored yet, so no principal {}: `tokenward policy apply FILE`",
                    a.principal
                )
            } else {
                format!("no principal {} in the stored policy (version {version})", a.principal)
            })
        })?;
        Ok::<_, CliError>(tw.issue(&principal, &request).await?)
    }
    .await;
    tw.shutdown().await?;
    let token = result?;
    if a.output.json() {
        println!(
            "{}",
            json!({
                "token": token.expose_secret(),
                "id": token.id().to_string(),
                "principal": a.principal,
                "purpose": a.purpose,
                "expires_at": out::time(token.expires_at()),
            })
        );
    } else {
        println!("{}", token.expose_secret());
        eprintln!(
            "issued token {} to {} for {}, expires {} (shown once: it is not stored)",
            token.id(),
            a.principal,
            a.purpose,
            out::time(token.expires_at())
        );
    }
    Ok(0)
}

pub(crate) async fn verify(g: &Global, a: VerifyArgs) -> Result<u8> {
    let request = Request::parse(&a.scope)?;
    // The token: stdin, bounded (a token is at most MAX_TOKEN_LEN bytes), surrounding whitespace
    // dropped; never an argument (argv is visible to every user of the machine).
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_TOKEN_LEN + 2));
    std::io::stdin()
        .take((MAX_TOKEN_LEN + 64) as u64)
        .read_to_end(&mut buf)
        .map_err(|e| CliError::new(format!("reading the token from stdin: {e}")))?;
    let text = std::str::from_utf8(&buf)
        .map_err(|_| CliError::denied("denied: malformed token (not UTF-8)"))?
        .trim();
    if text.is_empty() {
        return Err(CliError::new("no token on stdin"));
    }
    let tw = open::open(g, Need::Audited).await?;
    let decision = tw.verifier().verify_from(text, &request, a.source.as_deref());
    tw.shutdown().await?;
    match decision {
        Decision::Allowed(grant) => {
            if a.output.json() {
                println!(
                    "{}",
                    json!({"allowed": true, "token": grant.id().to_string(), "principal": grant.principal().as_str()})
                );
            } else {
                println!("allowed: token {} of {}", grant.id(), grant.principal().as_str());
            }
            Ok(0)
        }
        Decision::Denied(reason) => {
            if a.output.json() {
                println!(
                    "{}",
                    json!({"allowed": false, "reason": reason.code(), "detail": reason.to_string()})
                );
            }
            eprintln!("denied: {reason}");
            Ok(1)
        }
    }
}

pub(crate) async fn list(g: &Global, a: ListArgs) -> Result<u8> {
    let tw = open::open(g, Need::ReadOnly).await?;
    let now = tw.clock().now();
    let principal = match &a.principal {
        Some(p) => Some(tokenward::core::names::PrincipalId::new(p)?),
        None => None,
    };
    let expiring = a.expiring_within.as_deref().map(|d| out::duration(d, "--expiring-within")).transpose()?;
    let unused = a.unused_since.as_deref().map(|d| out::duration(d, "--unused-since")).transpose()?;
    // The narrowest query the backend answers, then the other filters here.
    let query = if a.revoked {
        TokenQuery::Revoked
    } else if let Some(d) = expiring {
        TokenQuery::ExpiringBetween { from: now, until: now + d }
    } else if let Some(d) = unused {
        TokenQuery::UnusedSince { since: now - d }
    } else if let Some(p) = &principal {
        TokenQuery::Principal(p.clone())
    } else if a.all {
        TokenQuery::Unexpired { at: DateTime::<tokenward::core::chrono::Utc>::MIN_UTC }
    } else {
        TokenQuery::Unexpired { at: now }
    };
    let listed = tw.tokens().tokens(&query).await;
    tw.shutdown().await?;
    // A record the query finds that fails its integrity check is always listed, as tampered: its
    // fields are not to be believed, so no filter on them may hide it.
    let (tampered, mut rows): (Vec<_>, Vec<_>) = listed?.into_iter().partition(|t| t.tampered.is_some());
    rows.retain(|t| {
        let (row, r) = (&t.row, &t.row.record);
        principal.as_ref().is_none_or(|p| r.principal == *p)
            && expiring
                .is_none_or(|d| r.revoked_at.is_none() && r.expires_at > now && r.expires_at <= now + d)
            && unused.is_none_or(|d| row.last_used.is_none_or(|t| t < now - d))
            && (!a.revoked || r.revoked_at.is_some())
            && (a.all || a.revoked || (r.revoked_at.is_none() && r.expires_at > now))
    });
    rows.sort_by_key(|t| {
        let r = &t.row.record;
        (r.principal.as_str().to_owned(), r.purpose.as_str().to_owned(), r.created_at)
    });
    for t in tampered.iter().chain(&rows) {
        if a.output.json() {
            println!("{}", out::listed_json(t, now));
        } else {
            println!("{}", out::listed_line(t, now));
        }
    }
    if !a.output.json() {
        eprintln!("{} token(s)", rows.len() + tampered.len());
        if !tampered.is_empty() {
            eprintln!(
                "{} token record(s) fail their integrity check (edited outside Tokenward): refused, never used",
                tampered.len()
            );
        }
    }
    Ok(u8::from(!tampered.is_empty()))
}

pub(crate) async fn show(g: &Global, a: ShowArgs) -> Result<u8> {
    let id = token_id(&a.id)?;
    let tw = open::open(g, Need::ReadOnly).await?;
    let now = tw.clock().now();
    let row = tw.tokens().token(id).await;
    tw.shutdown().await?;
    let Some(row) = row? else { return Err(CliError::new(format!("no token {id}"))) };
    let v = out::row_json(&row, now);
    if a.output.json() {
        println!("{v}");
    } else if let Some(map) = v.as_object() {
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => continue,
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" "),
                other => other.to_string(),
            };
            println!("{k:<13} {text}");
        }
    }
    Ok(0)
}

pub(crate) async fn revoke(g: &Global, a: RevokeArgs) -> Result<u8> {
    let id = token_id(&a.id)?;
    let tw = open::open(g, Need::Audited).await?;
    let result = async {
        let Some(row) = tw.tokens().token(id).await? else {
            return Err(CliError::new(format!("no token {id}")));
        };
        let revoked = match &a.reason {
            Some(reason) => tw.revoke_because(id, reason).await?,
            None => tw.revoke(id).await?,
        };
        Ok((row.record.revoked_at, revoked))
    }
    .await;
    tw.shutdown().await?;
    let (already, revoked) = result?;
    if a.output.json() {
        println!(
            "{}",
            json!({
                "id": id.to_string(),
                "revoked": revoked.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "already_revoked_at": already.map(out::time),
            })
        );
    } else {
        for r in &revoked {
            println!("{r}");
        }
    }
    // Revoking again is not an error (exit 0, as a first revocation): the token is dead either way.
    match already {
        Some(at) if revoked.is_empty() => {
            eprintln!("{id} was already revoked (at {}): nothing to do", out::time(at));
        }
        Some(at) => eprintln!(
            "{id} was already revoked (at {}); revoked {} token(s) under it",
            out::time(at),
            revoked.len()
        ),
        None => eprintln!("revoked {} token(s): {id} and every token under it", revoked.len()),
    }
    Ok(0)
}
