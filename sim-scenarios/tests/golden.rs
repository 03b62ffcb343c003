//! Golden files for outage replays: the story and report of each bundled
//! scenario with seed 1, pinned byte for byte. A model change that moves a
//! figure shows up here as a diff to review (`cargo insta review`).

use sim_scenarios::{load_named, report, run, story};

#[test]
fn black_friday_cidr_replay() {
    let scenario = load_named("black_friday_cidr").unwrap();
    let runs = run::run_all(&scenario, &[1], None).unwrap();
    let text = format!(
        "{}\n{}",
        story::tell(&scenario, &runs),
        report::text(&scenario, &runs)
    );
    assert_eq!(report::expectation_totals(&runs), (10, 10), "{text}");
    let again = run::run_all(&scenario, &[1], Some(1)).unwrap();
    assert_eq!(
        text,
        format!(
            "{}\n{}",
            story::tell(&scenario, &again),
            report::text(&scenario, &again)
        ),
        "a second run differs"
    );
    insta::assert_snapshot!(text);
}
