//! The datagram seam: one UDP socket on `tokio::net`, simulated under `--cfg madsim`.
//!
//! madsim's `UdpSocket::send_to` takes `(destination, bytes)` and returns `()`, tokio's
//! `(bytes, destination)` and the count sent; this is the one place that difference lives,
//! so the gossip code above it is the same in both modes. Delivery is best effort: a
//! datagram may be lost (simulated `loss`, clogged links, a full socket buffer).

use std::io;
use std::net::SocketAddr;

/// A bound UDP socket.
pub struct Datagrams(tokio::net::UdpSocket);

impl Datagrams {
    /// Binds `addr`.
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        Ok(Datagrams(tokio::net::UdpSocket::bind(addr).await?))
    }

    /// Sends one datagram to `to`.
    pub async fn send_to(&self, to: SocketAddr, data: &[u8]) -> io::Result<()> {
        #[cfg(madsim)]
        {
            self.0.send_to(to, data).await
        }
        #[cfg(not(madsim))]
        {
            self.0.send_to(data, to).await.map(|_| ())
        }
    }

    /// Receives one datagram into `buf`: its length and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.0.recv_from(buf).await
    }
}
