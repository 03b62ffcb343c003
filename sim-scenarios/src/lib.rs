//! # sim-scenarios: scenario files, the outage library, the `knsim` CLI
//!
//! Data flows one way: a scenario file ([`spec`]) is validated into model
//! configurations, one per variant; [`run`] runs each variant for each seed
//! on the `sim-models` cluster simulation; [`report`] turns the runs into a
//! text report, a JSON summary and CSV files; every figure `expect:` can
//! name, for both levels, is one row of the [`figures`] table, which the
//! checks, reports and stories read it through. Packet-level scenarios
//! ([`datapath`]) share the envelope of the format ([`envelope`]: labels,
//! variants, expectations), and so do network plans ([`network_plan`]:
//! address ranges checked for overlaps). Errors in files name `file:line:column`, what
//! is wrong and a hint ([`error`], [`locate`]). The report reads each run
//! through its [`digest`], which a sharded run or sweep writes to disk so
//! that [`shard`] can merge the parts into the output of one whole run.

pub mod bundled;
pub mod datapath;
pub mod digest;
pub mod envelope;
pub mod error;
pub mod estimate;
pub mod figures;
pub mod ingress;
pub mod locate;
pub mod network_plan;
pub mod report;
pub mod run;
pub mod schema;
pub mod shard;
pub mod spec;
pub mod story;
mod story_mesh;
mod story_paths;
mod story_zones;
pub mod sweep;
pub mod units;

pub use error::InputError;
pub use spec::{load, parse, Scenario};

/// Loads a scenario by path or, if no such file exists and the name is a
/// bundled scenario's, the bundled one (reported as `scenarios/NAME.yaml`).
pub fn load_named(arg: &str) -> Result<Scenario, InputError> {
    let (file, text) = read_named(arg)?;
    parse(&file, &text)
}

/// The text of a scenario named as [`load_named`] takes it, with the name
/// its errors should carry.
pub fn read_named(arg: &str) -> Result<(String, String), InputError> {
    let path = std::path::Path::new(arg);
    if !path.exists() {
        if let Some(text) = bundled::find(arg) {
            return Ok((format!("scenarios/{arg}.yaml"), text.to_string()));
        }
    }
    spec::read(path)
}

/// If `arg` names a packet-level scenario (a file, or a bundled scenario,
/// with a top-level `datapath:` section), parses it; `None` for anything
/// else, which [`load_named`] handles (and reports unreadable files).
pub fn load_datapath(arg: &str) -> Option<Result<datapath::DatapathScenario, InputError>> {
    let (file, text) = read_named(arg).ok()?;
    datapath::is_datapath(&text).then(|| datapath::parse(&file, &text))
}

/// If `arg` names a network-plan scenario (a file, or a bundled scenario,
/// with a top-level `network_plan:` section), parses it; `None` for
/// anything else.
pub fn load_network_plan(arg: &str) -> Option<Result<network_plan::PlanScenario, InputError>> {
    let (file, text) = read_named(arg).ok()?;
    network_plan::is_network_plan(&text).then(|| network_plan::parse(&file, &text))
}
