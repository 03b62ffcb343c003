//! # NodePorts: allocation, and the node addresses a NodePort opens on
//!
//! ## Scope
//! A NodePort or LoadBalancer Service gets a port in the apiserver's
//! `--service-node-port-range` on every node. [`allocate`] assigns them as
//! the apiserver does: a port given in the spec is reserved (a second
//! Service asking for it is refused: `provided port is already allocated`);
//! the others are allocated from the range's dynamic band first (KEP-3668:
//! the lower band of `min(max(16, size/32), 128)` ports is kept for ports
//! given by hand). The apiserver picks at random within the band; the model
//! takes the lowest free port, so that a run's ports depend on its file
//! alone (a model choice, not upstream's).
//!
//! Which node addresses accept a NodePort is kube-proxy's
//! `nodePortAddresses` ([`NodePortAddresses`]): empty means every local
//! address in iptables and IPVS modes, and the node's primary address in
//! nftables mode (its default is `primary`). A node has an internal
//! address (its primary) and, with `nodes.public_addresses`, a public
//! address on its interface as well (bare metal and hosting providers that
//! put it there).
//!
//! ## Parameters
//! Range 30000-32767 (docs/calibration.md, row `svc-node-port-range`);
//! addresses per mode (row `svc-node-port-addresses`); the static band
//! (row `svc-node-port-static-band`).
//!
//! ## What it emits
//! Each Service port's NodePort, or a located collision; whether an address
//! accepts NodePort traffic.
//!
//! ## Validation
//! Unit tests in `tests.rs` (allocation order, collisions, exhaustion, the
//! addresses per mode).

use crate::ipam::Ipv4Cidr;
use crate::kube_proxy::Mode;
use std::fmt;
use std::net::Ipv4Addr;

/// The apiserver's default `--service-node-port-range` (30000-32767).
pub const DEFAULT_RANGE: (u16, u16) = (30000, 32767);

/// Size of the static band at the bottom of a range of `size` ports
/// (KEP-3668: `min(max(16, size/32), 128)`).
pub fn static_band(size: u32) -> u32 {
    (size / 32).clamp(16, 128)
}

/// Why a NodePort could not be given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocError {
    /// The port asked for lies outside the range.
    OutOfRange {
        /// The port.
        port: u16,
        /// The range.
        range: (u16, u16),
    },
    /// Another Service holds it.
    Taken {
        /// The port.
        port: u16,
        /// Index (into the request list) of the Service that holds it.
        holder: usize,
    },
    /// Every port of the range is allocated.
    Full,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::OutOfRange { port, range } => write!(
                f,
                "spec.ports[].nodePort: Invalid value: {port}: provided port is not in the valid range. The range of valid ports is {}-{}",
                range.0, range.1
            ),
            AllocError::Taken { port, .. } => write!(
                f,
                "spec.ports[].nodePort: Invalid value: {port}: provided port is already allocated"
            ),
            AllocError::Full => f.write_str("range of valid NodePorts is full"),
        }
    }
}

/// Allocates the NodePorts of `requests` (one entry per Service port that
/// needs one, `Some(port)` when the spec gives it) in `range`: ports given
/// first, in order, then the rest from the dynamic band, lowest free first,
/// then the static band. `Err((i, why))` names the first request refused.
pub fn allocate(
    requests: &[Option<u16>],
    range: (u16, u16),
) -> Result<Vec<u16>, (usize, AllocError)> {
    let (lo, hi) = range;
    let size = u32::from(hi) - u32::from(lo) + 1;
    let mut holder: Vec<Option<usize>> = vec![None; size as usize];
    let mut out = vec![0u16; requests.len()];
    for (i, r) in requests.iter().enumerate() {
        let Some(port) = *r else { continue };
        if port < lo || port > hi {
            return Err((i, AllocError::OutOfRange { port, range }));
        }
        let slot = &mut holder[usize::from(port - lo)];
        if let Some(h) = *slot {
            return Err((i, AllocError::Taken { port, holder: h }));
        }
        *slot = Some(i);
        out[i] = port;
    }
    let band = static_band(size) as usize;
    let order = (band..size as usize).chain(0..band);
    let mut free = order.filter(|&o| holder[o].is_none());
    for (i, r) in requests.iter().enumerate() {
        if r.is_none() {
            let Some(o) = free.next() else {
                return Err((i, AllocError::Full));
            };
            out[i] = lo + o as u16;
        }
    }
    Ok(out)
}

/// kube-proxy's `nodePortAddresses`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum NodePortAddresses {
    /// Unset: the mode's default (every local address for iptables and
    /// IPVS, the primary address for nftables).
    #[default]
    Default,
    /// `primary`: the node's primary (internal) address only.
    Primary,
    /// A list of CIDRs: the node's addresses inside any of them.
    Cidrs(Vec<Ipv4Cidr>),
}

/// Which of a node's addresses a packet was sent to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeAddressKind {
    /// Its internal (primary) address.
    Internal,
    /// Its public address.
    Public,
}

impl NodeAddressKind {
    /// As reports name it.
    pub fn name(self) -> &'static str {
        match self {
            NodeAddressKind::Internal => "internal",
            NodeAddressKind::Public => "public",
        }
    }
}

/// Whether kube-proxy in `mode` with `setting` accepts NodePort traffic on
/// address `addr` of kind `kind`. The eBPF load balancer (Cilium) is taken
/// to behave as iptables (every address), its own docs not being cited here.
pub fn accepts(
    mode: Mode,
    setting: &NodePortAddresses,
    kind: NodeAddressKind,
    addr: Ipv4Addr,
) -> bool {
    match setting {
        NodePortAddresses::Default => match mode {
            Mode::Nftables => kind == NodeAddressKind::Internal,
            Mode::Iptables | Mode::Ipvs | Mode::Ebpf => true,
        },
        NodePortAddresses::Primary => kind == NodeAddressKind::Internal,
        NodePortAddresses::Cidrs(cidrs) => cidrs.iter().any(|c| c.contains(addr)),
    }
}

/// The node addresses of a run: node `i`'s internal address is the
/// `10 + i`-th of `internal`, its public one (when nodes have them) the
/// `10 + i`-th of `public`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeAddressing {
    /// The nodes' subnet.
    pub internal: Ipv4Cidr,
    /// The public range the nodes' public addresses come from; `None`:
    /// nodes have no public address.
    pub public: Option<Ipv4Cidr>,
}

impl Default for NodeAddressing {
    fn default() -> Self {
        NodeAddressing {
            internal: Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 16).expect("valid"),
            public: None,
        }
    }
}

impl NodeAddressing {
    /// The documentation range 203.0.113.0/24 (RFC 5737) for public node
    /// addresses.
    pub fn documentation_public() -> Ipv4Cidr {
        Ipv4Cidr::new(Ipv4Addr::new(203, 0, 113, 0), 24).expect("valid")
    }

    /// Node `node`'s address of `kind` (`None`: it has none).
    pub fn address(&self, node: usize, kind: NodeAddressKind) -> Option<Ipv4Addr> {
        let cidr = match kind {
            NodeAddressKind::Internal => Some(self.internal),
            NodeAddressKind::Public => self.public,
        }?;
        let offset = 10 + node as u64;
        (offset < cidr.size()).then(|| cidr.nth(offset))
    }
}
