//! The fault proxy's byte-stream transport, for KV's peer traffic (HTTP: replication,
//! anti-entropy, registry calls, replica reads, the balancer's forwarding, the clients);
//! a gossip cluster's UDP goes through a relay on each server link's port
//! ([`crate::datagram_proxy`]).
//!
//! Each directed link `a → b` has a listener; `a` dials it to reach `b` (the node's
//! `--route`, the balancer's backends, the clients' addresses) and every connection is
//! carried on to `b` as two byte streams: what `a` sends meets link `a → b`, what `b`
//! answers meets `b → a`. The faults act as the simulator's TCP does (MADSIM_NOTES):
//! - while `a → b` is cut (`partition`, `isolate`, `clog`) or `b` is down, a new
//!   connection is refused at once — the link's listener is closed (a placeholder socket
//!   keeps its port), so the dialer gets `ECONNREFUSED`, as madsim refuses a connect on
//!   a clogged link;
//! - on an open connection, data on a cut direction is held, not lost, and delivered
//!   after the heal with a retry backoff (1 ms doubling, at most 10 s), as madsim does;
//! - every chunk is delayed by a draw from the link's latency range and, with its loss
//!   rate, by TCP's retransmission timeouts ([`Network`]'s draws), in order.
//!
//! The proxy connects on from an address of `a`'s own (`127.0.1.a`), so a server tells
//! its clients apart by address as in the simulator.

use crate::proxy::{Link, Network, Proxy};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// First pause before a held chunk is tried again on a cut direction.
const HOLD_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between two tries of a held chunk.
const HOLD_MOST: Duration = Duration::from_secs(10);
/// Bytes read at once from one side.
const CHUNK: usize = 64 * 1024;
/// Chunks read ahead of the delivery of one direction.
const AHEAD: usize = 64;

/// The byte-stream proxy: the network's state, which endpoints are down, and a signal
/// to the links' gates that either changed.
#[derive(Clone)]
pub struct ByteProxy {
    proxy: Proxy,
    down: Arc<Mutex<BTreeSet<usize>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl ByteProxy {
    /// A byte-stream proxy over `proxy`'s network.
    pub fn new(proxy: Proxy) -> Self {
        ByteProxy {
            proxy,
            down: Arc::default(),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    /// Notes whether endpoint `index` runs (links to a down endpoint refuse connections).
    pub fn set_down(&self, index: usize, down: bool) {
        let mut set = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if down {
            set.insert(index);
        } else {
            set.remove(&index);
        }
    }

    /// Tells every link's gate to look again (after a fault changed the network or a
    /// process's state).
    pub fn changed(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    fn refuses(&self, (a, b): Link) -> bool {
        let down = self
            .down
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&b);
        down || self.proxy.with(|n| n.is_cut(&a, &b))
    }

    /// Carries link `link` to `target` from a loopback port of its own, which it
    /// returns; `seed` seeds its draws.
    pub fn serve(&self, link: Link, target: SocketAddr, seed: u64) -> Result<SocketAddr, String> {
        let (placeholder, port) = hold_port().map_err(|e| format!("proxy: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let first = listen_on(addr).map_err(|e| format!("proxy: {e}"))?;
        tokio::spawn(
            self.clone()
                .gate(link, addr, first, placeholder, target, seed),
        );
        Ok(addr)
    }

    /// Relays `link`'s gossip datagrams on `via`, the port [`ByteProxy::serve`] gave the
    /// link, between the two servers' gossip addresses `ends` (see
    /// [`crate::datagram_proxy`]); `seed` seeds its draws.
    pub async fn relay_datagrams(
        &self,
        link: Link,
        via: SocketAddr,
        ends: (SocketAddr, SocketAddr),
        seed: u64,
    ) -> Result<(), String> {
        crate::datagram_proxy::relay(self.proxy.clone(), link, via, ends, seed).await
    }

    /// Listens for `link` while it is open, not at all while it refuses (a connect is
    /// then refused at once, and connections not yet accepted are reset).
    async fn gate(
        self,
        link: Link,
        addr: SocketAddr,
        first: TcpListener,
        _placeholder: Placeholder,
        target: SocketAddr,
        seed: u64,
    ) {
        let mut changes = self.changed.subscribe();
        let mut listener = Some(first);
        let mut connection = 0u64;
        loop {
            if self.refuses(link) {
                listener = None;
            } else if listener.is_none() {
                // Only this run's placeholder shares the port, so this succeeds; if it
                // did not, the next change tries again.
                listener = listen_on(addr).ok();
            }
            let Some(open) = &listener else {
                if changes.changed().await.is_err() {
                    return;
                }
                continue;
            };
            tokio::select! {
                accepted = open.accept() => {
                    if let Ok((inbound, _)) = accepted {
                        connection += 1;
                        let draws = seed ^ connection.wrapping_mul(0x9e37_79b9);
                        tokio::spawn(self.clone().carry(link, inbound, target, draws));
                    }
                }
                change = changes.changed() => {
                    if change.is_err() {
                        return;
                    }
                }
            }
        }
    }

    /// One connection of `a → b`: on to `b`, both directions pumped until both end.
    async fn carry(self, (a, b): Link, inbound: TcpStream, target: SocketAddr, draws: u64) {
        let _ = inbound.set_nodelay(true);
        let connect = tokio::time::timeout(Duration::from_secs(1), connect_from(a, target));
        let Ok(Ok(outbound)) = connect.await else {
            // `b` went down between the last look and this connection: reset it.
            reset(&inbound);
            return;
        };
        let _ = outbound.set_nodelay(true);
        let (in_read, in_write) = tokio::io::split(inbound);
        let (out_read, out_write) = tokio::io::split(outbound);
        let forth = self.pump((a, b), in_read, out_write, draws);
        let back = self.pump((b, a), out_read, in_write, draws.rotate_left(17));
        tokio::join!(forth, back);
    }

    /// Copies `from` to `to` under `link`'s faults, in order; at `from`'s end, ends `to`.
    async fn pump(
        &self,
        link: Link,
        mut from: tokio::io::ReadHalf<TcpStream>,
        mut to: tokio::io::WriteHalf<TcpStream>,
        draws: u64,
    ) {
        let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(AHEAD);
        let read = async move {
            loop {
                let mut chunk = vec![0; CHUNK];
                match from.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => chunk.truncate(n),
                }
                if tx.send((Instant::now(), chunk)).await.is_err() {
                    return;
                }
            }
        };
        let deliver = async move {
            let mut rng = ChaCha8Rng::seed_from_u64(draws);
            let mut last = Instant::now();
            while let Some((read_at, chunk)) = rx.recv().await {
                let delay = self.held_until_open(link, &mut rng).await;
                let due = (read_at + delay).max(last);
                tokio::time::sleep_until(due).await;
                last = due;
                if to.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to.shutdown().await;
        };
        tokio::join!(read, deliver);
    }

    /// Waits while `link` is cut (retrying as madsim's TCP does), then draws the delay
    /// of one chunk.
    async fn held_until_open(&self, link: Link, rng: &mut ChaCha8Rng) -> Duration {
        let mut pause = HOLD_FIRST;
        loop {
            if let Some(delay) = self
                .proxy
                .with(|n: &mut Network| crate::proxy::fate(n, link, rng))
            {
                return delay;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(HOLD_MOST);
        }
    }
}

/// The loopback address endpoint `index` connects from: `127.0.1.{index}`, so each
/// client (and the balancer) is a client address of its own to the servers, as each is
/// a node of its own in the simulator (a `rate_limit` is per client address).
fn source_ip(index: usize) -> std::net::Ipv4Addr {
    match u8::try_from(index) {
        Ok(last) if last > 0 && last < 255 => std::net::Ipv4Addr::new(127, 0, 1, last),
        _ => std::net::Ipv4Addr::LOCALHOST,
    }
}

/// Connects to `target` from endpoint `index`'s loopback address.
#[cfg(not(madsim))]
async fn connect_from(index: usize, target: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source_ip(index), 0)))?;
    socket.connect(target).await
}
#[cfg(madsim)]
async fn connect_from(index: usize, target: SocketAddr) -> std::io::Result<TcpStream> {
    let _ = source_ip(index);
    TcpStream::connect(target).await
}

/// Makes dropping `stream` reset the connection (a zero linger resets at once; it is a
/// non-zero one that blocks, hence tokio's deprecation).
#[cfg(not(madsim))]
fn reset(stream: &TcpStream) {
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}
#[cfg(madsim)]
fn reset(_stream: &TcpStream) {}

/// The socket that keeps a link's port while its listener is closed: bound with
/// `SO_REUSEPORT`, never listening, so a connect to the port is refused and no other
/// socket (another run's, an outgoing connection's) can take the port meanwhile.
#[cfg(not(madsim))]
type Placeholder = tokio::net::TcpSocket;
#[cfg(madsim)]
type Placeholder = ();

/// Binds a placeholder on a free loopback port; returns it and the port.
#[cfg(not(madsim))]
fn hold_port() -> std::io::Result<(Placeholder, u16)> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let port = socket.local_addr()?.port();
    Ok((socket, port))
}

/// A listener on `addr`, sharing the port with its placeholder.
#[cfg(not(madsim))]
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

// The runner never runs in a simulation build (`main` refuses); these only let it build.
#[cfg(madsim)]
fn hold_port() -> std::io::Result<(Placeholder, u16)> {
    Err(std::io::ErrorKind::Unsupported.into())
}
#[cfg(madsim)]
fn listen_on(_addr: SocketAddr) -> std::io::Result<TcpListener> {
    Err(std::io::ErrorKind::Unsupported.into())
}
