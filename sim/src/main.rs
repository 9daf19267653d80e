//! `sim`: run scenarios in the deterministic simulator.
//!
//! Exit codes: 0 every run's verdict is pass; 1 some run failed (a violation nobody
//! expected, an expected violation that did not happen, a crashed run, a determinism
//! mismatch); 2 usage or scenario error.

use clap::{Parser, Subcommand};
use sim::history::{to_json_lines, Entry};
use sim::run::run_scenario;
use sim::scenario::{self, Scenario};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "sim",
    version,
    about = "Deterministic simulation testbed for distributed nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenarios and judge them; prints a report per run.
    Run {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// One JSON object per run, one per line.
        #[arg(long)]
        json: bool,
        /// Write the full trace as JSON lines here.
        #[arg(long)]
        trace: Option<PathBuf>,
        /// Write a text picture of the run (roles per server over time, faults) here.
        #[arg(long)]
        timeline: Option<PathBuf>,
    },
    /// Parse and validate scenarios only.
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Run one seed several times and require identical traces.
    CheckDeterminism {
        /// Scenario file.
        scenario: PathBuf,
        /// Seed (default: the scenario's `seed`, else 1).
        #[arg(long)]
        seed: Option<u64>,
        /// Number of runs to compare.
        #[arg(long, default_value_t = 2)]
        runs: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run {
            scenarios,
            seed,
            json,
            trace,
            timeline,
        } => run(
            &scenarios,
            seed,
            json,
            trace.as_deref(),
            timeline.as_deref(),
        ),
        Command::Validate { scenarios } => validate(&scenarios),
        Command::CheckDeterminism {
            scenario,
            seed,
            runs,
        } => check_determinism(&scenario, seed, runs),
    }
}

fn load_all(paths: &[PathBuf]) -> Result<Vec<(String, Scenario)>, ExitCode> {
    let mut loaded = Vec::new();
    let mut failed = false;
    for path in paths {
        match scenario::load(path) {
            Ok(s) => loaded.push((path.display().to_string(), s)),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        Err(ExitCode::from(2))
    } else {
        Ok(loaded)
    }
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

fn run(
    paths: &[PathBuf],
    seed: Option<u64>,
    json: bool,
    trace: Option<&Path>,
    timeline: Option<&Path>,
) -> ExitCode {
    let scenarios = match load_all(paths) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let many = scenarios.len() > 1;
    let mut all_passed = true;
    for (file, scenario) in &scenarios {
        let seed = seed.unwrap_or(scenario.default_seed());
        let finished = match run_scenario(scenario, file, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        if let Some(path) = trace {
            let path = per_run_path(path, &scenario.name, many);
            if let Err(e) = std::fs::write(&path, to_json_lines(&finished.history)) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if let Some(path) = timeline {
            let path = per_run_path(path, &scenario.name, many);
            let picture = sim::timeline::render(scenario, &finished.history);
            if let Err(e) = std::fs::write(&path, picture) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::from(2);
            }
        }
        if json {
            println!("{}", finished.report.to_json());
        } else {
            print!("{}", finished.report.to_human(scenario));
            if many {
                println!();
            }
        }
        all_passed &= finished.report.passed();
    }
    if all_passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn validate(paths: &[PathBuf]) -> ExitCode {
    match load_all(paths) {
        Ok(scenarios) => {
            for (file, s) in scenarios {
                println!(
                    "ok {file} ({}, {} servers, {} checks)",
                    s.name,
                    s.server_count(),
                    s.checks.len()
                );
            }
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn check_determinism(path: &Path, seed: Option<u64>, runs: usize) -> ExitCode {
    let scenarios = match load_all(&[path.to_path_buf()]) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (file, scenario) = &scenarios[0];
    let seed = seed.unwrap_or(scenario.default_seed());
    let mut first: Option<(String, Vec<Entry>)> = None;
    for run in 1..=runs.max(2) {
        let finished = match run_scenario(scenario, file, seed) {
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
        println!(
            "run {run}: trace hash {hash} ({} entries)",
            finished.history.len()
        );
        match &first {
            None => first = Some((hash, finished.history)),
            Some((first_hash, first_history)) if *first_hash != hash => {
                println!("NOT deterministic: run 1 and run {run} differ");
                if let Some(diff) = sim::history::first_difference(first_history, &finished.history)
                {
                    println!("{diff}");
                }
                return ExitCode::from(1);
            }
            Some(_) => {}
        }
    }
    println!(
        "deterministic: {} runs of seed {seed} gave identical traces",
        runs.max(2)
    );
    ExitCode::SUCCESS
}
