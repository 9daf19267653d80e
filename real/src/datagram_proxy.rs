//! The fault proxy's datagram relay: gossip membership's UDP (SWIM) in a `sim real` run.
//!
//! Link `a → b`'s relay is a UDP socket on the loopback port of the link's TCP listener
//! ([`crate::byte_proxy`]): server `a` sends its gossip for `b` there, by the same
//! `--route` it dials `b` by (the routes seam). A datagram from `a`'s gossip address goes
//! on to `b` under link `a → b`'s faults; one from `b` — the answer to a view pull, which
//! goes back to where the ask came from, this relay — goes back to `a` under `b → a`'s;
//! anyone else's is dropped. The faults act as the simulator's UDP does: a datagram on a
//! cut link, or lost at the link's loss rate, is gone (nothing sends it again); any other
//! waits out its draw from the link's latency range, so datagrams may overtake each other.

use crate::proxy::{datagram_fate, Link, Proxy};
use nodes::runtime::datagram::Datagrams;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Largest datagram read (gossip's are under 1.5 kB; a larger one is passed on whole,
/// for the node to refuse, up to this).
const MAX_DATAGRAM: usize = 64 * 1024;
/// Pause after a failed receive (an error left by an earlier send), so a socket that keeps
/// failing does not spin.
const AFTER_ERROR: Duration = Duration::from_millis(1);

/// Relays link `(a, b)`'s datagrams on `via` between `a`'s and `b`'s gossip addresses
/// (`ends`), under `proxy`'s network; `seed` seeds its draws. Binding `via` may fail (the
/// UDP port of the link's listener taken by another process): the run cannot proxy its
/// gossip then, and says so.
pub async fn relay(
    proxy: Proxy,
    (a, b): Link,
    via: SocketAddr,
    ends: (SocketAddr, SocketAddr),
    seed: u64,
) -> Result<(), String> {
    let socket = Datagrams::bind(via)
        .await
        .map_err(|e| format!("proxy: gossip relay on {via}: {e}"))?;
    let socket = Arc::new(socket);
    tokio::spawn(async move {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut buf = vec![0; MAX_DATAGRAM];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                tokio::time::sleep(AFTER_ERROR).await;
                continue;
            };
            let (link, to) = match from {
                _ if from == ends.0 => ((a, b), ends.1),
                _ if from == ends.1 => ((b, a), ends.0),
                _ => continue,
            };
            let Some(delay) = proxy.with(|network| datagram_fate(network, link, &mut rng)) else {
                continue;
            };
            let datagram = buf[..n].to_vec();
            if delay.is_zero() {
                let _ = socket.send_to(to, &datagram).await;
            } else {
                let socket = socket.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = socket.send_to(to, &datagram).await;
                });
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::Network;

    const A: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7001);
    const B: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7002);
    const VIA: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7003);
    const STRANGER: SocketAddr =
        SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 7004);

    /// The next datagram on `socket` within a second: its bytes and sender.
    async fn next(socket: &Datagrams) -> Option<(Vec<u8>, SocketAddr)> {
        let mut buf = [0u8; 64];
        let got = tokio::time::timeout(Duration::from_secs(1), socket.recv_from(&mut buf)).await;
        got.ok()?.ok().map(|(n, from)| (buf[..n].to_vec(), from))
    }

    /// `a`'s datagram reaches `b` from the relay; `b`'s answer to the relay reaches `a`;
    /// a stranger's is dropped; a partition drops both directions and a heal restores them.
    #[tokio::test]
    async fn the_relay_carries_both_directions_of_its_link_and_only_those() {
        let proxy = Proxy::new(Network::default());
        relay(proxy.clone(), (1, 2), VIA, (A, B), 7)
            .await
            .expect("relay binds");
        let (a, b) = (
            Datagrams::bind(A).await.unwrap(),
            Datagrams::bind(B).await.unwrap(),
        );
        let stranger = Datagrams::bind(STRANGER).await.unwrap();

        a.send_to(VIA, b"ping").await.unwrap();
        assert_eq!(next(&b).await, Some((b"ping".to_vec(), VIA)));
        b.send_to(VIA, b"view").await.unwrap();
        assert_eq!(next(&a).await, Some((b"view".to_vec(), VIA)));
        stranger.send_to(VIA, b"forged").await.unwrap();
        assert_eq!(next(&b).await, None);
        assert_eq!(next(&a).await, None);

        proxy.with(|n| n.partition(&[vec![1], vec![2]]));
        a.send_to(VIA, b"cut").await.unwrap();
        b.send_to(VIA, b"cut").await.unwrap();
        assert_eq!(next(&b).await, None);
        assert_eq!(next(&a).await, None);
        proxy.with(|n| n.heal());
        a.send_to(VIA, b"healed").await.unwrap();
        assert_eq!(next(&b).await, Some((b"healed".to_vec(), VIA)));
    }
}
