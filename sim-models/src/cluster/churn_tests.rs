//! Connection churn against the nodes' conntrack tables: TIME_WAIT
//! entries fill a table, SYNs are dropped and retransmitted (to the pod
//! address they went to), and the connection modes that leave the table
//! alone.

use super::tests::{config, counter, secs};
use super::*;
use crate::app::ServerSpec;
use crate::topology::spread_nodes;
use sim_core::NullSink;

/// `clients` pods send to `api` pods; every node has a conntrack table
/// of `max` entries on kernel 3.10 (TIME_WAIT entries not evictable).
pub(super) fn churn(
    max: u64,
    rate: f64,
    mode: ConnectionMode,
    datapath: DataPath,
) -> ClusterConfig {
    use crate::conntrack::{Kernel, Timeouts};
    let mut cfg = config("10.0.0.0/22", 20);
    cfg.nodes = spread_nodes(4, &["a".to_string()], 110);
    cfg.timeline.clear();
    let fast = ServerSpec {
        concurrency: 8,
        service_time: SimDuration::from_millis(5),
        queue_limit: None,
    };
    cfg.deployments = vec![
        DeploymentSpec::new("api", 8, secs(5), secs(5), fast),
        DeploymentSpec::new("client", 8, secs(5), secs(5), fast),
    ];
    cfg.traffic = vec![TrafficSpec {
        from: Some(1),
        connections: mode,
        ..TrafficSpec::to_service("client-api", 0, rate, secs(10))
    }];
    cfg.conntrack = Some(ConntrackSetup {
        table: ConntrackConfig {
            max,
            buckets: max / 4,
            timeouts: Timeouts::kube_proxy(),
            kernel: Kernel::V3_10,
        },
        datapath,
        snat: None,
        udp_pair_concurrency: 0.0,
        flush_udp_on_endpoint_removal: true,
    });
    cfg.duration = secs(400);
    cfg.windows = vec![WindowSpec {
        name: "full".into(),
        start: secs(200),
        end: secs(400),
    }];
    cfg
}

/// `api` scaled to `replicas` at `at_s` seconds.
fn scale_api_at(at_s: u64, replicas: u32) -> TimedAction {
    TimedAction {
        at: secs(at_s),
        action: Action::Scale {
            deployment: 0,
            replicas,
        },
    }
}

#[test]
fn connection_churn_fills_the_table_and_syns_are_retransmitted() {
    // 4 nodes x 2 client pods; 400 conn/s x 120 s TIME_WAIT = 48,000
    // entries wanted against 4 x 5,000.
    let out = run(
        &churn(
            5_000,
            400.0,
            ConnectionMode::PerRequest,
            DataPath::Netfilter,
        ),
        1,
        &mut NullSink,
    );
    let w = &out.windows[0];
    assert!(w.syn_drops > 1000, "{}", w.syn_drops);
    // Connect delays sit on the retransmission times: 1 s, 3 s, 7 s.
    let d = &w.connect_delay;
    assert!(d.quantile(0.99) >= secs(1), "{:?}", d.quantile(0.99));
    for q in [0.5, 0.9, 0.99] {
        let x = d.quantile(q).as_secs_f64();
        let on_retransmit = [0.0, 1.0, 3.0, 7.0, 15.0]
            .iter()
            .any(|r| (x - r).abs() < 0.01);
        assert!(on_retransmit, "q{q}: {x}");
    }
    let ev = out
        .events
        .iter()
        .find(|e| e.reason == "ConntrackTableFull")
        .expect("kernel message");
    assert_eq!(ev.message, conntrack::TABLE_FULL_MESSAGE);
    assert!(out.conntrack.iter().all(|s| s.peak <= 5_000));
    let r = out.requests[0];
    assert_eq!(
        r.sent,
        r.answered + r.timed_out + r.refused + r.rejected + r.in_flight
    );
}

#[test]
fn a_retransmitted_syn_goes_to_the_pod_its_client_picked() {
    // Beside the churn that fills the client nodes' tables, a client-side
    // balancing source keeps one connection per (client, api pod): 8 x 16
    // pairs once api scales out, the new pods' pairs dialled while the
    // tables are full. A client turns to a pod every 16 s and gives up a
    // connect after 5 s, so a pair's dials never overlap. Its dropped SYNs
    // are retransmitted to the pod address they were sent to, so no pair
    // is connected twice; retransmitted to another pod, they would open a
    // second connection to a pod already connected.
    let mut cfg = churn(
        5_000,
        400.0,
        ConnectionMode::PerRequest,
        DataPath::Netfilter,
    );
    cfg.traffic.push(TrafficSpec {
        from: Some(1),
        connections: ConnectionMode::ClientSide,
        ..TrafficSpec::to_service("pinned", 0, 8.0, secs(5))
    });
    cfg.timeline = vec![scale_api_at(150, 16)];
    let out = run(&cfg, 1, &mut NullSink);
    let drops = counter(&out, "requests_conntrack_syn_drops{service=pinned}");
    assert!(drops > 10, "{drops} SYNs of the pinned source dropped");
    let opened = counter(&out, "requests_connections_opened{service=pinned}");
    assert!(opened <= 128, "{opened} connections for 128 pairs");
}

#[test]
fn keep_alive_and_ebpf_leave_the_table_alone() {
    let keep = ConnectionMode::KeepAlive {
        max_idle: 16,
        idle_timeout: secs(90),
    };
    let k = run(
        &churn(5_000, 400.0, keep, DataPath::Netfilter),
        1,
        &mut NullSink,
    );
    assert_eq!(k.windows[0].syn_drops, 0);
    let opened = k
        .metrics
        .counters()
        .find(|(n, _)| n.starts_with("requests_connections_opened"))
        .unwrap()
        .1;
    assert!(opened * 100 < k.requests[0].sent, "{opened} connections");
    let e = run(
        &churn(5_000, 400.0, ConnectionMode::PerRequest, DataPath::Ebpf),
        1,
        &mut NullSink,
    );
    assert_eq!(e.windows[0].syn_drops, 0);
    assert!(e.conntrack.iter().all(|s| s.inserted == 0));
    assert!(e.windows[0].totals.error_rate() < 0.001);
}

#[test]
fn long_lived_connections_stay_on_the_pods_they_were_opened_to() {
    let mut cfg = churn(
        100_000,
        200.0,
        ConnectionMode::LongLived {
            per_client: 1,
            max_age: None,
        },
        DataPath::Netfilter,
    );
    cfg.deployments[0].replicas = 2;
    cfg.timeline = vec![scale_api_at(100, 10)];
    let pinned = run(&cfg, 2, &mut NullSink);
    let w = &pinned.windows[0];
    assert!(w.pods_serving() <= 2, "{}", w.pods_serving());
    assert!(w.top_pod_share() >= 0.5, "{}", w.top_pod_share());
    cfg.traffic[0].connections = ConnectionMode::ClientSide;
    let balanced = run(&cfg, 2, &mut NullSink);
    let w = &balanced.windows[0];
    assert_eq!(w.pods_serving(), 10);
    assert!(w.top_pod_share() < 0.12, "{}", w.top_pod_share());
}
