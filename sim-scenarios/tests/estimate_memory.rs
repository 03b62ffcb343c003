//! The work estimate's memory against what runs allocate: peak bytes counted
//! by a counting global allocator in this test binary (not RSS, not wall
//! time), over the bundled replays the estimate tests run, the scale
//! study's small copy, zalando_dns_oom (an overloaded CoreDNS) and
//! mesh_retry_storm (retries multiplied along a call chain). The estimate must never be below the peak (the guard
//! relies on it) and within [`MEMORY_FACTOR`] above it.

use sim_core::alloc_count::{self, CountingAllocator};
use sim_core::NullSink;
use sim_models::cluster::run;
use sim_scenarios::estimate::Estimate;

/// How far above a run's peak the estimate may be: the estimate counts a
/// conntrack flow per request, where keep-alive reuses connections (13x on
/// conntrack_table_full/keep-alive).
const MEMORY_FACTOR: f64 = 16.0;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_estimate_bounds_the_peak_memory_of_runs() {
    let mut checked = 0;
    let mut failed = Vec::new();
    for (name, text) in sim_scenarios::bundled::BUNDLED {
        if sim_scenarios::datapath::is_datapath(text)
            || sim_scenarios::network_plan::is_network_plan(text)
        {
            continue;
        }
        let s = sim_scenarios::parse(name, text).expect("bundled scenarios parse");
        for v in &s.variants {
            let e = Estimate::of(&v.config);
            // Beyond the estimate tests' runs: the scale study's small
            // copy, an overloaded CoreDNS whose backlog reaches 310,000
            // queries (zalando_dns_oom/fix-2000Mi), and retries multiplied
            // along a call chain (mesh_retry_storm).
            let also = [
                "cluster_5k_nodes_small",
                "zalando_dns_oom",
                "mesh_retry_storm",
            ];
            if e.events_bound > 4.0e6 && !also.contains(name) {
                continue;
            }
            let base = alloc_count::live();
            alloc_count::reset_peak();
            let out = run(&v.config, 1, &mut NullSink);
            let peak = (alloc_count::peak() - base) as f64;
            drop(out);
            println!(
                "{name}/{}: peak {:.1} MB, estimate {:.1} MB",
                v.name,
                peak / 1e6,
                e.memory / 1e6
            );
            if !(peak <= e.memory && e.memory <= MEMORY_FACTOR * peak) {
                failed.push(format!(
                    "{name}/{}: peak {peak} B, estimate {} B",
                    v.name, e.memory
                ));
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} runs checked");
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
