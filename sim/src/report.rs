//! Reports: what a person reads after a run, and what CI parses.
//!
//! The human report says what the scenario is about, what actually happened (elections,
//! terms, faults applied or skipped — so a pass that exercised nothing shows), each check
//! with its evidence, the verdict against `expect`, the trace hash and the exact command
//! that reproduces the run. `--json` prints the same as one JSON object per run.

use crate::check::{CheckResult, Status};
use crate::history::{fmt_time, trace_hash, Actor, Entry, OpType, What};
use crate::scenario::{Expect, Scenario};
use nodes::runtime::{NodeEvent, Role};
use serde::Serialize;
use std::collections::BTreeMap;

/// A run's outcome, as printed.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario name.
    pub scenario: String,
    /// Scenario file as given.
    pub file: String,
    /// Seed of the run.
    pub seed: u64,
    /// SHA-256 prefix of the trace.
    pub trace_hash: String,
    /// Simulated milliseconds.
    pub sim_ms: u64,
    /// Wall milliseconds.
    pub wall_ms: u64,
    /// Every check's verdict and evidence.
    pub checks: Vec<CheckResult>,
    /// What the scenario expects.
    pub expect: String,
    /// `"pass"` when every check passed, `"violation"` when some check found one,
    /// `"vacuous"` when none did but some check had nothing to judge (and may not).
    pub outcome: String,
    /// `"pass"` when the outcome matches `expect`, else `"fail"`.
    pub verdict: String,
    /// Why the verdict is what it is, in plain words.
    pub reason: String,
    /// What actually happened in the run.
    pub happened: Happened,
    /// The command that replays this run.
    pub reproduce: String,
    /// Set when the run itself broke (a panic in node or harness code).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Counts that show whether a run exercised anything.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Happened {
    /// Trace entries.
    pub events: usize,
    /// Elections started (by any server).
    pub elections_started: usize,
    /// `term:leader` for every term that had a leader, in order.
    pub leaders: Vec<String>,
    /// Highest term any server reached.
    pub max_term: u64,
    /// Faults applied, as `time action target`.
    pub faults_applied: Vec<String>,
    /// Faults that could not apply, with the reason.
    pub faults_skipped: Vec<String>,
    /// Node starts after the first (restarts), and damaged logs found on recovery.
    pub restarts: usize,
    /// Recoveries that found a torn or corrupt record.
    pub damaged_recoveries: usize,
    /// Client operations by outcome: `invoke`, `ok`, `fail`, `info`.
    pub ops: BTreeMap<String, usize>,
    /// KV: the harness's final reads (operation events of the pseudo-client `final`).
    pub final_reads: usize,
    /// Liveness probe operations the harness invoked.
    pub probes: usize,
    /// Chat: messages delivered per server.
    pub delivered: BTreeMap<String, usize>,
    /// Nodes whose entry point returned an error, as `time node: error`.
    pub node_errors: Vec<String>,
}

impl Happened {
    /// Summarises a history.
    pub fn of(history: &[Entry]) -> Self {
        let mut h = Happened {
            events: history.len(),
            ..Default::default()
        };
        let mut leaders: BTreeMap<u64, String> = BTreeMap::new();
        let mut starts: BTreeMap<&str, usize> = BTreeMap::new();
        for entry in history {
            match &entry.what {
                What::Event { data } => match data {
                    NodeEvent::ElectionStarted { .. } => h.elections_started += 1,
                    NodeEvent::Role { role, term, .. } => {
                        h.max_term = h.max_term.max(*term);
                        if *role == Role::Leader {
                            leaders.entry(*term).or_insert_with(|| entry.node.clone());
                        }
                    }
                    NodeEvent::Delivered { .. } => {
                        *h.delivered.entry(entry.node.clone()).or_default() += 1;
                    }
                    NodeEvent::Started { damage, .. } => {
                        *starts.entry(&entry.node).or_default() += 1;
                        if damage.is_some() {
                            h.damaged_recoveries += 1;
                        }
                    }
                    _ => {}
                },
                What::Fault { fault } => {
                    let mut line = format!("{} {}", fmt_time(entry.t), fault.action);
                    for part in [&fault.node, &fault.from].into_iter().flatten() {
                        line.push(' ');
                        line.push_str(part);
                    }
                    if let Some(to) = &fault.to {
                        line.push_str(&format!("->{to}"));
                    }
                    if let Some(rate) = fault.rate {
                        line.push_str(&format!(" rate={rate}"));
                    }
                    if let Some([low, high]) = fault.range_ms {
                        line.push_str(&format!(" range={low}-{high}ms"));
                    }
                    if let Some(offset) = fault.offset_ms {
                        line.push_str(&format!(" offset={offset:+}ms"));
                    }
                    if let Some(drift) = fault.drift {
                        line.push_str(&format!(" drift={drift:+.3}"));
                    }
                    if let Some(mode) = &fault.mode {
                        line.push_str(&format!(" mode={mode}"));
                    }
                    if let Some(factor) = fault.factor {
                        line.push_str(&format!(" factor={factor}"));
                    }
                    if !fault.groups.is_empty() {
                        let groups: Vec<String> =
                            fault.groups.iter().map(|g| g.join(",")).collect();
                        line.push_str(&format!(" {}", groups.join(" | ")));
                    }
                    if let Some(effect) = &fault.effect {
                        line.push_str(&format!(" ({effect})"));
                    }
                    match &fault.skipped {
                        Some(why) => h.faults_skipped.push(format!("{line}: {why}")),
                        None => h.faults_applied.push(line),
                    }
                }
                What::Op { .. } if entry.node == crate::check::kv::FINAL => h.final_reads += 1,
                What::Op { op } if op.actor == Actor::Harness => {
                    if op.kind == OpType::Invoke {
                        h.probes += 1;
                    }
                }
                What::Op { op } => {
                    let kind = serde_json::to_value(op.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default();
                    *h.ops.entry(kind).or_default() += 1;
                }
                What::Error { message } => {
                    h.node_errors
                        .push(format!("{} {}: {message}", fmt_time(entry.t), entry.node))
                }
            }
        }
        h.leaders = leaders.iter().map(|(t, n)| format!("{t}:{n}")).collect();
        h.restarts = starts.values().map(|n| n.saturating_sub(1)).sum();
        h
    }
}

/// The shell command that reproduces a run.
pub fn reproduce_command(file: &str, seed: u64) -> String {
    format!("cargo run -p sim -- run {file} --seed {seed}")
}

impl RunReport {
    /// Builds the report of a finished run.
    pub fn new(
        scenario: &Scenario,
        file: &str,
        seed: u64,
        history: &[Entry],
        checks: Vec<CheckResult>,
        sim_ms: u64,
        wall_ms: u64,
    ) -> Self {
        let happened = Happened::of(history);
        let judged = judge(
            &scenario.expect.get_ref().clone(),
            &checks,
            &happened.node_errors,
        );
        RunReport {
            scenario: scenario.name.clone(),
            file: file.to_string(),
            seed,
            trace_hash: trace_hash(history),
            sim_ms,
            wall_ms,
            checks,
            expect: scenario.expect.get_ref().to_string(),
            outcome: judged.outcome.into(),
            verdict: if judged.ok { "pass" } else { "fail" }.into(),
            reason: judged.reason,
            happened,
            reproduce: reproduce_command(file, seed),
            error: None,
        }
    }

    /// The report of a run that crashed before producing a history.
    pub fn crashed(scenario: &Scenario, file: &str, seed: u64, error: String) -> Self {
        RunReport {
            scenario: scenario.name.clone(),
            file: file.to_string(),
            seed,
            trace_hash: String::new(),
            sim_ms: 0,
            wall_ms: 0,
            checks: Vec::new(),
            expect: scenario.expect.get_ref().to_string(),
            outcome: "crash".into(),
            verdict: "fail".into(),
            reason: "the run crashed before it finished".into(),
            happened: Happened::default(),
            reproduce: reproduce_command(file, seed),
            error: Some(error),
        }
    }

    /// True when the outcome matched the expectation.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }

    /// One JSON line.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The human-readable report.
    pub fn to_human(&self, scenario: &Scenario) -> String {
        let mut out = String::new();
        let push = |out: &mut String, line: String| {
            out.push_str(&line);
            out.push('\n');
        };
        push(
            &mut out,
            format!(
                "scenario {} ({}, {} servers, {} simulated) seed {}",
                self.scenario,
                scenario.system,
                scenario.server_count(),
                nodes::duration::format(scenario.duration.0),
                self.seed
            ),
        );
        if let Some(description) = &scenario.description {
            push(&mut out, format!("  {description}"));
        }
        if let Some(error) = &self.error {
            push(&mut out, format!("RUN CRASHED: {error}"));
        } else {
            let h = &self.happened;
            push(&mut out, "what happened:".into());
            if scenario.system == crate::scenario::System::Kv {
                push(
                    &mut out,
                    format!(
                        "  {} trace entries; {} final reads",
                        h.events, h.final_reads
                    ),
                );
            } else {
                push(
                    &mut out,
                    format!(
                        "  {} trace entries; {} elections started; leaders by term: {}; highest term {}",
                        h.events,
                        h.elections_started,
                        if h.leaders.is_empty() { "none".to_string() } else { h.leaders.join(" ") },
                        h.max_term
                    ),
                );
            }
            if !h.ops.is_empty() {
                let count = |k: &str| h.ops.get(k).copied().unwrap_or(0);
                push(
                    &mut out,
                    format!(
                        "  client operations: {} invoked, {} ok, {} failed, {} unknown (info)",
                        count("invoke"),
                        count("ok"),
                        count("fail"),
                        count("info")
                    ),
                );
            }
            if !h.delivered.is_empty() {
                let per_node: Vec<String> = h
                    .delivered
                    .iter()
                    .map(|(n, c)| format!("{n} {c}"))
                    .collect();
                push(
                    &mut out,
                    format!("  delivered per server: {}", per_node.join(", ")),
                );
            }
            if h.restarts > 0 || h.damaged_recoveries > 0 {
                push(
                    &mut out,
                    format!(
                        "  {} restarts, {} recoveries found a damaged log",
                        h.restarts, h.damaged_recoveries
                    ),
                );
            }
            if h.faults_applied.is_empty() && h.faults_skipped.is_empty() {
                push(&mut out, "  no faults".into());
            }
            for fault in &h.faults_applied {
                push(&mut out, format!("  fault {fault}"));
            }
            for fault in &h.faults_skipped {
                push(&mut out, format!("  fault SKIPPED {fault}"));
            }
            for error in &h.node_errors {
                push(&mut out, format!("  NODE ERROR {error}"));
            }
            push(&mut out, "checks:".into());
            for check in &self.checks {
                let mark = match (check.status, check.passed) {
                    (Status::Pass, _) => "ok  ",
                    (Status::Vacuous, true) => "vac ",
                    (Status::Vacuous, false) => "VAC!",
                    (Status::Violation, _) => "FAIL",
                };
                push(
                    &mut out,
                    format!("  {mark} {:<16} {}", check.kind, check.detail),
                );
            }
        }
        push(
            &mut out,
            format!(
                "outcome: {} (expected {}) => verdict {}",
                self.outcome,
                self.expect,
                self.verdict.to_uppercase()
            ),
        );
        if !self.passed() {
            push(&mut out, format!("why: {}", self.reason));
        }
        if !self.trace_hash.is_empty() {
            push(
                &mut out,
                format!(
                    "trace hash {}; {} ms simulated in {} ms wall",
                    self.trace_hash, self.sim_ms, self.wall_ms
                ),
            );
        }
        push(&mut out, format!("reproduce: {}", self.reproduce));
        out
    }
}

/// The outcome of a run's checks against its expectation.
struct Judged {
    outcome: &'static str,
    ok: bool,
    reason: String,
}

/// Judges the checks against `expect`: a disallowed vacuous check or a node error fails
/// the run whatever was expected; `Checks` wants exactly the named kinds violated.
fn judge(expect: &Expect, checks: &[CheckResult], node_errors: &[String]) -> Judged {
    let violated: Vec<&CheckResult> = checks
        .iter()
        .filter(|c| c.status == Status::Violation)
        .collect();
    let empty: Vec<&CheckResult> = checks
        .iter()
        .filter(|c| c.status == Status::Vacuous && !c.passed)
        .collect();
    let outcome = match (violated.is_empty(), empty.is_empty()) {
        (false, _) => "violation",
        (true, false) => "vacuous",
        (true, true) => "pass",
    };
    let names = |list: &[&CheckResult]| -> String {
        list.iter()
            .map(|c| c.kind.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let fail = |reason: String| Judged {
        outcome,
        ok: false,
        reason,
    };
    if let Some(error) = node_errors.first() {
        return fail(format!("a node's entry point returned an error: {error}"));
    }
    if let Some(check) = empty.first() {
        return fail(format!(
            "check {} had nothing to judge: {} (a check that judged nothing proves nothing; \
             add `allow_vacuous = true` to that [[check]] if this is expected)",
            check.kind, check.detail
        ));
    }
    match expect {
        Expect::Pass if violated.is_empty() => Judged {
            outcome,
            ok: true,
            reason: "every check passed, as expected".into(),
        },
        Expect::Pass => fail(format!(
            "expected every check to pass, but {} found a violation",
            names(&violated)
        )),
        Expect::Violation if violated.is_empty() => fail(
            "expected a violation, but every check passed (the failure this scenario shows did not happen)"
                .into(),
        ),
        Expect::Violation => Judged {
            outcome,
            ok: true,
            reason: format!("{} found the expected violation", names(&violated)),
        },
        Expect::Checks(kinds) => {
            let kind_of = |c: &&CheckResult| c.kind.clone();
            let wanted: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            let unexpected: Vec<&CheckResult> = violated
                .iter()
                .filter(|c| !wanted.contains(&c.kind.as_str()))
                .copied()
                .collect();
            let held: Vec<&CheckResult> = checks
                .iter()
                .filter(|c| wanted.contains(&c.kind.as_str()) && c.status != Status::Violation)
                .collect();
            if !unexpected.is_empty() {
                fail(format!(
                    "expected only {} to fail, but {} failed too",
                    wanted.join(", "),
                    names(&unexpected)
                ))
            } else if !held.is_empty() {
                fail(format!(
                    "expected {} to fail, but it held",
                    held.iter().map(kind_of).collect::<Vec<_>>().join(", ")
                ))
            } else {
                Judged {
                    outcome,
                    ok: true,
                    reason: format!("exactly the expected checks failed: {}", names(&violated)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(statuses: &[(&str, Status, bool)]) -> Vec<CheckResult> {
        statuses
            .iter()
            .map(|(kind, status, passed)| CheckResult {
                kind: kind.to_string(),
                status: *status,
                passed: *passed,
                detail: String::new(),
                evidence: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_node_that_could_not_run_fails_the_run_even_when_every_check_passes() {
        let history = vec![Entry {
            t: 5,
            node: "n2".into(),
            what: What::Error {
                message: "cannot bind 10.0.0.2:7000: address in use".into(),
            },
        }];
        let happened = Happened::of(&history);
        assert_eq!(happened.node_errors.len(), 1);
        let passing = checks(&[("total_order", Status::Pass, true)]);
        let judged = judge(&Expect::Pass, &passing, &happened.node_errors);
        assert!(!judged.ok);
        assert!(judged.reason.contains("n2"), "{}", judged.reason);
        assert!(judge(&Expect::Pass, &passing, &[]).ok);
    }

    #[test]
    fn a_disallowed_vacuous_check_fails_whatever_was_expected() {
        let list = checks(&[
            ("total_order", Status::Violation, false),
            ("delivered", Status::Vacuous, false),
        ]);
        assert!(!judge(&Expect::Violation, &list, &[]).ok);
        let allowed = checks(&[
            ("total_order", Status::Violation, false),
            ("delivered", Status::Vacuous, true),
        ]);
        assert!(judge(&Expect::Violation, &allowed, &[]).ok);
    }
}
