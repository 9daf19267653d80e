//! `sim teach`: list the lessons, or run one lesson's failing scenario and its fixed
//! sibling and write both HTML reports.

use super::{exit_passed, workspace_root, write_file};
use sim::run::run_scenario_with_messages;
use sim::scenario;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Without a name prints the catalogue; with one runs the lesson into `out`.
pub fn teach(name: Option<&str>, out: &Path) -> ExitCode {
    let Some(name) = name else {
        say_raw!("{}", sim::teach::catalogue());
        return ExitCode::SUCCESS;
    };
    let Some(lesson) = sim::teach::find(name) else {
        let names: Vec<&str> = sim::teach::LESSONS.iter().map(|l| l.name).collect();
        eprintln!(
            "error: no lesson \"{name}\": expected one of {}",
            names.join(", ")
        );
        return ExitCode::from(2);
    };
    say!(
        "{}\n  claim: {}\n  {}\n",
        lesson.title,
        lesson.claim,
        lesson.lesson
    );
    let root = workspace_root();
    let mut all_passed = true;
    let runs = [("failing", Some(lesson.failing)), ("fixed", lesson.fixed)];
    for (role, file) in runs {
        let Some(file) = file else {
            say!("(no fixed sibling in this system)");
            continue;
        };
        let path = if Path::new(file).exists() {
            PathBuf::from(file)
        } else {
            root.join(file)
        };
        let scenario = match scenario::load(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let seed = scenario.default_seed();
        let finished = match run_scenario_with_messages(&scenario, file, seed) {
            Ok(f) => f,
            Err(why) => {
                eprintln!("error: {file}: {why}");
                return ExitCode::from(2);
            }
        };
        let page = out.join(format!("{name}.{role}.html"));
        let html = sim::html::render(
            &scenario,
            &finished.report,
            &finished.history,
            &finished.messages,
        );
        if let Err(code) = write_file(&page, html) {
            return code;
        }
        say_raw!("{}", finished.report.to_human(&scenario));
        say!("page: {}\n", page.display());
        all_passed &= finished.report.passed();
    }
    exit_passed(all_passed)
}
