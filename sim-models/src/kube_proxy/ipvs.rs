//! # kube-proxy `--proxy-mode=ipvs`: IPVS virtual-server lookup
//!
//! ## Scope
//! The objects kube-proxy's IPVS proxier (pkg/proxy/ipvs/proxier.go) keeps
//! for a ClusterIP Service port with `k` endpoints: the address bound to the
//! `kube-ipvs0` dummy interface, the IPVS virtual server, `k` real servers,
//! and the `KUBE-CLUSTER-IP` ipset entry: `3 + k` objects. Its iptables
//! rules are a fixed set matching ipsets ([`FIXED_LINES`]), whatever the
//! number of Services.
//!
//! The first packet matches an ipset (a hash) and IPVS finds the virtual
//! server by hashing (protocol, address, port): the cost does not depend on
//! the number of Services (docs/calibration.md, row `kp-ipvs`: about
//! nftables, M).
//! IPVS still runs inside netfilter and keeps conntrack entries.
//!
//! A sync writes the fixed iptables rules through iptables-restore and
//! issues netlink calls for the virtual and real servers that changed;
//! knsim charges both at the iptables-restore cost per line (no calibration
//! row exists for IPVS programming time).
//!
//! Limitations: ClusterIP ports only; round-robin scheduling is taken as a
//! uniform pick (the `rr` scheduler spreads evenly over a connection
//! stream); the O(N) comparison the proxier makes in Go each sync is not
//! charged.
//!
//! ## Validation
//! A unit test below checks the counts; the lookup shares the calibrated
//! first-packet RTT of [`super`].

/// iptables-restore lines the IPVS proxier writes each sync (its fixed
/// chains matching the KUBE-CLUSTER-IP, KUBE-LOOP-BACK... ipsets): an
/// estimate, the same order as the iptables proxier's fixed chains.
pub const FIXED_LINES: u64 = 40;

/// Objects for one Service port with `endpoints` endpoints.
pub fn objects_per_service(endpoints: u64) -> u64 {
    3 + endpoints
}

/// Lines and netlink objects one sync writes.
pub fn sync_objects(changed: u64) -> u64 {
    FIXED_LINES + changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_virtual_server_and_a_real_server_per_endpoint() {
        assert_eq!(objects_per_service(3), 6);
        assert_eq!(sync_objects(0), FIXED_LINES);
    }
}
