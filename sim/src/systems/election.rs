//! Election servers in the simulation: the scenario's knobs become the same
//! [`ElectionNodeConfig`] that `election-node`'s flags build.

use super::server_addr;
use crate::scenario::Scenario;
use nodes::election::config::{DEFAULT_ELECTION_TIMEOUT, DEFAULT_HEARTBEAT_INTERVAL};
use nodes::election::{ElectionConfig, ElectionNodeConfig};

/// The election knobs of a scenario (defaults: the seed's timings, quorum on).
pub fn election_config(scenario: &Scenario, id: u64) -> ElectionConfig {
    let knobs = &scenario.knobs_for(id as usize);
    ElectionConfig {
        id,
        peers: (1..=scenario.server_count() as u64)
            .filter(|&p| p != id)
            .collect(),
        heartbeat_interval: knobs
            .heartbeat_interval
            .as_ref()
            .map_or(DEFAULT_HEARTBEAT_INTERVAL, |d| d.get_ref().0),
        election_timeout: knobs
            .election_timeout
            .as_ref()
            .map_or(DEFAULT_ELECTION_TIMEOUT, |d| d.get_ref().0),
        quorum: knobs.quorum.as_ref().is_none_or(|q| *q.get_ref()),
    }
}

/// Configuration of server `n{index}`.
pub fn node_config(scenario: &Scenario, index: usize) -> ElectionNodeConfig {
    let election = election_config(scenario, index as u64);
    let peers = election
        .peers
        .iter()
        .map(|&p| (p, server_addr(p as usize)))
        .collect();
    ElectionNodeConfig {
        election,
        listen: server_addr(index),
        peers,
    }
}
