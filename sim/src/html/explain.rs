//! The violation panel: for each failed check, its evidence, a plain-language story in the
//! "Let … Then … However …" style, and the history entries the page highlights when a
//! person follows the panel's link. The entries are the ones the check cites
//! ([`CheckResult::evidence`]: the KV and service checks), or are found in the typed
//! history (role and delivery events, for the election and chat checks) — never by
//! reading the checker's text.

use super::data::Page;
use crate::check::{CheckResult, Cited, Status};
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
                Status::Violation => explain(&mut panel, check, history, page),
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

fn explain(panel: &mut Panel, check: &CheckResult, history: &[Entry], page: &Page) {
    let specific = match panel.kind.as_str() {
        "single_leader" => two_leaders(panel, history, page),
        "election_safety" => one_term_two_leaders(panel, history),
        "total_order" => disagreement(panel, history),
        _ if !check.evidence.is_empty() => cited(panel, &check.evidence, history),
        _ => false,
    };
    if !specific {
        generic(panel, history);
    }
}

/// An operation entry for people: "c2 put k3 = c2-17 ok at 12.345s via n1 (detail)".
fn op_text(history: &[Entry], entry: usize) -> String {
    let Some(e) = history.get(entry) else {
        return format!("entry {entry}");
    };
    let What::Op { op } = &e.what else {
        return format!("{} at {}", e.node, fmt_time(e.t));
    };
    let mut text = format!("{} {}", e.node, op.f);
    if let Some(key) = &op.key {
        text.push_str(&format!(" {key}"));
    }
    if let Some(value) = op.value_str() {
        text.push_str(&format!(" = {value}"));
    }
    let kind = match op.kind {
        OpType::Invoke => "invoked",
        OpType::Ok => "ok",
        OpType::Fail => "failed",
        OpType::Info => "unknown outcome",
    };
    text.push_str(&format!(" {kind} at {}", fmt_time(e.t)));
    if let Some(server) = &op.server {
        text.push_str(&format!(" via {server}"));
    }
    if let Some(detail) = &op.detail {
        text.push_str(&format!(" ({detail})"));
    }
    text
}

/// The cited entries in the part `role`, in history order.
fn with_role<'a>(evidence: &'a [Cited], role: &'a str) -> impl Iterator<Item = usize> + 'a {
    evidence
        .iter()
        .filter(move |c| c.role == role)
        .map(|c| c.entry)
}

/// The completion among cited entries of one operation (the last one), else the first.
fn completion(history: &[Entry], entries: &[usize]) -> Option<usize> {
    entries
        .iter()
        .rev()
        .find(|&&i| {
            matches!(history.get(i).map(|e| &e.what), Some(What::Op { op }) if op.kind != OpType::Invoke)
        })
        .or(entries.first())
        .copied()
}

/// A check that cites its evidence (the KV and service checks): the story told from the
/// cited entries and their parts, and exactly those entries highlighted.
fn cited(panel: &mut Panel, evidence: &[Cited], history: &[Entry]) -> bool {
    let role = |r: &str| with_role(evidence, r).collect::<Vec<_>>();
    let texts = |entries: &[usize], most: usize| {
        let mut ends: Vec<String> = entries
            .iter()
            .filter(|&&i| {
                matches!(history.get(i).map(|e| &e.what), Some(What::Op { op }) if op.kind != OpType::Invoke)
            })
            .take(most)
            .map(|&i| op_text(history, i))
            .collect();
        if ends.is_empty() {
            ends = entries
                .iter()
                .take(most)
                .map(|&i| op_text(history, i))
                .collect();
        }
        ends.join("; ")
    };
    let story = match panel.kind.as_str() {
        "no_lost_writes" => {
            let lost = role("lost write");
            let over = role("overwriting write");
            let read = role("read before the lost write");
            let finals = role("final read");
            let acked = completion(history, &lost).map(|i| op_text(history, i));
            let however = if !read.is_empty() {
                format!(
                    "However the writer had read that value before its write ({}): the write \
                     causally follows it, so the older value may not win; an acknowledged write \
                     is gone.",
                    texts(&read, 1)
                )
            } else if !over.is_empty() {
                format!(
                    "However that value is the same client's earlier write ({}): the later, \
                     acknowledged write was overwritten by one it follows, and is lost.",
                    texts(&over, 1)
                )
            } else {
                "However no client wrote what the replica holds (or it holds nothing): the \
                 acknowledged write is lost."
                    .to_string()
            };
            vec![
                format!(
                    "Let a write be acknowledged: {}.",
                    acked.unwrap_or_else(|| "(not recorded)".into())
                ),
                format!(
                    "Then at the end the replica read back {}.",
                    texts(&finals, 3)
                ),
                however,
            ]
        }
        "converged" => vec![
            "Let every live replica of a key hold the same value and version by the end (the \
             faults are over and anti-entropy has had its time)."
                .to_string(),
            format!(
                "Then the final reads found: {}.",
                texts(&role("final read"), 8)
            ),
            format!(
                "However they differ: the writes read back were {}; a reader gets a different \
                 answer depending on the replica it asks, and nothing is left to repair it.",
                match texts(&role("write read back"), 4) {
                    t if t.is_empty() => "none a client made".to_string(),
                    t => t,
                }
            ),
        ],
        "linearizable" => {
            let blocked = role("blocked");
            let before = role("linearized before");
            let other = role("cannot come next either");
            vec![
                format!(
                    "Let the operations before it take effect in a valid order, last {}.",
                    match texts(&before, 3) {
                        t if t.is_empty() => "none".to_string(),
                        t => t,
                    }
                ),
                format!("Then {}.", texts(&blocked, 1)),
                format!(
                    "However no order that respects real time explains that answer{}: the \
                     history is not linearizable.",
                    match texts(&other, 3) {
                        t if t.is_empty() => String::new(),
                        t => format!(", nor can any other pending operation come next ({t})"),
                    }
                ),
            ]
        }
        "latency" => vec![
            format!("Let {}.", property("latency")),
            format!(
                "Then the slowest acknowledged operations were: {}.",
                texts(&role("slowest"), 5)
            ),
            "However answers that slow put the percentile over the bound (its value is in \
             the evidence above): for the clients behind it, the service was not there."
                .to_string(),
        ],
        "availability" | "recovers" => {
            let failed: Vec<usize> = evidence.iter().map(|c| c.entry).collect();
            let count = evidence
                .iter()
                .filter(|c| {
                    matches!(history.get(c.entry).map(|e| &e.what), Some(What::Op { op }) if op.kind == OpType::Invoke)
                })
                .count();
            vec![
                format!("Let {}.", property(&panel.kind)),
                format!(
                    "Then operations were not acknowledged{} ({count} highlighted), e.g. {}.",
                    if panel.kind == "recovers" {
                        " in the first window below the minimum"
                    } else {
                        ""
                    },
                    texts(&failed, 3)
                ),
                "However that leaves the fraction acknowledged below the minimum the check \
                 asks for (the counts are in the evidence above)."
                    .to_string(),
            ]
        }
        "liveness" => vec![
            format!("Let {}.", property("liveness")),
            format!(
                "Then the probes still pending at the deadline were told: {}.",
                texts(&role("pending probe"), 4)
            ),
            "However the faults were over: a system that does not get a fresh request \
             through, everywhere, in time, has not recovered."
                .to_string(),
        ],
        _ => return false,
    };
    panel.story = story;
    let mut entries: Vec<usize> = evidence.iter().map(|c| c.entry).collect();
    entries.sort_unstable();
    entries.dedup();
    panel.entries = entries;
    window(panel, history);
    true
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
