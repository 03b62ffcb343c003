//! # CNI data paths as operators name them
//!
//! ## Scope
//! What each CNI configuration does to a packet between two pods on
//! different nodes: encapsulate it (and with what), or route it natively
//! (and who knows the route). Same-node traffic never leaves the node's
//! veths and bridge/routing table, whatever the CNI.
//!
//! | name | between nodes | who holds the route to a node's pods |
//! |---|---|---|
//! | `flannel-vxlan` | VXLAN | flanneld programs a route + FDB entry per node |
//! | `flannel-host-gw` | native | flanneld programs a route via each node's IP (nodes share an L2 segment) |
//! | `calico-bgp` | native | BIRD learns each node's pod CIDR over BGP; a failed session withdraws them after the hold time |
//! | `calico-ipip` | IP-in-IP | BIRD-learned routes via the `tunl0` device |
//! | `calico-vxlan` | VXLAN | Felix programs a route + FDB entry per node |
//! | `calico-wireguard` | WireGuard | Felix programs a peer per node |
//! | `cilium` | native (`routing: native`) or VXLAN (`routing: tunnel`, Cilium's default) | the Cilium agent, in eBPF maps |
//! | `aws-vpc-cni` | native: pods take VPC secondary IPs | the VPC itself |
//!
//! Limitations: IPv4 only; Geneve and flannel's UDP backend are not offered;
//! kube-proxy, Services and NetworkPolicy are not on this path (the
//! request-level cluster run has them); pods reach addresses outside the
//! cluster without SNAT, so only CNIs whose pod IPs the underlay routes
//! (aws-vpc-cni) let outside hosts and pods talk.
//!
//! ## Parameters
//! - Encapsulation overheads: IPIP 20 B, VXLAN 50 B, WireGuard 60 B
//!   (docs/calibration.md, row `pkt-encap-overhead`, H; sized header by
//!   header in [`super::packet`]).
//! - Default pod MTU: the node's uplink MTU minus the overhead, which is how
//!   Calico (auto-detection), flannel (`iface MTU - 50` for vxlan) and
//!   Cilium (tunnel overhead 50) set it; docs/calibration.md, row
//!   `cni-pod-mtu`: 1500 -> 1480/1450/1440, AWS 9001 -> 8981/8951/8941,
//!   GCE 1460 -> 1440/1410/1400 (H). aws-vpc-cni: the ENI MTU, 9001
//!   (`AWS_VPC_ENI_MTU` default; docs/calibration.md, row `cni-aws-eni-mtu`).
//! - Per-packet processing at a node, in simulated time: native forwarding
//!   (veth + routing/eBPF) 2.4 µs, from the Cilium TCP_RR row (1M req/s at
//!   about 30% of 32 CPUs: 9.6 CPU-s per 2M packets, half of it per host;
//!   docs/calibration.md, row `kp-ebpf-tcp-rr`, L); an
//!   encapsulating node spends 1/(1 - 0.54) times that, the overlay CPU
//!   cost measured by Slim (docs/calibration.md, row `cni-overlay-cpu`: -54%
//!   CPU without the overlay, NSDI 2019, H ratio), so 5.2 µs. Both are
//!   derived from the figures (fitted), not checked against other data.
//! - aws-vpc-cni pods per node: ENIs x (IPs per ENI - 1) + 2
//!   (docs/calibration.md, row `cni-aws-max-pods`, H): t3.medium 3 x 6 -> 17,
//!   m5.large 3 x 10 -> 29, m5.xlarge 4 x 15 -> 58, m5.4xlarge 8 x 30 -> 234.
//!
//! ## What it emits
//! Nothing by itself: [`super::network`] asks it how to forward.
//!
//! ## Validation
//! Tests pin every configuration's overhead, its default pod MTU on the three
//! underlays (validation: the overheads are summed from header sizes,
//! docs/calibration.md, rows `pkt-encap-overhead` and `cni-pod-mtu`), and
//! the ENI formula's four figures (validation, docs/calibration.md, row
//! `cni-aws-max-pods`); a calibration test pins the per-packet costs derived
//! from rows `kp-ebpf-tcp-rr` and `cni-overlay-cpu`.

use super::packet::EncapKind;
use sim_core::SimDuration;

/// How node-to-node pod traffic is carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// Encapsulated to the destination node's IP.
    Overlay(EncapKind),
    /// Routed natively via the destination node's IP, routes programmed by
    /// the CNI daemon from the Kubernetes API (flannel host-gw, Cilium native).
    StaticRoutes,
    /// Routed natively, routes learned over BGP sessions (Calico).
    Bgp,
    /// The underlay (VPC) routes pod IPs itself (aws-vpc-cni).
    Underlay,
}

/// EC2 instance types in the ENI row (docs/calibration.md, row
/// `cni-aws-max-pods`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceType {
    /// 3 ENIs x 6 IPv4 addresses.
    T3Medium,
    /// 3 ENIs x 10.
    M5Large,
    /// 4 ENIs x 15.
    M5Xlarge,
    /// 8 ENIs x 30.
    M54xlarge,
}

impl InstanceType {
    /// Every instance type known, for error hints.
    pub const ALL: [InstanceType; 4] = [
        InstanceType::T3Medium,
        InstanceType::M5Large,
        InstanceType::M5Xlarge,
        InstanceType::M54xlarge,
    ];
    /// The EC2 name.
    pub fn name(self) -> &'static str {
        match self {
            InstanceType::T3Medium => "t3.medium",
            InstanceType::M5Large => "m5.large",
            InstanceType::M5Xlarge => "m5.xlarge",
            InstanceType::M54xlarge => "m5.4xlarge",
        }
    }
    /// From the EC2 name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }
    /// (ENIs, IPv4 addresses per ENI).
    pub fn enis(self) -> (u32, u32) {
        match self {
            InstanceType::T3Medium => (3, 6),
            InstanceType::M5Large => (3, 10),
            InstanceType::M5Xlarge => (4, 15),
            InstanceType::M54xlarge => (8, 30),
        }
    }
    /// aws-vpc-cni's pod limit: ENIs x (IPs per ENI - 1) + 2 (each ENI's
    /// primary address is not handed to pods; two host-network pods added).
    pub fn max_pods(self) -> u32 {
        let (enis, ips) = self.enis();
        enis * (ips - 1) + 2
    }
}

/// A CNI configuration as users name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cni {
    /// flannel, vxlan backend.
    FlannelVxlan,
    /// flannel, host-gw backend.
    FlannelHostGw,
    /// Calico, native routing with BGP.
    CalicoBgp,
    /// Calico, IP-in-IP.
    CalicoIpip,
    /// Calico, VXLAN.
    CalicoVxlan,
    /// Calico, WireGuard encryption.
    CalicoWireguard,
    /// Cilium (eBPF); `tunnel` is its default VXLAN mode, else native routing.
    Cilium {
        /// VXLAN tunnel (true) or native routing.
        tunnel: bool,
    },
    /// Amazon VPC CNI: pods on VPC secondary IPs of the node's ENIs.
    AwsVpcCni {
        /// Decides how many pods a node can address.
        instance: InstanceType,
    },
}

/// Native forwarding cost per packet per node (see the module doc;
/// docs/calibration.md, row `kp-ebpf-tcp-rr`).
pub const NATIVE_NODE_COST: SimDuration = SimDuration::from_nanos(2_400);
/// Fraction of node CPU an overlay adds, as measured by Slim (-54% without
/// it; docs/calibration.md, row `cni-overlay-cpu`).
pub const OVERLAY_CPU_SAVING: f64 = 0.54;

impl Cni {
    /// The names users write, for error hints.
    pub const NAMES: [&'static str; 8] = [
        "flannel-vxlan",
        "flannel-host-gw",
        "calico-bgp",
        "calico-ipip",
        "calico-vxlan",
        "calico-wireguard",
        "cilium",
        "aws-vpc-cni",
    ];

    /// The name as users write it.
    pub fn name(self) -> &'static str {
        match self {
            Cni::FlannelVxlan => "flannel-vxlan",
            Cni::FlannelHostGw => "flannel-host-gw",
            Cni::CalicoBgp => "calico-bgp",
            Cni::CalicoIpip => "calico-ipip",
            Cni::CalicoVxlan => "calico-vxlan",
            Cni::CalicoWireguard => "calico-wireguard",
            Cni::Cilium { .. } => "cilium",
            Cni::AwsVpcCni { .. } => "aws-vpc-cni",
        }
    }

    /// The plugin, whatever its mode: what operators call it and what
    /// `kubectl -n kube-system get ds` lists (`calico-node`, `cilium`,
    /// `kube-flannel-ds`, `aws-node`).
    pub fn plugin(self) -> &'static str {
        match self {
            Cni::FlannelVxlan | Cni::FlannelHostGw => "flannel",
            Cni::CalicoBgp | Cni::CalicoIpip | Cni::CalicoVxlan | Cni::CalicoWireguard => "calico",
            Cni::Cilium { .. } => "cilium",
            Cni::AwsVpcCni { .. } => "aws-vpc-cni",
        }
    }

    /// The plugin names a cluster-level scenario may write.
    pub const PLUGINS: [&'static str; 3] = ["calico", "cilium", "flannel"];

    /// The plugin as installed from its own manifest when no mode is said
    /// (the cluster-level `cni: calico | cilium | flannel`, where only policy
    /// enforcement matters): Calico's `calico.yaml` pool is IP-in-IP
    /// (`CALICO_IPV4POOL_IPIP: Always`), Cilium's default routing mode is a
    /// VXLAN tunnel, flannel's default backend is vxlan.
    pub fn plugin_default(name: &str) -> Option<Cni> {
        match name {
            "calico" => Some(Cni::CalicoIpip),
            "cilium" => Some(Cni::Cilium { tunnel: true }),
            "flannel" => Some(Cni::FlannelVxlan),
            _ => None,
        }
    }

    /// Whether the plugin enforces NetworkPolicy: Calico and Cilium do;
    /// flannel does not (Kubernetes docs, "Network Policies": a plugin must
    /// implement them); the Amazon VPC CNI only with its network policy
    /// agent enabled, which is off by default (`enableNetworkPolicy`), and
    /// not modelled.
    pub fn enforces_policy(self) -> bool {
        !matches!(
            self,
            Cni::FlannelVxlan | Cni::FlannelHostGw | Cni::AwsVpcCni { .. }
        )
    }

    /// How pod traffic crosses between nodes.
    pub fn routing(self) -> Routing {
        match self {
            Cni::FlannelVxlan | Cni::CalicoVxlan | Cni::Cilium { tunnel: true } => {
                Routing::Overlay(EncapKind::Vxlan)
            }
            Cni::CalicoIpip => Routing::Overlay(EncapKind::Ipip),
            Cni::CalicoWireguard => Routing::Overlay(EncapKind::Wireguard),
            Cni::FlannelHostGw | Cni::Cilium { tunnel: false } => Routing::StaticRoutes,
            Cni::CalicoBgp => Routing::Bgp,
            Cni::AwsVpcCni { .. } => Routing::Underlay,
        }
    }

    /// The encapsulation between nodes, if any.
    pub fn encap(self) -> Option<EncapKind> {
        match self.routing() {
            Routing::Overlay(k) => Some(k),
            _ => None,
        }
    }

    /// Bytes added between nodes.
    pub fn overhead(self) -> u32 {
        self.encap().map_or(0, EncapKind::overhead)
    }

    /// The pod MTU the CNI configures when not told: uplink MTU minus the
    /// overhead.
    pub fn default_pod_mtu(self, uplink_mtu: u32) -> u32 {
        uplink_mtu.saturating_sub(self.overhead())
    }

    /// Pods a node can address, if the CNI limits it below the kubelet's
    /// max-pods.
    pub fn max_pods(self) -> Option<u32> {
        match self {
            Cni::AwsVpcCni { instance } => Some(instance.max_pods()),
            _ => None,
        }
    }

    /// Simulated processing time per packet at a node that forwards it
    /// without (false) or with (true) encapsulating or decapsulating.
    pub fn node_cost(self, encapsulating: bool) -> SimDuration {
        if encapsulating {
            SimDuration::from_secs_f64(NATIVE_NODE_COST.as_secs_f64() / (1.0 - OVERLAY_CPU_SAVING))
        } else {
            NATIVE_NODE_COST
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [Cni; 10] = [
        Cni::FlannelVxlan,
        Cni::FlannelHostGw,
        Cni::CalicoBgp,
        Cni::CalicoIpip,
        Cni::CalicoVxlan,
        Cni::CalicoWireguard,
        Cni::Cilium { tunnel: true },
        Cni::Cilium { tunnel: false },
        Cni::AwsVpcCni {
            instance: InstanceType::M5Large,
        },
        Cni::AwsVpcCni {
            instance: InstanceType::T3Medium,
        },
    ];

    #[test]
    fn overheads_and_pod_mtus_match_calico_docs() {
        // Validation, docs/calibration.md, rows `pkt-encap-overhead` and
        // `cni-pod-mtu`: overhead IPIP 20, VXLAN 50, WG 60;
        // pod MTU on 1500 / AWS 9001 / GCE 1460 underlays.
        let want: [(u32, [u32; 3]); 10] = [
            (50, [1450, 8951, 1410]),
            (0, [1500, 9001, 1460]),
            (0, [1500, 9001, 1460]),
            (20, [1480, 8981, 1440]),
            (50, [1450, 8951, 1410]),
            (60, [1440, 8941, 1400]),
            (50, [1450, 8951, 1410]),
            (0, [1500, 9001, 1460]),
            (0, [1500, 9001, 1460]),
            (0, [1500, 9001, 1460]),
        ];
        for (cni, (overhead, mtus)) in ALL.iter().zip(want) {
            let got = [1500, 9001, 1460].map(|u| cni.default_pod_mtu(u));
            println!(
                "{:<16} overhead {:>2} B  pod MTU {:?}  (calibration {:?}, residual {:?})",
                cni.name(),
                cni.overhead(),
                got,
                mtus,
                [0, 1, 2].map(|i| got[i] as i64 - mtus[i] as i64)
            );
            assert_eq!(cni.overhead(), overhead, "{}", cni.name());
            assert_eq!(got, mtus, "{}", cni.name());
        }
    }

    #[test]
    fn eni_formula_matches_eni_max_pods() {
        // Validation, docs/calibration.md, row `cni-aws-max-pods`: t3.medium 17,
        // m5.large 29, m5.xlarge 58, m5.4xlarge 234.
        let got: Vec<u32> = InstanceType::ALL.iter().map(|t| t.max_pods()).collect();
        assert_eq!(got, [17, 29, 58, 234]);
        assert_eq!(
            Cni::AwsVpcCni {
                instance: InstanceType::M5Large
            }
            .max_pods(),
            Some(29)
        );
        assert_eq!(Cni::CalicoBgp.max_pods(), None);
    }

    /// Calibration (in-sample): the costs are derived from the figures
    /// (docs/calibration.md, rows `kp-ebpf-tcp-rr` and `cni-overlay-cpu`).
    #[test]
    fn calibration_overlay_costs_more_per_packet_than_native() {
        let native = Cni::CalicoVxlan.node_cost(false);
        let overlay = Cni::CalicoVxlan.node_cost(true);
        assert_eq!(native, SimDuration::from_nanos(2_400));
        // 2.4 us / (1 - 0.54) = 5.217 us
        assert_eq!(overlay, SimDuration::from_nanos(5_217));
    }

    #[test]
    fn names_round_trip() {
        for c in ALL {
            assert!(Cni::NAMES.contains(&c.name()));
        }
    }
}
