use crate::error::InputError;
use crate::spec::{parse, Scenario};
use sim_core::SimDuration;
use sim_models::netpol::Protocol;
use sim_models::workload::WorkloadKind;

/// A scenario `s.yaml` in a fresh directory with manifest files under
/// `m/`, parsed.
pub(super) fn scenario(
    test: &str,
    entries: &str,
    extra: &str,
    files: &[(&str, &str)],
) -> Result<Scenario, InputError> {
    let dir = std::env::temp_dir().join(format!("knsim-manifests-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("m")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join("m").join(name), text).unwrap();
    }
    let text = format!(
        "name: t\nsummary: s\nduration: 1m\nsample_every: 10s\n\
         cluster:\n  nodes: {{count: 2, zones: [a]}}\n  ipam: {{mode: flat, pod_cidr: 10.0.0.0/22}}\n  manifests: m\n\
         {extra}workloads:\n{entries}"
    );
    let file = dir.join("s.yaml");
    std::fs::write(&file, &text).unwrap();
    let out = parse(&file.display().to_string(), &text);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      dnsConfig:
        searches: [corp.example]
        options: [{name: ndots, value: \"2\"}, {name: single-request-reopen}]
      containers:
        - name: web
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 250m, memory: 128Mi}}
          readinessProbe: {httpGet: {path: /, port: http}, initialDelaySeconds: 5, periodSeconds: 10, successThreshold: 2}
";

const WEB_SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: http}]
";

const DB: &str = "\
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
      containers: [{name: db, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
";

pub(super) const COREDNS: &str = "\
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
      containers:
        - name: coredns
          resources: {requests: {cpu: 100m, memory: 70Mi}, limits: {cpu: 200m, memory: 256Mi}}
          ports: [{containerPort: 53, protocol: UDP, name: dns}, {containerPort: 53, protocol: TCP, name: dns-tcp}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system}
spec:
  selector: {k8s-app: kube-dns}
  ports: [{name: dns-tcp, port: 53, protocol: TCP}, {name: dns, port: 53, protocol: UDP}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: coredns, namespace: kube-system}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: coredns}
  minReplicas: 2
  maxReplicas: 8
  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 60}}}]
";

const POLICY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: shop}
data: {a: b}
";

const ENTRIES: &str = "  - {name: coredns, startup: 5s}\n  - {name: web, startup: 10s, concurrency: 4, service_time: 10ms}\n  - {name: db, startup: 20s, concurrency: 8, service_time: 2ms}\n";
const DNS: &str = "network: {cni: calico}\ndns: {workload: coredns}\n";

fn all() -> Vec<(&'static str, String)> {
    vec![
        ("a-dns.yaml", COREDNS.to_string()),
        ("b-web.yaml", format!("{WEB}---\n{WEB_SERVICE}")),
        ("c-db.yml", DB.to_string()),
        ("d-policy.yaml", POLICY.to_string()),
        ("notes.txt", "not read".to_string()),
    ]
}

fn run(
    test: &str,
    entries: &str,
    extra: &str,
    files: &[(&str, String)],
) -> Result<Scenario, InputError> {
    let files: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    scenario(test, entries, extra, &files)
}

#[test]
fn each_kind_maps_onto_the_model() {
    let s = run("ok", ENTRIES, DNS, &all()).unwrap();
    let v = &s.variants[0];
    let cfg = &v.config;
    let names: Vec<&str> = cfg.deployments.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["coredns", "web", "db"]);
    let web = &cfg.deployments[1];
    assert_eq!((web.replicas, web.namespace.as_str()), (3, "shop"));
    assert_eq!(
        (web.port.number, web.port.name.as_deref()),
        (8080, Some("http"))
    );
    // initialDelaySeconds 5, periodSeconds 10: the first tick at or after 5 s
    // (mean 10 s), and a second success 10 s later.
    assert_eq!(web.ready_after, SimDuration::from_secs(20));
    assert_eq!(web.startup, SimDuration::from_secs(10));
    assert_eq!(web.server.concurrency, 4);
    let db = &cfg.deployments[2];
    assert_eq!(
        (db.kind, db.port.number, db.ready_after),
        (WorkloadKind::StatefulSet, 5432, SimDuration::ZERO)
    );
    let dns = cfg.dns.as_ref().unwrap();
    // Services are the model's objects: web's over its named port, db's
    // headless (no workload-level flag).
    let explicit = &cfg.services.explicit;
    let names: Vec<&str> = explicit.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "db"]);
    assert_eq!(
        (explicit[0].ports[0].port, explicit[0].ports[0].target_port),
        (80, 8080)
    );
    assert!(explicit[1].headless && !explicit[0].headless);
    assert!(dns.headless.is_empty());
    let pod = &dns.pod_dns[&1];
    assert_eq!((pod.ndots, pod.single_request_reopen), (Some(2), true));
    assert_eq!(pod.searches, ["corp.example"]);
    // The CPU limit wins over the request; the memory limit is CoreDNS's.
    assert_eq!(dns.coredns.cpu_millicores, 200);
    assert_eq!(dns.coredns.memory_limit, 256 << 20);
    let hpa = dns.autoscaler.unwrap();
    assert_eq!(
        (hpa.min_replicas, hpa.max_replicas, hpa.target_utilization),
        (2, 8, 0.6)
    );
    let coredns = &cfg.deployments[0];
    assert_eq!(
        (coredns.port.number, coredns.port.protocol),
        (53, Protocol::Udp)
    );
    let policy = cfg.policy.as_ref().unwrap();
    assert_eq!(policy.sets.len(), 1);
    assert_eq!(policy.sets[0].0, "d-policy");
    assert_eq!(policy.active, [0]);
    let notes = v.notes.join("\n");
    assert!(
        notes.contains("skipped: ConfigMap shop/settings"),
        "{notes}"
    );
    assert!(notes.contains("d-policy.yaml:"), "{notes}");
    assert!(
        notes.contains("Deployment shop/web") && notes.contains("resources are not modelled"),
        "{notes}"
    );
}

#[test]
fn a_manifest_workload_without_an_entry_is_located_in_the_manifest() {
    let entries = "  - {name: coredns, startup: 5s}\n  - {name: web, startup: 10s, concurrency: 4, service_time: 10ms}\n";
    let e = run("no-entry", entries, DNS, &all()).unwrap_err();
    assert!(e.file.ends_with("c-db.yml"), "{e}");
    assert_eq!(e.at, Some((3, 18)), "{e}");
    assert!(
        e.message.contains("StatefulSet shop/db has no entry"),
        "{e}"
    );
    assert!(e.hint.contains("{name: db, startup:"), "{e}");
}

#[test]
fn an_entry_naming_no_manifest_workload_is_located_in_the_scenario() {
    let entries =
        format!("{ENTRIES}  - {{name: wbe, startup: 1s, concurrency: 1, service_time: 1ms}}\n");
    let e = run("no-manifest", &entries, DNS, &all()).unwrap_err();
    assert!(e.file.ends_with("s.yaml"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(15), "{e}");
    assert!(
        e.message
            .contains("`wbe` names no Deployment or StatefulSet"),
        "{e}"
    );
    assert!(e.hint.contains("web"), "{e}");
}

#[test]
fn an_entry_may_not_repeat_what_the_manifest_says() {
    let entries = ENTRIES.replace(
        "{name: web, startup: 10s",
        "{name: web, replicas: 5, startup: 10s",
    );
    let e = run("repeat", &entries, DNS, &all()).unwrap_err();
    assert!(e.file.ends_with("s.yaml"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(13), "{e}");
    assert!(
        e.message
            .contains("`replicas` of `web` is stated by the manifests"),
        "{e}"
    );
    let dns = "network: {cni: calico}\ndns: {workload: coredns, coredns: {cpu: 500m}}\n";
    let e = run("repeat-cpu", ENTRIES, dns, &all()).unwrap_err();
    assert!(
        e.message
            .contains("CoreDNS's CPU is stated by the manifests"),
        "{e}"
    );
    let e = run(
        "no-startup",
        &ENTRIES.replace("startup: 20s, ", ""),
        DNS,
        &all(),
    )
    .unwrap_err();
    assert!(e.message.contains("needs `startup`"), "{e}");
}

/// The files with `extra` appended to the web file.
fn with_web(extra: &str) -> Vec<(&'static str, String)> {
    let mut files = all();
    files[1].1.push_str(extra);
    files
}

#[test]
fn what_the_model_has_no_field_for_is_an_error() {
    let files = with_web("");
    let mut ns = files.clone();
    ns[1].1 = ns[1]
        .1
        .replace("searches: [corp.example]", "nameservers: [1.1.1.1]");
    let e = run("nameservers", ENTRIES, DNS, &ns).unwrap_err();
    assert!(
        e.message.contains(
            "nameservers[0]: nameserver 1.1.1.1 is not a DNS server this cluster model can reach"
        ),
        "{e}"
    );
    assert_eq!(e.at, Some((3, 18)), "{e}");
    // The kube-dns ClusterIP is reachable, with dnsPolicy None too.
    let mut reachable = files.clone();
    reachable[1].1 = reachable[1].1.replace(
        "      dnsConfig:\n        searches: [corp.example]",
        "      dnsPolicy: None\n      dnsConfig:\n        nameservers: [10.96.0.10]",
    );
    assert!(
        reachable[1].1.contains("nameservers: [10.96.0.10]"),
        "the fixture changed"
    );
    run("reachable", ENTRIES, DNS, &reachable).unwrap();
    let mut policy = files.clone();
    policy[1].1 = policy[1].1.replace(
        "      dnsConfig:",
        "      dnsPolicy: None\n      dnsConfig:",
    );
    let e = run("dns-policy", ENTRIES, DNS, &policy).unwrap_err();
    assert!(
        e.message
            .contains("dnsPolicy: None needs dnsConfig.nameservers"),
        "{e}"
    );
    let hpa = with_web("---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web, namespace: shop}\nspec: {scaleTargetRef: {kind: Deployment, name: web}, maxReplicas: 5}\n");
    let e = run("hpa-app", ENTRIES, DNS, &hpa).unwrap_err();
    assert!(
        e.message.contains("application pods have no CPU model"),
        "{e}"
    );
    let mut option = files;
    option[1].1 = option[1]
        .1
        .replace("name: single-request-reopen", "name: edns0");
    let e = run("option", ENTRIES, DNS, &option).unwrap_err();
    assert!(
        e.message
            .contains("dnsConfig.options[1]: resolv.conf option `edns0` is not modelled"),
        "{e}"
    );
}

#[test]
fn policies_need_a_network_section_and_bad_manifests_are_located() {
    let e = run("no-network", ENTRIES, "dns: {workload: coredns}\n", &all()).unwrap_err();
    assert!(e.message.contains("no network section"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(8), "{e}");
    let mut bad = all();
    bad[1].1 = bad[1].1.replace("cpu: 250m", "cpu: 25o");
    let e = run("quantity", ENTRIES, DNS, &bad).unwrap_err();
    assert!(e.file.ends_with("b-web.yaml"), "{e}");
    assert_eq!(e.at, Some((16, 39)), "{e}");
    assert!(e.message.contains("quantities must match"), "{e}");
    let e = run("missing", ENTRIES, DNS, &[]).unwrap_err();
    assert!(e.message.contains("no *.yaml or *.yml files"), "{e}");
}
