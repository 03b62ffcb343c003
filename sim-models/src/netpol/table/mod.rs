//! The reachability table (`knsim netpol DIR`): every endpoint against every
//! endpoint on every port of interest, with an explanation for each denied
//! cell, as text or as flows for JSON; and expectations checked against it
//! ([`expect`]).
//!
//! # Scope
//!
//! Endpoints, the rows and columns, in this order: pods (`ns/pod`, by
//! namespace and name, host-network pods included), nodes (`node:NAME`, by
//! name, at the node's one address; see [`crate::netpol::manifest`]), and
//! peers given by the user (`peer:NAME`, in the order given): addresses
//! outside the pod network, such as the internet or a partner network, that
//! `ipBlock` rules are written for. A peer's address is the one the pod's
//! policies see: the Kubernetes docs leave it undefined whether source or
//! destination NAT (load balancers, egress gateways) happens before or after
//! policy processing, so give the address as it reaches or leaves the pod.
//!
//! # Parameters
//!
//! - The ports probed: every container port, every numeric `port`/`endPort` of
//!   a policy ([`probe_ports`]), and the ports the user adds (`--port`); TCP/80
//!   when there are none at all.
//! - The peers (`--peer NAME=IP`): an address that is a pod's, a node's or
//!   another peer's is an error (a pod or node is a row already).
//!
//! # What it emits
//!
//! [`Reachability::text`]: summaries of pods, nodes, peers and policies, one
//! grid per port (`.` allowed, `X` denied, the upstream e2e notation) and one
//! explanation per denied cell. [`Reachability::flows`]: every cell as a
//! [`FlowCheck`] (`from`, `to`, `protocol`, `port`, `allowed`, and whether
//! each side allows it: a side with no pod to isolate, a node or a peer,
//! allows). Both are pure functions of the manifests and the options.
//!
//! # Validation
//!
//! Unit tests (`tests.rs`): `ipBlock` with `except` against peers inside,
//! outside and in the hole of the block, both directions; node rows and the
//! own-node exemption; bad `--peer`/`--port` values; expectation files
//! (positions, unknown names, verdicts). CLI tests in
//! `sim-scenarios/tests/cli.rs` run them through the binary.

pub mod expect;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::eval::{evaluate, Flow, Verdict};
use super::manifest::Manifests;
use super::names::{check_dns1123_label, check_port_number};
use super::policy::{Cluster, PortSpec};
use super::selector::format_labels;
use crate::protocol::Protocol;

/// The ports a table probes by default: every container port of every pod,
/// and every numeric `port`/`endPort` named by a policy, each with its
/// protocol, sorted by (protocol, port). TCP/80 if there are none.
pub fn probe_ports(cluster: &Cluster) -> Vec<(Protocol, u16)> {
    with_extra_ports(cluster, &[])
}

/// [`probe_ports`] and `extra`, sorted, each once; TCP/80 if there are none.
fn with_extra_ports(cluster: &Cluster, extra: &[(Protocol, u16)]) -> Vec<(Protocol, u16)> {
    let mut ports: BTreeSet<(Protocol, u16)> = extra.iter().copied().collect();
    for pod in cluster.pods() {
        for p in &pod.ports {
            ports.insert((p.protocol, p.port));
        }
    }
    for policy in cluster.policies() {
        for rule in policy.ingress.iter().chain(&policy.egress) {
            for p in &rule.ports {
                if let Some(PortSpec::Number { port, end_port }) = &p.port {
                    ports.insert((p.protocol, *port));
                    if let Some(end) = end_port {
                        ports.insert((p.protocol, *end));
                    }
                }
            }
        }
    }
    if ports.is_empty() {
        ports.insert((Protocol::Tcp, 80));
    }
    ports.into_iter().collect()
}

/// Parses a port to probe, `PROTO/PORT` (`TCP/443`, `udp/53`; the protocol's
/// case is ignored).
pub fn parse_probe_port(text: &str) -> Result<(Protocol, u16), String> {
    let Some((proto, port)) = text.split_once('/') else {
        return Err(format!(
            "`{text}` is not PROTO/PORT; write e.g. TCP/443 or UDP/53"
        ));
    };
    let protocol = Protocol::parse(&proto.trim().to_uppercase()).ok_or_else(|| {
        format!("`{proto}` is not a NetworkPolicy protocol; write TCP, UDP or SCTP, e.g. TCP/443")
    })?;
    let number: i64 = port
        .trim()
        .parse()
        .map_err(|_| format!("`{port}` is not a port number; write e.g. {protocol}/443"))?;
    let port = check_port_number(number).map_err(|e| format!("{e}; a port is 1-65535"))?;
    Ok((protocol, port))
}

/// An address outside the pod network, given as `NAME=IP` (`--peer`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutsidePeer {
    /// The name; the table calls it `peer:NAME`.
    pub name: String,
    /// The address, as the pod's policies see it.
    pub ip: Ipv4Addr,
}

impl FromStr for OutsidePeer {
    type Err = String;

    /// `NAME=IP`: NAME a lowercase RFC 1123 label, IP an IPv4 address.
    fn from_str(text: &str) -> Result<Self, String> {
        let Some((name, ip)) = text.split_once('=') else {
            return Err(format!(
                "`{text}` is not NAME=IP; write e.g. internet=203.0.113.10"
            ));
        };
        check_dns1123_label(name)
            .map_err(|e| format!("peer name {e}; write e.g. partner-vpn={ip}"))?;
        let ip = ip.trim().parse::<Ipv4Addr>().map_err(|_| {
            format!("`{ip}` is not an IPv4 address; knsim models IPv4 only: write e.g. {name}=203.0.113.10")
        })?;
        Ok(OutsidePeer {
            name: name.to_string(),
            ip,
        })
    }
}

/// What a row or column stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// A pod (pod-network or host-network).
    Pod,
    /// A node, at its address.
    Node,
    /// An address outside the pod network.
    Peer,
}

/// A row and column of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `ns/pod`, `node:NAME` or `peer:NAME`.
    pub name: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// What it is.
    pub kind: EndpointKind,
}

impl Endpoint {
    /// How verdicts name it: the name, with the address for a node or peer.
    fn label(&self) -> String {
        match self.kind {
            EndpointKind::Pod => self.name.clone(),
            EndpointKind::Node | EndpointKind::Peer => format!("{} ({})", self.name, self.ip),
        }
    }
}

/// One cell of the table, as `--output json` prints it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FlowCheck {
    /// The source endpoint's name.
    pub from: String,
    /// The destination endpoint's name.
    pub to: String,
    /// The protocol, `TCP`, `UDP` or `SCTP`.
    #[serde(serialize_with = "protocol_name")]
    pub protocol: Protocol,
    /// The destination port.
    pub port: u16,
    /// Whether the connection is allowed (both sides allow it).
    pub allowed: bool,
    /// Whether the source's egress side allows it (`true` when the source is
    /// no pod a policy can isolate).
    pub egress: bool,
    /// Whether the destination's ingress side allows it (likewise).
    pub ingress: bool,
    /// One line: what each side decided, and for a denial a rule that would
    /// allow it.
    pub why: String,
}

fn protocol_name<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(p.name())
}

/// The table of a set of manifests: its endpoints and ports.
#[derive(Clone, Debug)]
pub struct Reachability {
    cluster: Cluster,
    endpoints: Vec<Endpoint>,
    ports: Vec<(Protocol, u16)>,
    skipped: Vec<String>,
}

impl Reachability {
    /// The table of `manifests` with `peers` added as rows and columns and
    /// `extra_ports` probed besides the default ones ([`probe_ports`]).
    /// A peer whose name or address is taken is an error, as
    /// `message\n  hint: ...`.
    pub fn new(
        manifests: Manifests,
        peers: &[OutsidePeer],
        extra_ports: &[(Protocol, u16)],
    ) -> Result<Reachability, String> {
        let Manifests {
            cluster,
            nodes,
            skipped,
        } = manifests;
        let mut endpoints: Vec<Endpoint> = cluster
            .pods()
            .iter()
            .map(|p| Endpoint {
                name: format!("{}/{}", p.namespace, p.name),
                ip: p.ip,
                kind: EndpointKind::Pod,
            })
            .collect();
        endpoints.extend(nodes.iter().map(|(name, ip)| Endpoint {
            name: format!("node:{name}"),
            ip: *ip,
            kind: EndpointKind::Node,
        }));
        for peer in peers {
            let taken = |what: String, hint: &str| {
                Err(format!(
                    "--peer {}={}: {what}\n  hint: {hint}",
                    peer.name, peer.ip
                ))
            };
            let name = format!("peer:{}", peer.name);
            if endpoints.iter().any(|e| e.name == name) {
                return taken(
                    format!("a peer is already called {}", peer.name),
                    "give each --peer its own name",
                );
            }
            if let Some(pod) = cluster.pod_by_ip(peer.ip) {
                return taken(
                    format!(
                        "{} is the IP of pod {}/{}",
                        peer.ip, pod.namespace, pod.name
                    ),
                    "a peer is an address outside the pod network; the pod is a row already",
                );
            }
            // A host-network pod has its node's address: name the node.
            let same_ip = |kind: EndpointKind| {
                endpoints
                    .iter()
                    .find(move |e| e.ip == peer.ip && e.kind == kind)
            };
            if let Some(other) = same_ip(EndpointKind::Node).or(same_ip(EndpointKind::Peer)) {
                let hint = match other.kind {
                    EndpointKind::Node => "nodes are rows already (node:NAME); a peer is an address outside the cluster",
                    _ => "give each --peer its own address",
                };
                return taken(
                    format!("{} is the address of {}", peer.ip, other.name),
                    hint,
                );
            }
            endpoints.push(Endpoint {
                name,
                ip: peer.ip,
                kind: EndpointKind::Peer,
            });
        }
        let ports = with_extra_ports(&cluster, extra_ports);
        Ok(Reachability {
            cluster,
            endpoints,
            ports,
            skipped,
        })
    }

    /// Rows and columns: pods, nodes, peers.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint called `name`.
    pub fn endpoint(&self, name: &str) -> Option<&Endpoint> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The ports probed, sorted by (protocol, port).
    pub fn ports(&self) -> &[(Protocol, u16)] {
        &self.ports
    }

    /// The verdict of one connection, its ends named as the table names them.
    pub fn verdict(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> Verdict {
        let mut verdict = evaluate(
            &self.cluster,
            &Flow {
                src: from.ip,
                dst: to.ip,
                protocol,
                port,
            },
        );
        verdict.source = from.label();
        verdict.destination = to.label();
        verdict
    }

    /// One connection as a [`FlowCheck`].
    pub fn check(
        &self,
        from: &Endpoint,
        to: &Endpoint,
        protocol: Protocol,
        port: u16,
    ) -> FlowCheck {
        let verdict = self.verdict(from, to, protocol, port);
        FlowCheck {
            from: from.name.clone(),
            to: to.name.clone(),
            protocol,
            port,
            allowed: verdict.allowed(),
            egress: verdict.egress.allowed(),
            ingress: verdict.ingress.allowed(),
            why: verdict.why(),
        }
    }

    /// Every cell: by port, then source, then destination, in table order.
    pub fn flows(&self) -> Vec<FlowCheck> {
        let mut out = Vec::new();
        for &(protocol, port) in &self.ports {
            for from in &self.endpoints {
                for to in &self.endpoints {
                    out.push(self.check(from, to, protocol, port));
                }
            }
        }
        out
    }

    /// The table as text: summaries of pods, nodes, peers and policies, one
    /// grid per port (rows: source, columns: destination; `.` allowed, `X`
    /// denied), one explanation per denied cell, and the objects skipped
    /// because their kind does not affect NetworkPolicy.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let cluster = &self.cluster;
        let pods = cluster.pods();
        let _ = writeln!(
            out,
            "NetworkPolicy truth table: {} namespaces, {} pods, {} policies",
            cluster.namespaces().count(),
            pods.len(),
            cluster.policies().len()
        );
        out.push_str("\nPods:\n");
        for pod in pods {
            let _ = writeln!(
                out,
                "  {}/{}  ip {}  node {}{}  labels {}",
                pod.namespace,
                pod.name,
                pod.ip,
                pod.host_ip,
                if pod.host_network {
                    "  hostNetwork"
                } else {
                    ""
                },
                format_labels(&pod.labels)
            );
        }
        for (kind, title) in [
            (EndpointKind::Node, "Nodes"),
            (EndpointKind::Peer, "Peers (outside the pod network)"),
        ] {
            let mut of_kind = self.endpoints.iter().filter(|e| e.kind == kind).peekable();
            if of_kind.peek().is_some() {
                let _ = writeln!(out, "\n{title}:");
            }
            for e in of_kind {
                let _ = writeln!(out, "  {}  ip {}", e.name, e.ip);
            }
        }
        out.push_str("\nPolicies:\n");
        if cluster.policies().is_empty() {
            out.push_str("  (none: every pod accepts and sends everything)\n");
        }
        for p in cluster.policies() {
            let mut types = Vec::new();
            let rules = |n: usize| {
                if n == 1 {
                    "1 rule".to_string()
                } else {
                    format!("{n} rules")
                }
            };
            if p.policy_types.ingress {
                types.push(format!("Ingress ({})", rules(p.ingress.len())));
            }
            if p.policy_types.egress {
                types.push(format!("Egress ({})", rules(p.egress.len())));
            }
            let _ = writeln!(
                out,
                "  {}/{}  selects pods {}  isolates {}",
                p.namespace,
                p.name,
                p.pod_selector,
                types.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "\nReachability (rows: source, columns: destination; `.` allowed, `X` denied):"
        );
        let row_width = self
            .endpoints
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(0)
            .max(4);
        let mut denied: Vec<Verdict> = Vec::new();
        for &(protocol, port) in &self.ports {
            let _ = writeln!(out, "\n{protocol}/{port}");
            let _ = write!(out, "{:row_width$}", "");
            for e in &self.endpoints {
                let _ = write!(out, " {}", e.name);
            }
            out.push('\n');
            for src in &self.endpoints {
                let _ = write!(out, "{:row_width$}", src.name);
                for dst in &self.endpoints {
                    let verdict = self.verdict(src, dst, protocol, port);
                    let mark = if verdict.allowed() { "." } else { "X" };
                    let _ = write!(out, " {mark:w$}", w = dst.name.len());
                    if !verdict.allowed() {
                        denied.push(verdict);
                    }
                }
                // No trailing blanks.
                while out.ends_with(' ') {
                    out.pop();
                }
                out.push('\n');
            }
        }
        if denied.is_empty() {
            out.push_str("\nNo denied connections.\n");
        } else {
            let _ = writeln!(out, "\nDenied connections ({}):", denied.len());
            for v in &denied {
                let _ = writeln!(out, "{v}");
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped (kinds that do not affect NetworkPolicy):");
            for s in &self.skipped {
                let _ = writeln!(out, "  {s}");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
