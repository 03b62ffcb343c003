//! # kube-proxy `--proxy-mode=iptables`: the rule walk
//!
//! ## Scope
//! The nat-table rules kube-proxy's iptables proxier writes for ClusterIP
//! Service ports (pkg/proxy/iptables/proxier.go), counted, and the walk the
//! first packet of a connection makes through them:
//!
//! ```text
//! PREROUTING/OUTPUT -> KUBE-SERVICES                 one rule per Service port:
//!                        -d CLUSTER-IP --dport P -j KUBE-SVC-X   (walked in order)
//!                      KUBE-SVC-X                   ! -s CLUSTER-CIDR -j KUBE-MARK-MASQ
//!                                                   -m statistic --probability 1/k   -j KUBE-SEP-1
//!                                                   -m statistic --probability 1/(k-1) -j KUBE-SEP-2
//!                                                   ...                              -j KUBE-SEP-k
//!                      KUBE-SEP-j                   -s POD-IP -j KUBE-MARK-MASQ
//!                                                   -j DNAT --to-destination POD-IP:PORT
//! ```
//!
//! A first packet for the Service at place `p` in KUBE-SERVICES is compared
//! against the `p` rules before it, then the masquerade rule of its
//! KUBE-SVC chain, then statistic rules until one fires (endpoint `j` of `k`,
//! 0-based, costs `j + 1` of them: the chain `1/k, 1/(k-1), ...` picks each
//! endpoint with probability `1/k`), then the two rules of KUBE-SEP:
//! `p + 1 + (j + 1) + 2` rules. Later packets of the connection follow
//! conntrack and walk nothing.
//!
//! Per Service port with `k` endpoints, iptables-restore input holds: the
//! KUBE-SERVICES rule, the KUBE-SVC chain's declaration, its masquerade rule
//! and `k` statistic rules, and per endpoint a KUBE-SEP declaration and its
//! two rules: `3 + 4k` lines. kube-proxy also writes a fixed set of chains
//! and jump rules ([`FIXED_LINES`]).
//!
//! Limitations: only ClusterIP ports (no NodePort KUBE-NODEPORTS/KUBE-EXT
//! chains, no LoadBalancer or external IPs, no filter-table REJECT rules for
//! Services without endpoints, no `--masquerade-all`); the place of the
//! Service in KUBE-SERVICES is drawn uniformly per connection, the view of a
//! client calling Services at random (the KEP-3866 benchmark's view): the
//! order kube-proxy writes the rules in is not modelled.
//!
//! ## Parameters
//! `per_rule` and `walk_sigma` in [`super::Costs`] (defaults fitted to the
//! KEP-3866 chart, docs/calibration.md, row `kp-iptables-first-packet`); the
//! walk and the `1/k` chain follow the proxier (docs/calibration.md, row
//! `kp-iptables-rule-walk`); the line counts, [`FIXED_LINES`] an estimate
//! (docs/calibration.md, row `kp-ruleset-lines`).
//!
//! ## Validation
//! Unit tests below check the line count and the walk length; the
//! calibration test in [`super`] checks the latency percentiles against the
//! figures `per_rule` and `walk_sigma` were fitted to (in-sample, not
//! validation).

/// iptables-restore lines that do not depend on the Services: the
/// declarations of KUBE-SERVICES, KUBE-NODEPORTS, KUBE-POSTROUTING,
/// KUBE-MARK-MASQ and the filter-table chains, their jumps from the
/// built-in chains and the masquerade rules. An estimate (a few dozen lines
/// in the proxier's source); it matters only for clusters with few Services.
pub const FIXED_LINES: u64 = 40;

/// iptables-restore lines for one Service port with `endpoints` endpoints.
pub fn lines_per_service(endpoints: u64) -> u64 {
    3 + 4 * endpoints
}

/// KUBE-SERVICES rules per Service port (the ClusterIP match).
pub const DISPATCH_PER_SERVICE: u64 = 1;

/// Rules the first packet is compared against: `place` rules before its
/// own in KUBE-SERVICES, its own, the masquerade rule, `pick + 1` statistic
/// rules, and the two KUBE-SEP rules.
pub fn rules_walked(place: u64, pick: u64) -> u64 {
    place + 1 + 1 + (pick + 1) + 2
}

/// Lines one sync writes. A full sync writes every chain; a partial one
/// (KEP-3453, `MinimizeIPTablesRestore`, GA in 1.28) writes the fixed
/// chains, KUBE-SERVICES in full, and only the chains of Services whose
/// endpoints changed.
pub fn sync_lines(full: bool, dispatch: u64, all: u64, changed: u64) -> u64 {
    if full {
        FIXED_LINES + all
    } else {
        FIXED_LINES + dispatch + changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_with_three_endpoints_takes_fifteen_lines() {
        // KUBE-SERVICES rule, :KUBE-SVC, masq, 3 statistic rules, 3 x (:KUBE-SEP, masq, DNAT).
        assert_eq!(lines_per_service(3), 1 + 1 + 1 + 3 + 3 * 3);
    }

    #[test]
    fn the_walk_grows_with_the_place_and_the_pick() {
        assert_eq!(rules_walked(0, 0), 5);
        assert_eq!(rules_walked(10_000, 0) - rules_walked(0, 0), 10_000);
        assert_eq!(rules_walked(0, 2) - rules_walked(0, 0), 2);
    }

    #[test]
    fn partial_syncs_write_kube_services_and_the_changed_chains() {
        assert_eq!(sync_lines(true, 100, 1_500, 15), FIXED_LINES + 1_500);
        assert_eq!(sync_lines(false, 100, 1_500, 15), FIXED_LINES + 100 + 15);
    }
}
