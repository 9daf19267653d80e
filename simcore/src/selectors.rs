//! The `leader` selector, resolved from the history alone: a simulated run and a real one
//! read the same recorded role events, and each says which servers are up.

use crate::history::{Entry, What};
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
