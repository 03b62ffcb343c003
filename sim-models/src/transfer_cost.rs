//! # Data transfer between zones: bytes per zone pair and what the cloud bills
//!
//! ## Scope
//! Counts the bytes each hop of a request and its response carries from
//! one zone to another, and prices them by the cloud's billing rule:
//! - **AWS**: traffic between Availability Zones of one region is billed
//!   "$0.01/GB in each direction": the sender pays out, the receiver pays
//!   in, so a GB that crosses costs $0.02; traffic within a zone on private
//!   IPs is free. Between an ALB (or Classic LB) and its targets on private
//!   IPs in the same VPC traffic is free even across zones (a reading of
//!   the page's wording, M); with an NLB and cross-zone load balancing on,
//!   "EC2 data transfer charges apply".
//! - **GCP**: inter-zone traffic in a region is billed as egress at the
//!   source only, $0.01/GiB; ingress is free.
//!
//! A hop is classified by what carries it ([`Carrier`]) so that the ALB
//! exemption applies to the LB-to-target leg only. Bytes are kept per
//! (source zone, destination zone) as a k x k matrix: adding a hop is O(1)
//! in zones; pricing is O(k^2) and runs once per window.
//!
//! With random endpoint choice (kube-proxy's iptables mode), the share of
//! hops that cross zones is 1 - sum_i c_i e_i for client shares c_i and
//! endpoint shares e_i ([`expected_cross_share`]); with both even over k
//! zones it is (k-1)/k.
//!
//! Not modelled: inter-region and internet egress, NAT gateway processing
//! (the NAT gateway's own module), Azure (free now; its rate while charged
//! is unknown), tiered or committed-use prices.
//!
//! ## Parameters
//! Prices per unit as inputs with their defaults (docs/calibration.md,
//! rows `price-aws-inter-az` and `price-gcp-inter-zone`).
//!
//! ## What it emits
//! [`ZoneBytes`]: bytes per zone pair and per carrier; [`ZoneBytes::cost`]
//! in dollars for a [`Billing`] rule; the crossing share.
//!
//! ## Validation
//! Unit tests: the closed form (k-1)/k for k = 2, 3, 4 against random
//! draws; the billing arithmetic on hand-computed cases (AWS both
//! directions, GCP egress only in GiB, the ALB exemption).

/// Bytes in a decimal gigabyte (AWS prices per GB).
pub const GB: f64 = 1e9;
/// Bytes in a gibibyte (GCP prices per GiB).
pub const GIB: f64 = 1_073_741_824.0;

/// How a cloud bills traffic between zones of one region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Billing {
    /// AWS: `per_gb` charged out at the sender and again in at the
    /// receiver for each GB (1e9 bytes) that crosses; ALB-to-target free.
    Aws {
        /// Dollars per GB in each direction.
        per_gb: f64,
    },
    /// GCP: `per_gib` charged at the source for each GiB that leaves its
    /// zone.
    Gcp {
        /// Dollars per GiB of egress.
        per_gib: f64,
    },
}

impl Billing {
    /// AWS's rate: $0.01/GB in each direction (row `price-aws-inter-az`).
    pub fn aws() -> Self {
        Billing::Aws { per_gb: 0.01 }
    }

    /// GCP's rate: $0.01/GiB on egress (row `price-gcp-inter-zone`).
    pub fn gcp() -> Self {
        Billing::Gcp { per_gib: 0.01 }
    }
}

/// What carries a hop: its billing may differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    /// Pod to pod, node to node (kube-proxy's second hop included).
    Instance,
    /// An Application (or Classic) Load Balancer to its target on private
    /// IPs: free on AWS.
    ApplicationLb,
    /// A Network Load Balancer to its target (cross-zone on: billed).
    NetworkLb,
}

const CARRIERS: usize = 3;

impl Carrier {
    fn index(self) -> usize {
        match self {
            Carrier::Instance => 0,
            Carrier::ApplicationLb => 1,
            Carrier::NetworkLb => 2,
        }
    }
}

/// Bytes per (source zone, destination zone, carrier).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneBytes {
    zones: usize,
    /// `[(carrier * zones + src) * zones + dst]`.
    bytes: Vec<u64>,
}

impl ZoneBytes {
    /// No bytes yet, over `zones` zones.
    pub fn new(zones: u32) -> Self {
        let zones = zones as usize;
        ZoneBytes {
            zones,
            bytes: vec![0; CARRIERS * zones * zones],
        }
    }

    /// Zones counted.
    pub fn zones(&self) -> u32 {
        self.zones as u32
    }

    /// `bytes` sent from zone `src` to zone `dst` by `carrier`. O(1).
    pub fn add(&mut self, src: u32, dst: u32, carrier: Carrier, bytes: u64) {
        let i = (carrier.index() * self.zones + src as usize) * self.zones + dst as usize;
        self.bytes[i] += bytes;
    }

    /// Bytes from `src` to `dst`, all carriers.
    pub fn between(&self, src: u32, dst: u32) -> u64 {
        (0..CARRIERS)
            .map(|c| self.bytes[(c * self.zones + src as usize) * self.zones + dst as usize])
            .sum()
    }

    /// All bytes counted.
    pub fn total(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Bytes `carrier` carried, within and between zones.
    pub fn total_of(&self, carrier: Carrier) -> u64 {
        self.pairs()
            .filter(|&(c, _, _, _)| c == carrier)
            .map(|(_, _, _, b)| b)
            .sum()
    }

    /// Bytes `carrier` carried across a zone boundary.
    pub fn crossing_of(&self, carrier: Carrier) -> u64 {
        self.pairs()
            .filter(|&(c, s, d, _)| c == carrier && s != d)
            .map(|(_, _, _, b)| b)
            .sum()
    }

    /// Bytes that crossed a zone boundary.
    pub fn crossing(&self) -> u64 {
        self.pairs()
            .filter(|&(_, s, d, _)| s != d)
            .map(|(_, _, _, b)| b)
            .sum()
    }

    /// The share of bytes that crossed a zone boundary (0 with no bytes).
    pub fn crossing_share(&self) -> f64 {
        let total = self.total();
        if total == 0 {
            0.0
        } else {
            self.crossing() as f64 / total as f64
        }
    }

    /// Dollars the crossing bytes cost under `billing`.
    pub fn cost(&self, billing: Billing) -> f64 {
        let mut dollars = 0.0;
        for (carrier, src, dst, bytes) in self.pairs() {
            if src == dst || bytes == 0 {
                continue;
            }
            let b = bytes as f64;
            dollars += match billing {
                Billing::Aws { .. } if carrier == Carrier::ApplicationLb => 0.0,
                Billing::Aws { per_gb } => 2.0 * per_gb * b / GB,
                Billing::Gcp { per_gib } => per_gib * b / GIB,
            };
        }
        dollars
    }

    /// Adds another count of the same zones.
    pub fn merge(&mut self, other: &ZoneBytes) {
        for (a, b) in self.bytes.iter_mut().zip(&other.bytes) {
            *a += b;
        }
    }

    fn pairs(&self) -> impl Iterator<Item = (Carrier, u32, u32, u64)> + '_ {
        let z = self.zones;
        self.bytes.iter().enumerate().map(move |(i, &b)| {
            let carrier = match i / (z * z) {
                0 => Carrier::Instance,
                1 => Carrier::ApplicationLb,
                _ => Carrier::NetworkLb,
            };
            (carrier, ((i / z) % z) as u32, (i % z) as u32, b)
        })
    }
}

/// The share of hops that cross zones when clients start in zone i with
/// share `clients[i]` and the endpoint is drawn at random, landing in zone
/// i with share `endpoints[i]`: 1 - sum_i c_i e_i.
pub fn expected_cross_share(clients: &[f64], endpoints: &[f64]) -> f64 {
    1.0 - clients
        .iter()
        .zip(endpoints)
        .map(|(c, e)| c * e)
        .sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngExt;
    use sim_core::RngStreams;

    #[test]
    fn random_endpoints_cross_k_minus_one_over_k() {
        let mut rng = RngStreams::new(3).stream("zones");
        for k in [2u32, 3, 4] {
            let even = vec![1.0 / k as f64; k as usize];
            let closed = (k - 1) as f64 / k as f64;
            assert!((expected_cross_share(&even, &even) - closed).abs() < 1e-12);
            let mut bytes = ZoneBytes::new(k);
            let n = 200_000;
            for _ in 0..n {
                let src = rng.random_range(0..k);
                let dst = rng.random_range(0..k);
                bytes.add(src, dst, Carrier::Instance, 1);
            }
            // Binomial: 4 standard deviations of the share at n draws.
            let sd = (closed * (1.0 - closed) / n as f64).sqrt();
            let got = bytes.crossing_share();
            assert!((got - closed).abs() < 4.0 * sd, "k={k}: {got} vs {closed}");
        }
        // Uneven shares: all clients in zone 0, endpoints 1/2, 1/4, 1/4.
        let got = expected_cross_share(&[1.0, 0.0, 0.0], &[0.5, 0.25, 0.25]);
        assert!((got - 0.5).abs() < 1e-12);
    }

    #[test]
    fn aws_bills_each_direction_and_spares_the_alb_leg() {
        let mut b = ZoneBytes::new(3);
        // 1 GB a -> b, 2 GB b -> a, 5 GB inside c: 3 GB cross.
        b.add(0, 1, Carrier::Instance, 1_000_000_000);
        b.add(1, 0, Carrier::Instance, 2_000_000_000);
        b.add(2, 2, Carrier::Instance, 5_000_000_000);
        assert!((b.cost(Billing::aws()) - 0.06).abs() < 1e-12);
        // An ALB leg across zones is free; an NLB one is billed.
        b.add(0, 2, Carrier::ApplicationLb, 10_000_000_000);
        assert!((b.cost(Billing::aws()) - 0.06).abs() < 1e-12);
        b.add(0, 2, Carrier::NetworkLb, 1_000_000_000);
        assert!((b.cost(Billing::aws()) - 0.08).abs() < 1e-12);
        assert_eq!(b.between(0, 2), 11_000_000_000);
        assert_eq!(b.crossing(), 14_000_000_000);
        assert_eq!(b.total(), 19_000_000_000);
    }

    #[test]
    fn gcp_bills_egress_in_gib_only() {
        let mut b = ZoneBytes::new(2);
        b.add(0, 1, Carrier::Instance, 1 << 30);
        b.add(1, 0, Carrier::Instance, 1 << 30);
        b.add(0, 0, Carrier::Instance, 1 << 40);
        // Two GiB cross, each billed once at its source.
        assert!((b.cost(Billing::gcp()) - 0.02).abs() < 1e-12);
        // The ALB exemption is AWS's.
        b.add(0, 1, Carrier::ApplicationLb, 1 << 30);
        assert!((b.cost(Billing::gcp()) - 0.03).abs() < 1e-12);
    }

    #[test]
    fn one_terabyte_between_three_zones_costs_about_13_dollars() {
        // The edge calibration notes, section 9: 0.02 x (k-1)/k x 1,000 GB
        // for k = 3 is $13.3 (expected value, not a draw).
        let k = 3u32;
        let mut b = ZoneBytes::new(k);
        let per_pair = 1e12 / (k * k) as f64;
        for s in 0..k {
            for d in 0..k {
                b.add(s, d, Carrier::Instance, per_pair as u64);
            }
        }
        let dollars = b.cost(Billing::aws());
        assert!((dollars - 13.333).abs() < 0.01, "{dollars}");
        let mut c = ZoneBytes::new(k);
        c.merge(&b);
        c.merge(&b);
        assert_eq!(c.total(), 2 * b.total());
    }
}
