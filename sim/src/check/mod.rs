//! Checkers: invariants judged on the recorded history alone.
//!
//! One file per family: [`election`] (who led when), [`chat`] (what was delivered where). Each check returns a
//! [`CheckResult`] whose `detail` is the minimal evidence a person needs — the two
//! leaders of one term, the instant two servers both believed they led — or, when it
//! passes, what it saw, so a vacuous pass shows.

pub mod chat;
pub mod election;
pub mod kv;
pub mod linearizable;
pub mod view;

use crate::history::Entry;
use crate::scenario::{CheckKind, Scenario};
use serde::Serialize;

/// The verdict of one check on one run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CheckResult {
    /// The check's name (`election_safety`, ...).
    pub kind: String,
    /// Whether the invariant held.
    pub passed: bool,
    /// Evidence of the violation, or what the check saw when it passed.
    pub detail: String,
}

impl CheckResult {
    fn new(kind: CheckKind, passed: bool, detail: impl Into<String>) -> Self {
        CheckResult {
            kind: kind.name().to_string(),
            passed,
            detail: detail.into(),
        }
    }
}

/// Runs every check the scenario lists, in order.
pub fn run_all(scenario: &Scenario, history: &[Entry]) -> Vec<CheckResult> {
    let end = scenario.duration.0.as_nanos() as u64;
    scenario
        .checks
        .iter()
        .map(|check| {
            let check = check.get_ref();
            match check.kind {
                CheckKind::ElectionSafety => election::election_safety(history),
                CheckKind::SingleLeader => election::single_leader(history, end),
                CheckKind::LeaderElected => {
                    let within = check
                        .within
                        .as_ref()
                        .map_or(election::DEFAULT_WITHIN, |w| w.get_ref().0);
                    election::leader_elected(history, end, within)
                }
                CheckKind::TotalOrder => chat::total_order(history),
                CheckKind::Delivered => chat::delivered(history),
                CheckKind::Linearizable => linearizable::linearizable(history),
                CheckKind::Converged => kv::converged(history),
                CheckKind::NoLostWrites => kv::no_lost_writes(history),
            }
        })
        .collect()
}
