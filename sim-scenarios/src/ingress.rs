//! `knsim ingress`: which backend answers each request, from the user's
//! Ingress manifests, as a conformant controller or ingress-nginx would
//! route it (the model is `sim_models::ingress`).
//!
//! Reads `networking.k8s.io/v1` Ingress objects from a file or from every
//! `*.yaml`/`*.yml` file of a directory (sorted by name; multi-document
//! files); objects of other kinds are counted as skipped, a kind that looks
//! like a misspelt `Ingress` is an error. Unknown fields of an Ingress are
//! errors, located `file:line:column`, so a typo never falls back to a
//! default. Prints the routing table (each host's locations in the order
//! the controller tries them), the route of each `--request HOST/PATH`
//! (text or JSON), or checks a YAML list of expected routes (`--expect`):
//! exit 0 when all hold, 1 naming each that does not, 2 on bad input.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use sim_models::did_you_mean::suggest;
use sim_models::ingress::httproute::{
    GatewayRouter, HttpBackendRef, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule,
};
use sim_models::ingress::{
    Backend, Controller, Ingress, IngressPath, IngressRule, Origin, PathType, Route, Router,
};

use crate::error::InputError;
use crate::locate::{Positions, Seg};
use crate::path;

/// `nginx.ingress.kubernetes.io/use-regex`.
const USE_REGEX: &str = "nginx.ingress.kubernetes.io/use-regex";
/// `nginx.ingress.kubernetes.io/rewrite-target`.
const REWRITE_TARGET: &str = "nginx.ingress.kubernetes.io/rewrite-target";

/// The Ingresses read, and where each came from.
#[derive(Default)]
pub struct Loaded {
    /// The objects, in input order.
    pub ingresses: Vec<Ingress>,
    /// Per Ingress: file and document index, for positions.
    sources: Vec<(String, usize)>,
    /// The files' texts by name.
    texts: BTreeMap<String, String>,
    /// Objects of other kinds, counted by kind.
    pub skipped: BTreeMap<String, usize>,
    /// Gateway API HTTPRoutes, in input order (routed by the API's rules
    /// whatever the controller: `sim_models::ingress::httproute`).
    pub routes: Vec<HttpRoute>,
    /// Per HTTPRoute: file and line.
    route_places: Vec<String>,
}

impl Loaded {
    /// `ns/name` of an Ingress.
    pub fn name(&self, i: usize) -> String {
        let ing = &self.ingresses[i];
        format!("{}/{}", ing.namespace, ing.name)
    }

    /// `file:line` of a path of an Ingress.
    pub fn place(&self, o: Origin) -> String {
        let (file, doc) = &self.sources[o.ingress];
        let (line, _) =
            Positions::of_document(&self.texts[file], *doc).find(&path_of(o, &["path"]));
        format!("{file}:{line}")
    }

    /// Where HTTPRoute `i` is: `file:line`.
    pub fn route_place(&self, i: usize) -> &str {
        &self.route_places[i]
    }

    /// An error at a path's field.
    fn error_at(&self, o: Origin, field: &[&str], message: String, hint: String) -> InputError {
        let (file, doc) = &self.sources[o.ingress];
        let at = Positions::of_document(&self.texts[file], *doc).find(&path_of(o, field));
        InputError::at(file, at, message, hint)
    }
}

fn path_of(o: Origin, field: &[&str]) -> Vec<Seg> {
    let mut p = path!["spec", "rules", o.rule, "http", "paths", o.path].to_vec();
    p.extend(field.iter().map(|f| Seg::from(*f)));
    p
}

/// Reads the manifests at `at` (a file or a directory).
pub fn load(at: &Path) -> Result<Loaded, InputError> {
    let shown = at.display().to_string();
    let files: Vec<std::path::PathBuf> = if at.is_dir() {
        let entries = std::fs::read_dir(at).map_err(|e| {
            InputError::whole(
                &shown,
                format!("cannot read directory: {e}"),
                "pass a readable directory or file of Ingress manifests",
            )
        })?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| e == "yaml" || e == "yml")
            })
            .collect();
        paths.sort();
        if paths.is_empty() {
            return Err(InputError::whole(
                &shown,
                "no *.yaml or *.yml files in this directory",
                "pass the directory that holds your Ingress manifests, or one file",
            ));
        }
        paths
    } else {
        vec![at.to_path_buf()]
    };
    let mut texts = Vec::new();
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).map_err(|e| {
            InputError::whole(
                &name,
                format!("cannot read file: {e}"),
                "pass a readable YAML file",
            )
        })?;
        texts.push((name, text));
    }
    load_texts(&shown, texts)
}

/// Reads the Ingresses of `files` (`(name, text)`, in order); `shown`
/// names them all in an error.
pub fn load_texts(shown: &str, files: Vec<(String, String)>) -> Result<Loaded, InputError> {
    let mut loaded = Loaded::default();
    for (name, text) in files {
        read_file(&name, &text, &mut loaded)?;
        loaded.texts.insert(name, text);
    }
    if loaded.ingresses.is_empty() && loaded.routes.is_empty() {
        return Err(InputError::whole(
            shown,
            "no Ingress or HTTPRoute objects found",
            "Ingress manifests have `apiVersion: networking.k8s.io/v1` and `kind: Ingress`; HTTPRoutes `apiVersion: gateway.networking.k8s.io/v1` and `kind: HTTPRoute`",
        ));
    }
    Ok(loaded)
}

/// What every document has.
#[derive(Deserialize)]
struct Header {
    kind: Option<String>,
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IngressDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Meta,
    #[serde(default)]
    spec: Spec,
    #[serde(rename = "status", default)]
    _status: Option<IgnoredAny>,
}

/// ObjectMeta: every field it has, so that a misspelt one is an error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Meta {
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(rename = "labels", default)]
    _labels: Option<IgnoredAny>,
    #[serde(rename = "generateName", default)]
    _generate_name: Option<IgnoredAny>,
    #[serde(rename = "selfLink", default)]
    _self_link: Option<IgnoredAny>,
    #[serde(rename = "uid", default)]
    _uid: Option<IgnoredAny>,
    #[serde(rename = "resourceVersion", default)]
    _resource_version: Option<IgnoredAny>,
    #[serde(rename = "generation", default)]
    _generation: Option<IgnoredAny>,
    #[serde(rename = "creationTimestamp", default)]
    creation_timestamp: Option<String>,
    #[serde(rename = "deletionTimestamp", default)]
    _deletion_timestamp: Option<IgnoredAny>,
    #[serde(rename = "deletionGracePeriodSeconds", default)]
    _deletion_grace_period_seconds: Option<IgnoredAny>,
    #[serde(rename = "ownerReferences", default)]
    _owner_references: Option<IgnoredAny>,
    #[serde(rename = "finalizers", default)]
    _finalizers: Option<IgnoredAny>,
    #[serde(rename = "managedFields", default)]
    _managed_fields: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Spec {
    #[serde(rename = "ingressClassName", default)]
    _ingress_class_name: Option<IgnoredAny>,
    #[serde(default)]
    default_backend: Option<BackendDoc>,
    #[serde(rename = "tls", default)]
    _tls: Option<IgnoredAny>,
    #[serde(default)]
    rules: Vec<RuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    http: Option<HttpDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpDoc {
    paths: Vec<PathDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PathDoc {
    #[serde(default)]
    path: Option<String>,
    path_type: PathTypeDoc,
    backend: BackendDoc,
}

#[derive(Deserialize, Clone, Copy)]
enum PathTypeDoc {
    Exact,
    Prefix,
    ImplementationSpecific,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendDoc {
    #[serde(default)]
    service: Option<ServiceBackendDoc>,
    #[serde(default)]
    resource: Option<ResourceDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceBackendDoc {
    name: String,
    port: PortDoc,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PortDoc {
    #[serde(default)]
    number: Option<u16>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ResourceDoc {
    #[serde(rename = "apiGroup", default)]
    _api_group: Option<IgnoredAny>,
    kind: String,
    name: String,
}

fn yaml_error(file: &str, e: &serde_yaml_ng::Error, hint: &str) -> InputError {
    let message = e.to_string();
    // serde_yaml_ng appends " at line L column C"; the position goes in front.
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_string();
    match e.location() {
        Some(l) => InputError::at(file, (l.line(), l.column()), message, hint),
        None => InputError::whole(file, message, hint),
    }
}

fn read_file(file: &str, text: &str, loaded: &mut Loaded) -> Result<(), InputError> {
    let mut headers = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let header = Option::<Header>::deserialize(doc)
            .map_err(|e| yaml_error(file, &e, "each document is a Kubernetes object: a mapping with `apiVersion`, `kind` and `metadata`"))?;
        headers.push(header);
    }
    for (n, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let Some(header) = &headers[n] else { continue };
        let positions = || Positions::of_document(text, n);
        let kind = header.kind.as_deref().unwrap_or_default();
        if kind == "HTTPRoute" {
            read_route(file, text, n, header, doc, loaded)?;
            continue;
        }
        if kind != "Ingress" {
            if suggest(kind, &["Ingress", "HTTPRoute"]).is_some() && !kind.is_empty() {
                return Err(InputError::at(
                    file,
                    positions().find(&path!["kind"]),
                    format!("kind: unknown kind `{kind}`"),
                    format!(
                        "did you mean `{}`? (kinds are case-sensitive)",
                        suggest(kind, &["Ingress", "HTTPRoute"]).unwrap_or("Ingress")
                    ),
                ));
            }
            *loaded.skipped.entry(kind.to_string()).or_default() += 1;
            continue;
        }
        if header.api_version.as_deref() != Some("networking.k8s.io/v1") {
            return Err(InputError::at(
                file,
                positions().find(&path!["apiVersion"]),
                format!(
                    "apiVersion `{}` is not served for kind Ingress",
                    header.api_version.as_deref().unwrap_or("")
                ),
                "Ingress is `networking.k8s.io/v1` since Kubernetes 1.19 (v1beta1 was removed in 1.22; its `serviceName`/`servicePort` became `service: {name, port: {number}}`)",
            ));
        }
        let object = IngressDoc::deserialize(doc).map_err(|e| {
            yaml_error(
                file,
                &e,
                "see `kubectl explain ingress.spec` for the fields of an Ingress",
            )
        })?;
        loaded.sources.push((file.to_string(), n));
        let ingress = convert(object, |field: Vec<Seg>, message: String, hint: &str| {
            InputError::at(file, positions().find(&field), message, hint)
        })?;
        loaded.ingresses.push(ingress);
    }
    Ok(())
}

/// `gateway.networking.k8s.io/v1` HTTPRoute: what routing reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteDoc {
    #[serde(rename = "apiVersion")]
    _api_version: IgnoredAny,
    #[serde(rename = "kind")]
    _kind: IgnoredAny,
    metadata: Meta,
    spec: RouteSpecDoc,
    #[serde(rename = "status", default)]
    _status: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteSpecDoc {
    #[serde(rename = "parentRefs", default)]
    _parent_refs: Option<IgnoredAny>,
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    rules: Vec<RouteRuleDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteRuleDoc {
    #[serde(rename = "name", default)]
    _name: Option<IgnoredAny>,
    #[serde(default)]
    matches: Vec<RouteMatchDoc>,
    #[serde(default)]
    backend_refs: Vec<BackendRefDoc>,
    #[serde(rename = "filters", default)]
    _filters: Option<IgnoredAny>,
    #[serde(rename = "timeouts", default)]
    _timeouts: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteMatchDoc {
    #[serde(default)]
    path: Option<RoutePathDoc>,
    #[serde(default)]
    headers: Option<IgnoredAny>,
    #[serde(default)]
    query_params: Option<IgnoredAny>,
    #[serde(default)]
    method: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutePathDoc {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BackendRefDoc {
    name: String,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    weight: Option<u32>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(rename = "group", default)]
    _group: Option<IgnoredAny>,
    #[serde(rename = "namespace", default)]
    _namespace: Option<IgnoredAny>,
    #[serde(rename = "filters", default)]
    _filters: Option<IgnoredAny>,
}

/// Reads one HTTPRoute document (`n` of `file`).
fn read_route(
    file: &str,
    text: &str,
    n: usize,
    header: &Header,
    doc: serde_yaml_ng::Deserializer<'_>,
    loaded: &mut Loaded,
) -> Result<(), InputError> {
    let positions = || Positions::of_document(text, n);
    let api = header.api_version.as_deref().unwrap_or("");
    if api != "gateway.networking.k8s.io/v1" && api != "gateway.networking.k8s.io/v1beta1" {
        return Err(InputError::at(
            file,
            positions().find(&path!["apiVersion"]),
            format!("apiVersion `{api}` is not served for kind HTTPRoute"),
            "HTTPRoute is `gateway.networking.k8s.io/v1` (Gateway API v1.0 and later)",
        ));
    }
    let d = RouteDoc::deserialize(doc).map_err(|e| {
        yaml_error(
            file,
            &e,
            "see the Gateway API reference for the fields of an HTTPRoute",
        )
    })?;
    let err = |p: Vec<Seg>, message: String, hint: &str| {
        InputError::at(file, positions().find(&p), message, hint)
    };
    let mut rules = Vec::new();
    for (r, rule) in d.spec.rules.into_iter().enumerate() {
        let mut matches = Vec::new();
        for (m, mt) in rule.matches.into_iter().enumerate() {
            let at = path!["spec", "rules", r, "matches", m].to_vec();
            if mt.headers.is_some() || mt.query_params.is_some() || mt.method.is_some() {
                return Err(err(
                    at,
                    "header, query and method matches are not modelled".into(),
                    "the model routes by path: remove them from the copy it reads",
                ));
            }
            let (kind, value) = match mt.path {
                Some(p) => (p.kind, p.value),
                None => (None, None),
            };
            let value = value.unwrap_or_else(|| "/".into());
            if !value.starts_with('/') || value.contains("//") {
                let mut f = at.clone();
                f.extend([Seg::from("path"), Seg::from("value")]);
                return Err(err(
                    f,
                    format!(
                        "path `{value}` must start with `/` and hold no `//` (the API rejects it)"
                    ),
                    "e.g. value: /api",
                ));
            }
            matches.push(HttpRouteMatch::path(
                match kind.as_deref().unwrap_or("PathPrefix") {
                    "PathPrefix" => HttpPathMatch::PathPrefix(value),
                    "Exact" => HttpPathMatch::Exact(value),
                    other => {
                        let mut f = at.clone();
                        f.extend([Seg::from("path"), Seg::from("type")]);
                        return Err(err(
                            f,
                            format!("path type `{other}` is not modelled"),
                            "PathPrefix or Exact (RegularExpression is implementation-specific)",
                        ));
                    }
                },
            ));
        }
        let mut backends = Vec::new();
        for (b, br) in rule.backend_refs.into_iter().enumerate() {
            let at = path!["spec", "rules", r, "backendRefs", b].to_vec();
            if br.kind.as_deref().is_some_and(|k| k != "Service") {
                return Err(err(
                    at,
                    format!(
                        "backendRef kind `{}` is not modelled",
                        br.kind.unwrap_or_default()
                    ),
                    "a Service backend: omit kind, or kind: Service",
                ));
            }
            let Some(port) = br.port else {
                return Err(err(
                    at,
                    "a Service backendRef needs `port`".into(),
                    "e.g. {name: api, port: 8080}",
                ));
            };
            backends.push(HttpBackendRef {
                backend: Backend::Service {
                    name: br.name,
                    port: port.to_string(),
                },
                weight: br.weight.unwrap_or(1),
            });
        }
        rules.push(HttpRouteRule { matches, backends });
    }
    loaded
        .route_places
        .push(format!("{file}:{}", positions().find(&path!["kind"]).0));
    loaded.routes.push(HttpRoute {
        namespace: d.metadata.namespace.unwrap_or_else(|| "default".into()),
        name: d.metadata.name,
        created: d.metadata.creation_timestamp,
        hostnames: d.spec.hostnames,
        rules,
    });
    Ok(())
}

/// An Ingress object as the router reads it, validated as the API server
/// validates what routing depends on.
fn convert(
    doc: IngressDoc,
    err: impl Fn(Vec<Seg>, String, &str) -> InputError,
) -> Result<Ingress, InputError> {
    let backend = |b: BackendDoc, at: Vec<Seg>| -> Result<Backend, InputError> {
        match (b.service, b.resource) {
            (Some(s), None) => {
                let port = match (s.port.number, s.port.name) {
                    (Some(n), None) if n > 0 => n.to_string(),
                    (None, Some(name)) => name,
                    _ => {
                        let mut p = at.clone();
                        p.extend([Seg::from("service"), Seg::from("port")]);
                        return Err(err(
                            p,
                            "backend.service.port: exactly one of `number` (1-65535) or `name` is required".into(),
                            "e.g. `port: {number: 80}` or `port: {name: http}`",
                        ));
                    }
                };
                Ok(Backend::Service { name: s.name, port })
            }
            (None, Some(r)) => Ok(Backend::Resource {
                reference: format!("{}/{}", r.kind, r.name),
            }),
            _ => Err(err(
                at,
                "backend: exactly one of `service` or `resource` is required".into(),
                "e.g. `backend: {service: {name: api, port: {number: 80}}}`",
            )),
        }
    };
    let default_backend = match doc.spec.default_backend {
        Some(b) => Some(backend(b, path!["spec", "defaultBackend"].to_vec())?),
        None => None,
    };
    let mut rules = Vec::new();
    for (r, rule) in doc.spec.rules.into_iter().enumerate() {
        if let Some(host) = &rule.host {
            let wildcard_ok = host.starts_with("*.") && !host[2..].contains('*');
            let bad = host.contains('*') && !wildcard_ok;
            if bad || host.is_empty() || host.contains(':') || host.contains('/') {
                return Err(err(
                    path!["spec", "rules", r, "host"].to_vec(),
                    format!("host `{host}` is not a DNS name or a wildcard `*.domain`"),
                    "a host has no port or path; a wildcard is `*.` then a domain, e.g. `*.example.com`",
                ));
            }
        }
        let mut paths = Vec::new();
        for (p, path) in rule
            .http
            .map(|h| h.paths)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let at = path!["spec", "rules", r, "http", "paths", p].to_vec();
            let path_type = match path.path_type {
                PathTypeDoc::Exact => PathType::Exact,
                PathTypeDoc::Prefix => PathType::Prefix,
                PathTypeDoc::ImplementationSpecific => PathType::ImplementationSpecific,
            };
            let value = path.path.unwrap_or_else(|| "/".into());
            if !value.starts_with('/') {
                let mut f = at.clone();
                f.push(Seg::from("path"));
                return Err(err(
                    f,
                    format!("path `{value}` must be an absolute path"),
                    "paths start with `/`, e.g. `/api`",
                ));
            }
            let mut b = at.clone();
            b.push(Seg::from("backend"));
            paths.push(IngressPath {
                path: value,
                path_type,
                backend: backend(path.backend, b)?,
            });
        }
        rules.push(IngressRule {
            host: rule.host,
            paths,
        });
    }
    if rules.is_empty() && default_backend.is_none() {
        return Err(err(
            path!["spec"].to_vec(),
            "an Ingress needs `spec.rules` or `spec.defaultBackend`".into(),
            "add rules with paths, or a defaultBackend",
        ));
    }
    let annotations = &doc.metadata.annotations;
    Ok(Ingress {
        namespace: doc
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: doc.metadata.name.clone(),
        use_regex: annotations.get(USE_REGEX).is_some_and(|v| v == "true"),
        rewrite_target: annotations.contains_key(REWRITE_TARGET),
        default_backend,
        rules,
    })
}

/// Builds the controller's tables, locating a path it cannot serve.
pub fn router(loaded: &Loaded, controller: Controller) -> Result<Router, InputError> {
    Router::new(&loaded.ingresses, controller)
        .map_err(|e| loaded.error_at(e.origin, &["path"], e.message, e.hint))
}

/// A request to route: `HOST/PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The `Host` header.
    pub host: String,
    /// The path, without a query.
    pub path: String,
}

impl std::str::FromStr for Request {
    type Err = String;
    fn from_str(s: &str) -> Result<Request, String> {
        let (host, path) = match s.find('/') {
            Some(at) => (&s[..at], &s[at..]),
            None => (s, "/"),
        };
        if host.is_empty() {
            return Err(format!(
                "`{s}` has no host; write HOST/PATH, e.g. shop.example.com/api-docs"
            ));
        }
        let path = path.split(['?', '#']).next().unwrap_or("/");
        Ok(Request {
            host: host.to_ascii_lowercase(),
            path: path.to_string(),
        })
    }
}

/// One routed request, as printed in JSON.
#[derive(Serialize)]
pub struct Routed {
    host: String,
    path: String,
    /// `service:port`, `Kind/name`, or `null` for the controller's 404.
    backend: Option<String>,
    /// The location that matched, as the controller writes it.
    location: Option<String>,
    /// `ns/name` of the Ingress whose path (or defaultBackend) answered.
    ingress: Option<String>,
    /// Where that path is.
    at: Option<String>,
    /// When the input holds HTTPRoutes: the route by the Gateway API's rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway: Option<GatewayRouted>,
    /// Whether the input holds Ingresses (else only `gateway` means anything).
    #[serde(skip)]
    by_ingress: bool,
}

/// One request routed by the HTTPRoutes.
#[derive(Serialize)]
pub struct GatewayRouted {
    /// `service:port` (with `weight N` when a rule has several), or `null`
    /// for the 404.
    backend: Option<String>,
    /// What matched (`PathPrefix /api`).
    matched: Option<String>,
    /// `ns/name` of the HTTPRoute and its rule index.
    route: Option<String>,
    /// Where the HTTPRoute is.
    at: Option<String>,
}

fn gateway_routed(loaded: &Loaded, gw: &GatewayRouter, req: &Request) -> GatewayRouted {
    match gw.route_path(&req.host, &req.path) {
        None => GatewayRouted {
            backend: None,
            matched: None,
            route: None,
            at: None,
        },
        Some(m) => {
            let backend = match m.backends {
                [] => "no backendRefs (500)".to_string(),
                [one] => one.backend.to_string(),
                many => many
                    .iter()
                    .map(|b| format!("{} weight {}", b.backend, b.weight))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            let r = &loaded.routes[m.route];
            GatewayRouted {
                backend: Some(backend),
                matched: Some(m.matched.shown()),
                route: Some(format!("{}/{} rule {}", r.namespace, r.name, m.rule)),
                at: Some(loaded.route_places[m.route].clone()),
            }
        }
    }
}

/// The HTTPRoutes' router, when the input holds any.
pub fn gateway_router(loaded: &Loaded) -> Option<GatewayRouter> {
    (!loaded.routes.is_empty()).then(|| GatewayRouter::new(loaded.routes.clone()))
}

fn routed(loaded: &Loaded, req: &Request, route: &Route<'_>, gw: Option<&GatewayRouter>) -> Routed {
    Routed {
        gateway: gw.map(|gw| gateway_routed(loaded, gw, req)),
        by_ingress: !loaded.ingresses.is_empty(),
        host: req.host.clone(),
        path: req.path.clone(),
        backend: route.backend.map(|b| b.to_string()),
        location: route.location.map(str::to_string),
        ingress: route
            .origin
            .map(|o| o.ingress)
            .or(route.default_from)
            .map(|i| loaded.name(i)),
        at: route.origin.map(|o| loaded.place(o)),
    }
}

/// Routes each request (by the Ingresses, and by the HTTPRoutes if any).
pub fn route_all(loaded: &Loaded, router: &Router, requests: &[Request]) -> Vec<Routed> {
    let gw = gateway_router(loaded);
    requests
        .iter()
        .map(|r| routed(loaded, r, &router.route(&r.host, &r.path), gw.as_ref()))
        .collect()
}

/// The routes as text, one line each.
pub fn routes_text(routes: &[Routed]) -> String {
    let mut out = String::new();
    for r in routes {
        let to = r
            .backend
            .as_deref()
            .unwrap_or("the controller's default backend (404)");
        if r.by_ingress || r.gateway.is_none() {
            let _ = write!(out, "{}{} -> {to}", r.host, r.path);
            match (&r.location, &r.ingress, &r.at) {
                (Some(loc), Some(ing), Some(at)) => {
                    let _ = write!(out, "  (location `{loc}` of {ing}, {at})");
                }
                (None, Some(ing), _) => {
                    let _ = write!(out, "  (no path matches: defaultBackend of {ing})");
                }
                _ => out.push_str("  (no path matches)"),
            }
            out.push('\n');
        }
        if let Some(g) = &r.gateway {
            let to = g
                .backend
                .as_deref()
                .unwrap_or("404 (no HTTPRoute rule matches)");
            let _ = write!(out, "{}{} -> {to} [HTTPRoute]", r.host, r.path);
            if let (Some(m), Some(route), Some(at)) = (&g.matched, &g.route, &g.at) {
                let _ = write!(out, "  ({m} of {route}, {at})");
            }
            out.push('\n');
        }
    }
    out
}

/// The routing table: each host's locations in the order tried, then the
/// HTTPRoutes' rules.
pub fn table_text(loaded: &Loaded, router: &Router) -> String {
    let mut out = String::new();
    for (i, r) in loaded.routes.iter().enumerate() {
        let hosts = if r.hostnames.is_empty() {
            "(any host)".to_string()
        } else {
            r.hostnames.join(", ")
        };
        let _ = writeln!(
            out,
            "HTTPRoute {}/{} ({}) for {hosts}  [Gateway API: Exact, then the longest PathPrefix, then the oldest route, then namespace/name]",
            r.namespace, r.name, loaded.route_places[i]
        );
        for (n, rule) in r.rules.iter().enumerate() {
            let matches: Vec<String> = if rule.matches.is_empty() {
                vec!["PathPrefix / (no matches)".into()]
            } else {
                rule.matches.iter().map(HttpRouteMatch::shown).collect()
            };
            let backends: Vec<String> = rule
                .backends
                .iter()
                .map(|b| b.backend.to_string())
                .collect();
            let _ = writeln!(
                out,
                "  rule {n}: {:<26} -> {}",
                matches.join(" | "),
                backends.join(", ")
            );
        }
    }
    for server in router.servers() {
        let host = server.host.as_deref().unwrap_or("(any host)");
        let _ = write!(out, "{host}");
        if let Some(i) = server.regex_because {
            let _ = write!(
                out,
                "  [every path a case-insensitive regex prefix: {} sets use-regex or rewrite-target]",
                loaded.name(i)
            );
        }
        out.push('\n');
        for loc in &server.locations {
            let _ = writeln!(
                out,
                "  {:<28} -> {:<20} {} ({})",
                loc.shown,
                loc.backend.to_string(),
                loaded.name(loc.origin.ingress),
                loaded.place(loc.origin)
            );
        }
    }
    out
}

/// One expected route: `{host, path, backend}`, `backend: default` for the
/// controller's own 404.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    host: String,
    path: String,
    backend: String,
}

/// Reads `--expect`'s YAML list and checks it: the report, and whether
/// every expectation holds.
pub fn check_expectations(
    file: &str,
    text: &str,
    loaded: &Loaded,
    router: &Router,
) -> Result<(String, bool), InputError> {
    let list: Vec<Expectation> = serde_yaml_ng::from_str(text).map_err(|e| {
        yaml_error(file, &e, "a YAML list of `{host, path, backend}`; backend `service:port`, `Kind/name`, or `default` for the controller's 404")
    })?;
    let positions = Positions::of(text);
    let mut report = String::new();
    let mut held = 0;
    let gw = gateway_router(loaded);
    for (i, e) in list.iter().enumerate() {
        let req: Request = format!("{}{}", e.host, e.path)
            .parse()
            .map_err(|m: String| {
                InputError::at(
                    file,
                    positions.find(&path![i]),
                    m,
                    "host without a scheme, path starting with `/`",
                )
            })?;
        if !req.path.starts_with('/') {
            return Err(InputError::at(
                file,
                positions.find(&path![i, "path"]),
                format!("path `{}` must start with `/`", e.path),
                "e.g. `path: /api-docs`",
            ));
        }
        let got = routed(
            loaded,
            &req,
            &router.route(&req.host, &req.path),
            gw.as_ref(),
        );
        // HTTPRoutes alone: their route is the one checked.
        let (got_backend, by) = match (&got.gateway, loaded.ingresses.is_empty()) {
            (Some(g), true) => (
                g.backend.clone().unwrap_or_else(|| "default".into()),
                g.matched
                    .as_ref()
                    .map(|m| format!(" ({m} [HTTPRoute])"))
                    .unwrap_or_default(),
            ),
            _ => (
                got.backend.clone().unwrap_or_else(|| "default".into()),
                got.location
                    .as_ref()
                    .map(|l| format!(" (location `{l}`)"))
                    .unwrap_or_default(),
            ),
        };
        if got_backend == e.backend {
            held += 1;
            let _ = writeln!(report, "ok   {}{} -> {got_backend}{by}", req.host, req.path);
        } else {
            let line = positions.find(&path![i]).0;
            let _ = writeln!(
                report,
                "FAIL {}{}: expected {}, routed to {got_backend}{by} ({file}:{line})",
                req.host, req.path, e.backend
            );
        }
    }
    let _ = writeln!(report, "{held} of {} expected routes hold", list.len());
    Ok((report, held == list.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<Loaded, InputError> {
        let mut loaded = Loaded::default();
        read_file("in.yaml", text, &mut loaded)?;
        loaded.texts.insert("in.yaml".into(), text.into());
        Ok(loaded)
    }

    const SHOP: &str = "\
apiVersion: v1
kind: Service
metadata: {name: api}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  namespace: shop
spec:
  ingressClassName: nginx
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /api
            pathType: Prefix
            backend: {service: {name: api, port: {number: 8080}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: docs
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/use-regex: \"true\"
spec:
  rules:
    - host: shop.example.com
      http:
        paths:
          - path: /guides/.*
            pathType: ImplementationSpecific
            backend: {service: {name: docs, port: {name: http}}}
";

    #[test]
    fn reads_ingresses_skips_other_kinds_and_routes_as_ingress_nginx() {
        let loaded = load_text(SHOP).unwrap();
        assert_eq!(loaded.ingresses.len(), 2);
        assert_eq!(loaded.skipped.get("Service"), Some(&1));
        assert!(loaded.ingresses[1].use_regex);
        let nginx = router(&loaded, Controller::IngressNginx).unwrap();
        let req: Request = "shop.example.com/api-docs?x=1".parse().unwrap();
        let r = route_all(&loaded, &nginx, std::slice::from_ref(&req));
        assert_eq!(r[0].backend.as_deref(), Some("api:8080"));
        assert_eq!(r[0].at.as_deref(), Some("in.yaml:16"));
        let text = routes_text(&r);
        assert!(text.contains("shop.example.com/api-docs -> api:8080  (location `~* \"^/api\"` of shop/api, in.yaml:16)"), "{text}");
        let spec = router(&loaded, Controller::Conformant).unwrap();
        let r = route_all(&loaded, &spec, &[req]);
        assert_eq!(r[0].backend, None);
        let table = table_text(&loaded, &nginx);
        assert!(table.contains("shop/docs sets use-regex"), "{table}");
    }

    #[test]
    fn expectations_pass_fail_and_name_the_differing_route() {
        let loaded = load_text(SHOP).unwrap();
        let nginx = router(&loaded, Controller::IngressNginx).unwrap();
        let expect = "- {host: shop.example.com, path: /api/v1, backend: \"api:8080\"}\n- {host: shop.example.com, path: /api-docs, backend: default}\n";
        let (report, ok) = check_expectations("e.yaml", expect, &loaded, &nginx).unwrap();
        assert!(!ok);
        assert!(report.contains("ok   shop.example.com/api/v1 -> api:8080 (location `~* \"^/api/\"`)\nFAIL shop.example.com/api-docs: expected default, routed to api:8080 (location `~* \"^/api\"`) (e.yaml:2)\n"), "{report}");
        assert!(report.contains("1 of 2 expected routes hold"), "{report}");
        let spec = router(&loaded, Controller::Conformant).unwrap();
        let (_, ok) = check_expectations("e.yaml", expect, &loaded, &spec).unwrap();
        assert!(ok);
        let bad = check_expectations(
            "e.yaml",
            "- {host: h, path: /, backnd: x}\n",
            &loaded,
            &spec,
        );
        assert!(bad.unwrap_err().to_string().starts_with("e.yaml:1:"));
    }

    #[test]
    fn errors_are_located_and_say_what_to_do() {
        let typo = SHOP.replace("pathType: Prefix", "pathTyp: Prefix");
        let e = load_text(&typo).err().unwrap().to_string();
        assert!(e.starts_with("in.yaml:17:"), "{e}");
        assert!(e.contains("pathTyp"), "{e}");
        let relative = SHOP.replace("path: /api\n", "path: api\n");
        let e = load_text(&relative).err().unwrap().to_string();
        assert!(
            e.starts_with("in.yaml:16:13: error: path `api` must be an absolute path"),
            "{e}"
        );
        let kind = SHOP.replace(
            "kind: Ingress\nmetadata:\n  name: api",
            "kind: Ingres\nmetadata:\n  name: api",
        );
        let e = load_text(&kind).err().unwrap().to_string();
        assert!(
            e.starts_with("in.yaml:6:1: error: kind: unknown kind `Ingres`"),
            "{e}"
        );
        let beta = SHOP.replacen("networking.k8s.io/v1", "networking.k8s.io/v1beta1", 1);
        let e = load_text(&beta).err().unwrap().to_string();
        assert!(
            e.starts_with("in.yaml:5:1:") && e.contains("v1beta1"),
            "{e}"
        );
        let no_port = SHOP.replace("port: {number: 8080}", "port: {}");
        let e = load_text(&no_port).err().unwrap().to_string();
        assert!(
            e.starts_with("in.yaml:18:") && e.contains("exactly one of `number`"),
            "{e}"
        );
        let bad_regex = SHOP.replace("/guides/.*", "/guides/(");
        let loaded = load_text(&bad_regex).unwrap();
        let e = router(&loaded, Controller::IngressNginx)
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.starts_with("in.yaml:32:13: error: path `/guides/(` is not a valid regular expression, and ingress-nginx reads every path of this host as one: unclosed group\n"),
            "{e}"
        );
        assert!(router(&loaded, Controller::Conformant).is_ok());
    }

    #[test]
    fn requests_need_a_host_and_lose_their_query() {
        assert_eq!(
            "Shop.example.com/a?b#c".parse::<Request>().unwrap(),
            Request {
                host: "shop.example.com".into(),
                path: "/a".into()
            }
        );
        assert_eq!("h".parse::<Request>().unwrap().path, "/");
        assert!("/a".parse::<Request>().is_err());
    }

    const ROUTES: &str = "\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{name: gw}]
  hostnames: [shop.example.com]
  rules:
    - matches: [{path: {type: PathPrefix, value: /api}}]
      backendRefs: [{name: api, port: 8080}]
    - matches: [{path: {type: Exact, value: /api-docs}}]
      backendRefs: [{name: docs, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: web, namespace: shop}
spec:
  hostnames: [shop.example.com]
  rules:
    - backendRefs: [{name: web, port: 80, weight: 90}, {name: web-canary, port: 80, weight: 10}]
";

    #[test]
    fn httproutes_are_routed_by_the_gateway_api_rules() {
        let loaded = load_text(ROUTES).unwrap();
        assert!(loaded.ingresses.is_empty());
        assert_eq!(loaded.routes.len(), 2);
        let router = router(&loaded, Controller::IngressNginx).unwrap();
        let reqs: Vec<Request> = [
            "shop.example.com/api-docs",
            "shop.example.com/api/v1",
            "shop.example.com/apiary",
            "other.example.com/",
        ]
        .iter()
        .map(|r| r.parse().unwrap())
        .collect();
        let text = routes_text(&route_all(&loaded, &router, &reqs));
        assert!(text.contains("shop.example.com/api-docs -> docs:80 [HTTPRoute]  (Exact /api-docs of shop/api rule 1, in.yaml:2)"), "{text}");
        assert!(
            text.contains("shop.example.com/api/v1 -> api:8080 [HTTPRoute]"),
            "{text}"
        );
        assert!(
            text.contains(
                "shop.example.com/apiary -> web:80 weight 90, web-canary:80 weight 10 [HTTPRoute]"
            ),
            "{text}"
        );
        assert!(
            text.contains("other.example.com/ -> 404 (no HTTPRoute rule matches) [HTTPRoute]"),
            "{text}"
        );
        assert!(table_text(&loaded, &router).contains("rule 1: Exact /api-docs"));
        let bad = ROUTES.replace("type: Exact", "type: RegularExpression");
        let e = load_text(&bad).err().unwrap();
        assert!(
            e.message.contains("`RegularExpression` is not modelled"),
            "{e}"
        );
        assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
        let bad = ROUTES.replace(
            "[{path: {type: PathPrefix, value: /api}}]",
            "[{path: {value: /api}, method: GET}]",
        );
        let e = load_text(&bad).err().unwrap();
        assert!(e.message.contains("not modelled"), "{e}");
    }
}
