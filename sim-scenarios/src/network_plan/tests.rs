use super::*;

const SCENARIO: &str = include_str!("../../../scenarios/cidr_overlap.yaml");

fn err(text: &str) -> String {
    parse("t.yaml", text).unwrap_err().to_string()
}

#[test]
fn the_replay_parses_and_its_expectations_hold() {
    let s = parse("cidr_overlap.yaml", SCENARIO).unwrap();
    assert_eq!(s.variants.len(), 2);
    assert!(matches!(s.variants[1].origin, Origin::Proposed(_)));
    let runs = run_all(&s);
    let (held, total) = expectation_totals(&runs);
    assert_eq!((held, total), (9, 9), "{}", text(&s, &runs));
}

const BASE: &str = "name: t\nsummary: s\nnetwork_plan:\n  vpcs:\n    - {name: prod, cidrs: [10.0.0.0/16]}\n  cluster: {name: k, vpc: prod, pods: [10.1.0.0/16], services: 10.2.0.0/20}\n";

#[test]
fn errors_are_located_with_a_hint() {
    assert!(parse("t.yaml", BASE).is_ok());
    // A misspelt field.
    let e = err(&BASE.replace("services:", "service:"));
    assert!(e.starts_with("t.yaml:6:"), "{e}");
    assert!(
        e.contains("unknown field `service`") && e.contains("did you mean `services`?"),
        "{e}"
    );
    // Host bits set.
    let e = err(&BASE.replace("10.1.0.0/16", "10.1.0.1/16"));
    assert_eq!(
        e,
        "t.yaml:6:40: error: `10.1.0.1/16` has host bits set below the /16 prefix\n  hint: did you mean 10.1.0.0/16?"
    );
    // An unknown VPC.
    let e = err(&BASE.replace("vpc: prod", "vpc: prd"));
    assert!(
        e.starts_with("t.yaml:6:22: error: no VPC is called `prd`"),
        "{e}"
    );
    assert!(e.contains("did you mean `prod`?"), "{e}");
    // An unknown figure.
    let e = err(&format!(
        "{BASE}expect:\n  - {{metric: overlap, equals: 0, because: b}}\n"
    ));
    assert!(
        e.starts_with("t.yaml:8:") && e.contains("did you mean `overlaps`?"),
        "{e}"
    );
    // A node mask that is no prefix.
    let e = err(&BASE.replace(
        "services: 10.2.0.0/20",
        "services: 10.2.0.0/20, node_mask: 33",
    ));
    assert!(e.contains("node_mask /33 is not an IPv4 prefix"), "{e}");
    // propose with cluster.
    let e = err(&format!(
        "{BASE}  propose: {{nodes: 3, services: 10, zones: [a]}}\n"
    ));
    assert!(
        e.starts_with("t.yaml:7:") && e.contains("both given"),
        "{e}"
    );
    // A plan the planner cannot fit.
    let e = err("name: t\nsummary: s\nnetwork_plan:\n  propose: {nodes: 300000, max_pods_per_node: 110, services: 10, zones: [a]}\n");
    assert!(
        e.starts_with("t.yaml:4:") && e.contains("no plan fits"),
        "{e}"
    );
    // No cluster at all.
    let e = err("name: t\nsummary: s\nnetwork_plan:\n  peers: []\n");
    assert!(e.contains("the plan has no cluster"), "{e}");
}

#[test]
fn a_broken_expectation_fails_its_check() {
    let text = format!("{BASE}expect:\n  - {{metric: max_nodes, equals: 1, because: wrong}}\n");
    let s = parse("t.yaml", &text).unwrap();
    let runs = run_all(&s);
    assert_eq!(expectation_totals(&runs), (0, 1));
    assert!(text_report_mentions(
        &s,
        &runs,
        "FAIL baseline: max_nodes: 256 (want == 1)"
    ));
}

fn text_report_mentions(s: &PlanScenario, runs: &[PlanRun], what: &str) -> bool {
    text(s, runs).contains(what)
}
