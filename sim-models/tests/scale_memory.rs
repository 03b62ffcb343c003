//! Memory per pod and per Service of a cluster run (issue 14).
//!
//! # Scope
//! The peak of the bytes the cluster simulation (`sim_models::cluster::run`)
//! holds allocated at once, counted by a counting global allocator in this
//! test binary (not RSS, not wall time), at three sizes along two axes:
//! - pods: 1,500 and 15,000 idle pods (30 a node on 50 and 500 nodes), no
//!   traffic;
//! - Services: 20 and 200 Deployments of 10 pods (100 pods a node), each
//!   behind a Service with its own client at 1 request/s and one
//!   measurement window.
//!
//! # Parameters
//! The budgets come from the issue's targets, per unit and with the unit's
//! share of nodes and fixed costs:
//! - 150,000 pods in 400 MB: [`POD_BUDGET`] 2,700 B a pod;
//! - 10,000 Services x 10 pods in 2 GB: [`SERVICE_BUDGET`] 200 KB a
//!   Service with its 10 pods;
//! - the cost per unit at the larger size is at most [`GROWTH`] (1.3, the
//!   issue's ratio for pods) times the cost at the smaller size.
//!
//! # What it checks
//! For each axis: the peak bytes per unit at both sizes are within the
//! budget, and they do not grow with the size. The report and story
//! (sim-scenarios) are not counted: only the simulation and its
//! `RunOutput`.
//!
//! # Validation
//! The figures are printed (`--nocapture`) with the unit counts, so a
//! failure says by how much. Runs are kept short (30 s simulated) so that
//! the tests take seconds; they take a lock, so no other test of this
//! binary allocates during a measurement.

use sim_core::alloc_count::{self, CountingAllocator};
use sim_core::{NullSink, SimDuration};
use sim_models::cluster::{capacity_study, run, ClusterConfig, WindowSpec};
use std::sync::Mutex;

/// Bytes a pod may cost: 400 MB / 150,000 pods (issue 14).
const POD_BUDGET: f64 = 400e6 / 150_000.0;
/// Bytes a Service with its 10 pods may cost: 2 GB / 10,000 Services (issue 14).
const SERVICE_BUDGET: f64 = 2e9 / 10_000.0;
/// Largest ratio of the cost per unit at the larger size to the smaller.
const GROWTH: f64 = 1.3;

/// The system allocator, counting the bytes live and their peak.
#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator;

fn secs(s: u64) -> SimDuration {
    SimDuration::from_secs(s)
}

/// The capacity study of `deployments` Services of `replicas` pods on `nodes`
/// nodes, with `rate` a client per Service: 30 s simulated, one window over
/// the last 15 s.
fn cluster(nodes: u32, deployments: usize, replicas: u32, rate: Option<f64>) -> ClusterConfig {
    let mut cfg = capacity_study(nodes, deployments, replicas, rate, secs(30));
    cfg.windows = vec![WindowSpec {
        name: "steady".into(),
        start: secs(15),
        end: secs(30),
    }];
    cfg
}

/// Peak bytes allocated at once while `cfg` runs and its output lives,
/// above what was allocated before.
fn peak_bytes(cfg: &ClusterConfig) -> usize {
    let before = alloc_count::live();
    alloc_count::reset_peak();
    let out = run(cfg, 1, &mut NullSink);
    let peak = alloc_count::peak();
    drop(out);
    peak - before
}

/// Bytes per unit at a small and a large size, with the failures found.
fn per_unit(what: &str, sizes: Vec<(f64, ClusterConfig)>, budget: f64) -> Vec<String> {
    let cost: Vec<f64> = sizes
        .iter()
        .map(|(units, cfg)| {
            let bytes = peak_bytes(cfg) as f64;
            println!(
                "{what}: {units} -> {:.1} MB peak, {:.0} B per {what}",
                bytes / 1e6,
                bytes / units
            );
            bytes / units
        })
        .collect();
    let mut failed = Vec::new();
    for ((units, _), c) in sizes.iter().zip(&cost) {
        if *c > budget {
            failed.push(format!(
                "{units} {what}s: {c:.0} B per {what}, budget {budget:.0} B"
            ));
        }
    }
    for (i, c) in cost.iter().enumerate().skip(1) {
        if *c > GROWTH * cost[0] {
            failed.push(format!(
                "cost per {what} grows: {c:.0} B at {} against {:.0} B at {} (more than x{GROWTH})",
                sizes[i].0, cost[0], sizes[0].0
            ));
        }
    }
    failed
}

/// The counters are global: one measurement at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn memory_per_pod_stays_within_the_issue_14_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 30 pods a node, idle (no Service traffic).
    let failed = per_unit(
        "pod",
        vec![
            (1_500.0, cluster(50, 5, 300, None)),
            (15_000.0, cluster(500, 50, 300, None)),
            (150_000.0, cluster(5_000, 500, 300, None)),
        ],
        POD_BUDGET,
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn memory_per_service_stays_within_the_issue_14_budget() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // 10 pods a Service, 10 Services a node, 1 request/s each.
    let failed = per_unit(
        "Service",
        vec![
            (20.0, cluster(2, 20, 10, Some(1.0))),
            (200.0, cluster(20, 200, 10, Some(1.0))),
            (2_000.0, cluster(200, 2_000, 10, Some(1.0))),
        ],
        SERVICE_BUDGET,
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
