//! The cluster run with handler calls (the `calls` room) and mesh proxies'
//! L7 decisions (the `l7` room).

use super::*;
use crate::app::ServerSpec;
use crate::ipam::Allocator;
use crate::topology::spread_nodes;
use sim_core::NullSink;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

fn server(concurrency: u32, ms: u64, queue_limit: Option<u32>) -> ServerSpec {
    ServerSpec {
        concurrency,
        service_time: SimDuration::from_millis(ms),
        queue_limit,
    }
}

/// web (outside: Poisson users) -> api -> auth -> db, each hop's client
/// retrying `retries` times; db's server as given.
fn chain(retries: u32, db: ServerSpec) -> ClusterConfig {
    let zones = vec!["a".to_string(), "b".to_string()];
    let dep = |name: &str, n: u32, s: ServerSpec| DeploymentSpec::new(name, n, secs(1), secs(1), s);
    let call = |name: &str, from: usize, to: usize| TrafficSpec {
        from: Some(from),
        in_handler: true,
        retries,
        connections: ConnectionMode::KeepAlive {
            max_idle: 64,
            idle_timeout: secs(90),
        },
        ..TrafficSpec::to_service(name, to, 0.0, secs(2))
    };
    ClusterConfig {
        nodes: spread_nodes(4, &zones, 110),
        ipam: IpamLayout::Flat {
            pod_cidr: "10.9.0.0/22".parse().unwrap(),
            allocator: Allocator::Flat,
        },
        deployments: vec![
            dep("web", 4, server(64, 2, None)),
            dep("api", 4, server(64, 2, None)),
            dep("auth", 4, server(64, 2, None)),
            dep("db", 2, db),
        ],
        traffic: vec![
            TrafficSpec {
                from: Some(0),
                retries,
                ..TrafficSpec::to_service("web-api", 1, 50.0, secs(5))
            },
            call("api-auth", 1, 2),
            call("auth-db", 2, 3),
        ],
        timeline: Vec::new(),
        duration: secs(60),
        sample_every: secs(10),
        windows: Vec::new(),
        policy: None,
        dns: None,
        conntrack: None,
        kube_proxy: None,
        services: Default::default(),
        node_pool: None,
        nat_gateways: None,
        billing: None,
    }
}

fn tries(r: &RequestTotals) -> u64 {
    r.sent + r.retried + r.mesh_retried
}

fn conserved(r: &RequestTotals) -> bool {
    r.sent == r.answered + r.errors() + r.in_flight
}

#[test]
fn a_chain_answers_through_every_hop() {
    let out = run(&chain(0, server(64, 2, None)), 1, &mut NullSink);
    let [web, api, auth] = [&out.requests[0], &out.requests[1], &out.requests[2]];
    assert!(web.sent > 2_000 && web.error_rate() == 0.0, "{web:?}");
    // One call per request served at each hop (the requests in flight at
    // the end may have made theirs or not yet).
    for (parent, call) in [(web, api), (api, auth)] {
        assert!(call.sent <= parent.sent && call.sent + parent.in_flight >= parent.sent);
    }
    assert!(out.requests.iter().all(conserved));
}

#[test]
fn retries_multiply_along_a_failing_chain() {
    // db refuses everything (no worker, no queue): each hop's 2 tries fail
    // with 503, so db sees (1 + 1)^3 = 8 tries per user request, exactly.
    let out = run(&chain(1, server(0, 2, Some(0))), 1, &mut NullSink);
    let [web, api, auth] = [&out.requests[0], &out.requests[1], &out.requests[2]];
    assert!(web.sent > 2_000);
    assert_eq!(web.rejected, web.sent - web.in_flight);
    assert_eq!(web.dependency_failed, web.rejected);
    assert_eq!(tries(web), 2 * web.sent);
    assert_eq!(api.sent, tries(web));
    assert_eq!(auth.sent, tries(api));
    assert_eq!(tries(auth), 8 * web.sent);
    assert!(out.requests.iter().all(conserved));
}
