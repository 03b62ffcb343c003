//! Verdicts: whether a connection is allowed, and why.
//!
//! [`evaluate`] is a pure function of the [`Cluster`] (policies, namespaces,
//! pods) and the [`Flow`]. A verdict is per connection and decided when the
//! connection starts; [`ConnectionTable`] carries it over to later packets and to
//! replies, as the conntrack-based dataplanes do.

use std::collections::BTreeSet;
use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use super::policy::{
    Cluster, Direction, Peer, PodInfo, Policy, PolicyPort, PortSpec, Rule, NAMESPACE_NAME_LABEL,
};
use super::selector::{format_labels, Labels};
use crate::protocol::Protocol;

/// The first packet of a connection, as the dataplane sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Flow {
    /// Source IP.
    pub src: Ipv4Addr,
    /// Destination IP.
    pub dst: Ipv4Addr,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
}

/// A rule that admitted a connection: `<policy> ingress\[i\]` / `egress\[i\]`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    /// Policy name (in the namespace of the pod it isolates).
    pub policy: String,
    /// Which list the rule is in.
    pub direction: Direction,
    /// Index in that list.
    pub index: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]",
            self.policy,
            self.direction.field(),
            self.index
        )
    }
}

/// Why one side (the source's egress or the destination's ingress) let a
/// connection through or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SideVerdict {
    /// The endpoint is not a pod-network pod (an external IP, a node, or a
    /// host-network pod): NetworkPolicy does not apply on this side.
    NotAPod,
    /// No policy selects the pod for this direction: everything is allowed.
    NotIsolated,
    /// Ingress from the node the destination pod runs on: always allowed.
    FromOwnNode {
        /// Policies isolating the pod (which do not matter for node traffic).
        isolating: Vec<String>,
    },
    /// The pod is isolated and at least one rule admits the connection.
    Allowed {
        /// Policies isolating the pod for this direction.
        isolating: Vec<String>,
        /// Every rule that admits the connection.
        rules: Vec<RuleRef>,
    },
    /// The pod is isolated and no rule admits the connection.
    Denied(Denial),
}

impl SideVerdict {
    /// Whether this side lets the connection through.
    pub fn allowed(&self) -> bool {
        !matches!(self, SideVerdict::Denied(_))
    }
}

/// The explanation of a denial.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Policies isolating the pod for this direction (all in its namespace).
    pub isolating: Vec<String>,
    /// One sentence an operator can act on.
    pub sentence: String,
    /// Per rule of the isolating policies, what it does admit (why it missed).
    pub near_misses: Vec<String>,
    /// A rule that, added to one of the isolating policies, would admit it.
    pub suggestion: String,
}

/// The verdict for one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The connection.
    pub flow: Flow,
    /// `namespace/name` of the source pod, or the source IP (with `(node)` for a
    /// node's host IP).
    pub source: String,
    /// Same for the destination.
    pub destination: String,
    /// The source pod's egress side.
    pub egress: SideVerdict,
    /// The destination pod's ingress side.
    pub ingress: SideVerdict,
}

impl Verdict {
    /// Allowed iff the source's egress and the destination's ingress both allow.
    pub fn allowed(&self) -> bool {
        self.egress.allowed() && self.ingress.allowed()
    }

    /// One line: what each side decided (`egress: ...; ingress: ...`), and
    /// for a denied connection the hint of its first denial.
    pub fn why(&self) -> String {
        let mut why = format!(
            "{}; {}",
            side_summary(&self.egress, Direction::Egress),
            side_summary(&self.ingress, Direction::Ingress)
        );
        if let Some(d) = self.denials().next() {
            let _ = write!(why, "; hint: {}", d.suggestion);
        }
        why
    }

    /// The denials (egress first), empty when allowed.
    pub fn denials(&self) -> impl Iterator<Item = &Denial> {
        [&self.egress, &self.ingress]
            .into_iter()
            .filter_map(|s| match s {
                SideVerdict::Denied(d) => Some(d),
                _ => None,
            })
    }
}

fn side_summary(side: &SideVerdict, direction: Direction) -> String {
    let dir = direction.field();
    match side {
        SideVerdict::NotAPod => format!("{dir}: not a pod, no policy applies"),
        SideVerdict::NotIsolated => format!("{dir}: not isolated"),
        SideVerdict::FromOwnNode { .. } => {
            format!("{dir}: from the pod's own node, always allowed")
        }
        SideVerdict::Allowed { rules, .. } => {
            let rules: Vec<String> = rules.iter().map(|r| r.to_string()).collect();
            format!("{dir}: allowed by {}", rules.join(", "))
        }
        SideVerdict::Denied(d) => format!("{dir}: denied ({})", d.sentence),
    }
}

impl fmt::Display for Verdict {
    /// One line for an allowed connection; for a denied one, each denial's
    /// sentence, its near misses (indented `- `) and a `hint:` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head = format!(
            "{} -> {} {}/{}",
            self.source, self.destination, self.flow.protocol, self.flow.port
        );
        if self.allowed() {
            return write!(
                f,
                "{head}: allowed ({}; {})",
                side_summary(&self.egress, Direction::Egress),
                side_summary(&self.ingress, Direction::Ingress)
            );
        }
        write!(f, "{head}: denied")?;
        for d in self.denials() {
            write!(f, "\n  {}", d.sentence)?;
            for m in &d.near_misses {
                write!(f, "\n    - {m}")?;
            }
            write!(f, "\n    hint: {}", d.suggestion)?;
        }
        Ok(())
    }
}

/// Decides a connection: the source pod's egress (if it is a pod-network pod)
/// and the destination pod's ingress (likewise) must both allow it.
pub fn evaluate(cluster: &Cluster, flow: &Flow) -> Verdict {
    let src = cluster.pod_by_ip(flow.src);
    let dst = cluster.pod_by_ip(flow.dst);
    let egress = match src {
        Some(pod) => side(cluster, pod, flow.dst, dst, Direction::Egress, flow),
        None => SideVerdict::NotAPod,
    };
    let ingress = match dst {
        Some(pod) => side(cluster, pod, flow.src, src, Direction::Ingress, flow),
        None => SideVerdict::NotAPod,
    };
    Verdict {
        flow: *flow,
        source: endpoint_name(cluster, flow.src, src),
        destination: endpoint_name(cluster, flow.dst, dst),
        egress,
        ingress,
    }
}

fn endpoint_name(cluster: &Cluster, ip: Ipv4Addr, pod: Option<&PodInfo>) -> String {
    match pod {
        Some(p) => format!("{}/{}", p.namespace, p.name),
        None if cluster.is_node_ip(ip) => format!("{ip} (node)"),
        None => ip.to_string(),
    }
}

/// Evaluates one side. `subject` is the pod whose policies apply; `remote` is
/// the other end (its IP, and the pod if it is a pod-network pod).
fn side(
    cluster: &Cluster,
    subject: &PodInfo,
    remote_ip: Ipv4Addr,
    remote: Option<&PodInfo>,
    direction: Direction,
    flow: &Flow,
) -> SideVerdict {
    let isolating: Vec<&Policy> = cluster
        .policies()
        .iter()
        .filter(|p| p.policy_types.has(direction) && p.selects(subject))
        .collect();
    if isolating.is_empty() {
        return SideVerdict::NotIsolated;
    }
    let names: Vec<String> = isolating.iter().map(|p| p.name.clone()).collect();
    if direction == Direction::Ingress && remote_ip == subject.host_ip {
        return SideVerdict::FromOwnNode { isolating: names };
    }
    // Named ports resolve on the destination pod: the subject for ingress, the
    // remote end for egress.
    let port_target = match direction {
        Direction::Ingress => Some(subject),
        Direction::Egress => remote,
    };
    let mut rules = Vec::new();
    for policy in &isolating {
        for (index, rule) in policy.rules(direction).iter().enumerate() {
            if rule_peer_matches(cluster, policy, rule, remote_ip, remote)
                && rule_port_matches(rule, flow, port_target)
            {
                rules.push(RuleRef {
                    policy: policy.name.clone(),
                    direction,
                    index,
                });
            }
        }
    }
    if !rules.is_empty() {
        return SideVerdict::Allowed {
            isolating: names,
            rules,
        };
    }
    SideVerdict::Denied(explain_denial(
        cluster, &isolating, subject, remote_ip, remote, direction, flow,
    ))
}

fn rule_peer_matches(
    cluster: &Cluster,
    policy: &Policy,
    rule: &Rule,
    remote_ip: Ipv4Addr,
    remote: Option<&PodInfo>,
) -> bool {
    rule.peers.is_empty()
        || rule
            .peers
            .iter()
            .any(|peer| peer_matches(cluster, policy, peer, remote_ip, remote))
}

fn peer_matches(
    cluster: &Cluster,
    policy: &Policy,
    peer: &Peer,
    remote_ip: Ipv4Addr,
    remote: Option<&PodInfo>,
) -> bool {
    match peer {
        Peer::IpBlock(block) => block.contains(remote_ip),
        Peer::Selector {
            namespace_selector,
            pod_selector,
        } => {
            let Some(pod) = remote else {
                return false;
            };
            let namespace_ok = match namespace_selector {
                None => pod.namespace == policy.namespace,
                Some(sel) => {
                    let empty = Labels::new();
                    sel.matches(cluster.namespace_labels(&pod.namespace).unwrap_or(&empty))
                }
            };
            namespace_ok && pod_selector.as_ref().is_none_or(|s| s.matches(&pod.labels))
        }
    }
}

fn rule_port_matches(rule: &Rule, flow: &Flow, target: Option<&PodInfo>) -> bool {
    rule.ports.is_empty() || rule.ports.iter().any(|p| port_matches(p, flow, target))
}

fn port_matches(port: &PolicyPort, flow: &Flow, target: Option<&PodInfo>) -> bool {
    if port.protocol != flow.protocol {
        return false;
    }
    match &port.port {
        None => true,
        Some(PortSpec::Number { port, end_port }) => {
            *port <= flow.port && flow.port <= end_port.unwrap_or(*port)
        }
        Some(PortSpec::Named(name)) => {
            target.is_some_and(|pod| pod.has_named_port(name, port.protocol, flow.port))
        }
    }
}

fn describe_remote(
    cluster: &Cluster,
    ip: Ipv4Addr,
    remote: Option<&PodInfo>,
    direction: Direction,
) -> String {
    let labels = |pod: &PodInfo| format_labels(&pod.labels);
    match (direction, remote) {
        (Direction::Ingress, Some(pod)) => format!(
            "pods with labels {} from namespace {}",
            labels(pod),
            pod.namespace
        ),
        (Direction::Egress, Some(pod)) => format!(
            "traffic to pods with labels {} in namespace {}",
            labels(pod),
            pod.namespace
        ),
        (Direction::Ingress, None) if cluster.is_node_ip(ip) => format!("traffic from node {ip}"),
        (Direction::Egress, None) if cluster.is_node_ip(ip) => format!("traffic to node {ip}"),
        (Direction::Ingress, None) => format!("traffic from {ip}"),
        (Direction::Egress, None) => format!("traffic to {ip}"),
    }
}

fn describe_ports(rule: &Rule, target: Option<&PodInfo>) -> String {
    if rule.ports.is_empty() {
        return "all ports".into();
    }
    let parts: Vec<String> = rule
        .ports
        .iter()
        .map(|p| match (&p.port, target) {
            (Some(PortSpec::Named(name)), Some(pod)) => {
                let resolved: Vec<String> = pod
                    .ports
                    .iter()
                    .filter(|c| c.name.as_deref() == Some(name) && c.protocol == p.protocol)
                    .map(|c| c.port.to_string())
                    .collect();
                if resolved.is_empty() {
                    format!(
                        "{p}, which the destination pod does not define for {}",
                        p.protocol
                    )
                } else {
                    format!("{p} = {}", resolved.join(","))
                }
            }
            (Some(PortSpec::Named(_)), None) => {
                format!("{p}, which only resolves on a destination pod")
            }
            _ => p.to_string(),
        })
        .collect();
    parts.join(", ")
}

fn describe_peers(rule: &Rule, direction: Direction) -> String {
    let word = match direction {
        Direction::Ingress => "from",
        Direction::Egress => "to",
    };
    if rule.peers.is_empty() {
        return format!("{word} anywhere");
    }
    let parts: Vec<String> = rule.peers.iter().map(|p| p.to_string()).collect();
    format!("{word} {}", parts.join(" or "))
}

fn explain_denial(
    cluster: &Cluster,
    isolating: &[&Policy],
    subject: &PodInfo,
    remote_ip: Ipv4Addr,
    remote: Option<&PodInfo>,
    direction: Direction,
    flow: &Flow,
) -> Denial {
    let dir = direction.field();
    let names: Vec<String> = isolating.iter().map(|p| p.name.clone()).collect();
    let sentence = format!(
        "pod {} in namespace {} is isolated for {dir} by {} [{}]; none of {} {dir} rules admits {} on {}/{}",
        subject.name,
        subject.namespace,
        if names.len() == 1 { "policy" } else { "policies" },
        names.join(", "),
        if names.len() == 1 { "its" } else { "their" },
        describe_remote(cluster, remote_ip, remote, direction),
        flow.protocol,
        flow.port
    );
    let port_target = match direction {
        Direction::Ingress => Some(subject),
        Direction::Egress => remote,
    };
    let mut near_misses = Vec::new();
    for policy in isolating {
        let rules = policy.rules(direction);
        if rules.is_empty() {
            near_misses.push(format!(
                "{} has no {dir} rules: it admits no {dir} traffic at all",
                policy.name
            ));
        }
        for (i, rule) in rules.iter().enumerate() {
            let peer_ok = rule_peer_matches(cluster, policy, rule, remote_ip, remote);
            let port_ok = rule_port_matches(rule, flow, port_target);
            let what = format!("{} {dir}[{i}]", policy.name);
            let peers = describe_peers(rule, direction);
            let ports = describe_ports(rule, port_target);
            near_misses.push(match (peer_ok, port_ok) {
                (true, _) => format!("{what} admits this peer, but only on {ports}"),
                (false, true) => format!(
                    "{what} covers {}/{} (ports: {ports}), but only {peers}",
                    flow.protocol, flow.port
                ),
                (false, false) => format!("{what} admits neither: {peers} on {ports}"),
            });
        }
    }
    let peer_yaml = suggest_peer(remote_ip, remote, &subject.namespace);
    let (list, word) = match direction {
        Direction::Ingress => ("ingress", "from"),
        Direction::Egress => ("egress", "to"),
    };
    // Suggest extending a policy that already allows something in this
    // direction; a pure deny policy is better left as it is.
    let allowing: Vec<&str> = isolating
        .iter()
        .filter(|p| !p.rules(direction).is_empty())
        .map(|p| p.name.as_str())
        .collect();
    let target = match allowing.as_slice() {
        [] => format!(
            "a new policy in namespace {} selecting this pod",
            subject.namespace
        ),
        [one] => format!("policy {one}"),
        many => format!("one of [{}]", many.join(", ")),
    };
    let suggestion = format!(
        "to allow it, add to {target} the {list} rule {{{word}: [{peer_yaml}], ports: [{{protocol: {}, port: {}}}]}}",
        flow.protocol, flow.port
    );
    Denial {
        isolating: names,
        sentence,
        near_misses,
        suggestion,
    }
}

fn yaml_scalar(s: &str) -> String {
    let plain = !s.is_empty()
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off" | "~"
        );
    if plain {
        s.to_string()
    } else {
        format!("\"{s}\"")
    }
}

fn suggest_peer(ip: Ipv4Addr, remote: Option<&PodInfo>, own_namespace: &str) -> String {
    let Some(pod) = remote else {
        return format!("{{ipBlock: {{cidr: {ip}/32}}}}");
    };
    let labels: Vec<String> = pod
        .labels
        .iter()
        .map(|(k, v)| format!("{k}: {}", yaml_scalar(v)))
        .collect();
    let pod_selector = if labels.is_empty() {
        "podSelector: {}".to_string()
    } else {
        format!("podSelector: {{matchLabels: {{{}}}}}", labels.join(", "))
    };
    if pod.namespace == own_namespace {
        format!("{{{pod_selector}}}")
    } else {
        format!(
            "{{namespaceSelector: {{matchLabels: {{{NAMESPACE_NAME_LABEL}: {}}}}}, {pod_selector}}}",
            yaml_scalar(&pod.namespace)
        )
    }
}

/// A packet's 5-tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PacketTuple {
    /// Protocol.
    pub protocol: Protocol,
    /// Source IP.
    pub src: Ipv4Addr,
    /// Source port.
    pub src_port: u16,
    /// Destination IP.
    pub dst: Ipv4Addr,
    /// Destination port.
    pub dst_port: u16,
}

impl PacketTuple {
    /// The tuple of a reply packet (source and destination swapped).
    pub fn reply(&self) -> PacketTuple {
        PacketTuple {
            protocol: self.protocol,
            src: self.dst,
            src_port: self.dst_port,
            dst: self.src,
            dst_port: self.src_port,
        }
    }

    /// The connection this packet would start.
    pub fn flow(&self) -> Flow {
        Flow {
            src: self.src,
            dst: self.dst,
            protocol: self.protocol,
            port: self.dst_port,
        }
    }
}

/// What happened to one packet in a [`ConnectionTable`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketVerdict {
    /// The packet starts a connection: this is the connection's verdict.
    New(Box<Verdict>),
    /// A later packet of an allowed connection, original direction.
    Established,
    /// A reply packet of an allowed connection.
    Reply,
}

impl PacketVerdict {
    /// Whether the packet passes.
    pub fn allowed(&self) -> bool {
        match self {
            PacketVerdict::New(v) => v.allowed(),
            PacketVerdict::Established | PacketVerdict::Reply => true,
        }
    }
}

/// Connections allowed so far. A connection's verdict is decided by its first
/// packet against the cluster of that moment; later packets and replies of an
/// allowed connection pass whatever the policies say then (a policy change does
/// not cut established connections, as with conntrack-based dataplanes). Denied
/// first packets leave no entry, so a retry is evaluated again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionTable {
    allowed: BTreeSet<PacketTuple>,
}

impl ConnectionTable {
    /// An empty table.
    pub fn new() -> Self {
        ConnectionTable::default()
    }

    /// Decides one packet: established or reply traffic of a tracked connection
    /// passes; anything else starts a connection and is evaluated.
    pub fn packet(&mut self, cluster: &Cluster, packet: &PacketTuple) -> PacketVerdict {
        if self.allowed.contains(packet) {
            return PacketVerdict::Established;
        }
        if self.allowed.contains(&packet.reply()) {
            return PacketVerdict::Reply;
        }
        let verdict = evaluate(cluster, &packet.flow());
        if verdict.allowed() {
            self.allowed.insert(*packet);
        }
        PacketVerdict::New(Box::new(verdict))
    }
}
