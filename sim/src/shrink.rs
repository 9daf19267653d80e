//! Shrinking a failing run to a small scenario file a person can read and commit.
//!
//! The failing run's concrete fault timeline (scripted faults plus the nemesis's draws for
//! that seed) becomes an explicit `[[fault]]` list; delta debugging (Zeller's ddmin, then
//! single removals) drops every fault the failure does not need; then the run is shortened
//! and the workload thinned while the *same check* keeps failing at the same seed. The
//! result is written with a header naming the original scenario, seed and check, and run
//! once more to confirm it replays the same run (same trace hash) and fails the same way.
//!
//! Exactness: before minimizing, every `random` node selector is replaced by the node the
//! failing run chose, and each fault keeps its identity (`id`) and so its own random
//! stream ([`crate::harness::fault_stream`]): dropping one fault never changes the draws
//! of another. Durations are written to the nanosecond and floats in full, so the file
//! is the schedule that was run, not an approximation of it.

use crate::fuzz::headline;
use crate::harness::fault_timeline;
use crate::history::{trace_hash, Entry, What};
use crate::run::run_scenario;
use crate::scenario::{self, Dur, Fault, Scenario};
use crate::scenario_toml::to_toml;
use std::time::Duration;
use toml::Spanned;

/// What shrinking produced.
pub struct Shrunk {
    /// The minimal scenario.
    pub scenario: Scenario,
    /// It as a scenario file.
    pub text: String,
    /// The check that fails (or `crash`).
    pub check: String,
    /// Its evidence in the minimal run.
    pub evidence: String,
    /// Faults in the original timeline and in the minimal one.
    pub faults_before: usize,
    /// Faults left.
    pub faults_after: usize,
    /// Simulation runs the shrink took (confirmation included).
    pub runs: usize,
    /// Trace hash of the minimal run, which the written file replays.
    pub trace_hash: String,
}

struct Target<'a> {
    file: &'a str,
    seed: u64,
    check: String,
    runs: usize,
}

impl Target<'_> {
    /// Runs a candidate; true when the same check still fails.
    fn fails(&mut self, candidate: &Scenario) -> bool {
        self.runs += 1;
        match run_scenario(candidate, self.file, self.seed) {
            Ok(finished) => failing_check(&finished.report).as_deref() == Some(self.check.as_str()),
            Err(_) => false,
        }
    }
}

fn failing_check(report: &crate::report::RunReport) -> Option<String> {
    if report.error.is_some() {
        return Some("crash".into());
    }
    report
        .checks
        .iter()
        .find(|c| !c.passed)
        .map(|c| c.kind.clone())
}

fn with_faults(base: &Scenario, faults: &[Fault]) -> Scenario {
    let mut s = base.clone();
    s.faults = faults
        .iter()
        .cloned()
        .map(|f| Spanned::new(0..0, f))
        .collect();
    s
}

/// Shrinks the failing run of `scenario` at `seed`.
pub fn shrink(original: &Scenario, file: &str, seed: u64) -> Result<Shrunk, String> {
    let first = run_scenario(original, file, seed)?;
    if first.report.passed() {
        return Err(format!(
            "seed {seed} does not fail: verdict pass; nothing to shrink"
        ));
    }
    let Some(check) = failing_check(&first.report) else {
        return Err(format!(
            "seed {seed} fails because the expected violation did not happen; shrinking needs a failing check"
        ));
    };
    let mut target = Target {
        file,
        seed,
        check,
        runs: 1,
    };
    let timeline = concrete(fault_timeline(original, seed), &first.history);
    let faults_before = timeline.len();
    let mut base = original.clone();
    base.nemesis = None;
    base.seed = Some(seed);
    base.name = format!("{}-shrunk-seed{seed}", original.name);
    if !target.fails(&with_faults(&base, &timeline)) {
        return Err(
            "the explicit fault timeline does not reproduce the failure (a determinism bug?)"
                .into(),
        );
    }
    let faults = minimize(timeline, |faults| target.fails(&with_faults(&base, faults)));
    base = with_faults(&base, &faults);
    shorten(&mut base, &mut target);
    thin_workload(&mut base, &mut target);
    let header = vec![
        format!(
            "Shrunk by `sim shrink` from {} (scenario {}), seed {seed}.",
            file, original.name
        ),
        format!(
            "Check `{}` still fails with {} of the original {} faults; {} runs.",
            target.check,
            faults.len(),
            faults_before,
            target.runs + 1
        ),
        format!("Reproduce: cargo run -p sim -- run <this file> --seed {seed}"),
    ];
    let text = to_toml(&base, &header);
    let reparsed = scenario::parse("<shrunk>", &text)
        .map_err(|e| format!("the shrunk file does not parse: {e}"))?;
    target.runs += 2;
    let minimal = run_scenario(&base, file, seed)?;
    let confirm = run_scenario(&reparsed, file, seed)?;
    if trace_hash(&confirm.history) != trace_hash(&minimal.history) {
        return Err(format!(
            "the written file does not replay the minimal run (trace {} instead of {}; please report this)",
            trace_hash(&confirm.history),
            trace_hash(&minimal.history)
        ));
    }
    if failing_check(&confirm.report).as_deref() != Some(target.check.as_str()) {
        return Err("the written file does not fail the same way (please report this)".into());
    }
    Ok(Shrunk {
        scenario: reparsed,
        text,
        evidence: headline(&confirm.report),
        check: target.check,
        faults_before,
        faults_after: faults.len(),
        runs: target.runs,
        trace_hash: trace_hash(&minimal.history),
    })
}

/// The timeline with every `random` node replaced by the node `history` (the run of this
/// very timeline) applied it to, so a shrunk fault keeps its target whatever is dropped
/// around it. The harness records exactly one fault entry per timeline fault, in order.
fn concrete(mut timeline: Vec<Fault>, history: &[Entry]) -> Vec<Fault> {
    let applied = history.iter().filter_map(|e| match &e.what {
        What::Fault { fault } => Some(fault),
        _ => None,
    });
    for (fault, applied) in timeline.iter_mut().zip(applied) {
        let random = fault.node.as_ref().is_some_and(|n| n.get_ref() == "random");
        if let (true, None, Some(node)) = (random, &applied.skipped, &applied.node) {
            fault.node = Some(Spanned::new(0..0, node.clone()));
        }
    }
    timeline
}

/// ddmin: remove chunks of decreasing size while `fails` holds, then single faults.
fn minimize(mut faults: Vec<Fault>, mut fails: impl FnMut(&[Fault]) -> bool) -> Vec<Fault> {
    let mut chunks = 2usize;
    while faults.len() >= 2 {
        let size = faults.len().div_ceil(chunks);
        let mut removed = false;
        for start in (0..faults.len()).step_by(size) {
            let candidate: Vec<Fault> = faults
                .iter()
                .enumerate()
                .filter(|(i, _)| *i < start || *i >= start + size)
                .map(|(_, f)| f.clone())
                .collect();
            if fails(&candidate) {
                faults = candidate;
                chunks = (chunks - 1).max(2);
                removed = true;
                break;
            }
        }
        if !removed {
            if chunks >= faults.len() {
                break;
            }
            chunks = (chunks * 2).min(faults.len());
        }
    }
    let mut i = 0;
    while i < faults.len() {
        let mut candidate = faults.clone();
        candidate.remove(i);
        if fails(&candidate) {
            faults = candidate;
        } else {
            i += 1;
        }
    }
    faults
}

/// Cuts the run's duration by quarters while the failure persists (never before the
/// last fault plus a second).
fn shorten(s: &mut Scenario, target: &mut Target<'_>) {
    let last_fault = s
        .faults
        .iter()
        .map(|f| f.get_ref().at.0)
        .max()
        .unwrap_or_default();
    let floor = last_fault + Duration::from_secs(1);
    loop {
        let shorter = s.duration.0.mul_f64(0.75).max(floor);
        if shorter >= s.duration.0 {
            return;
        }
        let mut candidate = s.clone();
        candidate.duration = Dur(shorter);
        if let Some(w) = candidate.workload.as_mut() {
            if let Some(stop) = w.stop.as_mut() {
                if stop.get_ref().0 > shorter {
                    *stop = Spanned::new(0..0, Dur(shorter));
                }
            }
        }
        if candidate
            .checks
            .iter()
            .any(|c| c.get_ref().within.is_some())
        {
            return; // a deadline check's meaning depends on the run's end
        }
        if !target.fails(&candidate) {
            return;
        }
        *s = candidate;
    }
}

/// Fewer clients, then fewer operations, while the failure persists.
fn thin_workload(s: &mut Scenario, target: &mut Target<'_>) {
    loop {
        let Some(w) = s.workload.as_ref() else { return };
        let clients = *w.clients.get_ref();
        if clients <= 1 {
            break;
        }
        let mut candidate = s.clone();
        if let Some(w) = candidate.workload.as_mut() {
            let fewer = clients - 1;
            // Keep each remaining client's pace: the aggregate rate and total ops shrink too.
            w.ops = w.ops * fewer / clients;
            w.rate = scenario::Rate(w.rate.0 * fewer as f64 / clients as f64);
            w.clients = Spanned::new(0..0, fewer);
        }
        if !target.fails(&candidate) {
            break;
        }
        *s = candidate;
    }
    loop {
        let Some(w) = s.workload.as_ref() else { return };
        if w.ops < 2 {
            return;
        }
        let mut candidate = s.clone();
        if let Some(w) = candidate.workload.as_mut() {
            w.ops /= 2;
        }
        if !target.fails(&candidate) {
            return;
        }
        *s = candidate;
    }
}
