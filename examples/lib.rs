//! The examples' shared body: each example replays one bundled scenario.

use std::process::ExitCode;

/// Runs the bundled scenario `name` with seed 1 and prints its story and
/// report. Exit status: 0 when every expectation holds, 1 when one fails, 2
/// when the scenario cannot run.
pub fn replay(name: &str) -> ExitCode {
    sim_scenarios::story::print_replay(name, 1)
}
