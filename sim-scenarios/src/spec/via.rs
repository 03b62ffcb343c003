//! Requests by path through an ingress controller: a traffic source's
//! `via` and `requests`.
//!
//! # Scope
//! Reads the Ingress manifests `via.ingress` names (a file or a directory,
//! relative to the scenario file; bundled scenarios read their bundled
//! copies), builds the routing tables of `via.controller`
//! (`sim_models::ingress`), or, when the manifests hold Gateway API
//! HTTPRoutes and no Ingress, those of the HTTPRoutes by the API's own rules
//! (`sim_models::ingress::httproute`), routes each distinct (host, path) of
//! `requests` once, and resolves the backend Service it reaches to a
//! workload of the run ([`service_target`], the one place a backend
//! Service's name becomes a target). The run then draws each request's
//! path by share (`sim_models::cluster::IngressTraffic`).
//!
//! # Validation
//! Every error names the field (`file:line:column`) with a hint: a path
//! without a leading `/`, a share not in (0, 1] or shares not summing to 1,
//! a backend Service that is no workload of the run (naming the Ingress
//! path that sends it there), a `resource` backend, an unknown controller,
//! manifests holding both Ingresses and HTTPRoutes, an HTTPRoute rule with
//! other than one backendRef;
//! errors inside the manifests are located in their own files.

use super::manifests::normal;
use super::{Validator, R};
use crate::bundled;
use crate::envelope::Locate;
use crate::error::InputError;
use crate::ingress::{self, Request};
use crate::locate::Seg;
use crate::path;
use schemars::JsonSchema;
use serde::Deserialize;
use sim_models::cluster::{IngressTraffic, RequestPath};
use sim_models::did_you_mean::suggest;
use sim_models::ingress::{Backend, Controller};
use sim_models::workload::DeploymentSpec;

/// `via`: the ingress controller users' requests go through.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ViaFile {
    /// Ingress manifests (`networking.k8s.io/v1`): a file or a directory of
    /// `*.yaml`, or a list of them, relative to the scenario file (in list
    /// order: the first Ingress wins a tie, as the oldest would). Or
    /// Gateway API HTTPRoute manifests (`gateway.networking.k8s.io/v1`, no
    /// Ingress among them): routed by the API's rules.
    pub ingress: IngressFiles,
    /// `ingress-nginx` (the nginx configuration it writes, regex mode
    /// included) or `conformant` (the Ingress API's stated semantics).
    pub controller: String,
}

/// `ingress: PATH` or `ingress: [PATH, ...]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum IngressFiles {
    /// One file or directory.
    One(String),
    /// Several, in order.
    Many(Vec<String>),
}

/// One (host, path) users ask for.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    /// The `Host` header, e.g. `shop.example.com`.
    pub host: String,
    /// The path, starting with `/` (a query is ignored).
    pub path: String,
    /// Share of the source's requests, in (0, 1]; the shares sum to 1.
    pub share: f64,
}

/// The workload behind Service `name` of `namespace`: today a Service is
/// the Deployment of the same name and namespace. The one place a backend
/// Service's name becomes a target of the run.
pub fn service_target(
    name: &str,
    namespace: &str,
    deployments: &[DeploymentSpec],
) -> Option<usize> {
    deployments
        .iter()
        .position(|d| d.name == name && d.namespace == namespace)
}

impl Validator<'_> {
    /// Reads the manifests at `rel` (relative to the scenario file, or a
    /// bundled copy), as `(name, text)`.
    fn ingress_files(&self, at: &[Seg], rel: &str) -> R<Vec<(String, String)>> {
        let dir = std::path::Path::new(self.file)
            .parent()
            .unwrap_or(std::path::Path::new("."));
        let path = dir.join(rel);
        if path.exists() {
            return sim_models::netpol::manifest::read_files(&path).map_err(|e| InputError {
                file: e.file,
                at: (e.line > 0).then_some((e.line, e.column)),
                message: e.message,
                hint: e.hint,
            });
        }
        let mut files = bundled::manifest_files(&normal(&path));
        if files.is_empty() && bundled::BUNDLED.iter().any(|(_, t)| *t == self.text) {
            files = bundled::manifest_files(&normal(&std::path::Path::new("scenarios").join(rel)));
        }
        if files.is_empty() {
            return Err(self.err(
                at,
                format!("cannot read {}: no such file or directory", path.display()),
                "paths are relative to the scenario file: an Ingress manifest, or a directory of *.yaml/*.yml manifests",
            ));
        }
        Ok(files)
    }

    /// A source's `via` and `requests` (written at `p`): each path routed
    /// once, its backend resolved to a workload.
    pub(super) fn via(
        &self,
        p: &[Seg],
        via: &ViaFile,
        requests: &[RequestFile],
        deployments: &[DeploymentSpec],
    ) -> R<IngressTraffic> {
        let vp = [p, &path!["via"]].concat();
        let Some(&(_, controller)) = Controller::ALL.iter().find(|(n, _)| *n == via.controller)
        else {
            let names: Vec<&str> = Controller::ALL.iter().map(|(n, _)| *n).collect();
            let hint = match suggest(&via.controller, &names) {
                Some(b) => format!("did you mean `{b}`? controllers: ingress-nginx, conformant"),
                None => "controllers: ingress-nginx, conformant".into(),
            };
            return Err(self.err(
                &[&vp[..], &path!["controller"]].concat(),
                format!(
                    "`{}` is not an ingress controller the model knows",
                    via.controller
                ),
                hint,
            ));
        };
        let ip = [&vp[..], &path!["ingress"]].concat();
        let (files, shown) = match &via.ingress {
            IngressFiles::One(rel) => (self.ingress_files(&ip, rel)?, rel.clone()),
            IngressFiles::Many(rels) => {
                let mut files = Vec::new();
                for (i, rel) in rels.iter().enumerate() {
                    files.extend(self.ingress_files(&[&ip[..], &path![i]].concat(), rel)?);
                }
                (files, rels.join(", "))
            }
        };
        let loaded = ingress::load_texts(&shown, files)?;
        if !loaded.ingresses.is_empty() && !loaded.routes.is_empty() {
            return Err(self.err(
                &ip,
                "these manifests hold both Ingresses and HTTPRoutes: which of them users go through is not given",
                "list only the Ingress manifests, or only the HTTPRoute manifests, for this source (`knsim ingress PATH` compares both)",
            ));
        }
        let router = ingress::router(&loaded, controller)?;
        // HTTPRoutes alone: routed by the Gateway API's rules, whatever
        // controller is named.
        let gateway = ingress::gateway_router(&loaded);
        if requests.is_empty() {
            return Err(self.err(
                &[p, &path!["requests"]].concat(),
                "`via` needs the hosts and paths users ask for",
                "add requests: [{host: shop.example.com, path: /, share: 1}]",
            ));
        }
        let mut paths = Vec::with_capacity(requests.len());
        for (i, r) in requests.iter().enumerate() {
            let rp = [p, &path!["requests", i]].concat();
            if !r.path.starts_with('/') {
                return Err(self.err(
                    &[&rp[..], &path!["path"]].concat(),
                    format!("path `{}` does not start with `/`", r.path),
                    "write the path as the request line has it, e.g. path: /api-docs",
                ));
            }
            let req: Request = format!("{}{}", r.host, r.path)
                .parse()
                .map_err(|m: String| {
                    self.err(
                        &[&rp[..], &path!["host"]].concat(),
                        m,
                        "a host name without a scheme or port, e.g. shop.example.com",
                    )
                })?;
            if paths
                .iter()
                .any(|q: &RequestPath| q.host == req.host && q.path == req.path)
            {
                return Err(self.err(
                    &rp,
                    format!("{}{} is listed twice", req.host, req.path),
                    "give each host and path one entry with its whole share",
                ));
            }
            // The backend, the namespace its Service is in, and how it was
            // reached (the Ingresses, or the HTTPRoutes when the manifests
            // hold only those).
            let (hit, ns, by, because): (Option<&Backend>, &str, String, String) = match &gateway {
                Some(gw) => match gw.route_path(&req.host, &req.path) {
                    None => (
                        None,
                        "default",
                        String::new(),
                        "no HTTPRoute rule matches (404)".into(),
                    ),
                    Some(m) => {
                        let r = &loaded.routes[m.route];
                        let by = format!(
                            "{} of HTTPRoute {}/{} rule {} ({})",
                            m.matched.shown(),
                            r.namespace,
                            r.name,
                            m.rule,
                            loaded.route_place(m.route)
                        );
                        let backend = match m.backends {
                            [one] => &one.backend,
                            other => {
                                return Err(self.err(
                                        &rp,
                                        format!(
                                            "{}{} is routed by {by} to {} backendRefs; the cluster run models one",
                                            req.host,
                                            req.path,
                                            other.len()
                                        ),
                                        "give the rule one backendRef in the copy the scenario reads (a weighted split is not modelled in the run)",
                                    ));
                            }
                        };
                        (Some(backend), r.namespace.as_str(), format!(" ({by})"), by)
                    }
                },
                None => {
                    let route = router.route(&req.host, &req.path);
                    let from = route.origin.map(|o| o.ingress).or(route.default_from);
                    let ns = from.map_or("default", |i| loaded.ingresses[i].namespace.as_str());
                    let by = match (route.origin, from) {
                        (Some(o), _) => format!(
                            " (location `{}` of {}, {})",
                            route.location.unwrap_or(""),
                            loaded.name(o.ingress),
                            loaded.place(o)
                        ),
                        (None, Some(i)) => format!(" (defaultBackend of {})", loaded.name(i)),
                        _ => String::new(),
                    };
                    let because = match (route.location, route.origin, route.default_from) {
                        (Some(loc), Some(o), _) => format!(
                            "location `{loc}` of {} ({})",
                            loaded.name(o.ingress),
                            loaded.place(o)
                        ),
                        (None, _, Some(i)) => {
                            format!("no path matches: defaultBackend of {}", loaded.name(i))
                        }
                        _ => "no path matches".into(),
                    };
                    (route.backend, ns, by, because)
                }
            };
            let (backend, answered_by) = match hit {
                None => (None, "default backend (404)".to_string()),
                Some(Backend::Resource { reference }) => {
                    return Err(self.err(
                        &rp,
                        format!("{}{} is routed to resource backend `{reference}`, which the cluster run does not model", req.host, req.path),
                        "route it to a Service backend in the copy the scenario reads",
                    ));
                }
                Some(b @ Backend::Service { name, .. }) => {
                    let Some(d) = service_target(name, ns, deployments) else {
                        let names: Vec<&str> =
                            deployments.iter().map(|d| d.name.as_str()).collect();
                        let hint = match suggest(name, &names) {
                            Some(b) => format!("did you mean `{b}`? a backend Service is a workload of the scenario with the same name and namespace"),
                            None => "a backend Service is a workload of the scenario with the same name and namespace: add it to workloads".into(),
                        };
                        return Err(self.err(
                            &rp,
                            format!("{}{} is routed to Service `{ns}/{name}`{by}, which is no workload of this scenario", req.host, req.path),
                            hint,
                        ));
                    };
                    (Some(d), b.to_string())
                }
            };
            paths.push(RequestPath {
                host: req.host,
                path: req.path,
                share: r.share,
                backend,
                answered_by,
                because,
            });
        }
        let label = match &gateway {
            Some(_) => "a Gateway (HTTPRoutes)",
            None => via.controller.as_str(),
        };
        let mut traffic = IngressTraffic::new(label, paths).map_err(|(i, m)| {
            self.err(
                &[p, &path!["requests", i, "share"]].concat(),
                m,
                "each share is in (0, 1] and together they sum to 1, e.g. 0.7, 0.2 and 0.1",
            )
        })?;
        if gateway.is_some() {
            traffic.notes.push(
                "the manifests hold HTTPRoutes: routed by the Gateway API's rules (an Exact path, then the longest PathPrefix matched element by element on `/`, then the oldest route, then namespace/name), whatever controller is named".into(),
            );
        }
        for s in router.servers() {
            if let Some(i) = s.regex_because {
                traffic.notes.push(format!(
                    "{} sets nginx.ingress.kubernetes.io/use-regex or rewrite-target, so ingress-nginx writes every path of {} as a case-insensitive regex prefix (`~* \"^PATH\"`), tried longest first, the first match winning",
                    loaded.name(i),
                    s.host.as_deref().unwrap_or("the rules without a host")
                ));
            }
        }
        Ok(traffic)
    }
}

#[cfg(test)]
mod tests {
    use crate::error::InputError;
    use crate::spec::{parse, Scenario};

    /// A scenario with web and api in namespace shop, users through the
    /// bundled prefix-surprise manifests, `requests` and `extra` as given.
    fn with(requests: &str, extra: &str, expect: &str) -> Result<Scenario, InputError> {
        let text = format!(
            "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\n\
             cluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
             workloads:\n  - {{name: web, namespace: shop, port: 80, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             \x20 - {{name: api, namespace: shop, port: 8080, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             traffic:\n  - name: users\n    via: {{ingress: ../scenarios/ingress_prefix_surprise/manifests, controller: ingress-nginx}}\n\
             \x20   requests:\n{requests}    rate: 10/s\n    timeout: 1s\n{extra}\
             measure:\n  windows: [{{name: w, from: 0s, to: 1m}}]\n{expect}"
        );
        parse("t.yaml", &text)
    }

    const TWO: &str = "      - {host: shop.example.com, path: /api-docs, share: 0.25}\n      - {host: shop.example.com, path: /checkout, share: 0.75}\n";

    #[test]
    fn each_path_is_routed_once_to_a_workload() {
        let s = with(TWO, "", "").unwrap();
        let ing = s.variants[0].config.traffic[0].ingress.clone().unwrap();
        assert_eq!(s.variants[0].config.traffic[0].service, None);
        assert_eq!(
            ing.paths[0].backend,
            Some(1),
            "/api-docs to api in regex mode"
        );
        assert_eq!(ing.paths[0].answered_by, "api:8080");
        assert!(
            ing.paths[0].because.contains("~* \"^/api\""),
            "{}",
            ing.paths[0].because
        );
        assert_eq!(ing.paths[1].backend, Some(0));
        assert_eq!(ing.notes.len(), 1, "{:?}", ing.notes);
        let s = with(
            "      - {host: other.example.com, path: /, share: 1}\n",
            "",
            "",
        )
        .unwrap();
        let ing = s.variants[0].config.traffic[0].ingress.clone().unwrap();
        assert_eq!(ing.paths[0].backend, None, "no rule for the host: the 404");
    }

    #[test]
    fn bad_requests_are_located_errors() {
        let e = with(
            "      - {host: shop.example.com, path: api-docs, share: 1}\n",
            "",
            "",
        )
        .unwrap_err();
        assert!(e.message.contains("does not start with `/`"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(15), "{e}");
        let e = with(
            "      - {host: shop.example.com, path: /a, share: 0.5}\n      - {host: shop.example.com, path: /b, share: 0.4}\n",
            "",
            "",
        )
        .unwrap_err();
        assert!(e.message.contains("sum to 0.9"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(16), "{e}");
        let e = with(
            "      - {host: shop.example.com, path: /a, share: -0.5}\n      - {host: shop.example.com, path: /b, share: 1.5}\n",
            "",
            "",
        )
        .unwrap_err();
        assert!(e.message.contains("not in (0, 1]"), "{e}");
        let e = with(TWO, "    to: web\n", "").unwrap_err();
        assert!(e.message.contains("`to` does not go with `via`"), "{e}");
    }

    #[test]
    fn a_backend_service_that_is_no_workload_is_an_error_naming_the_ingress_path() {
        let text = {
            let t = "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\n\
                    cluster:\n  nodes: {count: 1, zones: [a]}\n  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n\
                    workloads:\n  - {name: web, namespace: shop, port: 80, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}\n\
                    traffic:\n  - name: users\n    via: {ingress: ../scenarios/ingress_prefix_surprise/manifests, controller: ingress-nginx}\n\
                    \x20   requests: [{host: shop.example.com, path: /api/v1, share: 1}]\n    rate: 10/s\n    timeout: 1s\n";
            parse("t.yaml", t).map(|_| ()).unwrap_err()
        };
        assert!(text.message.contains("Service `shop/api`"), "{text}");
        assert!(text.message.contains("api.yaml:"), "{text}");
        assert_eq!(text.at.map(|a| a.0), Some(13), "{text}");
        let e = with(
            TWO,
            "",
            "expect:\n  - {metric: answered_by, service: users, window: w, path: /api-docs, backend: wbe, above: 0.5}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("backend `wbe`"), "{e}");
        let e = with(
            TWO,
            "",
            "expect:\n  - {metric: answered_by, service: users, window: w, path: /nope, backend: web, above: 0.5}\n",
        )
        .unwrap_err();
        assert!(e.message.contains("no path `/nope`"), "{e}");
        let e = with(TWO, "    controller_typo: 1\n", "").unwrap_err();
        assert!(e.at.is_some(), "{e}");
    }

    #[test]
    fn httproutes_alone_are_routed_by_the_gateway_api_rules() {
        let text = |via: &str| {
            format!(
                "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\n\
                 cluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
                 workloads:\n  - {{name: web, namespace: shop, port: 80, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
                 \x20 - {{name: api, namespace: shop, port: 8080, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
                 traffic:\n  - name: users\n    via: {{ingress: {via}, controller: conformant}}\n\
                 \x20   requests:\n{TWO}    rate: 10/s\n    timeout: 1s\n\
                 measure:\n  windows: [{{name: w, from: 0s, to: 1m}}]\n"
            )
        };
        let s = parse(
            "t.yaml",
            &text("../scenarios/ingress_prefix_surprise/fixes/httproutes.yaml"),
        )
        .unwrap();
        let ing = s.variants[0].config.traffic[0].ingress.clone().unwrap();
        let docs = ing.paths.iter().find(|p| p.path == "/api-docs").unwrap();
        assert_eq!(docs.answered_by, "web:80");
        assert!(
            docs.because.contains("PathPrefix / of HTTPRoute shop/web"),
            "{}",
            docs.because
        );
        assert!(ing.notes.iter().any(|n| n.contains("Gateway API")));
        // Ingresses and HTTPRoutes together: which users go through is not given.
        let e = parse(
            "t.yaml",
            &text("[../scenarios/ingress_prefix_surprise/manifests, ../scenarios/ingress_prefix_surprise/fixes/httproutes.yaml]"),
        )
        .map(|_| ())
        .unwrap_err();
        assert!(e.message.contains("both Ingresses and HTTPRoutes"), "{e}");
        assert_eq!(e.at.map(|a| a.0), Some(13), "{e}");
    }
}
