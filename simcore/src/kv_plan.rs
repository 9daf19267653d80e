//! A KV scenario's cluster as configuration values: the same [`KvConfig`] for each server
//! (and [`LbConfig`] for `[lb]`) whether the simulator starts it in process or `sim real`
//! turns it into `kv-node` flags, and the harness's final reads of each key on its
//! replicas. Addresses are parameters: the simulator's are fixed simulated IPs, a real
//! run's loopback ports chosen at its start.

use crate::scenario::{self, Scenario};
use nodes::kv::overload::breaker::{BreakerConfig, DEFAULT_COOLDOWN, DEFAULT_FAILURES};
use nodes::kv::ring::Ring;
use nodes::kv::swim::GossipConfig;
use nodes::kv::{KvConfig, OverloadConfig, Versioning};
use nodes::lb::{Backend, LbConfig, Strategy};
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// Servers every gossip node announces itself to at start: `n1`..`n3` (itself left
/// out), as one would pass `--join` a few well-known addresses.
pub const JOIN_SERVERS: usize = 3;

/// The indices of `[lb]`'s backends (default every server), in rotation order.
pub fn lb_backends(scenario: &Scenario) -> Vec<usize> {
    let Some(lb) = scenario.lb.as_ref() else {
        return Vec::new();
    };
    match &lb.get_ref().backends {
        Some(names) => names
            .get_ref()
            .iter()
            .filter_map(|n| n.get_ref().strip_prefix('n')?.parse().ok())
            .collect(),
        None => (1..=scenario.server_count()).collect(),
    }
}

/// The balancer's configuration from `[lb]`, if the scenario has one: listening on
/// `listen`, its backends `n{i}` at `backend(i)`, the seed's defaults otherwise.
pub fn lb_config(
    scenario: &Scenario,
    listen: SocketAddr,
    backend: impl Fn(usize) -> SocketAddr,
) -> Option<LbConfig> {
    let lb = scenario.lb.as_ref()?.get_ref();
    let strategy = match lb.strategy.as_ref().map(|s| *s.get_ref()) {
        Some(scenario::LbStrategy::LeastConnections) => Strategy::LeastConnections,
        _ => Strategy::RoundRobin,
    };
    Some(LbConfig {
        listen,
        backends: lb_backends(scenario)
            .into_iter()
            .map(|i| Backend {
                name: format!("n{i}"),
                addr: backend(i),
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

/// The registry's TTL: three heartbeats.
pub fn registry_ttl(scenario: &Scenario) -> Duration {
    heartbeat(scenario) * 3
}

fn heartbeat(scenario: &Scenario) -> Duration {
    scenario
        .config
        .registry_heartbeat
        .as_ref()
        .map_or(Duration::from_secs(2), |d| d.get_ref().0)
}

/// Configuration of KV server `n{index}` (defaults: the seed's, with Lamport versions),
/// from `[config]` and its `[servers.n{index}]`; server `ni` listens at `node(i)` and the
/// registry (registry membership) is at `registry`.
pub fn node_config(
    scenario: &Scenario,
    index: usize,
    node: impl Fn(usize) -> SocketAddr,
    registry: SocketAddr,
) -> KvConfig {
    let k = &scenario.knobs_for(index);
    let versioning = match k.versioning.as_ref().map(|v| *v.get_ref()) {
        Some(scenario::Versioning::NodeCounter) => Versioning::NodeCounter,
        Some(scenario::Versioning::WallClock) => Versioning::WallClock,
        _ => Versioning::Lamport,
    };
    let gossip = scenario.gossip_membership();
    let (replication_factor, virtual_nodes) = ring_knobs(scenario, index);
    KvConfig {
        id: format!("n{index}"),
        listen: node(index),
        advertise: node(index).to_string(),
        registry: (!gossip).then_some(registry),
        gossip: gossip.then(|| GossipConfig {
            join: (1..=scenario.server_count().min(JOIN_SERVERS))
                .filter(|&i| i != index)
                .map(&node)
                .collect(),
            probe_period: nodes::kv::swim::DEFAULT_PROBE_PERIOD,
        }),
        replication_factor,
        virtual_nodes,
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

/// Server `n{index}`'s replication factor and ring points (seed defaults: 3; 150, or
/// 256 with gossip as seed 003).
fn ring_knobs(scenario: &Scenario, index: usize) -> (usize, u32) {
    let k = &scenario.knobs_for(index);
    let replication_factor = k
        .replication_factor
        .as_ref()
        .map_or(3, |v| *v.get_ref() as usize);
    let default_points = if scenario.gossip_membership() {
        nodes::kv::swim::DEFAULT_VIRTUAL_NODES
    } else {
        150
    };
    let virtual_nodes = k
        .virtual_nodes
        .as_ref()
        .map_or(default_points, |v| *v.get_ref());
    (replication_factor, virtual_nodes)
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
    let (replication_factor, virtual_nodes) = ring_knobs(scenario, 1);
    let names: Vec<String> = live.iter().map(|i| format!("n{i}")).collect();
    let ring = Ring::new(names.iter().map(String::as_str), virtual_nodes);
    let keys = keys(scenario);
    live.iter()
        .zip(&names)
        .map(|(&server, name)| {
            let owned = keys
                .iter()
                .filter(|k| ring.replicas(k, replication_factor).contains(name))
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
