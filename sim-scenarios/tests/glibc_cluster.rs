//! The cluster run's resolver against the glibc recordings where a cluster
//! can reproduce the case: nothing listening on kube-dns (no CoreDNS pod),
//! a name asked with A and AAAA. glibc (validation/glibc/recordings/
//! nothing_listening.json) sends A and AAAA, gets ICMP port unreachable for
//! each, and tries again on a new socket: 4 queries. The cluster's client
//! must send as many per lookup, the ICMP error reaching it as an event.
//! Times are not compared: the cluster model has no per-hop delay, so its
//! lookup fails at once where glibc took 1-6 ms of ICMP round trips.

use serde_json::Value;
use sim_scenarios::run;

/// Queries the recorded glibc sent for its first lookup (A and AAAA).
fn recorded_queries() -> usize {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../validation/glibc/recordings/nothing_listening.json");
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("the recording")).expect("JSON");
    let first = &rec["lookups"][0];
    assert_eq!(
        first["family"], "UNSPEC",
        "the first lookup asks A and AAAA"
    );
    let end = first["start_ms"].as_f64().unwrap() + first["duration_ms"].as_f64().unwrap();
    rec["queries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["t_ms"].as_f64().unwrap() <= end)
        .count()
}

#[test]
fn nothing_listening_sends_as_many_queries_as_glibc() {
    let n = recorded_queries();
    assert_eq!(n, 4, "the recording: two tries of A and AAAA");
    let text = format!(
        "name: nothing_listening\nsummary: kube-dns without endpoints\nduration: 20s\nsample_every: 5s\n\
         cluster:\n  nodes: {{count: 2, zones: [a]}}\n  ipam: {{mode: per-node, cluster_cidr: 10.244.0.0/16, node_mask: 24}}\n\
         dns:\n  workload: coredns\n  queries: A+AAAA\n\
         workloads:\n\
         \x20 - {{name: coredns, namespace: kube-system, port: 53, protocol: UDP, replicas: 0, startup: 1s, ready_after: 1s}}\n\
         \x20 - {{name: app, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 8, service_time: 5ms}}\n\
         traffic:\n  - {{name: lookups, from: app, resolve: www.example.com., rate: 1/s, timeout: 10s}}\n\
         measure:\n  windows: [{{name: all, from: 0s, to: 20s}}]\n\
         expect:\n  - {{metric: dns_queries_per_lookup, service: lookups, window: all, equals: {n}}}\n"
    );
    let s = sim_scenarios::parse("nothing_listening.yaml", &text).expect("parses");
    let runs = run::run_all(&s, &[1], Some(1)).expect("runs");
    let (held, total) = run::totals(runs.iter().flat_map(|r| &r.checks));
    assert_eq!((held, total), (1, 1), "{:?}", runs[0].checks);
}
