use super::expect::{check_expectations, parse_expectations};
use super::*;
use crate::netpol::parse_manifests;

/// web (worker-1) and api (worker-2) in prod; web is isolated both ways:
/// egress to the internet except the corporate 10/8 and to api on 8080,
/// ingress from a partner /24 except its upper half, on 443.
const CLUSTER: &str = "
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  nodeName: worker-1
  containers: [{name: c, ports: [{containerPort: 443}]}]
---
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: prod, labels: {app: api}}
spec:
  nodeName: worker-2
  containers: [{name: c, ports: [{containerPort: 8080}]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: prod}
spec:
  podSelector: {matchLabels: {app: web}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from: [{ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}}]
    ports: [{port: 443}]
  egress:
  - to: [{ipBlock: {cidr: 0.0.0.0/0, except: [10.0.0.0/8]}}]
  - to: [{podSelector: {matchLabels: {app: api}}}]
    ports: [{port: 8080}]
";

fn peer(text: &str) -> OutsidePeer {
    text.parse().expect("a valid peer")
}

fn table(peers: &[&str], ports: &[(Protocol, u16)]) -> Reachability {
    let m = parse_manifests(&[("c.yaml".into(), CLUSTER.into())]).expect("loads");
    let peers: Vec<OutsidePeer> = peers.iter().map(|p| peer(p)).collect();
    Reachability::new(m, &peers, ports).expect("valid peers")
}

fn check(t: &Reachability, from: &str, to: &str, port: u16) -> FlowCheck {
    let e = |n: &str| t.endpoint(n).unwrap_or_else(|| panic!("no {n}")).clone();
    t.check(&e(from), &e(to), Protocol::Tcp, port)
}

#[test]
fn ip_block_with_except_against_peers() {
    let t = table(
        &[
            "internet=8.8.8.8",
            "corp=10.1.2.3",
            "partner=203.0.113.10",
            "partner-hole=203.0.113.200",
        ],
        &[],
    );
    // Egress: inside the block and outside the hole.
    let c = check(&t, "prod/web", "peer:internet", 443);
    assert!(c.allowed && c.egress && c.ingress, "{c:?}");
    assert!(
        c.why.contains("egress: allowed by web egress[0]"),
        "{}",
        c.why
    );
    // Egress into the `except` hole: denied by the source's side only; the
    // peer side has no pod to isolate and allows.
    let c = check(&t, "prod/web", "peer:corp", 443);
    assert!(!c.allowed && !c.egress && c.ingress, "{c:?}");
    assert!(
        c.why.contains("ingress: not a pod, no policy applies"),
        "{}",
        c.why
    );
    assert!(
        c.why
            .contains("hint: to allow it, add to policy web the egress rule {to: [{ipBlock: {cidr: 10.1.2.3/32}}]"),
        "{}",
        c.why
    );
    // Ingress from the partner block, on the rule's port only.
    let c = check(&t, "peer:partner", "prod/web", 443);
    assert!(c.allowed && c.egress && c.ingress, "{c:?}");
    let c = check(&t, "peer:partner", "prod/web", 80);
    assert!(!c.allowed && c.egress && !c.ingress, "{c:?}");
    // The `except` half of the partner block is denied.
    let c = check(&t, "peer:partner-hole", "prod/web", 443);
    assert!(!c.allowed && !c.ingress, "{c:?}");
    // api is isolated by nothing: peers reach it, and peers reach each other.
    assert!(check(&t, "peer:corp", "prod/api", 8080).allowed);
    assert!(check(&t, "peer:corp", "peer:internet", 443).allowed);
    // A pod peer matches selectors, an outside address never does.
    assert!(check(&t, "prod/web", "prod/api", 8080).allowed);
}

#[test]
fn nodes_are_rows_and_own_node_ingress_is_exempt() {
    let t = table(&[], &[]);
    let names: Vec<&str> = t.endpoints().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        ["prod/api", "prod/web", "node:worker-1", "node:worker-2"]
    );
    // web's own node reaches it whatever its ingress rules say; the other
    // node is an address like any other (here outside the partner block).
    let c = check(&t, "node:worker-1", "prod/web", 80);
    assert!(c.allowed, "{c:?}");
    assert!(c.why.contains("from the pod's own node"), "{}", c.why);
    assert!(!check(&t, "node:worker-2", "prod/web", 80).allowed);
    // Egress to the node is not exempt: 172.18.0.2 is outside 10/8, so the
    // internet rule admits it; into a denied port it is the same.
    assert!(check(&t, "prod/web", "node:worker-1", 10250).allowed);
    let text = t.text();
    assert!(
        text.contains("Nodes:\n  node:worker-1  ip 172.18.0.2\n  node:worker-2  ip 172.18.0.3\n"),
        "{text}"
    );
    assert!(
        text.contains("node:worker-2 (172.18.0.3) -> prod/web TCP/443: denied"),
        "{text}"
    );
}

#[test]
fn ports_probed_and_extra_ports() {
    let t = table(&[], &[]);
    assert_eq!(t.ports(), [(Protocol::Tcp, 443), (Protocol::Tcp, 8080)]);
    let t = table(&[], &[(Protocol::Udp, 53), (Protocol::Tcp, 443)]);
    assert_eq!(
        t.ports(),
        [
            (Protocol::Tcp, 443),
            (Protocol::Tcp, 8080),
            (Protocol::Udp, 53)
        ]
    );
    // Every cell once per port: 4 endpoints squared, 3 ports.
    assert_eq!(t.flows().len(), 48);
    assert_eq!(parse_probe_port("udp/53"), Ok((Protocol::Udp, 53)));
    assert_eq!(parse_probe_port("SCTP/9000"), Ok((Protocol::Sctp, 9000)));
    for (bad, want) in [
        ("443", "is not PROTO/PORT"),
        ("ICMP/1", "is not a NetworkPolicy protocol"),
        ("TCP/http", "is not a port number"),
        ("TCP/0", "must be between 1 and 65535"),
        ("TCP/70000", "must be between 1 and 65535"),
    ] {
        let e = parse_probe_port(bad).expect_err(bad);
        assert!(e.contains(want), "{bad}: {e}");
    }
}

#[test]
fn bad_peers_are_errors_with_hints() {
    for (bad, want) in [
        ("internet", "is not NAME=IP"),
        ("Internet=8.8.8.8", "must be a lowercase RFC 1123 label"),
        ("internet=8.8.8", "is not an IPv4 address"),
        ("internet=2001:db8::1", "is not an IPv4 address"),
    ] {
        let e = bad.parse::<OutsidePeer>().expect_err(bad);
        assert!(e.contains(want), "{bad}: {e}");
    }
    let m = || parse_manifests(&[("c.yaml".into(), CLUSTER.into())]).expect("loads");
    let web_ip = m().cluster.pod("prod", "web").expect("web").ip;
    let cases = [
        (
            vec![peer(&format!("x={web_ip}"))],
            "--peer x=10.244.0.2: 10.244.0.2 is the IP of pod prod/web\n  hint: a peer is an address outside the pod network",
        ),
        (
            vec![peer("x=172.18.0.3")],
            "172.18.0.3 is the address of node:worker-2\n  hint: nodes are rows already",
        ),
        (
            vec![peer("x=1.1.1.1"), peer("x=8.8.8.8")],
            "a peer is already called x",
        ),
        (
            vec![peer("x=1.1.1.1"), peer("y=1.1.1.1")],
            "1.1.1.1 is the address of peer:x",
        ),
    ];
    for (peers, want) in cases {
        let e = Reachability::new(m(), &peers, &[]).expect_err(want);
        assert!(e.contains(want), "{e}");
    }
}

const EXPECT: &str = "\
- {from: prod/web, to: peer:internet, protocol: TCP, port: 443, allowed: true}
- {from: prod/web, to: peer:corp, port: 443, allowed: false}
- from: node:worker-1
  to: prod/web
  port: 9999
  allowed: true
";

#[test]
fn expectations_hold_or_name_the_flow() {
    let t = table(&["internet=8.8.8.8", "corp=10.1.2.3"], &[]);
    let list = parse_expectations("e.yaml", EXPECT, &t).expect("parses");
    assert_eq!(list.len(), 3);
    assert_eq!(list[1].protocol, Protocol::Tcp);
    let (report, ok) = check_expectations(&t, &list);
    assert!(ok, "{report}");
    assert!(report.ends_with("3 of 3 expectations hold\n"), "{report}");
    let wrong = EXPECT.replace(
        "corp, port: 443, allowed: false",
        "corp, port: 443, allowed: true",
    );
    let list = parse_expectations("e.yaml", &wrong, &t).expect("parses");
    let (report, ok) = check_expectations(&t, &list);
    assert!(!ok);
    assert!(
        report.contains("FAIL prod/web -> peer:corp TCP/443: expected allowed, but denied\n       prod/web -> peer:corp (10.1.2.3) TCP/443: denied\n"),
        "{report}"
    );
    assert!(report.ends_with("2 of 3 expectations hold\n"), "{report}");
}

#[test]
fn expectation_errors_are_located() {
    let t = table(&["internet=8.8.8.8", "corp=10.1.2.3"], &[]);
    let err = |text: &str| parse_expectations("e.yaml", text, &t).expect_err(text);
    let cases = [
        (
            EXPECT.replace("to: peer:corp", "to: peer:vpn"),
            (2, 24),
            "no endpoint is called `peer:vpn`",
            "add the peer with `--peer vpn=IP`",
        ),
        (
            EXPECT.replace(
                "from: prod/web, to: peer:internet",
                "from: prod/wbe, to: peer:internet",
            ),
            (1, 10),
            "no endpoint is called `prod/wbe`",
            "did you mean `prod/web`?",
        ),
        (
            EXPECT.replace("from: node:worker-1", "from: web"),
            (3, 9),
            "no endpoint is called `web`",
            "did you mean `prod/web`?",
        ),
        (
            EXPECT.replace("port: 9999", "ports: 9999"),
            (5, 3),
            "unknown field `ports`",
            "did you mean `port`?",
        ),
        (
            EXPECT.replace("port: 9999", "port: 99999"),
            (5, 9),
            "must be between 1 and 65535",
            "1-65535",
        ),
        (
            EXPECT.replace("protocol: TCP", "protocol: tcp"),
            (1, 49),
            "unsupported value \"tcp\"",
            "protocols are upper case: TCP",
        ),
        (
            EXPECT.replace("  allowed: true", "  allowed: \"yes\""),
            (6, 12),
            ".[2].allowed: expected true or false",
            "unquoted",
        ),
        (
            EXPECT.replace("  allowed: true\n", ""),
            (3, 3),
            "missing field `allowed`",
            "an expectation states",
        ),
        (
            "from: a\n".to_string(),
            (1, 1),
            "expected a list of expectations, found a mapping",
            "start each expectation with `- `",
        ),
        (
            String::new(),
            (1, 1),
            "the file lists no expectations",
            "write a YAML list",
        ),
        (
            "- {from: a, to: b\n- {}".to_string(),
            (2, 3),
            "did not find expected ',' or '}'",
            "check the YAML syntax",
        ),
    ];
    for (text, at, message, hint) in cases {
        let e = err(&text);
        assert_eq!((e.line, e.column), at, "{e}");
        assert!(e.message.contains(message), "{e}");
        assert!(e.hint.contains(hint), "{e}");
    }
}
