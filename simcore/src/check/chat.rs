//! Chat invariants, judged on `delivered` events and client operations.
//!
//! - `total_order`: every server's delivered sequence is a prefix of one common sequence:
//!   no gap, no message at two positions, no two messages at one position.
//! - `delivered`: every message acknowledged to a client is delivered by every server that
//!   is live at the end, at the position the client was told, and nothing is delivered
//!   that no client sent.

use super::view::{ClusterView, Liveness};
use super::CheckResult;
use crate::history::{fmt_time, Entry, OpType, What};
use crate::scenario::CheckKind;
use nodes::runtime::NodeEvent;
use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, BTreeSet};

/// A message's acknowledgement, as the history recorded it.
struct Ack<'a> {
    client: &'a str,
    t: u64,
    seq: Option<u64>,
    server: Option<&'a str>,
}

/// One server's deliveries: seq -> (message id, time) of the first delivery at that seq,
/// borrowed from the history.
type Deliveries<'a> = BTreeMap<u64, (&'a str, u64)>;

/// One server's deliveries, gathered in one pass with the problems a single log shows.
struct Log<'a> {
    node: &'a str,
    /// The highest seq delivered so far (0: none).
    top: u64,
    log: Deliveries<'a>,
}

/// Every server's deliveries, in node-name order, and (seq, problem) for each gap and
/// each second message at one seq of one log, in history order. One pass, integer keys:
/// the checks run on every fuzz seed, and string-keyed maps per event were most of
/// their cost (issue 16).
fn logs(history: &[Entry]) -> (Vec<Log<'_>>, Vec<(u64, String)>) {
    let mut logs: Vec<Log> = Vec::new();
    let mut problems = Vec::new();
    for entry in history {
        let What::Event {
            data: NodeEvent::Delivered { seq, id, .. },
        } = &entry.what
        else {
            continue;
        };
        let node = entry.node.as_str();
        // A handful of servers: a scan beats a map.
        let slot = match logs.iter().position(|l| l.node == node) {
            Some(slot) => slot,
            None => {
                logs.push(Log {
                    node,
                    top: 0,
                    log: BTreeMap::new(),
                });
                logs.len() - 1
            }
        };
        let Log { top, log, .. } = &mut logs[slot];
        if *seq > *top + 1 {
            problems.push((
                *seq,
                format!(
                    "gap: {node} delivered seq {seq} at {} right after seq {top}",
                    fmt_time(entry.t)
                ),
            ));
        }
        *top = (*top).max(*seq);
        match log.entry(*seq) {
            Slot::Occupied(earlier) if earlier.get().0 != id => problems.push((
                *seq,
                format!(
                    "{node} delivered two messages at seq {seq}: {}, then {id} at {}",
                    earlier.get().0,
                    fmt_time(entry.t)
                ),
            )),
            Slot::Occupied(_) => {}
            Slot::Vacant(slot) => {
                slot.insert((id.as_str(), entry.t));
            }
        }
    }
    logs.sort_by(|a, b| a.node.cmp(b.node));
    (logs, problems)
}

/// All logs are prefixes of one sequence.
pub fn total_order(history: &[Entry]) -> CheckResult {
    let (logs, mut problems) = logs(history);
    // Every (seq, id, server) delivered, by seq then server (node-name order).
    let mut placed: Vec<(u64, &str, usize)> = logs
        .iter()
        .enumerate()
        .flat_map(|(n, l)| l.log.iter().map(move |(seq, (id, _))| (*seq, *id, n)))
        .collect();
    placed.sort_unstable_by_key(|&(seq, _, n)| (seq, n));
    let mut positions_count = 0;
    // (id, seq) for each distinct message at each seq, for duplicates below.
    let mut at: Vec<(&str, u64)> = Vec::new();
    for group in placed.chunk_by(|a, b| a.0 == b.0) {
        let seq = group[0].0;
        positions_count += 1;
        let first = group[0].1;
        if group.iter().all(|&(_, id, _)| id == first) {
            at.push((first, seq));
            continue;
        }
        // Disagreement between nodes at one position: each message with its servers.
        let mut ids: Vec<&str> = group.iter().map(|&(_, id, _)| id).collect();
        ids.sort_unstable();
        ids.dedup();
        let sides: Vec<String> = ids
            .iter()
            .map(|id| {
                let nodes: Vec<&str> = group
                    .iter()
                    .filter(|&&(_, other, _)| other == *id)
                    .map(|&(_, _, n)| logs[n].node)
                    .collect();
                format!("{} delivered {id}", nodes.join(","))
            })
            .collect();
        problems.push((seq, format!("seq {seq}: {}", sides.join("; "))));
        at.extend(ids.iter().map(|id| (*id, seq)));
    }
    // One message at two positions (a duplicate delivery).
    at.sort_unstable();
    for same in at.chunk_by(|a, b| a.0 == b.0) {
        if same.len() > 1 {
            let seqs: Vec<String> = same.iter().map(|(_, s)| s.to_string()).collect();
            problems.push((
                same[0].1,
                format!(
                    "{} delivered at more than one position: seq {}",
                    same[0].0,
                    seqs.join(", ")
                ),
            ));
        }
    }
    problems.sort();
    if let Some((_, first)) = problems.first() {
        let more = match problems.len() {
            1 => String::new(),
            n => format!(" ({} more problems)", n - 1),
        };
        return CheckResult::violation(CheckKind::TotalOrder, format!("{first}{more}"));
    }
    if logs.is_empty() {
        return CheckResult::vacuous(
            CheckKind::TotalOrder,
            "no server delivered anything: there was nothing to order",
        );
    }
    let counts: Vec<String> = logs
        .iter()
        .map(|l| format!("{} {}", l.node, l.log.len()))
        .collect();
    CheckResult::pass(
        CheckKind::TotalOrder,
        format!(
            "{} positions, every server a prefix of one sequence (delivered: {})",
            positions_count,
            counts.join(", ")
        ),
    )
}

/// Every acknowledged message reached every live server; nothing was invented.
pub fn delivered(history: &[Entry]) -> CheckResult {
    let mut view = ClusterView::new(history);
    let mut sent: Vec<&str> = Vec::new();
    // message id -> its acknowledgement
    let mut acked: BTreeMap<&str, Ack> = BTreeMap::new();
    let mut servers: BTreeSet<&str> = BTreeSet::new();
    for entry in history {
        view.apply(entry);
        match &entry.what {
            What::Op { op } => {
                let Some(id) = op.value_str() else {
                    continue;
                };
                match op.kind {
                    OpType::Invoke => sent.push(id),
                    OpType::Ok => {
                        let ack = Ack {
                            client: &entry.node,
                            t: entry.t,
                            seq: op.seq,
                            server: op.server.as_deref(),
                        };
                        acked.insert(id, ack);
                    }
                    _ => {}
                }
            }
            What::Event {
                data: NodeEvent::Started { .. },
            } => {
                servers.insert(&entry.node);
            }
            _ => {}
        }
    }
    sent.sort_unstable();
    sent.dedup();
    let (logs, _) = logs(history);
    // Every delivery of every server as (message id, server's index in `logs`, seq),
    // sorted: the deliveries of one id are one run, its servers in name order and each
    // server's seqs ascending. The acknowledgements are walked in id order too, so each
    // finds its run by a merge, not a lookup in a map per server (issue 16).
    let mut deliveries: Vec<(&str, usize, u64)> = logs
        .iter()
        .enumerate()
        .flat_map(|(s, l)| l.log.iter().map(move |(seq, (id, _))| (*id, s, *seq)))
        .collect();
    deliveries.sort_unstable();
    let top_of = |server: &str| {
        let log = logs.iter().find(|l| l.node == server);
        log.and_then(|l| l.log.keys().last().copied()).unwrap_or(0)
    };
    let live: Vec<&str> = servers
        .iter()
        .filter(|s| view.liveness(s) == Liveness::Up)
        .copied()
        .collect();
    let mut missing: Vec<String> = Vec::new();
    let mut misplaced: Vec<String> = Vec::new();
    let mut rest = deliveries.as_slice();
    for (id, ack) in &acked {
        let skip = rest.partition_point(|d| d.0 < *id);
        let after = rest.partition_point(|d| d.0 <= *id);
        let run = &rest[skip..after];
        rest = &rest[after..];
        // Formatted only for evidence.
        let told = || match (ack.seq, &ack.server) {
            (Some(seq), Some(server)) => format!("seq {seq} via {server}"),
            (Some(seq), None) => format!("seq {seq}"),
            _ => "no position".to_string(),
        };
        // Delivered, but not where the client was told: each server's first other seq.
        if let Some(seq) = ack.seq {
            let mut last_server = None;
            for &(_, server, other) in run {
                if other == seq || last_server == Some(server) {
                    continue;
                }
                last_server = Some(server);
                let log = &logs[server];
                let there = log.log.get(&seq).map_or("nothing", |(d, _)| d);
                misplaced.push(format!(
                    "{id}, acknowledged to {} at {} as {}, was delivered by {} at seq {other} (its seq {seq} holds {there})",
                    ack.client,
                    fmt_time(ack.t),
                    told(),
                    log.node
                ));
            }
        }
        let lacking: Vec<&str> = live
            .iter()
            .filter(|s| !run.iter().any(|d| logs[d.1].node == **s))
            .copied()
            .collect();
        if !lacking.is_empty() {
            let have: Vec<String> = lacking
                .iter()
                .map(|s| format!("{s} (delivered up to seq {})", top_of(s)))
                .collect();
            missing.push(format!(
                "{id}, acknowledged to {} at {} ({}), is missing on {}",
                ack.client,
                fmt_time(ack.t),
                told(),
                have.join(", ")
            ));
        }
    }
    if let Some(first) = misplaced.first() {
        let more = match misplaced.len() {
            1 => String::new(),
            n => format!(" ({n} deliveries at another position in all)"),
        };
        return CheckResult::violation(CheckKind::Delivered, format!("{first}{more}"));
    }
    if let Some(first) = missing.first() {
        let more = match missing.len() {
            1 => String::new(),
            n => format!(" ({} acknowledged messages missing in all)", n),
        };
        return CheckResult::violation(CheckKind::Delivered, format!("{first}{more}"));
    }
    let mut delivered_ids: Vec<&str> = deliveries.iter().map(|d| d.0).collect();
    delivered_ids.dedup();
    // The first (in id order) delivered message that no client sent.
    let invented = delivered_ids
        .iter()
        .find(|id| sent.binary_search(id).is_err());
    if let Some(id) = invented {
        return CheckResult::violation(
            CheckKind::Delivered,
            format!("{id} was delivered but no client ever sent it"),
        );
    }
    if acked.is_empty() {
        return CheckResult::vacuous(
            CheckKind::Delivered,
            format!(
                "no message was acknowledged ({} sent): nothing had to be delivered",
                sent.len()
            ),
        );
    }
    let unacked_delivered = delivered_ids
        .iter()
        .filter(|id| !acked.contains_key(*id))
        .count();
    CheckResult::pass(
        CheckKind::Delivered,
        format!(
            "all {} acknowledged messages delivered at their acknowledged position by every live server ({}); {} sent, {} delivered without an ack",
            acked.len(),
            live.join(","),
            sent.len(),
            unacked_delivered
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::Status;
    use crate::history::OpEvent;

    fn at(t: u64, node: &str, what: What) -> Entry {
        Entry {
            t,
            node: node.into(),
            what,
        }
    }

    fn started(t: u64, node: &str) -> Entry {
        at(
            t,
            node,
            What::Event {
                data: NodeEvent::Started {
                    recovered_records: 0,
                    damage: None,
                },
            },
        )
    }

    fn delivered_event(t: u64, node: &str, seq: u64, id: &str) -> Entry {
        at(
            t,
            node,
            What::Event {
                data: NodeEvent::Delivered {
                    seq,
                    term: 1,
                    id: id.into(),
                },
            },
        )
    }

    fn send(t: u64, kind: OpType, seq: Option<u64>) -> Entry {
        let mut op = OpEvent::new(kind, "send", 0).value(Some("c1-0"));
        if let Some(seq) = seq {
            op = op.seq(seq).server("n1");
        }
        at(t, "c1", What::Op { op })
    }

    #[test]
    fn a_message_delivered_away_from_its_acknowledged_position_is_a_violation() {
        let history = vec![
            started(0, "n1"),
            started(0, "n2"),
            send(1, OpType::Invoke, None),
            send(2, OpType::Ok, Some(1)),
            at(
                3,
                "c2",
                What::Op {
                    op: OpEvent::new(OpType::Invoke, "send", 0).value(Some("c2-0")),
                },
            ),
            delivered_event(4, "n1", 1, "c2-0"),
            delivered_event(4, "n2", 1, "c2-0"),
            delivered_event(5, "n1", 2, "c1-0"),
            delivered_event(5, "n2", 2, "c1-0"),
        ];
        let result = delivered(&history);
        assert_eq!(result.status, Status::Violation, "{}", result.detail);
        assert!(result.detail.contains("at seq 2"), "{}", result.detail);
    }

    #[test]
    fn delivery_at_the_acknowledged_position_passes() {
        let history = vec![
            started(0, "n1"),
            send(1, OpType::Invoke, None),
            send(2, OpType::Ok, Some(1)),
            delivered_event(3, "n1", 1, "c1-0"),
        ];
        assert_eq!(delivered(&history).status, Status::Pass);
    }
}
