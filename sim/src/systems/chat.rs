//! Chat servers in the simulation: the scenario's knobs become the same
//! [`ChatNodeConfig`] that `chat-node`'s flags build.

use super::{server_addr, server_ip};
use crate::scenario::{self, Scenario};
use nodes::chat::{ChatConfig, ChatNodeConfig, Commit};
use std::net::SocketAddr;

/// Port every chat server accepts clients on.
pub const CLIENT_PORT: u16 = 7100;

/// The client address of server `n{index}`.
pub fn client_addr(index: usize) -> SocketAddr {
    SocketAddr::new(server_ip(index), CLIENT_PORT)
}

/// Configuration of chat server `n{index}` (defaults: majority commit, quorum election).
pub fn node_config(scenario: &Scenario, index: usize) -> ChatNodeConfig {
    let election = super::election::election_config(scenario, index as u64);
    let commit = match scenario
        .knobs_for(index)
        .commit
        .as_ref()
        .map(|c| *c.get_ref())
    {
        Some(scenario::Commit::Leader) => Commit::Leader,
        _ => Commit::Majority,
    };
    let peers = election
        .peers
        .iter()
        .map(|&p| (p, server_addr(p as usize)))
        .collect();
    ChatNodeConfig {
        chat: ChatConfig { election, commit },
        listen: server_addr(index),
        client_listen: client_addr(index),
        peers,
    }
}
