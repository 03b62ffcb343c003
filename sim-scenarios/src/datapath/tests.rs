use super::*;
use proptest::prelude::*;

const MINIMAL: &str = "name: t
summary: s
duration: 10s
datapath:
  cni: calico-vxlan
  nodes: 2
  underlay: {mtu: 1500}
  pods: [{name: a, node: 1}, {name: b, node: 2}]
flows:
  - {name: f, from: a, to: b, ping: {sizes: [100]}, timeout: 1s}
expect:
  - {metric: succeeded, flow: f, equals: 1}
";

fn err(text: &str) -> InputError {
    parse("t.yaml", text).unwrap_err()
}

#[test]
fn a_minimal_file_runs_and_checks_itself() {
    let s = parse("t.yaml", MINIMAL).unwrap();
    assert!(is_datapath(MINIMAL));
    let runs = run_all(&s, &[1], Some(1), None).unwrap();
    assert_eq!(expectation_totals(&runs), (1, 1), "{}", text(&s, &runs));
}

#[test]
fn mistakes_are_located_with_a_hint() {
    let e = err(&MINIMAL.replace("cni: calico-vxlan", "cni: calico-vxaln"));
    assert_eq!(e.at, Some((5, 3)));
    assert!(e.hint.contains("did you mean `calico-vxlan`"), "{e}");
    let e = err(&MINIMAL.replace("to: b,", "to: bb,"));
    assert_eq!(e.at.map(|a| a.0), Some(10));
    assert!(e.message.contains("`bb` is not a pod or host"), "{e}");
    let e = err(&MINIMAL.replace("{name: b, node: 2}", "{name: b, node: 3}"));
    assert!(e.message.contains("node 3 does not exist"), "{e}");
    assert_eq!(e.at.map(|a| a.0), Some(8));
    let e = err(&MINIMAL.replace(
        "underlay: {mtu: 1500}",
        "underlay: {mtu: 1500, icmp: block}",
    ));
    assert!(e.hint.contains("allow or icmp: deny"), "{e}");
    let e = err(&MINIMAL.replace("nodes: 2", "nodes: 2\n  pod_mut: 1400"));
    assert!(
        e.message.contains("unknown field `pod_mut`") && e.hint.contains("pod_mtu"),
        "{e}"
    );
    let e = err(&MINIMAL.replace("equals: 1}", "equals: 1s}"));
    assert!(e.message.contains("does not fit metric succeeded"), "{e}");
    let e = err(&MINIMAL.replace(
        "{metric: succeeded, flow: f,",
        "{metric: packets_dropped, reason: lost,",
    ));
    assert!(e.hint.contains("frag-needed"), "{e}");
    let e = err(&MINIMAL.replace(
        "timeout: 1s}",
        "timeout: 1s}\ntimeline: [{at: 1s, bgp_down: node-1}]",
    ));
    assert!(e.message.contains("needs cni: calico-bgp"), "{e}");
    let e = err(&MINIMAL.replace("cni: calico-vxlan", "cni: aws-vpc-cni"));
    assert!(e.message.contains("needs instance_type"), "{e}");
    let e = err(&MINIMAL.replace(
        "{name: b, node: 2}",
        "{name: b, node: 2, tcp_congestion_control: vegas}",
    ));
    assert_eq!(e.at.map(|a| a.0), Some(8));
    assert!(
        e.message.contains("`vegas` is not modelled") && e.hint.contains("cubic"),
        "{e}"
    );
    let e = err(&MINIMAL.replace(
        "{name: b, node: 2}",
        "{name: b, node: 2, tcp_rmem: [4096, 131072]}",
    ));
    assert!(e.hint.contains("[4096, 131072, 6291456]"), "{e}");
}

const WITH_SERVICE: &str = "name: t
summary: s
duration: 10s
datapath:
  cni: calico-vxlan
  nodes: 2
  underlay: {mtu: 1500}
  pods: [{name: a, node: 1}, {name: b, node: 2, labels: {app: b}}]
  services: [{name: svc, port: 80, target_port: 8080, selector: {app: b}}]
  network: {cni: calico, kube_proxy: {mode: iptables}, services: {count: 100, endpoints: 3}}
flows:
  - {name: f, from: a, to: svc, tcp: {request: 100B, response: 1KB}, count: 5, timeout: 1s}
expect:
  - {metric: succeeded, flow: f, equals: 5}
  - {metric: endpoints_used, flow: f, equals: 1}
";

#[test]
fn a_service_flow_runs_per_seed_and_its_mistakes_are_located() {
    let s = parse("t.yaml", WITH_SERVICE).unwrap();
    assert_eq!(s.variants[0].config.services.services[0].endpoints, vec![1]);
    let runs = run_all(&s, &[1, 2], Some(1), None).unwrap();
    assert_eq!(runs.len(), 2, "one run per seed");
    assert_eq!(expectation_totals(&runs), (4, 4), "{}", text(&s, &runs));
    assert!(text(&s, &runs).contains(" (seed 2) =="));
    let e = err(&WITH_SERVICE.replace("network: {cni: calico,", "network: {cni: cilium,"));
    assert!(e.message.contains("network.cni is cilium"), "{e}");
    assert!(e.hint.contains("cni: calico"), "{e}");
    let e = err(&WITH_SERVICE.replace("tcp: {request", "tcp: {port: 8080, request"));
    assert!(e.message.contains("on its port 80"), "{e}");
    let e = err(&WITH_SERVICE.replace("mode: iptables}", "mode: iptables, per_rul: 1ns}"));
    assert_eq!(e.at.map(|a| a.0), Some(10), "{e}");
    assert!(e.hint.contains("per_rule"), "{e}");
    let e = err(&WITH_SERVICE.replace("to: svc,", "to: svd,"));
    assert!(e.message.contains("not a pod, host or Service"), "{e}");
    let e = err(&WITH_SERVICE.replace(
        "selector: {app: b}}]",
        "selector: {app: b}, cluster_ip: 10.244.0.9}]",
    ));
    assert!(
        e.message.contains("inside the pod, node or site addresses"),
        "{e}"
    );
}

#[test]
fn aws_vpc_cni_refuses_more_pods_than_the_enis_address() {
    let pods: Vec<String> = (0..18)
        .map(|i| format!("{{name: p{i}, node: 1}}"))
        .collect();
    let text = MINIMAL
        .replace(
            "cni: calico-vxlan",
            "cni: aws-vpc-cni\n  instance_type: t3.medium",
        )
        .replace(
            "{name: a, node: 1}, {name: b, node: 2}",
            &format!(
                "{{name: a, node: 2}}, {{name: b, node: 2}}, {}",
                pods.join(", ")
            ),
        );
    let e = err(&text);
    assert!(
        e.message
            .contains("node-1 has 18 pods; aws-vpc-cni addresses 17 on t3.medium"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// Any single-line edit of a valid file parses or gives a located error; never a panic.
    #[test]
    fn edited_files_fail_with_a_position(line in 0usize..200, junk in "[a-z0-9:{}\\[\\], -]{0,14}") {
        let base = include_str!("../../../scenarios/mtu_blackhole.yaml");
        let mut lines: Vec<&str> = base.lines().collect();
        let i = line % lines.len();
        lines[i] = &junk;
        if let Err(e) = parse("edit.yaml", &lines.join("\n")) {
            prop_assert!(e.at.is_some(), "{e}");
        }
    }
}
