//! # Ingress routing: which backend answers a request's host and path
//!
//! ## Scope
//! The routing decision of an Ingress controller for HTTP requests, from
//! the Ingress objects of a cluster (`networking.k8s.io/v1`), for two kinds
//! of controller:
//! - **conformant** ([`Controller::Conformant`]): the semantics the API
//!   states (k8s.io/api `networking/v1/types.go`, the Ingress concept page's
//!   "Examples" table and "Multiple matches"): `Exact` matches the whole path,
//!   case-sensitively; `Prefix` matches element by element on `/` (`/api`
//!   matches `/api`, `/api/` and `/api/v1`, not `/api-docs`; a trailing slash
//!   on either side is ignored); the longest matching path wins and on a tie
//!   `Exact` beats `Prefix`. `ImplementationSpecific` is up to the
//!   IngressClass; this controller treats it as `Prefix` (an assumption,
//!   stated in the output). Gateway API's `PathPrefix` has the same
//!   semantics.
//! - **ingress-nginx** ([`Controller::IngressNginx`]): the nginx
//!   configuration the controller writes, matched as nginx matches it. Per
//!   host (one nginx `server`), `Prefix` paths are normalised to end in `/`
//!   and get an extra exact location (`updateServerLocations` /
//!   `normalizePrefixPath`, internal/ingress/controller/location.go), so
//!   `/api` becomes `location /api/` plus `location = /api`; `Exact` becomes
//!   `location = /path`; `ImplementationSpecific` stays a plain nginx prefix
//!   (`location /path`, a string prefix: `/api` matches `/api-docs`)
//!   (`buildLocation`, internal/ingress/controller/template/template.go).
//!   nginx picks an exact location first, else the longest string prefix
//!   (nginx `ngx_http_core_module`, "location"). When any Ingress of the
//!   host sets `nginx.ingress.kubernetes.io/use-regex: "true"` or a
//!   `rewrite-target`, **every** location of that host becomes a
//!   case-insensitive regex `~* "^<path>"` (`enforceRegexModifier`), the
//!   locations are ordered by path length, longest first (ties by path in
//!   reverse byte order: the two stable sorts in `createServers`,
//!   controller.go) and the first regex that matches wins: `/api-docs` then
//!   reaches `/api`'s backend, the "/api-docs surprise"
//!   (docs/user-guide/ingress-path-matching.md; kubernetes/ingress-nginx
//!   #8425). Paths are regexes there: the model compiles them with the
//!   `regex` crate, whose syntax is RE2's, the syntax ingress-nginx accepts.
//!
//! Hosts: a request's `Host` selects the rules of that host (an exact host
//! before a wildcard `*.example.com`, which matches exactly one label as the
//! API states, or any number of labels as nginx's `server_name` does),
//! else the rules with no host; within the selected set only its paths are
//! tried, and a request no path matches goes to the default backend (an
//! Ingress's `spec.defaultBackend`, else the controller's, which answers
//! 404). Among several Ingresses for one host and path, the first in input
//! order wins (the controllers order by creation time, which manifests do
//! not carry).
//!
//! Not modelled: TLS and redirects, header/method matches, canary
//! annotations, the `IngressClass` selection (every Ingress given is served
//! by the one controller named). Gateway API's HTTPRoute objects are routed
//! by [`httproute`], by the API's own rules.
//!
//! ## Parameters
//! None beyond the objects and the controller kind; every behaviour above is
//! from the cited source (docs/calibration.md, row `ingress-path-matching`).
//!
//! ## What it emits
//! [`Router::route`] gives a [`Route`]: the backend (or the default
//! backend), the location that matched as the controller would write it, and
//! the Ingress and path it came from. [`Router::servers`] lists each
//! host's locations in the order they are tried.
//!
//! ## Validation
//! Unit tests (`tests.rs`): every row of the Ingress concept page's
//! examples table for the conformant controller, ingress-nginx's
//! normalisation, the regex mode's case-insensitivity and ordering, the
//! `/api-docs` surprise and its fixes, hosts and wildcards, the default
//! backend.

#[cfg(test)]
mod tests;

pub mod httproute;

use std::fmt;

/// `spec.rules[].http.paths[].pathType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathType {
    /// The whole path, case-sensitively.
    Exact,
    /// Element-wise prefix on `/`.
    Prefix,
    /// Up to the controller.
    ImplementationSpecific,
}

impl PathType {
    /// The name as written in manifests.
    pub fn name(self) -> &'static str {
        match self {
            PathType::Exact => "Exact",
            PathType::Prefix => "Prefix",
            PathType::ImplementationSpecific => "ImplementationSpecific",
        }
    }
}

/// Which controller serves the Ingresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// The API's stated semantics (`ImplementationSpecific` as `Prefix`).
    Conformant,
    /// kubernetes/ingress-nginx.
    IngressNginx,
}

impl Controller {
    /// Every controller kind, as named on the command line.
    pub const ALL: [(&'static str, Controller); 2] = [
        ("conformant", Controller::Conformant),
        ("ingress-nginx", Controller::IngressNginx),
    ];
}

/// Where a path sends a request: `spec.rules[].http.paths[].backend`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `service: {name, port: {number | name}}`, in the Ingress's namespace.
    Service {
        /// The Service's name.
        name: String,
        /// Its port, as a number or a name.
        port: String,
    },
    /// `resource: {apiGroup, kind, name}`.
    Resource {
        /// `kind/name`.
        reference: String,
    },
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Backend::Service { name, port } => write!(f, "{name}:{port}"),
            Backend::Resource { reference } => f.write_str(reference),
        }
    }
}

/// One path of a rule.
#[derive(Clone, Debug)]
pub struct IngressPath {
    /// The path as written (starts with `/`).
    pub path: String,
    /// Its type.
    pub path_type: PathType,
    /// Where it sends requests.
    pub backend: Backend,
}

/// One rule: a host (or none: every host) and its paths.
#[derive(Clone, Debug)]
pub struct IngressRule {
    /// `host`: exact, or `*.` and a domain; `None` for every host.
    pub host: Option<String>,
    /// `http.paths`.
    pub paths: Vec<IngressPath>,
}

/// An Ingress object, with what routing reads of it.
#[derive(Clone, Debug)]
pub struct Ingress {
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `nginx.ingress.kubernetes.io/use-regex: "true"`.
    pub use_regex: bool,
    /// `nginx.ingress.kubernetes.io/rewrite-target` is set.
    pub rewrite_target: bool,
    /// `spec.defaultBackend`.
    pub default_backend: Option<Backend>,
    /// `spec.rules`.
    pub rules: Vec<IngressRule>,
}

/// Which path of which Ingress a location came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Origin {
    /// Index of the Ingress in the input.
    pub ingress: usize,
    /// Index of the rule in `spec.rules`.
    pub rule: usize,
    /// Index of the path in `http.paths`.
    pub path: usize,
}

/// How a location compares a request path.
#[derive(Clone, Debug)]
enum Matcher {
    /// The whole path.
    Exact(String),
    /// Element-wise prefix (the rule's path without a trailing slash).
    Elements(String),
    /// nginx string prefix.
    StringPrefix(String),
    /// nginx `~*` regex.
    Regex(regex::Regex),
}

/// One location of a host, as the controller would write it.
#[derive(Clone, Debug)]
pub struct Location {
    matcher: Matcher,
    /// The location as shown: nginx's `location` argument, or
    /// `Exact /p` / `Prefix /p` for the conformant controller.
    pub shown: String,
    /// Where requests go.
    pub backend: Backend,
    /// Which Ingress path it came from.
    pub origin: Origin,
}

/// The locations of one host (one nginx `server`).
#[derive(Clone, Debug)]
pub struct Server {
    /// The host; `None` for the rules without one.
    pub host: Option<String>,
    /// Whether ingress-nginx made every location a regex, and which Ingress
    /// made it so.
    pub regex_because: Option<usize>,
    /// Locations in the order they are tried.
    pub locations: Vec<Location>,
}

/// An Ingress path that cannot be served, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteError {
    /// The path's origin.
    pub origin: Origin,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

/// The routing tables of one controller.
#[derive(Clone, Debug)]
pub struct Router {
    controller: Controller,
    servers: Vec<Server>,
    default_backend: Option<(Backend, usize)>,
}

/// Where one request went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route<'a> {
    /// The backend; `None` for the controller's own default backend (404).
    pub backend: Option<&'a Backend>,
    /// The host whose rules were used (`None`: the rules without a host,
    /// or none at all).
    pub server: Option<&'a str>,
    /// The location that matched, as shown; `None` when none did.
    pub location: Option<&'a str>,
    /// The Ingress path it came from, or the Ingress whose
    /// `spec.defaultBackend` answered.
    pub origin: Option<Origin>,
    /// The Ingress index whose `spec.defaultBackend` answered, if any.
    pub default_from: Option<usize>,
}

impl Router {
    /// Builds the tables of `controller` for `ingresses`.
    pub fn new(ingresses: &[Ingress], controller: Controller) -> Result<Router, RouteError> {
        let mut servers: Vec<Server> = Vec::new();
        let mut entries: Vec<Vec<(Origin, &IngressPath)>> = Vec::new();
        for (i, ing) in ingresses.iter().enumerate() {
            for (r, rule) in ing.rules.iter().enumerate() {
                let at = match servers.iter().position(|s| s.host == rule.host) {
                    Some(at) => at,
                    None => {
                        servers.push(Server {
                            host: rule.host.clone(),
                            regex_because: None,
                            locations: Vec::new(),
                        });
                        entries.push(Vec::new());
                        servers.len() - 1
                    }
                };
                if controller == Controller::IngressNginx
                    && (ing.use_regex || ing.rewrite_target)
                    && servers[at].regex_because.is_none()
                {
                    servers[at].regex_because = Some(i);
                }
                for (p, path) in rule.paths.iter().enumerate() {
                    let origin = Origin {
                        ingress: i,
                        rule: r,
                        path: p,
                    };
                    entries[at].push((origin, path));
                }
            }
        }
        for (server, paths) in servers.iter_mut().zip(&entries) {
            server.locations = match controller {
                Controller::Conformant => conformant_locations(paths),
                Controller::IngressNginx => {
                    nginx_locations(paths, ingresses, server.regex_because.is_some())?
                }
            };
        }
        // Exact hosts, then wildcards, then the rules without a host.
        servers.sort_by_key(|s| match &s.host {
            Some(h) if h.starts_with("*.") => 1,
            Some(_) => 0,
            None => 2,
        });
        let default_backend = ingresses
            .iter()
            .enumerate()
            .find_map(|(i, ing)| ing.default_backend.clone().map(|b| (b, i)));
        Ok(Router {
            controller,
            servers,
            default_backend,
        })
    }

    /// The controller these tables are for.
    pub fn controller(&self) -> Controller {
        self.controller
    }

    /// Each host's locations in the order they are tried: exact hosts,
    /// wildcards, then the rules without a host.
    pub fn servers(&self) -> &[Server] {
        &self.servers
    }

    /// Routes a request for `host` and `path` (the path without its query).
    pub fn route(&self, host: &str, path: &str) -> Route<'_> {
        let server = self
            .servers
            .iter()
            .find(|s| s.host.as_deref().is_some_and(|h| h == host))
            .or_else(|| {
                let one_label = self.controller == Controller::Conformant;
                self.servers.iter().find(|s| {
                    s.host
                        .as_deref()
                        .is_some_and(|h| wildcard_matches(h, host, one_label))
                })
            })
            .or_else(|| self.servers.iter().find(|s| s.host.is_none()));
        let hit = server.and_then(|s| match self.controller {
            Controller::Conformant => conformant_pick(&s.locations, path),
            Controller::IngressNginx => nginx_pick(&s.locations, path),
        });
        match hit {
            Some(loc) => Route {
                backend: Some(&loc.backend),
                server: server.and_then(|s| s.host.as_deref()),
                location: Some(&loc.shown),
                origin: Some(loc.origin),
                default_from: None,
            },
            None => Route {
                backend: self.default_backend.as_ref().map(|(b, _)| b),
                server: server.and_then(|s| s.host.as_deref()),
                location: None,
                origin: None,
                default_from: self.default_backend.as_ref().map(|(_, i)| *i),
            },
        }
    }
}

/// `*.example.com` matches `a.example.com`, never `example.com`; with
/// `one_label` (the Ingress API's rule) not `a.b.example.com`, without it
/// (nginx's `server_name`, which ingress-nginx writes) that too.
fn wildcard_matches(pattern: &str, host: &str, one_label: bool) -> bool {
    let Some(domain) = pattern.strip_prefix("*.") else {
        return false;
    };
    host.strip_suffix(domain)
        .and_then(|label| label.strip_suffix('.'))
        .is_some_and(|label| !(label.is_empty() || one_label && label.contains('.')))
}

/// The conformant controller's locations: in input order; the pick compares
/// lengths, so the order only breaks exact ties (first wins).
fn conformant_locations(paths: &[(Origin, &IngressPath)]) -> Vec<Location> {
    paths
        .iter()
        .map(|(origin, p)| {
            let matcher = match p.path_type {
                PathType::Exact => Matcher::Exact(p.path.clone()),
                PathType::Prefix | PathType::ImplementationSpecific => {
                    Matcher::Elements(p.path.trim_end_matches('/').to_string())
                }
            };
            let shown = match p.path_type {
                PathType::ImplementationSpecific => {
                    format!("ImplementationSpecific {} (as Prefix)", p.path)
                }
                t => format!("{} {}", t.name(), p.path),
            };
            Location {
                matcher,
                shown,
                backend: p.backend.clone(),
                origin: *origin,
            }
        })
        .collect()
}

/// Longest matching path; on a tie Exact before Prefix; then input order.
fn conformant_pick<'a>(locations: &'a [Location], path: &str) -> Option<&'a Location> {
    let mut best: Option<(&Location, usize, bool)> = None;
    for loc in locations {
        let (len, exact) = match &loc.matcher {
            Matcher::Exact(p) if p == path => (p.len(), true),
            Matcher::Elements(p) if elements_match(p, path) => (p.len(), false),
            _ => continue,
        };
        let better = match best {
            None => true,
            Some((_, l, e)) => len > l || (len == l && exact && !e),
        };
        if better {
            best = Some((loc, len, exact));
        }
    }
    best.map(|(l, _, _)| l)
}

/// Element-wise prefix: `prefix` (no trailing slash; empty for `/`) equals
/// the path or is followed in it by `/`.
fn elements_match(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// ingress-nginx's locations for one server, in the order nginx tries them.
fn nginx_locations(
    paths: &[(Origin, &IngressPath)],
    ingresses: &[Ingress],
    regex: bool,
) -> Result<Vec<Location>, RouteError> {
    // (path, exact, origin, backend) before sorting, as location.go writes them.
    let mut written: Vec<(String, bool, Origin, &Backend)> = Vec::new();
    let exact_paths: Vec<&str> = paths
        .iter()
        .filter(|(_, p)| p.path_type == PathType::Exact)
        .map(|(_, p)| p.path.as_str())
        .collect();
    for (origin, p) in paths {
        let ing = &ingresses[origin.ingress];
        match p.path_type {
            PathType::Exact => written.push((p.path.clone(), true, *origin, &p.backend)),
            PathType::ImplementationSpecific => {
                written.push((p.path.clone(), false, *origin, &p.backend))
            }
            PathType::Prefix if ing.use_regex || ing.rewrite_target => {
                written.push((p.path.clone(), false, *origin, &p.backend))
            }
            PathType::Prefix => {
                let normalised = if p.path == "/" || p.path.ends_with('/') {
                    p.path.clone()
                } else {
                    format!("{}/", p.path)
                };
                let add_exact = p.path != "/" && !exact_paths.contains(&p.path.as_str());
                written.push((normalised, false, *origin, &p.backend));
                if add_exact {
                    written.push((p.path.clone(), true, *origin, &p.backend));
                }
            }
        }
    }
    // createServers: sort by path descending, then (stably) by length descending.
    written.sort_by(|a, b| b.0.cmp(&a.0));
    written.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
    written
        .into_iter()
        .map(|(path, exact, origin, backend)| {
            let (matcher, shown) = if regex {
                let re = regex::Regex::new(&format!("(?i)^{path}")).map_err(|e| RouteError {
                    origin,
                    // The syntax error's own words, without the caret drawing.
                    message: format!(
                        "path `{path}` is not a valid regular expression, and ingress-nginx reads every path of this host as one: {}",
                        e.to_string().lines().last().unwrap_or_default().trim_start_matches("error: ")
                    ),
                    hint: "escape the special characters, or remove use-regex/rewrite-target from the host's Ingresses".into(),
                })?;
                (Matcher::Regex(re), format!("~* \"^{path}\""))
            } else if exact {
                (Matcher::Exact(path.clone()), format!("= {path}"))
            } else {
                (Matcher::StringPrefix(path.clone()), path.clone())
            };
            Ok(Location {
                matcher,
                shown,
                backend: backend.clone(),
                origin,
            })
        })
        .collect()
}

/// nginx's choice: an exact location, else the longest string prefix; in
/// regex mode the first regex that matches.
fn nginx_pick<'a>(locations: &'a [Location], path: &str) -> Option<&'a Location> {
    let mut longest: Option<&Location> = None;
    for loc in locations {
        match &loc.matcher {
            Matcher::Exact(p) if p == path => return Some(loc),
            Matcher::StringPrefix(p) if path.starts_with(p.as_str()) => {
                let longer = match longest.map(|l| &l.matcher) {
                    Some(Matcher::StringPrefix(q)) => p.len() > q.len(),
                    _ => true,
                };
                if longer {
                    longest = Some(loc);
                }
            }
            Matcher::Regex(re) if re.is_match(path) => return Some(loc),
            _ => {}
        }
    }
    longest
}
