//! Election invariants: who believed they led, when, in which term.
//!
//! - `election_safety`: at most one leader per term, ever (Raft's Election Safety).
//! - `single_leader`: no two servers believe themselves leader at the same simulated
//!   instant. A paused node's beliefs are frozen with it; after it resumes, its old leader
//!   belief counts again from the first moment it acts on it (sends heartbeats or sequences
//!   a message as leader),
//!   and not at all if it steps down first — which is what a lease makes it do.
//! - `leader_elected`: within a deadline after the last fault there is a live leader that
//!   every live server connected to it agrees on — a majority of the live servers, not a
//!   leader alone in a minority — and it stays so to the end.

use super::roles::{agreed_leader, Replay};
use super::CheckResult;
use crate::history::{fmt_time, Entry, What};
use crate::scenario::CheckKind;
use nodes::runtime::{NodeEvent, Role};
use std::collections::BTreeMap;
use std::time::Duration;

/// `leader_elected` deadline when the scenario gives no `within`.
pub const DEFAULT_WITHIN: Duration = Duration::from_secs(10);

/// At most one leader per term.
pub fn election_safety(history: &[Entry]) -> CheckResult {
    let mut first: BTreeMap<u64, (&str, u64)> = BTreeMap::new();
    let mut violations = Vec::new();
    for entry in history {
        if let What::Event {
            data:
                NodeEvent::Role {
                    role: Role::Leader,
                    term,
                    ..
                },
        } = &entry.what
        {
            match first.get(term) {
                None => {
                    first.insert(*term, (&entry.node, entry.t));
                }
                Some(&(other, since)) if other != entry.node => violations.push(format!(
                    "term {term} has two leaders: {other} (from {}) and {} (from {})",
                    fmt_time(since),
                    entry.node,
                    fmt_time(entry.t)
                )),
                Some(_) => {}
            }
        }
    }
    if let Some(first_violation) = violations.first() {
        let more = match violations.len() {
            1 => String::new(),
            n => format!(" (and {} more terms)", n - 1),
        };
        return CheckResult::violation(
            CheckKind::ElectionSafety,
            format!("{first_violation}{more}"),
        );
    }
    let terms: Vec<String> = first
        .iter()
        .map(|(term, (node, _))| format!("{term}:{node}"))
        .collect();
    if terms.is_empty() {
        return CheckResult::vacuous(
            CheckKind::ElectionSafety,
            "no leader was ever elected: no term to judge",
        );
    }
    CheckResult::pass(
        CheckKind::ElectionSafety,
        format!(
            "{} terms, one leader each (term:leader {})",
            terms.len(),
            terms.join(" ")
        ),
    )
}

/// No two servers believe they lead at the same instant.
pub fn single_leader(history: &[Entry], end: u64) -> CheckResult {
    let mut replay = Replay::new(history);
    let mut open: Option<(u64, Vec<(String, u64)>)> = None;
    // (from, to, the leaders and their terms)
    type Overlap = (u64, u64, Vec<(String, u64)>);
    let mut overlaps: Vec<Overlap> = Vec::new();
    let mut ever_led = false;
    while let Some(t) = replay.next_instant() {
        let leaders = replay.acting_leaders();
        ever_led |= !leaders.is_empty();
        match (&open, leaders.len() >= 2) {
            (None, true) => open = Some((t, leaders)),
            (Some(_), false) => {
                if let Some((start, who)) = open.take() {
                    overlaps.push((start, t, who));
                }
            }
            _ => {}
        }
    }
    if let Some((start, who)) = open.take() {
        overlaps.push((start, end.max(start), who));
    }
    let Some((start, stop, who)) = overlaps.first() else {
        if !ever_led {
            return CheckResult::vacuous(
                CheckKind::SingleLeader,
                "no server ever acted as leader: no instant to judge",
            );
        }
        return CheckResult::pass(
            CheckKind::SingleLeader,
            "never two acting leaders at the same instant",
        );
    };
    let names: Vec<String> = who
        .iter()
        .map(|(n, term)| format!("{n} (term {term})"))
        .collect();
    let total: u64 = overlaps.iter().map(|(a, b, _)| b - a).sum();
    let mut detail = format!(
        "{} both believed they led from {} to {} ({} ms)",
        names.join(" and "),
        fmt_time(*start),
        fmt_time(*stop),
        (stop - start) / 1_000_000
    );
    if overlaps.len() > 1 {
        detail.push_str(&format!(
            "; {} overlaps in all, {} ms in total",
            overlaps.len(),
            total / 1_000_000
        ));
    }
    CheckResult::violation(CheckKind::SingleLeader, detail)
}

/// Within `within` of the last fault, a live leader all connected live servers agree on,
/// holding to the end.
pub fn leader_elected(history: &[Entry], end: u64, within: Duration) -> CheckResult {
    let last_fault = history
        .iter()
        .filter(|e| matches!(e.what, What::Fault { .. }))
        .map(|e| e.t)
        .max()
        .unwrap_or(0);
    let deadline = last_fault + within.as_nanos() as u64;
    let mut replay = Replay::new(history);
    // Start of the current stretch in which an agreed leader exists, and who it is.
    let mut stretch: Option<(u64, String, u64)> = None;
    let mut last_state = String::new();
    while let Some(t) = replay.next_instant() {
        let agreed = agreed_leader(&replay);
        stretch = match (stretch, agreed) {
            (Some(s), Some((leader, term))) if s.1 == leader && s.2 == term => Some(s),
            (_, Some((leader, term))) => Some((t, leader, term)),
            (_, None) => None,
        };
        last_state = replay
            .servers()
            .iter()
            .map(|s| replay.describe(s))
            .collect::<Vec<_>>()
            .join("; ");
    }
    let after = if last_fault == 0 {
        "the start".to_string()
    } else {
        format!("the last fault at {}", fmt_time(last_fault))
    };
    match stretch {
        None => CheckResult::new(
            CheckKind::LeaderElected,
            false,
            format!(
                "no agreed live leader at the end ({}): {last_state}",
                fmt_time(end)
            ),
        ),
        Some((since, leader, term)) if since > deadline => CheckResult::new(
            CheckKind::LeaderElected,
            false,
            format!(
                "{leader} (term {term}) became the agreed leader only at {}, {} ms after {after}; \
                 the deadline was {} ms",
                fmt_time(since),
                (since - last_fault) / 1_000_000,
                within.as_millis()
            ),
        ),
        Some((since, leader, term)) => CheckResult::new(
            CheckKind::LeaderElected,
            true,
            format!(
                "{leader} leads term {term}, agreed from {} ({} ms after {after}) to the end",
                fmt_time(since),
                since.saturating_sub(last_fault) / 1_000_000
            ),
        ),
    }
}
