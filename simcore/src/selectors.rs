//! Which nodes a fault names, read the same way by the simulated and the real runner: the
//! `leader` selector resolved from the history alone (each runner says which servers are
//! up), a partition's groups, a link's ends.

use crate::history::{Entry, What};
use crate::scenario::Fault;
use nodes::runtime::{NodeEvent, Role};
use std::collections::BTreeMap;

/// The live server (per `is_up`) that most recently became leader and still says it is.
pub fn latest_leader(history: &[Entry], is_up: impl Fn(&str) -> bool) -> Option<String> {
    let mut last_role: BTreeMap<&str, bool> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for entry in history {
        if let What::Event {
            data: NodeEvent::Role { role, .. },
        } = &entry.what
        {
            let leading = *role == Role::Leader;
            let was = last_role.insert(&entry.node, leading).unwrap_or(false);
            if leading && !was {
                order.push(&entry.node);
            }
        }
    }
    order
        .iter()
        .rev()
        .find(|name| is_up(name) && last_role.get(*name).copied().unwrap_or(false))
        .map(|name| name.to_string())
}

/// A `partition`'s groups of node names (none when it names none).
pub fn groups(fault: &Fault) -> Vec<Vec<String>> {
    fault
        .groups
        .as_ref()
        .map(|g| {
            g.get_ref()
                .iter()
                .map(|group| group.iter().map(|n| n.get_ref().clone()).collect())
                .collect()
        })
        .unwrap_or_default()
}

/// The `from` and `to` of a link fault (empty names when absent).
pub fn link(fault: &Fault) -> (String, String) {
    let name = |n: &Option<toml::Spanned<String>>| {
        n.as_ref().map(|n| n.get_ref().clone()).unwrap_or_default()
    };
    (name(&fault.from), name(&fault.to))
}
