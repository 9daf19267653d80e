//! Every scenario file runs at its fixed seed, twice.
//!
//! One test per file under `scenarios/` (and under `../shared/scenarios/` when that
//! directory exists): the verdict must be pass (the outcome matches the file's `expect`),
//! both runs must give the same trace hash (determinism), and the outcome summary with
//! the trace hash must match the insta snapshot in `snapshots/`, and `sim check` on the
//! run's `--trace` must give the run's verdicts, check by check. A change in behaviour
//! shows up as a snapshot diff to review (`cargo insta review`, or accept the
//! `.snap.new` files).

use libtest_mimic::{Arguments, Failed, Trial};
use sim::check::Status;
use sim::run::run_scenario;
use sim::scenario;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "toml") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// The snapshot text: everything a reviewer needs to see change.
fn summary(report: &sim::report::RunReport) -> String {
    let mut out = format!(
        "scenario: {}\nseed: {}\nexpect: {}\noutcome: {}\nverdict: {}\ntrace_hash: {}\n",
        report.scenario,
        report.seed,
        report.expect,
        report.outcome,
        report.verdict,
        report.trace_hash
    );
    let h = &report.happened;
    out.push_str(&format!(
        "happened: {} entries, {} elections started, leaders {}, highest term {}, {} restarts, {} damaged recoveries\n",
        h.events,
        h.elections_started,
        h.leaders.join(" "),
        h.max_term,
        h.restarts,
        h.damaged_recoveries
    ));
    if !h.ops.is_empty() {
        let ops: Vec<String> = h.ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
        out.push_str(&format!("client operations: {}\n", ops.join(", ")));
    }
    if !h.delivered.is_empty() {
        let delivered: Vec<String> = h
            .delivered
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        out.push_str(&format!("delivered: {}\n", delivered.join(", ")));
    }
    for fault in &h.faults_applied {
        out.push_str(&format!("fault: {fault}\n"));
    }
    for fault in &h.faults_skipped {
        out.push_str(&format!("fault skipped: {fault}\n"));
    }
    for error in &h.node_errors {
        out.push_str(&format!("node error: {error}\n"));
    }
    for check in &report.checks {
        let mark = match (check.status, check.passed) {
            (Status::Pass, _) => "ok",
            (Status::Violation, _) => "VIOLATED",
            (Status::Vacuous, true) => "vacuous (allowed)",
            (Status::Vacuous, false) => "VACUOUS",
        };
        out.push_str(&format!("check {} {mark}: {}\n", check.kind, check.detail));
    }
    out
}

/// `sim check` on the run's `--trace` text gives the run's verdicts, check by check.
fn recheck_trace(
    scenario: &scenario::Scenario,
    file: &str,
    seed: u64,
    run: &sim::run::Finished,
) -> Result<(), Failed> {
    let trace = sim::history::to_json_lines(&run.history);
    let history = sim::recorded::parse("trace", &trace)?;
    let checked = sim::recorded::judge(scenario, file, seed, &history, String::new());
    let verdicts = |r: &sim::report::RunReport| {
        let checks: Vec<String> = r
            .checks
            .iter()
            .map(|c| format!("{} {:?} {}", c.kind, c.status, c.detail))
            .collect();
        (
            r.outcome.clone(),
            r.verdict.clone(),
            r.trace_hash.clone(),
            checks,
        )
    };
    if verdicts(&run.report) != verdicts(&checked) {
        return Err(format!(
            "sim check on the trace disagrees with the run\nrun:\n{}\ncheck:\n{}",
            run.report.to_human(scenario),
            checked.to_human(scenario)
        )
        .into());
    }
    Ok(())
}

fn run_file(path: &Path, snapshot_name: Option<String>) -> Result<(), Failed> {
    let file = path.display().to_string();
    let scenario = scenario::load(path).map_err(|e| e.to_string())?;
    let seed = scenario.default_seed();
    let first = run_scenario(&scenario, &file, seed)?;
    let again = run_scenario(&scenario, &file, seed)?;
    if let Some(error) = &first.report.error {
        return Err(format!(
            "run crashed: {error}\nreproduce: {}",
            first.report.reproduce
        )
        .into());
    }
    if first.report.trace_hash != again.report.trace_hash {
        let diff =
            sim::history::first_difference(&first.history, &again.history).unwrap_or_default();
        return Err(format!("same seed, different traces\n{diff}").into());
    }
    if !first.report.passed() {
        return Err(format!("verdict fail\n{}", first.report.to_human(&scenario)).into());
    }
    recheck_trace(&scenario, &file, seed, &first)?;
    if let Some(name) = snapshot_name {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(workspace().join("snapshots"));
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(name, summary(&first.report)));
    }
    Ok(())
}

fn main() {
    let args = Arguments::from_args();
    let root = workspace();
    let mut trials = Vec::new();
    let ours = root.join("scenarios");
    for path in scenario_files(&ours) {
        let relative = path.strip_prefix(&ours).unwrap_or(&path).to_path_buf();
        let name = relative
            .with_extension("")
            .display()
            .to_string()
            .replace('/', "__");
        let snapshot = name.clone();
        trials.push(Trial::test(format!("scenario::{name}"), move || {
            run_file(&path, Some(snapshot))
        }));
    }
    let shared = root.join("../shared/scenarios");
    for path in scenario_files(&shared) {
        let relative = path.strip_prefix(&shared).unwrap_or(&path).to_path_buf();
        let name = relative
            .with_extension("")
            .display()
            .to_string()
            .replace('/', "__");
        trials.push(Trial::test(format!("shared::{name}"), move || {
            run_file(&path, None)
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}
