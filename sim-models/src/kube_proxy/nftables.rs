//! # kube-proxy `--proxy-mode=nftables`: verdict-map lookup
//!
//! ## Scope
//! The objects kube-proxy's nftables proxier (KEP-3866,
//! pkg/proxy/nftables/proxier.go) keeps in its `ip kube-proxy` table for a
//! ClusterIP Service port with `k` endpoints, and the first packet's path:
//!
//! ```text
//! nat-prerouting/output -> services chain:
//!   ip daddr . meta l4proto . th dport vmap @service-ips     one hash lookup
//! service-X chain: masquerade check; numgen random mod k vmap { 0 : goto endpoint-1, ... }
//! endpoint-j chain: ip saddr POD-IP jump mark-for-masquerade; dnat to POD-IP:PORT
//! ```
//!
//! The lookup is a hash: its cost does not depend on how many Services
//! there are. Per Service port: one `service-ips` element, the service chain
//! and its two rules, and per endpoint a chain with two rules: `4 + 3k`
//! objects.
//!
//! The proxier updates the table with transactions holding only what
//! changed (KEP-3866, "incremental updates"): knsim charges a sync for the
//! objects of the Services whose endpoints changed, the periodic sync
//! included.
//!
//! Limitations: ClusterIP ports only; the constant per-lookup cost is
//! [`super::Costs::hash_lookup`] on top of the first-packet RTT, which was
//! itself measured in nftables mode (so its default is 0).
//!
//! ## Validation
//! The calibration test in [`super`] checks the flat first-packet RTT
//! against KEP-3866 (in-sample: the path was fitted to it); a unit test
//! below checks the counts.

/// Objects (map elements, chains, rules) for one Service port with
/// `endpoints` endpoints.
pub fn objects_per_service(endpoints: u64) -> u64 {
    4 + 3 * endpoints
}

/// Objects one sync writes: the changed Services' objects only.
pub fn sync_objects(changed: u64) -> u64 {
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_grow_with_endpoints_and_syncs_write_only_changes() {
        assert_eq!(objects_per_service(3), 13);
        assert_eq!(sync_objects(13), 13);
    }
}
