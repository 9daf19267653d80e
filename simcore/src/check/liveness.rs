//! `liveness`: once the faults are over, does the system still do its job?
//!
//! The round starts at the check's `after`, or else at the last fault recorded in the
//! history (the start of the run when there is none), and lasts `within`. The servers
//! that are up at its start are the live ones; there must be at least one, or there is
//! nothing to judge (vacuous).
//!
//! - election: at some instant of the round, an acting leader that every live server
//!   connected to it follows, and those are a majority of the live servers;
//! - chat: the harness's probe message through every live server is acknowledged and
//!   delivered by every live server before the deadline;
//! - kv: the harness's probe write of a fresh key through every live server is
//!   acknowledged, and reading that key through every live server returns it, before the
//!   deadline.
//!
//! A failure names what is still pending and what the server last knew: "probe via n3
//! not acked by 35.000s: n3 knows no leader since 25.310s (candidate, term 7)".

use super::roles::{agreed_leader, Replay};
use super::{CheckResult, Cited};
use crate::history::{fmt_time, Actor, Entry, OpEvent, OpType, What};
use crate::probe::PROBE;
use crate::scenario::{CheckKind, System};
use nodes::runtime::NodeEvent;
use std::time::Duration;

/// The round a liveness check judges, in simulated nanoseconds.
struct Round {
    start: u64,
    deadline: u64,
    /// "the last fault at 25.000s", "`after` = 30.000s", "the start".
    from: String,
    /// Servers up at the start.
    live: Vec<String>,
}

/// The `liveness` check on `history`.
pub fn liveness(
    history: &[Entry],
    system: System,
    after: Option<Duration>,
    within: Duration,
) -> CheckResult {
    let last_fault = history
        .iter()
        .filter(|e| matches!(e.what, What::Fault { .. }))
        .map(|e| e.t)
        .max();
    let (start, from) = match (after, last_fault) {
        (Some(after), _) => {
            let t = after.as_nanos() as u64;
            (t, format!("`after` = {}", fmt_time(t)))
        }
        (None, Some(t)) => (t, format!("the last fault at {}", fmt_time(t))),
        (None, None) => (0, "the start".to_string()),
    };
    let mut replay = Replay::new(history);
    while replay.peek().is_some_and(|t| t <= start) {
        replay.next_instant();
    }
    let live: Vec<String> = replay
        .servers()
        .iter()
        .filter(|s| replay.is_up(s))
        .cloned()
        .collect();
    if live.is_empty() {
        return CheckResult::vacuous(
            CheckKind::Liveness,
            format!(
                "no server was up at {} ({from}): no probe was possible",
                fmt_time(start)
            ),
        );
    }
    let round = Round {
        start,
        deadline: start.saturating_add(within.as_nanos() as u64),
        from,
        live,
    };
    match system {
        System::Election => election(replay, &round),
        System::Chat => chat(history, replay, &round),
        System::Kv => kv(history, replay, &round),
    }
}

/// Advances `replay` to the end of the round, so its states are the deadline's.
fn to_deadline(replay: &mut Replay<'_>, round: &Round) {
    while replay.peek().is_some_and(|t| t <= round.deadline) {
        replay.next_instant();
    }
}

fn within_ms(round: &Round) -> u64 {
    (round.deadline - round.start) / 1_000_000
}

fn election(mut replay: Replay<'_>, round: &Round) -> CheckResult {
    let mut at = round.start;
    loop {
        if let Some((leader, term)) = agreed_leader(&replay) {
            return CheckResult::pass(
                CheckKind::Liveness,
                format!(
                    "{leader} (term {term}) led a majority of the {} live servers at {}, {} ms after {}",
                    round.live.len(),
                    fmt_time(at),
                    (at - round.start) / 1_000_000,
                    round.from
                ),
            );
        }
        match replay.peek() {
            Some(t) if t <= round.deadline => at = replay.next_instant().unwrap_or(t),
            _ => break,
        }
    }
    let states: Vec<String> = round.live.iter().map(|s| replay.knows(s)).collect();
    CheckResult::violation(
        CheckKind::Liveness,
        format!(
            "no leader followed by a majority of the {} live servers within {} ms of {} (by {}): {}",
            round.live.len(),
            within_ms(round),
            round.from,
            fmt_time(round.deadline),
            states.join("; ")
        ),
    )
}

/// The harness's probe operations, in history order.
fn probes(history: &[Entry]) -> impl Iterator<Item = (&Entry, &OpEvent)> {
    history.iter().filter_map(|e| match &e.what {
        What::Op { op } if e.node == PROBE && op.actor == Actor::Harness => Some((e, op)),
        _ => None,
    })
}

/// The last thing a probe operation for `name` through `server` was told, for evidence.
fn last_answer(history: &[Entry], f: &str, name: &str, server: &str) -> String {
    probes(history)
        .filter(|(_, op)| {
            op.f == f
                && op.kind != OpType::Invoke
                && op.server.as_deref() == Some(server)
                && (op.value_str() == Some(name) || op.key.as_deref() == Some(name))
        })
        .filter_map(|(_, op)| op.detail.clone())
        .last()
        .map_or(String::new(), |d| format!("; last answer: {d}"))
}

/// The round's probe invocation of `f` through `server`: the first at or after its start.
fn probe_sent<'h>(
    history: &'h [Entry],
    round: &Round,
    f: &str,
    server: &str,
) -> Option<&'h OpEvent> {
    probes(history)
        .find(|(e, op)| {
            op.kind == OpType::Invoke
                && op.f == f
                && op.server.as_deref() == Some(server)
                && e.t >= round.start
        })
        .map(|(_, op)| op)
}

/// Each server's first delivery of each of `ids` by `deadline`: (id, server, time), in
/// one pass (a scan of the whole history per server and probe was most of the check's
/// cost, issue 16).
fn first_deliveries<'h>(
    history: &'h [Entry],
    ids: &[&str],
    deadline: u64,
) -> Vec<(&'h str, &'h str, u64)> {
    let mut first: Vec<(&str, &str, u64)> = Vec::new();
    for e in history {
        let What::Event {
            data: NodeEvent::Delivered { id, .. },
        } = &e.what
        else {
            continue;
        };
        if e.t <= deadline
            && ids.contains(&id.as_str())
            && !first.iter().any(|d| d.0 == id && d.1 == e.node)
        {
            first.push((id, &e.node, e.t));
        }
    }
    first
}

fn chat(history: &[Entry], mut replay: Replay<'_>, round: &Round) -> CheckResult {
    to_deadline(&mut replay, round);
    let mut pending: Vec<String> = Vec::new();
    let mut stuck: Vec<&str> = Vec::new();
    let mut latest = round.start;
    let probe_ids: Vec<&str> = round
        .live
        .iter()
        .filter_map(|server| probe_sent(history, round, "send", server)?.value_str())
        .collect();
    let delivered = first_deliveries(history, &probe_ids, round.deadline);
    for server in &round.live {
        let Some(id) = probe_sent(history, round, "send", server).and_then(|op| op.value_str())
        else {
            pending.push(format!("no probe was sent via {server} (a harness bug)"));
            continue;
        };
        let ack = probes(history).find(|(e, op)| {
            op.kind == OpType::Ok && op.value_str() == Some(id) && e.t <= round.deadline
        });
        let Some((ack, ack_op)) = ack else {
            stuck.push(id);
            pending.push(format!(
                "probe via {server} not acked by {}: {}{}",
                fmt_time(round.deadline),
                replay.knows(server),
                last_answer(history, "send", id, server)
            ));
            continue;
        };
        latest = latest.max(ack.t);
        let seq = ack_op.seq.map_or(String::new(), |s| format!(" as seq {s}"));
        for reader in &round.live {
            let first = delivered
                .iter()
                .find(|d| d.0 == id && d.1 == reader.as_str());
            match first {
                Some(&(_, _, t)) => latest = latest.max(t),
                None => {
                    stuck.push(id);
                    let top = history
                        .iter()
                        .filter(|e| e.node == *reader && e.t <= round.deadline)
                        .filter_map(|e| match &e.what {
                            What::Event {
                                data: NodeEvent::Delivered { seq, .. },
                            } => Some(*seq),
                            _ => None,
                        })
                        .max()
                        .unwrap_or(0);
                    pending.push(format!(
                        "probe via {server} (acked at {}{seq}) not delivered by {reader} by {}: {reader} delivered up to seq {top}; {}",
                        fmt_time(ack.t),
                        fmt_time(round.deadline),
                        replay.knows(reader)
                    ));
                }
            }
        }
    }
    verdict(
        round,
        pending,
        latest,
        "acked and delivered by every live server",
    )
    .citing(probe_entries(history, round, &stuck))
}

fn kv(history: &[Entry], mut replay: Replay<'_>, round: &Round) -> CheckResult {
    to_deadline(&mut replay, round);
    let mut pending: Vec<String> = Vec::new();
    let mut stuck: Vec<&str> = Vec::new();
    let mut latest = round.start;
    for server in &round.live {
        let Some(key) = probe_sent(history, round, "put", server).and_then(|op| op.key.as_deref())
        else {
            pending.push(format!("no probe was written via {server} (a harness bug)"));
            continue;
        };
        let done = |f: &'static str, at: &str| {
            probes(history).find(|(e, op)| {
                op.f == f
                    && op.kind == OpType::Ok
                    && op.key.as_deref() == Some(key)
                    && op.server.as_deref() == Some(at)
                    && e.t <= round.deadline
            })
        };
        let Some((ack, _)) = done("put", server) else {
            stuck.push(key);
            pending.push(format!(
                "probe write of {key} via {server} not acked by {}: {}{}",
                fmt_time(round.deadline),
                members(history, server, round.deadline),
                last_answer(history, "put", key, server)
            ));
            continue;
        };
        latest = latest.max(ack.t);
        for reader in &round.live {
            match done("get", reader) {
                Some((e, op)) if op.value_str() == Some(key) => latest = latest.max(e.t),
                _ => {
                    stuck.push(key);
                    pending.push(format!(
                        "{key}, written via {server} at {}, not readable via {reader} by {}: {}{}",
                        fmt_time(ack.t),
                        fmt_time(round.deadline),
                        members(history, reader, round.deadline),
                        last_answer(history, "get", key, reader)
                    ))
                }
            }
        }
    }
    verdict(
        round,
        pending,
        latest,
        "acknowledged and readable through every live server",
    )
    .citing(probe_entries(history, round, &stuck))
}

/// The probe operations of the round on `names` (a KV probe's key, a chat probe's id):
/// the invocations and answers of the probes still pending, for evidence.
fn probe_entries(history: &[Entry], round: &Round, names: &[&str]) -> Vec<Cited> {
    history
        .iter()
        .enumerate()
        .filter(|(_, e)| e.node == PROBE && e.t >= round.start)
        .filter(|(_, e)| match &e.what {
            What::Op { op } => {
                op.actor == Actor::Harness
                    && names
                        .iter()
                        .any(|n| op.key.as_deref() == Some(*n) || op.value_str() == Some(*n))
            }
            _ => false,
        })
        .take(60)
        .map(|(i, _)| Cited::new(i, "pending probe"))
        .collect()
}

/// What a KV server last said about its membership, for evidence.
fn members(history: &[Entry], server: &str, by: u64) -> String {
    history
        .iter()
        .rev()
        .filter(|e| e.node == server && e.t <= by)
        .find_map(|e| match &e.what {
            What::Event {
                data: NodeEvent::Members { members },
            } => Some((e.t, members)),
            _ => None,
        })
        .map_or(format!("{server} reported no membership"), |(t, m)| {
            format!(
                "{server} has seen members [{}] since {}",
                m.join(","),
                fmt_time(t)
            )
        })
}

fn verdict(round: &Round, pending: Vec<String>, latest: u64, done: &str) -> CheckResult {
    if let Some(first) = pending.first() {
        let more = match pending.len() {
            1 => String::new(),
            n => format!(" ({n} probes pending in all)"),
        };
        return CheckResult::violation(
            CheckKind::Liveness,
            format!(
                "within {} ms of {}: {first}{more}",
                within_ms(round),
                round.from
            ),
        );
    }
    CheckResult::pass(
        CheckKind::Liveness,
        format!(
            "a probe via each of the {} live servers ({}) {done} by {}, {} ms after {}",
            round.live.len(),
            round.live.join(","),
            fmt_time(latest),
            (latest - round.start) / 1_000_000,
            round.from
        ),
    )
}
