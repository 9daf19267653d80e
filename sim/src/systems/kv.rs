//! KV servers, the registry and the load balancer in the simulation: the scenario's knobs
//! become the same [`KvConfig`] that `kv-node`'s flags build (and the same [`LbConfig`]
//! as `load-balancer`'s); the registry is node `registry` at 10.0.2.1, the balancer of
//! `[lb]` node `lb` at 10.0.2.2.

use super::server_ip;
use crate::scenario::{self, Scenario};
use nodes::kv::overload::breaker::{BreakerConfig, DEFAULT_COOLDOWN, DEFAULT_FAILURES};
use nodes::kv::registry::RegistryConfig;
use nodes::kv::ring::Ring;
use nodes::kv::swim::GossipConfig;
use nodes::kv::{KvConfig, OverloadConfig, Versioning};
use nodes::lb::{Backend, LbConfig, Strategy};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// The port of every KV node's HTTP API (seed: 5001..).
pub const KV_PORT: u16 = 5001;
/// The registry's port (seed: 5000).
pub const REGISTRY_PORT: u16 = 5000;

/// The load balancer's port (seed: 8080).
pub const LB_PORT: u16 = 8080;

/// The load balancer's address.
pub fn lb_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 2)), LB_PORT)
}

/// The balancer's configuration from `[lb]`, if the scenario has one: `backends` (default
/// every server) as `n{i}` at their HTTP addresses, the seed's defaults otherwise.
pub fn lb_config(scenario: &Scenario) -> Option<LbConfig> {
    let lb = scenario.lb.as_ref()?.get_ref();
    let indices: Vec<usize> = match &lb.backends {
        Some(names) => names
            .get_ref()
            .iter()
            .filter_map(|n| n.get_ref().strip_prefix('n')?.parse().ok())
            .collect(),
        None => (1..=scenario.server_count()).collect(),
    };
    let strategy = match lb.strategy.as_ref().map(|s| *s.get_ref()) {
        Some(scenario::LbStrategy::LeastConnections) => Strategy::LeastConnections,
        _ => Strategy::RoundRobin,
    };
    Some(LbConfig {
        listen: lb_addr(),
        backends: indices
            .into_iter()
            .map(|i| Backend {
                name: format!("n{i}"),
                addr: node_addr(i),
            })
            .collect(),
        strategy,
        health_interval: lb
            .health_interval
            .as_ref()
            .map_or(nodes::lb::HEALTH_INTERVAL, |d| d.get_ref().0),
        health_timeout: nodes::lb::HEALTH_TIMEOUT,
        backend_timeout: nodes::lb::BACKEND_TIMEOUT,
    })
}

/// The registry's address.
pub fn registry_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 2, 1)), REGISTRY_PORT)
}

/// The HTTP address of server `n{index}`.
pub fn node_addr(index: usize) -> SocketAddr {
    SocketAddr::new(server_ip(index), KV_PORT)
}

/// The registry's configuration: a TTL of three heartbeats.
pub fn registry_config(scenario: &Scenario) -> RegistryConfig {
    RegistryConfig {
        listen: registry_addr(),
        ttl: heartbeat(scenario) * 3,
    }
}

fn heartbeat(scenario: &Scenario) -> Duration {
    scenario
        .config
        .registry_heartbeat
        .as_ref()
        .map_or(Duration::from_secs(2), |d| d.get_ref().0)
}

/// Configuration of KV server `n{index}` (defaults: the seed's, with Lamport versions),
/// from `[config]` and its `[servers.n{index}]`.
pub fn node_config(scenario: &Scenario, index: usize) -> KvConfig {
    let k = &scenario.knobs_for(index);
    let versioning = match k.versioning.as_ref().map(|v| *v.get_ref()) {
        Some(scenario::Versioning::NodeCounter) => Versioning::NodeCounter,
        Some(scenario::Versioning::WallClock) => Versioning::WallClock,
        _ => Versioning::Lamport,
    };
    let gossip = scenario.gossip_membership();
    KvConfig {
        id: format!("n{index}"),
        listen: node_addr(index),
        advertise: node_addr(index).to_string(),
        registry: (!gossip).then(registry_addr),
        gossip: gossip.then(|| gossip_config(scenario, index)),
        replication_factor: k
            .replication_factor
            .as_ref()
            .map_or(3, |v| *v.get_ref() as usize),
        virtual_nodes: k.virtual_nodes.as_ref().map_or(
            if gossip {
                nodes::kv::swim::DEFAULT_VIRTUAL_NODES
            } else {
                150
            },
            |v| *v.get_ref(),
        ),
        write_quorum: k.write_quorum.as_ref().map_or(1, |v| *v.get_ref() as usize),
        versioning,
        gossip_interval: k
            .gossip_interval
            .as_ref()
            .map_or(Duration::from_secs(3), |d| d.get_ref().0),
        registry_heartbeat: k
            .registry_heartbeat
            .as_ref()
            .map_or(heartbeat(scenario), |d| d.get_ref().0),
        peer_timeout: Duration::from_secs(1),
        overload: overload_config(k),
    }
}

/// Servers every gossip node announces itself to at start: `n1`..`n3` (itself left
/// out), as one would pass `--join` a few well-known addresses.
pub const JOIN_SERVERS: usize = 3;

/// Gossip settings of server `n{index}`: join through the first [`JOIN_SERVERS`].
fn gossip_config(scenario: &Scenario, index: usize) -> GossipConfig {
    GossipConfig {
        join: (1..=scenario.server_count().min(JOIN_SERVERS))
            .filter(|&i| i != index)
            .map(node_addr)
            .collect(),
        probe_period: nodes::kv::swim::DEFAULT_PROBE_PERIOD,
    }
}

/// Seed 001's middleware knobs (validated at load: zeros and bad factors never get here).
fn overload_config(k: &scenario::Knobs) -> OverloadConfig {
    let count = |v: &Option<toml::Spanned<u32>>| v.as_ref().map(|v| *v.get_ref());
    let breaker = k.circuit_breaker.as_ref().is_some_and(|b| *b.get_ref());
    OverloadConfig {
        rate_limit: count(&k.rate_limit).and_then(NonZeroU32::new),
        backpressure: count(&k.backpressure).and_then(|n| NonZeroUsize::new(n as usize)),
        workers: count(&k.workers).and_then(|n| NonZeroUsize::new(n as usize)),
        load_factor: k
            .load_factor
            .as_ref()
            .and_then(|ms| nodes::kv::overload::load_factor(*ms.get_ref()).ok())
            .unwrap_or_default(),
        circuit_breaker: breaker.then(|| BreakerConfig {
            failures: count(&k.breaker_failures).unwrap_or(DEFAULT_FAILURES),
            cooldown: k
                .breaker_cooldown
                .as_ref()
                .map_or(DEFAULT_COOLDOWN, |d| d.get_ref().0),
        }),
    }
}

/// What the harness reads at the end: for each live server, the workload's keys it is a
/// replica of on the ring of the live servers (the shared [`Ring`], with the servers'
/// `virtual_nodes` and `replication_factor`), so `converged` and `no_lost_writes` judge
/// each key on its replicas.
pub fn final_reads(scenario: &Scenario, live: &[usize]) -> Vec<(usize, Vec<String>)> {
    let config = node_config(scenario, 1);
    let names: Vec<String> = live.iter().map(|i| format!("n{i}")).collect();
    let ring = Ring::new(names.iter().map(String::as_str), config.virtual_nodes);
    let keys = keys(scenario);
    live.iter()
        .zip(&names)
        .map(|(&server, name)| {
            let owned = keys
                .iter()
                .filter(|k| ring.replicas(k, config.replication_factor).contains(name))
                .cloned()
                .collect();
            (server, owned)
        })
        .collect()
}

/// The workload's keys: `k0`, `k1`, ...
pub fn keys(scenario: &Scenario) -> Vec<String> {
    let count = scenario
        .workload
        .as_ref()
        .and_then(|w| w.keys.as_ref().map(|k| *k.get_ref()))
        .unwrap_or(5);
    (0..count).map(|i| format!("k{i}")).collect()
}
