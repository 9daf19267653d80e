//! `sim shrink`: minimize a failing seed to a standalone scenario with an explicit fault
//! timeline, and optionally write the shrunk run's HTML report.

use super::{load_one, write_file};
use sim::run::run_scenario_with_messages;
use std::path::Path;
use std::process::ExitCode;

/// Shrinks `seed` of the scenario at `path`; writes the result to `output` (else stdout).
pub fn shrink(path: &Path, seed: u64, output: Option<&Path>, html: Option<&Path>) -> ExitCode {
    let (file, scenario) = match load_one(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let shrunk = match sim::shrink::shrink(&scenario, &file, seed) {
        Ok(s) => s,
        Err(why) => {
            eprintln!("error: {file} seed {seed}: {why}");
            return ExitCode::from(2);
        }
    };
    match output {
        Some(out) => {
            if let Err(code) = write_file(out, shrunk.text.clone()) {
                return code;
            }
            say!(
                "wrote {}: check `{}` still fails with {} of {} faults ({} runs)\n  {}\n  reproduce: cargo run -p sim -- run {} --seed {seed}",
                out.display(),
                shrunk.check,
                shrunk.faults_after,
                shrunk.faults_before,
                shrunk.runs,
                shrunk.evidence,
                out.display()
            );
        }
        None => {
            say_raw!("{}", shrunk.text);
            eprintln!(
                "check `{}` still fails with {} of {} faults ({} runs)",
                shrunk.check, shrunk.faults_after, shrunk.faults_before, shrunk.runs
            );
        }
    }
    if let Some(page) = html {
        let shown = output.map_or_else(|| file.clone(), |o| o.display().to_string());
        let finished = match run_scenario_with_messages(&shrunk.scenario, &shown, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {why}");
                return ExitCode::from(2);
            }
        };
        let text = sim::html::render(
            &shrunk.scenario,
            &finished.report,
            &finished.history,
            &finished.messages,
        );
        if let Err(code) = write_file(page, text) {
            return code;
        }
        eprintln!("wrote {}: the shrunk run's report", page.display());
    }
    ExitCode::SUCCESS
}
