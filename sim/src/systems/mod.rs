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

/// The peer address of server `ni`.
pub fn server_addr(index: usize) -> SocketAddr {
    SocketAddr::new(server_ip(index), PEER_PORT)
}
