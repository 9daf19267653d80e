//! Judging a recorded history: `sim check SCENARIO --history FILE...`.
//!
//! A history is the JSON lines of `sim run --trace`, or the lines real nodes write with
//! `--history` plus a client history (`sim real` writes all of them as one trace). Several
//! files are merged by time stamp (stable: lines with one time keep their file order), so
//! one trace judged alone gives exactly the verdicts its run gave.

use crate::check;
use crate::history::Entry;
use crate::report::RunReport;
use crate::scenario::Scenario;
use std::path::Path;

/// Parses history lines; blank lines are skipped. Errors name the file and line.
pub fn parse(name: &str, text: &str) -> Result<Vec<Entry>, String> {
    let mut entries = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(line)
            .map_err(|e| format!("{name}:{}: not a history line: {e}", i + 1))?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Reads and merges history files (see the module comment).
pub fn load(paths: &[impl AsRef<Path>]) -> Result<Vec<Entry>, String> {
    let mut merged = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        merged.extend(parse(&path.display().to_string(), &text)?);
    }
    merged.sort_by_key(|e| e.t);
    Ok(merged)
}

/// The scenario's checks on `history`, as a run's report. `seed` is the run's (the
/// scenario's default when unknown); `reproduce` is the command that judges it again.
pub fn judge(
    scenario: &Scenario,
    file: &str,
    seed: u64,
    history: &[Entry],
    reproduce: String,
) -> RunReport {
    let started = std::time::Instant::now();
    let checks = check::run_all(scenario, history);
    let span_ms = history.last().map_or(0, |e| e.t / 1_000_000);
    let wall_ms = started.elapsed().as_millis() as u64;
    let mut report = RunReport::new(scenario, file, seed, history, checks, span_ms, wall_ms);
    report.reproduce = reproduce;
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::What;
    use nodes::runtime::history::{to_line, NodeLine, Stamped};
    use nodes::runtime::NodeEvent;

    #[test]
    fn a_real_nodes_line_reads_as_the_trace_event_it_is() {
        let event = NodeEvent::HeartbeatSent { term: 2 };
        let real = to_line(&Stamped {
            t: 7,
            node: "n3".to_string(),
            what: NodeLine::Event {
                data: event.clone(),
            },
        });
        let entries = parse("h", &format!("{real}\n\n")).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].what, What::Event { data: event });
        assert_eq!((entries[0].t, entries[0].node.as_str()), (7, "n3"));
        // Written back as a trace line, it is the same text.
        assert_eq!(to_line(&entries[0]), real);
    }

    #[test]
    fn a_bad_line_is_named_by_file_and_line() {
        let err = parse("run.jsonl", "\n{\"t\":1}\n").unwrap_err();
        assert!(err.starts_with("run.jsonl:2: not a history line"), "{err}");
    }
}
