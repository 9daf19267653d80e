//! The cluster as the history shows it: which servers are up, paused or down, and which
//! links are cut, replayed from the recorded fault entries (never from harness state)
//! into the same [`Network`] model the harness and the real proxy apply faults to.

use crate::history::{AppliedFault, Entry, What};
use crate::network::Network;
use crate::scenario::Action;
use std::collections::{BTreeMap, BTreeSet};

/// Liveness of a node as the faults left it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Running.
    Up,
    /// Frozen by `pause`.
    Paused,
    /// Crashed or shut down.
    Down,
}

/// Replayed cluster state.
#[derive(Clone, Debug, Default)]
pub struct ClusterView {
    liveness: BTreeMap<String, Liveness>,
    network: Network<String>,
    /// Every node name seen in the history (servers and clients), for `isolate`.
    known: Vec<String>,
}

impl ClusterView {
    /// A view knowing every node that appears in `history`.
    pub fn new(history: &[Entry]) -> Self {
        let mut known = BTreeSet::new();
        for entry in history {
            if entry.node != "harness" {
                known.insert(entry.node.clone());
            }
            if let What::Fault { fault } = &entry.what {
                known.extend(fault.node.iter().cloned());
                known.extend(fault.groups.iter().flatten().cloned());
            }
        }
        ClusterView {
            known: known.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Applies one history entry (only faults change the view).
    pub fn apply(&mut self, entry: &Entry) {
        let What::Fault { fault } = &entry.what else {
            return;
        };
        if fault.skipped.is_some() {
            return;
        }
        self.apply_fault(fault);
    }

    fn apply_fault(&mut self, fault: &AppliedFault) {
        let node = fault.node.clone().unwrap_or_default();
        match fault.action {
            Action::Crash | Action::Shutdown => {
                self.liveness.insert(node, Liveness::Down);
            }
            Action::Restart | Action::Resume => {
                self.liveness.insert(node, Liveness::Up);
            }
            Action::Pause => {
                self.liveness.insert(node, Liveness::Paused);
            }
            Action::Partition => {
                self.network.partition(&fault.groups);
            }
            Action::Isolate => {
                self.network.isolate(&node, &self.known);
            }
            Action::Clog => {
                if let (Some(a), Some(b)) = (&fault.from, &fault.to) {
                    self.network.clog(a.clone(), b.clone());
                }
            }
            Action::Unclog => {
                if let (Some(a), Some(b)) = (&fault.from, &fault.to) {
                    self.network.unclog(a.clone(), b.clone());
                }
            }
            Action::Heal => {
                self.network.heal();
            }
            _ => {}
        }
    }

    /// Liveness of a node (up unless a fault said otherwise).
    pub fn liveness(&self, node: &str) -> Liveness {
        self.liveness.get(node).copied().unwrap_or(Liveness::Up)
    }

    /// True when both directions between `a` and `b` are uncut.
    pub fn connected(&self, a: &str, b: &str) -> bool {
        self.network.connected(&a.to_string(), &b.to_string())
    }

    /// The up nodes among `candidates` reachable from `start` over uncut links.
    pub fn component<'a>(&self, start: &str, candidates: &'a [String]) -> Vec<&'a String> {
        let mut reached = vec![start.to_string()];
        let mut frontier = vec![start.to_string()];
        while let Some(at) = frontier.pop() {
            for next in candidates {
                if !reached.contains(next)
                    && self.liveness(next) == Liveness::Up
                    && self.connected(&at, next)
                {
                    reached.push(next.clone());
                    frontier.push(next.clone());
                }
            }
        }
        candidates.iter().filter(|c| reached.contains(c)).collect()
    }
}
