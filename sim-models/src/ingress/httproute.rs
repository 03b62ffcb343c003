//! # Gateway API HTTPRoute: which backend answers a request
//!
//! ## Scope
//! The routing of `gateway.networking.k8s.io/v1` HTTPRoute objects, as the
//! API states it (kubernetes-sigs/gateway-api `apis/v1/httproute_types.go`;
//! docs/calibration.md, row `gateway-httproute-matching`). HTTPRoutes are
//! always routed by these rules, whatever Ingress controller is named: the
//! API fixes `Exact` and `PathPrefix` matching and their precedence, and its
//! conformance tests hold implementations to them (unlike Ingress's
//! `ImplementationSpecific` or ingress-nginx's regex mode).
//!
//! - `Exact`: the whole path, case-sensitively. `PathPrefix`: element by
//!   element on `/` ("`/abc`, `/abc/` and `/abc/def` match the prefix
//!   `/abc`, but `/abcd` does not"; a trailing slash of the prefix is
//!   ignored). A rule without matches, or a match without a path, is
//!   `PathPrefix /` (the API's defaults). `RegularExpression` is not
//!   modelled (its matching and precedence are implementation-specific).
//! - `method`, `headers` (type `Exact`: names case-insensitive, values
//!   exact) and `queryParams` (type `Exact`, names and values exact) must all
//!   hold besides the path.
//! - Hostnames: a route with no hostnames serves every host; `*.example.com`
//!   matches any host under `example.com` (one or more labels, not
//!   `example.com` itself). Among the routes whose hostnames match, only
//!   those with the most specific match are tried: the most characters in
//!   a matching non-wildcard hostname, then in a matching hostname (the
//!   `hostnames` field's precedence); a path none of them matches is a 404
//!   (an assumption: implementations build one virtual host per hostname).
//! - Precedence across all matching rules: an `Exact` path match; the
//!   `PathPrefix` with the most characters; a method match; the most header
//!   matches; the most query-parameter matches; then across routes the
//!   oldest by `creationTimestamp` (a route without one counts as newer than
//!   any with one; two without one tie), then `{namespace}/{name}`
//!   alphabetically; within a route the first matching rule in list order.
//!
//! Not modelled: `RegularExpression` paths, filters, the Gateway and its
//! listeners (every route is attached), weights beyond reporting them.
//!
//! ## Cost
//! [`GatewayRouter::new`] builds the tables once: per hostname (exact, per
//! wildcard domain, and for routes without hostnames) a map of `Exact`
//! paths and a trie of `PathPrefix` elements, each entry's candidates sorted
//! by the precedence above. [`GatewayRouter::route`] does one map lookup
//! for the host (or one per label of it for wildcards), one for the exact
//! path and one per path element: its cost does not grow with the number
//! of routes or rules, and it allocates nothing.
//!
//! ## Parameters
//! None beyond the objects.
//!
//! ## What it emits
//! [`GatewayRouter::route`] gives the [`GatewayMatch`] (route, rule, match,
//! backends with weights), or `None` for the 404.
//!
//! ## Validation
//! Unit tests (`httproute_tests.rs`): the precedence list row by row, a
//! table of path cases (`/api` against `/api-docs` and `/api/`), the API's
//! `PathPrefix` example, hostnames, defaults, the 404, and the indexed
//! lookup against a plain scan of every rule over generated routes.

use std::collections::HashMap;

use super::Backend;

#[cfg(test)]
#[path = "httproute_tests.rs"]
mod tests;

/// `rules[].matches[].path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpPathMatch {
    /// `type: Exact`.
    Exact(String),
    /// `type: PathPrefix` (the default).
    PathPrefix(String),
}

impl HttpPathMatch {
    /// `Exact /p` or `PathPrefix /p`.
    pub fn shown(&self) -> String {
        match self {
            HttpPathMatch::Exact(p) => format!("Exact {p}"),
            HttpPathMatch::PathPrefix(p) => format!("PathPrefix {p}"),
        }
    }

    /// Whether `path` matches (the plain definition; the router indexes it).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            HttpPathMatch::Exact(p) => p == path,
            HttpPathMatch::PathPrefix(p) => {
                let p = p.trim_end_matches('/');
                path.strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// `rules[].matches[]`: a path and what else must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRouteMatch {
    /// `path` (default `PathPrefix /`).
    pub path: HttpPathMatch,
    /// `method`, if any.
    pub method: Option<String>,
    /// `headers` of type `Exact`: (name, value).
    pub headers: Vec<(String, String)>,
    /// `queryParams` of type `Exact`: (name, value).
    pub query_params: Vec<(String, String)>,
}

impl HttpRouteMatch {
    /// A match on the path only.
    pub fn path(path: HttpPathMatch) -> Self {
        HttpRouteMatch {
            path,
            method: None,
            headers: Vec::new(),
            query_params: Vec::new(),
        }
    }

    /// `Exact /p`, `PathPrefix /p`, with ` method M`, ` headers N`,
    /// ` query N` when given.
    pub fn shown(&self) -> String {
        let mut s = self.path.shown();
        if let Some(m) = &self.method {
            s.push_str(&format!(" method {m}"));
        }
        if !self.headers.is_empty() {
            s.push_str(&format!(" headers {}", self.headers.len()));
        }
        if !self.query_params.is_empty() {
            s.push_str(&format!(" query {}", self.query_params.len()));
        }
        s
    }

    /// Whether the method, headers and query parameters of `req` hold.
    fn extras_hold(&self, req: &HttpRequest<'_>) -> bool {
        self.method.as_deref().is_none_or(|m| m == req.method)
            && self.headers.iter().all(|(n, v)| {
                req.headers
                    .iter()
                    .any(|(rn, rv)| rn.eq_ignore_ascii_case(n) && rv == v)
            })
            && self
                .query_params
                .iter()
                .all(|(n, v)| req.query.iter().any(|(rn, rv)| rn == n && rv == v))
    }
}

/// `rules[].backendRefs[]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpBackendRef {
    /// The Service and port.
    pub backend: Backend,
    /// `weight` (default 1).
    pub weight: u32,
}

/// One rule of a route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRouteRule {
    /// `matches` (empty: `PathPrefix /`).
    pub matches: Vec<HttpRouteMatch>,
    /// `backendRefs`.
    pub backends: Vec<HttpBackendRef>,
}

/// An HTTPRoute object, with what routing reads of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRoute {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.creationTimestamp` (RFC 3339, UTC `Z` as the API server
    /// writes it, so that text order is time order), if given.
    pub created: Option<String>,
    /// `spec.hostnames` (empty: every host).
    pub hostnames: Vec<String>,
    /// `spec.rules`.
    pub rules: Vec<HttpRouteRule>,
}

/// One request as the routes see it.
#[derive(Clone, Copy, Debug)]
pub struct HttpRequest<'a> {
    /// `Host`.
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The method.
    pub method: &'a str,
    /// Headers: (name, value).
    pub headers: &'a [(&'a str, &'a str)],
    /// Query parameters: (name, value).
    pub query: &'a [(&'a str, &'a str)],
}

impl<'a> HttpRequest<'a> {
    /// A `GET` of `host` and `path` with no headers or query (what matches
    /// on the path alone see).
    pub fn get(host: &'a str, path: &'a str) -> Self {
        HttpRequest {
            host,
            path,
            method: "GET",
            headers: &[],
            query: &[],
        }
    }
}

/// Where a request went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayMatch<'a> {
    /// Index of the route in the input.
    pub route: usize,
    /// Index of the rule in the route.
    pub rule: usize,
    /// What matched (the implicit `PathPrefix /` for a rule without matches).
    pub matched: &'a HttpRouteMatch,
    /// The rule's backends.
    pub backends: &'a [HttpBackendRef],
}

/// One (route, rule, match), with its precedence key.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    route: u32,
    rule: u32,
    matched: u32,
    /// Smaller goes first: (-prefix characters, no method, -headers,
    /// -query, route rank, rule, match).
    key: (isize, bool, isize, isize, u32, u32, u32),
}

/// A `PathPrefix` trie node: the candidates whose prefix ends here.
#[derive(Clone, Debug, Default)]
struct Node {
    children: HashMap<String, Node>,
    candidates: Vec<Candidate>,
}

/// The rules one hostname class sees.
#[derive(Clone, Debug, Default)]
struct Table {
    exact: HashMap<String, Vec<Candidate>>,
    prefixes: Node,
}

/// The routing of a set of HTTPRoutes, indexed once.
#[derive(Clone, Debug)]
pub struct GatewayRouter {
    routes: Vec<HttpRoute>,
    /// The implicit match of a rule without matches.
    implicit: HttpRouteMatch,
    exact_hosts: HashMap<String, Table>,
    /// Keyed by the domain after `*.`.
    wildcards: HashMap<String, Table>,
    any_host: Option<Table>,
}

impl Table {
    fn insert(&mut self, c: Candidate, path: &HttpPathMatch) {
        match path {
            HttpPathMatch::Exact(p) => self.exact.entry(p.clone()).or_default().push(c),
            HttpPathMatch::PathPrefix(p) => {
                let mut node = &mut self.prefixes;
                for element in p.trim_end_matches('/').split('/').skip(1) {
                    node = node.children.entry(element.to_string()).or_default();
                }
                node.candidates.push(c);
            }
        }
    }

    fn sort(&mut self) {
        for list in self.exact.values_mut() {
            list.sort_by_key(|c| c.key);
        }
        let mut stack = vec![&mut self.prefixes];
        while let Some(node) = stack.pop() {
            node.candidates.sort_by_key(|c| c.key);
            stack.extend(node.children.values_mut());
        }
    }
}

impl GatewayRouter {
    /// Indexes `routes` (kept in input order).
    pub fn new(routes: Vec<HttpRoute>) -> Self {
        // Route rank: oldest first (without a timestamp after any with
        // one), then `{namespace}/{name}`.
        let mut order: Vec<usize> = (0..routes.len()).collect();
        order.sort_by(|&a, &b| {
            let (ra, rb) = (&routes[a], &routes[b]);
            let age = match (&ra.created, &rb.created) {
                (Some(x), Some(y)) => x.cmp(y),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            };
            age.then_with(|| (&ra.namespace, &ra.name).cmp(&(&rb.namespace, &rb.name)))
        });
        let mut rank = vec![0u32; routes.len()];
        for (r, &i) in order.iter().enumerate() {
            rank[i] = r as u32;
        }
        let implicit = HttpRouteMatch::path(HttpPathMatch::PathPrefix("/".into()));
        let mut exact_hosts: HashMap<String, Table> = HashMap::new();
        let mut wildcards: HashMap<String, Table> = HashMap::new();
        let mut any_host: Option<Table> = None;
        for (i, route) in routes.iter().enumerate() {
            // A hostname listed twice is one table entry.
            let mut seen: Vec<&str> = Vec::new();
            for h in &route.hostnames {
                if !seen.contains(&h.as_str()) {
                    seen.push(h);
                }
            }
            let (wild, exact): (Vec<&str>, Vec<&str>) =
                seen.into_iter().partition(|h| h.starts_with("*."));
            for (r, rule) in route.rules.iter().enumerate() {
                let matches = if rule.matches.is_empty() {
                    std::slice::from_ref(&implicit)
                } else {
                    &rule.matches[..]
                };
                for (m, mt) in matches.iter().enumerate() {
                    let chars = match &mt.path {
                        HttpPathMatch::Exact(p) | HttpPathMatch::PathPrefix(p) => p.len(),
                    };
                    let c = Candidate {
                        route: i as u32,
                        rule: r as u32,
                        matched: m as u32,
                        key: (
                            -(chars as isize),
                            mt.method.is_none(),
                            -(mt.headers.len() as isize),
                            -(mt.query_params.len() as isize),
                            rank[i],
                            r as u32,
                            m as u32,
                        ),
                    };
                    if route.hostnames.is_empty() {
                        any_host
                            .get_or_insert_with(Table::default)
                            .insert(c, &mt.path);
                    }
                    for h in &exact {
                        exact_hosts
                            .entry(h.to_string())
                            .or_default()
                            .insert(c, &mt.path);
                    }
                    for h in &wild {
                        wildcards
                            .entry(h[2..].to_string())
                            .or_default()
                            .insert(c, &mt.path);
                    }
                }
            }
            if route.rules.is_empty() {
                // A route without rules still claims its hostnames.
                if route.hostnames.is_empty() {
                    any_host.get_or_insert_with(Table::default);
                }
                for h in &exact {
                    exact_hosts.entry(h.to_string()).or_default();
                }
                for h in &wild {
                    wildcards.entry(h[2..].to_string()).or_default();
                }
            }
        }
        for t in exact_hosts
            .values_mut()
            .chain(wildcards.values_mut())
            .chain(any_host.iter_mut())
        {
            t.sort();
        }
        GatewayRouter {
            routes,
            implicit,
            exact_hosts,
            wildcards,
            any_host,
        }
    }

    /// The routes, in input order.
    pub fn routes(&self) -> &[HttpRoute] {
        &self.routes
    }

    /// The rules a host sees: its exact hostname's, else the longest
    /// matching wildcard's, else those of the routes without hostnames.
    fn table(&self, host: &str) -> Option<&Table> {
        if let Some(t) = self.exact_hosts.get(host) {
            return Some(t);
        }
        if !self.wildcards.is_empty() {
            // `*.d` matches `l.d` for a non-empty `l`: longest `d` first.
            for (at, _) in host.match_indices('.') {
                if at > 0 {
                    if let Some(t) = self.wildcards.get(&host[at + 1..]) {
                        return Some(t);
                    }
                }
            }
        }
        self.any_host.as_ref()
    }

    fn candidate(&self, c: &Candidate) -> &HttpRouteMatch {
        let rule = &self.routes[c.route as usize].rules[c.rule as usize];
        rule.matches
            .get(c.matched as usize)
            .unwrap_or(&self.implicit)
    }

    /// The first candidate of a sorted list whose extras hold.
    fn first<'a>(&'a self, list: &'a [Candidate], req: &HttpRequest<'_>) -> Option<&'a Candidate> {
        list.iter().find(|c| self.candidate(c).extras_hold(req))
    }

    /// Routes `req`; `None`: no rule matches (404).
    pub fn route(&self, req: &HttpRequest<'_>) -> Option<GatewayMatch<'_>> {
        let table = self.table(req.host)?;
        let mut best = table
            .exact
            .get(req.path)
            .and_then(|list| self.first(list, req));
        if best.is_none() {
            // Deeper trie nodes hold longer prefixes: the deepest node with
            // a candidate that holds wins.
            if let Some(rest) = req.path.strip_prefix('/') {
                let mut node = &table.prefixes;
                best = self.first(&node.candidates, req);
                for element in rest.split('/') {
                    match node.children.get(element) {
                        Some(next) => node = next,
                        None => break,
                    }
                    if let Some(c) = self.first(&node.candidates, req) {
                        best = Some(c);
                    }
                }
            }
        }
        let c = best?;
        let rule = &self.routes[c.route as usize].rules[c.rule as usize];
        Some(GatewayMatch {
            route: c.route as usize,
            rule: c.rule as usize,
            matched: self.candidate(c),
            backends: &rule.backends,
        })
    }

    /// [`GatewayRouter::route`] for a `GET` with no headers or query.
    pub fn route_path(&self, host: &str, path: &str) -> Option<GatewayMatch<'_>> {
        self.route(&HttpRequest::get(host, path))
    }
}
