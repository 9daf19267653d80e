//! One scenario run, end to end: harness, checks, report. Used by the CLI and the tests.

use crate::check;
use crate::harness::{self, RunError};
use crate::history::{Entry, WireEntry};
use crate::report::RunReport;
use crate::scenario::Scenario;

/// A finished run: its report and, unless it crashed, its history.
pub struct Finished {
    /// What to print.
    pub report: RunReport,
    /// The recorded trace (empty when the run crashed).
    pub history: Vec<Entry>,
    /// Messages the simulated network delivered.
    pub net_messages: u64,
    /// Tapped peer messages (only from [`run_scenario_with_messages`]).
    pub messages: Vec<WireEntry>,
}

/// Runs a scenario at a seed. `Err` only for scenarios the testbed cannot run yet.
pub fn run_scenario(scenario: &Scenario, file: &str, seed: u64) -> Result<Finished, String> {
    finish(scenario, file, seed, harness::simulate(scenario, seed))
}

/// As [`run_scenario`], also keeping the peer messages for the run's picture.
pub fn run_scenario_with_messages(
    scenario: &Scenario,
    file: &str,
    seed: u64,
) -> Result<Finished, String> {
    finish(
        scenario,
        file,
        seed,
        harness::simulate_with_messages(scenario, seed),
    )
}

fn finish(
    scenario: &Scenario,
    file: &str,
    seed: u64,
    ran: Result<harness::RunOutput, RunError>,
) -> Result<Finished, String> {
    match ran {
        Ok(output) => {
            let checks = check::run_all(scenario, &output.history);
            let report = RunReport::new(
                scenario,
                file,
                seed,
                &output.history,
                checks,
                output.sim_ms,
                output.wall_ms,
            );
            Ok(Finished {
                report,
                history: output.history,
                net_messages: output.net_messages,
                messages: output.messages,
            })
        }
        Err(RunError::Unsupported(why)) => Err(why),
        Err(RunError::Panicked(why)) => Ok(Finished {
            report: RunReport::crashed(scenario, file, seed, why),
            history: Vec::new(),
            net_messages: 0,
            messages: Vec::new(),
        }),
    }
}
