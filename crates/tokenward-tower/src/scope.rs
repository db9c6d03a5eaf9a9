//! Which scope a request needs: a closure, or a route table of method + path patterns.

use std::fmt;

use http::Method;
use tokenward::core::Request;

/// Maps an HTTP request to the scope it needs (`None`: no scope covers it, and it is refused with
/// `403 insufficient_scope`). Implemented by [`RouteTable`] and by any
/// `Fn(&http::Request<B>) -> Option<Request>`.
pub trait RequiredScope<B>: Send + Sync {
    /// The scope `req` needs.
    fn required_scope(&self, req: &http::Request<B>) -> Option<Request>;
}

impl<B, F> RequiredScope<B> for F
where
    F: Fn(&http::Request<B>) -> Option<Request> + Send + Sync,
{
    fn required_scope(&self, req: &http::Request<B>) -> Option<Request> {
        self(req)
    }
}

/// A route's pattern or template could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RouteError {
    route: String,
    why: String,
}

impl fmt::Display for RouteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {}: {}", self.route, self.why)
    }
}

impl std::error::Error for RouteError {}

#[derive(Clone, Debug)]
enum Seg {
    Lit(String),
    /// One path segment.
    Param(String),
    /// The rest of the path: one or more segments (last only).
    Rest(String),
}

#[derive(Clone, Debug)]
enum Part {
    Lit(String),
    Var(usize),
}

#[derive(Clone, Debug)]
struct Route {
    method: Option<Method>,
    pattern: Vec<Seg>,
    template: Vec<Part>,
    /// An upper bound of the scope text's length, less the substituted segments.
    fixed_len: usize,
}

/// Method + path patterns mapped to scope templates, first match wins:
///
/// ```
/// use http::Method;
/// use tokenward_tower::{RequiredScope, RouteTable};
///
/// let routes = RouteTable::new()
///     .route(Some(Method::GET), "/logs/{*path}", "s3:bucket/prod-logs/{path}:read")?
///     .route(Some(Method::PUT), "/logs/{*path}", "s3:bucket/prod-logs/{path}:write")?
///     .route(None, "/deploy/{service}", "deploy:service/{service}/prod:release")?;
/// let req = http::Request::get("/logs/2026/app.log").body(()).unwrap();
/// let scope = routes.required_scope(&req).unwrap();
/// assert_eq!(scope.to_string(), "s3:bucket/prod-logs/2026/app.log:read");
/// // Dot segments never reach a scope (a server normalising `..` would escape the prefix).
/// let sneaky = http::Request::get("/logs/../secrets").body(()).unwrap();
/// assert!(routes.required_scope(&sneaky).is_none());
/// # Ok::<(), tokenward_tower::RouteError>(())
/// ```
///
/// Patterns: literal segments, `{name}` (one segment), `{*name}` (one or more, last). Paths are
/// matched as sent (no percent-decoding: an encoded character is not a scope character, so such
/// a path maps to no scope); empty, `.` and `..` segments match nothing. The query is ignored.
/// Each substituted segment must be a scope segment (`A-Z a-z 0-9 . _ @ + = -`), or the request
/// maps to no scope.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

fn segments(path: &str) -> Option<impl Iterator<Item = &str> + Clone> {
    let trimmed = path.strip_prefix('/')?;
    if trimmed.ends_with('/') {
        return None;
    }
    // `/` alone has no segments.
    let it = trimmed.split_terminator('/');
    if it.clone().any(|s| s.is_empty() || s == "." || s == "..") {
        return None;
    }
    Some(it)
}

impl RouteTable {
    /// An empty table (maps nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route: `method` (`None`: any), a path `pattern`, and the scope `template` whose
    /// `{name}`s are the pattern's. Checked now: unknown names, a `{*rest}` not last, or a
    /// template that does not make a scope are refused.
    pub fn route(
        mut self,
        method: Option<Method>,
        pattern: &str,
        template: &str,
    ) -> Result<Self, RouteError> {
        let err = |why: &str| RouteError { route: format!("{pattern} -> {template}"), why: why.to_owned() };
        let segs: Vec<&str> = match segments(pattern) {
            Some(s) => s.collect(),
            None => return Err(err("a pattern starts with / and has no empty, . or .. segments")),
        };
        let mut pat = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            let seg = if let Some(name) = s.strip_prefix("{*").and_then(|r| r.strip_suffix('}')) {
                if i + 1 != segs.len() {
                    return Err(err("{*name} must be the last segment"));
                }
                Seg::Rest(name.to_owned())
            } else if let Some(name) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Seg::Param(name.to_owned())
            } else if s.contains(['{', '}']) {
                return Err(err("a segment is a literal, {name} or {*name}"));
            } else {
                Seg::Lit((*s).to_owned())
            };
            pat.push(seg);
        }
        let names: Vec<&str> = pat
            .iter()
            .filter_map(|s| match s {
                Seg::Param(n) | Seg::Rest(n) => Some(n.as_str()),
                Seg::Lit(_) => None,
            })
            .collect();
        let mut parts = Vec::new();
        let mut rest = template;
        let mut example = String::new();
        while let Some(open) = rest.find('{') {
            let close = rest[open..].find('}').ok_or_else(|| err("an unclosed { in the template"))? + open;
            let name = &rest[open + 1..close];
            let idx = names
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| err(&format!("{{{name}}} is not in the pattern")))?;
            parts.push(Part::Lit(rest[..open].to_owned()));
            example.push_str(&rest[..open]);
            example.push('x');
            parts.push(Part::Var(idx));
            rest = &rest[close + 1..];
        }
        parts.push(Part::Lit(rest.to_owned()));
        example.push_str(rest);
        Request::parse(&example).map_err(|e| err(&format!("the template does not make a scope: {e}")))?;
        let fixed_len = parts.iter().map(|p| if let Part::Lit(l) = p { l.len() } else { 0 }).sum();
        self.routes.push(Route { method, pattern: pat, template: parts, fixed_len });
        Ok(self)
    }

    /// The scope for `method` and `path`, if a route matches.
    pub fn scope_for(&self, method: &Method, path: &str) -> Option<Request> {
        let segs = segments(path)?;
        'routes: for r in &self.routes {
            if r.method.as_ref().is_some_and(|m| m != method) {
                continue;
            }
            // The values, as (start, end) byte ranges of `path`, in pattern order.
            let mut values: [(usize, usize); 8] = [(0, 0); 8];
            let mut n = 0;
            let mut it = segs.clone();
            for seg in &r.pattern {
                match seg {
                    Seg::Lit(l) => {
                        if it.next() != Some(l.as_str()) {
                            continue 'routes;
                        }
                    }
                    Seg::Param(_) => {
                        let Some(s) = it.next() else { continue 'routes };
                        if n == values.len() {
                            continue 'routes;
                        }
                        values[n] = offsets(path, s);
                        n += 1;
                    }
                    Seg::Rest(_) => {
                        let Some(first) = it.next() else { continue 'routes };
                        let (start, _) = offsets(path, first);
                        let end =
                            it.by_ref().last().map_or_else(|| offsets(path, first).1, |l| offsets(path, l).1);
                        if n == values.len() {
                            continue 'routes;
                        }
                        values[n] = (start, end);
                        n += 1;
                    }
                }
            }
            if it.next().is_some() {
                continue;
            }
            let mut text = String::with_capacity(r.fixed_len + path.len());
            for p in &r.template {
                match p {
                    Part::Lit(l) => text.push_str(l),
                    Part::Var(i) => {
                        let (a, b) = values[*i];
                        text.push_str(&path[a..b]);
                    }
                }
            }
            return Request::parse(&text).ok();
        }
        None
    }
}

/// The byte range of `s`, a slice of `path`.
fn offsets(path: &str, s: &str) -> (usize, usize) {
    let start = s.as_ptr() as usize - path.as_ptr() as usize;
    (start, start + s.len())
}

impl<B> RequiredScope<B> for RouteTable {
    fn required_scope(&self, req: &http::Request<B>) -> Option<Request> {
        self.scope_for(req.method(), req.uri().path())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table() -> RouteTable {
        RouteTable::new()
            .route(Some(Method::GET), "/logs/{*path}", "s3:bucket/prod-logs/{path}:read")
            .unwrap()
            .route(None, "/teams/{team}/kv/{key}", "kv:teams/{team}/{key}:read")
            .unwrap()
            .route(Some(Method::GET), "/", "web:index:read")
            .unwrap()
    }

    #[test]
    fn routes_match_and_substitute() {
        let t = table();
        let s = |m: Method, p: &str| t.scope_for(&m, p).map(|r| r.to_string());
        assert_eq!(s(Method::GET, "/logs/a").as_deref(), Some("s3:bucket/prod-logs/a:read"));
        assert_eq!(s(Method::GET, "/logs/a/b/c.log").as_deref(), Some("s3:bucket/prod-logs/a/b/c.log:read"));
        assert_eq!(s(Method::POST, "/logs/a"), None);
        assert_eq!(s(Method::GET, "/logs"), None);
        assert_eq!(s(Method::GET, "/logs/"), None);
        assert_eq!(s(Method::DELETE, "/teams/a/kv/k1").as_deref(), Some("kv:teams/a/k1:read"));
        assert_eq!(s(Method::GET, "/teams/a/kv/k1/more"), None);
        assert_eq!(s(Method::GET, "/").as_deref(), Some("web:index:read"));
        for bad in ["/logs/../x", "/logs/./x", "/logs//x", "/logs/a%2Fb", "/logs/a*", "logs/a", ""] {
            assert_eq!(s(Method::GET, bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_routes_are_refused_when_built() {
        for (p, t) in [
            ("/a/{*rest}/b", "x:a/{rest}:read"),
            ("/a/{x}", "x:a/{y}:read"),
            ("/a/{x", "x:a:read"),
            ("/a/{x}", "x:a/{x:read"),
            ("/a/{x}", "not a scope {x}"),
            ("a/{x}", "x:a/{x}:read"),
            ("/a/../{x}", "x:a/{x}:read"),
        ] {
            assert!(RouteTable::new().route(None, p, t).is_err(), "{p} -> {t}");
        }
    }
}
