//! # A security group: the cloud's allow list in front of a node
//!
//! ## Scope
//! An instance-level, stateful allow list as AWS security groups and GCP
//! firewall rules apply it to inbound traffic: a new connection from
//! source address `s` to port `p` of a node passes if some rule allows a
//! CIDR holding `s` and a port range holding `p`; otherwise it is dropped
//! without an answer (the client retransmits its SYN until its timeout).
//! Replies of allowed connections pass (stateful), so only first packets
//! are checked. Applied to traffic entering the cluster at a node address
//! from outside ([`crate::path::Target::NodePort`]); pod-to-pod traffic is
//! taken as allowed (clusters carry a rule for their own nodes).
//!
//! ## Parameters
//! The rules are inputs (the scenario's `edge.security_group`). Dropping
//! silently, with no reset, is the documented behaviour (docs/calibration.md,
//! row `sg-silent-drop`).
//!
//! ## What it emits
//! Allowed or not; the path turns a refusal into
//! [`crate::path::Drop::EdgeDenied`].
//!
//! ## Validation
//! Unit tests below (CIDR and port-range matching, no rule = deny).

use crate::ipam::Ipv4Cidr;
use std::net::Ipv4Addr;

/// One inbound rule: sources in `cidr` may reach ports `ports.0..=ports.1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgRule {
    /// Allowed sources.
    pub cidr: Ipv4Cidr,
    /// Allowed destination ports, inclusive.
    pub ports: (u16, u16),
}

/// A security group: inbound rules, deny by default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecurityGroup {
    /// Inbound rules.
    pub rules: Vec<SgRule>,
}

impl SecurityGroup {
    /// Whether a new connection from `source` to `port` is allowed.
    pub fn allows(&self, source: Ipv4Addr, port: u16) -> bool {
        self.rules
            .iter()
            .any(|r| r.cidr.contains(source) && r.ports.0 <= port && port <= r.ports.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Ipv4Cidr {
        let (a, p) = s.split_once('/').unwrap();
        Ipv4Cidr::new(a.parse().unwrap(), p.parse().unwrap()).unwrap()
    }

    #[test]
    fn allow_list_matches_source_and_port() {
        let sg = SecurityGroup {
            rules: vec![
                SgRule {
                    cidr: cidr("0.0.0.0/0"),
                    ports: (443, 443),
                },
                SgRule {
                    cidr: cidr("10.0.0.0/16"),
                    ports: (30000, 32767),
                },
            ],
        };
        let internet: Ipv4Addr = "198.51.100.7".parse().unwrap();
        let vpc: Ipv4Addr = "10.0.3.4".parse().unwrap();
        assert!(sg.allows(internet, 443));
        assert!(!sg.allows(internet, 30080));
        assert!(sg.allows(vpc, 30080));
        assert!(sg.allows(vpc, 32767));
        assert!(!sg.allows(vpc, 32768));
        assert!(!SecurityGroup::default().allows(vpc, 443));
    }
}
