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
    /// Target Service (= Deployment) name; without it the request is the
    /// lookup of `resolve` alone.
    pub to: Option<String>,
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
    /// Mean rate, Poisson.
    pub rate: Rate,
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
        deployments: &[DeploymentSpec],
        dns: Option<&DnsConfig>,
        network: Option<&NetworkFile>,
    ) -> R<(Vec<TrafficSpec>, Vec<String>)> {
        let names: Vec<&str> = deployments.iter().map(|d| d.name.as_str()).collect();

        let mut traffic_specs = Vec::new();
        let mut traffic_names: Vec<String> = Vec::new();
        for (i, t) in traffic.iter().enumerate() {
            let p = [tp, &path!["traffic", i]].concat();
            let ingress = self.via_source(&p, t, deployments)?;
            let d = match &t.to {
                Some(to) => Some(find(to, [&p[..], &path!["to"]].concat(), "traffic target")?),
                None => None,
            };
            if let (Some(d), Some(dc)) = (d, dns) {
                if d == dc.workload {
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
            if d.is_some_and(|d| dns.as_ref().is_some_and(|c| c.headless.contains(&d)))
                && resolve.is_none()
            {
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
                        s.deployment == d && s.external.is_some_and(|x| x != dest)
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
                deployment: d,
                dns_cache,
                persistent_dns_socket: t.persistent_dns_socket,
                threads,
                retries: t.retries.map_or(0, |c| c.0),
                rate: t.rate.0,
                timeout: t.timeout.0,
                connections,
                snat: t.snat || t.external.is_some(),
                ingress,
            });
        }

        Ok((traffic_specs, traffic_names))
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
