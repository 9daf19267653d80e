//! What a failing fuzz seed hands back (`sim fuzz --artifacts DIR`): the seed shrunk to a
//! standalone scenario, the trace of that scenario's run, and its report as text and as a
//! page — failing seed → shrunk scenario → picture, in one directory per seed.

use crate::history::to_json_lines;
use crate::run::run_scenario_with_messages;
use crate::scenario::Scenario;
use std::path::{Path, PathBuf};

/// At most this many failing seeds get artifacts in one fuzz run (each costs a shrink).
pub const MAX_SEEDS: usize = 10;

/// The files written for one failing seed.
#[derive(Debug)]
pub struct Written {
    /// The seed's directory.
    pub dir: PathBuf,
    /// The command that replays what the report shows.
    pub reproduce: String,
    /// Set when the seed could not be shrunk (the report is then of the original run).
    pub unshrunk: Option<String>,
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Shrinks `seed` of `scenario` (from `file`) and writes, under `root/{name}-seed-{seed}/`,
/// `shrunk.toml`, `trace.jsonl`, `report.txt` and `report.html` of the shrunk run (of
/// the original run, without `shrunk.toml`, when shrinking fails).
pub fn write_failure(
    root: &Path,
    scenario: &Scenario,
    file: &str,
    seed: u64,
) -> Result<Written, String> {
    let dir = root.join(format!("{}-seed-{seed}", scenario.name));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (ran, ran_file, unshrunk) = match crate::shrink::shrink(scenario, file, seed) {
        Ok(shrunk) => {
            let path = dir.join("shrunk.toml");
            write(&path, &shrunk.text)?;
            (shrunk.scenario, path.display().to_string(), None)
        }
        Err(why) => (scenario.clone(), file.to_string(), Some(why)),
    };
    let finished = run_scenario_with_messages(&ran, &ran_file, seed)?;
    write(&dir.join("trace.jsonl"), &to_json_lines(&finished.history))?;
    write(&dir.join("report.txt"), &finished.report.to_human(&ran))?;
    let page = crate::html::render(
        &ran,
        &finished.report,
        &finished.history,
        &finished.messages,
    );
    write(&dir.join("report.html"), &page)?;
    Ok(Written {
        dir,
        reproduce: finished.report.reproduce.clone(),
        unshrunk,
    })
}
