//! # eBPF service load balancing (Cilium kube-proxy replacement)
//!
//! ## Scope
//! The BPF map entries an eBPF data path keeps for a ClusterIP Service port
//! with `k` endpoints, as Cilium lays them out: the service frontend entry
//! (`lb4_services_v2`, slot 0), `k` backend slots in the same map and `k`
//! entries in `lb4_backends`: `1 + 2k` entries. A connection's Service is
//! found by hash-map lookups (frontend, then a slot picked at random, then
//! the backend), at `connect()` with socket-level load balancing or on the
//! first packet at tc: the cost does not depend on the number of Services.
//!
//! The agent updates the maps entry by entry as EndpointSlices change;
//! there is no whole-table rewrite, so knsim charges a sync for the changed
//! Services' entries only (at the same per-object cost as iptables-restore
//! lines, an upper bound: no calibration row gives BPF map update times;
//! docs/calibration.md, row `kp-restore-per-line`).
//!
//! Limitations: the first-packet RTT is the calibrated one measured in
//! nftables mode plus [`super::Costs::hash_lookup`]; the calibration
//! document has no first-packet figure for eBPF (docs/calibration.md, row
//! `kp-ebpf-tcp-rr`, has only "close to 1M req/s TCP_RR at ~30% CPU", L),
//! so knsim does not claim eBPF is faster per lookup than nftables, only
//! that it does not grow with the Service count and that its programming
//! does not rewrite the table. No Maglev, no DSR, no conntrack bypass here.
//!
//! ## Validation
//! A unit test below checks the counts.

/// Map entries for one Service port with `endpoints` endpoints.
pub fn entries_per_service(endpoints: u64) -> u64 {
    1 + 2 * endpoints
}

/// Entries one sync writes: the changed Services' entries only.
pub fn sync_entries(changed: u64) -> u64 {
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frontend_plus_two_entries_per_backend() {
        assert_eq!(entries_per_service(3), 7);
        assert_eq!(sync_entries(7), 7);
    }
}
