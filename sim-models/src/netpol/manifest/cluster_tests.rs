//! Reading manifests for a cluster scenario: each kind, the pod template's
//! extras, and the netpol reading left as it was.

use super::*;
use crate::protocol::Protocol;
use sim_core::SimDuration;

fn read(text: &str) -> Result<ClusterObjects, ManifestError> {
    parse_cluster_objects(&[("m.yaml".to_string(), text.to_string())])
}

#[test]
fn quantities_parse_as_the_api_writes_them() {
    use template::parse_quantity;
    assert_eq!(parse_quantity("100m"), Some(0.1));
    assert_eq!(parse_quantity("2"), Some(2.0));
    assert_eq!(parse_quantity("0.5"), Some(0.5));
    assert_eq!(parse_quantity("170Mi"), Some(170.0 * 1024.0 * 1024.0));
    assert_eq!(parse_quantity("1e3"), Some(1000.0));
    assert_eq!(parse_quantity("1G"), Some(1e9));
    assert_eq!(parse_quantity("25o"), None);
    assert_eq!(parse_quantity("-1"), None);
    assert_eq!(parse_quantity(""), None);
}

#[test]
fn readiness_follows_the_prober_ticks() {
    let probe = |d, p, s| ReadinessProbe {
        initial_delay_seconds: d,
        period_seconds: p,
        success_threshold: s,
    };
    // No delay: the probe triggered at the container's start passes.
    assert_eq!(probe(0, 10, 1).ready_after(), SimDuration::ZERO);
    // A delay: the first tick at or after it, at the mean phase.
    assert_eq!(probe(5, 10, 1).ready_after(), SimDuration::from_secs(10));
    assert_eq!(
        probe(30, 5, 1).ready_after(),
        SimDuration::from_millis(32_500)
    );
    // Each further success adds a period.
    assert_eq!(probe(0, 10, 3).ready_after(), SimDuration::from_secs(20));
}

const APP: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 4
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      dnsPolicy: ClusterFirst
      dnsConfig: {nameservers: [10.0.0.2], searches: [a.example], options: [{name: ndots, value: \"1\"}, {name: rotate}]}
      containers:
        - name: a
          ports: [{containerPort: 8080, name: http}]
          resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: \"1\", memory: 128Mi}}
          readinessProbe: {tcpSocket: {port: 8080}, initialDelaySeconds: 3, periodSeconds: 2}
        - name: b
          resources: {requests: {cpu: 50m}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: None
  selector: {app: web}
  externalTrafficPolicy: Local
  ports: [{port: 80, targetPort: http, nodePort: 30080}, {port: 53, protocol: UDP}]
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  maxReplicas: 9
  metrics:
    - {type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 65}}}
    - {type: Resource, resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}}
  behavior: {scaleDown: {stabilizationWindowSeconds: 60}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec: {containers: [{name: sh}]}
";

#[test]
fn each_kind_is_read_as_written() {
    let m = read(APP).unwrap();
    let w = &m.workloads[0];
    assert_eq!((w.id().as_str(), w.replicas), ("Deployment shop/web", 4));
    assert_eq!(
        w.at,
        Loc {
            file: "m.yaml".into(),
            line: 3,
            column: 18
        }
    );
    assert_eq!(w.dns_policy.as_deref(), Some("ClusterFirst"));
    let dns = w.dns_config.as_ref().unwrap();
    assert_eq!(dns.nameservers, ["10.0.0.2"]);
    assert_eq!(
        dns.options,
        [("ndots".into(), Some("1".into())), ("rotate".into(), None)]
    );
    // Requests sum; a limit only when every container has one.
    assert_eq!(
        w.resources,
        Resources {
            cpu_request: Some(300),
            cpu_limit: None,
            memory_request: Some(64 << 20),
            memory_limit: None,
        }
    );
    assert_eq!(
        w.readiness_probes[0].ready_after(),
        SimDuration::from_secs(4)
    );
    let s = &m.services[0].spec;
    assert_eq!(s.service_type, "NodePort");
    assert!(s.headless);
    assert_eq!(s.external_traffic_policy.as_deref(), Some("Local"));
    assert_eq!(s.ports[0].target_port, TargetPort::Name("http".into()));
    assert_eq!(
        (s.ports[1].target_port.clone(), s.ports[1].protocol),
        (TargetPort::Number(53), Protocol::Udp)
    );
    let h = &m.autoscalers[0].spec;
    assert_eq!(
        (h.target_name.as_str(), h.min_replicas, h.max_replicas),
        ("web", 1, 9)
    );
    assert_eq!(h.cpu_utilization, Some(65));
    assert_eq!(h.other_metrics, ["Resource memory AverageValue"]);
    assert!(h.behavior);
    assert_eq!(m.policy_files.len(), 1);
    assert_eq!(m.policy_files[0].0, "m.yaml");
    assert_eq!(m.skipped.len(), 1);
    assert!(
        m.skipped[0].starts_with("Pod shop/debug (m.yaml:"),
        "{:?}",
        m.skipped
    );
}

#[test]
fn bad_values_and_duplicates_are_located() {
    let e = read(&APP.replace("averageUtilization: 65", "averageUtilization: -1")).unwrap_err();
    assert!(
        e.message.contains("must be greater than or equal to 0"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (37, 94), "{e}");
    let e = read(&APP.replace("periodSeconds: 2", "periodSeconds: 0")).unwrap_err();
    assert!(e.message.contains("periodSeconds: Invalid value: 0"), "{e}");
    let e = read(&APP.replace("type: NodePort", "type: Nodeport")).unwrap_err();
    assert!(e.message.contains("Unsupported value: \"Nodeport\""), "{e}");
    let e =
        read(&APP.replace("apiVersion: autoscaling/v2", "apiVersion: autoscaling/v1")).unwrap_err();
    assert!(e.message.contains("not served"), "{e}");
    let e = read(&format!("{APP}---\n{}", &APP[..APP.find("---").unwrap()])).unwrap_err();
    assert!(
        e.message
            .contains("workload shop/web is defined twice (first at m.yaml:3)"),
        "{e}"
    );
}

#[test]
fn the_netpol_reading_still_skips_services_and_autoscalers() {
    let m = parse_manifests(&[("m.yaml".to_string(), APP.to_string())]).unwrap();
    assert_eq!(m.cluster.pods().len(), 5);
    let skipped = m.skipped.join("\n");
    assert!(
        skipped.contains("Service shop/web")
            && skipped.contains("HorizontalPodAutoscaler shop/web"),
        "{skipped}"
    );
}
