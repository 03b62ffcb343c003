//! Kubernetes NetworkPolicy (`networking.k8s.io/v1`): the semantics core.
//!
//! Given policies, namespaces and pods, decide whether a connection is allowed,
//! and say why in words an operator can act on. This module is flow-level: a
//! verdict is per connection, decided when it starts ([`evaluate`]);
//! [`ConnectionTable`] carries it to later packets and replies.
//!
//! ```text
//!  manifests (YAML) ──manifest──▶ Cluster{policies, namespaces, pods}
//!                                     │
//!            Flow{src, dst, proto, port} ──eval──▶ Verdict{egress side, ingress side, why}
//!                                     │
//!   + nodes, --peer addresses ──table──▶ truth table text / JSON flows,
//!                                          expectations checked (`knsim netpol DIR`)
//! ```
//!
//! # Semantics
//!
//! - A pod is isolated for a direction only by the policies that select it
//!   (the policy's namespace and `podSelector`) and list that direction in
//!   `policyTypes`. A pod no policy isolates accepts/sends everything.
//! - What an isolated pod allows is the union of the rules of all policies that
//!   isolate it. A connection needs the source's egress *and* the
//!   destination's ingress.
//! - Peers: `podSelector` alone selects pods in the policy's own namespace;
//!   `namespaceSelector` alone selects all pods of matching namespaces; both in
//!   one peer mean AND; separate peers mean OR. Every namespace carries
//!   `kubernetes.io/metadata.name=<name>`. `ipBlock` (with `except`) is matched
//!   against the remote IP, pod IPs included.
//! - An omitted or empty `from`/`to` admits every peer (external IPs too); an
//!   omitted or empty `ports` admits every port; `ingress: [{}]` allows all;
//!   `ingress: []` or no ingress with policyType Ingress denies all.
//! - Ports: numeric, ranges (`endPort`, inclusive), named ports resolved on the
//!   destination pod's container ports of the same protocol (ingress: the
//!   selected pod; egress: the destination, so named egress ports never match
//!   a non-pod destination). TCP, UDP and SCTP are distinct.
//! - Ingress from the destination pod's own node (its host IP) is always
//!   allowed. Egress to the node is not exempt. This is the API reference's
//!   rule (NetworkPolicySpec `ingress`: traffic is allowed "if the traffic
//!   source is the pod's local node"; `egress` names no such exception). The
//!   concept page says more broadly that "traffic to and from the node where
//!   a Pod is running is always allowed"; CNIs differ on egress to the node,
//!   and knsim keeps the narrower, API-level rule.
//! - Addresses outside the cluster (`knsim netpol --peer`) are matched by
//!   `ipBlock` only (selectors never match them), minus `except`. The concept
//!   page notes that "cluster ingress and egress mechanisms often require
//!   rewriting the source or destination IP of packets" and that it is
//!   undefined whether that happens before or after policy processing: knsim
//!   evaluates the address as given, i.e. as the pod sees it.
//! - Defaulting as the API server does it: a port's `protocol` is TCP; an
//!   empty or absent `policyTypes` is `[Ingress]`, plus `Egress` if `egress`
//!   has at least one rule.
//!
//! # Scope and limitations
//!
//! - IPv4 only: IPv6 `ipBlock`s are rejected with a clear error. CIDRs are
//!   [`crate::ipam::Ipv4Cidr`]; host bits in an `ipBlock` CIDR are cleared,
//!   as the API server's legacy parsing does.
//! - Host-network pods follow the most common implementation described in the
//!   Kubernetes docs: they have their node's IP, are never selected by
//!   `podSelector`/`namespaceSelector` (as policy targets or as peers), and
//!   their traffic is traffic from/to the node IP.
//! - Loopback (a pod to its own IP) is evaluated like any connection. Upstream
//!   leaves it undefined (CNIs differ, and the e2e suite ignores those cells).
//! - Named ports resolve on `spec.containers` only, not on init/sidecar
//!   containers.
//! - Services are not modelled here: flows are pod IP to pod IP, as policies
//!   see them after DNAT.
//! - AdminNetworkPolicy, CNI-specific policies (Calico, Cilium) and `List`
//!   objects are not read; they are listed as skipped.
//! - Cost: evaluation walks the policies of the cluster once per side; the
//!   simulator should cache verdicts per flow (they are pure).
//!
//! # Parameters
//!
//! None to calibrate: the semantics are the API's. Synthetic addresses for pods
//! and nodes without one come from [`SYNTHETIC_POD_CIDR`] and
//! [`SYNTHETIC_NODE_CIDR`] (see [`manifest`]).
//!
//! # What it emits
//!
//! A [`Verdict`] per connection: allowed or denied per side, the isolating
//! policies, the rules that admitted it, or for a denial a sentence such as
//! "pod db-0 in namespace prod is isolated for ingress by policies [deny-all,
//! allow-frontend]; none of their ingress rules admits pods with labels
//! {app=batch} from namespace batch on TCP/5432", what each rule of those
//! policies does admit, and a rule that would allow it. The truth table
//! ([`Reachability`]: pods, nodes and `--peer` addresses as rows and
//! columns) renders these as text or as [`FlowCheck`]s for JSON, and checks
//! a team's intentions ([`parse_expectations`], [`check_expectations`]).
//! Manifest errors are `file:line:column: error: ...` plus a `hint:` line.
//!
//! # Validation
//!
//! `e2e_tests` (in this module) replays the upstream e2e matrix (namespaces
//! x, y, z; pods a, b, c labelled `pod=a`...; ports 80/81, TCP and UDP): each
//! case gives a policy as YAML, the full expected reachability grid and the
//! policy that decides chosen cells, and covers every rule above. Property
//! tests check that with no policies everything is allowed, that adding a
//! policy changes only flows from or to the pods it selects, and that
//! removing all policies restores the original verdicts. Manifest tests check
//! every validation error for position, hint and absence of panics, and fuzz
//! the loader with mutated manifests.
//!
//! # References
//!
//! - Kubernetes API reference, NetworkPolicy v1 (networking.k8s.io;
//!   kubernetes.io/docs/reference/kubernetes-api/policy-resources/network-policy-v1/:
//!   the `ingress` field's local-node rule, `IPBlock` and `except`), and the
//!   "Network Policies" concept page (kubernetes.io/docs/concepts/services-networking/network-policies/:
//!   IP blocks and the node exception, source/destination rewriting).
//! - kubernetes `pkg/apis/networking/validation/validation.go`
//!   (`ValidateNetworkPolicySpec`, `ValidateNetworkPolicyPort`,
//!   `ValidateIPBlock`) and `pkg/apis/networking/v1/defaults.go`.
//! - kubernetes `test/e2e/network/netpol/` (the truth-table e2e suite).

mod eval;
pub mod manifest;
mod names;
mod policy;
mod selector;
mod table;

#[cfg(test)]
mod e2e_tests;

pub use crate::protocol::Protocol;
pub use eval::{
    evaluate, ConnectionTable, Denial, Flow, PacketTuple, PacketVerdict, RuleRef, SideVerdict,
    Verdict,
};
pub use manifest::{
    load_dir, parse_manifests, ManifestError, Manifests, SYNTHETIC_NODE_CIDR, SYNTHETIC_POD_CIDR,
};
pub use policy::{
    Cluster, ContainerPort, Direction, IpBlock, Namespace, Peer, PodInfo, Policy, PolicyPort,
    PolicyTypes, PortSpec, Rule, NAMESPACE_NAME_LABEL,
};
pub use selector::{format_labels, LabelSelector, Labels, Operator, Requirement};
pub use table::expect::{check_expectations, parse_expectations, Expectation};
pub use table::{
    parse_probe_port, probe_ports, Endpoint, EndpointKind, FlowCheck, OutsidePeer, Reachability,
};
