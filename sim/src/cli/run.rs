//! `sim run`: run scenarios in the simulator, judge them, print a report per run and write
//! the files asked for (trace, timeline, EDN history, HTML report).

use super::{exit_passed, load_all, write_file};
use sim::history::to_json_lines;
use sim::run::{run_scenario, run_scenario_with_messages};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Files a run may write besides its report.
pub struct Outputs<'a> {
    pub trace: Option<&'a Path>,
    pub timeline: Option<&'a Path>,
    pub history: Option<&'a Path>,
    pub html: Option<&'a Path>,
}

/// `FILE` for one run; `FILE` with the scenario name inserted when several runs share it.
fn per_run_path(path: &Path, name: &str, many: bool) -> PathBuf {
    if !many {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("out");
    let ext = path.extension().and_then(|s| s.to_str()).unwrap_or("txt");
    path.with_file_name(format!("{stem}.{name}.{ext}"))
}

/// Runs each scenario once (with `seed`, else its own) and reports it.
pub fn run_scenarios(
    paths: &[PathBuf],
    seed: Option<u64>,
    json: bool,
    outputs: Outputs<'_>,
) -> ExitCode {
    let scenarios = match load_all(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let many = scenarios.len() > 1;
    let mut all_passed = true;
    for (file, scenario) in &scenarios {
        let seed = seed.unwrap_or(scenario.default_seed());
        let ran = if outputs.html.is_some() {
            run_scenario_with_messages(scenario, file, seed)
        } else {
            run_scenario(scenario, file, seed)
        };
        let finished = match ran {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        // Each output is rendered only when asked for.
        let history = &finished.history;
        let files: [(Option<&Path>, &dyn Fn() -> String); 4] = [
            (outputs.trace, &|| to_json_lines(history)),
            (outputs.timeline, &|| {
                sim::timeline::render(scenario, history)
            }),
            (outputs.history, &|| {
                sim::linearizability::edn_string(&sim::check::linearizable::client_operations(
                    history,
                ))
            }),
            (outputs.html, &|| {
                sim::html::render(scenario, &finished.report, history, &finished.messages)
            }),
        ];
        for (path, render) in files {
            if let Some(path) = path {
                if let Err(code) = write_file(&per_run_path(path, &scenario.name, many), render()) {
                    return code;
                }
            }
        }
        if json {
            say!("{}", finished.report.to_json());
        } else {
            say_raw!("{}", finished.report.to_human(scenario));
            if many {
                say!();
            }
        }
        all_passed &= finished.report.passed();
    }
    exit_passed(all_passed)
}
