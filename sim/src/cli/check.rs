//! `sim check`: judge a recorded history (a `run --trace`, or real nodes' and clients'
//! lines) with the scenario's checks; the same report as `sim run`.

use super::{exit_passed, load_one};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Loads and merges `histories`, judges them by the scenario at `path` and reports.
pub fn check_recorded(
    path: &Path,
    histories: &[PathBuf],
    seed: Option<u64>,
    json: bool,
) -> ExitCode {
    let (file, scenario) = match load_one(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let history = match sim::recorded::load(histories) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let files: Vec<String> = histories.iter().map(|h| h.display().to_string()).collect();
    let reproduce = format!(
        "cargo run -p sim -- check {file} --history {}",
        files.join(" ")
    );
    let seed = seed.unwrap_or(scenario.default_seed());
    let report = sim::recorded::judge(&scenario, &file, seed, &history, reproduce);
    if json {
        say!("{}", report.to_json());
    } else {
        say_raw!("{}", report.to_human(&scenario));
    }
    exit_passed(report.passed())
}
