//! Which scope a request needs: a closure, or a route table of method + path patterns.

use std::fmt;

use http::Method;
use tokenward::core::Request;

/// Maps an HTTP request to the scope it needs (`None`: no scope covers it, and it is refused with
/// `403 insufficient_scope` if its token is valid, `401 invalid_token` if not). Implemented by
/// [`RouteTable`] and by any `Fn(&http::Request<B>) -> Option<Request>`. A closure sees the whole
/// request: it must account for the query (and anything else the service acts on) as the route
/// table does, or refuse it.
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
    /// The query parameters a request may carry (by name, as sent); none: no query at all.
    query: Vec<String>,
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
/// a path maps to no scope); empty, `.` and `..` segments match nothing. Each substituted segment
/// must be a scope segment (`A-Z a-z 0-9 . _ @ + = -`), or the request maps to no scope.
///
/// The query is part of what a request asks (`GET /objects/x?acl` reads the object's ACL, not the
/// object; `?list-type=2&prefix=` lists), so a route matches a request with a query only if it
/// names every parameter the query carries ([`RouteTable::route_with_query`]); [`RouteTable::route`]
/// matches requests without one. Names are compared as sent (`%61cl` is not `acl`), and a query
/// holding a `;` (a separator to some servers) matches no route:
///
/// ```
/// use http::Method;
/// use tokenward_tower::{RequiredScope, RouteTable};
///
/// let routes = RouteTable::new()
///     .route(Some(Method::GET), "/objects/{*path}", "s3:bucket/logs/{path}:read")?
///     .route_with_query(Some(Method::GET), "/objects/{*path}", "s3:bucket/logs/{path}:read", &["versionId"])?;
/// let scope = |uri: &str| routes.required_scope(&http::Request::get(uri).body(()).unwrap());
/// assert!(scope("/objects/a.log").is_some());
/// assert!(scope("/objects/a.log?versionId=3").is_some());
/// assert!(scope("/objects/a.log?acl").is_none());
/// assert!(scope("/objects/a.log?versionId=3&acl").is_none());
/// # Ok::<(), tokenward_tower::RouteError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

fn segments(path: &str) -> Option<Segments<'_>> {
    let trimmed = path.strip_prefix('/')?;
    if trimmed.ends_with('/') {
        return None;
    }
    // One pass: no empty, `.` or `..` segment (`/` alone has none at all).
    let (mut len, mut dots) = (0usize, 0usize);
    for &b in trimmed.as_bytes() {
        if b == b'/' {
            if len == 0 || (dots == len && len <= 2) {
                return None;
            }
            (len, dots) = (0, 0);
        } else {
            len += 1;
            dots += usize::from(b == b'.');
        }
    }
    if len != 0 && dots == len && len <= 2 {
        return None;
    }
    Some(Segments { path, at: if trimmed.is_empty() { path.len() } else { 1 } })
}

/// The segments of a checked path, as byte ranges of it.
#[derive(Clone, Copy)]
struct Segments<'a> {
    path: &'a str,
    /// Where the next segment starts (`path.len()`: none left).
    at: usize,
}

impl Iterator for Segments<'_> {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        let rest = self.path.as_bytes().get(self.at..).filter(|r| !r.is_empty())?;
        let start = self.at;
        let (end, next) = match rest.iter().position(|&b| b == b'/') {
            Some(i) => (start + i, start + i + 1),
            None => (self.path.len(), self.path.len()),
        };
        self.at = next;
        Some((start, end))
    }
}

impl RouteTable {
    /// An empty table (maps nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route: `method` (`None`: any), a path `pattern`, and the scope `template` whose
    /// `{name}`s are the pattern's. Checked now: unknown names, a `{*rest}` not last, or a
    /// template that does not make a scope are refused. It matches requests without a query.
    pub fn route(self, method: Option<Method>, pattern: &str, template: &str) -> Result<Self, RouteError> {
        self.route_with_query(method, pattern, template, &[])
    }

    /// [`RouteTable::route`], also matching requests whose query carries only parameters named
    /// in `params` (each `A-Z a-z 0-9 - . _ ~`, as sent). The scope does not depend on their
    /// values: name only parameters any holder of the scope may set.
    pub fn route_with_query(
        mut self,
        method: Option<Method>,
        pattern: &str,
        template: &str,
        params: &[&str],
    ) -> Result<Self, RouteError> {
        let err = |why: &str| RouteError { route: format!("{pattern} -> {template}"), why: why.to_owned() };
        if let Some(bad) = params.iter().find(|p| {
            p.is_empty()
                || !p.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        }) {
            return Err(err(&format!("query parameter {bad:?}: a name is A-Z a-z 0-9 - . _ ~")));
        }
        let segs: Vec<&str> = match segments(pattern) {
            Some(s) => s.map(|(a, b)| &pattern[a..b]).collect(),
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
        let query = params.iter().map(|p| (*p).to_owned()).collect();
        self.routes.push(Route { method, pattern: pat, template: parts, fixed_len, query });
        Ok(self)
    }

    /// The scope for `method` and `target` (the path, then `?` and the query if there is one),
    /// if a route matches.
    pub fn scope_for(&self, method: &Method, target: &str) -> Option<Request> {
        let (path, query) = match target.split_once('?') {
            // `/x?` sends no parameter: the same request as `/x`.
            Some((path, query)) => (path, Some(query).filter(|q| !q.is_empty())),
            None => (target, None),
        };
        let segs = segments(path)?;
        'routes: for r in &self.routes {
            if r.method.as_ref().is_some_and(|m| m != method) || !query_allowed(&r.query, query) {
                continue;
            }
            // The values, as (start, end) byte ranges of `path`, in pattern order.
            let mut values: [(usize, usize); 8] = [(0, 0); 8];
            let mut n = 0;
            let mut it = segs;
            for seg in &r.pattern {
                match seg {
                    Seg::Lit(l) => match it.next() {
                        Some((a, b)) if &path[a..b] == l.as_str() => {}
                        _ => continue 'routes,
                    },
                    Seg::Param(_) => {
                        let Some(range) = it.next() else { continue 'routes };
                        if n == values.len() {
                            continue 'routes;
                        }
                        values[n] = range;
                        n += 1;
                    }
                    Seg::Rest(_) => {
                        // The rest: from this segment to the path's end (it ends in no `/`).
                        let Some((start, _)) = it.next() else { continue 'routes };
                        if n == values.len() {
                            continue 'routes;
                        }
                        values[n] = (start, path.len());
                        n += 1;
                        it = Segments { path, at: path.len() };
                    }
                }
            }
            if it.next().is_some() {
                continue;
            }
            // Sized exactly, so the request keeps this buffer as it is.
            let len = r.fixed_len
                + r.template
                    .iter()
                    .map(|p| if let Part::Var(i) = p { values[*i].1 - values[*i].0 } else { 0 })
                    .sum::<usize>();
            let mut text = String::with_capacity(len);
            for p in &r.template {
                match p {
                    Part::Lit(l) => text.push_str(l),
                    Part::Var(i) => {
                        let (a, b) = values[*i];
                        text.push_str(&path[a..b]);
                    }
                }
            }
            return Request::parse_owned(text).ok();
        }
        None
    }
}

/// Whether every parameter of `query` is one of `allowed` (by name, as sent).
fn query_allowed(allowed: &[String], query: Option<&str>) -> bool {
    let Some(query) = query else { return true };
    !query.contains(';')
        && query.split('&').filter(|pair| !pair.is_empty()).all(|pair| {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name);
            allowed.iter().any(|a| a == name)
        })
}

impl<B> RequiredScope<B> for RouteTable {
    fn required_scope(&self, req: &http::Request<B>) -> Option<Request> {
        let uri = req.uri();
        match uri.path_and_query() {
            Some(pq) => self.scope_for(req.method(), pq.as_str()),
            None => self.scope_for(req.method(), uri.path()),
        }
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

    proptest::proptest! {
        #[test]
        fn segments_split_a_path_as_str_split_does(path in "[a./]{0,12}") {
            let expected = path.strip_prefix('/').filter(|t| !t.ends_with('/')).and_then(|t| {
                let v: Vec<&str> = t.split_terminator('/').collect();
                (!v.iter().any(|s| s.is_empty() || *s == "." || *s == "..")).then_some(v)
            });
            let got = segments(&path).map(|it| it.map(|(a, b)| &path[a..b]).collect::<Vec<_>>());
            proptest::prop_assert_eq!(got, expected, "{}", path);
        }
    }

    #[test]
    fn a_query_matches_only_a_route_naming_each_of_its_parameters() {
        let t = RouteTable::new()
            .route(Some(Method::GET), "/objects/{*path}", "s3:bucket/logs/{path}:read")
            .unwrap()
            .route_with_query(Some(Method::GET), "/list", "s3:bucket/logs:list", &["list-type", "prefix"])
            .unwrap();
        let s = |p: &str| t.scope_for(&Method::GET, p).map(|r| r.to_string());
        assert_eq!(s("/objects/x").as_deref(), Some("s3:bucket/logs/x:read"));
        assert_eq!(s("/objects/x?").as_deref(), Some("s3:bucket/logs/x:read"));
        for refused in
            ["/objects/x?acl", "/objects/x?list-type=2&prefix=", "/objects/x?a=1", "/objects/x?acl="]
        {
            assert_eq!(s(refused), None, "{refused}");
        }
        assert_eq!(s("/list?list-type=2&prefix=").as_deref(), Some("s3:bucket/logs:list"));
        assert_eq!(s("/list?prefix=a&&prefix=b").as_deref(), Some("s3:bucket/logs:list"));
        for refused in ["/list?list-type=2&acl", "/list?%61cl", "/list?prefix=a;acl", "/list?=x"] {
            assert_eq!(s(refused), None, "{refused}");
        }
        assert!(RouteTable::new().route_with_query(None, "/a", "x:a:read", &["a=b"]).is_err());
        assert!(RouteTable::new().route_with_query(None, "/a", "x:a:read", &[""]).is_err());
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
