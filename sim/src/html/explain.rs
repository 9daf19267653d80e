//! The violation panel: for each failed check, its evidence, a plain-language story in the
//! "Let … Then … However …" style, and the history entries the page highlights when a
//! person follows the panel's link. The entries are found in the typed history (role and
//! delivery events, operations), never by reading the checker's text.

use super::data::Page;
use crate::check::{CheckResult, Status};
use crate::history::{fmt_time, Actor, Entry, OpType, What};
use nodes::runtime::{NodeEvent, Role};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One check as the panel shows it.
#[derive(Clone, Debug, Serialize)]
pub struct Panel {
    /// Check kind.
    pub kind: String,
    /// `pass`, `violation` or `vacuous`.
    pub status: String,
    /// The checker's evidence.
    pub detail: String,
    /// Let / Then / However, for failed checks.
    pub story: Vec<String>,
    /// History entries involved (highlighted by the link).
    pub entries: Vec<usize>,
    /// Time window to show, ns.
    pub from: u64,
    /// End of the window, ns.
    pub to: u64,
}

/// What each property asks, for the "Let" of a story without specific evidence.
fn property(kind: &str) -> &'static str {
    match kind {
        "single_leader" => "at most one server act as leader at any instant",
        "election_safety" => "every term have at most one leader",
        "leader_elected" => {
            "a live leader that every live, connected server agrees on exist after the last fault"
        }
        "total_order" => "every server deliver a prefix of one and the same sequence",
        "delivered" => "every message acknowledged to a client be delivered by every live server",
        "converged" => "the live replicas of every key agree on its value by the end",
        "no_lost_writes" => "no acknowledged write be overwritten by a write it causally follows",
        "linearizable" => {
            "every operation appear to take effect at one instant between its call and its return"
        }
        "liveness" => "every probe sent after the last fault be acknowledged and seen everywhere",
        "latency" => "acknowledged operations answer within the bound at the percentile",
        "availability" => "enough of the operations invoked be acknowledged",
        "recovers" => "every window after the trigger is gone have enough availability",
        _ => "the property of this check hold",
    }
}

/// Panels for every check of a run, failed ones with stories and highlighted entries.
pub fn panels(checks: &[CheckResult], history: &[Entry], page: &Page) -> Vec<Panel> {
    checks
        .iter()
        .map(|check| {
            let status = match check.status {
                Status::Pass => "pass",
                Status::Violation => "violation",
                Status::Vacuous => "vacuous",
            };
            let mut panel = Panel {
                kind: check.kind.clone(),
                status: status.to_string(),
                detail: check.detail.clone(),
                story: Vec::new(),
                entries: Vec::new(),
                from: 0,
                to: page.end,
            };
            match check.status {
                Status::Violation => explain(&mut panel, history, page),
                Status::Vacuous => {
                    panel.story = vec![
                        format!("Let {}.", property(&check.kind)),
                        format!("Then the run gave it nothing to judge: {}", check.detail),
                        "However a check that judged nothing proves nothing, so it fails unless \
                         the scenario allows it (allow_vacuous)."
                            .into(),
                    ];
                }
                Status::Pass => {}
            }
            panel
        })
        .collect()
}

fn explain(panel: &mut Panel, history: &[Entry], page: &Page) {
    let specific = match panel.kind.as_str() {
        "single_leader" => two_leaders(panel, history, page),
        "election_safety" => one_term_two_leaders(panel, history),
        "total_order" => disagreement(panel, history),
        _ => false,
    };
    if !specific {
        generic(panel, history);
    }
}

fn window(panel: &mut Panel, history: &[Entry]) {
    let times: Vec<u64> = panel
        .entries
        .iter()
        .filter_map(|&i| Some(history.get(i)?.t))
        .collect();
    if let (Some(lo), Some(hi)) = (times.iter().min(), times.iter().max()) {
        let pad = ((hi - lo) / 5).max(500_000_000);
        panel.from = lo.saturating_sub(pad);
        panel.to = hi + pad;
    }
}

/// single_leader: the first interval with two acting leaders, and the role events that
/// made each of them leader.
fn two_leaders(panel: &mut Panel, history: &[Entry], page: &Page) -> bool {
    let Some((from, to, lanes)) = page.two_leaders.first() else {
        return false;
    };
    let names: Vec<&str> = lanes.iter().map(|&l| page.lanes[l].name.as_str()).collect();
    // The latest role event at or before `from` of each leader: what made it leader.
    let mut made = Vec::new();
    for name in &names {
        let found = history.iter().enumerate().rev().find(|(_, e)| {
            e.t <= *from
                && e.node == *name
                && matches!(
                    e.what,
                    What::Event {
                        data: NodeEvent::Role {
                            role: Role::Leader,
                            ..
                        }
                    }
                )
        });
        if let Some((i, e)) = found {
            if let What::Event {
                data: NodeEvent::Role { term, .. },
            } = &e.what
            {
                made.push((i, e.t, name.to_string(), *term));
            }
        }
    }
    made.sort_by_key(|m| m.1);
    if made.len() < 2 {
        return false;
    }
    let (first, second) = (&made[0], &made[made.len() - 1]);
    panel.story = vec![
        format!(
            "Let {} become leader of term {} at {}.",
            first.2,
            first.3,
            fmt_time(first.1)
        ),
        format!(
            "Then {} became leader of term {} at {}, while {} still believed it led.",
            second.2,
            second.3,
            fmt_time(second.1),
            first.2
        ),
        format!(
            "However at most one server may act as leader at any instant: from {} to {} ({} ms) \
             clients could be served by two leaders ({}), and each could accept writes the \
             other never sees.",
            fmt_time(*from),
            fmt_time(*to),
            (to - from) / 1_000_000,
            names.join(" and ")
        ),
    ];
    panel.entries = made.iter().map(|m| m.0).collect();
    window(panel, history);
    panel.from = panel.from.min(from.saturating_sub(500_000_000));
    panel.to = panel.to.max(to + 500_000_000);
    true
}

/// election_safety: the first term that two servers both led.
fn one_term_two_leaders(panel: &mut Panel, history: &[Entry]) -> bool {
    let mut by_term: BTreeMap<u64, BTreeMap<String, usize>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if let What::Event {
            data:
                NodeEvent::Role {
                    role: Role::Leader,
                    term,
                    ..
                },
        } = &e.what
        {
            by_term
                .entry(*term)
                .or_default()
                .entry(e.node.clone())
                .or_insert(i);
        }
    }
    let Some((term, leaders)) = by_term.into_iter().find(|(_, l)| l.len() >= 2) else {
        return false;
    };
    let names: Vec<&String> = leaders.keys().collect();
    let at = |i: usize| fmt_time(history[i].t);
    let firsts: Vec<String> = leaders
        .iter()
        .map(|(n, &i)| format!("{n} at {}", at(i)))
        .collect();
    panel.story =
        vec![
            format!("Let a term be an epoch that at most one server may lead: term {term}."),
            format!(
                "Then {} each became its leader ({}).",
                names.len(),
                firsts.join(", ")
            ),
            format!(
            "However two leaders of one term means votes or promises were given twice: {} could \
             each be obeyed as the rightful leader of term {term}.",
            names.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" and ")
        ),
        ];
    panel.entries = leaders.values().copied().collect();
    window(panel, history);
    true
}

/// total_order: the first position where two servers delivered different messages.
fn disagreement(panel: &mut Panel, history: &[Entry]) -> bool {
    let mut at: BTreeMap<u64, BTreeMap<String, Vec<(String, usize)>>> = BTreeMap::new();
    for (i, e) in history.iter().enumerate() {
        if let What::Event {
            data: NodeEvent::Delivered { seq, id, .. },
        } = &e.what
        {
            at.entry(*seq)
                .or_default()
                .entry(id.clone())
                .or_default()
                .push((e.node.clone(), i));
        }
    }
    let Some((seq, ids)) = at.into_iter().find(|(_, ids)| ids.len() >= 2) else {
        return false;
    };
    let mut groups = ids.into_iter();
    let (Some((id_a, a)), Some((id_b, b))) = (groups.next(), groups.next()) else {
        return false;
    };
    let who = |list: &[(String, usize)]| {
        let names: BTreeSet<&str> = list.iter().map(|(n, _)| n.as_str()).collect();
        names.into_iter().collect::<Vec<_>>().join(",")
    };
    panel.story = vec![
        format!("Let {} deliver {id_a} at position {seq}.", who(&a)),
        format!(
            "Then {} delivered {id_b} at the same position {seq}.",
            who(&b)
        ),
        "However total order means every server delivers one and the same sequence: readers \
         of different servers now see different histories, and no later delivery can repair \
         that."
            .into(),
    ];
    panel.entries = a.iter().chain(b.iter()).map(|(_, i)| *i).collect();
    window(panel, history);
    true
}

/// Any other check: its evidence, and the operations that did not end well (for KV and
/// overload checks) or the harness's probes and final reads.
fn generic(panel: &mut Panel, history: &[Entry]) {
    let harness_only = matches!(
        panel.kind.as_str(),
        "liveness" | "converged" | "no_lost_writes"
    );
    let mut invokes: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut involved = Vec::new();
    for (i, e) in history.iter().enumerate() {
        let What::Op { op } = &e.what else { continue };
        if harness_only != (op.actor == Actor::Harness) {
            continue;
        }
        match op.kind {
            OpType::Invoke => {
                invokes.insert((e.node.clone(), op.id), i);
            }
            OpType::Ok if !harness_only => {}
            _ => {
                if let Some(&start) = invokes.get(&(e.node.clone(), op.id)) {
                    involved.push(start);
                }
                involved.push(i);
            }
        }
    }
    involved.truncate(200);
    panel.story = vec![
        format!("Let {}.", property(&panel.kind)),
        format!("Then the run showed: {}", panel.detail),
        "However that contradicts the property; the highlighted operations are the ones the \
         check could not accept or could not complete."
            .into(),
    ];
    panel.entries = involved;
    window(panel, history);
}
