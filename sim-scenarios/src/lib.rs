//! # sim-scenarios: scenario files, the outage library, the `knsim` CLI
//!
//! Data flows one way: a scenario file ([`spec`]) is validated into model
//! configurations, one per variant; [`run`] runs each variant for each seed
//! on the `sim-models` cluster simulation; [`report`] turns the runs into a
//! text report, a JSON summary and CSV files. Errors in files name
//! `file:line:column`, what is wrong and a hint ([`error`], [`locate`]).

pub mod bundled;
pub mod error;
pub mod locate;
pub mod report;
pub mod run;
pub mod spec;
pub mod story;
pub mod units;

pub use error::InputError;
pub use spec::{load, parse, Scenario};

/// Loads a scenario by path or, if no such file exists and the name is a
/// bundled scenario's, the bundled one (reported as `scenarios/NAME.yaml`).
pub fn load_named(arg: &str) -> Result<Scenario, InputError> {
    let path = std::path::Path::new(arg);
    if !path.exists() {
        if let Some(text) = bundled::find(arg) {
            return parse(&format!("scenarios/{arg}.yaml"), text);
        }
    }
    load(path)
}
