//! The outage library shipped inside the binary, so `knsim run NAME` works
//! from any directory. The files live in the workspace's `scenarios/`.

/// (name, file text) of every bundled scenario, by name.
pub const BUNDLED: &[(&str, &str)] = &[
    (
        "bgp_session_down",
        include_str!("../../scenarios/bgp_session_down.yaml"),
    ),
    (
        "black_friday_cidr",
        include_str!("../../scenarios/black_friday_cidr.yaml"),
    ),
    (
        "calico_vxlan_mtu",
        include_str!("../../scenarios/calico_vxlan_mtu.yaml"),
    ),
    (
        "cidr_overlap",
        include_str!("../../scenarios/cidr_overlap.yaml"),
    ),
    (
        "cni_not_initialized",
        include_str!("../../scenarios/cni_not_initialized.yaml"),
    ),
    (
        "conntrack_table_full",
        include_str!("../../scenarios/conntrack_table_full.yaml"),
    ),
    (
        "cross_az_bill",
        include_str!("../../scenarios/cross_az_bill.yaml"),
    ),
    (
        "dns_conntrack_race",
        include_str!("../../scenarios/dns_conntrack_race.yaml"),
    ),
    (
        "forwarding_engines",
        include_str!("../../scenarios/forwarding_engines.yaml"),
    ),
    (
        "gke_pod_range_exhausted",
        include_str!("../../scenarios/gke_pod_range_exhausted.yaml"),
    ),
    (
        "health_check_502",
        include_str!("../../scenarios/health_check_502.yaml"),
    ),
    (
        "grpc_lb_imbalance",
        include_str!("../../scenarios/grpc_lb_imbalance.yaml"),
    ),
    (
        "headless_stale_dns",
        include_str!("../../scenarios/headless_stale_dns.yaml"),
    ),
    (
        "ingress_prefix_surprise",
        include_str!("../../scenarios/ingress_prefix_surprise.yaml"),
    ),
    (
        "kube_proxy_scale",
        include_str!("../../scenarios/kube_proxy_scale.yaml"),
    ),
    (
        "mesh_iptables_meltdown",
        include_str!("../../scenarios/mesh_iptables_meltdown.yaml"),
    ),
    (
        "mesh_sidecar_overhead",
        include_str!("../../scenarios/mesh_sidecar_overhead.yaml"),
    ),
    (
        "mtu_blackhole",
        include_str!("../../scenarios/mtu_blackhole.yaml"),
    ),
    (
        "nat_gateway_spof",
        include_str!("../../scenarios/nat_gateway_spof.yaml"),
    ),
    (
        "nat_port_race",
        include_str!("../../scenarios/nat_port_race.yaml"),
    ),
    (
        "netpol_blocks_dns",
        include_str!("../../scenarios/netpol_blocks_dns.yaml"),
    ),
    (
        "netpol_friday_ingress",
        include_str!("../../scenarios/netpol_friday_ingress.yaml"),
    ),
    (
        "netpol_label_mismatch",
        include_str!("../../scenarios/netpol_label_mismatch.yaml"),
    ),
    (
        "ndots_amplification",
        include_str!("../../scenarios/ndots_amplification.yaml"),
    ),
    (
        "nodeport_exposure",
        include_str!("../../scenarios/nodeport_exposure.yaml"),
    ),
    (
        "cluster_5k_nodes",
        include_str!("../../scenarios/cluster_5k_nodes.yaml"),
    ),
    (
        "cluster_5k_nodes_small",
        include_str!("../../scenarios/cluster_5k_nodes_small.yaml"),
    ),
    (
        "coredns_cpu_throttled",
        include_str!("../../scenarios/coredns_cpu_throttled.yaml"),
    ),
    (
        "preply_stale_conntrack",
        include_str!("../../scenarios/preply_stale_conntrack.yaml"),
    ),
    (
        "shop_manifests",
        include_str!("../../scenarios/shop_manifests.yaml"),
    ),
    (
        "topology_hints_fallback",
        include_str!("../../scenarios/topology_hints_fallback.yaml"),
    ),
    (
        "mesh_retry_storm",
        include_str!("../../scenarios/mesh_retry_storm.yaml"),
    ),
    (
        "sidecar_startup_race",
        include_str!("../../scenarios/sidecar_startup_race.yaml"),
    ),
    (
        "zalando_dns_oom",
        include_str!("../../scenarios/zalando_dns_oom.yaml"),
    ),
    ("zone_down", include_str!("../../scenarios/zone_down.yaml")),
];

/// The text of a bundled scenario.
pub fn find(name: &str) -> Option<&'static str> {
    BUNDLED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// (path, text) of every manifest file bundled scenarios read, by path
/// (`cluster.manifests`).
pub const BUNDLED_MANIFESTS: &[(&str, &str)] = &[
    (
        "scenarios/ingress_prefix_surprise/manifests/api.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/manifests/api.yaml"),
    ),
    (
        "scenarios/ingress_prefix_surprise/manifests/web.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/manifests/web.yaml"),
    ),
    (
        "scenarios/ingress_prefix_surprise/fixes/api-trailing-slash.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/fixes/api-trailing-slash.yaml"),
    ),
    (
        "scenarios/ingress_prefix_surprise/fixes/web-docs-exact.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/fixes/web-docs-exact.yaml"),
    ),
    (
        "scenarios/ingress_prefix_surprise/fixes/web-no-regex.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/fixes/web-no-regex.yaml"),
    ),
    (
        "scenarios/ingress_prefix_surprise/fixes/httproutes.yaml",
        include_str!("../../scenarios/ingress_prefix_surprise/fixes/httproutes.yaml"),
    ),
    (
        "scenarios/manifests/shop/00-namespaces.yaml",
        include_str!("../../scenarios/manifests/shop/00-namespaces.yaml"),
    ),
    (
        "scenarios/manifests/shop/10-coredns.yaml",
        include_str!("../../scenarios/manifests/shop/10-coredns.yaml"),
    ),
    (
        "scenarios/manifests/shop/20-shop.yaml",
        include_str!("../../scenarios/manifests/shop/20-shop.yaml"),
    ),
    (
        "scenarios/manifests/shop/30-default-deny.yaml",
        include_str!("../../scenarios/manifests/shop/30-default-deny.yaml"),
    ),
    (
        "scenarios/manifests/shop/31-allow-dns.yaml",
        include_str!("../../scenarios/manifests/shop/31-allow-dns.yaml"),
    ),
];

/// The bundled manifest files at `path` (a file, or the files directly in
/// a directory), in name order, as `(path, text)`.
pub fn manifest_files(path: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = BUNDLED_MANIFESTS
        .iter()
        .filter(|(p, _)| {
            *p == path
                || p.strip_prefix(path)
                    .and_then(|r| r.strip_prefix('/'))
                    .is_some_and(|r| !r.contains('/'))
        })
        .map(|(p, t)| (p.to_string(), t.to_string()))
        .collect();
    files.sort();
    files
}
