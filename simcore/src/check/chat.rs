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
use std::collections::{BTreeMap, BTreeSet};

/// A message's acknowledgement, as the history recorded it.
struct Ack {
    client: String,
    t: u64,
    seq: Option<u64>,
    server: Option<String>,
}

/// One server's deliveries: seq -> (message id, time), borrowed from the history.
type Deliveries<'a> = BTreeMap<u64, (&'a str, u64)>;

fn deliveries(history: &[Entry]) -> BTreeMap<&str, Deliveries<'_>> {
    let mut by_node: BTreeMap<&str, Deliveries> = BTreeMap::new();
    for entry in history {
        if let What::Event {
            data: NodeEvent::Delivered { seq, id, .. },
        } = &entry.what
        {
            by_node
                .entry(entry.node.as_str())
                .or_default()
                .entry(*seq)
                .or_insert((id.as_str(), entry.t));
        }
    }
    by_node
}

/// All logs are prefixes of one sequence.
pub fn total_order(history: &[Entry]) -> CheckResult {
    let mut problems: Vec<(u64, String)> = Vec::new();
    // Gaps and self-contradictions, per node, in delivery order.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    let mut first_at: BTreeMap<(&str, u64), &str> = BTreeMap::new();
    for entry in history {
        if let What::Event {
            data: NodeEvent::Delivered { seq, id, .. },
        } = &entry.what
        {
            let node = entry.node.as_str();
            let top = last.entry(node).or_insert(0);
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
            match first_at.get(&(node, *seq)) {
                Some(&earlier) if earlier != id => problems.push((
                    *seq,
                    format!(
                        "{node} delivered two messages at seq {seq}: {earlier}, then {id} at {}",
                        fmt_time(entry.t)
                    ),
                )),
                Some(_) => {}
                None => {
                    first_at.insert((node, *seq), id);
                }
            }
        }
    }
    let by_node = deliveries(history);
    // Disagreement between nodes at one position.
    let mut at_seq: BTreeMap<u64, BTreeMap<&str, Vec<&str>>> = BTreeMap::new();
    for (node, log) in &by_node {
        for (seq, (id, _)) in log {
            at_seq
                .entry(*seq)
                .or_default()
                .entry(id)
                .or_default()
                .push(node);
        }
    }
    for (seq, ids) in &at_seq {
        if ids.len() > 1 {
            let sides: Vec<String> = ids
                .iter()
                .map(|(id, nodes)| format!("{} delivered {id}", nodes.join(",")))
                .collect();
            problems.push((*seq, format!("seq {seq}: {}", sides.join("; "))));
        }
    }
    // One message at two positions (a duplicate delivery).
    let mut positions: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (seq, ids) in &at_seq {
        for id in ids.keys() {
            positions.entry(id).or_default().insert(*seq);
        }
    }
    for (id, seqs) in positions {
        if let Some(&first) = seqs.first().filter(|_| seqs.len() > 1) {
            let seqs: Vec<String> = seqs.iter().map(|s| s.to_string()).collect();
            problems.push((
                first,
                format!(
                    "{id} delivered at more than one position: seq {}",
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
    if by_node.is_empty() {
        return CheckResult::vacuous(
            CheckKind::TotalOrder,
            "no server delivered anything: there was nothing to order",
        );
    }
    let counts: Vec<String> = by_node
        .iter()
        .map(|(node, log)| format!("{node} {}", log.len()))
        .collect();
    CheckResult::pass(
        CheckKind::TotalOrder,
        format!(
            "{} positions, every server a prefix of one sequence (delivered: {})",
            at_seq.len(),
            counts.join(", ")
        ),
    )
}

/// Every acknowledged message reached every live server; nothing was invented.
pub fn delivered(history: &[Entry]) -> CheckResult {
    let mut view = ClusterView::new(history);
    let mut sent: BTreeSet<String> = BTreeSet::new();
    // message id -> its acknowledgement
    let mut acked: BTreeMap<String, Ack> = BTreeMap::new();
    let mut servers: BTreeSet<String> = BTreeSet::new();
    for entry in history {
        view.apply(entry);
        match &entry.what {
            What::Op { op } => {
                let Some(id) = op.value_str() else {
                    continue;
                };
                match op.kind {
                    OpType::Invoke => {
                        sent.insert(id.to_string());
                    }
                    OpType::Ok => {
                        let ack = Ack {
                            client: entry.node.clone(),
                            t: entry.t,
                            seq: op.seq,
                            server: op.server.clone(),
                        };
                        acked.insert(id.to_string(), ack);
                    }
                    _ => {}
                }
            }
            What::Event {
                data: NodeEvent::Started { .. },
            } => {
                servers.insert(entry.node.clone());
            }
            _ => {}
        }
    }
    let by_node = deliveries(history);
    // Per server, message id -> the positions it was delivered at (ascending): one pass,
    // so each acknowledged message is looked up rather than searched for.
    let positions: BTreeMap<&str, BTreeMap<&str, Vec<u64>>> = by_node
        .iter()
        .map(|(server, log)| {
            let mut at: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
            for (seq, (id, _)) in log {
                at.entry(*id).or_default().push(*seq);
            }
            (*server, at)
        })
        .collect();
    let live: Vec<&String> = servers
        .iter()
        .filter(|s| view.liveness(s) == Liveness::Up)
        .collect();
    let mut missing: Vec<String> = Vec::new();
    let mut misplaced: Vec<String> = Vec::new();
    for (id, ack) in &acked {
        // Formatted only for evidence.
        let told = || match (ack.seq, &ack.server) {
            (Some(seq), Some(server)) => format!("seq {seq} via {server}"),
            (Some(seq), None) => format!("seq {seq}"),
            _ => "no position".to_string(),
        };
        // Delivered, but not where the client was told.
        if let Some(seq) = ack.seq {
            for (server, log) in &by_node {
                let at = positions.get(server).and_then(|ids| ids.get(id.as_str()));
                if let Some(&other) = at.into_iter().flatten().find(|&&s| s != seq) {
                    let there = log.get(&seq).map_or("nothing", |(d, _)| d);
                    misplaced.push(format!(
                        "{id}, acknowledged to {} at {} as {}, was delivered by {server} at seq {other} (its seq {seq} holds {there})",
                        ack.client,
                        fmt_time(ack.t),
                        told()
                    ));
                }
            }
        }
        let lacking: Vec<&str> = live
            .iter()
            .filter(|s| {
                positions
                    .get(s.as_str())
                    .is_none_or(|ids| !ids.contains_key(id.as_str()))
            })
            .map(|s| s.as_str())
            .collect();
        if !lacking.is_empty() {
            let have: Vec<String> = lacking
                .iter()
                .map(|s| {
                    let top = by_node
                        .get(*s)
                        .and_then(|l| l.keys().last().copied())
                        .unwrap_or(0);
                    format!("{s} (delivered up to seq {top})")
                })
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
    let invented: BTreeSet<&str> = by_node
        .values()
        .flat_map(|log| log.values().map(|(id, _)| *id))
        .filter(|id| !sent.contains(*id))
        .collect();
    if let Some(first) = missing.first() {
        let more = match missing.len() {
            1 => String::new(),
            n => format!(" ({} acknowledged messages missing in all)", n),
        };
        return CheckResult::violation(CheckKind::Delivered, format!("{first}{more}"));
    }
    if let Some(id) = invented.first() {
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
    let delivered_ids: BTreeSet<&str> = by_node
        .values()
        .flat_map(|l| l.values().map(|(id, _)| *id))
        .collect();
    let unacked_delivered = delivered_ids
        .iter()
        .filter(|id| !acked.contains_key(**id))
        .count();
    let live_names: Vec<&str> = live.iter().map(|s| s.as_str()).collect();
    CheckResult::pass(
        CheckKind::Delivered,
        format!(
            "all {} acknowledged messages delivered at their acknowledged position by every live server ({}); {} sent, {} delivered without an ack",
            acked.len(),
            live_names.join(","),
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
