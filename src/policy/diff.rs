//! What changes from one policy file to another, one line per change (what `policy apply` shows
//! and the `policy_change` audit entry records).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use token_rotate::declare::Duration;

use super::schema::{PolicyFile, Rules};

impl PolicyFile {
    /// What changes from `old` to this file, one line each (`+ role x`, `- principal y`,
    /// `~ role z: …`); empty when nothing does.
    pub fn diff(&self, old: &PolicyFile) -> Vec<String> {
        let mut out = Vec::new();
        if self.rules != old.rules {
            let show = |r: &Rules| {
                format!(
                    "max_ttl {}, bare wildcards {}, one active per purpose {}, idle timeout {}",
                    r.max_ttl,
                    if r.allow_bare_wildcards { "allowed" } else { "refused" },
                    r.one_active_per_purpose,
                    r.idle_timeout.as_ref().map_or("none", Duration::as_str)
                )
            };
            out.push(format!("~ rules: {} → {}", show(&old.rules), show(&self.rules)));
        }
        diff_named(
            &mut out,
            "role",
            &old.roles,
            &self.roles,
            |r| &r.name,
            |r| format!("grants [{}], max_ttl {}", r.grants.join(" "), r.max_ttl),
        );
        diff_named(
            &mut out,
            "principal",
            &old.principals,
            &self.principals,
            |p| &p.name,
            |p| format!("roles [{}]", p.roles.join(" ")),
        );
        diff_named(
            &mut out,
            "credential",
            &old.credentials,
            &self.credentials,
            |c| &c.name,
            |c| {
                let target = serde_json::to_value(&c.target).map(|v| v.to_string()).unwrap_or_default();
                let mut shown = format!(
                    "schedule {}, emergency {}, overlap {}",
                    c.schedule.as_ref().map_or("none", Duration::as_str),
                    c.emergency,
                    c.overlap.as_ref().map_or("default", Duration::as_str)
                );
                if let Some(g) = &c.deletion_grace {
                    let _ = write!(shown, ", deletion_grace {g}");
                }
                format!("{shown}, target {target}")
            },
        );
        diff_named(
            &mut out,
            "federation",
            &old.federations,
            &self.federations,
            |f| &f.name,
            |f| {
                let claims = serde_json::to_value(&f.claims).map(|v| v.to_string()).unwrap_or_default();
                format!(
                    "issuer {}, audience {}, principal {}, max_ttl {}, bind {}, claims {claims}",
                    f.issuer, f.audience, f.principal, f.max_ttl, f.bind
                )
            },
        );
        out
    }
}

fn diff_named<T: PartialEq>(
    out: &mut Vec<String>,
    kind: &str,
    old: &[T],
    new: &[T],
    name: impl Fn(&T) -> &String,
    show: impl Fn(&T) -> String,
) {
    let old_by: BTreeMap<&String, &T> = old.iter().map(|t| (name(t), t)).collect();
    let new_by: BTreeMap<&String, &T> = new.iter().map(|t| (name(t), t)).collect();
    for (n, t) in &old_by {
        match new_by.get(n) {
            None => out.push(format!("- {kind} {n}: {}", show(t))),
            Some(u) if u != t => out.push(format!("~ {kind} {n}: {} → {}", show(t), show(u))),
            Some(_) => {}
        }
    }
    for (n, t) in &new_by {
        if !old_by.contains_key(n) {
            out.push(format!("+ {kind} {n}: {}", show(t)));
        }
    }
}
