//! The transport seam: fire-and-forget messages between peers over `tokio::net` TCP.
//!
//! Messages are newline-delimited JSON. Each peer gets one outbound connection, owned by a
//! writer task with a bounded queue; inbound connections are read by one task each and
//! feed a single inbox. Delivery is best effort, like the network: a message to an
//! unreachable peer, or one that overflows the queue, is dropped, and protocols recover
//! with their own timeouts and retries. The same code runs on real sockets and, compiled
//! with `--cfg madsim`, on the simulated network.

use serde::{de::DeserializeOwned, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// Messages queued per peer before new ones are dropped.
const QUEUE_PER_PEER: usize = 4096;
/// Messages waiting in the inbox before readers wait.
const INBOX: usize = 4096;
/// How long a connect may take before the message is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause before reconnecting to a peer that refused or reset.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest accepted message line.
const MAX_LINE_BYTES: usize = 16 << 20;

/// Sends messages of type `M` to peers by id.
pub struct Transport<M> {
    outboxes: BTreeMap<u64, mpsc::Sender<String>>,
    _message: PhantomData<fn(M)>,
}

impl<M: Serialize + DeserializeOwned + Send + 'static> Transport<M> {
    /// Listens on `listen` and prepares connections to `peers`; returns the sender and
    /// the inbox of messages received from anyone.
    pub async fn start(
        listen: SocketAddr,
        peers: &BTreeMap<u64, SocketAddr>,
    ) -> io::Result<(Self, mpsc::Receiver<M>)> {
        let listener = TcpListener::bind(listen).await?;
        let (inbox_tx, inbox_rx) = mpsc::channel(INBOX);
        tokio::spawn(accept_loop(listener, inbox_tx));
        let outboxes = peers
            .iter()
            .map(|(&id, &addr)| {
                let (tx, rx) = mpsc::channel(QUEUE_PER_PEER);
                tokio::spawn(writer(addr, rx));
                (id, tx)
            })
            .collect();
        Ok((
            Transport {
                outboxes,
                _message: PhantomData,
            },
            inbox_rx,
        ))
    }

    /// Queues `message` for `peer`; drops it if the peer is unknown or its queue is full.
    pub fn send(&self, peer: u64, message: &M) {
        let Some(outbox) = self.outboxes.get(&peer) else {
            return;
        };
        if let Ok(mut line) = serde_json::to_string(message) {
            line.push('\n');
            let _ = outbox.try_send(line);
        }
    }

    /// The peers this transport knows, in id order.
    pub fn peers(&self) -> impl Iterator<Item = u64> + '_ {
        self.outboxes.keys().copied()
    }
}

async fn accept_loop<M: DeserializeOwned + Send + 'static>(
    listener: TcpListener,
    inbox: mpsc::Sender<M>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(reader(stream, inbox.clone()));
            }
            Err(_) => tokio::time::sleep(RECONNECT_BACKOFF).await,
        }
    }
}

async fn reader<M: DeserializeOwned>(stream: TcpStream, inbox: mpsc::Sender<M>) {
    let mut lines = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_LINE_BYTES => return,
            Ok(_) => {
                // A line that does not parse is a peer bug or noise: skip it, keep reading.
                if let Ok(message) = serde_json::from_str(&line) {
                    if inbox.send(message).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn writer(addr: SocketAddr, mut queue: mpsc::Receiver<String>) {
    let mut stream: Option<TcpStream> = None;
    let mut retry_at: Option<tokio::time::Instant> = None;
    while let Some(line) = queue.recv().await {
        if stream.is_none() {
            if retry_at.is_some_and(|t| tokio::time::Instant::now() < t) {
                continue; // peer recently unreachable: drop, as a lossy network would
            }
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                    retry_at = None;
                }
                _ => {
                    retry_at = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
                    continue;
                }
            }
        }
        if let Some(s) = stream.as_mut() {
            let sent = async {
                s.write_all(line.as_bytes()).await?;
                s.flush().await
            };
            if sent.await.is_err() {
                stream = None;
                retry_at = Some(tokio::time::Instant::now() + RECONNECT_BACKOFF);
            }
        }
    }
}
