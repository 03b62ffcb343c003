//! The upstream e2e NetworkPolicy matrix, replayed on the model.
//!
//! Setup as in kubernetes `test/e2e/network/netpol`: namespaces x, y, z
//! (labelled `ns=<name>`, plus the automatic `kubernetes.io/metadata.name`),
//! pods a, b, c in each (labelled `pod=<name>`), every pod serving 80 and 81
//! over TCP, UDP and SCTP on named ports `serve-80-tcp`, `serve-81-udp`...
//! Pod IPs are 10.1.<ns>.<pod> (x=1, y=2, z=3; a=1, b=2, c=3); namespace x's
//! pods run on node 192.168.0.1, y's on .2, z's on .3.
//!
//! Each case gives policies as YAML (through the manifest loader, so defaulting
//! is exercised too), the full expected grid for some ports (everything
//! allowed, then overrides in order, like upstream's `Reachability`), and for
//! chosen cells the policy or rule that must decide the verdict.

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn node_ip(ns_index: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 0, ns_index as u8 + 1)
}

fn e2e_cluster() -> Cluster {
    let mut pods = Vec::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        for (j, pod) in PODS.iter().enumerate() {
            let mut ports = Vec::new();
            for port in [80u16, 81] {
                for (protocol, suffix) in [
                    (Protocol::Tcp, "tcp"),
                    (Protocol::Udp, "udp"),
                    (Protocol::Sctp, "sctp"),
                ] {
                    ports.push(ContainerPort {
                        name: Some(format!("serve-{port}-{suffix}")),
                        port,
                        protocol,
                    });
                }
            }
            pods.push(PodInfo {
                namespace: ns.to_string(),
                name: pod.to_string(),
                labels: [("pod".to_string(), pod.to_string())].into(),
                ip: Ipv4Addr::new(10, 1, i as u8 + 1, j as u8 + 1),
                host_ip: node_ip(i),
                host_network: false,
                ports,
            });
        }
    }
    let namespaces = NAMESPACES
        .iter()
        .map(|ns| Namespace {
            name: ns.to_string(),
            labels: [("ns".to_string(), ns.to_string())].into(),
        })
        .collect();
    Cluster::new(namespaces, pods, Vec::new())
}

fn with_yaml(yaml: &str) -> Cluster {
    let parsed = parse_manifests(&[("case.yaml".to_string(), yaml.to_string())])
        .unwrap_or_else(|e| panic!("case YAML does not load:\n{e}"));
    e2e_cluster().with_policies(parsed.cluster.policies().to_vec())
}

fn pod_ip(cluster: &Cluster, name: &str) -> Ipv4Addr {
    let (ns, pod) = name.split_once('/').expect("ns/pod");
    cluster.pod(ns, pod).expect("pod exists").ip
}

fn parse_port(text: &str) -> (Protocol, u16) {
    let (proto, port) = text.split_once('/').expect("PROTO/port");
    (
        Protocol::parse(proto).expect("protocol"),
        port.parse().expect("port"),
    )
}

fn flow(cluster: &Cluster, from: &str, to: &str, port: &str) -> Flow {
    let (protocol, port) = parse_port(port);
    Flow {
        src: pod_ip(cluster, from),
        dst: pod_ip(cluster, to),
        protocol,
        port,
    }
}

fn pattern_matches(pattern: &str, pod: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let (pns, ppod) = pattern.split_once('/').expect("ns/pod pattern");
    let (ns, name) = pod.split_once('/').expect("ns/pod");
    (pns == "*" || pns == ns) && (ppod == "*" || ppod == name)
}

fn all_pods() -> Vec<String> {
    NAMESPACES
        .iter()
        .flat_map(|ns| PODS.iter().map(move |p| format!("{ns}/{p}")))
        .collect()
}

/// Policies (or `policy dir\[i\]` rules) that decided a verdict: the admitting
/// rules if allowed, the isolating policies of the denying sides if denied.
fn deciders(v: &Verdict) -> Vec<String> {
    let mut out = Vec::new();
    for side in [&v.egress, &v.ingress] {
        match side {
            SideVerdict::Allowed { rules, .. } if v.allowed() => {
                for r in rules {
                    out.push(r.to_string());
                    out.push(r.policy.clone());
                }
            }
            SideVerdict::FromOwnNode { .. } if v.allowed() => out.push("own-node".into()),
            SideVerdict::Denied(d) => out.extend(d.isolating.iter().cloned()),
            _ => {}
        }
    }
    out
}

struct Check {
    port: &'static str,
    /// `(from, to, allowed)` patterns applied in order over an all-allowed grid.
    expect: &'static [(&'static str, &'static str, bool)],
}

struct Case {
    name: &'static str,
    /// The API rule this case pins down.
    rule: &'static str,
    yaml: &'static str,
    checks: &'static [Check],
    /// `(from, to, port, decider)`: the policy or rule that must decide the
    /// cell; an empty decider means "no policy applies to either side".
    decided_by: &'static [(&'static str, &'static str, &'static str, &'static str)],
}

fn run_case(case: &Case) {
    let cluster = with_yaml(case.yaml);
    let pods = all_pods();
    for check in case.checks {
        let mut failures = Vec::new();
        for from in &pods {
            for to in &pods {
                let mut want = true;
                for (pf, pt, allowed) in check.expect {
                    if pattern_matches(pf, from) && pattern_matches(pt, to) {
                        want = *allowed;
                    }
                }
                let v = evaluate(&cluster, &flow(&cluster, from, to, check.port));
                if v.allowed() != want {
                    failures.push(format!("  {from} -> {to}: want {want}, got {v}"));
                }
            }
        }
        assert!(
            failures.is_empty(),
            "case `{}` ({}) on {}:\n{}",
            case.name,
            case.rule,
            check.port,
            failures.join("\n")
        );
    }
    for (from, to, port, decider) in case.decided_by {
        let v = evaluate(&cluster, &flow(&cluster, from, to, port));
        let who = deciders(&v);
        if decider.is_empty() {
            assert!(
                matches!(v.egress, SideVerdict::NotIsolated | SideVerdict::NotAPod)
                    && matches!(v.ingress, SideVerdict::NotIsolated | SideVerdict::NotAPod),
                "case `{}`: {from} -> {to} {port} should involve no policy, got {v}",
                case.name
            );
        } else {
            assert!(
                who.iter().any(|w| w == decider),
                "case `{}` ({}): {from} -> {to} {port} should be decided by `{decider}`, got {who:?}: {v}",
                case.name,
                case.rule
            );
        }
    }
}

const CASES: &[Case] = &[
    Case {
        name: "default-deny-ingress",
        rule: "a pod selected by a policy with policyTypes [Ingress] and no rules admits nothing; other namespaces are unaffected",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/*", false)] }],
        decided_by: &[("y/a", "x/b", "TCP/80", "deny-ingress"), ("x/a", "y/b", "TCP/80", "")],
    },
    Case {
        name: "ingress-empty-list-denies",
        rule: "`ingress: []` with policyType Ingress denies all ingress",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-ingress, namespace: x}
spec:
  podSelector: {}
  ingress: []
",
        checks: &[Check { port: "UDP/81", expect: &[("*", "x/*", false)] }],
        decided_by: &[("z/c", "x/c", "UDP/81", "deny-ingress")],
    },
    Case {
        name: "default-deny-all",
        rule: "policyTypes [Ingress, Egress] with no rules isolates both directions",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/*", false), ("x/*", "*", false)] }],
        decided_by: &[("x/a", "y/a", "TCP/80", "deny-all"), ("y/a", "x/a", "TCP/80", "deny-all")],
    },
    Case {
        name: "podselector-peer-is-namespace-scoped",
        rule: "a podSelector peer selects pods in the policy's namespace only",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x-a-allows-x-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {matchLabels: {pod: b}}
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/a", false), ("x/b", "x/a", true)] }],
        decided_by: &[
            ("x/b", "x/a", "TCP/80", "x-a-allows-x-b ingress[0]"),
            ("y/b", "x/a", "TCP/80", "x-a-allows-x-b"),
        ],
    },
    Case {
        name: "union-of-policies",
        rule: "allowed traffic is the union of all policies selecting the pod (deny-all + allow-to-a)",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all-to-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector: {}
      namespaceSelector: {}
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/b", false), ("*", "x/c", false)] }],
        decided_by: &[
            ("y/a", "x/a", "TCP/80", "allow-all-to-a ingress[0]"),
            ("y/a", "x/b", "TCP/80", "deny-all"),
        ],
    },
    Case {
        name: "empty-namespace-selector-is-all-namespaces",
        rule: "namespaceSelector {} selects every pod in every namespace",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-from-all-ns, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {}
",
        checks: &[Check { port: "TCP/80", expect: &[] }],
        decided_by: &[("z/c", "x/a", "TCP/80", "allow-from-all-ns ingress[0]")],
    },
    Case {
        name: "namespace-selector-match-labels",
        rule: "a namespaceSelector peer selects all pods of the namespaces whose labels match",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-ns-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {ns: y}}
",
        checks: &[Check { port: "TCP/80", expect: &[("x/*", "x/a", false), ("z/*", "x/a", false)] }],
        decided_by: &[("y/c", "x/a", "TCP/80", "allow-ns-y ingress[0]")],
    },
    Case {
        name: "automatic-namespace-name-label",
        rule: "every namespace carries kubernetes.io/metadata.name=<name>",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-ns-z, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: In, values: [z]}
",
        checks: &[Check { port: "TCP/80", expect: &[("x/*", "x/a", false), ("y/*", "x/a", false)] }],
        decided_by: &[("z/b", "x/a", "TCP/80", "allow-ns-z ingress[0]")],
    },
    Case {
        name: "pod-selector-match-expressions-in",
        rule: "matchExpressions In selects pods whose label value is listed",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: x-a-allows-b-c, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - podSelector:
        matchExpressions: [{key: pod, operator: In, values: [b, c]}]
",
        checks: &[Check {
            port: "TCP/80",
            expect: &[("*", "x/a", false), ("x/b", "x/a", true), ("x/c", "x/a", true)],
        }],
        decided_by: &[("x/c", "x/a", "TCP/80", "x-a-allows-b-c ingress[0]")],
    },
    Case {
        name: "separate-peers-are-or",
        rule: "separate entries of `from` are ORed: namespaces other than x, or pod b of x",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ns-or-pod, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: ns, operator: NotIn, values: [x]}]
    - podSelector: {matchLabels: {pod: b}}
",
        checks: &[Check { port: "TCP/80", expect: &[("x/a", "x/a", false), ("x/c", "x/a", false)] }],
        decided_by: &[("x/b", "x/a", "TCP/80", "ns-or-pod ingress[0]")],
    },
    Case {
        name: "selectors-in-one-peer-are-and",
        rule: "podSelector and namespaceSelector in one peer are ANDed",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: ns-and-pod, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: ns, operator: NotIn, values: [x]}]
      podSelector: {matchLabels: {pod: b}}
",
        checks: &[Check {
            port: "TCP/80",
            expect: &[("*", "x/a", false), ("y/b", "x/a", true), ("z/b", "x/a", true)],
        }],
        decided_by: &[("x/b", "x/a", "TCP/80", "ns-and-pod"), ("y/b", "x/a", "TCP/80", "ns-and-pod ingress[0]")],
    },
    Case {
        name: "notin-matches-absent-key",
        rule: "NotIn matches pods without the key, so this policy selects every pod of x",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-non-db, namespace: x}
spec:
  podSelector:
    matchExpressions: [{key: tier, operator: NotIn, values: [db]}]
  policyTypes: [Ingress]
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/*", false)] }],
        decided_by: &[("y/a", "x/c", "TCP/80", "deny-non-db")],
    },
    Case {
        name: "exists-and-doesnotexist",
        rule: "Exists needs the key; DoesNotExist needs it absent",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: only-a-b-untiered, namespace: x}
spec:
  podSelector:
    matchExpressions: [{key: pod, operator: Exists}]
  ingress:
  - from:
    - podSelector:
        matchExpressions:
        - {key: pod, operator: In, values: [a, b]}
        - {key: tier, operator: DoesNotExist}
",
        checks: &[Check {
            port: "TCP/80",
            expect: &[("*", "x/*", false), ("x/a", "x/*", true), ("x/b", "x/*", true)],
        }],
        decided_by: &[("x/c", "x/b", "TCP/80", "only-a-b-untiered")],
    },
    Case {
        name: "ingress-rule-empty-allows-all",
        rule: "`ingress: [{}]` allows everything, even next to a deny-all",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-all, namespace: x}
spec:
  podSelector: {}
  ingress: [{}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[] },
            Check { port: "SCTP/81", expect: &[] },
        ],
        decided_by: &[("y/a", "x/a", "UDP/80", "allow-all ingress[0]")],
    },
    Case {
        name: "empty-from-list-is-all-peers",
        rule: "`from: []` admits every peer; ports still restrict",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: port-80-from-anywhere, namespace: x}
spec:
  podSelector: {}
  ingress:
  - from: []
    ports: [{port: 80}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[] },
            Check { port: "TCP/81", expect: &[("*", "x/*", false)] },
        ],
        decided_by: &[("z/a", "x/b", "TCP/80", "port-80-from-anywhere ingress[0]")],
    },
    Case {
        name: "protocol-defaults-to-tcp",
        rule: "a port entry without protocol means TCP only",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: tcp-80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{port: 80}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[] },
            Check { port: "UDP/80", expect: &[("*", "x/a", false)] },
            Check { port: "SCTP/80", expect: &[("*", "x/a", false)] },
        ],
        decided_by: &[("y/b", "x/a", "UDP/80", "tcp-80")],
    },
    Case {
        name: "stacked-port-policies",
        rule: "two policies allowing ns y on 81 and on 80 add up (upstream stacked policies)",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-81, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{protocol: TCP, port: 81}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-y-80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: y}}}]
    ports: [{protocol: TCP, port: 80}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[("x/*", "x/a", false), ("z/*", "x/a", false)] },
            Check { port: "TCP/81", expect: &[("x/*", "x/a", false), ("z/*", "x/a", false)] },
            Check { port: "UDP/80", expect: &[("*", "x/a", false)] },
        ],
        decided_by: &[
            ("y/a", "x/a", "TCP/80", "allow-y-80 ingress[0]"),
            ("y/a", "x/a", "TCP/81", "allow-y-81 ingress[0]"),
        ],
    },
    Case {
        name: "named-port-ingress",
        rule: "a named port resolves on the destination pod's container port of the same protocol",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-81-by-name, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{port: serve-81-tcp}]
",
        checks: &[
            Check { port: "TCP/81", expect: &[] },
            Check { port: "TCP/80", expect: &[("*", "x/*", false)] },
            Check { port: "UDP/81", expect: &[("*", "x/*", false)] },
        ],
        decided_by: &[("y/a", "x/a", "TCP/81", "allow-81-by-name ingress[0]")],
    },
    Case {
        name: "named-port-protocol-must-match",
        rule: "a TCP port name does not resolve for a UDP port entry",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-by-tcp-name, namespace: x}
spec:
  podSelector: {}
  ingress:
  - ports: [{protocol: UDP, port: serve-81-tcp}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: udp-by-udp-name, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - ports: [{protocol: UDP, port: serve-80-udp}]
",
        checks: &[
            Check { port: "UDP/81", expect: &[("*", "x/*", false)] },
            Check { port: "TCP/81", expect: &[("*", "x/*", false)] },
            Check { port: "UDP/80", expect: &[("*", "x/a", false), ("*", "x/c", false)] },
        ],
        decided_by: &[("y/a", "x/b", "UDP/80", "udp-by-udp-name ingress[0]")],
    },
    Case {
        name: "named-port-egress",
        rule: "an egress named port resolves on the destination pod (upstream: egress on one named port)",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-egress-80, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - ports: [{port: serve-80-tcp}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[] },
            Check { port: "TCP/81", expect: &[("x/*", "*", false)] },
        ],
        decided_by: &[("x/a", "z/c", "TCP/80", "allow-egress-80 egress[0]"), ("x/a", "z/c", "TCP/81", "allow-egress-80")],
    },
    Case {
        name: "end-port-range-inclusive",
        rule: "endPort makes an inclusive range port..=endPort",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: range-79-80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{protocol: TCP, port: 79, endPort: 80}]
",
        checks: &[
            Check { port: "TCP/80", expect: &[] },
            Check { port: "TCP/81", expect: &[("*", "x/a", false)] },
        ],
        decided_by: &[("y/a", "x/a", "TCP/80", "range-79-80 ingress[0]")],
    },
    Case {
        name: "sctp-is-distinct",
        rule: "an SCTP rule admits neither TCP nor UDP",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: sctp-80, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{protocol: SCTP, port: 80}]
",
        checks: &[
            Check { port: "SCTP/80", expect: &[] },
            Check { port: "TCP/80", expect: &[("*", "x/a", false)] },
            Check { port: "UDP/80", expect: &[("*", "x/a", false)] },
        ],
        decided_by: &[("y/a", "x/a", "SCTP/80", "sctp-80 ingress[0]")],
    },
    Case {
        name: "protocol-without-port",
        rule: "a port entry with only a protocol admits every port of that protocol",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: all-udp, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - ports: [{protocol: UDP}]
",
        checks: &[
            Check { port: "UDP/80", expect: &[] },
            Check { port: "UDP/81", expect: &[] },
            Check { port: "TCP/81", expect: &[("*", "x/a", false)] },
        ],
        decided_by: &[("z/a", "x/a", "UDP/81", "all-udp ingress[0]")],
    },
    Case {
        name: "ip-block-except-on-pod-ips",
        rule: "ipBlock with except is matched against pod IPs too",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: cidr-but-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from:
    - ipBlock: {cidr: 10.1.0.0/16, except: [10.1.2.0/24]}
",
        checks: &[Check { port: "TCP/80", expect: &[("y/*", "x/a", false)] }],
        decided_by: &[("z/a", "x/a", "TCP/80", "cidr-but-y ingress[0]"), ("y/a", "x/a", "TCP/80", "cidr-but-y")],
    },
    Case {
        name: "egress-ip-block",
        rule: "an egress ipBlock restricts destinations by IP",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-z-only, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{ipBlock: {cidr: 10.1.3.0/24}}]
",
        checks: &[Check { port: "TCP/80", expect: &[("x/a", "*", false), ("x/a", "z/*", true)] }],
        decided_by: &[("x/a", "z/b", "TCP/80", "a-to-z-only egress[0]"), ("x/a", "y/b", "TCP/80", "a-to-z-only")],
    },
    Case {
        name: "egress-pod-and-namespace-selector",
        rule: "egress peers use the same AND semantics",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-y-b, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: {matchLabels: {ns: y}}
      podSelector: {matchLabels: {pod: b}}
",
        checks: &[Check { port: "UDP/80", expect: &[("x/a", "*", false), ("x/a", "y/b", true)] }],
        decided_by: &[("x/a", "y/b", "UDP/80", "a-to-y-b egress[0]")],
    },
    Case {
        name: "egress-and-ingress-both-needed",
        rule: "a connection needs the source's egress and the destination's ingress",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: a-to-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: y}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-b, namespace: y}
spec:
  podSelector: {matchLabels: {pod: b}}
  policyTypes: [Ingress]
",
        checks: &[Check {
            port: "TCP/80",
            expect: &[("x/a", "*", false), ("x/a", "y/*", true), ("*", "y/b", false)],
        }],
        decided_by: &[("x/a", "y/b", "TCP/80", "deny-b"), ("x/a", "y/a", "TCP/80", "a-to-y egress[0]")],
    },
    Case {
        name: "policy-selects-in-its-own-namespace",
        rule: "a policy's podSelector only selects pods of the policy's namespace",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-a, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "y/a", false)] }],
        decided_by: &[("y/b", "x/a", "TCP/80", "")],
    },
    Case {
        name: "egress-rules-imply-egress-type",
        rule: "without policyTypes, Ingress is always isolated and Egress too when egress has rules",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only, namespace: x}
spec:
  podSelector: {}
  egress:
  - to: [{namespaceSelector: {matchLabels: {ns: y}}}]
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/*", false), ("x/*", "z/*", false)] }],
        decided_by: &[("y/a", "x/a", "TCP/80", "egress-only"), ("x/a", "z/a", "TCP/80", "egress-only")],
    },
    Case {
        name: "empty-egress-list-does-not-imply-egress",
        rule: "`egress: []` without policyTypes defaults to [Ingress] only (len(egress) == 0)",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: empty-egress, namespace: x}
spec:
  podSelector: {}
  egress: []
",
        checks: &[Check { port: "TCP/80", expect: &[("*", "x/*", false)] }],
        decided_by: &[("x/a", "z/a", "TCP/80", "")],
    },
    Case {
        name: "policy-types-egress-ignores-ingress-rules",
        rule: "with policyTypes [Egress], ingress rules are ignored and ingress is not isolated",
        yaml: "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-type, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Egress]
  ingress:
  - from: [{podSelector: {matchLabels: {pod: b}}}]
  egress: [{}]
",
        checks: &[Check { port: "TCP/80", expect: &[] }],
        decided_by: &[("y/a", "x/a", "TCP/80", ""), ("x/a", "y/a", "TCP/80", "egress-type egress[0]")],
    },
];

#[test]
fn e2e_matrix() {
    for case in CASES {
        run_case(case);
    }
}

#[test]
fn e2e_cases_have_distinct_names() {
    let mut names: Vec<_> = CASES.iter().map(|c| c.name).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}

#[test]
fn ingress_from_own_node_is_allowed() {
    let cluster = with_yaml(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
",
    );
    let xa = pod_ip(&cluster, "x/a");
    let from_own_node = evaluate(
        &cluster,
        &Flow {
            src: node_ip(0),
            dst: xa,
            protocol: Protocol::Tcp,
            port: 80,
        },
    );
    assert!(from_own_node.allowed(), "{from_own_node}");
    assert!(matches!(
        from_own_node.ingress,
        SideVerdict::FromOwnNode { .. }
    ));
    let from_other_node = evaluate(
        &cluster,
        &Flow {
            src: node_ip(1),
            dst: xa,
            protocol: Protocol::Tcp,
            port: 80,
        },
    );
    assert!(!from_other_node.allowed());
    assert!(
        from_other_node
            .to_string()
            .contains("traffic from node 192.168.0.2"),
        "{from_other_node}"
    );
    // Egress to the own node is not exempt.
    let to_own_node = evaluate(
        &cluster,
        &Flow {
            src: xa,
            dst: node_ip(0),
            protocol: Protocol::Tcp,
            port: 10250,
        },
    );
    assert!(!to_own_node.allowed());
    assert_eq!(to_own_node.ingress, SideVerdict::NotAPod);
}

#[test]
fn external_sources_match_only_ip_blocks_and_empty_from() {
    let cluster = with_yaml(
        "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-pods, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web, namespace: x}
spec:
  podSelector: {matchLabels: {pod: b}}
  ingress:
  - from: [{ipBlock: {cidr: 0.0.0.0/0, except: [203.0.113.0/24]}}]
",
    );
    let external = Ipv4Addr::new(198, 51, 100, 7);
    let blocked = Ipv4Addr::new(203, 0, 113, 9);
    let to = |src, pod: &str| {
        evaluate(
            &cluster,
            &Flow {
                src,
                dst: pod_ip(&cluster, pod),
                protocol: Protocol::Tcp,
                port: 80,
            },
        )
    };
    assert!(
        !to(external, "x/a").allowed(),
        "namespaceSelector {{}} does not cover external IPs"
    );
    assert!(to(external, "x/b").allowed());
    assert!(!to(blocked, "x/b").allowed());
    assert!(to(external, "x/c").allowed(), "x/c is not isolated");
}

#[test]
fn replies_of_allowed_connections_pass() {
    // x/a accepts nothing; y/a accepts only x/a.
    let yaml = "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-a, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-x-a, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {ns: x}}, podSelector: {matchLabels: {pod: a}}}]
";
    let cluster = with_yaml(yaml);
    let xa = pod_ip(&cluster, "x/a");
    let ya = pod_ip(&cluster, "y/a");
    let syn = PacketTuple {
        protocol: Protocol::Tcp,
        src: xa,
        src_port: 40000,
        dst: ya,
        dst_port: 80,
    };
    let mut table = ConnectionTable::new();
    assert!(matches!(table.packet(&cluster, &syn), PacketVerdict::New(v) if v.allowed()));
    assert_eq!(table.packet(&cluster, &syn.reply()), PacketVerdict::Reply);
    assert_eq!(table.packet(&cluster, &syn), PacketVerdict::Established);
    // The same packet as a new connection from y/a is denied by x/a's ingress.
    let mut fresh = ConnectionTable::new();
    let new_reverse = fresh.packet(&cluster, &syn.reply());
    assert!(!new_reverse.allowed());
    // A denied connection leaves no state: retrying is evaluated again.
    assert!(!fresh.packet(&cluster, &syn.reply()).allowed());
    // The verdict is decided at connection start: a deny-all added later does
    // not cut the established connection, but new ones are denied.
    let deny_all = with_yaml(&format!(
        "{yaml}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: deny-all-egress, namespace: x}}
spec:
  podSelector: {{}}
  policyTypes: [Egress]
"
    ));
    assert_eq!(table.packet(&deny_all, &syn), PacketVerdict::Established);
    assert_eq!(table.packet(&deny_all, &syn.reply()), PacketVerdict::Reply);
    let other = PacketTuple {
        src_port: 40001,
        ..syn
    };
    assert!(!table.packet(&deny_all, &other).allowed());
}

#[test]
fn host_network_pods_are_node_traffic() {
    let mut cluster = e2e_cluster();
    let mut pods = cluster.pods().to_vec();
    pods.push(PodInfo {
        namespace: "x".into(),
        name: "agent".into(),
        labels: [("pod".to_string(), "agent".to_string())].into(),
        ip: node_ip(1),
        host_ip: node_ip(1),
        host_network: true,
        ports: Vec::new(),
    });
    cluster = Cluster::new(cluster.namespaces().cloned().collect(), pods, Vec::new());
    let cluster = cluster.with_policies(
        with_yaml(
            "
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: x}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: from-agent, namespace: y}
spec:
  podSelector: {}
  ingress:
  - from: [{podSelector: {matchLabels: {pod: agent}}, namespaceSelector: {}}]
",
        )
        .policies()
        .to_vec(),
    );
    let agent = cluster.pod("x", "agent").expect("agent").ip;
    // Not selected by x's deny-all: its egress is not isolated.
    let v = evaluate(
        &cluster,
        &Flow {
            src: agent,
            dst: pod_ip(&cluster, "z/a"),
            protocol: Protocol::Tcp,
            port: 80,
        },
    );
    assert!(v.allowed(), "{v}");
    assert_eq!(v.egress, SideVerdict::NotAPod);
    // Not matched as a peer by podSelector; but it is y's node, so y pods accept it.
    let v = evaluate(
        &cluster,
        &Flow {
            src: agent,
            dst: pod_ip(&cluster, "y/b"),
            protocol: Protocol::Tcp,
            port: 80,
        },
    );
    assert!(matches!(v.ingress, SideVerdict::FromOwnNode { .. }), "{v}");
    // x pods (on node .1) do not.
    let v = evaluate(
        &cluster,
        &Flow {
            src: agent,
            dst: pod_ip(&cluster, "x/b"),
            protocol: Protocol::Tcp,
            port: 80,
        },
    );
    assert!(!v.allowed());
}

#[test]
fn denial_explains_policies_rules_and_fix() {
    let yaml = "
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: Namespace
metadata: {name: batch}
---
apiVersion: v1
kind: Pod
metadata: {name: db-0, namespace: prod, labels: {app: db}}
spec:
  containers:
  - name: pg
    ports: [{containerPort: 5432, name: pg}]
---
apiVersion: v1
kind: Pod
metadata: {name: job-0, namespace: batch, labels: {app: batch}}
spec:
  containers: [{name: job}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-frontend, namespace: prod}
spec:
  podSelector: {matchLabels: {app: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {app: frontend}}}]
    ports: [{port: pg}]
  - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: batch}}}]
    ports: [{port: 9187}]
";
    let m = parse_manifests(&[("m.yaml".into(), yaml.into())]).expect("loads");
    let c = &m.cluster;
    let db = c.pod("prod", "db-0").expect("db").ip;
    let job = c.pod("batch", "job-0").expect("job").ip;
    let v = evaluate(
        c,
        &Flow {
            src: job,
            dst: db,
            protocol: Protocol::Tcp,
            port: 5432,
        },
    );
    assert!(!v.allowed());
    let text = v.to_string();
    assert!(
        text.contains(
            "pod db-0 in namespace prod is isolated for ingress by policies [allow-frontend, deny-all]; \
             none of their ingress rules admits pods with labels {app=batch} from namespace batch on TCP/5432"
        ),
        "{text}"
    );
    assert!(text.contains("allow-frontend ingress[0] covers TCP/5432 (ports: TCP/pg (named) = 5432), but only from pods {app=frontend}"), "{text}");
    assert!(text.contains("TCP/pg (named) = 5432"), "{text}");
    assert!(
        text.contains("allow-frontend ingress[1] admits this peer, but only on TCP/9187"),
        "{text}"
    );
    assert!(text.contains("deny-all has no ingress rules"), "{text}");
    assert!(
        text.contains("namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: batch}}, podSelector: {matchLabels: {app: batch}}"),
        "{text}"
    );
    // The suggested rule, once added, allows the connection.
    let fixed = format!(
        "{yaml}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: fix, namespace: prod}}
spec:
  podSelector: {{matchLabels: {{app: db}}}}
  ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: batch}}}}, podSelector: {{matchLabels: {{app: batch}}}}}}], ports: [{{protocol: TCP, port: 5432}}]}}]
"
    );
    let m = parse_manifests(&[("m.yaml".into(), fixed)]).expect("loads");
    let v = evaluate(
        &m.cluster,
        &Flow {
            src: job,
            dst: db,
            protocol: Protocol::Tcp,
            port: 5432,
        },
    );
    assert!(v.allowed(), "{v}");
}

// ---------------------------------------------------------------------------
// Property tests.

fn arb_selector() -> impl Strategy<Value = LabelSelector> {
    let value = prop::sample::select(vec!["a", "b", "c", "x", "y"]);
    let key = prop::sample::select(vec!["pod", "ns", "tier"]);
    let op = prop::sample::select(vec![
        Operator::In,
        Operator::NotIn,
        Operator::Exists,
        Operator::DoesNotExist,
    ]);
    let req =
        (key.clone(), op, prop::collection::vec(value.clone(), 1..3)).prop_map(|(k, op, vals)| {
            Requirement {
                key: k.to_string(),
                operator: op,
                values: match op {
                    Operator::In | Operator::NotIn => vals.into_iter().map(String::from).collect(),
                    _ => Vec::new(),
                },
            }
        });
    (
        prop::collection::btree_map(
            key.prop_map(String::from),
            value.prop_map(String::from),
            0..2,
        ),
        prop::collection::vec(req, 0..2),
    )
        .prop_map(|(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        })
}

fn arb_peer() -> impl Strategy<Value = Peer> {
    let cidr = prop::sample::select(vec![
        "10.1.0.0/16",
        "10.1.2.0/24",
        "10.1.1.2/32",
        "0.0.0.0/0",
    ]);
    prop_oneof![
        (prop::option::of(arb_selector()), arb_selector()).prop_map(|(n, p)| Peer::Selector {
            namespace_selector: n,
            pod_selector: Some(p),
        }),
        arb_selector().prop_map(|n| Peer::Selector {
            namespace_selector: Some(n),
            pod_selector: None
        }),
        cidr.prop_map(|c| {
            let cidr: crate::ipam::Ipv4Cidr = c.parse().expect("cidr");
            let except = if cidr.prefix() == 16 {
                vec!["10.1.3.0/24".parse().expect("cidr")]
            } else {
                Vec::new()
            };
            Peer::IpBlock(IpBlock { cidr, except })
        }),
    ]
}

fn arb_port() -> impl Strategy<Value = PolicyPort> {
    let protocol = prop::sample::select(vec![Protocol::Tcp, Protocol::Udp, Protocol::Sctp]);
    let spec = prop_oneof![
        Just(None),
        (
            prop::sample::select(vec![79u16, 80, 81]),
            prop::option::of(Just(81u16))
        )
            .prop_map(|(port, end_port)| Some(PortSpec::Number {
                port,
                end_port: end_port.filter(|e| *e >= port)
            })),
        prop::sample::select(vec![
            "serve-80-tcp",
            "serve-81-udp",
            "serve-80-sctp",
            "nope"
        ])
        .prop_map(|n| Some(PortSpec::Named(n.to_string()))),
    ];
    (protocol, spec).prop_map(|(protocol, port)| PolicyPort { protocol, port })
}

fn arb_rule() -> impl Strategy<Value = Rule> {
    (
        prop::collection::vec(arb_peer(), 0..3),
        prop::collection::vec(arb_port(), 0..3),
    )
        .prop_map(|(peers, ports)| Rule { peers, ports })
}

fn arb_policy(name: String) -> impl Strategy<Value = Policy> {
    (
        prop::sample::select(NAMESPACES.to_vec()),
        arb_selector(),
        prop::sample::select(vec![(true, false), (false, true), (true, true)]),
        prop::collection::vec(arb_rule(), 0..3),
        prop::collection::vec(arb_rule(), 0..3),
    )
        .prop_map(
            move |(ns, pod_selector, (ingress, egress), ing, eg)| Policy {
                namespace: ns.to_string(),
                name: name.clone(),
                pod_selector,
                policy_types: PolicyTypes { ingress, egress },
                ingress: ing,
                egress: eg,
            },
        )
}

fn arb_policies() -> impl Strategy<Value = Vec<Policy>> {
    prop::collection::vec(0..1u8, 0..4).prop_flat_map(|v| {
        v.iter()
            .enumerate()
            .map(|(i, _)| arb_policy(format!("p{i}")))
            .collect::<Vec<_>>()
    })
}

/// Every flow between pods (and from a node and an external IP) on a few ports.
fn all_flows(cluster: &Cluster) -> Vec<Flow> {
    let mut sources: Vec<Ipv4Addr> = cluster.pods().iter().map(|p| p.ip).collect();
    sources.push(node_ip(0));
    sources.push(Ipv4Addr::new(203, 0, 113, 1));
    let mut flows = Vec::new();
    for &src in &sources {
        for dst in cluster.pods() {
            for (protocol, port) in [
                (Protocol::Tcp, 80),
                (Protocol::Udp, 81),
                (Protocol::Sctp, 80),
                (Protocol::Tcp, 79),
            ] {
                flows.push(Flow {
                    src,
                    dst: dst.ip,
                    protocol,
                    port,
                });
            }
        }
        flows.push(Flow {
            src,
            dst: Ipv4Addr::new(10, 1, 3, 200),
            protocol: Protocol::Tcp,
            port: 80,
        });
    }
    flows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn generated_policies_are_valid(policies in arb_policies()) {
        for p in &policies {
            prop_assert!(p.validate().is_ok(), "{:?}", p.validate());
        }
    }

    #[test]
    fn no_policies_allow_everything(_x in 0..1u8) {
        let cluster = e2e_cluster();
        for f in all_flows(&cluster) {
            let v = evaluate(&cluster, &f);
            prop_assert!(v.allowed());
            prop_assert!(matches!(v.egress, SideVerdict::NotIsolated | SideVerdict::NotAPod));
            prop_assert!(matches!(v.ingress, SideVerdict::NotIsolated | SideVerdict::NotAPod));
        }
    }

    #[test]
    fn adding_a_policy_only_affects_pods_it_selects(base in arb_policies(), extra in arb_policy("extra".into())) {
        let before = e2e_cluster().with_policies(base.clone());
        let mut more = base.clone();
        more.push(extra.clone());
        let after = before.with_policies(more);
        for f in all_flows(&before) {
            let a = evaluate(&before, &f).allowed();
            let b = evaluate(&after, &f).allowed();
            if a != b {
                let src_selected = before.pod_by_ip(f.src).is_some_and(|p| extra.policy_types.egress && extra.selects(p));
                let dst_selected = before.pod_by_ip(f.dst).is_some_and(|p| extra.policy_types.ingress && extra.selects(p));
                prop_assert!(src_selected || dst_selected, "{:?} changed ({} -> {}) but extra policy selects neither end", f, a, b);
            }
        }
    }

    #[test]
    fn removing_every_policy_restores_verdicts(policies in arb_policies()) {
        let original = e2e_cluster();
        let with = original.with_policies(policies);
        let without = with.with_policies(Vec::new());
        for f in all_flows(&original) {
            prop_assert_eq!(evaluate(&original, &f), evaluate(&without, &f));
        }
    }

    #[test]
    fn verdicts_do_not_depend_on_policy_order(policies in arb_policies()) {
        let cluster = e2e_cluster().with_policies(policies.clone());
        let mut reversed = policies;
        reversed.reverse();
        let other = e2e_cluster().with_policies(reversed);
        for f in all_flows(&cluster) {
            prop_assert_eq!(evaluate(&cluster, &f), evaluate(&other, &f));
        }
    }
}
