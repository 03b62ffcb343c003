use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::netpol::policy::PolicyTypes;
use crate::protocol::Protocol;

fn load(text: &str) -> Result<Manifests, ManifestError> {
    parse_manifests(&[("bad.yaml".to_string(), text.to_string())])
}

fn error(text: &str) -> ManifestError {
    match load(text) {
        Ok(_) => panic!("should be rejected:\n{text}"),
        Err(e) => e,
    }
}

/// Asserts position, message fragment and hint fragment, and that the
/// rendered error has the `file:line:column: error:` shape.
fn assert_error(text: &str, line: usize, column: usize, message: &str, hint: &str) {
    let e = error(text);
    let shown = e.to_string();
    assert_eq!((e.line, e.column), (line, column), "{shown}");
    assert!(e.message.contains(message), "message: {shown}");
    assert!(e.hint.contains(hint), "hint: {shown}");
    assert!(
        shown.starts_with(&format!("bad.yaml:{line}:{column}: error: ")),
        "{shown}"
    );
    assert!(shown.contains("\n  hint: "), "{shown}");
}

const HEAD: &str = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n  namespace: prod\nspec:\n";

#[test]
fn misspelt_spec_field() {
    assert_error(
        &format!("{HEAD}  podSelecter: {{}}\n"),
        7,
        3,
        "unknown field `podSelecter`",
        "did you mean `podSelector`?",
    );
}

#[test]
fn misspelt_peer_field_and_wrong_direction() {
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - from:\n    - podselector: {{}}\n"),
        10,
        7,
        "spec.ingress[0].from[0]: unknown field `podselector`",
        "did you mean `podSelector`?",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - to: []\n"),
        9,
        5,
        "unknown field `to`",
        "ingress rules list their peers under `from`",
    );
}

#[test]
fn invalid_operator() {
    let text = format!(
        "{HEAD}  podSelector:\n    matchExpressions:\n    - key: app\n      operator: Equals\n      values: [web]\n"
    );
    assert_error(
        &text,
        10,
        17,
        "matchExpressions[0].operator: unsupported value \"Equals\"",
        "use In, NotIn",
    );
    let text = text.replace("Equals", "notin");
    assert_error(
        &text,
        10,
        17,
        "unsupported value \"notin\"",
        "did you mean `NotIn`?",
    );
}

#[test]
fn operator_values_rules() {
    let text = format!(
        "{HEAD}  podSelector:\n    matchExpressions:\n    - key: app\n      operator: In\n"
    );
    assert_error(
        &text,
        9,
        7,
        "must be specified when `operator` is 'In' or 'NotIn'",
        "non-empty list",
    );
    let text = format!(
        "{HEAD}  podSelector:\n    matchExpressions:\n    - {{key: app, operator: Exists, values: [a]}}\n"
    );
    assert_error(
        &text,
        9,
        7,
        "may not be specified when `operator` is 'Exists'",
        "remove `values`",
    );
}

#[test]
fn port_out_of_range() {
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 70000\n"),
        10,
        13,
        "port 70000 is out of range: must be between 1 and 65535",
        "1-65535",
    );
}

#[test]
fn end_port_rules() {
    assert_error(
        &format!(
            "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports:\n    - port: 8080\n      endPort: 8000\n"
        ),
        10,
        7,
        "endPort: 8000 must be greater than or equal to `port` (8080)",
        "inclusive end",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{endPort: 90}}]\n"),
        9,
        13,
        "may not be specified when `port` is not specified",
        "start of the range",
    );
    assert_error(
        &format!(
            "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: http, endPort: 90}}]\n"
        ),
        9,
        13,
        "may not be specified when `port` is non-numeric",
        "numeric",
    );
}

#[test]
fn named_and_quoted_ports() {
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: \"80\"}}]\n"),
        9,
        20,
        "port name `80` must contain at least one letter",
        "without quotes",
    );
    assert_error(
        &format!(
            "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: 80, protocol: tcp}}]\n"
        ),
        9,
        34,
        "unsupported value \"tcp\"",
        "protocols are upper case: TCP",
    );
}

#[test]
fn invalid_cidr() {
    assert_error(
        &format!(
            "{HEAD}  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/33\n"
        ),
        11,
        15,
        "not a valid CIDR",
        "n between 0 and 32",
    );
}

#[test]
fn except_must_be_strict_subset() {
    let text = format!(
        "{HEAD}  podSelector: {{}}\n  egress:\n  - to:\n    - ipBlock:\n        cidr: 10.0.0.0/16\n        except: [10.0.0.0/16]\n"
    );
    assert_error(
        &text,
        11,
        9,
        "must be a strict subset of `cidr`",
        "inside 10.0.0.0/16",
    );
    let text = text.replace("except: [10.0.0.0/16]", "except: [192.168.0.0/24]");
    assert_error(
        &text,
        11,
        9,
        "192.168.0.0/24 must be a strict subset",
        "inside",
    );
}

#[test]
fn peer_shape() {
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress:\n  - from: [{{}}]\n"),
        9,
        12,
        "must specify a peer",
        "omit `from`/`to`",
    );
    assert_error(
        &format!(
            "{HEAD}  podSelector: {{}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8}}\n      podSelector: {{}}\n"
        ),
        10,
        7,
        "may not specify both ipBlock and another peer",
        "two entries",
    );
}

#[test]
fn policy_types() {
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  policyTypes: [Ingress, ingress]\n"),
        8,
        26,
        "unsupported value \"ingress\"",
        "case-sensitive",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  policyTypes: [Ingress, Egress, Ingress]\n"),
        7,
        3,
        "may not specify more than two policyTypes",
        "Ingress, Egress",
    );
}

#[test]
fn labels_and_names() {
    assert_error(
        &format!("{HEAD}  podSelector: {{matchLabels: {{app: \"web app\"}}}}\n"),
        7,
        36,
        "label value `web app`",
        "alphanumerics",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{matchLabels: {{version: 2}}}}\n"),
        7,
        40,
        "label value must be a string, found integer 2",
        "quote it: \"2\"",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{matchLabels: {{-app: web}}}}\n"),
        7,
        31,
        "invalid label key",
        "prefix/name",
    );
    assert_error(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: Allow_All}\n",
        3,
        11,
        "name: `Allow_All` must be a lowercase RFC 1123 subdomain",
        "lowercase",
    );
    assert_error(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {namespace: prod}\n",
        1,
        1,
        "metadata.name: Required value",
        "metadata",
    );
}

#[test]
fn kinds_and_api_versions() {
    assert_error(
        "apiVersion: networking.k8s.io/v1\nkind: Networkpolicy\nmetadata: {name: p}\n",
        2,
        7,
        "unknown kind `Networkpolicy`",
        "did you mean `NetworkPolicy`?",
    );
    assert_error(
        "apiVersion: extensions/v1beta1\nkind: NetworkPolicy\nmetadata: {name: p}\n",
        1,
        1,
        "apiVersion `extensions/v1beta1` is not served for kind NetworkPolicy",
        "networking.k8s.io/v1",
    );
    assert_error(
        "apiVersion: v1\nmetadata: {name: p}\n",
        1,
        1,
        "missing field `kind`",
        "kind: NetworkPolicy",
    );
}

#[test]
fn yaml_syntax_and_shape() {
    assert_error(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: [a\n---\nkind: Pod\n",
        4,
        1,
        "did not find expected",
        "YAML syntax",
    );
    assert_error(
        &format!("{HEAD}  podSelector: {{}}\n  ingress: {{from: []}}\n"),
        8,
        12,
        "spec.ingress: invalid type: map, expected a sequence",
        "type",
    );
    let e = error("- just\n- a list\n");
    assert_eq!((e.line, e.column), (1, 1), "{e}");
}

#[test]
fn duplicates_point_at_the_second_name() {
    let p = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: p\n";
    let e = error(&format!("{p}---\n{p}"));
    assert_eq!((e.line, e.column), (9, 9), "{e}");
    assert!(
        e.message
            .contains("NetworkPolicy default/p is defined twice (first at bad.yaml:4)"),
        "{e}"
    );
}

#[test]
fn defaulting() {
    let m = load(&format!(
        "{HEAD}  podSelector: {{}}\n  ingress:\n  - ports: [{{port: 80}}]\n---\n{}",
        HEAD.replace("name: p", "name: q") + "  egress: [{}]\n"
    ))
    .expect("loads");
    let ps = m.cluster.policies();
    assert_eq!(ps[0].name, "p");
    assert_eq!(
        ps[0].policy_types,
        PolicyTypes {
            ingress: true,
            egress: false
        }
    );
    assert_eq!(ps[0].ingress[0].ports[0].protocol, Protocol::Tcp);
    assert_eq!(
        ps[1].policy_types,
        PolicyTypes {
            ingress: true,
            egress: true
        }
    );
    // A policy without spec selects every pod of its namespace, ingress only.
    let m = load("apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: p}\n")
        .expect("loads");
    let p = &m.cluster.policies()[0];
    assert_eq!(p.namespace, "default");
    assert!(p.pod_selector.is_everything());
    assert_eq!(
        p.policy_types,
        PolicyTypes {
            ingress: true,
            egress: false
        }
    );
}

const REAL_DEPLOYMENT: &str = "
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations: {deployment.kubernetes.io/revision: \"3\"}
  labels: {app: web}
spec:
  replicas: 3
  revisionHistoryLimit: 10
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%}}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web, tier: front}
      annotations: {prometheus.io/scrape: \"true\"}
    spec:
      serviceAccountName: web
      nodeName: worker-2
      containers:
      - name: nginx
        image: nginx:1.27
        imagePullPolicy: IfNotPresent
        ports:
        - {containerPort: 8080, name: http}
        - {containerPort: 9090, name: metrics, protocol: TCP}
        readinessProbe: {httpGet: {path: /healthz, port: http}}
        resources: {requests: {cpu: 100m}}
        env: [{name: A, value: b}]
      volumes: [{name: cache, emptyDir: {}}]
status:
  availableReplicas: 3
";

#[test]
fn real_deployment_expands_to_pods() {
    let m = load(REAL_DEPLOYMENT).expect("real manifests load");
    let pods = m.cluster.pods();
    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-0", "web-1", "web-2"]);
    assert_eq!(pods[0].ip, Ipv4Addr::new(10, 244, 0, 1));
    assert_eq!(pods[2].ip, Ipv4Addr::new(10, 244, 0, 3));
    assert_eq!(pods[0].host_ip, Ipv4Addr::new(172, 18, 0, 2));
    assert_eq!(
        pods[0].labels.get("tier").map(String::as_str),
        Some("front")
    );
    assert!(pods[0].has_named_port("http", Protocol::Tcp, 8080));
    assert!(pods[0].has_named_port("metrics", Protocol::Tcp, 9090));
    // The namespace exists implicitly, with the automatic label.
    let shop = m.cluster.namespace_labels("shop").expect("namespace");
    assert_eq!(
        shop.get("kubernetes.io/metadata.name").map(String::as_str),
        Some("shop")
    );
}

#[test]
fn typos_in_workloads_are_errors() {
    let e = error(&REAL_DEPLOYMENT.replace("imagePullPolicy", "imagePullPolicyy"));
    assert!(
        e.message.contains("unknown field `imagePullPolicyy`"),
        "{e}"
    );
    assert!(e.hint.contains("did you mean `imagePullPolicy`?"), "{e}");
    assert_eq!((e.line, e.column), (25, 9), "{e}");
    let e = error(&REAL_DEPLOYMENT.replace("matchLabels: {app: web}", "matchLabels: {app: api}"));
    assert!(
        e.message.contains("does not match template `labels`"),
        "{e}"
    );
    let e = error(&REAL_DEPLOYMENT.replace("replicas: 3", "replicas: -1"));
    assert!(
        e.message
            .contains("spec.replicas: -1 must be greater than or equal to 0"),
        "{e}"
    );
    let e = error(&REAL_DEPLOYMENT.replace("replicas: 3", "replicas: 2000000000"));
    assert!(e.message.contains("would exceed knsim's limit"), "{e}");
    let e = error(&REAL_DEPLOYMENT.replace(
        "containerPort: 8080, name: http",
        "containerPort: 8080, name: HTTP",
    ));
    assert!(e.message.contains("port name `HTTP`"), "{e}");
}

#[test]
fn pods_statefulsets_and_addresses() {
    let text = "
apiVersion: v1
kind: Pod
metadata: {name: fixed, namespace: a}
spec:
  hostNetwork: false
  containers: [{name: c}]
status: {podIP: 10.244.0.1, hostIP: 192.168.5.5, phase: Running, conditions: []}
---
apiVersion: v1
kind: Pod
metadata: {name: agent, namespace: kube-system}
spec:
  hostNetwork: true
  nodeName: worker-1
  containers: [{name: c}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: a}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: pg, ports: [{containerPort: 5432}]}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: a}
spec: {ports: [{port: 5432}]}
";
    let m = load(text).expect("loads");
    let c = &m.cluster;
    assert_eq!(
        c.pod("a", "fixed").expect("pod").ip,
        Ipv4Addr::new(10, 244, 0, 1)
    );
    assert_eq!(
        c.pod("a", "fixed").expect("pod").host_ip,
        Ipv4Addr::new(192, 168, 5, 5)
    );
    // Synthetic addresses skip the explicit one.
    assert_eq!(
        c.pod("a", "db-0").expect("pod").ip,
        Ipv4Addr::new(10, 244, 0, 2)
    );
    assert_eq!(
        c.pod("a", "db-1").expect("pod").ip,
        Ipv4Addr::new(10, 244, 0, 3)
    );
    // Nodes in name order: knsim-node, worker-1.
    assert_eq!(
        c.pod("a", "db-0").expect("pod").host_ip,
        Ipv4Addr::new(172, 18, 0, 2)
    );
    let agent = c.pod("kube-system", "agent").expect("pod");
    assert!(agent.host_network);
    assert_eq!(agent.ip, Ipv4Addr::new(172, 18, 0, 3));
    assert_eq!(agent.ip, agent.host_ip);
    assert_eq!(m.skipped, ["Service a/db (bad.yaml:32)"]);
    let e = error(&text.replace("name: db, namespace: a}\nspec:\n  serviceName", "name: fixed, namespace: a}\nspec:\n  serviceName").replace("replicas: 2", "replicas: 1").replace("\n---\napiVersion: v1\nkind: Service", "\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: fixed-0, namespace: a}\nspec: {containers: [{name: c}]}\n---\napiVersion: v1\nkind: Service"));
    assert!(
        e.message
            .contains("pod a/fixed-0 (from Pod) already exists (from StatefulSet a/fixed"),
        "{e}"
    );
    let e = error(&text.replace("status: {podIP: 10.244.0.1", "status: {podIP: 10.244.0.300"));
    assert!(
        e.message.contains("`10.244.0.300` is not an IPv4 address"),
        "{e}"
    );
}

fn pod_on(name: &str, node: Option<&str>, host_ip: Option<&str>) -> String {
    let node = node.map_or(String::new(), |n| format!("  nodeName: {n}\n"));
    let status = host_ip.map_or(String::new(), |ip| format!("status: {{hostIP: {ip}}}\n"));
    format!("apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: a}}\nspec:\n{node}  containers: [{{name: c}}]\n{status}---\n")
}

#[test]
fn one_address_per_node_and_a_stated_host_ip_wins() {
    // p1 states worker-1's address; p2 on worker-1 states none and gets it,
    // not an invented one. worker-2 has no stated address: the first
    // synthetic one. q states an address and names no node: the node of that
    // address, worker-1.
    let text = [
        pod_on("p1", Some("worker-1"), Some("192.168.5.5")),
        pod_on("p2", Some("worker-1"), None),
        pod_on("p3", Some("worker-2"), None),
        pod_on("q", None, Some("192.168.5.5")),
        pod_on("r", None, Some("192.168.9.9")),
    ]
    .concat();
    let m = load(&text).expect("loads");
    let host = |pod: &str| m.cluster.pod("a", pod).expect("pod").host_ip;
    assert_eq!(host("p1"), Ipv4Addr::new(192, 168, 5, 5));
    assert_eq!(host("p2"), Ipv4Addr::new(192, 168, 5, 5));
    assert_eq!(host("p3"), Ipv4Addr::new(172, 18, 0, 2));
    assert_eq!(host("q"), Ipv4Addr::new(192, 168, 5, 5));
    let nodes: Vec<(&str, Ipv4Addr)> = m.nodes.iter().map(|(n, ip)| (n.as_str(), *ip)).collect();
    assert_eq!(
        nodes,
        [
            ("192.168.9.9", Ipv4Addr::new(192, 168, 9, 9)),
            ("worker-1", Ipv4Addr::new(192, 168, 5, 5)),
            ("worker-2", Ipv4Addr::new(172, 18, 0, 2)),
        ]
    );
    // The order of the pods does not matter.
    let text = [
        pod_on("p0", Some("worker-1"), None),
        pod_on("p1", Some("worker-1"), Some("192.168.5.5")),
    ]
    .concat();
    let m = load(&text).expect("loads");
    assert_eq!(
        m.cluster.pod("a", "p0").expect("pod").host_ip,
        Ipv4Addr::new(192, 168, 5, 5)
    );
}

#[test]
fn two_host_ips_for_one_node_are_an_error() {
    let text = [
        pod_on("p1", Some("worker-1"), Some("192.168.5.5")),
        pod_on("p2", Some("worker-1"), Some("192.168.5.6")),
    ]
    .concat();
    let e = error(&text);
    assert_eq!((e.line, e.column), (11, 18), "{e}");
    assert!(
        e.message.contains(
            "pod a/p2: status.hostIP 192.168.5.6 differs from 192.168.5.5, which pod a/p1 states for node worker-1"
        ),
        "{e}"
    );
    assert!(e.hint.contains("a node has one address"), "{e}");
    // One address for two nodes.
    let text = [
        pod_on("p1", Some("worker-1"), Some("192.168.5.5")),
        pod_on("p2", Some("worker-2"), Some("192.168.5.5")),
    ]
    .concat();
    let e = error(&text);
    assert!(
        e.message.contains(
            "status.hostIP 192.168.5.5 of node worker-2 is already the address of node worker-1"
        ),
        "{e}"
    );
    assert!(e.hint.contains("node addresses are unique"), "{e}");
}

#[test]
fn load_dir_and_truth_table() {
    let dir = std::env::temp_dir().join(format!("knsim-netpol-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(
        dir.join("10-pods.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: x, labels: {pod: a}}\nspec: {containers: [{name: c, ports: [{containerPort: 80}]}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: b, namespace: x, labels: {pod: b}}\nspec: {containers: [{name: c}]}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("20-policy.yml"),
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: deny-b, namespace: x}\nspec:\n  podSelector: {matchLabels: {pod: b}}\n",
    )
    .expect("write");
    std::fs::write(dir.join("notes.txt"), "not yaml: [").expect("write");
    let manifests = load_dir(&dir).expect("loads");
    let table = crate::netpol::Reachability::new(manifests, &[], &[])
        .expect("no peers")
        .text();
    assert!(
        table.contains("TCP/80\n                x/a x/b node:knsim-node\nx/a             .   X   .\nx/b             .   X   .\nnode:knsim-node .   .   .\n"),
        "{table}"
    );
    assert!(table.contains("x/a -> x/b TCP/80: denied\n  pod b in namespace x is isolated for ingress by policy [deny-b]"), "{table}");
    std::fs::write(
        dir.join("30-bad.yaml"),
        format!("{HEAD}  podSelector: {{}}\n  ingress: [{{ports: [{{port: 70000}}]}}]\n"),
    )
    .expect("write");
    let e = load_dir(&dir).expect_err("bad port");
    assert!(e.to_string().contains("30-bad.yaml:8:29: error:"), "{e}");
    std::fs::remove_dir_all(&dir).expect("cleanup");
    let e = load_dir(&dir).expect_err("gone");
    assert!(
        e.to_string().contains("error: cannot read directory"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Mutated manifests (bytes deleted, inserted, truncated) load or fail
    /// with a positioned error, and never panic.
    #[test]
    fn mutated_manifests_never_panic(
        cut in 0usize..2000,
        at in 0usize..2000,
        insert in prop::sample::select(vec!["", ":", "- ", "{", "]", "\n", "  ", "'", "&a ", "*a", "!!int ", "---\n", "70000", "\t"]),
        truncate in any::<bool>(),
    ) {
        let base = format!("{REAL_DEPLOYMENT}---\n{HEAD}  podSelector: {{matchExpressions: [{{key: app, operator: In, values: [web]}}]}}\n  ingress:\n  - from:\n    - ipBlock: {{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}\n    ports: [{{port: 80, endPort: 90}}, {{port: http}}]\n");
        let mut bytes = base.into_bytes();
        let at = at.min(bytes.len());
        let cut_end = (at + cut % 7).min(bytes.len());
        bytes.drain(at..cut_end);
        for (i, b) in insert.bytes().enumerate() {
            bytes.insert(at + i, b);
        }
        if truncate {
            bytes.truncate(cut.min(bytes.len()));
        }
        if let Ok(text) = String::from_utf8(bytes) {
            match load(&text) {
                Ok(m) => { let _ = crate::netpol::Reachability::new(m, &[], &[]).map(|r| r.text()); }
                Err(e) => prop_assert!(e.to_string().starts_with("bad.yaml:")),
            }
        }
    }
}
