//! # SNAT source ports: MASQUERADE's port choice and the conntrack insert race
//!
//! ## Scope
//! A pod's connection that leaves through its node's MASQUERADE rule gets
//! the node's address as source; the kernel keeps the pod's source port if
//! no tracked flow from the node to the same destination ip:port uses it,
//! and otherwise searches the port range for a free one. Both checks look
//! only at *confirmed* conntrack entries. A new flow's entry is confirmed
//! at the end of the packet's trip through netfilter; until then it is
//! invisible. So when two new flows from one node to one destination are
//! NATed within that window (`race_window`), both can pick the same port;
//! the second to confirm finds the tuple taken, the kernel counts
//! `insert_failed` and drops the packet. For a SYN, TCP retransmits it after
//! 1 s, so the connection is 1 s late (XING's "A reason for unexplained
//! connection timeouts on Kubernetes/Docker", 2018).
//!
//! How likely two overlapping allocations collide depends on how the kernel
//! chooses:
//! - default (no flag) and `--random`: the pod's own source port is kept
//!   when free. Two pods pick their ephemeral ports independently from
//!   `ip_local_port_range` (32768..60999, 28232 ports), so two kept ports
//!   coincide with probability 1/28232. When the pod's port is taken
//!   (probability `u`, the share of that range already in use towards the
//!   destination), the search starts at an offset that is the same for
//!   both flows (the shared per-protocol rover without flags; a hash of
//!   the addresses and destination port with `--random`) and, since
//!   neither sees the other, ends on the same port: a collision whenever
//!   both searched.
//! - `--random-fully` (`NF_NAT_RANGE_PROTO_RANDOM_FULLY`, iptables 1.6.2,
//!   kernel 3.14): the port is always drawn at random from the rule's range
//!   (1024..65535 for MASQUERADE, 64512 ports): two overlapping flows
//!   collide with probability 1/64512.
//!
//! Per connection: O(k) where k is the number of allocations from the same
//! node to the same destination still inside the window (about
//! rate x window, well below 1 in practice).
//!
//! Limitations: `u` is taken from the node's whole conntrack table (live
//! entries / 28232, at most 1), so it is exact only when the node's tracked
//! flows all go to the one destination, as in the `nat_port_race` replay;
//! a collision between a kept port and a searched one is counted with
//! probability 1/28232 (the searched port is rarely in the ephemeral
//! range's busy part); three-way collisions count as one loss per late
//! flow.
//!
//! ## Parameters
//! - `race_window`: time from the NAT decision to conntrack confirmation
//!   of a new flow \[s\]. No published measurement was found; it spans the
//!   rest of the packet's netfilter traversal on one CPU, microseconds on
//!   current hardware. It is a scenario parameter, stated as an
//!   assumption; the loss rate is proportional to it (docs/calibration.md,
//!   row `snat-race-window`).
//! - `ip_local_port_range` 32768..60999 (Linux default,
//!   `Documentation/networking/ip-sysctl.rst`): [`EPHEMERAL_PORTS`].
//! - MASQUERADE's default range for source ports above 1023: 1024..65535
//!   (`nf_nat_masquerade` / `nf_nat_l4proto_unique_tuple`):
//!   [`MASQUERADE_PORTS`] (both ranges: docs/calibration.md, row
//!   `snat-port-ranges`).
//!
//! ## What it emits
//! [`Snat::allocate`] says whether the flow lost the race; the caller
//! drops its SYN and counts `insert_failed`.
//!
//! ## Validation
//! Unit tests: no collision without overlap; the collision rate of a
//! Poisson stream against the closed form rate^2 x window x P(collision)
//! for `u` = 0, `u` = 1 and `--random-fully`, with the residuals printed.
//!
//! ## References
//! XING Engineering blog, "A reason for unexplained connection timeouts on
//! Kubernetes/Docker" (2018); Linux `net/netfilter/nf_nat_core.c`
//! (`get_unique_tuple`), `nf_nat_proto_common.c`
//! (`nf_nat_l4proto_unique_tuple`), `nf_conntrack_core.c`
//! (`__nf_conntrack_confirm`, `insert_failed`); kubernetes/kubernetes#62628
//! (kube-proxy / CNI masquerade with `--random-fully`).

use rand::RngExt;
use sim_core::{SimDuration, SimRng, SimTime};
use std::collections::{HashMap, VecDeque};

/// Size of Linux's default `ip_local_port_range` (32768..60999) \[ports\].
pub const EPHEMERAL_PORTS: u32 = 60_999 - 32_768 + 1;

/// Size of MASQUERADE's source range for ports above 1023 (1024..65535)
/// \[ports\].
pub const MASQUERADE_PORTS: u32 = 65_535 - 1_024 + 1;

/// How MASQUERADE picks ports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortChoice {
    /// No flag (or `--random`): keep the pod's port if free, else search
    /// from an offset shared by concurrent flows.
    Default,
    /// `--random-fully`: a random port every time.
    RandomFully,
}

/// The node's SNAT settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatConfig {
    /// Port selection.
    pub ports: PortChoice,
    /// NAT decision to conntrack confirmation.
    pub race_window: SimDuration,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    at: SimTime,
    searched: bool,
}

/// Allocations in flight, per (node, destination).
#[derive(Clone, Debug)]
pub struct Snat {
    cfg: SnatConfig,
    pending: HashMap<(u32, u32), VecDeque<Pending>>,
}

/// The probability that two overlapping allocations end on one port, given
/// whether each had to search.
pub fn clash_probability(ports: PortChoice, a_searched: bool, b_searched: bool) -> f64 {
    match ports {
        PortChoice::RandomFully => 1.0 / f64::from(MASQUERADE_PORTS),
        PortChoice::Default if a_searched && b_searched => 1.0,
        PortChoice::Default => 1.0 / f64::from(EPHEMERAL_PORTS),
    }
}

impl Snat {
    /// No allocation in flight.
    pub fn new(cfg: SnatConfig) -> Self {
        Snat {
            cfg,
            pending: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> SnatConfig {
        self.cfg
    }

    /// A new flow from `node` to destination `dst` is NATed at `now`;
    /// `in_use` is the share of the pod's port range already taken towards
    /// it (0..=1). Returns true if the flow loses the insert race (its
    /// packet is dropped, `insert_failed`).
    pub fn allocate(
        &mut self,
        now: SimTime,
        node: u32,
        dst: u32,
        in_use: f64,
        rng: &mut SimRng,
    ) -> bool {
        let q = self.pending.entry((node, dst)).or_default();
        while q
            .front()
            .is_some_and(|p| p.at + self.cfg.race_window <= now)
        {
            q.pop_front();
        }
        let searched = match self.cfg.ports {
            PortChoice::RandomFully => true,
            PortChoice::Default => rng.random::<f64>() < in_use.clamp(0.0, 1.0),
        };
        let lost = q
            .iter()
            .any(|p| rng.random::<f64>() < clash_probability(self.cfg.ports, p.searched, searched));
        if !lost {
            q.push_back(Pending { at: now, searched });
        }
        lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::RngStreams;

    /// Losses per second of a Poisson stream of `rate` flows/s over `secs`.
    fn simulate(ports: PortChoice, rate: f64, window_us: u64, in_use: f64, secs: f64) -> f64 {
        let mut s = Snat::new(SnatConfig {
            ports,
            race_window: SimDuration::from_micros(window_us),
        });
        let mut rng = RngStreams::new(7).stream("snat");
        let mut arrivals = RngStreams::new(7).stream("arrivals");
        let mut t = 0.0;
        let mut lost = 0u64;
        while t < secs {
            let u: f64 = arrivals.random();
            t += -(1.0 - u).ln() / rate;
            if s.allocate(
                SimTime::ZERO + SimDuration::from_secs_f64(t),
                0,
                0,
                in_use,
                &mut rng,
            ) {
                lost += 1;
            }
        }
        lost as f64 / secs
    }

    #[test]
    fn no_overlap_no_clash() {
        let mut s = Snat::new(SnatConfig {
            ports: PortChoice::Default,
            race_window: SimDuration::from_micros(10),
        });
        let mut rng = RngStreams::new(1).stream("snat");
        let t0 = SimTime::ZERO;
        assert!(!s.allocate(t0, 0, 0, 1.0, &mut rng));
        assert!(!s.allocate(t0 + SimDuration::from_micros(10), 0, 0, 1.0, &mut rng));
        // Another destination or node never clashes.
        assert!(!s.allocate(t0 + SimDuration::from_micros(11), 0, 1, 1.0, &mut rng));
        assert!(!s.allocate(t0 + SimDuration::from_micros(11), 1, 0, 1.0, &mut rng));
        // Inside the window with both searching: the same port.
        assert!(s.allocate(t0 + SimDuration::from_micros(12), 0, 0, 1.0, &mut rng));
    }

    #[test]
    fn loss_rate_matches_rate_squared_times_window() {
        // Pairs overlap at rate^2 x window (Poisson); each clashes with
        // clash_probability.
        let cases = [
            (PortChoice::Default, 300.0, 20, 1.0, 200.0),
            (PortChoice::Default, 2000.0, 500, 0.0, 4000.0),
            (PortChoice::RandomFully, 2000.0, 500, 1.0, 6000.0),
        ];
        for (ports, rate, w_us, u, secs) in cases {
            let got = simulate(ports, rate, w_us, u, secs);
            let searched = u > 0.5;
            let p = clash_probability(ports, searched, searched);
            let want = rate * rate * (w_us as f64 * 1e-6) * p;
            let resid = (got - want) / want;
            println!("{ports:?} rate {rate}/s window {w_us}us u {u}: {got:.4}/s vs {want:.4}/s ({:+.1}%)", resid * 100.0);
            assert!(resid.abs() < 0.2, "{got} vs {want}");
        }
        assert!(
            clash_probability(PortChoice::RandomFully, true, true)
                < clash_probability(PortChoice::Default, false, false)
        );
    }
}
