//! The fault proxy: every peer link of a real cluster runs through it.
//!
//! Server `ni` is told that peer `nj` is at a loopback port of the proxy reserved for the
//! link `ni → nj`; the proxy connects on to `nj`'s real peer port. A peer connection
//! carries both directions (see `nodes::runtime::transport`): from the dialler a hello
//! line, then length-prefixed message frames; from the acceptor a challenge and a proof
//! line, then frames. The proxy acts per unit of each direction, judged as the link that
//! direction is (`ni → nj` out, `nj → ni` back): dropped while the link is cut
//! (`partition`, `isolate`, `clog`), delayed by a draw from its `latency` range and, with
//! the link's `loss` rate, by TCP's retransmission timeouts (in order, as TCP keeps it). A
//! cut link fails the handshake of a connection opened across it, as a line is dropped.
//! KV's peer traffic is HTTP, carried as byte streams instead (see [`crate::byte_proxy`]).

use nodes::runtime::frame::HEADER_BYTES;
use nodes::runtime::transport::MAX_FRAME_BYTES;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Linux's minimum TCP retransmission timeout.
const RETRANSMIT: Duration = Duration::from_millis(200);
/// Retransmissions after which a message goes through whatever the loss rate.
const MAX_RETRANSMITS: usize = 6;

/// A directed link between two servers, by index (`(1, 2)` is `n1 → n2`).
pub type Link = (usize, usize);

/// The network's state, as the timeline sets it: simcore's one network model, by
/// server index.
pub type Network = simcore::network::Network<usize>;

/// What happens to one message (or byte chunk) on `link`: `None` dropped (held, for
/// byte streams), else its delay.
pub(crate) fn fate(network: &Network, link: Link, rng: &mut ChaCha8Rng) -> Option<Duration> {
    let (from, to) = link;
    if network.is_cut(&from, &to) {
        return None;
    }
    let mut delay = latency(network, link, rng);
    // A lost packet of a TCP stream is sent again after the retransmission timeout,
    // doubling each time: on a TCP link, loss shows up as delay (as in the simulator).
    let loss = network.loss(&from, &to);
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

/// What happens to one datagram on `link`: `None` lost (a cut link, or a draw under the
/// link's loss rate: UDP sends nothing again), else its delay.
pub(crate) fn datagram_fate(
    network: &Network,
    link: Link,
    rng: &mut ChaCha8Rng,
) -> Option<Duration> {
    let (from, to) = link;
    if network.is_cut(&from, &to) {
        return None;
    }
    let loss = network.loss(&from, &to);
    if loss > 0.0 && rng.gen_bool(loss.clamp(0.0, 1.0)) {
        return None;
    }
    Some(latency(network, link, rng))
}

/// A draw from `link`'s latency range (none: no delay).
fn latency(network: &Network, (from, to): Link, rng: &mut ChaCha8Rng) -> Duration {
    match network.latency(&from, &to) {
        Some([low, high]) if high > low => rng.gen_range(low..high),
        Some([low, _]) => low,
        None => Duration::ZERO,
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
        let (in_read, in_write) = tokio::io::split(inbound);
        let (out_read, out_write) = tokio::io::split(outbound);
        let (from, to) = link;
        // Back from the acceptor: its challenge and proof lines, then its own messages on
        // the same connection, judged as the reverse link's. When either direction ends,
        // both sockets close, as the connection they stand for would.
        let back_rng = ChaCha8Rng::seed_from_u64(rng.gen());
        let back = self
            .clone()
            .pass(out_read, in_write, (to, from), 2, back_rng);
        let out = self.pass(in_read, out_write, link, 1, rng);
        tokio::select! {
            () = back => {}
            () = out => {}
        }
    }

    /// Passes one direction of a peer connection on, a unit at a time (`lines` handshake
    /// lines, then message frames), each unit with its fate on `link`.
    async fn pass<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
        self,
        from: R,
        mut to: W,
        link: Link,
        mut lines: usize,
        mut rng: ChaCha8Rng,
    ) {
        let mut reader = BufReader::new(from);
        let mut unit = Vec::new();
        loop {
            unit.clear();
            let next = if lines > 0 {
                lines -= 1;
                reader.read_until(b'\n', &mut unit).await.map(|n| n > 0)
            } else {
                read_frame(&mut reader, &mut unit).await
            };
            match next {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
            let fate = self.with(|n| fate(n, link, &mut rng));
            let Some(delay) = fate else { continue };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            if to.write_all(&unit).await.is_err() || to.flush().await.is_err() {
                break;
            }
        }
    }
}

/// Reads one message frame (its length prefix and body) into `unit`: `Ok(false)` at the
/// end of the stream, an error for a frame over the transport's cap (the connection is
/// then dropped, as the node itself would refuse it) or a stream cut short.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    unit: &mut Vec<u8>,
) -> std::io::Result<bool> {
    let mut header = [0u8; HEADER_BYTES];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    let length = u32::from_be_bytes(header) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(std::io::Error::other("a frame over the transport's cap"));
    }
    unit.extend_from_slice(&header);
    unit.resize(HEADER_BYTES + length, 0);
    reader.read_exact(&mut unit[HEADER_BYTES..]).await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hello line aside, the proxy decides per frame: it must cut the stream exactly
    /// at frame bounds, and refuse a frame over the transport's cap.
    #[tokio::test]
    async fn frames_are_read_whole_one_at_a_time() {
        let frame = |body: &[u8]| {
            let mut f = (body.len() as u32).to_be_bytes().to_vec();
            f.extend_from_slice(body);
            f
        };
        let (a, b) = (frame(b"\nfirst\n"), frame(&[0u8; 300]));
        let stream = [a.clone(), b.clone()].concat();
        let mut reader = &stream[..];
        let mut unit = Vec::new();
        assert!(read_frame(&mut reader, &mut unit).await.expect("first"));
        assert_eq!(unit, a);
        unit.clear();
        assert!(read_frame(&mut reader, &mut unit).await.expect("second"));
        assert_eq!(unit, b);
        unit.clear();
        assert!(!read_frame(&mut reader, &mut unit).await.expect("end"));
        let huge = ((MAX_FRAME_BYTES + 1) as u32).to_be_bytes();
        assert!(read_frame(&mut &huge[..], &mut unit).await.is_err());
        let short = [&frame(b"abcdef")[..7]].concat();
        assert!(read_frame(&mut &short[..], &mut Vec::new()).await.is_err());
    }

    #[test]
    fn the_network_models_cuts_loss_and_latency_decide_each_messages_fate() {
        let mut net = Network::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert_eq!(fate(&net, (1, 2), &mut rng), Some(Duration::ZERO));
        net.partition(&[vec![1, 2], vec![3]]);
        assert_eq!(fate(&net, (1, 3), &mut rng), None);
        assert_eq!(fate(&net, (3, 2), &mut rng), None);
        assert_eq!(fate(&net, (1, 2), &mut rng), Some(Duration::ZERO));
        net.heal();
        net.clog(2, 1);
        assert_eq!(fate(&net, (2, 1), &mut rng), None);
        assert!(fate(&net, (1, 2), &mut rng).is_some());
        net.unclog(2, 1);
        net.set_loss(Some((1, 2)), 1.0);
        // Every send lost: delivered after each retransmission timeout, doubling.
        let retried = RETRANSMIT * ((1 << MAX_RETRANSMITS) - 1);
        assert_eq!(fate(&net, (1, 2), &mut rng), Some(retried));
        assert_eq!(fate(&net, (2, 1), &mut rng), Some(Duration::ZERO));
        let range = [Duration::from_millis(10), Duration::from_millis(20)];
        net.set_latency(Some((2, 1)), range);
        let delay = fate(&net, (2, 1), &mut rng).unwrap();
        assert!(delay >= range[0] && delay < range[1], "{delay:?}");
        net.isolate(&3, &[1, 2, 3]);
        assert_eq!(fate(&net, (2, 3), &mut rng), None);
        assert_eq!(fate(&net, (3, 1), &mut rng), None);
    }

    /// A datagram is lost where a stream chunk would be held or sent again: on a cut link,
    /// and at the link's loss rate; otherwise it is delayed like a chunk.
    #[test]
    fn a_datagram_is_lost_on_a_cut_link_and_at_the_loss_rate() {
        let mut net = Network::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        assert_eq!(datagram_fate(&net, (1, 2), &mut rng), Some(Duration::ZERO));
        net.partition(&[vec![1], vec![2]]);
        assert_eq!(datagram_fate(&net, (1, 2), &mut rng), None);
        assert_eq!(datagram_fate(&net, (2, 1), &mut rng), None);
        net.heal();
        net.set_loss(Some((1, 2)), 1.0);
        assert_eq!(datagram_fate(&net, (1, 2), &mut rng), None);
        assert_eq!(datagram_fate(&net, (2, 1), &mut rng), Some(Duration::ZERO));
        net.set_loss(Some((1, 2)), 0.3);
        let lost = (0..10_000)
            .filter(|_| datagram_fate(&net, (1, 2), &mut rng).is_none())
            .count();
        assert!(
            (2_700..3_300).contains(&lost),
            "{lost} of 10000 lost at 30 %"
        );
        let range = [Duration::from_millis(5), Duration::from_millis(9)];
        net.set_latency(Some((2, 1)), range);
        let delay = datagram_fate(&net, (2, 1), &mut rng).unwrap();
        assert!(delay >= range[0] && delay < range[1], "{delay:?}");
    }
}
