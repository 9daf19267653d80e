//! How each system's servers (and later its clients) are started inside the simulation.
//!
//! Each function here builds the same configuration the real binary builds from its flags
//! and returns an init closure that calls the same entry point, so a restart re-runs the
//! real start-up, recovery from the durable log included.

pub mod chat;
pub mod election;
pub mod kv;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Port every server listens on for peer traffic.
pub const PEER_PORT: u16 = 7000;

/// `10.0.0.i` for server `ni` up to `n255`; `10.1.(i / 256).(i % 256)` past it (gossip
/// scenarios have up to 1,000 servers), clear of the clients' and harness's 10.0.x.
pub fn server_ip(index: usize) -> IpAddr {
    if index < 256 {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, index as u8))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 1, (index >> 8) as u8, index as u8))
    }
}

/// `10.0.1.j` for client `cj`.
pub fn client_ip(index: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 1, index as u8))
}

/// Where the simulated clients reach the servers of `scenario`: chat's client port, kv's
/// HTTP port, and the balancer's address.
pub fn client_addresses(scenario: &crate::scenario::Scenario) -> simcore::addresses::Addresses {
    use crate::scenario::System;
    let servers = (1..=scenario.server_count())
        .map(|i| match scenario.system {
            System::Chat => chat::client_addr(i),
            _ => kv::node_addr(i),
        })
        .collect();
    let lb = kv::lb_config(scenario).map(|_| kv::lb_addr());
    simcore::addresses::Addresses::new(servers, lb)
}

/// The node at `ip` by the addressing plan above (`n3`, `c2`, `registry`, `lb`), for
/// naming the ends of tapped HTTP calls; `None` for the harness's own readers.
pub fn node_at(ip: IpAddr) -> Option<String> {
    let IpAddr::V4(v4) = ip else { return None };
    match v4.octets() {
        [10, 0, 0, i] if i > 0 => Some(format!("n{i}")),
        [10, 0, 1, j] if j > 0 => Some(format!("c{j}")),
        [10, 0, 2, 1] => Some("registry".into()),
        [10, 0, 2, 2] => Some("lb".into()),
        _ => None,
    }
}

/// The peer address of server `ni`.
pub fn server_addr(index: usize) -> SocketAddr {
    SocketAddr::new(server_ip(index), PEER_PORT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every address of the plan names its node, so the ends of a tapped HTTP call are
    /// lanes; the harness's own readers name none.
    #[test]
    fn every_address_names_its_node() {
        assert_eq!(node_at(server_ip(64)).as_deref(), Some("n64"));
        assert_eq!(node_at(client_ip(3)).as_deref(), Some("c3"));
        assert_eq!(
            node_at(kv::registry_addr().ip()).as_deref(),
            Some("registry")
        );
        assert_eq!(node_at(kv::lb_addr().ip()).as_deref(), Some("lb"));
        assert_eq!(node_at(IpAddr::V4(Ipv4Addr::new(10, 0, 3, 1))), None);
    }
}
