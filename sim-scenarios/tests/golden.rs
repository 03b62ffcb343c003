//! Golden files for outage replays: the story and report of each bundled
//! scenario with seed 1, pinned byte for byte. A model change that moves a
//! figure shows up here as a diff to review (`cargo insta review`).

use sim_scenarios::{load_named, report, run, story};

/// Runs a bundled scenario twice (default threads, then one thread), checks
/// that every expectation holds and both runs print the same bytes, and
/// returns the text to pin.
fn replay(name: &str) -> String {
    let scenario = load_named(name).unwrap();
    let tell = |runs: &[run::SeedRun]| {
        format!(
            "{}\n{}",
            story::tell(&scenario, runs).unwrap(),
            report::text(&scenario, runs).unwrap()
        )
    };
    let runs = run::run_all(&scenario, &[1], None).unwrap();
    let text = tell(&runs);
    let (held, total) = report::expectation_totals(&runs);
    assert!(total > 0 && held == total, "{text}");
    let again = run::run_all(&scenario, &[1], Some(1)).unwrap();
    assert_eq!(text, tell(&again), "a second run differs");
    text
}

#[test]
fn black_friday_cidr_replay() {
    insta::assert_snapshot!(replay("black_friday_cidr"));
}

#[test]
fn gke_pod_range_exhausted_replay() {
    insta::assert_snapshot!(replay("gke_pod_range_exhausted"));
}

#[test]
fn health_check_502_replay() {
    insta::assert_snapshot!(replay("health_check_502"));
}

#[test]
fn cni_not_initialized_replay() {
    insta::assert_snapshot!(replay("cni_not_initialized"));
}

#[test]
fn dns_conntrack_race_replay() {
    insta::assert_snapshot!(replay("dns_conntrack_race"));
}

#[test]
fn preply_stale_conntrack_replay() {
    insta::assert_snapshot!(replay("preply_stale_conntrack"));
}

#[test]
fn headless_stale_dns_replay() {
    insta::assert_snapshot!(replay("headless_stale_dns"));
}

#[test]
fn netpol_blocks_dns_replay() {
    insta::assert_snapshot!(replay("netpol_blocks_dns"));
}

#[test]
fn netpol_friday_ingress_replay() {
    insta::assert_snapshot!(replay("netpol_friday_ingress"));
}

#[test]
fn netpol_label_mismatch_replay() {
    insta::assert_snapshot!(replay("netpol_label_mismatch"));
}

#[test]
fn kube_proxy_scale_replay() {
    insta::assert_snapshot!(replay("kube_proxy_scale"));
}

#[test]
fn conntrack_table_full_replay() {
    insta::assert_snapshot!(replay("conntrack_table_full"));
}

/// Runs a bundled packet-level scenario twice (default threads, then one),
/// checks every expectation holds and both print the same bytes.
fn replay_packets(name: &str) -> String {
    let s = sim_scenarios::load_datapath(name).unwrap().unwrap();
    let runs = sim_scenarios::datapath::run_all(&s, &[1], None, None).unwrap();
    let text = sim_scenarios::datapath::text(&s, &runs);
    let (held, total) = sim_scenarios::datapath::expectation_totals(&runs);
    assert!(total > 0 && held == total, "{text}");
    let again = sim_scenarios::datapath::run_all(&s, &[1], Some(1), None).unwrap();
    assert_eq!(
        text,
        sim_scenarios::datapath::text(&s, &again),
        "a second run differs"
    );
    text
}

#[test]
fn mtu_blackhole_replay() {
    insta::assert_snapshot!(replay_packets("mtu_blackhole"));
}

#[test]
fn calico_vxlan_mtu_replay() {
    insta::assert_snapshot!(replay_packets("calico_vxlan_mtu"));
}

#[test]
fn grpc_lb_imbalance_replay() {
    insta::assert_snapshot!(replay("grpc_lb_imbalance"));
}

#[test]
fn mesh_iptables_meltdown_replay() {
    insta::assert_snapshot!(replay("mesh_iptables_meltdown"));
}

#[test]
fn mesh_sidecar_overhead_replay() {
    insta::assert_snapshot!(replay("mesh_sidecar_overhead"));
}

#[test]
fn cross_az_bill_replay() {
    insta::assert_snapshot!(replay("cross_az_bill"));
}

#[test]
fn topology_hints_fallback_replay() {
    insta::assert_snapshot!(replay("topology_hints_fallback"));
}

#[test]
fn zone_down_replay() {
    insta::assert_snapshot!(replay("zone_down"));
}

#[test]
fn nat_gateway_spof_replay() {
    insta::assert_snapshot!(replay("nat_gateway_spof"));
}

#[test]
fn nat_port_race_replay() {
    insta::assert_snapshot!(replay("nat_port_race"));
}

#[test]
fn bgp_session_down_replay() {
    insta::assert_snapshot!(replay_packets("bgp_session_down"));
}

#[test]
fn ndots_amplification_replay() {
    insta::assert_snapshot!(replay("ndots_amplification"));
}

#[test]
fn coredns_cpu_throttled_replay() {
    insta::assert_snapshot!(replay("coredns_cpu_throttled"));
}

#[test]
fn zalando_dns_oom_replay() {
    insta::assert_snapshot!(replay("zalando_dns_oom"));
}

#[test]
fn forwarding_engines_replay() {
    insta::assert_snapshot!(replay_packets("forwarding_engines"));
}

#[test]
fn cluster_5k_nodes_small_replay() {
    insta::assert_snapshot!(replay("cluster_5k_nodes_small"));
}

#[test]
fn shop_manifests_replay() {
    insta::assert_snapshot!(replay("shop_manifests"));
}

#[test]
fn nodeport_exposure_replay() {
    insta::assert_snapshot!(replay("nodeport_exposure"));
}

#[test]
fn ingress_prefix_surprise_replay() {
    insta::assert_snapshot!(replay("ingress_prefix_surprise"));
}

/// Checks a bundled network plan twice, checks every expectation holds and
/// both print the same bytes.
fn replay_plan(name: &str) -> String {
    use sim_scenarios::network_plan;
    let s = sim_scenarios::load_network_plan(name).unwrap().unwrap();
    let runs = network_plan::run_all(&s);
    let text = network_plan::text(&s, &runs);
    let (held, total) = network_plan::expectation_totals(&runs);
    assert!(total > 0 && held == total, "{text}");
    assert_eq!(
        text,
        network_plan::text(&s, &network_plan::run_all(&s)),
        "a second check differs"
    );
    text
}

#[test]
fn cidr_overlap_replay() {
    insta::assert_snapshot!(replay_plan("cidr_overlap"));
}

#[test]
fn mesh_retry_storm_replay() {
    insta::assert_snapshot!(replay("mesh_retry_storm"));
}

#[test]
fn sidecar_startup_race_replay() {
    insta::assert_snapshot!(replay("sidecar_startup_race"));
}
