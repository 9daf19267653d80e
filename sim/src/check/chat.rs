//! Chat invariants, judged on `delivered` events and client operations.
//!
//! - `total_order`: every server's delivered sequence is a prefix of one common sequence:
//!   no gap, no message at two positions, no two messages at one position.
//! - `delivered`: every message acknowledged to a client is delivered by every server that
//!   is live at the end, and nothing is delivered that no client sent.

use super::view::{ClusterView, Liveness};
use super::CheckResult;
use crate::history::{fmt_time, Entry, OpType, What};
use crate::scenario::CheckKind;
use nodes::runtime::NodeEvent;
use std::collections::{BTreeMap, BTreeSet};

/// One server's deliveries: seq -> (message id, time).
type Deliveries = BTreeMap<u64, (String, u64)>;

fn deliveries(history: &[Entry]) -> BTreeMap<String, Deliveries> {
    let mut by_node: BTreeMap<String, Deliveries> = BTreeMap::new();
    for entry in history {
        if let What::Event {
            data: NodeEvent::Delivered { seq, id, .. },
        } = &entry.what
        {
            by_node
                .entry(entry.node.clone())
                .or_default()
                .entry(*seq)
                .or_insert((id.clone(), entry.t));
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
        if seqs.len() > 1 {
            let seqs: Vec<String> = seqs.iter().map(|s| s.to_string()).collect();
            let first = seqs[0].parse().unwrap_or(0);
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
        return CheckResult::new(CheckKind::TotalOrder, false, format!("{first}{more}"));
    }
    let counts: Vec<String> = by_node
        .iter()
        .map(|(node, log)| format!("{node} {}", log.len()))
        .collect();
    let detail = if counts.is_empty() {
        "no server delivered anything (nothing to order)".to_string()
    } else {
        format!(
            "{} positions, every server a prefix of one sequence (delivered: {})",
            at_seq.len(),
            counts.join(", ")
        )
    };
    CheckResult::new(CheckKind::TotalOrder, true, detail)
}

/// Every acknowledged message reached every live server; nothing was invented.
pub fn delivered(history: &[Entry]) -> CheckResult {
    let mut view = ClusterView::new(history);
    let mut sent: BTreeSet<String> = BTreeSet::new();
    // message id -> (client, ack time, ack detail)
    let mut acked: BTreeMap<String, (String, u64, String)> = BTreeMap::new();
    let mut servers: BTreeSet<String> = BTreeSet::new();
    for entry in history {
        view.apply(entry);
        match &entry.what {
            What::Op { op } => {
                let Some(id) = op.value.as_ref().and_then(|v| v.as_str()) else {
                    continue;
                };
                match op.kind {
                    OpType::Invoke => {
                        sent.insert(id.to_string());
                    }
                    OpType::Ok => {
                        let detail = op.detail.clone().unwrap_or_default();
                        acked.insert(id.to_string(), (entry.node.clone(), entry.t, detail));
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
    let live: Vec<&String> = servers
        .iter()
        .filter(|s| view.liveness(s) == Liveness::Up)
        .collect();
    let mut missing: Vec<String> = Vec::new();
    for (id, (client, t, detail)) in &acked {
        let lacking: Vec<&str> = live
            .iter()
            .filter(|s| {
                by_node
                    .get(s.as_str())
                    .is_none_or(|log| !log.values().any(|(d, _)| d == id))
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
                "{id}, acknowledged to {client} at {} ({detail}), is missing on {}",
                fmt_time(*t),
                have.join(", ")
            ));
        }
    }
    let invented: BTreeSet<&String> = by_node
        .values()
        .flat_map(|log| log.values().map(|(id, _)| id))
        .filter(|id| !sent.contains(*id))
        .collect();
    if let Some(first) = missing.first() {
        let more = match missing.len() {
            1 => String::new(),
            n => format!(" ({} acknowledged messages missing in all)", n),
        };
        return CheckResult::new(CheckKind::Delivered, false, format!("{first}{more}"));
    }
    if let Some(id) = invented.first() {
        return CheckResult::new(
            CheckKind::Delivered,
            false,
            format!("{id} was delivered but no client ever sent it"),
        );
    }
    let delivered_ids: BTreeSet<&String> = by_node
        .values()
        .flat_map(|l| l.values().map(|(id, _)| id))
        .collect();
    let unacked_delivered = delivered_ids
        .iter()
        .filter(|id| !acked.contains_key(id.as_str()))
        .count();
    let live_names: Vec<&str> = live.iter().map(|s| s.as_str()).collect();
    CheckResult::new(
        CheckKind::Delivered,
        true,
        format!(
            "all {} acknowledged messages delivered by every live server ({}); {} sent, {} delivered without an ack",
            acked.len(),
            live_names.join(","),
            sent.len(),
            unacked_delivered
        ),
    )
}
