//! `sim check-determinism`: run one seed several times and require identical traces.

use super::load_one;
use sim::history::Entry;
use sim::run::run_scenario;
use std::path::Path;
use std::process::ExitCode;

/// Runs the scenario `runs` times (at least 2) and compares the trace hashes; on a
/// mismatch prints the first entry where the histories differ.
pub fn check_determinism(path: &Path, seed: Option<u64>, runs: usize) -> ExitCode {
    let (file, scenario) = match load_one(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let seed = seed.unwrap_or(scenario.default_seed());
    let mut first: Option<(String, Vec<Entry>)> = None;
    for run in 1..=runs.max(2) {
        let finished = match run_scenario(&scenario, &file, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        if let Some(error) = &finished.report.error {
            eprintln!("run {run} crashed: {error}");
            return ExitCode::from(1);
        }
        let hash = finished.report.trace_hash.clone();
        say!(
            "run {run}: trace hash {hash} ({} entries)",
            finished.history.len()
        );
        match &first {
            None => first = Some((hash, finished.history)),
            Some((first_hash, first_history)) if *first_hash != hash => {
                say!("NOT deterministic: run 1 and run {run} differ");
                if let Some(diff) = sim::history::first_difference(first_history, &finished.history)
                {
                    say!("{diff}");
                }
                return ExitCode::from(1);
            }
            Some(_) => {}
        }
    }
    say!(
        "deterministic: {} runs of seed {seed} gave identical traces",
        runs.max(2)
    );
    ExitCode::SUCCESS
}
