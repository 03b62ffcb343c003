use super::*;
use proptest::prelude::*;
use sim_models::cluster::Action;
use sim_models::connections::{ConnectionMode, GO_IDLE_CONN_TIMEOUT};
use sim_models::conntrack::{DataPath, Kernel};
use sim_models::did_you_mean::suggest;
use sim_models::kube_proxy::Mode;

#[test]
fn closest_suggests_typos_only() {
    assert_eq!(suggest("replica", &["name", "replicas"]), Some("replicas"));
    assert_eq!(suggest("zzzzzzzz", &["name", "replicas"]), None);
}

fn with_lines(traffic_extra: &str, network: &str) -> Result<Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         {network}workloads:\n  - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         traffic:\n  - {{to: api, rate: 1/s, timeout: 1s{traffic_extra}}}\n"
    );
    parse("t.yaml", &text)
}

#[test]
fn connection_modes_and_conntrack_settings_parse() {
    let ok = with_lines(
        ", from: api, connections: {keep_alive: {max_idle: 4}}",
        "network:\n  cni: calico\n  conntrack: {kernel: \"3.10\", node_cores: 16}\n",
    )
    .unwrap();
    let cfg = &ok.variants[0].config;
    assert_eq!(
        cfg.traffic[0].connections,
        ConnectionMode::KeepAlive {
            max_idle: 4,
            idle_timeout: GO_IDLE_CONN_TIMEOUT
        }
    );
    let ct = cfg.conntrack.unwrap();
    assert_eq!((ct.table.max, ct.table.kernel), (524_288, Kernel::V3_10));
    let ll = with_lines(", from: api, connections: {long_lived: 3}", "").unwrap();
    assert_eq!(
        ll.variants[0].config.traffic[0].connections,
        ConnectionMode::LongLived {
            per_client: 3,
            max_age: None
        }
    );
}

#[test]
fn bad_connection_and_conntrack_settings_are_located() {
    let e = with_lines(", from: api, connections: keep-alvie", "").unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(11), "{e}");
    assert!(e.hint.contains("did you mean `keep-alive`"), "{e}");
    let e = with_lines(", connections: keep-alive", "").unwrap_err();
    assert!(e.message.contains("outside the cluster"), "{e}");
    let e = with_lines(", from: api, connections: {long_lived: 0}", "").unwrap_err();
    assert!(e.message.contains("long_lived is 0"), "{e}");
    let e = with_lines(", from: api, connections: {long_lifed: 2}", "").unwrap_err();
    assert!(e.at.is_some() && e.hint.contains("long_lived"), "{e}");
    let e = with_lines(
        "",
        "network:\n  cni: calico\n  conntrack: {kernel: \"4.9\", max: 10}\n",
    )
    .unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(e.hint.contains("3.10, 4.19, 5.15"), "{e}");
    let e = with_lines(
        "",
        "network:\n  cni: calico\n  conntrack: {kernel: \"5.15\"}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("node_cores"), "{e}");
    let e = with_lines("", "network:\n  cni: calico\n  conntrack: {maxx: 5}\n").unwrap_err();
    assert!(e.hint.contains("did you mean `max`"), "{e}");
}

/// A small scenario with `network` replaced by `net` (indented 2).
fn with_network(net: &str, expect: &str) -> String {
    format!(
        "name: t\nsummary: t\nduration: 1m\nsample_every: 10s\n\
         cluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         workloads:\n  - {{name: web, replicas: 2, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         traffic:\n  - {{to: web, rate: 1/s, timeout: 1s}}\n\
         measure:\n  windows: [{{name: all, from: 0s, to: 1m}}]\n\
         network:\n{net}expect:\n{expect}"
    )
}

#[test]
fn kube_proxy_sections_parse_with_defaults_and_overrides() {
    let text = with_network(
        "  cni: calico\n  kube_proxy: {mode: iptables, partial_restores: false, per_rule: 20ns}\n  services: {count: 5000, endpoints: 3}\n",
        "  - {metric: first_packet_p99, service: web, window: all, below: 1ms}\n",
    );
    let s = parse("kp.yaml", &text).unwrap();
    let kp = s.variants[0].config.kube_proxy.clone().unwrap();
    assert_eq!(kp.mode, Mode::Iptables);
    assert!(!kp.partial_restores);
    assert_eq!(kp.costs.per_rule, SimDuration::from_nanos(20));
    assert_eq!(kp.sync_period, SimDuration::from_secs(30));
    assert_eq!((kp.other_services, kp.other_endpoints), (5000, 3));
}

#[test]
fn an_ebpf_load_balancer_takes_pod_flows_out_of_the_conntrack_table() {
    let net = |mode: &str| {
        format!("  cni: cilium\n  conntrack: {{max: 1000}}\n  kube_proxy: {{mode: {mode}}}\n")
    };
    let datapath = |mode: &str| {
        let s = parse("kp.yaml", &with_network(&net(mode), "  []\n")).unwrap();
        s.variants[0].config.conntrack.unwrap().datapath
    };
    assert_eq!(datapath("ebpf"), DataPath::Ebpf);
    assert_eq!(datapath("nftables"), DataPath::Netfilter);
}

#[test]
fn the_a_aaaa_insert_race_needs_its_concurrency_stated() {
    let text = crate::bundled::BUNDLED
        .iter()
        .find(|(n, _)| *n == "dns_conntrack_race")
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let base = "conntrack: {kernel: \"3.10\", node_cores: 4, udp_pair_concurrency: 0.05}";
    assert!(text.contains(base));
    let line = text.lines().position(|l| l.contains(base)).unwrap_or(0) + 1;
    let missing = text.replacen(", udp_pair_concurrency: 0.05", "", 1);
    let e = parse("race.yaml", &missing).unwrap_err();
    println!("{e}");
    assert!(
        e.message.contains("how often they race is not known"),
        "{e}"
    );
    assert!(e.hint.contains("udp_pair_concurrency"), "{e}");
    assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
    let wrong = text.replacen("udp_pair_concurrency: 0.05", "udp_pair_concurrency: 5", 1);
    let e = parse("race.yaml", &wrong).unwrap_err();
    assert!(e.message.contains("not a share in 0..1"), "{e}");
    let s = parse("race.yaml", text).unwrap();
    let ct = s.variants[0].config.conntrack.unwrap();
    assert_eq!(ct.udp_pair_concurrency, 0.05);
    assert!(ct.flush_udp_on_endpoint_removal);
}

#[test]
fn a_conntrack_flush_needs_a_table() {
    let text = crate::bundled::BUNDLED
        .iter()
        .find(|(n, _)| *n == "preply_stale_conntrack")
        .map(|(_, t)| *t)
        .unwrap_or_default();
    let table =
        "  conntrack: {node_cores: 4, kernel: \"4.19\", flush_udp_on_endpoint_removal: false}\n";
    assert!(text.contains(table));
    let e = parse("flush.yaml", &text.replacen(table, "", 1)).unwrap_err();
    println!("{e}");
    assert!(e.message.contains("no table to flush"), "{e}");
    let line = text
        .lines()
        .position(|l| l.contains("conntrack_flush"))
        .unwrap_or(0);
    assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
    let s = parse("flush.yaml", text).unwrap();
    let ct = s.variants[0].config.conntrack.unwrap();
    assert!(!ct.flush_udp_on_endpoint_removal);
}

#[test]
fn kube_proxy_mistakes_are_located_errors() {
    let cases = [
        (
            "  cni: calico\n  kube_proxy: {mode: ipvs, partial_restores: true}\n",
            "",
            "`partial_restores` applies to mode iptables",
            16,
        ),
        (
            "  cni: calico\n  services: {count: 10, endpoints: 1}\n",
            "",
            "only adds rules",
            16,
        ),
        (
            "  cni: calico\n",
            "  - {metric: first_packet_p50, service: web, window: all, below: 1ms}\n",
            "needs network.kube_proxy",
            17,
        ),
        (
            "  cni: flannel\n  kube_proxy: {mode: ebpf}\n",
            "",
            "flannel has no eBPF",
            16,
        ),
        (
            "  cni: calico\n  kube_proxy: {mode: iptables, min_sync_period: 1m}\n",
            "",
            "longer than sync_period",
            16,
        ),
        (
            "  cni: calico\n  kube_proxy: {mode: iptable}\n",
            "",
            "unknown variant `iptable`",
            16,
        ),
    ];
    for (net, expect, want, line) in cases {
        let e = parse("kp.yaml", &with_network(net, expect)).unwrap_err();
        println!("{e}");
        assert!(e.message.contains(want), "{e}");
        assert_eq!(e.at.map(|(l, _)| l), Some(line), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// Whatever the text, parsing returns a value or an error; it never panics.
    #[test]
    fn parse_never_panics(text in "\\PC{0,200}") {
        let _ = parse("fuzz.yaml", &text);
    }

    /// Any single-line edit of a valid file parses or gives a located error.
    #[test]
    fn edited_scenarios_fail_with_a_position(line in 0usize..100, junk in "[a-z:{}\\[\\] -]{0,12}") {
        let base = include_str!("../../../scenarios/black_friday_cidr.yaml");
        let mut lines: Vec<&str> = base.lines().collect();
        let i = line % lines.len();
        lines[i] = &junk;
        if let Err(e) = parse("edit.yaml", &lines.join("\n")) {
            prop_assert!(e.at.is_some() || e.message.contains("empty"), "{e}");
        }
    }
}

#[test]
fn an_unknown_figure_is_refused_with_the_names_of_its_level() {
    let e = with_lines(
        "",
        "expect:\n  - {metric: pods_pendin, workload: api, at: 1m, equals: 1}\n",
    )
    .unwrap_err();
    assert!(
        e.message.starts_with(
            "expect[0].metric: unknown variant `pods_pendin`, expected one of `pods_pending`, `pods_running`,"
        ),
        "{e}"
    );
    assert!(
        e.message
            .ends_with("`dns_queries_stale`, `requests_not_found`, `answered_by`"),
        "{e}"
    );
    assert!(e.hint.starts_with("did you mean `pods_pending`?"), "{e}");
}

fn with_dns(dns: &str, app: &str, traffic: &str) -> Result<Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         dns: {{workload: coredns{dns}}}\n\
         workloads:\n  - {{name: coredns, namespace: kube-system, port: 53, protocol: UDP, replicas: 1, startup: 1s, ready_after: 1s}}\n\
         \x20 - {{name: app, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 12, service_time: 1ms{app}}}\n\
         traffic:\n  - {{from: app, resolve: www.example.com, rate: 1/s, timeout: 1s{traffic}}}\n"
    );
    parse("t.yaml", &text)
}

#[test]
fn glibc_generation_threads_and_nameservers_parse() {
    use sim_models::resolver::GlibcVersion;
    let s = with_dns(", glibc: legacy, node_local_dns: true", "", "").unwrap();
    let cfg = &s.variants[0].config;
    let dns = cfg.dns.as_ref().unwrap();
    assert_eq!(dns.resolv_conf("default", 1).glibc, GlibcVersion::Legacy);
    assert_eq!(
        cfg.traffic[0].threads, 12,
        "default: the client's concurrency"
    );
    let s = with_dns(
        "",
        ", dns_policy: None, dns_config: {nameservers: [10.96.0.10], options: [{name: rotate}]}",
        ", threads: 3",
    )
    .unwrap();
    let cfg = &s.variants[0].config;
    let conf = cfg.dns.as_ref().unwrap().resolv_conf("default", 1);
    assert_eq!(conf.glibc, GlibcVersion::Current);
    assert!(
        conf.search.is_empty() && conf.ndots == 1 && conf.rotate,
        "{conf:?}"
    );
    assert_eq!(cfg.traffic[0].threads, 3);
}

#[test]
fn glibc_threads_and_dns_policy_mistakes_are_located() {
    let e = with_dns(", glibc: 2.17", "", "").unwrap_err();
    assert!(e.at.is_some() && e.message.contains("2.17"), "{e}");
    let e = with_dns("", ", dns_policy: None", "").unwrap_err();
    assert!(e.at.is_some() && e.message.contains("nameservers"), "{e}");
    let e = with_dns("", ", dns_policy: Default", "").unwrap_err();
    assert!(e.at.is_some() && e.hint.contains("ClusterFirst"), "{e}");
    let e = with_dns("", "", ", threads: 0").unwrap_err();
    assert!(e.at.is_some() && e.message.contains("threads"), "{e}");
    let e = with_dns("", ", dns_config: {nameservers: [169.254.20.10]}", "").unwrap_err();
    assert!(e.at.is_some() && e.hint.contains("node_local_dns"), "{e}");
    let e = with_dns(
        "",
        ", dns_config: {nameservers: [10.96.0.10, 10.96.0.10, 10.96.0.10]}",
        "",
    )
    .unwrap_err();
    assert!(e.message.contains("at most 3"), "{e}");
}

/// A scenario with `services` and `edge` sections (indented 0) and a
/// traffic entry `traffic` (a flow map body).
fn with_services(services: &str, traffic: &str, public: bool) -> Result<Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 2, zones: [a], public_addresses: {public}}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
         workloads:\n  - {{name: web, replicas: 2, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms, port: 8080}}\n\
         \x20 - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
         {services}traffic:\n  - {{{traffic}}}\n"
    );
    parse("t.yaml", &text)
}

#[test]
fn services_apart_from_workloads_parse() {
    let s = with_services(
        "services:\n  - {name: web-np, selector: {app: web}, type: NodePort, ports: [{port: 80, target_port: 8080}]}\n  - {name: web-lb, selector: {app: web}, type: LoadBalancer, external_traffic_policy: Local, ports: [{port: 443, target_port: 8080, node_port: 31000}]}\n",
        "to: web-lb, node_port: {address: public}, rate: 1/s, timeout: 1s",
        true,
    )
    .unwrap();
    let cfg = &s.variants[0].config;
    let list = cfg.service_list();
    let names: Vec<&str> = list.iter().map(|r| r.spec.name.as_str()).collect();
    // `api` keeps its implicit Service; `web` is claimed by two Services.
    assert_eq!(names, ["api", "web-np", "web-lb"]);
    assert_eq!(list[1].workloads, [0]);
    assert_eq!(list[2].workloads, [0]);
    // The allocated port comes from the dynamic band above the 86 static ports.
    assert_eq!(list[1].spec.ports[0].node_port, Some(30086));
    assert_eq!(list[2].spec.ports[0].node_port, Some(31000));
    assert_eq!(cfg.traffic[0].service, Some(2));
    assert_eq!(cfg.traffic[0].entry.map(|e| e.port), Some(None));
    // An implicit Service is still named by its workload.
    let s = with_services("", "to: api, rate: 1/s, timeout: 1s", false).unwrap();
    assert_eq!(s.variants[0].config.traffic[0].service, Some(1));
}

#[test]
fn headless_services_and_names_taken_in_services() {
    let headless = "services:\n  - {name: peers, selector: {app: web}, headless: true}\n";
    // A headless Service has no ClusterIP: traffic to it resolves its name.
    let e = with_services(headless, "to: peers, rate: 1/s, timeout: 1s", false).unwrap_err();
    assert!(e.message.contains("headless (no ClusterIP)"), "{e}");
    let s = with_services(headless, "to: api, rate: 1/s, timeout: 1s", false).unwrap();
    let list = s.variants[0].config.service_list();
    assert!(list
        .iter()
        .any(|r| r.spec.name == "peers" && r.spec.headless));
    let e = with_services(
        "services:\n  - {name: peers, selector: {app: web}, type: NodePort, headless: true}\n",
        "to: api, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("headless Service cannot be of type NodePort"),
        "{e}"
    );
    // `api` is not selected: its own Service keeps the name.
    let e = with_services(
        "services:\n  - {name: api, selector: {app: web}}\n",
        "to: api, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(
        e.message.contains(
            "does not select the pods of workload `api`, whose own Service has that name"
        ),
        "{e}"
    );
    assert_eq!(e.at.map(|a| a.0), Some(12), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, allocate_load_balancer_node_ports: false}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("LoadBalancer Services only"), "{e}");
}

#[test]
fn bad_services_are_located() {
    let two = "services:\n  - {name: a, selector: {app: web}, type: NodePort, ports: [{port: 80, node_port: 30080}]}\n  - {name: b, selector: {app: api}, type: NodePort, ports: [{port: 80, node_port: 30080}]}\n";
    let e = with_services(two, "to: a, rate: 1/s, timeout: 1s", false).unwrap_err();
    assert!(e.message.contains("already allocated"), "{e}");
    assert!(e.hint.contains("`a` already holds it"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(13), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, type: NodePort, ports: [{port: 80, node_port: 8080}]}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("not in the valid range"), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selectr: {app: web}}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.at.is_some() && e.hint.contains("selector"), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, type: Nodeport}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.at.is_some(), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, external_traffic_policy: Local}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("NodePort and LoadBalancer"), "{e}");
    // `web` is claimed by `a`: it has no Service of its own name.
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}}\n",
        "to: web, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("no Service of its own name"), "{e}");
    assert!(e.hint.contains('a'), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, type: NodePort}\n",
        "to: a, node_port: {address: public}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("no public address"), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}}\n",
        "to: a, node_port: {address: internal}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("has no NodePort"), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}, type: NodePort}\nedge: {security_group: [{from: 0.0.0.0/0, ports: 32767-30000}]}\n",
        "to: a, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("is empty"), "{e}");
}

#[test]
fn nat_gateways_and_external_traffic_parse() {
    let net = "network:\n  cni: calico\n  nat_gateways:\n    gateways: [{name: nat-a, zone: a, addresses: 2}]\n    routes: {a: nat-a}\n    idle_timeout: 100s\n";
    let ok = with_lines(
        ", from: api, external: 203.0.113.10:443, request_size: 2kB, response_size: 1KiB",
        net,
    )
    .unwrap();
    let cfg = &ok.variants[0].config;
    let t = &cfg.traffic[0];
    assert!(t.snat);
    assert_eq!(
        t.external.map(|d| d.to_string()).as_deref(),
        Some("203.0.113.10:443/TCP")
    );
    assert_eq!((t.request_bytes, t.response_bytes), (2_000, 1_024));
    let nat = cfg.nat_gateways.as_ref().unwrap();
    assert_eq!(nat.zones, ["a"]);
    assert_eq!(nat.config.routes, [Some(0)]);
    assert_eq!(nat.config.gateways[0].addresses, 2);
    assert_eq!(nat.config.idle_timeout, SimDuration::from_secs(100));
    assert_eq!(nat.config.connections_per_destination, 55_000);
}

#[test]
fn bad_nat_gateway_settings_are_located() {
    let net = |gw: &str, routes: &str| {
        format!("network:\n  cni: calico\n  nat_gateways:\n    gateways: [{gw}]\n    routes: {routes}\n")
    };
    let good = net("{name: nat-a, zone: a}", "{a: nat-a}");
    let e = with_lines(", from: api", &net("{name: nat-a, zone: b}", "{a: nat-a}")).unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(11), "{e}");
    assert!(e.message.contains("`b` is not a zone"), "{e}");
    let e = with_lines(", from: api", &net("{name: nat-a, zone: a}", "{a: nat-b}")).unwrap_err();
    assert!(
        e.message.contains("no NAT gateway is called `nat-b`"),
        "{e}"
    );
    assert!(e.hint.contains("nat-a"), "{e}");
    let e = with_lines(
        ", from: api",
        &net("{name: nat-a, zone: a, addresses: 9}", "{a: nat-a}"),
    )
    .unwrap_err();
    assert!(e.message.contains("outside 1..=8"), "{e}");
    let e = with_lines(", from: api, external: 203.0.113.10", &good).unwrap_err();
    assert!(e.message.contains("not an address and port"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(16), "{e}");
    let e = with_lines(", external: 203.0.113.10:443", &good).unwrap_err();
    assert!(e.message.contains("needs `from`"), "{e}");
    let e = with_lines(", from: api, external: 203.0.113.10:443", "").unwrap_err();
    assert!(e.message.contains("network.nat_gateways"), "{e}");
}

#[test]
fn billing_parses_with_cited_defaults_and_mistakes_are_located() {
    use sim_models::transfer_cost::Billing;
    let aws = with_lines(
        ", from: api",
        "network:\n  cni: calico\n  billing: {rule: aws}\n",
    )
    .unwrap();
    assert_eq!(aws.variants[0].config.billing, Some(Billing::aws()));
    let gcp = with_lines(
        ", from: api",
        "network:\n  cni: calico\n  billing: {rule: gcp, price: 0.02}\n",
    )
    .unwrap();
    assert_eq!(
        gcp.variants[0].config.billing,
        Some(Billing::Gcp { per_gib: 0.02 })
    );
    let none = with_lines(", from: api", "").unwrap();
    assert_eq!(none.variants[0].config.billing, None);
    let e = with_lines(
        ", from: api",
        "network:\n  cni: calico\n  billing: {rule: azure}\n",
    )
    .unwrap_err();
    assert!(e.at.is_some(), "{e}");
    assert!(e.message.contains("azure"), "{e}");
    let e = with_lines(
        ", from: api",
        "network:\n  cni: calico\n  billing: {rule: aws, price: -1}\n",
    )
    .unwrap_err();
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(e.message.contains("is not a price"), "{e}");
    let e = with_lines(
        ", from: api",
        "network:\n  cni: calico\n  billing: {rule: aws, per_gb: 1}\n",
    )
    .unwrap_err();
    assert!(e.message.contains("per_gb"), "{e}");
}

#[test]
fn zone_figures_need_billing() {
    let text = |net: &str| {
        format!(
            "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\ncluster:\n  nodes: {{count: 1, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/24}}\n\
             {net}workloads:\n  - {{name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}}\n\
             traffic:\n  - {{to: api, from: api, rate: 1/s, timeout: 1s}}\nmeasure:\n  windows: [{{name: w, from: 0s, to: 1m}}]\n\
             expect:\n  - {{metric: cross_zone_share, service: api, window: w, equals: 0}}\n"
        )
    };
    let e = parse("t.yaml", &text("")).unwrap_err();
    assert!(e.message.contains("needs network.billing"), "{e}");
    assert!(e.at.is_some(), "{e}");
    parse(
        "t.yaml",
        &text("network:\n  cni: calico\n  billing: {rule: aws}\n"),
    )
    .unwrap();
}

fn zoned(cluster_extra: &str, timeline: &str) -> Result<Scenario, InputError> {
    let text = format!(
        "name: t\nsummary: s\nduration: 10m\nsample_every: 10s\ncluster:\n  nodes: {{count: 6, zones: [eu-b, eu-c, eu-d], max_pods: 110, allocatable: {{cpu: 2, memory: 4Gi}}}}\n\
         {cluster_extra}workloads:\n  - {{name: api, replicas: 3, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms, \
         resources: {{requests: {{cpu: 500m, memory: 1Gi}}}}, topology_spread: {{maxSkew: 1, whenUnsatisfiable: ScheduleAnyway}}}}\n\
         traffic:\n  - {{to: api, rate: 1/s, timeout: 1s}}\ntimeline:\n{timeline}"
    );
    parse("z.yaml", &text)
}

#[test]
fn zone_down_names_the_zones_nodes_and_refuses_an_unknown_zone() {
    let flat = "  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n";
    let ok = zoned(flat, "  - {at: 1m, zone_down: eu-c}\n").unwrap();
    let cfg = &ok.variants[0].config;
    let Action::ZoneDown { zone, nodes } = &cfg.timeline[0].action else {
        panic!("{:?}", cfg.timeline[0].action);
    };
    // Round-robin over three zones: nodes 2 and 5 are in eu-c.
    assert_eq!((zone.as_str(), nodes.as_slice()), ("eu-c", &[1, 4][..]));
    let spread = cfg.deployments[0].spread.unwrap();
    assert!(!spread.do_not_schedule && spread.max_skew == 1);
    let e = zoned(flat, "  - {at: 1m, zone_down: eu-a}\n").unwrap_err();
    assert!(e.message.contains("no node is in zone `eu-a`"), "{e}");
    assert!(e.hint.contains("eu-b, eu-c, eu-d"), "{e}");
    assert_eq!(e.at.map(|(l, _)| l), Some(13), "{e}");
    let e = zoned(flat, "  - {at: 1m, zone_down: eu-c, replicas: 2}\n").unwrap_err();
    assert!(e.message.contains("takes no `replicas`"), "{e}");
}

#[test]
fn gke_ranges_and_node_pools_are_checked() {
    let gke = "  ipam: {mode: gke, pod_range: 10.4.0.0/22}\n  node_pool: {max_nodes: 8}\n";
    let ok = zoned(gke, "  - {at: 1m, add_pod_range: 10.5.0.0/22}\n").unwrap();
    let cfg = &ok.variants[0].config;
    // 110 max pods: /24 per node; 6 nodes, 2 standby slots.
    assert_eq!(cfg.nodes.len(), 8);
    assert_eq!(cfg.nodes.iter().filter(|n| n.standby).count(), 2);
    assert!(matches!(
        cfg.ipam,
        sim_models::ipam::IpamLayout::PerNode { node_mask: 24, .. }
    ));
    let pool = cfg.node_pool.as_ref().unwrap();
    assert_eq!(
        pool.subnetwork,
        "projects/my-project/regions/eu/subnetworks/default"
    );
    let cases = [
        (
            "  ipam: {mode: gke, pod_range: 10.4.0.0/25}\n",
            "",
            "smaller than one node's /24 block",
        ),
        (
            "  ipam: {mode: gke, pod_range: 10.4.0.0/16, node_mask: 26}\n",
            "",
            "node_mask does not apply",
        ),
        (
            "  ipam: {mode: flat, pod_cidr: 10.0.0.0/24, pod_range: 10.4.0.0/16}\n",
            "",
            "pod_range belongs to `mode: gke`",
        ),
        (
            "  ipam: {mode: gke, pod_range: 10.4.0.0/16}\n  node_pool: {max_nodes: 5}\n",
            "",
            "must be between nodes.count (6)",
        ),
        (
            "  ipam: {mode: gke, pod_range: 10.4.0.0/16}\n",
            "  - {at: 1m, add_pod_range: 10.4.128.0/17}\n",
            "overlaps the pod range",
        ),
        (
            "  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n",
            "  - {at: 1m, add_pod_range: 10.5.0.0/16}\n",
            "applies to `mode: gke`",
        ),
    ];
    for (cluster, timeline, want) in cases {
        let timeline = if timeline.is_empty() {
            "  - {at: 1m, scale: api, replicas: 4}\n"
        } else {
            timeline
        };
        let e = zoned(cluster, timeline).unwrap_err();
        assert!(e.message.contains(want), "{want}: {e}");
        assert!(e.at.is_some(), "{e}");
    }
}

#[test]
fn load_balancer_entries_parse_and_bad_ones_are_located() {
    let lb = "services:\n  - {name: web-lb, selector: {app: web}, type: LoadBalancer, ports: [{port: 443, target_port: 8080}]}\n";
    let s = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: nlb, controller: aws-lbc, deregistration_delay: 30s, health_check: {path: readiness, interval: 5s, timeout: 5s, healthy_threshold: 2}}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap();
    let e = s.variants[0].config.traffic[0].load_balancer.unwrap();
    assert_eq!(e.check, sim_models::cloud_lb::CheckPath::Readiness);
    assert_eq!(e.group.kind, sim_models::cloud_lb::LbKind::Network);
    assert!(!e.group.cross_zone, "NLB's default");
    assert_eq!(e.group.health_check.interval, SimDuration::from_secs(5));
    assert_eq!(
        e.group.health_check.unhealthy_threshold, 3,
        "the controller's"
    );
    assert_eq!(e.group.deregistration_delay, SimDuration::from_secs(30));
    // A misspelt field is named, not ignored.
    let e = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: alb, health_check: {intervall: 5s}}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.at.is_some() && e.hint.contains("interval"), "{e}");
    let e = with_services(
        "services:\n  - {name: a, selector: {app: web}}\n",
        "to: a, load_balancer: {kind: alb}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("no cloud load balancer"), "{e}");
    let s = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: nlb, targets: instance, cross_zone: true}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap();
    let e = s.variants[0].config.traffic[0].load_balancer.unwrap();
    assert_eq!(
        e.group.target_type,
        sim_models::cloud_lb::TargetType::Instance
    );
    assert!(e.group.cross_zone);
    // An instance target's check goes to the node, not to a pod.
    let e = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: alb, targets: instance, health_check: {path: readiness}}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(
        e.at.is_some() && e.message.contains("goes to the node"),
        "{e}"
    );
    let s = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: alb, readiness_gate: true}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap();
    assert!(
        s.variants[0].config.traffic[0]
            .load_balancer
            .unwrap()
            .readiness_gate
    );
    // The controller's gate is for ip targets only.
    let e = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: nlb, targets: instance, readiness_gate: true}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.at.is_some() && e.message.contains("ip` only"), "{e}");
    let e = with_services(
        lb,
        "to: web-lb, load_balancer: {kind: alb, health_check: {interval: 5s, timeout: 10s}}, rate: 1/s, timeout: 1s",
        false,
    )
    .unwrap_err();
    assert!(e.message.contains("must not exceed"), "{e}");
}

#[test]
fn a_workloads_service_time_changes_on_the_timeline_and_bad_entries_are_located() {
    let flat = "  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n";
    let ok = zoned(flat, "  - {at: 1m, workload: api, service_time: 200ms}\n").unwrap();
    assert_eq!(
        ok.variants[0].config.timeline[0].action,
        Action::SetServiceTime {
            deployment: 0,
            service_time: SimDuration::from_millis(200)
        }
    );
    let cases = [
        (
            "  - {at: 1m, workload: apo, service_time: 200ms}\n",
            "workload `apo` is not a workload",
        ),
        ("  - {at: 1m, workload: api}\n", "needs `service_time`"),
        (
            "  - {at: 1m, service_time: 200ms}\n",
            "belongs to a `workload` action",
        ),
        (
            "  - {at: 1m, workload: api, service_time: 0s}\n",
            "service_time is 0",
        ),
        (
            "  - {at: 1m, workload: api, service_time: 1s, replicas: 2}\n",
            "no `replicas` or `rate`",
        ),
        (
            "  - {at: 1m, workload: api, service_time: 1s, scale: api, replicas: 2}\n",
            "more than one action",
        ),
        (
            "  - {at: 1m, workload: api, service_time: 1s, servce_time: 2s}\n",
            "unknown field `servce_time`",
        ),
    ];
    for (timeline, want) in cases {
        let e = zoned(flat, timeline).unwrap_err();
        assert!(e.message.contains(want), "{want}: {e}");
        // Line 13 is the timeline entry.
        assert_eq!(e.at.map(|(l, _)| l), Some(13), "{want}: {e}");
    }
    // The DNS workload's speed is CoreDNS's CPU, not a service time.
    let text = "name: t\nsummary: s\nduration: 10m\nsample_every: 10s\ncluster:\n  nodes: {count: 1, zones: [a]}\n  ipam: {mode: flat, pod_cidr: 10.0.0.0/24}\n\
                dns: {workload: coredns}\nworkloads:\n  - {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}, port: 53, protocol: UDP, replicas: 1, startup: 1s, ready_after: 1s}\n\
                \x20 - {name: api, replicas: 1, startup: 1s, ready_after: 1s, concurrency: 1, service_time: 1ms}\n\
                traffic:\n  - {to: api, rate: 1/s, timeout: 1s}\ntimeline:\n  - {at: 1m, workload: coredns, service_time: 1s}\n";
    let e = parse("d.yaml", text).unwrap_err();
    assert!(e.message.contains("is the DNS workload"), "{e}");
    assert_eq!(e.at.map(|(l, _)| l), Some(15), "{e}");
}
