//! The fault proxy: every peer link of a real cluster runs through it.
//!
//! Server `ni` is told that peer `nj` is at a loopback port of the proxy reserved for the
//! link `ni → nj`; the proxy connects on to `nj`'s real peer port. The peer transport sends
//! newline-delimited messages one way (the acceptor only sends its handshake challenge
//! back), so the proxy acts per message line of `ni → nj`: dropped while the link is cut
//! (`partition`, `isolate`, `clog`), delayed by a draw from its `latency` range and, with
//! the link's `loss` rate, by TCP's retransmission timeouts (in order, as TCP keeps it). The challenge line back is
//! passed on as it is: a cut link still fails its handshake, since the hello is dropped.
//! KV's peer traffic is HTTP, carried as byte streams instead (see [`crate::byte_proxy`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Linux's minimum TCP retransmission timeout.
const RETRANSMIT: Duration = Duration::from_millis(200);
/// Retransmissions after which a message goes through whatever the loss rate.
const MAX_RETRANSMITS: usize = 6;

/// A directed link between two servers, by index (`(1, 2)` is `n1 → n2`).
pub type Link = (usize, usize);

/// The network's state, as the timeline sets it.
#[derive(Debug, Default)]
pub struct Network {
    /// Links whose messages are dropped.
    cut: BTreeSet<Link>,
    /// Drop probability of every link without its own.
    loss: f64,
    /// Per-link drop probabilities.
    link_loss: BTreeMap<Link, f64>,
    /// Delay range of every link without its own.
    latency: Option<[Duration; 2]>,
    /// Per-link delay ranges.
    link_latency: BTreeMap<Link, [Duration; 2]>,
}

impl Network {
    /// Cuts both directions between every two servers of different groups.
    pub fn partition(&mut self, groups: &[Vec<usize>]) {
        for (a, group) in groups.iter().enumerate() {
            for (b, other) in groups.iter().enumerate() {
                if a != b {
                    for &i in group {
                        for &j in other {
                            self.cut.insert((i, j));
                        }
                    }
                }
            }
        }
    }

    /// Cuts `node` from every other server, both ways.
    pub fn isolate(&mut self, node: usize, servers: usize) {
        for other in (1..=servers).filter(|&o| o != node) {
            self.cut.insert((node, other));
            self.cut.insert((other, node));
        }
    }

    /// Cuts one direction.
    pub fn clog(&mut self, link: Link) {
        self.cut.insert(link);
    }

    /// Restores one direction.
    pub fn unclog(&mut self, link: Link) {
        self.cut.remove(&link);
    }

    /// Removes every cut.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Sets the loss rate of one link, or of every link.
    pub fn set_loss(&mut self, link: Option<Link>, rate: f64) {
        match link {
            Some(link) => {
                self.link_loss.insert(link, rate);
            }
            None => {
                self.loss = rate;
                self.link_loss.clear();
            }
        }
    }

    /// Sets the delay range of one link, or of every link.
    pub fn set_latency(&mut self, link: Option<Link>, range: [Duration; 2]) {
        match link {
            Some(link) => {
                self.link_latency.insert(link, range);
            }
            None => {
                self.latency = Some(range);
                self.link_latency.clear();
            }
        }
    }

    /// Whether `link` is cut now.
    pub fn is_cut(&self, link: Link) -> bool {
        self.cut.contains(&link)
    }

    /// What happens to one message on `link`: `None` dropped, else its delay.
    pub(crate) fn fate(&self, link: Link, rng: &mut ChaCha8Rng) -> Option<Duration> {
        if self.cut.contains(&link) {
            return None;
        }
        let range = self.link_latency.get(&link).copied().or(self.latency);
        let mut delay = match range {
            Some([low, high]) if high > low => rng.gen_range(low..high),
            Some([low, _]) => low,
            None => Duration::ZERO,
        };
        // A lost packet of a TCP stream is sent again after the retransmission timeout,
        // doubling each time: on a TCP link, loss shows up as delay (as in the simulator).
        let loss = self.link_loss.get(&link).copied().unwrap_or(self.loss);
        let mut timeout = RETRANSMIT;
        for _ in 0..MAX_RETRANSMITS {
            if loss <= 0.0 || !rng.gen_bool(loss.clamp(0.0, 1.0)) {
                break;
            }
            delay += timeout;
            timeout *= 2;
        }
        Some(delay)
    }
}

/// The proxy's shared state: the network, and the real peer address of each server.
#[derive(Clone)]
pub struct Proxy {
    network: Arc<Mutex<Network>>,
}

impl Proxy {
    /// A proxy over `network`.
    pub fn new(network: Network) -> Self {
        Proxy {
            network: Arc::new(Mutex::new(network)),
        }
    }

    /// Changes the network.
    pub fn with<T>(&self, change: impl FnOnce(&mut Network) -> T) -> T {
        change(&mut self.network.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Serves link `link` on `listener`, forwarding to `target`. `seed` seeds its draws.
    pub fn serve(&self, link: Link, listener: TcpListener, target: SocketAddr, seed: u64) {
        let proxy = self.clone();
        tokio::spawn(async move {
            let mut connection = 0u64;
            while let Ok((inbound, _)) = listener.accept().await {
                connection += 1;
                let rng = ChaCha8Rng::seed_from_u64(seed ^ connection.wrapping_mul(0x9e37_79b9));
                tokio::spawn(proxy.clone().forward(link, inbound, target, rng));
            }
        });
    }

    async fn forward(
        self,
        link: Link,
        inbound: TcpStream,
        target: SocketAddr,
        mut rng: ChaCha8Rng,
    ) {
        let Ok(Ok(outbound)) =
            tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await
        else {
            return; // The peer is down: the sender sees its connection close.
        };
        let (in_read, mut in_write) = tokio::io::split(inbound);
        let (mut out_read, mut out_write) = tokio::io::split(outbound);
        // Back from the acceptor: the handshake challenge, passed on as it is.
        let back = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut out_read, &mut in_write).await;
        });
        let mut lines = BufReader::new(in_read);
        let mut line = Vec::new();
        loop {
            line.clear();
            match lines.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let fate = self.with(|n| n.fate(link, &mut rng));
            let Some(delay) = fate else { continue };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if out_write.write_all(&line).await.is_err() {
                break;
            }
        }
        back.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_loss_and_latency_decide_each_messages_fate() {
        let mut net = Network::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(net.fate((1, 2), &mut rng), Some(Duration::ZERO));
        net.partition(&[vec![1, 2], vec![3]]);
        assert_eq!(net.fate((1, 3), &mut rng), None);
        assert_eq!(net.fate((3, 2), &mut rng), None);
        assert_eq!(net.fate((1, 2), &mut rng), Some(Duration::ZERO));
        net.heal();
        net.clog((2, 1));
        assert_eq!(net.fate((2, 1), &mut rng), None);
        assert!(net.fate((1, 2), &mut rng).is_some());
        net.unclog((2, 1));
        net.set_loss(Some((1, 2)), 1.0);
        // Every send lost: delivered after each retransmission timeout, doubling.
        let retried = RETRANSMIT * ((1 << MAX_RETRANSMITS) - 1);
        assert_eq!(net.fate((1, 2), &mut rng), Some(retried));
        assert_eq!(net.fate((2, 1), &mut rng), Some(Duration::ZERO));
        let range = [Duration::from_millis(10), Duration::from_millis(20)];
        net.set_latency(Some((2, 1)), range);
        let delay = net.fate((2, 1), &mut rng).unwrap();
        assert!(delay >= range[0] && delay < range[1], "{delay:?}");
        net.isolate(3, 3);
        assert_eq!(net.fate((2, 3), &mut rng), None);
        assert_eq!(net.fate((3, 1), &mut rng), None);
    }
}
