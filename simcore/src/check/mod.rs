//! Checkers: invariants judged on the recorded history alone.
//!
//! One file per family: [`election`] (who led when), [`chat`] (what was delivered where),
//! [`kv`] (what the final reads found), [`membership`] (whose views agree), [`linearizable`], [`liveness`] (did the probes
//! after the last fault get through), and the service clients got: [`latency`],
//! [`availability`], [`recovers`] (on [`operations`], the client operations paired). Each check returns a [`CheckResult`] in one of three
//! states — pass, violation, vacuous (nothing to judge) — whose `detail` is the minimal
//! evidence a person needs: the two leaders of one term, the instant two servers both
//! believed they led, the probe still pending; or, when it passes, what it judged.

pub mod availability;
pub mod chat;
pub mod election;
pub mod kv;
pub mod latency;
pub mod linearizable;
pub mod liveness;
pub mod membership;
pub mod operations;
pub mod recovers;
pub mod roles;
pub mod view;

use crate::history::Entry;
use crate::scenario::{CheckKind, Scenario, DEFAULT_PERCENTILE};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The three states a check ends in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// The invariant held, and there was something to judge.
    Pass,
    /// The invariant was broken; `detail` has the evidence.
    Violation,
    /// Nothing to judge (nothing delivered, no write acknowledged, never a leader, no
    /// probe possible): fails the run unless the check says `allow_vacuous = true`.
    Vacuous,
}

/// The verdict of one check on one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name (`election_safety`, ...).
    pub kind: String,
    /// Pass, violation or vacuous.
    pub status: Status,
    /// Whether the check counts as passed: `pass`, or `vacuous` when allowed.
    pub passed: bool,
    /// Evidence of the violation, what the check saw when it passed, or why there was
    /// nothing to judge.
    pub detail: String,
    /// The history entries the evidence of a violation names, each with its part in it
    /// (what a picture of the run highlights; empty when the check names none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<Cited>,
}

/// One history entry cited as evidence: its index in the history (the trace's line, from
/// 0) and its part in the violation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cited {
    /// Index of the entry in the history.
    pub entry: usize,
    /// Its part: `lost write`, `overwriting write`, `final read`, `slowest`, ...
    pub role: String,
}

impl Cited {
    /// Entry `entry` in the part `role`.
    pub fn new(entry: usize, role: &str) -> Self {
        Cited {
            entry,
            role: role.to_string(),
        }
    }
}

impl CheckResult {
    fn with(kind: CheckKind, status: Status, detail: impl Into<String>) -> Self {
        CheckResult {
            kind: kind.name().to_string(),
            status,
            passed: status == Status::Pass,
            detail: detail.into(),
            evidence: Vec::new(),
        }
    }

    /// The same result citing `evidence` (history entries and their parts).
    pub fn citing(mut self, evidence: Vec<Cited>) -> Self {
        self.evidence = evidence;
        self
    }

    /// The invariant held; `detail` says what was judged.
    pub fn pass(kind: CheckKind, detail: impl Into<String>) -> Self {
        Self::with(kind, Status::Pass, detail)
    }

    /// The invariant broke; `detail` is the evidence.
    pub fn violation(kind: CheckKind, detail: impl Into<String>) -> Self {
        Self::with(kind, Status::Violation, detail)
    }

    /// There was nothing to judge; `detail` says why.
    pub fn vacuous(kind: CheckKind, detail: impl Into<String>) -> Self {
        Self::with(kind, Status::Vacuous, detail)
    }

    /// Pass or violation by `held`.
    fn new(kind: CheckKind, held: bool, detail: impl Into<String>) -> Self {
        if held {
            Self::pass(kind, detail)
        } else {
            Self::violation(kind, detail)
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
            let within = |default| check.within.as_ref().map_or(default, |w| w.get_ref().0);
            let clients = check.client_filter();
            // Validation makes `min` and `max` present where they are required.
            let min = check.min.as_ref().map_or(1.0, |m| *m.get_ref());
            let mut result = match check.kind {
                CheckKind::ElectionSafety => election::election_safety(history),
                CheckKind::SingleLeader => election::single_leader(history, end),
                CheckKind::LeaderElected => {
                    election::leader_elected(history, end, within(election::DEFAULT_WITHIN))
                }
                CheckKind::TotalOrder => chat::total_order(history),
                CheckKind::Delivered => chat::delivered(history),
                CheckKind::Linearizable => linearizable::linearizable(history),
                CheckKind::Converged => kv::converged(history),
                CheckKind::NoLostWrites => kv::no_lost_writes(history),
                CheckKind::Liveness => liveness::liveness(
                    history,
                    scenario.system,
                    check.after.as_ref().map(|a| a.get_ref().0),
                    within(crate::probe::DEFAULT_WITHIN),
                ),
                CheckKind::Latency => latency::latency(
                    history,
                    check.max.as_ref().map_or(Duration::ZERO, |m| m.get_ref().0),
                    check
                        .percentile
                        .as_ref()
                        .map_or(DEFAULT_PERCENTILE, |p| *p.get_ref()),
                    check.invoked_range(),
                    clients.as_deref(),
                ),
                CheckKind::Availability => availability::availability(
                    history,
                    min,
                    check.invoked_range(),
                    clients.as_deref(),
                    check.window_length(),
                ),
                CheckKind::MembershipConverged => membership::membership_converged(
                    history,
                    end,
                    within(membership::DEFAULT_WITHIN),
                    check.max_false_downs.as_ref().map(|m| *m.get_ref()),
                ),
                CheckKind::Recovers => recovers::recovers(
                    history,
                    min,
                    within(Duration::ZERO),
                    check.window_length(),
                    clients.as_deref(),
                ),
            };
            if result.status == Status::Vacuous && check.allow_vacuous {
                result.passed = true;
            }
            result
        })
        .collect()
}
