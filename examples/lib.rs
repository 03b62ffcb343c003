//! The examples' shared body: each example replays one bundled scenario.

use std::process::ExitCode;

/// Runs the bundled scenario `name` with seed 1 and prints its story and
/// report. Exit status: 0 when every expectation holds, 1 when one fails, 2
/// when the scenario cannot run.
pub fn replay(name: &str) -> ExitCode {
    match sim_scenarios::story::replay(name, 1) {
        Ok((text, all_held)) => {
            print!("{text}");
            ExitCode::from(if all_held { 0 } else { 1 })
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
