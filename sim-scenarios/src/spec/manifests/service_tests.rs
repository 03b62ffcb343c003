//! Manifest Services onto the cluster's Service model: every type and
//! policy, the same cluster written as `services:` running byte for byte
//! the same, and what is refused (located, with the apiserver's wording
//! where it refuses the same).

use super::tests::scenario;
use crate::error::InputError;
use crate::spec::{parse, Scenario};
use sim_models::services::{ServiceType, TrafficPolicy};

/// The shop's workloads and Services: a NodePort with a nodePort given, a
/// ClusterIP Service over two workloads, a LoadBalancer without NodePorts
/// but one given by hand, a headless Service, a second Service on another
/// port of one workload.
const SHOP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers: [{name: web, ports: [{containerPort: 8080, name: http}]}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api, tier: front}}
    spec:
      containers: [{name: api, ports: [{containerPort: 8080, name: http}, {containerPort: 9090, name: metrics}]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  replicas: 2
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, ports: [{containerPort: 5432, name: pg}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web-np, namespace: shop, annotations: {service.kubernetes.io/topology-mode: Auto, example.com/owner: shop-team}}
spec:
  type: NodePort
  selector: {app: web}
  externalTrafficPolicy: Local
  ports: [{port: 80, targetPort: http, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: front, namespace: shop}
spec:
  selector: {tier: front}
  trafficDistribution: PreferClose
  ports: [{port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-lb, namespace: shop}
spec:
  type: LoadBalancer
  selector: {app: web}
  externalTrafficPolicy: Local
  allocateLoadBalancerNodePorts: false
  loadBalancerSourceRanges: [10.0.0.0/8]
  ports:
    - {name: https, port: 443, targetPort: http}
    - {name: admin, port: 8443, targetPort: 8080, nodePort: 31443}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432, targetPort: pg}]
---
apiVersion: v1
kind: Service
metadata: {name: api-metrics, namespace: shop}
spec:
  selector: {app: api}
  internalTrafficPolicy: Local
  ports: [{port: 9090, targetPort: metrics}]
";

/// CoreDNS with no resources and no autoscaler (the model's defaults, as
/// a scenario without them has).
const DNS_MANIFEST: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system}
spec:
  replicas: 2
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      dnsPolicy: Default
      containers: [{name: coredns, ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  selector: {k8s-app: kube-dns}
  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53, protocol: TCP}]
";

/// What manifests do not say, for the manifest form.
const ENTRIES: &str = "\
workloads:
  - {name: coredns, startup: 2s}
  - {name: web, startup: 5s, concurrency: 4, service_time: 5ms}
  - {name: api, startup: 5s, concurrency: 4, service_time: 5ms}
  - {name: db, startup: 5s, concurrency: 8, service_time: 2ms}
";

/// The same cluster written in the scenario format.
const WRITTEN: &str = "\
workloads:
  - {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}, port: 53, protocol: UDP, port_name: dns, replicas: 2, startup: 2s, ready_after: 0s}
  - {name: web, namespace: shop, labels: {app: web, tier: front}, port: 8080, port_name: http, replicas: 3, startup: 5s, ready_after: 0s, concurrency: 4, service_time: 5ms}
  - {name: api, namespace: shop, labels: {app: api, tier: front}, port: 8080, port_name: http, replicas: 2, startup: 5s, ready_after: 0s, concurrency: 4, service_time: 5ms}
  - {name: db, kind: statefulset, namespace: shop, labels: {app: db}, port: 5432, port_name: pg, replicas: 2, startup: 5s, ready_after: 0s, concurrency: 8, service_time: 2ms}
services:
  - {name: web-np, namespace: shop, selector: {app: web}, type: NodePort, external_traffic_policy: Local, topology_mode: Auto, ports: [{port: 80, target_port: 8080, node_port: 30080}]}
  - {name: front, namespace: shop, selector: {tier: front}, traffic_distribution: PreferClose, ports: [{port: 80, target_port: 8080}]}
  - name: web-lb
    namespace: shop
    selector: {app: web}
    type: LoadBalancer
    external_traffic_policy: Local
    allocate_load_balancer_node_ports: false
    ports: [{name: https, port: 443, target_port: 8080}, {name: admin, port: 8443, target_port: 8080, node_port: 31443}]
  - {name: db, namespace: shop, selector: {app: db}, headless: true, ports: [{port: 5432, target_port: 5432}]}
  - {name: api-metrics, namespace: shop, selector: {app: api}, internal_traffic_policy: Local, ports: [{port: 9090, target_port: 9090}]}
";

/// The cluster, its traffic, and either `cluster.manifests` or the
/// written form.
fn text(manifests: bool) -> String {
    let (line, body) = if manifests {
        ("  manifests: m\n", ENTRIES)
    } else {
        ("", WRITTEN)
    };
    format!(
        "name: same\nsummary: one cluster written two ways\nduration: 1m\nsample_every: 10s\n\
         cluster:\n  nodes: {{count: 3, zones: [a, b]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/22}}\n{line}\
         dns: {{workload: coredns}}\n{body}\
         traffic:\n\
         \x20 - {{name: outside, to: web-np, node_port: {{address: internal}}, rate: 40/s, timeout: 1s}}\n\
         \x20 - {{name: front, from: web, to: front, rate: 100/s, timeout: 1s}}\n\
         \x20 - {{name: db, from: api, to: db, resolve: true, rate: 50/s, timeout: 1s}}\n\
         \x20 - {{name: metrics, from: web, to: api-metrics, rate: 20/s, timeout: 1s}}\n\
         measure: {{windows: [{{name: up, from: 20s, to: 1m}}]}}\n\
         expect:\n\
         \x20 - {{metric: error_rate, service: front, window: up, below: 0.01}}\n\
         \x20 - {{metric: error_rate, service: db, window: up, below: 0.01, because: the headless name answers the Ready pods' addresses}}\n\
         \x20 - {{metric: error_rate, service: metrics, window: up, above: 0.01, because: internalTrafficPolicy Local drops what a node without an api pod sends}}\n\
         \x20 - {{metric: requests_answered, service: outside, window: up, above: 0}}\n"
    )
}

/// Both forms, parsed from files in a fresh directory.
fn both(test: &str) -> (Scenario, Scenario) {
    let dir = std::env::temp_dir().join(format!("knsim-svcman-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    std::fs::write(dir.join("m/a-dns.yaml"), DNS_MANIFEST).unwrap();
    std::fs::write(dir.join("m/b-shop.yaml"), SHOP).unwrap();
    let parse_in = |name: &str, text: String| {
        let file = dir.join(name);
        std::fs::write(&file, &text).unwrap();
        parse(&file.display().to_string(), &text)
    };
    let from_manifests = parse_in("manifests.yaml", text(true));
    let written = parse_in("written.yaml", text(false));
    let _ = std::fs::remove_dir_all(&dir);
    (from_manifests.unwrap(), written.unwrap())
}

#[test]
fn services_of_every_type_map_onto_the_model() {
    let (s, _) = both("types");
    let v = &s.variants[0];
    let cfg = &v.config;
    let list = cfg.service_list();
    let names: Vec<&str> = list.iter().map(|r| r.spec.name.as_str()).collect();
    // kube-dns is the DNS workload's implicit Service; the others are the
    // manifests', in their order.
    assert_eq!(
        names,
        ["coredns", "web-np", "front", "web-lb", "db", "api-metrics"]
    );
    let [_, np, front, lb, db, metrics] = &list[..] else {
        unreachable!()
    };
    assert_eq!(np.spec.kind, ServiceType::NodePort);
    assert_eq!(np.spec.external_policy, TrafficPolicy::Local);
    // The annotation `service.kubernetes.io/topology-mode: Auto`.
    assert!(np.spec.topology_auto && !front.spec.topology_auto);
    assert_eq!(
        (np.spec.ports[0].target_port, np.spec.ports[0].node_port),
        (8080, Some(30080))
    );
    // One Service over the pods of two workloads, its named port resolved
    // in both.
    assert_eq!(front.workloads, [1, 2]);
    assert!(front.spec.prefer_close);
    assert_eq!(front.spec.ports[0].target_port, 8080);
    // allocateLoadBalancerNodePorts: false: only the port given by hand,
    // and the health-check port ExternalTrafficPolicy Local needs.
    assert_eq!(lb.spec.kind, ServiceType::LoadBalancer);
    let lb_ports: Vec<Option<u16>> = lb.spec.ports.iter().map(|p| p.node_port).collect();
    assert_eq!(lb_ports, [None, Some(31443)]);
    assert!(lb.spec.health_check_node_port.is_some());
    assert!(db.spec.headless);
    assert_eq!(db.spec.ports[0].target_port, 5432);
    assert_eq!(metrics.spec.internal_policy, TrafficPolicy::Local);
    assert_eq!(metrics.spec.ports[0].target_port, 9090);
    // The first Service over api sets the port its pods serve on.
    assert_eq!(cfg.deployments[2].port.number, 8080);
    let notes = v.notes.join("\n");
    assert!(
        notes.contains("Service shop/api-metrics")
            && notes.contains(
                "reaches Deployment shop/api on port 9090, Service shop/front on port 8080"
            ),
        "{notes}"
    );
    assert!(
        notes.contains("spec.loadBalancerSourceRanges is not modelled"),
        "{notes}"
    );
}

#[test]
fn the_same_cluster_as_manifests_and_as_services_runs_byte_for_byte_the_same() {
    let (from_manifests, written) = both("same");
    assert_eq!(
        from_manifests.variants[0].config,
        written.variants[0].config
    );
    let out = |s: &Scenario| {
        let runs = crate::run::run_all(s, &[1, 2], None).unwrap();
        let (held, total) = crate::report::expectation_totals(&runs);
        let text = crate::report::text(s, &runs).unwrap();
        assert!(total == 8 && held == total, "{text}");
        (text, crate::report::json(s, &runs).unwrap().to_string())
    };
    let (text, json) = out(&from_manifests);
    let (written_text, written_json) = out(&written);
    assert_eq!(text, written_text);
    assert_eq!(json, written_json);
}

/// The test fixture's web file with a Service `other` (body `spec`) after
/// it, parsed; extra scenario sections in `extra`.
fn with_other(test: &str, spec: &str, extra: &str) -> Result<Scenario, InputError> {
    let web = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: shop}}\nspec:\n  {spec}\n",
        SHOP.split("---\napiVersion: v1\nkind: Service").next().unwrap()
    );
    scenario(
        test,
        "  - {name: coredns, startup: 2s}\n  - {name: web, startup: 5s, concurrency: 4, service_time: 5ms}\n  - {name: api, startup: 5s, concurrency: 4, service_time: 5ms}\n  - {name: db, startup: 5s, concurrency: 8, service_time: 2ms}\n",
        &format!("dns: {{workload: coredns}}\n{extra}"),
        &[("a-dns.yaml", DNS_MANIFEST), ("b-shop.yaml", &web)],
    )
}

/// The line of `name`'s `metadata.name` in the shop file `with_other`
/// writes.
fn line_of(name: &str) -> usize {
    let head = SHOP
        .split("---\napiVersion: v1\nkind: Service")
        .next()
        .unwrap();
    head.lines().count() + 4 + usize::from(name == "again") * 8
}

#[test]
fn what_the_model_has_no_mechanism_for_is_a_located_error() {
    let cases = [
        (
            "affinity",
            "selector: {app: web}\n  sessionAffinity: ClientIP\n  ports: [{port: 80}]",
            "spec.sessionAffinity: ClientIP is not in the cluster model",
        ),
        (
            "external-name",
            "type: ExternalName\n  externalName: api.example.com",
            "spec.type: ExternalName is not in the cluster model",
        ),
        (
            "not-ready",
            "selector: {app: web}\n  publishNotReadyAddresses: true\n  ports: [{port: 80}]",
            "spec.publishNotReadyAddresses: true is not in the cluster model",
        ),
        (
            "distribution",
            "selector: {app: web}\n  trafficDistribution: PreferSameNode\n  ports: [{port: 80}]",
            "spec.trafficDistribution: PreferSameNode is not in the cluster model",
        ),
        (
            "etp-cluster-ip",
            "selector: {app: web}\n  externalTrafficPolicy: Local\n  ports: [{port: 80}]",
            "externalTrafficPolicy: Local applies to NodePort and LoadBalancer Services only",
        ),
        (
            "etp-value",
            "type: NodePort\n  selector: {app: web}\n  externalTrafficPolicy: Global\n  ports: [{port: 80}]",
            "spec.externalTrafficPolicy: Unsupported value: \"Global\"",
        ),
        (
            "node-port-on-cluster-ip",
            "selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]",
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        ),
        (
            "headless-node-port",
            "type: NodePort\n  clusterIP: None\n  selector: {app: web}\n  ports: [{port: 80}]",
            "spec.clusterIP: Invalid value: \"None\": may not be set to 'None' for NodePort services",
        ),
        (
            "unnamed-ports",
            "selector: {app: web}\n  ports: [{name: a, port: 80}, {port: 81}]",
            "spec.ports[1].name: Required value",
        ),
        (
            "named-port-missing",
            "selector: {tier: front}\n  ports: [{port: 80, targetPort: metrics}]",
            "spec.ports[0].targetPort `metrics` names no container port of Deployment shop/web",
        ),
        (
            "node-port-range",
            "type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, nodePort: 8080}]",
            "Service \"other\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
        ),
    ];
    for (name, spec, want) in cases {
        let e = with_other(name, spec, "").unwrap_err();
        assert!(e.file.ends_with("b-shop.yaml"), "{name}: {e}");
        assert_eq!(e.at, Some((line_of("other"), 18)), "{name}: {e}");
        assert!(e.message.contains(want), "{name}: {e}");
        assert!(!e.hint.is_empty(), "{name}: {e}");
    }
    // One named port, two numbers.
    let spec = "selector: {tier: front}\n  ports: [{port: 80, targetPort: http}]";
    let differs = SHOP.replace(
        "{containerPort: 8080, name: http}, {containerPort: 9090",
        "{containerPort: 8081, name: http}, {containerPort: 9090",
    );
    let web = format!(
        "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: other, namespace: shop}}\nspec:\n  {spec}\n",
        differs.split("---\napiVersion: v1\nkind: Service").next().unwrap()
    );
    let e = scenario(
        "named-differs",
        "  - {name: coredns, startup: 2s}\n  - {name: web, startup: 5s, concurrency: 4, service_time: 5ms}\n  - {name: api, startup: 5s, concurrency: 4, service_time: 5ms}\n  - {name: db, startup: 5s, concurrency: 8, service_time: 2ms}\n",
        "dns: {workload: coredns}\n",
        &[("a-dns.yaml", DNS_MANIFEST), ("b-shop.yaml", &web)],
    )
    .unwrap_err();
    assert!(
        e.message.contains(
            "targetPort `http` is port 8080 in Deployment shop/web and port 8081 in Deployment shop/api"
        ),
        "{e}"
    );
}

#[test]
fn a_node_port_clash_is_refused_as_the_apiserver_refuses_it() {
    // Two manifest Services: the second is refused where it is written.
    let second = "type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: again, namespace: shop}\nspec:\n  type: LoadBalancer\n  selector: {app: api}\n  ports: [{port: 80, targetPort: http, nodePort: 30080}]";
    let e = with_other("clash", second, "").unwrap_err();
    assert!(e.file.ends_with("b-shop.yaml"), "{e}");
    assert_eq!(e.at, Some((line_of("again"), 18)), "{e}");
    assert_eq!(
        e.message,
        "Service \"again\" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated"
    );
    assert!(e.hint.contains("`other` already holds it"), "{e}");
    // A manifest Service and a `services:` entry share one range: the
    // entry is refused at its field.
    let entry = "services:\n  - {name: np, namespace: shop, selector: {app: api}, type: NodePort, ports: [{port: 80, target_port: 8080, node_port: 30080}]}\n";
    let e = with_other(
        "clash-section",
        "type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, nodePort: 30080}]",
        entry,
    )
    .unwrap_err();
    assert!(e.file.ends_with("s.yaml"), "{e}");
    assert!(
        e.message.contains("provided port is already allocated"),
        "{e}"
    );
    assert!(e.hint.contains("`other` already holds it"), "{e}");
    // A `services:` entry may not take a manifest Service's name.
    let entry = "services:\n  - {name: other, namespace: shop, selector: {app: api}}\n";
    let e = with_other(
        "twice",
        "selector: {app: web}\n  ports: [{port: 80}]",
        entry,
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("defined twice (first in the manifests, "),
        "{e}"
    );
}

#[test]
fn services_the_model_keeps_without_endpoints_or_skips_are_noted() {
    let s = with_other(
        "unselected",
        "selector: {app: nothing}\n  ports: [{port: 80}]",
        "",
    )
    .unwrap();
    let notes = s.variants[0].notes.join("\n");
    assert!(
        notes.contains("warning: Service shop/other")
            && notes.contains("selector app=nothing matches no pods of any workload"),
        "{notes}"
    );
    assert!(s.variants[0]
        .config
        .services
        .explicit
        .iter()
        .any(|x| x.name == "other"));
    let s = with_other("manual", "ports: [{port: 80}]", "").unwrap();
    let notes = s.variants[0].notes.join("\n");
    assert!(
        notes.contains("skipped: Service shop/other") && notes.contains("no selector"),
        "{notes}"
    );
    // Workloads without a Service keep the model's implicit one.
    let s = with_other("alone", "selector: {app: web}\n  ports: [{port: 80}]", "").unwrap();
    let notes = s.variants[0].notes.join("\n");
    assert!(
        notes.contains("Deployment shop/api has no Service in the manifests"),
        "{notes}"
    );
}
