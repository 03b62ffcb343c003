//! Clients: the `traffic` section.
//!
//! # Scope
//! Each traffic source: its target, what it resolves, its DNS cache and
//! socket, retries, its connection mode (Go's keep-alive defaults) and
//! whether it leaves through MASQUERADE.
//!
//! # Validation
//! Every error names the field it is about (`file:line:column`) with a hint.

use super::via::{RequestFile, ViaFile};
use super::{FindWorkload, NetworkFile, Validator, R};
use crate::envelope::Locate;
use crate::locate::Seg;
use crate::path;
use crate::units::{Bytes, Count, Duration, Rate};
use schemars::JsonSchema;
use serde::Deserialize;
use sim_core::SimDuration;
use sim_models::cluster::{ClientDnsCache, DnsConfig, TrafficSpec};
use sim_models::connections::{ConnectionMode, GO_IDLE_CONN_TIMEOUT, GO_MAX_IDLE_PER_HOST};
use sim_models::did_you_mean::suggest;
use sim_models::services::node_port::NodeAddressKind;
use sim_models::services::{NodePortEntry, ResolvedService};
use sim_models::topology::NodeSpec;
use sim_models::workload::DeploymentSpec;

/// Most resolving threads per client pod (the per-thread state is two
/// bytes each).
const MAX_THREADS: u32 = 10_000;

/// Most retries of a request (a try's number travels in 16 bits).
const MAX_RETRIES: u32 = u16::MAX as u32;

/// Clients of one Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TrafficFile {
    /// Name for the timeline (default: the target's name).
    pub name: Option<String>,
    /// Workload whose pods send the requests (default: outside the cluster).
    pub from: Option<String>,
    /// Resolve a name through the cluster DNS before each request: `true`
    /// for the target Service's name, or the name to look up (e.g.
    /// `api.example.com`, or `api.example.com.` with a trailing dot);
    /// needs `from` and a `dns` section.
    pub resolve: Option<ResolveFile>,
    /// Target Service: one of `services:`, or a workload's implicit
    /// Service of the same name; without it the request is the lookup of
    /// `resolve` alone.
    pub to: Option<String>,
    /// Clients outside the cluster reach the Service at a node address and
    /// its NodePort instead of its ClusterIP:
    /// `{address: public, source: 198.51.100.7}`.
    pub node_port: Option<NodePortFile>,
    /// Clients outside the cluster reach the Service (type LoadBalancer)
    /// through its cloud load balancer: `{kind: alb, targets: ip,
    /// controller: aws-lbc, deregistration_delay: 30s, health_check:
    /// {path: readiness, interval: 5s}}`.
    pub load_balancer: Option<LoadBalancerFile>,
    /// The application's DNS cache: `ttl` (the record's) or a duration
    /// (`30s`, whatever the TTL); default none.
    pub dns_cache: Option<String>,
    /// The application's resolver keeps one UDP socket per pod for all its
    /// queries (default false: glibc, a new socket per name looked up).
    #[serde(default)]
    pub persistent_dns_socket: bool,
    /// Worker threads per client pod that resolve (glibc keeps its
    /// resolver state, the `single-request` fallback, per thread); each
    /// lookup runs in one drawn at random. Default: the client workload's
    /// `concurrency`, one thread per request a pod handles at once (a
    /// thread-per-request server such as Tomcat's worker pool).
    pub threads: Option<Count>,
    /// Retries of a failed request (default 0); each resolves again.
    pub retries: Option<Count>,
    /// Mean rate, Poisson (not with `in_handler`).
    pub rate: Option<Rate>,
    /// No arrivals of its own: each request a pod of `from` serves makes
    /// one request of this source in its handler, and waits for it before
    /// answering (a synchronous call to a dependency; 503 when it fails).
    /// Needs `from` and `to`; without `rate`. Default false.
    #[serde(default)]
    pub in_handler: bool,
    /// Client timeout (per try).
    pub timeout: Duration,
    /// The connections leave through the client node's MASQUERADE rule
    /// (needs `from` and `network.masquerade`).
    #[serde(default)]
    pub snat: bool,
    /// How requests use TCP connections: `per-request` (default),
    /// `keep-alive` (Go's defaults: 2 idle per pod, 90 s), `client-side`,
    /// `{keep_alive: {max_idle: N, idle_timeout: D}}` or `{long_lived: N}`.
    pub connections: Option<ConnectionsFile>,
    /// Users' requests through an ingress controller, instead of `to`:
    /// `{ingress: MANIFESTS, controller: ingress-nginx | conformant}`; each
    /// request draws a path of `requests` by share and goes where the
    /// controller routes it.
    pub via: Option<ViaFile>,
    /// With `via`: the hosts and paths users ask for, each with its share.
    pub requests: Option<Vec<RequestFile>>,
    /// The address outside the VPC the target workload stands for,
    /// `IP:PORT` (TCP) or `IP:PORT/UDP`: the connections leave the pod
    /// network and go through the client zone's NAT gateway
    /// (needs `from` and network.nat_gateways).
    pub external: Option<String>,
    /// Bytes per request (default 0; the NAT gateway bills them).
    pub request_size: Option<Bytes>,
    /// Bytes per response (default 0).
    pub response_size: Option<Bytes>,
}

/// Entering at a node: `{address: public, source: 198.51.100.7}`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NodePortFile {
    /// Which node address the clients send to: `internal` or `public`.
    pub address: AddressName,
    /// The port (default: the Service's first NodePort); a ClusterIP
    /// Service needs one, which its nodes do not open.
    pub port: Option<u16>,
    /// The node (default: one drawn uniformly per connection).
    pub node: Option<String>,
    /// The clients' source address (default 198.51.100.7, a documentation
    /// address standing for the internet).
    pub source: Option<std::net::Ipv4Addr>,
}

/// A cloud load balancer in front of a LoadBalancer Service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerFile {
    /// `alb` (HTTP, answers 502/503/504 itself) or `nlb` (TCP).
    pub kind: LbKindName,
    /// `ip` (pod IPs, default) or `instance` (the nodes, on the Service's
    /// NodePort; kube-proxy takes the request on to a pod).
    #[serde(default = "default_targets")]
    pub targets: LbTargetsName,
    /// Whose defaults the target group takes: `aws` (ELB's), `aws-lbc`
    /// (the AWS Load Balancer Controller's) or `gke` (GKE NEG's).
    #[serde(default = "default_controller")]
    pub controller: LbControllerName,
    /// Cross-zone load balancing (default: on for ALB, off for NLB).
    pub cross_zone: Option<bool>,
    /// How long a deregistered target keeps its requests in flight
    /// (default 300s, ELB's).
    pub deregistration_delay: Option<Duration>,
    /// The health check: what it asks and its timing (default: the
    /// controller's).
    pub health_check: Option<LbHealthCheckFile>,
    /// The AWS Load Balancer Controller's pod readiness gate
    /// (`target-health.elbv2.k8s.aws`, injected in namespaces labelled
    /// `elbv2.k8s.aws/pod-readiness-gate-inject: enabled`; ip targets only):
    /// a pod is Ready only once its target is healthy (default false).
    #[serde(default)]
    pub readiness_gate: bool,
}

fn default_targets() -> LbTargetsName {
    LbTargetsName::Ip
}

fn default_controller() -> LbControllerName {
    LbControllerName::Aws
}

/// `alb` or `nlb`.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LbKindName {
    /// Application Load Balancer.
    Alb,
    /// Network Load Balancer.
    Nlb,
}

/// `ip` or `instance`.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LbTargetsName {
    /// Pod IPs.
    Ip,
    /// Nodes (the Service's NodePort).
    Instance,
}

/// Whose target-group defaults.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LbControllerName {
    /// ELB's own defaults.
    Aws,
    /// The AWS Load Balancer Controller's.
    AwsLbc,
    /// GKE's (NEG backends).
    Gke,
}

/// A health check's overrides.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LbHealthCheckFile {
    /// `port` (a TCP check or a path answered as soon as the server
    /// listens, default) or `readiness` (the readiness probe's path).
    pub path: Option<LbCheckPathName>,
    /// Time between two checks of a target.
    pub interval: Option<Duration>,
    /// A check with no answer by then fails.
    pub timeout: Option<Duration>,
    /// Passes in a row that make a target healthy (a new one too).
    pub healthy_threshold: Option<Count>,
    /// Failures in a row that make a target unhealthy.
    pub unhealthy_threshold: Option<Count>,
}

/// What a health check asks.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LbCheckPathName {
    /// The port (or a path answered as soon as the server listens).
    Port,
    /// The readiness probe's path.
    Readiness,
}

/// A node address kind.
#[derive(Debug, Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AddressName {
    /// The node's internal address.
    Internal,
    /// The node's public address (`cluster.nodes.public_addresses`).
    Public,
}

/// A connection mode as written: a name or a one-key map.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ConnectionsFile {
    /// `per-request`, `keep-alive` or `client-side`.
    Name(String),
    /// `{keep_alive: {...}}` or `{long_lived: N}`.
    Map(ConnectionsMap),
}

/// The map form of `connections`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionsMap {
    /// An HTTP/1.1 keep-alive pool per client pod.
    pub keep_alive: Option<KeepAliveFile>,
    /// Long-lived connections per client pod, pinned at connect time.
    pub long_lived: Option<Count>,
    /// With `long_lived`: the server closes connections this old (gRPC
    /// `MaxConnectionAge`); default never.
    pub max_age: Option<Duration>,
}

/// Keep-alive pool settings.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeepAliveFile {
    /// Idle connections kept per client pod (default 2, Go's `MaxIdleConnsPerHost`).
    pub max_idle: Option<Count>,
    /// Idle connections close after this (default 90s, Go's `IdleConnTimeout`).
    pub idle_timeout: Option<Duration>,
}

/// `resolve: true` or `resolve: NAME`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ResolveFile {
    /// The target Service's own name.
    Flag(bool),
    /// A name.
    Name(String),
}

impl Validator<'_> {
    /// The traffic sources (written at `tp`) and their names.
    pub(super) fn traffic(
        &self,
        tp: &[Seg],
        traffic: &[TrafficFile],
        find: &FindWorkload<'_>,
        (deployments, services, nodes, public): (
            &[DeploymentSpec],
            &[ResolvedService],
            &[NodeSpec],
            bool,
        ),
        dns: Option<&DnsConfig>,
        network: Option<&NetworkFile>,
    ) -> R<(Vec<TrafficSpec>, Vec<String>)> {
        let names: Vec<&str> = services.iter().map(|s| s.spec.name.as_str()).collect();

        let mut traffic_specs = Vec::new();
        let mut traffic_names: Vec<String> = Vec::new();
        for (i, t) in traffic.iter().enumerate() {
            let p = [tp, &path!["traffic", i]].concat();
            let ingress = self.via_source(&p, t, deployments)?;
            // An ingress backend is a workload's implicit Service; a
            // workload an explicit Service (`services:` or a manifest)
            // selects has none (not modelled yet).
            let claimed = ingress.iter().flat_map(|g| &g.paths).find(|rp| {
                rp.backend
                    .is_some_and(|w| !services.iter().any(|s| s.implicit == Some(w)))
            });
            if let Some(rp) = claimed {
                return Err(self.err(
                    &[&p[..], &path!["via"]].concat(),
                    format!(
                        "path {} goes to {}, a workload an explicit Service (`services:` or a Service manifest) selects: ingress backends through explicit Services are not modelled yet",
                        rp.path, rp.answered_by
                    ),
                    "route the Ingress to a workload no explicit Service selects",
                ));
            }
            let d = match &t.to {
                Some(to) => Some(self.service_named(
                    to,
                    &[&p[..], &path!["to"]].concat(),
                    find,
                    deployments,
                    services,
                )?),
                None => None,
            };
            if let (Some(d), Some(dc)) = (d, dns) {
                if services[d].implicit == Some(dc.workload) {
                    return Err(self.err(
                        &[&p[..], &path!["to"]].concat(),
                        format!(
                            "`{}` is the DNS workload; its pods answer DNS queries, not requests",
                            names[d]
                        ),
                        "send lookups with `resolve: NAME` from a client workload",
                    ));
                }
            }
            let resolve =
                match (&t.resolve, d) {
                    (None | Some(ResolveFile::Flag(false)), _) => None,
                    (Some(ResolveFile::Flag(true)), Some(d)) => Some(names[d].to_string()),
                    (Some(ResolveFile::Flag(true)), None) => return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        "`resolve: true` resolves the target's name, but there is no `to`",
                        "add to: WORKLOAD, or write the name to look up: resolve: api.example.com",
                    )),
                    (Some(ResolveFile::Name(n)), _) => Some(n.clone()),
                };
            let via_name = ingress.as_ref().map(|_| "ingress".to_string());
            let Some(default_name) = t.to.clone().or_else(|| resolve.clone()).or(via_name) else {
                return Err(self.err(
                    &p,
                    "a traffic source needs `to` (a workload) or `resolve: NAME` (lookups alone)",
                    "e.g. {from: app, resolve: api.example.com, rate: 10/s, timeout: 30s}",
                ));
            };
            let headless = d.is_some_and(|d| {
                services[d].spec.headless
                    || services[d]
                        .implicit
                        .is_some_and(|w| dns.as_ref().is_some_and(|c| c.headless.contains(&w)))
            });
            if headless && resolve.is_none() {
                return Err(self.err(
                    &p,
                    "the target's Service is headless (no ClusterIP): clients must resolve its name",
                    "add resolve: true (or the pod's name, e.g. resolve: db-0.db.prod.svc.cluster.local)",
                ));
            }
            let tname = t.name.clone().unwrap_or(default_name);
            if traffic_names.contains(&tname) {
                return Err(self.err(
                    &p,
                    format!("two traffic sources are called `{tname}`"),
                    "name them apart with `name:`",
                ));
            }
            traffic_names.push(tname);
            let from = match &t.from {
                Some(w) => Some(find(
                    w,
                    [&p[..], &path!["from"]].concat(),
                    "traffic source",
                )?),
                None => None,
            };
            if let Some(name) = &resolve {
                let Some(dc) = dns.as_ref().filter(|_| from.is_some()) else {
                    return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        "`resolve` needs `from` (the pods that resolve) and a `dns` section",
                        "add from: WORKLOAD and dns: {workload: coredns}",
                    ));
                };
                let f = from.unwrap_or_default();
                let conf = dc.resolv_conf(&deployments[f].namespace, f);
                if let Err(e) = sim_models::resolver::Lookup::new(&conf, name, dc.qtypes) {
                    return Err(self.err(
                        &[&p[..], &path!["resolve"]].concat(),
                        e.to_string(),
                        "write a host name such as api.example.com (a trailing dot makes it absolute)",
                    ));
                }
            }
            let dns_cache = match t.dns_cache.as_deref() {
                None => None,
                Some("ttl") => Some(ClientDnsCache::RecordTtl),
                Some(x) => Some(ClientDnsCache::Fixed(
                    crate::units::parse_duration(x).map_err(|e| {
                        self.err(
                            &[&p[..], &path!["dns_cache"]].concat(),
                            e,
                            "write dns_cache: ttl (the record's TTL) or a duration such as 30s",
                        )
                    })?,
                )),
            };
            if t.persistent_dns_socket && resolve.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["persistent_dns_socket"]].concat(),
                    "`persistent_dns_socket` needs `resolve`: this source looks nothing up",
                    "add resolve: true, or remove persistent_dns_socket",
                ));
            }
            if t.threads.is_some() && resolve.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["threads"]].concat(),
                    "`threads` needs `resolve`: this source looks nothing up",
                    "add resolve: true, or remove threads",
                ));
            }
            if t.retries.is_some_and(|r| r.0 > MAX_RETRIES) {
                return Err(self.err(
                    &[&p[..], &path!["retries"]].concat(),
                    format!("retries: more than {MAX_RETRIES}"),
                    "applications retry a few times, e.g. retries: 2",
                ));
            }
            let threads = match (t.threads, from) {
                (Some(n), _) if n.0 == 0 || n.0 > MAX_THREADS => {
                    return Err(self.err(
                        &[&p[..], &path!["threads"]].concat(),
                        format!("threads: {} is outside 1..={MAX_THREADS}", n.0),
                        "give the client pod's resolving worker threads, e.g. threads: 20",
                    ));
                }
                (Some(n), _) => n.0,
                (None, Some(f)) => deployments[f].server.concurrency.clamp(1, MAX_THREADS),
                (None, None) => 1,
            };
            if dns_cache.is_some() && resolve.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["dns_cache"]].concat(),
                    "`dns_cache` needs `resolve`: this source looks nothing up",
                    "add resolve: true, or remove dns_cache",
                ));
            }
            let connections = match &t.connections {
                None => ConnectionMode::PerRequest,
                Some(c) => self.connections(&[&p[..], &path!["connections"]].concat(), c)?,
            };
            if connections != ConnectionMode::PerRequest && from.is_none() {
                return Err(self.err(
                    &[&p[..], &path!["connections"]].concat(),
                    "connection pools belong to client pods; this traffic comes from outside the cluster",
                    "add from: WORKLOAD, or use connections: per-request",
                ));
            }
            if t.snat && (from.is_none() || network.and_then(|n| n.masquerade.as_ref()).is_none()) {
                return Err(self.err(
                    &[&p[..], &path!["snat"]].concat(),
                    "`snat: true` needs `from` (the pods whose node masquerades) and network.masquerade",
                    "add from: WORKLOAD and network: {..., conntrack: {...}, masquerade: {race_window: 5us}}",
                ));
            }
            let entry = match &t.node_port {
                None => None,
                Some(v) => Some(self.node_port_entry(
                    &[&p[..], &path!["node_port"]].concat(),
                    v,
                    (from.is_some(), resolve.is_some()),
                    d.map(|d| &services[d]),
                    nodes,
                    public,
                )?),
            };
            let load_balancer = match &t.load_balancer {
                None => None,
                Some(v) => Some(self.load_balancer_entry(
                    &[&p[..], &path!["load_balancer"]].concat(),
                    v,
                    t,
                    d.map(|d| &services[d]),
                )?),
            };
            let external = match &t.external {
                None => None,
                Some(text) => {
                    let ep = [&p[..], &path!["external"]].concat();
                    let dest = parse_destination(text).ok_or_else(|| {
                        self.err(
                            &ep,
                            format!("`{text}` is not an address and port"),
                            "write IP:PORT or IP:PORT/UDP, e.g. external: 203.0.113.10:443",
                        )
                    })?;
                    if from.is_none() || d.is_none() {
                        return Err(self.err(
                            &ep,
                            "`external` needs `from` (the pods whose zone's NAT gateway they use) and `to` (the workload standing for the destination)",
                            "add from: WORKLOAD and to: WORKLOAD",
                        ));
                    }
                    if network.and_then(|n| n.nat_gateways.as_ref()).is_none() {
                        return Err(self.err(
                            &ep,
                            "`external` needs network.nat_gateways: egress to it goes through a NAT gateway",
                            "add network: {cni: calico, nat_gateways: {gateways: [...], routes: {...}}}",
                        ));
                    }
                    let clash = traffic_specs.iter().find(|s: &&TrafficSpec| {
                        s.service == d && s.external.is_some_and(|x| x != dest)
                    });
                    if let Some(other) = clash {
                        return Err(self.err(
                            &ep,
                            format!("traffic `{}` gives the same `to` another external address", other.name),
                            "a workload stands for one external destination: give each its own workload",
                        ));
                    }
                    Some(dest)
                }
            };
            traffic_specs.push(TrafficSpec {
                external,
                request_bytes: t.request_size.map_or(0, |b| b.0),
                response_bytes: t.response_size.map_or(0, |b| b.0),
                name: traffic_names[i].clone(),
                resolve,
                from,
                service: d,
                dns_cache,
                persistent_dns_socket: t.persistent_dns_socket,
                threads,
                retries: t.retries.map_or(0, |c| c.0),
                rate: self.source_rate(&p, t)?,
                in_handler: t.in_handler,
                timeout: t.timeout.0,
                connections,
                snat: t.snat || t.external.is_some(),
                entry,
                load_balancer,
                ingress,
            });
        }

        self.handler_calls(tp, &traffic_specs, services)?;
        Ok((traffic_specs, traffic_names))
    }

    /// A source's rate: given, unless it is made in a handler.
    fn source_rate(&self, p: &[Seg], t: &TrafficFile) -> R<f64> {
        match (t.in_handler, t.rate) {
            (false, Some(r)) => Ok(r.0),
            (false, None) => Err(self.err(
                p,
                "traffic without `rate`",
                "add rate: 100/s (Poisson arrivals), or in_handler: true for calls a handler makes",
            )),
            (true, Some(_)) => Err(self.err(
                &[p, &path!["rate"]].concat(),
                "a source `in_handler` has no rate of its own: one call per request its `from` serves",
                "remove rate",
            )),
            (true, None) if t.from.is_none() || t.to.is_none() => Err(self.err(
                &[p, &path!["in_handler"]].concat(),
                "`in_handler` needs `from` (the workload whose handler calls) and `to` (whom it calls)",
                "add from: WORKLOAD and to: SERVICE",
            )),
            (true, None) => Ok(0.0),
        }
    }

    /// Handler calls: one source per calling workload, and no cycle (a
    /// request would call itself without end).
    fn handler_calls(
        &self,
        tp: &[Seg],
        specs: &[TrafficSpec],
        services: &[ResolvedService],
    ) -> R<()> {
        // The workloads a source's requests are served by.
        let served_by = |o: &TrafficSpec| -> &[usize] {
            o.service.map_or(&[], |s| services[s].workloads.as_slice())
        };
        for (i, s) in specs.iter().enumerate() {
            if !s.in_handler {
                continue;
            }
            let p = [tp, &path!["traffic", i, "in_handler"]].concat();
            if specs[..i].iter().any(|o| o.in_handler && o.from == s.from) {
                return Err(self.err(
                    &p,
                    format!("a second call in the handler of `{}`'s workload", s.name),
                    "one dependency call per handler is modelled: keep one source in_handler per `from`",
                ));
            }
            // Follow the calls from the workloads this source reaches:
            // reaching its `from` again is a cycle.
            let mut reached: Vec<usize> = served_by(s).to_vec();
            let mut k = 0;
            while k < reached.len() {
                let w = reached[k];
                k += 1;
                if Some(w) == s.from {
                    return Err(self.err(
                        &p,
                        format!(
                            "`{}` calls back into its own workload: the calls never end",
                            s.name
                        ),
                        "the handler calls must form a chain, not a cycle",
                    ));
                }
                for o in specs.iter().filter(|o| o.in_handler && o.from == Some(w)) {
                    for &x in served_by(o) {
                        if !reached.contains(&x) {
                            reached.push(x);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// A source's `via` and `requests`, checked against the fields that do
    /// not go with them.
    fn via_source(
        &self,
        p: &[Seg],
        t: &TrafficFile,
        deployments: &[DeploymentSpec],
    ) -> R<Option<sim_models::cluster::IngressTraffic>> {
        let Some(via) = &t.via else {
            if t.requests.is_some() {
                return Err(self.err(
                    &[p, &path!["requests"]].concat(),
                    "`requests` (paths by share) need `via` (the ingress controller that routes them)",
                    "add via: {ingress: manifests/, controller: ingress-nginx}",
                ));
            }
            return Ok(None);
        };
        let clash = [
            ("to", t.to.is_some(), "the controller's rules pick the backend of each path: remove `to`"),
            ("from", t.from.is_some(), "requests through an ingress controller come from users outside the cluster: remove `from`"),
            ("resolve", t.resolve.is_some(), "requests through an ingress controller resolve nothing in the model: remove `resolve`"),
            ("connections", t.connections.is_some(), "requests through an ingress controller use one connection each: remove `connections`"),
            ("snat", t.snat, "requests through an ingress controller come from outside the cluster: remove `snat`"),
        ];
        if let Some((field, _, hint)) = clash.iter().find(|c| c.1) {
            return Err(self.err(
                &[p, &path![*field]].concat(),
                format!("`{field}` does not go with `via`"),
                *hint,
            ));
        }
        let requests = t.requests.as_deref().unwrap_or_default();
        self.via(p, via, requests, deployments).map(Some)
    }

    /// A traffic source's connection mode.
    pub(super) fn connections(&self, p: &[Seg], c: &ConnectionsFile) -> R<ConnectionMode> {
        let hint = "write per-request, keep-alive, client-side, {keep_alive: {max_idle: 2, idle_timeout: 90s}} or {long_lived: 1}";
        let keep = |max_idle: Option<Count>, idle: Option<Duration>| ConnectionMode::KeepAlive {
            max_idle: max_idle.map_or(GO_MAX_IDLE_PER_HOST, |c| c.0),
            idle_timeout: idle.map_or(GO_IDLE_CONN_TIMEOUT, |d| d.0),
        };
        match c {
            ConnectionsFile::Name(n) => match n.as_str() {
                "per-request" => Ok(ConnectionMode::PerRequest),
                "keep-alive" => Ok(keep(None, None)),
                "client-side" => Ok(ConnectionMode::ClientSide),
                other => {
                    let names = ["per-request", "keep-alive", "client-side"];
                    let h = match suggest(other, &names) {
                        Some(b) => format!("did you mean `{b}`? {hint}"),
                        None => hint.to_string(),
                    };
                    Err(self.err(p, format!("`{other}` is not a connection mode"), h))
                }
            },
            ConnectionsFile::Map(m) => match (&m.keep_alive, m.long_lived) {
                (_, None) if m.max_age.is_some() => Err(self.err(
                    &[p, &path!["max_age"]].concat(),
                    "max_age belongs to long_lived connections",
                    "write {long_lived: N, max_age: 5m}",
                )),
                (Some(k), None) => {
                    if k.max_idle.is_some_and(|c| c.0 == 0) {
                        return Err(self.err(
                            &[p, &path!["keep_alive", "max_idle"]].concat(),
                            "max_idle is 0: no connection would ever be reused",
                            "use connections: per-request for that, or max_idle: 1 or more",
                        ));
                    }
                    Ok(keep(k.max_idle, k.idle_timeout))
                }
                (None, Some(n)) if n.0 > 0 => Ok(ConnectionMode::LongLived {
                    per_client: n.0,
                    max_age: m.max_age.map(|d| d.0).filter(|d| *d > SimDuration::ZERO),
                }),
                (None, Some(_)) => Err(self.err(
                    &[p, &path!["long_lived"]].concat(),
                    "long_lived is 0: the clients would hold no connection",
                    "give 1 or more connections per client pod",
                )),
                _ => Err(self.err(
                    p,
                    "connections takes exactly one of keep_alive or long_lived",
                    hint,
                )),
            },
        }
    }
}

impl Validator<'_> {
    /// The Service `to` names (at `p`): an explicit one, or a workload's
    /// implicit Service; a workload whose pods explicit Services select has
    /// no Service of its own name.
    fn service_named(
        &self,
        to: &str,
        p: &[Seg],
        find: &FindWorkload<'_>,
        deployments: &[DeploymentSpec],
        services: &[ResolvedService],
    ) -> R<usize> {
        if let Some(s) = services.iter().position(|s| s.spec.name == to) {
            return Ok(s);
        }
        let Ok(w) = find(to, p.to_vec(), "traffic target") else {
            let names: Vec<&str> = services.iter().map(|s| s.spec.name.as_str()).collect();
            return Err(self.err(
                p,
                format!("traffic target `{to}` is not a Service of this scenario"),
                suggest(to, &names).map_or_else(
                    || format!("Services: {}", names.join(", ")),
                    |n| format!("did you mean `{n}`?"),
                ),
            ));
        };
        let by: Vec<&str> = services
            .iter()
            .filter(|s| s.workloads.contains(&w))
            .map(|s| s.spec.name.as_str())
            .collect();
        Err(self.err(
            p,
            format!(
                "workload `{}` has no Service of its own name: its pods are selected by {}",
                deployments[w].name,
                by.join(", ")
            ),
            "name one of those Services in `to`",
        ))
    }

    /// A `load_balancer` entry (at `p`) of source `t` to `service`.
    fn load_balancer_entry(
        &self,
        p: &[Seg],
        v: &LoadBalancerFile,
        t: &TrafficFile,
        service: Option<&ResolvedService>,
    ) -> R<sim_models::cloud_lb::LbEntry> {
        use sim_models::cloud_lb::{
            CheckPath, HealthCheck, LbEntry, LbKind, TargetGroupSpec, TargetType,
        };
        let clash = [
            ("from", t.from.is_some()),
            ("resolve", t.resolve.is_some()),
            ("node_port", t.node_port.is_some()),
            ("connections", t.connections.is_some()),
            ("snat", t.snat),
        ];
        if let Some((field, _)) = clash.iter().find(|c| c.1) {
            return Err(self.err(
                p,
                format!("`load_balancer` does not go with `{field}`: its clients are outside the cluster and send each request on its own connection"),
                format!("remove `{field}`, or remove `load_balancer`"),
            ));
        }
        let Some(service) = service else {
            return Err(self.err(
                p,
                "`load_balancer` needs `to` (the LoadBalancer Service)",
                "add to: SERVICE",
            ));
        };
        if service.spec.kind != sim_models::services::ServiceType::LoadBalancer {
            return Err(self.err(
                p,
                format!(
                    "Service `{}` is of type {}: no cloud load balancer fronts it",
                    service.spec.name,
                    service.spec.kind.name()
                ),
                "give the Service type: LoadBalancer in services:",
            ));
        }
        let target_type = match v.targets {
            LbTargetsName::Ip => TargetType::Ip,
            LbTargetsName::Instance => TargetType::Instance,
        };
        let kind = match v.kind {
            LbKindName::Alb => LbKind::Application,
            LbKindName::Nlb => LbKind::Network,
        };
        let mut group = TargetGroupSpec::elb_defaults(kind, target_type);
        group.health_check = match (v.controller, kind) {
            (LbControllerName::Aws, _) => group.health_check,
            (LbControllerName::AwsLbc, LbKind::Application) => HealthCheck::aws_lbc_ingress(),
            (LbControllerName::AwsLbc, LbKind::Network) => HealthCheck::aws_lbc_service(),
            (LbControllerName::Gke, _) => HealthCheck::gke_neg(),
        };
        if let Some(c) = v.cross_zone {
            group.cross_zone = c;
        }
        if let Some(d) = v.deregistration_delay {
            group.deregistration_delay = d.0;
        }
        let mut check = CheckPath::Port;
        if let Some(h) = &v.health_check {
            let hp = [p, &path!["health_check"]].concat();
            let hc = &mut group.health_check;
            if let (Some(LbCheckPathName::Readiness), TargetType::Instance) = (h.path, target_type)
            {
                return Err(self.err(
                    &[&hp[..], &path!["path"]].concat(),
                    "with `targets: instance` the health check goes to the node, not to a pod's readiness path",
                    "the node answers on the NodePort (externalTrafficPolicy: Cluster) or on its healthCheckNodePort (Local); remove `path`, or use targets: ip",
                ));
            }
            if let Some(x) = h.path {
                check = match x {
                    LbCheckPathName::Port => CheckPath::Port,
                    LbCheckPathName::Readiness => CheckPath::Readiness,
                };
            }
            if let Some(x) = h.interval {
                hc.interval = x.0;
            }
            if let Some(x) = h.timeout {
                hc.timeout = x.0;
            }
            if let Some(x) = h.healthy_threshold {
                hc.healthy_threshold = x.0;
                // A new target needs as many passes (ALB: one).
                if kind == LbKind::Network {
                    hc.initial_passes = x.0;
                }
            }
            if let Some(x) = h.unhealthy_threshold {
                hc.unhealthy_threshold = x.0;
            }
            if let Err(e) = hc.validate() {
                return Err(self.err(
                    &hp,
                    e,
                    "e.g. health_check: {interval: 5s, timeout: 2s, healthy_threshold: 2}",
                ));
            }
        }
        if v.readiness_gate && target_type == TargetType::Instance {
            return Err(self.err(
                &[p, &path!["readiness_gate"]].concat(),
                "the pod readiness gate works with `targets: ip` only: with instance targets the load balancer sees nodes, not pods",
                "use targets: ip, or remove readiness_gate",
            ));
        }
        Ok(LbEntry {
            group,
            check,
            readiness_gate: v.readiness_gate,
        })
    }

    /// A `node_port` entry (at `p`) of a source (`from` set?, `resolve`
    /// set?) to `service` over `nodes`.
    fn node_port_entry(
        &self,
        p: &[Seg],
        v: &NodePortFile,
        (from, resolve): (bool, bool),
        service: Option<&ResolvedService>,
        nodes: &[NodeSpec],
        public: bool,
    ) -> R<NodePortEntry> {
        if v.address == AddressName::Public && !public {
            return Err(self.err(
                &[p, &path!["address"]].concat(),
                "the nodes have no public address",
                "set cluster.nodes.public_addresses: true, or use address: internal",
            ));
        }
        if from || resolve {
            return Err(self.err(
                p,
                "`node_port` is for clients outside the cluster that connect to a node address",
                "remove `from` and `resolve`, or remove `node_port`",
            ));
        }
        let Some(service) = service else {
            return Err(self.err(p, "`node_port` needs `to` (the Service)", "add to: SERVICE"));
        };
        let first = service.spec.ports.first().and_then(|x| x.node_port);
        if v.port.is_none() && first.is_none() {
            return Err(self.err(
                p,
                format!(
                    "Service `{}` is of type {} and has no NodePort",
                    service.spec.name,
                    service.spec.kind.name()
                ),
                "give the port the clients try: node_port: {address: public, port: 30080}",
            ));
        }
        let node = match &v.node {
            None => None,
            Some(n) => Some(nodes.iter().position(|x| &x.name == n).ok_or_else(|| {
                let names: Vec<&str> = nodes.iter().map(|x| x.name.as_str()).collect();
                self.err(
                    &[p, &path!["node"]].concat(),
                    format!("`{n}` is not a node of this scenario"),
                    suggest(n, &names).map_or_else(
                        || format!("nodes are named {} and so on", names[0]),
                        |s| format!("did you mean `{s}`?"),
                    ),
                )
            })?),
        };
        Ok(NodePortEntry {
            node,
            kind: match v.address {
                AddressName::Internal => NodeAddressKind::Internal,
                AddressName::Public => NodeAddressKind::Public,
            },
            source: v.source.unwrap_or(std::net::Ipv4Addr::new(198, 51, 100, 7)),
            port: v.port,
        })
    }
}

/// `IP:PORT` (TCP) or `IP:PORT/UDP` or `IP:PORT/TCP`.
fn parse_destination(text: &str) -> Option<sim_models::nat_gateway::Destination> {
    use sim_models::protocol::Protocol;
    let (addr, protocol) = match text.rsplit_once('/') {
        Some((a, "TCP")) => (a, Protocol::Tcp),
        Some((a, "UDP")) => (a, Protocol::Udp),
        Some(_) => return None,
        None => (text, Protocol::Tcp),
    };
    let sock: std::net::SocketAddrV4 = addr.parse().ok()?;
    Some(sim_models::nat_gateway::Destination {
        ip: *sock.ip(),
        port: sock.port(),
        protocol,
    })
}
