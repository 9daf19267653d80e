//! Where clients reach a cluster: the client-facing address of each server (chat's client
//! port, kv's HTTP port) and of the balancer. The simulator's are fixed simulated IPs; a
//! real run's are loopback ports chosen when it starts. The workload and the probes take
//! them as a value, so the same client code drives either.

use std::net::SocketAddr;

/// The client-facing addresses of servers `n1..nN` and of `lb`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Addresses {
    servers: Vec<SocketAddr>,
    lb: Option<SocketAddr>,
}

impl Addresses {
    /// `servers[i - 1]` is server `ni`'s address; `lb` the balancer's, if there is one.
    pub fn new(servers: Vec<SocketAddr>, lb: Option<SocketAddr>) -> Self {
        Addresses { servers, lb }
    }

    /// How many servers there are.
    pub fn count(&self) -> usize {
        self.servers.len()
    }

    /// Server `n{index}`'s address (1-based). Indices come from `1..=count()`.
    pub fn server(&self, index: usize) -> SocketAddr {
        self.servers[index.clamp(1, self.servers.len().max(1)) - 1]
    }

    /// The balancer's address (the first server's when there is no balancer: a
    /// workload says `via = "lb"` only when the scenario has one, which validation checks).
    pub fn lb(&self) -> SocketAddr {
        self.lb.unwrap_or_else(|| self.server(1))
    }
}
