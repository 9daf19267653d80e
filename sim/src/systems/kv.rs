//! KV servers, the registry and the load balancer in the simulation: the scenario's knobs
//! become the same [`KvConfig`] that `kv-node`'s flags build (and the same [`LbConfig`]
//! as `load-balancer`'s), built by [`simcore::kv_plan`] as `sim real` builds them; here
//! with the simulated addresses: the registry is node `registry` at 10.0.2.1, the
//! balancer of `[lb]` node `lb` at 10.0.2.2.

use super::server_ip;
use crate::scenario::Scenario;
use nodes::kv::registry::RegistryConfig;
use nodes::kv::KvConfig;
use nodes::lb::LbConfig;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use simcore::kv_plan::{final_reads, keys, JOIN_SERVERS};

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
    simcore::kv_plan::lb_config(scenario, lb_addr(), node_addr)
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
        ttl: simcore::kv_plan::registry_ttl(scenario),
    }
}

/// Configuration of KV server `n{index}` (defaults: the seed's, with Lamport versions),
/// from `[config]` and its `[servers.n{index}]`.
pub fn node_config(scenario: &Scenario, index: usize) -> KvConfig {
    simcore::kv_plan::node_config(scenario, index, node_addr, registry_addr())
}
