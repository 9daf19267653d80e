//! The routes seam: which address a node dials to reach a peer's address.
//!
//! Every node dials its peers where they say they are, except in a `sim real` run: there
//! each node is started with the fault proxy's port of every link it has (`--route
//! PEER=VIA`), so the harness cuts, delays and loses traffic per directed link from
//! outside the node. The node's logic keeps using the peers' own addresses (the ones the
//! registry or gossip hands out); only the connect goes elsewhere, and so does a gossip
//! datagram (the proxy relays UDP on the same port). In a simulation the routes are
//! empty: the simulated network applies the faults itself.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Peer address → the address dialed instead; shared by clones, fixed at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Routes(Arc<BTreeMap<SocketAddr, SocketAddr>>);

impl Routes {
    /// No detours: every address is dialed as it is.
    pub fn direct() -> Self {
        Self::default()
    }

    /// Dials `via` for each `(peer, via)`.
    pub fn new(detours: impl IntoIterator<Item = (SocketAddr, SocketAddr)>) -> Self {
        Routes(Arc::new(detours.into_iter().collect()))
    }

    /// Where to connect to reach `peer`.
    pub fn dial(&self, peer: SocketAddr) -> SocketAddr {
        self.0.get(&peer).copied().unwrap_or(peer)
    }
}

/// Parses a `--route` entry, `PEER=VIA` (two `host:port` addresses).
pub fn parse_route(text: &str) -> Result<(SocketAddr, SocketAddr), String> {
    let (peer, via) = text
        .split_once('=')
        .ok_or_else(|| format!("expected PEER=VIA (two host:port addresses), got \"{text}\""))?;
    let address = |a: &str| {
        a.trim()
            .parse::<SocketAddr>()
            .map_err(|_| format!("bad address \"{a}\" in route \"{text}\""))
    };
    Ok((address(peer)?, address(via)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_routed_peer_is_dialed_through_its_detour_others_directly() {
        let (peer, via, other): (SocketAddr, SocketAddr, SocketAddr) = (
            "127.0.0.1:5001".parse().unwrap(),
            "127.0.0.1:40001".parse().unwrap(),
            "127.0.0.1:5002".parse().unwrap(),
        );
        let routes = Routes::new([(peer, via)]);
        assert_eq!(routes.dial(peer), via);
        assert_eq!(routes.dial(other), other);
        assert_eq!(Routes::direct().dial(peer), peer);
        assert_eq!(
            parse_route("127.0.0.1:5001=127.0.0.1:40001"),
            Ok((peer, via))
        );
        for bad in [
            "127.0.0.1:5001",
            "x=127.0.0.1:1",
            "127.0.0.1:1=",
            "=127.0.0.1:1",
        ] {
            assert!(parse_route(bad).is_err(), "{bad}");
        }
    }
}
