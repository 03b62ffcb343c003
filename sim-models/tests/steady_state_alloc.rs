//! The request path allocates nothing per event once a run is warm.
//!
//! A counting global allocator counts the allocations of two runs of one
//! configuration that differ only in duration (40 s and 80 s, so the second
//! adds 40 s of steady traffic: over 100,000 events). Anything a request
//! allocates (a Vec, a String, a Box, a B-tree node, a formatted message)
//! would show up as at least one allocation per request, one per two or
//! three events, in the difference. What remains is bookkeeping per
//! sample, per period or per batch of events, not per event: each sample's
//! row; the event queue's buffers of more than 256 entries, freed when
//! drained and grown again (timeouts and idle timers pending seconds
//! ahead); its compaction after many cancelled idle timers. Measured: about
//! 190 allocations over 120,000 events, one per 600; the bound is one per
//! 200.
//!
//! The traffic covers the request path's modes: clients outside the cluster
//! (one connection per request), client pods with keep-alive pools and
//! retries, long-lived connections, client-side balancing; through
//! kube-proxy (iptables, whose first packet draws its rule walk) and a
//! conntrack table on every node.
//!
//! The same traffic against a conntrack table far too small for it (the
//! failure path): most new connections' SYNs are dropped, each one a
//! `ConntrackTableFull` event, a retransmission and a client timeout.
//! Events repeat per request there, so they must not format their text each
//! time: the same bound holds.
//!
//! This file holds one test so that no other test allocates while it
//! counts.

use sim_core::alloc_count::{self, CountingAllocator};
use sim_core::{NullSink, SimDuration};
use sim_models::app::ServerSpec;
use sim_models::cluster::{run, ClusterConfig, ConntrackSetup, TrafficSpec};
use sim_models::connections::ConnectionMode;
use sim_models::conntrack::{ConntrackConfig, DataPath, Kernel, Timeouts};
use sim_models::ipam::{Allocator, IpamLayout};
use sim_models::kube_proxy::{KubeProxyConfig, Mode};
use sim_models::topology::spread_nodes;
use sim_models::workload::DeploymentSpec;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn source(
    name: &str,
    from: Option<usize>,
    connections: ConnectionMode,
    retries: u32,
) -> TrafficSpec {
    TrafficSpec {
        from,
        retries,
        connections,
        ..TrafficSpec::to_service(name, 0, 300.0, secs(2))
    }
}

/// The traffic of `duration` seconds, with a conntrack table of
/// `conntrack_max` entries per node.
fn config(duration: u64, conntrack_max: u64) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string(), "c".to_string()];
    let server = ServerSpec {
        concurrency: 4,
        service_time: SimDuration::from_millis(20),
        queue_limit: Some(50),
    };
    let mut kube_proxy = KubeProxyConfig::new(Mode::Iptables);
    kube_proxy.other_services = 1_000;
    ClusterConfig {
        nat_gateways: None,
        billing: None,
        mesh: None,
        nodes: spread_nodes(6, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.0.0.0/16".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![
            DeploymentSpec::new("api", 40, secs(5), secs(5), server),
            DeploymentSpec::new("web", 10, secs(5), secs(5), server),
        ],
        traffic: vec![
            source("outside", None, ConnectionMode::PerRequest, 0),
            source(
                "pooled",
                Some(1),
                ConnectionMode::KeepAlive {
                    max_idle: 2,
                    idle_timeout: secs(90),
                },
                2,
            ),
            source(
                "grpc",
                Some(1),
                ConnectionMode::LongLived {
                    per_client: 2,
                    max_age: None,
                },
                0,
            ),
            source("balanced", Some(1), ConnectionMode::ClientSide, 0),
        ],
        timeline: Vec::new(),
        duration: secs(duration),
        sample_every: secs(20),
        windows: Vec::new(),
        policy: None,
        dns: None,
        conntrack: Some(ConntrackSetup {
            table: ConntrackConfig {
                max: conntrack_max,
                buckets: 16_384,
                timeouts: Timeouts::kube_proxy(),
                kernel: Kernel::V5_15,
            },
            datapath: DataPath::Netfilter,
            snat: None,
            udp_pair_concurrency: 1.0,
            flush_udp_on_endpoint_removal: true,
        }),
        kube_proxy: Some(kube_proxy),
        services: Default::default(),
        node_pool: None,
    }
}

/// Allocations, events and SYNs dropped for a full table, of one run of
/// `duration` seconds.
fn measure(duration: u64, conntrack_max: u64) -> (u64, u64, u64) {
    let cfg = config(duration, conntrack_max);
    let before = alloc_count::calls();
    let out = run(&cfg, 1, &mut NullSink);
    let allocations = alloc_count::calls() - before;
    let table_full = out
        .events
        .iter()
        .filter(|e| e.reason == "ConntrackTableFull")
        .map(|e| e.count)
        .sum();
    (allocations, out.events_fired, table_full)
}

#[test]
fn steady_traffic_allocates_nothing_per_event() {
    for (conntrack_max, what) in [(65_536, "steady traffic"), (64, "a full conntrack table")] {
        let (short_allocs, short_events, short_full) = measure(40, conntrack_max);
        let (long_allocs, long_events, long_full) = measure(80, conntrack_max);
        let events = long_events - short_events;
        let allocations = long_allocs.saturating_sub(short_allocs);
        assert!(events > 20_000, "{what}: {events} events in the extra 40 s");
        assert!(
            allocations * 200 < events,
            "{what}: {allocations} allocations over {events} events"
        );
        if conntrack_max < 1_000 {
            let drops = long_full - short_full;
            assert!(
                drops > 1_000,
                "{what}: {drops} SYNs dropped in the extra 40 s"
            );
        }
    }
}
